//! PostgreSQL as a managed service, from Debian's `postgresql-<major>`
//! packages (`/usr/lib/postgresql/<major>/bin`).
//!
//! - `initdb` once, with a superuser `reef` that logs in only over the
//!   unix socket (`trust`: the socket's directory is the service uid's,
//!   mode 0700, so only that uid and root reach it; the agent is root).
//! - It listens on the node's loopback only; the app's role logs in with
//!   its password (SCRAM) from there, nothing else is in `pg_hba.conf`.
//!   Instances on other nodes reach it through a tunnel over the mutual-TLS
//!   peer link (`tunnel.rs`), whose end on this node is a loopback
//!   connection like any other.
//! - Stopped with SIGINT, PostgreSQL's fast shutdown.
//!
//! The password never appears on a command line or in a log: it reaches
//! `psql` on its standard input, and statements are never logged.

use super::kind::Kind;
use super::Dirs;
use reef_proto::services::ServiceRecord;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Where Debian installs each major version.
pub(crate) const INSTALL_ROOT: &str = "/usr/lib/postgresql";
/// The superuser, for the agent's own connections over the socket.
pub(crate) const SUPERUSER: &str = "reef";
/// How long provisioning may take.
const PROVISION_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Postgres;

fn bin(record: &ServiceRecord, program: &str) -> PathBuf {
    Path::new(INSTALL_ROOT)
        .join(record.version.to_string())
        .join("bin")
        .join(program)
}

fn data(dirs: &Dirs) -> PathBuf {
    dirs.root.join("data")
}

/// The directory of its unix socket (and the path tools connect to).
pub(crate) fn socket_dir(dirs: &Dirs) -> PathBuf {
    dirs.root.join("s")
}

fn conf(dirs: &Dirs) -> PathBuf {
    dirs.root.join("conf")
}

/// `pg_hba.conf`: the superuser on the socket, the app's role from
/// loopback with its password.
pub(crate) fn hba(record: &ServiceRecord) -> String {
    let role = quote_ident(&record.role);
    let dbs = record
        .databases
        .iter()
        .map(|d| quote_ident(d))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = String::from("# Written by reef at every start; changes are overwritten.\n");
    out.push_str(&format!("local all {SUPERUSER} trust\n"));
    out.push_str(&format!("host {dbs} {role} 127.0.0.1/32 scram-sha-256\n"));
    out.push_str(&format!("host {dbs} {role} ::1/128 scram-sha-256\n"));
    out
}

/// `"name"`, with any `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with any `'` doubled (standard strings: backslashes are literal).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The statements that give the app its login and databases.
pub(crate) fn provision_sql(record: &ServiceRecord, password: &str) -> String {
    let role = quote_ident(&record.role);
    let mut sql = format!(
        "SELECT 'CREATE ROLE {role} LOGIN' WHERE NOT EXISTS \
         (SELECT FROM pg_roles WHERE rolname = {}) \\gexec\n\
         ALTER ROLE {role} WITH LOGIN PASSWORD {};\n",
        quote_literal(&record.role),
        quote_literal(password)
    );
    for db in &record.databases {
        let name = quote_ident(db);
        sql.push_str(&format!(
            "SELECT 'CREATE DATABASE {name} OWNER {role}' WHERE NOT EXISTS \
             (SELECT FROM pg_database WHERE datname = {}) \\gexec\n\
             ALTER DATABASE {name} OWNER TO {role};\n",
            quote_literal(db)
        ));
    }
    sql
}

impl Kind for Postgres {
    fn initialized(&self, dirs: &Dirs) -> bool {
        data(dirs).join("PG_VERSION").is_file()
    }

    fn init(&self, dirs: &Dirs, record: &ServiceRecord) -> Vec<OsString> {
        vec![
            bin(record, "initdb").into(),
            "-D".into(),
            data(dirs).into(),
            "-U".into(),
            SUPERUSER.into(),
            "--auth-local=trust".into(),
            "--auth-host=reject".into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
        ]
    }

    fn configure(&self, dirs: &Dirs, record: &ServiceRecord) -> std::io::Result<Vec<PathBuf>> {
        let conf = conf(dirs);
        let socket = socket_dir(dirs);
        for dir in [&conf, &socket] {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        let mut written = vec![conf.clone(), socket.clone()];
        let hba_file = conf.join("pg_hba.conf");
        std::fs::write(&hba_file, hba(record))?;
        written.push(hba_file);
        // A lock file left by a process that is gone (the agent's sweep
        // killed it): PostgreSQL would take it for a live one.
        let _ = std::fs::remove_file(data(dirs).join("postmaster.pid"));
        Ok(written)
    }

    fn argv(&self, dirs: &Dirs, record: &ServiceRecord) -> Vec<OsString> {
        let conf = conf(dirs);
        let mut settings = vec![
            format!("port={}", record.port),
            "listen_addresses=127.0.0.1".into(),
            format!("unix_socket_directories={}", socket_dir(dirs).display()),
            "unix_socket_permissions=0700".into(),
            format!("hba_file={}", conf.join("pg_hba.conf").display()),
            "password_encryption=scram-sha-256".into(),
            // No /dev/shm in the sandbox: dynamic shared memory in files.
            "dynamic_shared_memory_type=mmap".into(),
            // Never a statement in the log (one may carry the password).
            "log_min_error_statement=panic".into(),
            "log_statement=none".into(),
            "logging_collector=off".into(),
        ];
        // Loopback only: what crosses machines is in the peer link's TLS.
        settings.push("ssl=off".into());
        let mut argv: Vec<OsString> = vec![
            bin(record, "postgres").into(),
            "-D".into(),
            data(dirs).into(),
        ];
        for setting in settings {
            argv.push("-c".into());
            argv.push(setting.into());
        }
        argv
    }

    async fn ready(&self, dirs: &Dirs, record: &ServiceRecord) -> bool {
        let status = tokio::process::Command::new(bin(record, "pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(socket_dir(dirs))
            .arg("-p")
            .arg(record.port.to_string())
            .arg("-U")
            .arg(SUPERUSER)
            .arg("-d")
            .arg("postgres")
            .arg("-t")
            .arg("2")
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), status).await,
            Ok(Ok(s)) if s.success()
        )
    }

    async fn provision(
        &self,
        dirs: &Dirs,
        record: &ServiceRecord,
        password: &str,
    ) -> Result<(), String> {
        let mut child = tokio::process::Command::new(bin(record, "psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(socket_dir(dirs))
            .arg("-p")
            .arg(record.port.to_string())
            .args(["-U", SUPERUSER, "-d", "postgres", "-f", "-"])
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        let sql = reef_secrets::Zeroizing::new(provision_sql(record, password));
        let run = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(sql.as_bytes())
                    .await
                    .map_err(|e| format!("writing to psql: {e}"))?;
            }
            child
                .wait_with_output()
                .await
                .map_err(|e| format!("psql: {e}"))
        };
        let output = tokio::time::timeout(PROVISION_TIMEOUT, run)
            .await
            .map_err(|_| "psql did not finish in time".to_string())??;
        if output.status.success() {
            Ok(())
        } else {
            // An error may quote its statement: never the password.
            let stderr = String::from_utf8_lossy(&output.stderr).replace(password, "********");
            Err(format!("psql failed: {}", stderr.trim()))
        }
    }

    fn stop_signal(&self) -> nix::sys::signal::Signal {
        nix::sys::signal::Signal::SIGINT
    }

    fn reload_signal(&self) -> nix::sys::signal::Signal {
        nix::sys::signal::Signal::SIGHUP
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
