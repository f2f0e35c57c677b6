//! The nats-server configuration that enforces the cluster's security:
//! operator mode with the full resolver (accounts preloaded; user JWTs need
//! no server change), TLS required for clients and routes, JetStream.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One server's settings.
pub struct ServerConfig {
    pub name: String,
    /// `host:port` for clients.
    pub listen: String,
    pub store_dir: PathBuf,
    pub resolver_dir: PathBuf,
    /// Where the server writes its pid (so a leftover server can be found).
    pub pid_file: PathBuf,
    pub operator_jwt: String,
    pub system_account: String,
    /// Account public key and JWT, preloaded into the resolver.
    pub accounts: Vec<(String, String)>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
    pub cluster: Option<ClusterRoutes>,
    pub max_payload: Option<usize>,
    /// `host:port` the server tells clients to reach it at (for the other
    /// servers' clients to fail over to); None: what it finds itself.
    pub client_advertise: Option<String>,
}

/// A server's place in a NATS cluster.
pub struct ClusterRoutes {
    pub name: String,
    /// `host:port` for the other servers' routes.
    pub listen: String,
    /// Every server's route URL (`tls://host:port`); its own is ignored.
    pub routes: Vec<String>,
    /// `host:port` the other servers route to it at; None: what it finds.
    pub advertise: Option<String>,
}

fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn path(p: &std::path::Path) -> String {
    quote(&p.display().to_string())
}

/// The configuration file's text.
pub fn render(config: &ServerConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by reef; changes are lost when it is written again."
    );
    let _ = writeln!(out, "server_name: {}", quote(&config.name));
    let _ = writeln!(out, "listen: {}", quote(&config.listen));
    if let Some(advertise) = &config.client_advertise {
        let _ = writeln!(out, "client_advertise: {}", quote(advertise));
    }
    let _ = writeln!(out, "pid_file: {}", path(&config.pid_file));
    // A client's CONNECT line carries its JWT; a node's, with its
    // permissions, is larger than the 4 KiB default allows.
    let _ = writeln!(out, "max_control_line: 32768");
    if let Some(max) = config.max_payload {
        let _ = writeln!(out, "max_payload: {max}");
    }
    let _ = writeln!(
        out,
        "jetstream {{ store_dir: {} }}",
        path(&config.store_dir)
    );
    let _ = writeln!(
        out,
        "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  timeout: 5\n}}",
        path(&config.cert_file),
        path(&config.key_file),
        path(&config.ca_file)
    );
    let _ = writeln!(out, "operator: {}", quote(&config.operator_jwt));
    let _ = writeln!(out, "system_account: {}", quote(&config.system_account));
    let _ = writeln!(
        out,
        "resolver {{\n  type: full\n  dir: {}\n  allow_delete: false\n  interval: \"2m\"\n  timeout: \"2s\"\n}}",
        path(&config.resolver_dir)
    );
    let _ = writeln!(out, "resolver_preload {{");
    for (account, jwt) in &config.accounts {
        let _ = writeln!(out, "  {account}: {}", quote(jwt));
    }
    let _ = writeln!(out, "}}");
    if let Some(cluster) = &config.cluster {
        let routes: Vec<String> = cluster.routes.iter().map(|r| quote(r)).collect();
        let advertise = cluster
            .advertise
            .as_ref()
            .map(|a| format!("\n  advertise: {}", quote(a)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "cluster {{\n  name: {}\n  listen: {}{advertise}\n  routes: [{}]\n  tls {{\n    cert_file: {}\n    key_file: {}\n    ca_file: {}\n    verify: true\n    timeout: 5\n  }}\n}}",
            quote(&cluster.name),
            quote(&cluster.listen),
            routes.join(", "),
            path(&config.cert_file),
            path(&config.key_file),
            path(&config.ca_file)
        );
    }
    out
}
