//! The standard NATS `.creds` file: a user JWT and the user's nkey seed,
//! each between armour lines, as `nsc` writes it and every NATS client
//! (the `nats` CLI, nats.rs, nats.go) reads it.

use crate::TrustError;
use zeroize::Zeroizing;

/// The longest credentials file accepted; real ones are a few KiB.
pub const MAX_LEN: usize = 64 * 1024;

/// Renders a credentials file.
pub fn render(jwt: &str, seed: &str) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    ))
}

/// A credentials file read back: the user JWT (not yet verified) and seed.
pub struct Creds {
    pub jwt: String,
    pub seed: Zeroizing<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("jwt", &self.jwt)
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// Reads a credentials file's text.
pub fn parse(text: &str) -> Result<Creds, TrustError> {
    if text.len() > MAX_LEN {
        return Err(TrustError::Creds("longer than 64 KiB".into()));
    }
    let jwt = armoured(text, "JWT")
        .ok_or_else(|| TrustError::Creds("no \"BEGIN NATS USER JWT\" section".into()))?;
    let seed = armoured(text, "NKEY SEED")
        .ok_or_else(|| TrustError::Creds("no \"BEGIN USER NKEY SEED\" section".into()))?;
    if !seed.starts_with("SU") {
        return Err(TrustError::Creds("the seed is not a user nkey seed".into()));
    }
    Ok(Creds {
        jwt: jwt.to_string(),
        seed: Zeroizing::new(seed.to_string()),
    })
}

/// The first non-empty line after a `-----BEGIN ...<what>...-----` line,
/// if an END line follows it.
fn armoured<'a>(text: &'a str, what: &str) -> Option<&'a str> {
    let mut lines = text.lines().map(str::trim);
    lines.find(|l| l.starts_with("-----BEGIN") && l.contains(what) && l.ends_with("---"))?;
    let value = lines.find(|l| !l.is_empty())?;
    let end = lines.next()?;
    (end.starts_with("---") && end.contains("END") && !value.starts_with('-')).then_some(value)
}
