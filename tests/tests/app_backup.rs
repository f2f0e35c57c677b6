//! App backups end to end: `[backup]` on a per-second schedule backs up a
//! real SQLite database (through its online backup in `pre_backup`) and
//! the app's other files, keeps only `keep` of them, and after the data is
//! destroyed `reef backup restore` brings it all back and the app serves it
//! again; an app's Postgres rows come back with its data directory; a
//! corrupted backup, one whose digest was forged to match, and another
//! cluster's are refused before anything on the node is touched.

use async_nats::jetstream;
use reef_tests::app::{process_in, write_app};
use reef_tests::{eventually, http, TestCluster};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// The app of `write_app`, writing its version to `${data_dir}/versions`
/// at each start, with a SQLite database made by `pre_start` and backed
/// up online by `pre_backup`.
fn app(dir: &Path, backup: &str) {
    let sql = |code: &str| {
        format!("python3 -c \"import sqlite3, os; c = sqlite3.connect(os.environ['DB']); {code}\"")
    };
    // A row on the first start only: what the test adds later is told apart.
    let pre_start = sql("c.execute('create table if not exists rows (n integer)'); c.execute('insert into rows select 7 where not exists (select 1 from rows)'); c.commit()");
    let pre_backup =
        sql("b = sqlite3.connect(os.environ['DB'] + '.backup'); c.backup(b); b.close()");
    write_app(
        dir,
        "v1",
        200,
        &format!(
            "pre_start = \"{}\"\n\n[env]\nDATA_FILE = \"${{data_dir}}/versions\"\nDB = \"${{data_dir}}/app.db\"\n\n[backup]\npre_backup = \"{}\"\n{backup}",
            pre_start.replace('"', "\\\""),
            pre_backup.replace('"', "\\\""),
        ),
    );
}

fn data_dir(cluster: &TestCluster, node: &str) -> PathBuf {
    cluster.dir.path().join(node).join("apps/hello/data")
}

/// The rows of the database file at `path` (python3's own sqlite3).
fn rows(path: &Path) -> Result<String, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sorted(r[0] for r in sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True).execute('select n from rows')))",
        ])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
    }
}

/// Adds row `n` to the database file at `path`.
fn add_row(path: &Path, n: u32) {
    sqlite(path, &format!("insert into rows values ({n})"));
}

