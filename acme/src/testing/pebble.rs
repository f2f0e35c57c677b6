//! [`Pebble`]: a real pebble ACME server for tests, with pebble-challtestsrv
//! as its DNS server (every name resolves to 127.0.0.1, or to
//! [`PebbleOptions::resolve_to`], so pebble's HTTP-01 validation connects
//! to `127.0.0.1:http_port`). Both run on free ports from
//! a temp dir holding pebble's config and the TLS certificate of its HTTPS
//! listener, made here by rcgen. Validation really happens: pebble's random
//! validation delays are off (`PEBBLE_VA_NOSLEEP`), its always-valid switch is not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::process::{free_tcp_port, free_udp_and_tcp_port, poll_until, ChildGuard};
use crate::config::AcmeConfig;
use crate::error::AcmeError;
use crate::http::HttpsClient;

/// How a [`Pebble`] is started.
#[derive(Clone, Debug)]
pub struct PebbleOptions {
    /// The port pebble connects to on 127.0.0.1 for HTTP-01 validation: where
    /// a [`super::ChallengeResponder`] or a node proxy listens.
    pub http_port: u16,
    /// How often (percent) pebble reuses a valid authorization for a new
    /// order of the same account (`PEBBLE_AUTHZREUSE`). Default 0: every
    /// order is validated afresh.
    pub authz_reuse_percent: u8,
    /// How often (percent) pebble rejects a good nonce to test retries
    /// (`PEBBLE_WFE_NONCEREJECT`). Default 0, so tests are deterministic.
    pub nonce_reject_percent: u8,
    /// How long to wait for both servers to come up.
    pub start_timeout: Duration,
    /// Where pebble's ACME directory listens (127.0.0.1 by default; a
    /// bridge's address for clients in other network namespaces).
    pub listen: std::net::IpAddr,
    /// What every name resolves to, and so where HTTP-01 validation
    /// connects (127.0.0.1 by default).
    pub resolve_to: std::net::IpAddr,
}

impl PebbleOptions {
    /// Defaults for a responder on `127.0.0.1:http_port`.
    pub fn new(http_port: u16) -> Self {
        Self {
            http_port,
            authz_reuse_percent: 0,
            nonce_reject_percent: 0,
            start_timeout: Duration::from_secs(20),
            listen: std::net::Ipv4Addr::LOCALHOST.into(),
            resolve_to: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }
}

/// Why a [`Pebble`] could not be started or asked something.
#[derive(Debug, thiserror::Error)]
pub enum PebbleError {
    /// A program is missing.
    #[error("{program} is not installed; install the Debian package: apt-get install -y pebble")]
    NotInstalled {
        /// The missing program.
        program: &'static str,
    },
    /// Preparing the temp dir, config or certificates failed.
    #[error("preparing pebble failed: {0}")]
    Setup(String),
    /// A server did not come up.
    #[error("{program} did not start: {detail}\n--- its log ---\n{log}")]
    Start {
        /// Which server.
        program: &'static str,
        /// What was seen.
        detail: String,
        /// The end of its log.
        log: String,
    },
    /// A request to pebble's management API failed.
    #[error("pebble's management API failed: {0}")]
    Management(String),
    /// An ACME call failed (for the convenience of tests using `?`).
    #[error(transparent)]
    Acme(#[from] AcmeError),
}

/// A running pebble and pebble-challtestsrv; both are killed on drop.
pub struct Pebble {
    // Declared before `dir`, so the processes die before their files go.
    pebble: ChildGuard,
    _dns: ChildGuard,
    directory_url: String,
    management_url: String,
    listener_root_pem: String,
    http_port: u16,
    dir: tempfile::TempDir,
}

const PEBBLE: &str = "pebble";
const CHALLTESTSRV: &str = "pebble-challtestsrv";
/// Attempts at starting, since a free port can be taken between picking and binding it.
const ATTEMPTS: usize = 3;

impl Pebble {
    /// Whether `pebble` and `pebble-challtestsrv` are on `PATH`.
    pub fn installed() -> bool {
        find_program(PEBBLE).is_some() && find_program(CHALLTESTSRV).is_some()
    }

    /// Starts both servers and waits until pebble serves its directory.
    pub async fn start(options: PebbleOptions) -> Result<Self, PebbleError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::start_once(&options).await {
                Ok(pebble) => return Ok(pebble),
                Err(err @ PebbleError::Start { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| PebbleError::Setup("no start attempt was made".into())))
    }

    async fn start_once(options: &PebbleOptions) -> Result<Self, PebbleError> {
        let pebble_bin =
            find_program(PEBBLE).ok_or(PebbleError::NotInstalled { program: PEBBLE })?;
        let dns_bin = find_program(CHALLTESTSRV).ok_or(PebbleError::NotInstalled {
            program: CHALLTESTSRV,
        })?;
        let setup = |err: std::io::Error| PebbleError::Setup(err.to_string());
        let dir = tempfile::tempdir().map_err(setup)?;
        let listener_root_pem = write_listener_certificate(dir.path(), options.listen)?;
        let listen = options.listen;

        let dns_port = free_udp_and_tcp_port().map_err(setup)?;
        let dns_log = dir.path().join("challtestsrv.log");
        let mut dns = spawn(
            Command::new(dns_bin)
                .args([
                    "-defaultIPv4",
                    &options.resolve_to.to_string(),
                    "-defaultIPv6",
                    "",
                ])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args([
                    "-management",
                    &format!("127.0.0.1:{}", free_tcp_port().map_err(setup)?),
                ]),
            &dns_log,
        )?;
        let dns_up = poll_until(options.start_timeout, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", dns_port))
                .await
                .ok()
        })
        .await;
        if dns_up.is_none() {
            return Err(start_failed(
                CHALLTESTSRV,
                &mut dns,
                "its DNS port never opened",
            ));
        }

