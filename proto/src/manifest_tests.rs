use super::Strategy;
use super::*;
use proptest::prelude::*;

const FULL: &str = r#"
[app]
name = "hello"
domains = ["hello.example.com", "www.hello.example.com"]
https_redirect = true

[deploy]
type = "exec"
binary = "bin/server"
health = "/healthz"
health_interval = "200ms"
health_timeout = "1s"
health_attempts = 50
strategy = "sequential"
drain = 5
replicas = 2
pre_start = "./migrate.sh"
post_deploy = "echo deployed"

[deploy.restart]
attempts = 3
interval = "1m"
delay = "1s"
max_delay = "10s"

[env]
DATABASE_PATH = "${data_dir}/db.sqlite"
LISTEN = "0.0.0.0:${port}"
API_KEY = "${secret:api-key}"
PRICE = "$$5"

[resources]
cpu = 0.5
memory = "256M"

[placement]
labels = { zone = "eu" }
"#;

#[test]
fn a_full_manifest_parses() {
    let spec = parse(FULL).expect("valid");
    assert_eq!(spec.name, "hello");
    assert_eq!(spec.domains.len(), 2);
    assert!(spec.https_redirect);
    assert_eq!(spec.run.argv(), vec!["bin/server".to_string()]);
    assert_eq!(
        spec.health.check,
        HealthCheck::Http {
            path: "/healthz".into()
        }
    );
    assert_eq!(spec.health.interval_ms, 200);
    assert_eq!(spec.strategy, Strategy::Sequential);
    assert_eq!(spec.drain_ms, 5000);
    assert_eq!(spec.replicas, 2);
    assert_eq!(spec.restart.attempts, 3);
    assert_eq!(spec.resources.cpu_millis, 500);
    assert_eq!(spec.resources.memory_bytes, 256 << 20);
    assert_eq!(spec.constraints.get("zone").map(String::as_str), Some("eu"));
    assert_eq!(spec.secrets(), vec!["api-key"]);
    let db = spec.env["DATABASE_PATH"]
        .render("/data/hello", 8080, |_| None)
        .expect("render");
    assert_eq!(db, "/data/hello/db.sqlite");
    let listen = spec.env["LISTEN"]
        .render("/d", 8080, |_| None)
        .expect("render");
    assert_eq!(listen, "0.0.0.0:8080");
    assert_eq!(
        spec.env["PRICE"].render("/d", 1, |_| None).expect("render"),
        "$5"
    );
    assert_eq!(
        spec.env["API_KEY"].render("/d", 1, |k| (k == "api-key").then(|| "s3cret".into())),
        Ok("s3cret".into())
    );
    assert!(spec.env["API_KEY"].render("/d", 1, |_| None).is_err());
}

#[test]
fn defaults_are_sensible() {
    let spec =
        parse("[app]\nname = \"x\"\n[deploy]\ncommand = [\"python3\", \"-m\", \"http.server\"]\n")
            .expect("valid");
    assert_eq!(spec.strategy, Strategy::BlueGreen);
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.health.check, HealthCheck::Tcp);
    assert_eq!(spec.health.interval_ms, 100);
    assert_eq!(spec.drain_ms, 10_000);
    assert!(spec.domains.is_empty());
    assert!(!spec.https_redirect);
}

#[test]
fn beam_releases_run_in_the_foreground() {
    let spec = parse("[app]\nname = \"my-app\"\n[deploy]\ntype = \"beam\"\n").expect("valid");
    assert_eq!(
        spec.run.argv(),
        vec!["bin/my_app".to_string(), "start".into()]
    );
    let spec = parse("[app]\nname = \"x\"\n[deploy]\ntype = \"beam\"\nrelease = \"rel\"\nbeam_command = \"foreground\"\n").expect("valid");
    assert_eq!(
        spec.run.argv(),
        vec!["bin/rel".to_string(), "foreground".into()]
    );
}

#[test]
fn backups_are_declared_in_their_table() {
    let base = "[app]\nname = \"x\"\n[deploy]\nbinary = \"server\"\n";
    assert_eq!(parse(base).expect("valid").backup, None);
    let spec = parse(&format!(
        "{base}[backup]\nschedule = \"30 2 * * *\"\ntz = \"Europe/Paris\"\nkeep = 3\npre_backup = \"sqlite3 db .backup\"\n"
    ))
    .expect("valid");
    let backup = spec.backup.expect("declared");
    assert_eq!(backup.schedule.as_deref(), Some("30 2 * * *"));
    assert_eq!(backup.time_zone, "Europe/Paris");
    assert_eq!(backup.keep, 3);
    assert_eq!(backup.pre_backup.as_deref(), Some("sqlite3 db .backup"));
    let defaults = parse(&format!("{base}[backup]\n")).expect("valid");
    let backup = defaults.backup.expect("declared");
    assert_eq!(
        (backup.schedule, backup.time_zone.as_str(), backup.keep),
        (None, "UTC", 7)
    );
}

