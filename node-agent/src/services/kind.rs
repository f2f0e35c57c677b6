//! What the supervisor needs of a kind of service: how to set up its
//! directory once, configure it, start it, tell whether it serves, give
//! the app its databases and login, and stop it. Adding a kind (Redis) is
//! one more implementation of [`Kind`] and a row in the supervisor's
//! `match` on the record's kind.

use super::Dirs;
use reef_proto::services::ServiceRecord;
use std::ffi::OsString;

pub(crate) trait Kind: Send + Sync {
    /// Whether its directory was set up already (its data is there).
    fn initialized(&self, dirs: &Dirs) -> bool;
    /// The program that sets up an empty directory, run once in its sandbox.
    fn init(&self, dirs: &Dirs, record: &ServiceRecord) -> Vec<OsString>;
    /// Writes its configuration (again on every start and every change of
    /// the record); returns the files written, for the caller to give to
    /// the service's uid.
    fn configure(
        &self,
        dirs: &Dirs,
        record: &ServiceRecord,
    ) -> std::io::Result<Vec<std::path::PathBuf>>;
    /// The service's own process, run in its sandbox.
    fn argv(&self, dirs: &Dirs, record: &ServiceRecord) -> Vec<OsString>;
    /// Whether it accepts connections now.
    fn ready(
        &self,
        dirs: &Dirs,
        record: &ServiceRecord,
    ) -> impl std::future::Future<Output = bool> + Send;
    /// Creates the app's databases and login (idempotent; the password
    /// set again each time).
    fn provision(
        &self,
        dirs: &Dirs,
        record: &ServiceRecord,
        password: &str,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
    /// The signal that asks it to stop at once but cleanly.
    fn stop_signal(&self) -> nix::sys::signal::Signal;
    /// The signal that makes it read its configuration again.
    fn reload_signal(&self) -> nix::sys::signal::Signal;
}
