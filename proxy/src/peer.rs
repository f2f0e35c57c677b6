//! Node-to-node TLS: a node proxy forwards a request to another node's
//! peer listener ([`serve_peer`](crate::serve_peer)) over mutual TLS. Both
//! sides present a certificate the cluster's CA issued to a node (the
//! [`PeerTls::set_identity`] of each), and each checks the other's against
//! that CA alone; the forwarding side also checks that the certificate names
//! the node it meant to reach ([`Backend::tls_name`](crate::Backend)).
//!
//! Only the peer listener takes a request's `X-Forwarded-*` as the
//! forwarding node wrote them and serves it from local instances only; the
//! public listeners replace whatever a client sent.
//!
//! The identity can be replaced at any time (a renewed certificate): the
//! next handshake on either side uses the new one. Until one is set, every
//! handshake fails, so nothing is forwarded without a certificate.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::{ClientConfig, ResolvesClientCert};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::certs::{certified_key, CertError};

/// The protocol spoken between node proxies.
const ALPN: &[u8] = b"http/1.1";
/// The other protocol the peer listener takes: a raw TCP stream to a
/// service of this node (an app's Postgres), handed to the node's
/// [`TunnelHandler`].
pub const TUNNEL_ALPN: &[u8] = b"reef-tunnel/1";

/// The server side of a tunnel, as the peer listener accepted it.
pub type TunnelStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
/// The client side of a tunnel ([`PeerTls::connect_tunnel`]).
pub type TunnelClient = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// What a node does with a tunnel another node opened to it.
pub trait TunnelHandler: Send + Sync {
    fn serve(
        &self,
        stream: TunnelStream,
        client: std::net::SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

/// Why node-to-node TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    /// The CA PEM has no certificate, or a broken one.
    #[error("the cluster CA is not a valid PEM certificate: {0}")]
    Ca(String),
    /// rustls refused the settings built from the CA.
    #[error("node-to-node TLS settings: {0}")]
    Settings(String),
    /// The node's certificate or key is not usable.
    #[error("the node certificate: {0}")]
    Identity(#[from] CertError),
}

/// A node's side of node-to-node TLS: the CA that vouches for the other
/// nodes, and this node's own certificate. Cheap to clone (Arc inside).
#[derive(Clone)]
pub struct PeerTls {
    identity: Arc<Identity>,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    tunnel_connector: TlsConnector,
    tunnels: Arc<RwLock<Option<Arc<dyn TunnelHandler>>>>,
}

/// This node's certificate, swappable.
#[derive(Default)]
struct Identity {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl PeerTls {
    /// Node-to-node TLS trusting only the certificates `ca_pem` (the
    /// cluster CA) issued. No identity yet: see [`PeerTls::set_identity`].
    pub fn new(ca_pem: &[u8]) -> Result<Self, PeerTlsError> {
        let mut roots = RootCertStore::empty();
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| PeerTlsError::Ca(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| PeerTlsError::Ca(e.to_string()))?;
            found = true;
        }
        if !found {
            return Err(PeerTlsError::Ca("no CERTIFICATE block".into()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(default_provider());
        let identity = Arc::new(Identity::default());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| PeerTlsError::Settings(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| PeerTlsError::Settings(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::clone(&identity) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![ALPN.to_vec(), TUNNEL_ALPN.to_vec()];
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PeerTlsError::Settings(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::clone(&identity) as Arc<dyn ResolvesClientCert>);
        let mut tunnel = client.clone();
        tunnel.alpn_protocols = vec![TUNNEL_ALPN.to_vec()];
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Self {
            identity,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            tunnel_connector: TlsConnector::from(Arc::new(tunnel)),
            tunnels: Arc::default(),
        })
    }

    /// Presents `chain_pem` with `key_pem` from now on, on both sides. The
    /// certificate must name `name` (this node's peer name) and match the key.
    pub fn set_identity(
        &self,
        name: &str,
        chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<(), PeerTlsError> {
        let certified = certified_key(name, chain_pem.as_ref(), key_pem.as_ref())?;
        *self
            .identity
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(certified));
        Ok(())
    }

    /// Whether a certificate is set.
    pub fn has_identity(&self) -> bool {
        self.identity.get().is_some()
    }

    /// Hands the tunnels other nodes open to this one to `handler` (none
    /// until then: such a connection is closed).
    pub fn set_tunnels(&self, handler: Arc<dyn TunnelHandler>) {
        *self.tunnels.write().unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    pub(crate) fn tunnel_handler(&self) -> Option<Arc<dyn TunnelHandler>> {
        self.tunnels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Opens a tunnel to the peer listener at `addr`, which must present
    /// the certificate naming `name` (the node's peer name).
    pub async fn connect_tunnel(
        &self,
        addr: std::net::SocketAddr,
        name: &str,
    ) -> std::io::Result<TunnelClient> {
        let server = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let stream = self.tunnel_connector.connect(server, tcp).await?;
        if stream.get_ref().1.alpn_protocol() != Some(TUNNEL_ALPN) {
            return Err(std::io::Error::other("the node does not take tunnels"));
        }
        Ok(stream)
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    pub(crate) fn connector(&self) -> TlsConnector {
        self.connector.clone()
    }
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls")
            .field("identity", &self.has_identity())
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("set", &self.get().is_some())
            .finish()
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.get()
    }

    fn has_certs(&self) -> bool {
        self.get().is_some()
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