#[test]
fn beam_distribution_is_off_unless_asked_and_then_takes_its_cookie_from_a_secret() {
    let off = parse("[app]\nname = \"x\"\n[deploy]\ntype = \"beam\"\n").expect("valid");
    assert!(matches!(
        off.run,
        RunSpec::Beam {
            distribution: false,
            ..
        }
    ));
    assert!(off.secrets().is_empty());
    let on = parse("[app]\nname = \"x\"\n[deploy]\ntype = \"beam\"\ndistribution = true\n")
        .expect("valid");
    assert!(matches!(
        on.run,
        RunSpec::Beam {
            distribution: true,
            ..
        }
    ));
    assert_eq!(on.secrets(), vec!["RELEASE_COOKIE"]);
    assert!(on.env.contains_key("RELEASE_COOKIE") && on.env.contains_key("RELX_COOKIE"));
    // `[env]` may name the cookie itself.
    let own = parse("[app]\nname = \"x\"\n[deploy]\ntype = \"beam\"\ndistribution = true\n[env]\nRELEASE_COOKIE = \"${secret:MINE}\"\nRELX_COOKIE = \"${secret:MINE}\"\n")
        .expect("valid");
    assert_eq!(own.secrets(), vec!["MINE"]);
    assert!(
        error("[app]\nname = \"x\"\n[deploy]\ncommand = [\"x\"]\ndistribution = true\n")
            .contains("deploy.distribution")
    );
}

fn error(text: &str) -> String {
    parse(text).expect_err("should be refused").to_string()
}

#[test]
fn errors_name_the_field() {
    let base = "[app]\nname = \"x\"\n[deploy]\nbinary = \"server\"\n";
    let cases = [
        (
            "[app]\nname = \"x\"\nbogus = 1\n[deploy]\nbinary = \"s\"\n",
            "bogus",
        ),
        (&format!("{base}drian = 5\n"), "drian"),
        (
            "[app]\nname = \"Bad_Name\"\n[deploy]\nbinary = \"s\"\n",
            "app.name",
        ),
        (
            "[app]\nname = \"x\"\ndomains = [\"exa mple.com\"]\n[deploy]\nbinary = \"s\"\n",
            "app.domains[0]",
        ),
        (
            "[app]\nname = \"x\"\ndomains = [\"a.com\", \"a.com\"]\n[deploy]\nbinary = \"s\"\n",
            "app.domains[1]",
        ),
        (
            "[app]\nname = \"x\"\n[deploy]\nbinary = \"../s\"\n",
            "deploy.binary",
        ),
        (
            "[app]\nname = \"x\"\n[deploy]\nbinary = \"/bin/sh\"\n",
            "deploy.binary",
        ),
        ("[app]\nname = \"x\"\n", "deploy"),
        (
            "[app]\nname = \"x\"\n[deploy]\nbinary = \"s\"\ncommand = [\"s\"]\n",
            "deploy.command",
        ),
        (&format!("{base}health = \"healthz\"\n"), "deploy.health"),
        (
            &format!("{base}health_interval = \"fast\"\n"),
            "deploy.health_interval",
        ),
        (&format!("{base}strategy = \"rolling\"\n"), "strategy"),
        (&format!("{base}replicas = 0\n"), "deploy.replicas"),
        (&format!("{base}drain = 99999\n"), "deploy.drain"),
        (
            &format!("{base}[deploy.restart]\ndelay = \"1m\"\nmax_delay = \"1s\"\n"),
            "deploy.restart.max_delay",
        ),
        (&format!("{base}[env]\nX = \"${{nope}}\"\n"), "env.X"),
        (&format!("{base}[env]\nX = \"${{data_dir\"\n"), "env.X"),
        (&format!("{base}[env]\nPORT = \"1\"\n"), "env.PORT"),
        (&format!("{base}[env]\n\"1X\" = \"1\"\n"), "env.1X"),
        (&format!("{base}[resources]\ncpu = 0\n"), "resources.cpu"),
        (
            &format!("{base}[resources]\nmemory = \"lots\"\n"),
            "resources.memory",
        ),
        (
            &format!("{base}[placement]\nlabels = {{ \"a b\" = \"c\" }}\n"),
            "placement.labels",
        ),
        (&format!("{base}[placement]\nzone = \"eu\"\n"), "zone"),
        (
            "[app]\nname = \"x\"\n[deploy]\ntype = \"beam\"\nbinary = \"s\"\n",
            "deploy.command",
        ),
        (
            "[app]\nname = \"x\"\n[deploy]\ntype = \"docker\"\n",
            "docker",
        ),
        ("not toml at all [", "line 1"),
        (&format!("{base}drain = \"2h\"\n"), "deploy.drain"),
        (&format!("{base}drain = \"soon\"\n"), "deploy.drain"),
        (
            &format!("{base}[backup]\nschedule = \"every day\"\n"),
            "backup.schedule",
        ),
        (
            &format!("{base}[backup]\ntz = \"Nowhere/Else\"\n"),
            "backup.tz",
        ),
        (&format!("{base}[backup]\nkeep = 0\n"), "backup.keep"),
        (&format!("{base}[backup]\nwhen = 1\n"), "when"),
    ];
    for (text, field) in cases {
        let message = error(text);
        assert!(message.contains(field), "expected {field:?} in {message:?}");
    }
}

