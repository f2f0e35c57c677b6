use super::*;
use reef_proto::services::{ServiceDesired, ServiceKind};

fn record() -> ServiceRecord {
    ServiceRecord {
        app: "shop".into(),
        kind: ServiceKind::Postgres,
        version: 15,
        databases: vec!["shop".into(), "stats".into()],
        node: reef_proto::NodeId::new(),
        port: 21_000,
        role: "shop".into(),
        peer: Some("10.0.0.5:7443".parse().unwrap()),
        desired: ServiceDesired::Running,
        sealed_password: Vec::new(),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

#[test]
fn only_the_apps_role_gets_in_with_its_password_and_the_superuser_only_on_the_socket() {
    let text = hba(&record());
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        vec![
            "local all reef trust",
            "host \"shop\",\"stats\" \"shop\" 127.0.0.1/32 scram-sha-256",
            "host \"shop\",\"stats\" \"shop\" ::1/128 scram-sha-256",
        ]
    );
}

#[test]
fn provisioning_quotes_what_it_is_given() {
    let sql = provision_sql(&record(), "it's");
    assert!(
        sql.contains("ALTER ROLE \"shop\" WITH LOGIN PASSWORD 'it''s';"),
        "{sql}"
    );
    assert!(
        sql.contains("CREATE DATABASE \"stats\" OWNER \"shop\""),
        "{sql}"
    );
    assert!(sql.contains("WHERE datname = 'stats'"), "{sql}");
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
}

#[test]
fn the_server_keeps_statements_out_of_its_log_and_its_socket_private() {
    let dirs = Dirs::of(Path::new("/var/lib/reef"), "shop", ServiceKind::Postgres);
    let argv: Vec<String> = Postgres
        .argv(&dirs, &record())
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert_eq!(argv[0], "/usr/lib/postgresql/15/bin/postgres");
    for setting in [
        "port=21000",
        "log_min_error_statement=panic",
        "unix_socket_permissions=0700",
        "unix_socket_directories=/var/lib/reef/services/shop.postgres/s",
        "listen_addresses=127.0.0.1",
    ] {
        assert!(argv.iter().any(|a| a == setting), "{setting} in {argv:?}");
    }
}
