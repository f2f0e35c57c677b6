//! `reef certs`: add a certificate from PEM files, list the cluster's
//! certificates, remove one. `add` checks the files here first (the key
//! belongs to the certificate, the certificate covers every domain and is
//! valid now), then sends them once to the coordinator, which encrypts and
//! seals the key; the NATS connection should be TLS outside a trusted network.

use crate::client::{self, call, connect};
use crate::views::print_table;
use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::certs::CertStatus;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Add (or replace) a certificate for DOMAIN... from PEM files; every
    /// node serves it over HTTPS. The first domain names it.
    Add {
        /// The names it is served for (exact, or *.example.com).
        #[arg(required = true)]
        domains: Vec<String>,
        /// The certificate chain, PEM, leaf first.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// List the certificates: domains, source, expiry, nodes, and the last
    /// error obtaining one.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove the certificate whose first domain is DOMAIN.
    Rm { domain: String },
}

pub async fn certs(nats: &client::Nats, command: CertsCommand) -> Result<()> {
    let request = match command {
        CertsCommand::Add { domains, cert, key } => add_request(domains, &cert, &key)?,
        CertsCommand::List { json } => {
            let client = connect(nats).await?;
            let ApiResponse::Certificates(certs) =
                call(&client, ApiRequest::ListCertificates).await?
            else {
                bail!("unexpected reply from the coordinator");
            };
            print_list(&certs, json);
            return Ok(());
        }
        CertsCommand::Rm { domain } => ApiRequest::RemoveCertificate(normalize(&domain)),
    };
    let client = connect(nats).await?;
    match call(&client, request).await? {
        ApiResponse::Certificates(added) => {
            for cert in added {
                println!(
                    "added {} (expires {}, sealed for {} nodes)",
                    cert.domains.join(", "),
                    cert.not_after_ms.map_or_else(|| "-".into(), expiry),
                    cert.nodes
                );
            }
        }
        ApiResponse::Done => {}
        _ => bail!("unexpected reply from the coordinator"),
    }
    Ok(())
}

/// Names are compared in lower case, without a trailing dot.
fn normalize(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?
        .len();
    let max = reef_coordinator::certs::MAX_PEM_BYTES as u64;
    if len > max {
        bail!(
            "{} is {len} bytes; a {what} is at most {max}",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

fn add_request(domains: Vec<String>, cert: &Path, key: &Path) -> Result<ApiRequest> {
    let domains: Vec<String> = domains.iter().map(|d| normalize(d)).collect();
    let chain = read_pem(cert, "certificate chain")?;
    let chain_pem =
        String::from_utf8(chain).with_context(|| format!("{} is not PEM text", cert.display()))?;
    let key_pem = reef_secrets::Zeroizing::new(read_pem(key, "private key")?);
    reef_coordinator::certs::check_file_certificate(
        &domains,
        &chain_pem,
        &key_pem,
        std::time::SystemTime::now(),
    )
    .context("the certificate cannot be added")?;
    Ok(ApiRequest::AddCertificate {
        domains,
        chain_pem,
        key_pem: key_pem.to_vec(),
    })
}

fn print_list(certs: &[CertStatus], json: bool) {
    if json {
        let list: Vec<Value> = certs.iter().map(cert_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into())
        );
        return;
    }
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            vec![
                c.domains.join(","),
                c.source.name().to_string(),
                c.not_after_ms.map_or_else(|| "-".into(), expiry),
                c.nodes.to_string(),
                c.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["DOMAINS", "SOURCE", "EXPIRES", "NODES", "ERROR"], &rows);
}

pub fn cert_json(cert: &CertStatus) -> Value {
    json!({
        "domains": cert.domains,
        "source": cert.source.name(),
        "not_after_ms": cert.not_after_ms,
        "nodes": cert.nodes,
        "last_error": cert.last_error,
    })
}

/// `YYYY-MM-DD (in N days)`, in UTC.
fn expiry(not_after_ms: u64) -> String {
    let now = reef_proto::now_ms();
    let days_left = (not_after_ms as i128 - now as i128) / 86_400_000;
    let when = if days_left >= 0 {
        format!("in {days_left} days")
    } else {
        format!("{} days ago", -days_left)
    };
    format!("{} ({when})", date(not_after_ms))
}

/// The UTC calendar date of a time in milliseconds since the epoch.
fn date(ms: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = (ms / 86_400_000) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(951_782_400_000), "2000-02-29");
        assert_eq!(super::date(1_767_225_599_000), "2025-12-31");
        assert_eq!(super::date(4_107_542_400_000), "2100-03-01");
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(super::normalize("App.Example.COM."), "app.example.com");
    }
}