#[test]
fn templates() {
    assert_eq!(
        EnvTemplate::parse("plain").expect("ok").0,
        vec![EnvPart::Text("plain".into())]
    );
    assert_eq!(
        EnvTemplate::parse("a${port}b").expect("ok").0,
        vec![
            EnvPart::Text("a".into()),
            EnvPart::Port,
            EnvPart::Text("b".into())
        ]
    );
    // A lone `$`, as in a shell snippet, is kept.
    assert_eq!(
        EnvTemplate::parse("$HOME").expect("ok").0,
        vec![EnvPart::Text("$HOME".into())]
    );
    assert!(EnvTemplate::parse("${secret:}").is_err());
    assert!(EnvTemplate::parse("${secret:a b}").is_err());
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = parse(&text);
        let _ = EnvTemplate::parse(&text);
    }

    #[test]
    fn templates_without_substitutions_render_as_written(text in "[^$\\x00]{0,100}") {
        let t = EnvTemplate::parse(&text).expect("plain text parses");
        prop_assert_eq!(t.render("/d", 1, |_| None).expect("renders"), text);
    }
}

#[test]
fn drain_takes_seconds_or_a_duration() {
    let base = "[app]\nname = \"x\"\n[deploy]\ncommand = [\"run\"]\n";
    for (drain, ms) in [
        ("5", 5_000),
        ("\"5s\"", 5_000),
        ("\"1m\"", 60_000),
        ("0", 0),
    ] {
        let spec = parse(&format!("{base}drain = {drain}\n")).expect("valid");
        assert_eq!(spec.drain_ms, ms, "drain = {drain}");
    }
}

#[test]
fn cron_tables_become_periodic_jobs_in_the_apps_release() {
    let spec = parse("[app]\nname = \"shop\"\n[deploy]\ncommand = [\"x\"]\n[env]\nK = \"v\"\n[[cron]]\nname = \"report\"\nschedule = \"*/5 * * * *\"\ntz = \"Europe/Berlin\"\noverlap = \"queue\"\ncommand = \"./bin/report\"\n[[cron]]\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\n")
        .expect("valid");
    assert_eq!(spec.cron.len(), 2);
    let jobs = spec.cron_jobs("alice");
    assert_eq!(jobs[0].name, "shop-report");
    assert_eq!(jobs[0].time_zone, "Europe/Berlin");
    assert_eq!(jobs[0].overlap, crate::cron::Overlap::Queue);
    assert_eq!(jobs[0].job.command, vec!["sh", "-c", "./bin/report"]);
    assert_eq!(jobs[0].job.app.as_deref(), Some("shop"));
    assert_eq!(jobs[0].job.owner, "alice");
    assert_eq!(jobs[1].time_zone, "UTC");
    assert_eq!(jobs[1].overlap, crate::cron::Overlap::Skip);
    for job in &jobs {
        job.validate().expect("a valid periodic job");
    }
}

