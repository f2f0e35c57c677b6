//! PostgreSQL from Debian's packages, for the tests of managed Postgres:
//! which major version is installed, and its `psql`.

use std::path::Path;

/// The highest PostgreSQL major version installed here.
pub fn installed_version() -> u32 {
    let versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|v: &u32| {
                    Path::new(&format!("/usr/lib/postgresql/{v}/bin/postgres")).is_file()
                })
                .collect()
        })
        .unwrap_or_default();
    *versions
        .iter()
        .max()
        .expect("PostgreSQL is installed (scripts/lib.sh ensure_postgres)")
}

/// The `psql` of major version `version`.
pub fn psql(version: u32) -> String {
    format!("/usr/lib/postgresql/{version}/bin/psql")
}

/// Runs `sql` through `url` with the host's psql; None when it fails.
pub async fn query(version: u32, url: &str, sql: &str) -> Option<String> {
    let out = tokio::process::Command::new(psql(version))
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
