//! TLS for the HTTPS listener: rustls with the ring provider, certificates
//! chosen per connection by [`Certificates`], and ALPN offering HTTP/2 and
//! HTTP/1.1 so each client gets the newest it speaks.

use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::certs::Certificates;

/// ALPN protocol ids, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor every HTTPS connection is handshaken with.
pub(crate) fn acceptor(certs: Certificates) -> Result<TlsAcceptor, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certs));
    config.alpn_protocols = ALPN.iter().map(|id| id.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
