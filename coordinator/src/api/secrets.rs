//! Secrets: stored in the secrets bucket encrypted with the cluster key
//! (which never enters NATS), listed by name only, and delivered to a node
//! only when it starts an instance that uses them, sealed to that node's key.

use crate::api::invalid;
use crate::drive::Coordinator;
use crate::store::{Ciphertext, Store};
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::manifest::{valid_secret_key, validate_app_name, AppSpec};
use reef_proto::{subjects, NodeId};
use std::collections::BTreeMap;

/// Largest secret value accepted.
const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The names (never the values) of `app`'s secrets, sorted.
pub(crate) async fn secret_names(store: &Store, app: &str) -> Result<Vec<String>, ApiError> {
    validate_app_name(app).map_err(invalid)?;
    let prefix = format!("{app}.");
    let keys = store.secrets.keys().await?;
    let mut names: Vec<String> = keys
        .into_iter()
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

impl Coordinator {
    pub(crate) fn cluster_key(&self) -> Result<&reef_secrets::ClusterKey, ApiError> {
        self.cluster_key.as_deref().ok_or_else(|| {
            ApiError::new(
                ApiErrorKind::Unavailable,
                "this coordinator has no cluster key for secrets (start it with --secrets-key FILE)",
            )
        })
    }

    fn check_names(app: &str, key: &str) -> Result<(), ApiError> {
        validate_app_name(app).map_err(invalid)?;
        if !valid_secret_key(key) {
            return Err(invalid(format!(
                "{key:?} is not a secret name: use 1 to 128 of letters, digits, '_', '.', '-'"
            )));
        }
        Ok(())
    }

    /// Stores `key` for `app`, which must exist unless `create` (a secret
    /// set before the app's first deploy).
    pub(crate) async fn set_secret(
        &mut self,
        app: &str,
        key: &str,
        value: &[u8],
        create: bool,
    ) -> Result<(), ApiError> {
        Self::check_names(app, key)?;
        let known = self.store.apps.get(app).await?.is_some();
        if !known && !create {
            return Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!(
                    "no app {app}: to set a secret before its first deploy, pass --create \
                     (reef secrets set {app} {key} --create)"
                ),
            ));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(invalid(format!(
                "a secret holds at most {MAX_SECRET_BYTES} bytes"
            )));
        }
        if std::str::from_utf8(value).is_err() {
            return Err(invalid(
                "a secret must be UTF-8 text (it becomes an environment variable)",
            ));
        }
        let sealed = self
            .cluster_key()?
            .encrypt(&subjects::secret_context(app, key), value)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        self.store
            .secrets
            .put(&subjects::secret_key(app, key), &Ciphertext(sealed))
            .await?;
        tracing::info!(%app, %key, "secret set");
        Ok(())
    }

    /// Removes every secret of `app` (it is being destroyed); how many.
    pub(crate) async fn remove_secrets_of(&mut self, app: &str) -> Result<usize, ApiError> {
        let names = secret_names(&self.store, app).await?;
        for key in &names {
            self.store
                .secrets
                .purge(&subjects::secret_key(app, key))
                .await?;
        }
        if !names.is_empty() {
            tracing::info!(%app, count = names.len(), "secrets removed with their app");
        }
        Ok(names.len())
    }

    pub(crate) async fn remove_secret(&mut self, app: &str, key: &str) -> Result<(), ApiError> {
        Self::check_names(app, key)?;
        let name = subjects::secret_key(app, key);
        if !self.store.secrets.contains(&name).await? {
            return Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!("{app} has no secret {key}"),
            ));
        }
        self.store.secrets.purge(&name).await?;
        tracing::info!(%app, %key, "secret removed");
        Ok(())
    }

    /// Every secret `spec` uses, decrypted; an error names the first missing one.
    async fn open_secrets(
        &self,
        spec: &AppSpec,
    ) -> Result<BTreeMap<String, reef_secrets::Zeroizing<Vec<u8>>>, ApiError> {
        let mut out = BTreeMap::new();
        let names = spec.secrets();
        if names.is_empty() {
            return Ok(out);
        }
        let key = self.cluster_key()?;
        for name in names {
            let (stored, _) = self
                .store
                .secrets
                .get(&subjects::secret_key(&spec.name, name))
                .await?
                .ok_or_else(|| {
                    invalid(format!(
                        "secret {name} of {} is not set (reef secrets set {} {name})",
                        spec.name, spec.name
                    ))
                })?;
            let value = key
                .decrypt(&subjects::secret_context(&spec.name, name), &stored.0)
                .map_err(|e| {
                    ApiError::new(
                        ApiErrorKind::Internal,
                        format!("secret {name} of {}: {e}", spec.name),
                    )
                })?;
            out.insert(name.to_string(), value);
        }
        Ok(out)
    }

    /// Checks, before anything is written, that every secret `spec` uses is set.
    pub(crate) async fn ensure_secrets(&self, spec: &AppSpec) -> Result<(), ApiError> {
        self.open_secrets(spec).await.map(|_| ())
    }

    /// The value of `app`'s secret `key`, if it is set.
    pub(crate) async fn secret_value(
        &self,
        app: &str,
        key: &str,
    ) -> Result<Option<reef_secrets::Zeroizing<Vec<u8>>>, ApiError> {
        let Some((stored, _)) = self
            .store
            .secrets
            .get(&subjects::secret_key(app, key))
            .await?
        else {
            return Ok(None);
        };
        let value = self
            .cluster_key()?
            .decrypt(&subjects::secret_context(app, key), &stored.0)
            .map_err(|e| {
                ApiError::new(
                    ApiErrorKind::Internal,
                    format!("secret {key} of {app}: {e}"),
                )
            })?;
        Ok(Some(value))
    }

    /// The secrets `spec` uses, and the passwords of its managed services,
    /// each sealed to `node`'s key.
    pub(crate) async fn sealed_secrets(
        &self,
        spec: &AppSpec,
        node: NodeId,
    ) -> Result<BTreeMap<String, Vec<u8>>, ApiError> {
        let mut opened = self.open_secrets(spec).await?;
        for service in &spec.services {
            let name = service.kind.password_secret();
            if let Some(value) = self.secret_value(&spec.name, name).await? {
                opened.insert(name.to_string(), value);
            }
        }
        if opened.is_empty() {
            return Ok(BTreeMap::new());
        }
        let recipient = self
            .cluster
            .node(node)
            .map(|n| n.record.sealing_key)
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorKind::Unavailable,
                    format!("node {node} is not known here"),
                )
            })?;
        let mut sealed = BTreeMap::new();
        for (name, value) in opened {
            let bytes = reef_secrets::seal(
                &recipient,
                &subjects::secret_context(&spec.name, &name),
                &value,
            )
            .map_err(|e| {
                ApiError::new(
                    ApiErrorKind::Internal,
                    format!("sealing secret {name}: {e}"),
                )
            })?;
            sealed.insert(name, bytes);
        }
        Ok(sealed)
    }
}
