//! The TLS flags of `reef coordinator` (ACME) and `reef agent` (HTTPS).

use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::path::PathBuf;

/// How the leader orders certificates for the apps' domains.
#[derive(Args, Clone, Debug)]
pub struct AcmeArgs {
    /// Order and renew certificates for the apps' domains over ACME HTTP-01
    /// (`on`), or not (`off`; certificates added with `reef certs add` are
    /// served either way). Needs the cluster key (--secrets-key).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub acme: String,
    /// The ACME CA's directory URL (Let's Encrypt staging:
    /// https://acme-staging-v02.api.letsencrypt.org/directory).
    #[arg(long, default_value = reef_acme::LETS_ENCRYPT_PRODUCTION)]
    pub acme_directory: String,
    /// A contact address for the ACME account (the CA's notices about it).
    #[arg(long, value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM file of the root that signs the ACME server's HTTPS certificate,
    /// trusted instead of the public roots (for a private ACME server).
    #[arg(long, value_name = "FILE")]
    pub acme_ca_root: Option<PathBuf>,
}

impl AcmeArgs {
    /// The ACME settings, or None when ACME is off.
    pub fn config(&self) -> Result<Option<reef_acme::AcmeConfig>> {
        if self.acme == "off" {
            return Ok(None);
        }
        if !self.acme_directory.starts_with("https://") {
            bail!(
                "--acme-directory {:?}: the ACME directory must be an https:// URL",
                self.acme_directory
            );
        }
        let mut config = reef_acme::AcmeConfig::new(&self.acme_directory);
        if let Some(email) = &self.acme_email {
            let valid = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
                && !email.contains(char::is_whitespace);
            if !valid {
                bail!("--acme-email {email:?}: expected an address such as ops@example.com");
            }
            config.contact = vec![format!("mailto:{email}")];
        }
        if let Some(path) = &self.acme_ca_root {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--acme-ca-root: cannot read {}", path.display()))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                bail!(
                    "--acme-ca-root {}: no PEM certificate in the file",
                    path.display()
                );
            }
            config.ca_root_pem = Some(pem);
        }
        Ok(Some(config))
    }
}

/// Where the node proxy serves HTTPS.
#[derive(Args, Clone, Debug)]
pub struct HttpsArgs {
    /// Where the node proxy listens for HTTPS (serving the cluster's
    /// certificates by SNI), or `off`.
    #[arg(long, default_value = "0.0.0.0:443", value_parser = parse_https)]
    pub https: crate::daemons::Listen,
}

fn parse_https(input: &str) -> Result<crate::daemons::Listen, String> {
    if input == "off" {
        return Ok(crate::daemons::Listen(None));
    }
    input
        .parse()
        .map(|addr| crate::daemons::Listen(Some(addr)))
        .map_err(|_| {
            format!("invalid address {input:?}: expected HOST:PORT (e.g. 0.0.0.0:443) or off")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(acme: &str, email: Option<&str>) -> AcmeArgs {
        AcmeArgs {
            acme: acme.into(),
            acme_directory: reef_acme::LETS_ENCRYPT_STAGING.into(),
            acme_email: email.map(str::to_string),
            acme_ca_root: None,
        }
    }

    #[test]
    fn acme_flags() {
        assert!(args("off", None).config().expect("off").is_none());
        let config = args("on", Some("ops@example.com"))
            .config()
            .expect("valid")
            .expect("on");
        assert_eq!(config.contact, vec!["mailto:ops@example.com"]);
        assert!(args("on", Some("not an address")).config().is_err());
        let mut plain = args("on", None);
        plain.acme_directory = "http://ca.example/dir".into();
        assert!(plain.config().is_err());
    }

    #[test]
    fn https_addresses() {
        assert!(parse_https("off").expect("off").0.is_none());
        assert_eq!(
            parse_https("127.0.0.1:8443").expect("addr").0,
            Some("127.0.0.1:8443".parse().expect("addr"))
        );
        assert!(parse_https("443").is_err());
    }
}
