//! The cluster's certificate authority and the certificates it issues:
//! nats-server's (clients and routes), and later each node's for the
//! node-to-node proxy links. ECDSA P-256 throughout.

use crate::TrustError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid; `reef cluster nats-config`
/// issues a new one whenever it is run.
const SERVER_DAYS: i64 = 825;

fn rcgen_error(what: &'static str) -> impl Fn(rcgen::Error) -> TrustError {
    move |e| TrustError::Certificate(format!("{what}: {e}"))
}

/// A certificate and its private key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// The CA's own fields. Its subject and key are all a certificate it
/// signs refers to, so the issuer is rebuilt from the cluster's name and
/// the CA key rather than by parsing the CA certificate.
fn ca_params(cluster: &str) -> Result<CertificateParams, TrustError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error("CA"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("reef cluster {cluster} CA"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Makes a new CA for the cluster named `cluster`.
pub fn new_ca(cluster: &str) -> Result<Issued, TrustError> {
    let mut params = ca_params(cluster)?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let key = KeyPair::generate().map_err(rcgen_error("CA key"))?;
    let cert = params.self_signed(&key).map_err(rcgen_error("CA"))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// Issues a certificate for a NATS server reachable at `hosts` (names or
/// IP addresses), good for both sides of TLS: clients connect to it and it
/// connects to the other servers' routes with it.
pub fn server_cert(
    cluster: &str,
    ca_key_pem: &str,
    name: &str,
    hosts: &[String],
) -> Result<Issued, TrustError> {
    if hosts.is_empty() {
        return Err(TrustError::Certificate(
            "a server certificate needs at least one host name or address".into(),
        ));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(rcgen_error("CA key"))?;
    let issuer = Issuer::new(ca_params(cluster)?, ca_key);
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(rcgen_error("host names"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("reef nats-server {name}"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(SERVER_DAYS);
    let key = KeyPair::generate().map_err(rcgen_error("server key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(rcgen_error("server certificate"))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}
