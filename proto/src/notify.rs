//! Notifications: webhooks that receive the cluster's events
//! ([`crate::events`]) as JSON (`reef notify add NAME URL --events ...`),
//! kept in the notify bucket with what became of their deliveries.

use crate::envelope::{Message, MessageKind};
use crate::events::EventKind;
use serde::{Deserialize, Serialize};

/// The longest URL a webhook may have.
pub const MAX_URL: usize = 2048;
/// How many webhooks a cluster may have.
pub const MAX_WEBHOOKS: usize = 100;

/// A webhook and its deliveries so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// 1-63 of `[a-z0-9-]`, unique in the cluster.
    pub name: String,
    /// Where each event is POSTed (`http://` or `https://`).
    pub url: String,
    /// The kinds it receives; empty: every kind.
    pub kinds: Vec<EventKind>,
    /// Who added it.
    pub owner: String,
    pub created_at_ms: u64,
    /// Events it took (a 2xx answer).
    pub delivered: u64,
    /// Events it did not take after every try.
    pub failed: u64,
    /// Why the latest failure failed, and when.
    pub last_error: Option<String>,
    pub last_failure_ms: Option<u64>,
}

impl Message for Webhook {
    const KIND: MessageKind = MessageKind::Webhook;
}

impl Webhook {
    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// Why a webhook named `name` to `url` cannot be added, naming the field.
    pub fn check(name: &str, url: &str) -> Result<(), String> {
        crate::manifest::validate_app_name(name).map_err(|_| {
            format!("name: {name:?} is not valid: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'")
        })?;
        check_url(url).map_err(|e| format!("url: {e}"))
    }
}

/// Why `url` is no webhook address: an `http://` or `https://` URL with a
/// host, at most [`MAX_URL`] bytes, without spaces or control characters.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(format!("longer than {MAX_URL} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} holds a space or a control character"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} names no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use proptest::prelude::*;

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        for ok in [
            "https://hooks.example.com/reef",
            "http://127.0.0.1:8080/x?y=1",
            "https://user:pw@example.com",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "https://",
            "http:///path",
            "https://:80/",
            "https://exa mple.com",
            "example.com",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://a.com/{}", "x".repeat(MAX_URL))).is_err());
        assert!(Webhook::check("Bad_Name", "https://a.com")
            .unwrap_err()
            .starts_with("name: "));
        assert!(Webhook::check("ops", "gopher://a")
            .unwrap_err()
            .starts_with("url: "));
    }

    #[test]
    fn a_webhook_with_no_kinds_wants_every_kind() {
        let mut hook = Webhook {
            name: "ops".into(),
            url: "https://a.com".into(),
            kinds: Vec::new(),
            owner: "admin".into(),
            created_at_ms: 0,
            delivered: 0,
            failed: 0,
            last_error: None,
            last_failure_ms: None,
        };
        assert!(EventKind::ALL.iter().all(|k| hook.wants(*k)));
        hook.kinds = vec![EventKind::DeployFailed];
        assert!(hook.wants(EventKind::DeployFailed));
        assert!(!hook.wants(EventKind::NodeUp));
        assert_eq!(decode::<Webhook>(&encode(&hook).unwrap()).unwrap(), hook);
    }

    proptest! {
        #[test]
        fn any_url_is_checked_without_a_panic(url in ".{0,80}") {
            let _ = check_url(&url);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Webhook>(&bytes);
        }
    }
}
