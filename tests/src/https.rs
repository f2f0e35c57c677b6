//! A minimal HTTPS client for tests: one HTTP/1.1 request per TLS connection
//! to 127.0.0.1, asking for a name by SNI and trusting only the given roots,
//! so a test sees exactly which certificate a node serves.

use crate::http::{parse, Response};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::io::{Error, ErrorKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A client configuration trusting only the certificates in `roots_pem`.
pub fn client_config(roots_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(cert.expect("a PEM root")).expect("a usable root");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// `GET path` over TLS on 127.0.0.1:port, for `name` (SNI and Host), within
/// 10 s. Fails if the handshake does (no certificate for the name, or one the
/// roots do not trust).
pub async fn get(port: u16, name: &str, path: &str, roots_pem: &str) -> std::io::Result<Response> {
    get_at(([127, 0, 0, 1], port).into(), name, path, roots_pem).await
}

/// `GET path` over TLS at `addr` (another host's proxy), for `name`, as
/// [`get`] does.
pub async fn get_at(
    addr: std::net::SocketAddr,
    name: &str,
    path: &str,
    roots_pem: &str,
) -> std::io::Result<Response> {
    let config = client_config(roots_pem);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
        tls.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw).await {
            Ok(_) => {}
            // A server that closes without close_notify after a whole response.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok::<_, Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| Error::new(ErrorKind::TimedOut, "no response within 10s"))??;
    parse(&raw).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidData,
            format!("not HTTP: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}