async fn backups(cluster: &TestCluster) -> Vec<serde_json::Value> {
    cluster
        .cli
        .ok(&["backup", "list", "hello", "--json"])
        .await
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn body(cluster: &TestCluster) -> String {
    let port = cluster.proxy_port("node-1");
    eventually("hello served", Duration::from_secs(20), || async {
        http::get(port, "hello.test", "/")
            .await
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_bring_back_destroyed_data() {
    let cluster = TestCluster::start(1).await;
    let dir = cluster.dir.path().join("app");
    app(&dir, "schedule = \"*/2 * * * * *\"\nkeep = 2\n");
    cluster.deploy(&dir).await;
    cluster.healthy_nodes("hello", 1).await;
    let data = data_dir(&cluster, "node-1");
    assert_eq!(rows(&data.join("app.db")).as_deref(), Ok("[7]"));

    // Backups come on the schedule; no more than `keep` finished ones stay.
    // A row only the backups can bring back.
    let inserted_ms = reef_proto::now_ms();
    add_row(&data.join("app.db"), 42);
    let made = eventually("two scheduled backups", Duration::from_secs(40), || async {
        let list = backups(&cluster).await;
        let done: Vec<_> = list
            .iter()
            .filter(|b| b["state"] == "done" && b["trigger"] == "schedule")
            .filter(|b| b["started_ms"].as_u64() > Some(inserted_ms))
            .cloned()
            .collect();
        (done.len() >= 2).then_some(list)
    })
    .await;
    let chosen = made
        .iter()
        .find(|b| b["state"] == "done")
        .expect("a finished backup")
        .clone();
    assert_eq!(
        chosen["parts"].as_array().map(Vec::len),
        Some(1),
        "{chosen}"
    );
    assert_eq!(chosen["parts"][0]["kind"], "data directory");
    eventually("old backups deleted", Duration::from_secs(20), || async {
        let list = backups(&cluster).await;
        let done = list.iter().filter(|b| b["state"] == "done").count();
        (done <= 2).then_some(())
    })
    .await;

    // A release without a schedule: the restore below picks a backup that
    // no later one will prune.
    app(&dir, "keep = 2\n");
    cluster.deploy(&dir).await;
    let settled = eventually("backups settled", Duration::from_secs(30), || async {
        let list = backups(&cluster).await;
        let running = list.iter().any(|b| b["state"] == "running");
        let done = list.iter().filter(|b| b["state"] == "done").count();
        (!running && done <= 2).then_some(list)
    })
    .await;
    let before = body(&cluster).await;

    // The data is destroyed, and the restore brings it back.
    std::fs::remove_file(data.join("app.db")).expect("remove the database");
    std::fs::write(data.join("versions"), "garbage\n").expect("overwrite");
    let id = settled
        .iter()
        .find(|b| b["state"] == "done")
        .expect("a finished backup")["id"]
        .as_u64()
        .expect("an id")
        .to_string();
    let out = cluster.cli.ok(&["backup", "restore", "hello", &id]).await;
    assert!(
        out.stdout
            .contains(&format!("restored hello from backup {id}")),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("1 instance(s) stopped and started again"),
        "{out:?}"
    );
    assert_eq!(rows(&data.join("app.db")).as_deref(), Ok("[7, 42]"));
    assert_eq!(rows(&data.join("app.db.backup")).as_deref(), Ok("[7, 42]"));
    let versions = std::fs::read_to_string(data.join("versions")).expect("versions");
    assert!(versions.starts_with("v1\n"), "{versions:?}");
    assert!(!versions.contains("garbage"), "{versions:?}");
    let after = eventually(
        "served from the restored data",
        Duration::from_secs(20),
        || async {
            let b = body(&cluster).await;
            (process_in(&b) != process_in(&before)).then_some(b)
        },
    )
    .await;
    assert!(after.starts_with("v1 "), "{after}");
    assert!(!after.contains("garbage"), "{after}");
    let list = backups(&cluster).await;
    let restored = list
        .iter()
        .find(|b| b["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
        .expect("the restored backup");
    assert!(
        restored["restores"][0]["outcome"]["done"].is_string(),
        "{restored}"
    );
}

/// Starts a one-node cluster running the app, with `marker` in its data.
async fn cluster_with_app(marker: &str) -> (TestCluster, PathBuf) {
    let cluster = TestCluster::start(1).await;
    let dir = cluster.dir.path().join("app");
    app(&dir, "");
    cluster.deploy(&dir).await;
    cluster.healthy_nodes("hello", 1).await;
    let data = data_dir(&cluster, "node-1");
    std::fs::write(data.join("marker"), marker).expect("marker");
    (cluster, data)
}

/// The marker is as it was, and the instance was not stopped.
async fn untouched(cluster: &TestCluster, data: &Path, marker: &str, before: String) {
    assert_eq!(
        std::fs::read_to_string(data.join("marker")).expect("marker"),
        marker
    );
    let now = body(cluster).await;
    assert_eq!(
        process_in(&now),
        process_in(&before),
        "the instance was not stopped"
    );
}

async fn read_object(store: &jetstream::object_store::ObjectStore, name: &str) -> Vec<u8> {
    let mut object = store.get(name).await.expect("the part");
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.expect("read the part");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_and_foreign_backups_are_refused_and_nothing_is_touched() {
    let (a, a_data) = cluster_with_app("a").await;
    let made = a.cli.ok(&["backup", "run", "hello"]).await;
    assert!(made.stdout.contains("1 part(s)"), "{made:?}");
    let list = backups(&a).await;
    let id = list[0]["id"].as_u64().expect("id");
    let js = jetstream::new(a.nats.url.connect().await);
    let store = js.get_object_store("reef-backups").await.expect("store");
    let kv = js.get_key_value("reef-backups").await.expect("bucket");
    let key = format!("hello.{id:013}");
    let record = kv.get(&key).await.expect("get").expect("the record");
    let names: Vec<String> = {
        use futures::StreamExt as _;
        let mut names = Vec::new();
        let mut listed = store.list().await.expect("list");
        while let Some(info) = listed.next().await {
            names.push(info.expect("info").name);
        }
        names
    };
    assert_eq!(names.len(), 1, "{names:?}");
    let name = names[0].clone();
    let good = read_object(&store, &name).await;
    assert!(
        !good.windows(8).any(|w| w == b"versions"),
        "file names are not in the part in the clear"
    );

    // Corrupted: one byte changed in the store.
    let before = body(&a).await;
    std::fs::write(a_data.join("marker"), "changed after the backup").expect("marker");
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    store.put(name.as_str(), &mut &bad[..]).await.expect("put");
    let out = a
        .cli
        .run(&["backup", "restore", "hello", &id.to_string()])
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("corrupted"), "{out:?}");
    assert!(out.stderr.contains("nothing was changed"), "{out:?}");
    untouched(&a, &a_data, "changed after the backup", before.clone()).await;

    // Corrupted with its recorded digest forged to match: the frames say so.
    let digest = reef_artifact::sha256_hex(&bad[..]).expect("digest");
    let mut value = record.to_vec();
    let old = list[0]["parts"][0]["sha256"]
        .as_str()
        .expect("digest")
        .to_string();
    let at = value
        .windows(64)
        .position(|w| w == old.as_bytes())
        .expect("the digest in the record");
    value[at..at + 64].copy_from_slice(digest.as_bytes());
    kv.put(&key, value.into()).await.expect("forge");
    let out = a
        .cli
        .run(&["backup", "restore", "hello", &id.to_string()])
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("does not decrypt"), "{out:?}");
    untouched(&a, &a_data, "changed after the backup", before.clone()).await;

    // Put back whole, it restores.
    store.put(name.as_str(), &mut &good[..]).await.expect("put");
    kv.put(&key, record.clone()).await.expect("put back");
    let out = a
        .cli
        .ok(&["backup", "restore", "hello", &id.to_string()])
        .await;
    assert!(out.stdout.contains("restored hello"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(a_data.join("marker")).expect("marker"),
        "a"
    );

    // Another cluster's backup, copied into this one's store: refused.
    let (b, b_data) = cluster_with_app("b").await;
    let b_before = body(&b).await;
    let b_js = jetstream::new(b.nats.url.connect().await);
    b_js.get_object_store("reef-backups")
        .await
        .expect("store")
        .put(name.as_str(), &mut &good[..])
        .await
        .expect("copy the part");
    b_js.get_key_value("reef-backups")
        .await
        .expect("bucket")
        .put(&key, record.clone())
        .await
        .expect("copy the record");
    let out = b
        .cli
        .run(&["backup", "restore", "hello", &id.to_string()])
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("another cluster"), "{out:?}");
    untouched(&b, &b_data, "b", b_before).await;

    // Bad input.
    let out = a.cli.run(&["backup", "restore", "hello", "12345"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("has no backup 12345"), "{out:?}");
    let out = a.cli.run(&["backup", "run", "nope"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("no app nope"), "{out:?}");
}

/// `DATABASE_URL` as the instance behind `port` sees it, once it answers.
async fn database_url(port: u16) -> String {
    eventually(
        "the instance's DATABASE_URL",
        Duration::from_secs(20),
        || async {
            http::get(port, "hello.test", "/env/DATABASE_URL")
                .await
                .ok()
                .filter(|r| r.status == 200 && r.body.starts_with("postgres://"))
                .map(|r| r.body)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_postgres_rows_and_sqlite_file_come_back_from_a_scheduled_backup() {
    use reef_tests::postgres::{installed_version, psql, query};
    let version = installed_version();
    let cluster = TestCluster::start(1).await;
    let dir = cluster.dir.path().join("app");
    let manifest = |backup: &str| {
        format!(
            "pre_start = \"sh migrate.sh\"\n\n[env]\nDATA_FILE = \"${{data_dir}}/versions\"\n\n[services.postgres]\nversion = {version}\ndatabases = [\"hello\"]\n\n[backup]\nkeep = 3\n{backup}"
        )
    };
    let write = |backup: &str| {
        write_app(&dir, "v1", 200, &manifest(backup));
        std::fs::write(
            dir.join("migrate.sh"),
            format!(
                "set -e\nfor i in 1 2 3 4 5 6 7 8 9 10; do\n  {psql} -X -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c \"CREATE TABLE IF NOT EXISTS items (n integer NOT NULL)\" && break\n  sleep 0.3\ndone\n",
                psql = psql(version)
            ),
        )
        .expect("migrate.sh");
    };
    write("schedule = \"*/2 * * * * *\"\n");
    cluster.deploy(&dir).await;
    cluster.healthy_nodes("hello", 1).await;
    let port = cluster.proxy_port("node-1");
    let url = database_url(port).await;
    let items = |url: String| async move {
        query(
            version,
            &url,
            "SELECT string_agg(n::text, ',' ORDER BY n) FROM items",
        )
        .await
    };
    // Rows in Postgres, and a SQLite file in the data directory.
    query(version, &url, "INSERT INTO items VALUES (1), (2), (3)")
        .await
        .expect("rows written");
    let data = data_dir(&cluster, "node-1");
    let db = data.join("app.db");
    sqlite(
        &db,
        "create table rows (n integer); insert into rows values (5), (6)",
    );
    let written_ms = reef_proto::now_ms();

    // A scheduled backup made after both were written, with both parts.
    let chosen = eventually(
        "a scheduled backup of both",
        Duration::from_secs(40),
        || async {
            backups(&cluster).await.into_iter().find(|b| {
                b["state"] == "done"
                    && b["trigger"] == "schedule"
                    && b["started_ms"].as_u64() > Some(written_ms)
            })
        },
    )
    .await;
    let kinds: Vec<&str> = chosen["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["data directory", "database hello"], "{chosen}");
    let id = chosen["id"].as_u64().expect("id").to_string();
    // The next release has no schedule: nothing prunes the chosen one.
    write("");
    cluster.deploy(&dir).await;
    eventually("backups settled", Duration::from_secs(30), || async {
        let list = backups(&cluster).await;
        let running = list.iter().any(|b| b["state"] == "running");
        let kept = list
            .iter()
            .any(|b| b["id"].as_u64().map(|n| n.to_string()) == Some(id.clone()));
        (!running && kept).then_some(())
    })
    .await;

    // Both are lost: the table dropped, the file removed.
    query(version, &url, "DROP TABLE items")
        .await
        .expect("drop");
    std::fs::remove_file(&db).expect("remove the database file");
    assert_eq!(items(url.clone()).await, None, "the table is gone");

    let out = cluster.cli.ok(&["backup", "restore", "hello", &id]).await;
    assert!(
        out.stdout
            .contains("database hello on node-1: restored in one transaction"),
        "{out:?}"
    );
    assert!(out.stdout.contains("data directory on node-1"), "{out:?}");
    assert_eq!(items(url.clone()).await.as_deref(), Some("1,2,3"));
    assert_eq!(rows(&db).as_deref(), Ok("[5, 6]"));
    // The app serves again, through its database.
    let new_url = database_url(port).await;
    assert_eq!(items(new_url).await.as_deref(), Some("1,2,3"));
}

/// Runs `sql` on the SQLite file at `path` (python3's own sqlite3).
fn sqlite(path: &Path, sql: &str) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(path)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
}
