//! The HTTPS client that carries ACME requests: rustls with the ring
//! provider and TLS 1.3 (which ACME CAs serve), trusting either the public
//! web roots or the configured private root, with every request (connect,
//! TLS, answer and body) bounded by the configured timeout and every body
//! bounded in size.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::error::AcmeError;

/// The largest answer body read from the CA. Directories, orders and
/// certificate chains are a few KiB; this only stops a runaway server.
const MAX_BODY: usize = 1024 * 1024;

/// How long an idle connection to the CA is kept for the next request.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// An HTTP/1.1 connector over rustls (ring) trusting `roots`, which gives
/// up connecting after `timeout`; HTTPS only when `https_only`, else plain
/// HTTP too. The ACME client and the coordinator's webhooks share it.
pub fn web_connector(
    roots: RootCertStore,
    timeout: Duration,
    https_only: bool,
) -> Result<HttpsConnector<HttpConnector>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup failed: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if https_only {
        builder.https_only()
    } else {
        builder.https_or_http()
    };
    Ok(builder.enable_http1().wrap_connector(tcp))
}

/// An HTTPS-only client for one CA. Cheap to clone.
#[derive(Clone)]
pub(crate) struct HttpsClient {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    timeout: Duration,
}

/// A request that got no complete answer in time.
#[derive(Debug, thiserror::Error)]
#[error("no complete answer within {0:?}")]
pub(crate) struct RequestTimedOut(Duration);

impl HttpsClient {
    /// A client trusting the PEM certificates in `ca_root_pem`, or the public
    /// web roots when it is `None`.
    pub(crate) fn new(ca_root_pem: Option<&str>, timeout: Duration) -> Result<Self, AcmeError> {
        let roots = match ca_root_pem {
            Some(pem) => private_roots(pem)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let connector = web_connector(roots, timeout, true).map_err(AcmeError::Config)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// Sends `request` and reads the whole answer, within the timeout.
    pub(crate) async fn send(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Result<Response<Bytes>, instant_acme::Error> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| instant_acme::Error::Other(Box::new(err)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(instant_acme::Error::Other)?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(instant_acme::Error::Other(Box::new(RequestTimedOut(
                self.timeout,
            )))),
        }
    }

    /// `GET url`: the status and body.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) async fn get(&self, url: &str) -> Result<(StatusCode, Bytes), instant_acme::Error> {
        let request = Request::get(url).body(BodyWrapper::default())?;
        let response = self.send(request).await?;
        Ok((response.status(), response.into_body()))
    }
}

impl instant_acme::HttpClient for HttpsClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.clone();
        Box::pin(async move {
            let response = client.send(req).await?;
            Ok(BytesResponse::from(response.map(Full::new)))
        })
    }
}

/// A root store holding every certificate in `pem`.
fn private_roots(pem: &str) -> Result<RootCertStore, AcmeError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|err| AcmeError::CaRoot(format!("bad PEM: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| AcmeError::CaRoot(format!("rustls refused a certificate: {err}")))?;
    }
    if roots.is_empty() {
        return Err(AcmeError::CaRoot("no CERTIFICATE block".to_string()));
    }
    Ok(roots)
}
