//! One-time sign-in links and the session key, in buckets only
//! coordinators may read: a link is stored under its token's hash with the
//! user, role and expiry, and redeemed by deleting it with a
//! compare-and-set, so of two visits one signs in; the session key is made
//! once by the first coordinator and read by the others.

use super::session::{self, Session, SessionKey};
use crate::error::CoordinatorError;
use async_nats::jetstream::{self, kv};
use reef_proto::roles::Role;
use reef_proto::{now_ms, subjects, Report};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest a link may be valid; the bucket forgets entries after it.
pub(crate) const MAX_LINK_TTL: Duration = Duration::from_secs(600);
const KEY_NAME: &str = "session";

/// What a link's entry holds (JSON; never the token itself).
#[derive(Serialize, Deserialize)]
struct Link {
    user: String,
    role: String,
    expires_at_ms: u64,
    /// A nonce for a credential to sign, not a sign-in link.
    #[serde(default)]
    nonce: bool,
}

/// How long a credential has to sign a nonce.
const NONCE_TTL_MS: u64 = 60_000;

/// Why a link did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkRefused {
    #[error("this sign-in link is not one reef gave out, or it is older than ten minutes")]
    Unknown,
    #[error("this sign-in link was used already: links work once")]
    Used,
    #[error("this sign-in link of {user} expired: ask `reef ui` for a new one")]
    Expired { user: String },
    #[error("the sign-in link could not be checked: {0}")]
    Unavailable(String),
}

impl LinkRefused {
    /// The user the link was for, where it names one.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            LinkRefused::Expired { user } => Some(user),
            _ => None,
        }
    }
}

/// Issues and redeems links, and holds the session key; cheap to clone.
#[derive(Clone)]
pub(crate) struct Links {
    links: kv::Store,
    pub(crate) key: SessionKey,
    ttl: Duration,
}

impl Links {
    /// Opens (or makes) both buckets and reads (or makes) the session key.
    pub(crate) async fn open(
        js: &jetstream::Context,
        replicas: usize,
        ttl: Duration,
    ) -> Result<Self, CoordinatorError> {
        let config = |bucket: &str| kv::Config {
            bucket: bucket.to_string(),
            history: 1,
            num_replicas: replicas,
            ..Default::default()
        };
        let links = bucket(
            js,
            kv::Config {
                max_age: MAX_LINK_TTL,
                ..config(subjects::UI_LINKS_BUCKET)
            },
        )
        .await?;
        let keys = bucket(js, config(subjects::UI_KEYS_BUCKET)).await?;
        let key = session_key(&keys).await?;
        Ok(Self {
            links,
            key,
            ttl: ttl.min(MAX_LINK_TTL),
        })
    }

    /// A new link's token for `user` with `role`, and when it expires.
    pub(crate) async fn issue(&self, user: &str, role: Role) -> Result<(String, u64), String> {
        let token = session::hex(&random()?);
        let expires_at_ms = now_ms() + self.ttl.as_millis() as u64;
        let link = Link {
            user: user.to_string(),
            role: role.as_str().to_string(),
            expires_at_ms,
            nonce: false,
        };
        self.store(&token, &link).await?;
        Ok((token, expires_at_ms))
    }

    /// A new single-use nonce for a credential to sign within a minute.
    pub(crate) async fn issue_nonce(&self) -> Result<String, String> {
        let nonce = session::hex(&random()?);
        let link = Link {
            user: String::new(),
            role: String::new(),
            expires_at_ms: now_ms() + NONCE_TTL_MS,
            nonce: true,
        };
        self.store(&nonce, &link).await?;
        Ok(nonce)
    }

    /// Uses up `nonce`: Ok once, within its minute.
    pub(crate) async fn spend_nonce(&self, nonce: &str) -> Result<(), LinkRefused> {
        let link = self.take(nonce).await?;
        if !link.nonce {
            return Err(LinkRefused::Unknown);
        }
        if link.expires_at_ms <= now_ms() {
            return Err(LinkRefused::Expired {
                user: "anonymous".into(),
            });
        }
        Ok(())
    }

    async fn store(&self, token: &str, link: &Link) -> Result<(), String> {
        let value = serde_json::to_vec(link).map_err(|e| e.to_string())?;
        self.links
            .create(session::token_key(token), value.into())
            .await
            .map_err(|e| Report(&e).to_string())?;
        Ok(())
    }

    /// The session a link's token starts, once: the entry is deleted on
    /// the revision it was read at, so a second visit finds it gone.
    pub(crate) async fn redeem(&self, token: &str) -> Result<Session, LinkRefused> {
        let link = self.take(token).await?;
        if link.nonce {
            return Err(LinkRefused::Unknown);
        }
        if link.expires_at_ms <= now_ms() {
            return Err(LinkRefused::Expired { user: link.user });
        }
        let role = Role::parse(&link.role).map_err(|_| LinkRefused::Unknown)?;
        Ok(Session {
            user: link.user,
            role,
            expires_at_ms: now_ms() + session::SESSION_MS,
        })
    }

    /// The entry of `token`, deleted on the revision it was read at, so
    /// only one caller ever gets it.
    async fn take(&self, token: &str) -> Result<Link, LinkRefused> {
        if !session::is_link_token(token) {
            return Err(LinkRefused::Unknown);
        }
        let key = session::token_key(token);
        let unavailable =
            |e: &dyn std::error::Error| LinkRefused::Unavailable(Report(e).to_string());
        let entry = match self.links.entry(&key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Err(LinkRefused::Unknown),
            Err(e) => return Err(unavailable(&e)),
        };
        if entry.operation != kv::Operation::Put {
            return Err(LinkRefused::Used);
        }
        let link: Link = serde_json::from_slice(&entry.value).map_err(|_| LinkRefused::Unknown)?;
        if let Err(e) = self
            .links
            .delete_expect_revision(&key, Some(entry.revision))
            .await
        {
            tracing::debug!(error = %Report(&e), "a sign-in link was redeemed twice at once");
            return Err(LinkRefused::Used);
        }
        Ok(link)
    }
}

async fn bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, CoordinatorError> {
    let name = config.bucket.clone();
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another coordinator made it between our two calls.
        Err(_) => js
            .get_key_value(&name)
            .await
            .map_err(|e| CoordinatorError::setup(format!("bucket {name}"), e)),
    }
}

/// The shared session key: the first coordinator's random one.
async fn session_key(keys: &kv::Store) -> Result<SessionKey, CoordinatorError> {
    let fail = |e: &dyn std::fmt::Display| {
        CoordinatorError::setup(
            "the dashboard's session key",
            std::io::Error::other(e.to_string()),
        )
    };
    for _ in 0..3 {
        if let Some(bytes) = keys.get(KEY_NAME).await.map_err(|e| fail(&e))? {
            let key: [u8; 32] = bytes[..]
                .try_into()
                .map_err(|_| fail(&"the stored key is not 32 bytes"))?;
            return Ok(SessionKey(key));
        }
        let fresh = random().map_err(|e| fail(&e))?;
        if keys.create(KEY_NAME, fresh.to_vec().into()).await.is_ok() {
            return Ok(SessionKey(fresh));
        }
    }
    Err(fail(&"the key could neither be read nor made"))
}

fn random() -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes)
}
