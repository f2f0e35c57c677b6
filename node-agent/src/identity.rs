//! The node's stable identity: a uuid kept in the data directory, created on
//! first start and read on every later one.

use crate::error::AgentError;
use reef_proto::NodeId;
use std::path::Path;

const FILE: &str = "node-id";

/// Reads the node id from `data_dir`, creating it on first use: `bound`
/// when the node's credential names its id (a data dir that already holds
/// another node's id is then refused), else a fresh one.
pub fn load_or_create(data_dir: &Path, bound: Option<NodeId>) -> Result<NodeId, AgentError> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id: NodeId = text.trim().parse().map_err(|e| AgentError::DataDir {
                path: path.clone(),
                reason: format!("node id is not a uuid: {e}"),
            })?;
            match bound {
                Some(bound) if bound != id => Err(AgentError::DataDir {
                    path,
                    reason: format!(
                        "this data dir belongs to node {id}, but the credential is node {bound}'s: \
                         use that node's credential, or another data dir"
                    ),
                }),
                _ => Ok(id),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = bound.unwrap_or_else(NodeId::new);
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
        let first = super::load_or_create(dir.path(), None).expect("create");
        let second = super::load_or_create(dir.path(), None).expect("load");
        assert_eq!(first, second);
        assert_eq!(
            super::load_or_create(dir.path(), Some(first)).expect("bound"),
            first
        );
        let other = reef_proto::NodeId::new();
        let err = super::load_or_create(dir.path(), Some(other)).expect_err("another node's");
        assert!(err.to_string().contains("belongs to node"), "{err}");
        let fresh = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            super::load_or_create(fresh.path(), Some(other)).expect("bound create"),
            other
        );
        std::fs::write(dir.path().join("node-id"), "garbage").expect("write");
        assert!(super::load_or_create(dir.path(), None).is_err());
    }
}