        let (port, management_port) = (
            free_tcp_port().map_err(setup)?,
            free_tcp_port().map_err(setup)?,
        );
        let config = serde_json::json!({ "pebble": {
            "listenAddress": std::net::SocketAddr::new(listen, port).to_string(),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": "listener-cert.pem",
            "privateKey": "listener-key.pem",
            "httpPort": options.http_port,
            "tlsPort": free_tcp_port().map_err(setup)?,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).map_err(setup)?;
        let mut pebble = spawn(
            Command::new(pebble_bin)
                .current_dir(dir.path())
                .args(["-config", "pebble.json"])
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env_remove("PEBBLE_VA_ALWAYS_VALID")
                .env("PEBBLE_AUTHZREUSE", options.authz_reuse_percent.to_string())
                .env(
                    "PEBBLE_WFE_NONCEREJECT",
                    options.nonce_reject_percent.to_string(),
                ),
            &dir.path().join("pebble.log"),
        )?;

        let directory_url = format!("https://{}/dir", std::net::SocketAddr::new(listen, port));
        let client = HttpsClient::new(Some(&listener_root_pem), Duration::from_secs(2))?;
        let serving = poll_until(options.start_timeout, || async {
            matches!(client.get(&directory_url).await, Ok((status, _)) if status.is_success())
                .then_some(())
        })
        .await;
        if serving.is_none() {
            return Err(start_failed(
                PEBBLE,
                &mut pebble,
                "its directory never answered",
            ));
        }
        Ok(Self {
            pebble,
            _dns: dns,
            directory_url,
            management_url: format!("https://127.0.0.1:{management_port}"),
            listener_root_pem,
            http_port: options.http_port,
            dir,
        })
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// The root that signs pebble's HTTPS listener (not its certificates: see
    /// [`Pebble::issuing_root_pem`]).
    pub fn listener_root_pem(&self) -> &str {
        &self.listener_root_pem
    }

    /// The port pebble validates HTTP-01 challenges on.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Settings for an [`crate::Account`] at this pebble, with a 30 s timeout.
    pub fn acme_config(&self) -> AcmeConfig {
        AcmeConfig {
            directory_url: self.directory_url.clone(),
            contact: vec!["mailto:ops@reef.test".to_string()],
            ca_root_pem: Some(self.listener_root_pem.clone()),
            timeout: Duration::from_secs(30),
        }
    }

    /// The root certificate pebble issues under (made fresh at each start),
    /// from its management API.
    pub async fn issuing_root_pem(&self) -> Result<String, PebbleError> {
        let client = HttpsClient::new(Some(&self.listener_root_pem), Duration::from_secs(5))?;
        let url = format!("{}/roots/0", self.management_url);
        let (status, body) = client
            .get(&url)
            .await
            .map_err(|err| PebbleError::Management(format!("GET {url}: {err}")))?;
        if !status.is_success() {
            return Err(PebbleError::Management(format!("GET {url}: {status}")));
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| PebbleError::Management(format!("GET {url}: the root is not text")))
    }

    /// The end of pebble's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.pebble.log_tail()
    }

    /// The temp dir holding the config, certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `program` on `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

fn spawn(command: &mut Command, log: &Path) -> Result<ChildGuard, PebbleError> {
    let setup = |err: std::io::Error| PebbleError::Setup(format!("{}: {err}", log.display()));
    let out = std::fs::File::create(log).map_err(setup)?;
    let err = out.try_clone().map_err(setup)?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(setup)?;
    Ok(ChildGuard::new(child, log.to_path_buf()))
}

fn start_failed(program: &'static str, child: &mut ChildGuard, detail: &str) -> PebbleError {
    let detail = match child.exited() {
        Some(status) => format!("{detail}; it exited: {status}"),
        None => detail.to_string(),
    };
    PebbleError::Start {
        program,
        detail,
        log: child.log_tail(),
    }
}

/// Writes a throwaway CA-signed certificate for `localhost` and `127.0.0.1`
/// (and its key) for pebble's HTTPS listener; returns the CA's PEM.
fn write_listener_certificate(dir: &Path, listen: std::net::IpAddr) -> Result<String, PebbleError> {
    let rcgen = |err: rcgen::Error| PebbleError::Setup(format!("listener certificate: {err}"));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "reef test pebble listener CA");
    let ca_key = KeyPair::generate().map_err(rcgen)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(rcgen)?;
    let params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        listen.to_string(),
    ])
    .map_err(rcgen)?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen)?;

    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|err| PebbleError::Setup(format!("writing {name}: {err}")))
    };
    write("listener-cert.pem", &cert.pem())?;
    write("listener-key.pem", &key.serialize_pem())?;
    Ok(ca_cert.pem())
}
