//! An instance's process environment: a base, `PORT`, reef's own
//! variables, and the manifest's `[env]` with its substitutions filled in.
//! Secrets are opened with the node's key here, in memory only.

use super::error::StartError;
use super::LocalInstance;
use crate::Agent;
use reef_proto::subjects;
use std::collections::BTreeMap;
use std::path::Path;

/// The process environment of `record`'s instance on `port`; `extra` (a
/// release's own variables) comes before the manifest's `[env]`, which may
/// override it.
pub(crate) fn render(
    agent: &std::sync::Arc<Agent>,
    record: &LocalInstance,
    data_dir: &Path,
    port: u16,
    extra: Vec<(&'static str, String)>,
) -> Result<BTreeMap<String, String>, StartError> {
    let spec = &record.assignment.release.spec;
    let version = record.assignment.release.version;
    let data = data_dir.display().to_string();
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".into(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    env.insert("HOME".into(), data.clone());
    env.insert("LANG".into(), "C.UTF-8".into());
    env.insert("PORT".into(), port.to_string());
    env.insert("REEF_APP".into(), spec.name.clone());
    env.insert("REEF_RELEASE".into(), version.to_string());
    env.insert(
        "REEF_INSTANCE_ID".into(),
        record.assignment.instance.to_string(),
    );
    env.insert("REEF_NODE_ID".into(), agent.node.to_string());
    for (name, value) in crate::executor::gpu_env(&record.assignment.gpus) {
        env.insert(name.into(), value);
    }
    env.insert("REEF_DATA_DIR".into(), data.clone());
    env.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
    let sealed = &record.assignment.secrets;
    let open = |name: &str| -> Option<String> {
        let bytes = sealed.get(name)?;
        let plain = agent
            .node_key
            .open(&subjects::secret_context(&spec.name, name), bytes)
            .map_err(|e| tracing::error!(app = %spec.name, secret = name, error = %e, "cannot open a secret"))
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    };
    for (key, template) in &spec.env {
        let value = template
            .render(&data, port, open)
            .map_err(|reason| StartError::Env {
                key: key.clone(),
                reason,
            })?;
        env.insert(key.clone(), value);
    }
    if spec
        .services
        .iter()
        .any(|s| s.kind == reef_proto::services::ServiceKind::Nats)
    {
        let secret = reef_proto::services::ServiceKind::Nats.password_secret();
        match open(secret) {
            Some(creds) => env.extend(crate::services::nats_env(
                agent, &spec.name, data_dir, &creds,
            )?),
            None => tracing::warn!(app = %spec.name, "no NATS credential for the app"),
        }
    }
    // The app's managed services: DATABASE_URL and friends.
    for endpoint in &record.assignment.services {
        let secret = endpoint.kind.password_secret();
        let Some(password) = open(secret) else {
            tracing::warn!(app = %spec.name, kind = endpoint.kind.name(), "no password for the service");
            continue;
        };
        let forwarder = (endpoint.node != agent.node)
            .then(|| crate::services::forwarder(agent, &spec.name, endpoint))
            .flatten();
        match endpoint.env(agent.node, &password, forwarder) {
            Some(vars) => env.extend(vars),
            None => tracing::warn!(app = %spec.name, kind = endpoint.kind.name(),
                "the service's node has no peer link this node can reach"),
        }
    }
    Ok(env)
}