#[test]
fn bad_cron_tables_are_refused_naming_the_table_and_field() {
    let with = |table: &str| {
        error(&format!(
            "[app]\nname = \"shop\"\n[deploy]\ncommand = [\"x\"]\n[[cron]]\n{table}\n"
        ))
    };
    let cases = [
        ("name = \"r\"\nschedule = \"61 * * * *\"\ncommand = \"x\"", "cron[0].schedule"),
        ("name = \"r\"\nschedule = \"* * * * *\"\ntz = \"Mars/Olympus\"\ncommand = \"x\"", "cron[0].tz"),
        ("name = \"r\"\nschedule = \"* * * * *\"\noverlap = \"twice\"\ncommand = \"x\"", "cron[0].overlap"),
        ("name = \"R!\"\nschedule = \"* * * * *\"\ncommand = \"x\"", "cron[0].name"),
        ("name = \"r\"\nschedule = \"* * * * *\"\ncommand = \" \"", "cron[0].command"),
        ("name = \"r\"\nschedule = \"* * * * *\"\ncommand = \"x\"\nextra = 1", "extra"),
        ("name = \"r\"\nschedule = \"* * * * *\"\ncommand = \"x\"\n[[cron]]\nname = \"r\"\nschedule = \"* * * * *\"\ncommand = \"y\"", "cron[1].name"),
        (&format!("name = \"{}\"\nschedule = \"* * * * *\"\ncommand = \"x\"", "a".repeat(60)), "longer than 63"),
    ];
    for (table, wanted) in cases {
        let message = with(table);
        assert!(message.contains(wanted), "{wanted}: {message}");
    }
}
const WITH_POSTGRES: &str = r#"
[app]
name = "shop"

[deploy]
command = ["./server"]

[services.postgres]
version = 15
databases = ["shop", "analytics_2"]
"#;

#[test]
fn a_postgres_service_parses() {
    let spec = parse(WITH_POSTGRES).unwrap();
    assert_eq!(
        spec.services,
        vec![crate::services::ServiceSpec {
            kind: crate::services::ServiceKind::Postgres,
            version: 15,
            databases: vec!["shop".into(), "analytics_2".into()],
        }]
    );
    let text = WITH_POSTGRES.replace("version = 15", "version = \"16\"");
    assert_eq!(parse(&text).unwrap().services[0].version, 16);
    assert!(parse(FULL).unwrap().services.is_empty());
}

#[test]
fn bad_services_are_errors_that_name_them() {
    let cases = [
        (
            WITH_POSTGRES.replace("[services.postgres]", "[services.redis]"),
            "services.redis: unknown service kind \"redis\" (reef runs: postgres, nats)",
        ),
        (
            WITH_POSTGRES.replace("version = 15", "version = 9"),
            "services.postgres.version: unsupported version 9 (reef runs postgres 13 to 17)",
        ),
        (
            WITH_POSTGRES.replace("version = 15", "version = \"latest\""),
            "services.postgres.version: unsupported version \"latest\" (reef runs postgres 13 to 17)",
        ),
        (
            WITH_POSTGRES.replace("version = 15\n", ""),
            "services.postgres.version: is required (reef runs postgres 13 to 17)",
        ),
        (
            WITH_POSTGRES.replace("\"analytics_2\"", "\"Bad-Name\""),
            "services.postgres.databases[1]: \"Bad-Name\" is not a valid database name",
        ),
        (
            WITH_POSTGRES.replace("\"analytics_2\"", "\"shop\""),
            "services.postgres.databases[1]: shop is listed twice",
        ),
        (
            WITH_POSTGRES.replace("\"analytics_2\"", "\"template1\""),
            "services.postgres.databases[1]: \"template1\" is PostgreSQL's own database",
        ),
        (
            WITH_POSTGRES.replace("[\"shop\", \"analytics_2\"]", "[]"),
            "services.postgres.databases: name at least one database",
        ),
        (
            WITH_POSTGRES.replace("version = 15", "version = 15\nport = 5432"),
            "unknown field `port`",
        ),
    ];
    for (text, expected) in cases {
        let message = error(&text);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn a_nats_service_takes_no_fields() {
    let text = "[app]\nname = \"chat\"\n[deploy]\nbinary = \"s\"\n[services.nats]\n";
    let spec = parse(text).unwrap();
    assert_eq!(spec.services.len(), 1);
    assert_eq!(spec.services[0].kind, crate::services::ServiceKind::Nats);
    let message = error(&format!("{text}version = 2\n"));
    assert!(
        message.starts_with("services.nats: takes no fields"),
        "{message}"
    );
}
