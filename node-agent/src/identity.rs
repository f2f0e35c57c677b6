//! The node's stable identity: a uuid kept in the data directory, created on
//! first start and read on every later one.

use crate::error::AgentError;
use reef_proto::NodeId;
use std::path::Path;

const FILE: &str = "node-id";

/// Reads the node id from `data_dir`, creating it on first use.
pub fn load_or_create(data_dir: &Path) -> Result<NodeId, AgentError> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| AgentError::DataDir {
            path: path.clone(),
            reason: format!("node id is not a uuid: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = NodeId::new();
            crate::records::write_atomic(&path, id.to_string().as_bytes()).map_err(|e| {
                AgentError::DataDir {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            Ok(id)
        }
        Err(e) => Err(AgentError::DataDir {
            path,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_id_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = super::load_or_create(dir.path()).expect("create");
        let second = super::load_or_create(dir.path()).expect("load");
        assert_eq!(first, second);
        std::fs::write(dir.path().join("node-id"), "garbage").expect("write");
        assert!(super::load_or_create(dir.path()).is_err());
    }
}
