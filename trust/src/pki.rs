//! The cluster's certificate authority and the certificates it issues:
//! nats-server's (clients and routes), and each dedicated node's for the
//! node-to-node proxy links (issued for a public key the node made, whose
//! private half never leaves it). ECDSA P-256 throughout.

use crate::TrustError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
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

/// How long a node's certificate for the peer links is valid; the agent
/// asks for a new one when a third of that is left.
pub const PEER_DAYS: i64 = 30;

/// Bytes of an uncompressed P-256 public key (`04 || X || Y`).
const P256_POINT: usize = 65;

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

/// The CA as issuer, and the fields of a certificate it signs for `names`:
/// good for both sides of TLS, valid from an hour ago for `days`.
fn leaf(
    cluster: &str,
    ca_key_pem: &str,
    names: Vec<String>,
    common_name: String,
    days: i64,
) -> Result<(Issuer<'static, KeyPair>, CertificateParams), TrustError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(rcgen_error("CA key"))?;
    let issuer = Issuer::new(ca_params(cluster)?, ca_key);
    let mut params = CertificateParams::new(names).map_err(rcgen_error("names"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    Ok((issuer, params))
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
    let (issuer, params) = leaf(
        cluster,
        ca_key_pem,
        hosts.to_vec(),
        format!("reef nats-server {name}"),
        SERVER_DAYS,
    )?;
    let key = KeyPair::generate().map_err(rcgen_error("server key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(rcgen_error("server certificate"))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// A node's own key for the peer links, made on the node.
pub struct PeerKey {
    key: KeyPair,
}

impl PeerKey {
    /// A new P-256 key.
    pub fn generate() -> Result<Self, TrustError> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error("peer key"))?;
        Ok(Self { key })
    }

    /// The key from its PEM (PKCS#8), which must be a P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, TrustError> {
        let key = KeyPair::from_pem(pem).map_err(rcgen_error("peer key"))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(TrustError::Certificate(
                "the peer key is not a P-256 ECDSA key".into(),
            ));
        }
        Ok(Self { key })
    }

    /// The private key, PEM (PKCS#8).
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// The public key as the coordinator is sent it: the uncompressed point.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key_raw().to_vec()
    }
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(..)")
    }
}

/// A public key a node sent, checked to be an uncompressed P-256 point.
struct NodePublicKey(Vec<u8>);

impl PublicKeyData for NodePublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// A node's certificate for the peer links, and when it stops being valid.
#[derive(Debug)]
pub struct PeerCert {
    pub cert_pem: String,
    pub not_after_ms: u64,
}

/// Issues the certificate of node `name` (its peer name, which the other
/// nodes check) for `public_key`, an uncompressed P-256 point the node
/// made; good for both sides of the node-to-node mutual TLS.
pub fn peer_cert(
    cluster: &str,
    ca_key_pem: &str,
    name: &str,
    public_key: &[u8],
) -> Result<PeerCert, TrustError> {
    if public_key.len() != P256_POINT || public_key[0] != 0x04 {
        return Err(TrustError::Certificate(format!(
            "a node's peer key is an uncompressed P-256 point of {P256_POINT} bytes, not {} bytes",
            public_key.len()
        )));
    }
    // A point off the curve is the sender's loss only: no handshake with
    // its certificate can succeed.
    let (issuer, params) = leaf(
        cluster,
        ca_key_pem,
        vec![name.to_string()],
        format!("reef node {name}"),
        PEER_DAYS,
    )?;
    let not_after = params.not_after;
    let cert = params
        .signed_by(&NodePublicKey(public_key.to_vec()), &issuer)
        .map_err(rcgen_error("node certificate"))?;
    Ok(PeerCert {
        cert_pem: cert.pem(),
        not_after_ms: u64::try_from(not_after.unix_timestamp() * 1000).unwrap_or(0),
    })
}
