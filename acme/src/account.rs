//! The ACME account: created once, its credentials stored by the caller (in
//! reef, in the cluster) and loaded again, so that every certificate is
//! ordered by the same account instead of one account per certificate.

use std::fmt;
use std::future::Future;

use instant_acme::{AccountCredentials, NewAccount};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::certificate::IssuedCertificate;
use crate::challenge::ChallengeSink;
use crate::config::AcmeConfig;
use crate::error::AcmeError;
use crate::http::HttpsClient;

/// An account at one ACME CA, ready to order certificates. Cheap to clone.
#[derive(Clone)]
pub struct Account {
    pub(crate) acme: instant_acme::Account,
    pub(crate) config: AcmeConfig,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.acme.id())
            .field("directory_url", &self.config.directory_url)
            .finish_non_exhaustive()
    }
}

/// The one field of the credentials this crate looks at.
#[derive(Deserialize)]
struct StoredDirectory {
    directory: Option<String>,
}

impl Account {
    /// Registers a new account at `config.directory_url`, agreeing to the
    /// CA's terms of service. Returns the account and its credentials as
    /// JSON: they hold the account's private key, so store them as a secret,
    /// and pass them to [`Account::load`] from then on.
    pub async fn create(config: &AcmeConfig) -> Result<(Self, Zeroizing<String>), AcmeError> {
        config.check()?;
        let http = HttpsClient::new(config.ca_root_pem.as_deref(), config.timeout)?;
        let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let creating = instant_acme::Account::builder_with_http(Box::new(http)).create(
            &new_account,
            config.directory_url.clone(),
            None,
        );
        let (acme, credentials) = bounded(config, "creating an account", creating).await?;
        let json = serde_json::to_string(&credentials).map_err(AcmeError::EncodeCredentials)?;
        tracing::info!(account = acme.id(), directory = %config.directory_url, "ACME account created");
        Ok((
            Self {
                acme,
                config: config.clone(),
            },
            Zeroizing::new(json),
        ))
    }

    /// Loads an account from the credentials [`Account::create`] returned.
    /// Fails if they belong to another directory than `config.directory_url`.
    pub async fn load(config: &AcmeConfig, credentials_json: &str) -> Result<Self, AcmeError> {
        config.check()?;
        let stored: StoredDirectory =
            serde_json::from_str(credentials_json).map_err(AcmeError::Credentials)?;
        if let Some(stored) = stored.directory {
            if stored != config.directory_url {
                return Err(AcmeError::WrongDirectory {
                    stored,
                    configured: config.directory_url.clone(),
                });
            }
        }
        let credentials: AccountCredentials =
            serde_json::from_str(credentials_json).map_err(AcmeError::Credentials)?;
        let http = HttpsClient::new(config.ca_root_pem.as_deref(), config.timeout)?;
        let loading =
            instant_acme::Account::builder_with_http(Box::new(http)).from_credentials(credentials);
        let acme = bounded(config, "loading the account", loading).await?;
        Ok(Self {
            acme,
            config: config.clone(),
        })
    }

    /// The account's URL at the CA, which identifies it.
    pub fn id(&self) -> &str {
        self.acme.id()
    }

    /// The settings the account was created or loaded with.
    pub fn config(&self) -> &AcmeConfig {
        &self.config
    }

    /// Orders a certificate for `domains` over HTTP-01, publishing the
    /// challenge answers through `sink` and retracting them when done (also
    /// on failure). Bounded by [`AcmeConfig::timeout`]; see the `issue` module.
    pub async fn issue<S: ChallengeSink>(
        &self,
        domains: &[String],
        sink: &S,
    ) -> Result<IssuedCertificate, AcmeError> {
        crate::issue::issue(self, domains, sink).await
    }
}

/// Runs one account request within the configured timeout.
async fn bounded<T>(
    config: &AcmeConfig,
    action: &str,
    request: impl Future<Output = Result<T, instant_acme::Error>>,
) -> Result<T, AcmeError> {
    match tokio::time::timeout(config.timeout, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(AcmeError::Server {
            directory_url: config.directory_url.clone(),
            action: action.to_string(),
            source: Box::new(source),
        }),
        Err(_) => Err(AcmeError::Timeout {
            action: format!("{action} at {}", config.directory_url),
            timeout: config.timeout,
        }),
    }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
