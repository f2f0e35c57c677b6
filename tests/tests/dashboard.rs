//! The web dashboard in a real browser (headless Chromium over WebDriver)
//! against a real cluster: sign-in by a link from `reef ui`, views that
//! change without a reload, a deploy watched, a job's output followed,
//! a rollback clicked; and what is refused: a viewer's forced action, an
//! expired or reused link and a forged cookie, each in the audit log.
//!
//! With `REEF_SCREENSHOTS=DIR` the first test saves the main pages there
//! (a relative DIR from the repository's root; `docs/screenshots/` holds
//! the README's).

use reef_tests::app::write_app;
use reef_tests::webdriver::{self, Browser};
use reef_tests::{eventually, Cli, ReefProcess, TestCluster};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A cluster of `nodes` agents whose coordinator serves the dashboard on a
/// free port of 127.0.0.1, and that address.
async fn cluster_with_ui(nodes: usize, extra: &[&str]) -> (TestCluster, String) {
    let port = reef_tests::wait::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut flags = vec!["--ui", listen.as_str()];
    flags.extend_from_slice(extra);
    let cluster = TestCluster::start_with(nodes, &flags, |_| Vec::new()).await;
    (cluster, format!("http://{listen}"))
}

/// Where to save pictures of the pages, if anywhere (`REEF_SCREENSHOTS`).
fn screenshots() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(std::env::var_os("REEF_SCREENSHOTS")?);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Some(root.join(dir))
}

/// A sign-in link printed by `reef ui` for `cli`'s user.
async fn link(cli: &Cli) -> String {
    let out = cli.ok(&["ui"]).await;
    let link = out.stdout.trim().to_string();
    assert!(link.contains("/signin?token="), "{out:?}");
    link
}

async fn browser() -> Option<Browser> {
    if !webdriver::available() {
        // Not skipped silently where the suite runs: scripts/test.sh installs them.
        assert!(
            std::env::var_os("REEF_ALLOW_NO_BROWSER").is_some(),
            "chromium and chromedriver are needed (scripts/lib.sh ensure_browser_tools)"
        );
        return None;
    }
    Some(Browser::start().await.expect("start chromium"))
}

/// The audit log's entries as JSON, as the admin reads them.
async fn audit(cli: &Cli) -> Vec<serde_json::Value> {
    let out = cli.ok(&["audit", "--since", "1h", "--json"]).await;
    out.json()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_audited(
    cli: &Cli,
    what: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(what, WAIT, || async {
        audit(cli).await.into_iter().find(|e| matches(e))
    })
    .await
}

/// Opens `url` and reads the reason its refusal page gives.
async fn refusal(browser: &Browser, url: &str) -> String {
    browser.goto(url).await.expect("open the page");
    browser
        .text("#reason")
        .await
        .expect("page")
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_signs_in_and_watches_nodes_deploys_jobs_and_rolls_back() {
    let Some(browser) = browser().await else {
        return;
    };
    let (cluster, base) = cluster_with_ui(1, &[]).await;
    let deployer = Cli::user(&cluster.nats.url, "deployer", "dana");

    // The link signs in and leaves no token in the address.
    browser
        .goto(&link(&deployer).await)
        .await
        .expect("open the link");
    let url = browser.url().await.expect("url");
    assert_eq!(
        url.trim_end_matches('/'),
        base,
        "redirected to the dashboard"
    );
    browser
        .wait_text("the signed-in user", "#who", WAIT, |t| {
            t == "dana (deployer)"
        })
        .await;
    browser
        .wait_text(
            "node-1 on the nodes page",
            "#nodes tr[data-node=node-1]",
            WAIT,
            |t| t.contains("ready"),
        )
        .await;

    // A node that joins appears without a reload: a mark set on the page
    // survives.
    browser
        .run_async("window.reefMark = 42; arguments[0](true);", json!([]))
        .await
        .expect("mark the page");
    let _node2 = ReefProcess::agent(&cluster.nats.url, cluster.dir.path(), "node-2", &[]);
    browser
        .wait_text(
            "node-2 appears live",
            "#nodes tr[data-node=node-2]",
            WAIT,
            |t| t.contains("ready"),
        )
        .await;
    let mark = browser
        .run_async("arguments[0](window.reefMark || null);", json!([]))
        .await
        .expect("read the mark");
    assert_eq!(mark, json!(42), "the page was not reloaded");
    if let Some(dir) = screenshots() {
        browser
            .screenshot(&dir.join("nodes.png"))
            .await
            .expect("screenshot");
    }

    // A deploy from the CLI: its replica turns healthy on the page.
    browser.click("a[data-page=apps]").await.expect("apps page");
    let v1 = cluster.dir.path().join("v1");
    write_app(&v1, "v1", 200, "");
    let deploy = {
        let cli = deployer.clone();
        let dir = v1.clone();
        tokio::spawn(async move { cli.run(&["deploy", dir.to_str().expect("path")]).await })
    };
    browser
        .wait_text(
            "the replica turns healthy",
            ".app[data-app=hello] tr.instance[data-state=healthy]",
            WAIT,
            |t| t.contains("healthy"),
        )
        .await;
    let deployed = deploy.await.expect("deploy task");
    assert_eq!(deployed.code, Some(0), "{deployed:?}");
    let v2 = cluster.dir.path().join("v2");
    write_app(&v2, "v2", 200, "");
    deployer.ok(&["deploy", v2.to_str().expect("path")]).await;
    browser
        .wait_text("release 2 healthy", ".app[data-app=hello] h3", WAIT, |t| {
            t.contains("release 2") && t.contains("1/1 healthy")
        })
        .await;
    // Requests through the proxies show on the app's chart.
    for _ in 0..20 {
        let answer = reef_tests::http::get(cluster.proxy_port("node-1"), "hello.test", "/")
            .await
            .expect("a request through the proxy");
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    browser
        .wait_text(
            "the requests on the chart",
            ".app[data-app=hello] .traffic",
            WAIT,
            |t| {
                t.split(' ')
                    .next()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n >= 20)
            },
        )
        .await;
    if let Some(dir) = screenshots() {
        browser
            .screenshot(&dir.join("apps.png"))
            .await
            .expect("screenshot");
    }

    // Roll back from the page: release 3, a copy of 1, in the audit log as dana.
    browser
        .click(".app[data-app=hello] button[data-action='app.rollback']")
        .await
        .expect("click roll back");
    browser
        .wait_text(
            "the rollback's release healthy",
            ".app[data-app=hello] h3",
            WAIT,
            |t| t.contains("release 3") && t.contains("1/1 healthy"),
        )
        .await;
    let status = deployer.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["release"], 3, "{status}");

    // Scaled out from the page: a second healthy replica.
    browser
        .fill(".app[data-app=hello] input", "2")
        .await
        .expect("type the replicas");
    browser
        .click(".app[data-app=hello] button[data-action='app.scale']")
        .await
        .expect("click scale");
    browser
        .wait_text(
            "two healthy replicas",
            ".app[data-app=hello] h3",
            WAIT,
            |t| t.contains("2/2 healthy"),
        )
        .await;
    wait_audited(
        &Cli::new(&cluster.nats.url),
        "dana's rollback in the audit log",
        |e| e["verb"] == "app.rollback" && e["user"] == "dana" && e["outcome"] == "done",
    )
    .await;

    // A running job's output, followed as it is written.
    let job = cluster
        .cli
        .submit(&[
            "sh",
            "-c",
            "for i in $(seq 1 200); do echo line-$i; sleep 0.2; done",
        ])
        .await;
    browser
        .goto(&format!("{base}/#jobs/{job}"))
        .await
        .expect("job page");
    browser
        .wait_text("the first lines", "pre#log", WAIT, |t| t.contains("line-3"))
        .await;
    let later = browser
        .wait_text("lines written later", "pre#log", WAIT, |t| {
            t.contains("line-12")
        })
        .await;
    assert!(
        later.contains("line-1\n") || later.starts_with("line-1"),
        "{later}"
    );
    // The output so far, as a download.
    let downloaded = browser
        .run_async(
            "fetch(document.getElementById('download').href)
               .then(r => r.text().then(t => arguments[0]([r.status, r.headers.get('content-disposition'), t])));",
            json!([]),
        )
        .await
        .expect("download");
    assert_eq!(downloaded[0], 200, "{downloaded}");
    assert!(
        downloaded[1]
            .as_str()
            .unwrap_or_default()
            .contains("attachment"),
        "{downloaded}"
    );
    assert!(
        downloaded[2]
            .as_str()
            .unwrap_or_default()
            .starts_with("line-1\nline-2\n"),
        "{downloaded}"
    );
    if let Some(dir) = screenshots() {
        browser
            .screenshot(&dir.join("jobs.png"))
            .await
            .expect("screenshot");
    }
    cluster.cli.ok(&["job", "stop", &job]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_forged_cookies_and_spent_links_are_refused_and_audited() {
    let Some(browser) = browser().await else {
        return;
    };
    let (cluster, base) = cluster_with_ui(1, &["--ui-link-ttl", "4s"]).await;
    let admin = Cli::new(&cluster.nats.url);
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;

    // A viewer sees the app and no action on it.
    let viewer = Cli::user(&cluster.nats.url, "viewer", "vic");
    let vic_link = link(&viewer).await;
    browser.goto(&vic_link).await.expect("open the link");
    browser
        .goto(&format!("{base}/#apps"))
        .await
        .expect("apps page");
    browser
        .wait_text(
            "the app, for a viewer",
            ".app[data-app=hello] h3",
            WAIT,
            |t| t.contains("1/1 healthy"),
        )
        .await;
    let buttons = browser.texts(".app button").await.expect("buttons");
    assert!(buttons.is_empty(), "a viewer sees no actions: {buttons:?}");

    // Forced, with the viewer's own cookie and form token: the API refuses
    // it and the audit log has it as vic's.
    let forced = browser
        .run_async(
            "const done = arguments[0];
             fetch('/session').then(r => r.json()).then(s => fetch('/action', {
               method: 'POST',
               headers: {'content-type': 'application/json', 'x-reef-csrf': s.csrf},
               body: JSON.stringify({verb: 'app.rollback', app: 'hello'}),
             })).then(r => r.json().then(b => done([r.status, b.error])));",
            json!([]),
        )
        .await
        .expect("post as the viewer");
    assert_eq!(forced[0], 403, "{forced}");
    assert!(
        forced[1].as_str().unwrap_or_default().contains("deployer"),
        "{forced}"
    );
    wait_audited(&admin, "vic's refused rollback", |e| {
        e["verb"] == "app.rollback" && e["user"] == "vic" && e["outcome"] == "refused"
    })
    .await;
    // Without the form token, refused before any call.
    let no_token = browser
        .run_async(
            "fetch('/action', {method: 'POST', headers: {'content-type': 'application/json'},
               body: JSON.stringify({verb: 'app.stop', app: 'hello'})})
             .then(r => arguments[0](r.status));",
            json!([]),
        )
        .await
        .expect("post without a token");
    assert_eq!(no_token, json!(403));

    // A link works once.
    let reason = refusal(&browser, &vic_link).await;
    assert!(reason.contains("used already"), "{reason}");
    wait_audited(&admin, "the reused link", |e| {
        e["verb"] == "ui.signin"
            && e["outcome"] == "refused"
            && e["error"]
                .as_str()
                .unwrap_or_default()
                .contains("used already")
    })
    .await;

    // A forged cookie: the viewer's, made to say admin.
    let cookie = browser.cookie("reef_session").await.expect("cookie");
    let forged = cookie.replacen(".viewer.", ".admin.", 1);
    assert_ne!(forged, cookie);
    browser
        .set_cookie("reef_session", &forged)
        .await
        .expect("set cookie");
    let reason = refusal(&browser, &format!("{base}/")).await;
    assert!(reason.contains("forged"), "{reason}");
    wait_audited(&admin, "the forged cookie", |e| {
        e["verb"] == "ui.session"
            && e["user"] == "vic"
            && e["outcome"] == "refused"
            && e["error"].as_str().unwrap_or_default().contains("forged")
    })
    .await;

    // A user removed after signing in is signed out.
    let creds = cluster.dir.path().join("rita.creds");
    let creds_arg = creds.to_str().expect("path");
    admin
        .ok(&[
            "user", "add", "rita", "--role", "deployer", "--out", creds_arg,
        ])
        .await;
    let rita = Cli::with_creds(
        &cluster.nats.url.to_string(),
        &creds,
        &cluster.nats.url.ca(),
    );
    browser.goto(&link(&rita).await).await.expect("rita's link");
    browser
        .wait_text("rita signed in", "#who", WAIT, |t| t == "rita (deployer)")
        .await;
    admin.ok(&["user", "rm", "rita"]).await;
    let reason = refusal(&browser, &format!("{base}/")).await;
    assert!(reason.contains("removed"), "{reason}");

    // An expired link: the coordinator gives links 4s here.
    let late = link(&admin).await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let reason = refusal(&browser, &late).await;
    assert!(reason.contains("expired"), "{reason}");
    wait_audited(&admin, "the expired link", |e| {
        e["verb"] == "ui.signin"
            && e["user"] == "admin"
            && e["outcome"] == "refused"
            && e["error"].as_str().unwrap_or_default().contains("expired")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_with_a_creds_file_and_a_nodes_is_refused() {
    let Some(browser) = browser().await else {
        return;
    };
    let (cluster, base) = cluster_with_ui(1, &[]).await;
    let admin = Cli::new(&cluster.nats.url);
    let vera = cluster.nats.url.user_creds("viewer", "vera");
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("the sign-in page");
    browser
        .send_keys("#creds", vera.to_str().expect("path"))
        .await
        .expect("choose the file");
    browser.click("#creds-signin").await.expect("sign in");
    browser
        .wait_text("vera signed in", "#who", WAIT, |t| t == "vera (viewer)")
        .await;
    browser
        .wait_text("the nodes", "#nodes tr[data-node=node-1]", WAIT, |t| {
            t.contains("ready")
        })
        .await;

    // A node's credential is not a user's: refused, and in the audit log.
    browser.clear_cookies().await.expect("sign out");
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("the sign-in page");
    let node = cluster.nats.url.node_creds("dedicated");
    browser
        .send_keys("#creds", node.to_str().expect("path"))
        .await
        .expect("choose the file");
    browser.click("#creds-signin").await.expect("sign in");
    browser
        .wait_text("the refusal", "#creds-error", WAIT, |t| {
            t.contains("only users'")
        })
        .await;
    wait_audited(&admin, "the node's credential refused", |e| {
        e["verb"] == "ui.signin"
            && e["outcome"] == "refused"
            && e["error"]
                .as_str()
                .unwrap_or_default()
                .contains("only users'")
    })
    .await;
}

/// Reads a response's head and body from `addr` until `until` appears in
/// it, within 30 s: for a stream of events that does not end.
async fn read_until(addr: &str, request: &str, until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        while !String::from_utf8_lossy(&seen).contains(until) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before {until:?}: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).to_string()
    };
    tokio::time::timeout(WAIT, io)
        .await
        .unwrap_or_else(|_| panic!("no {until:?} from {addr} within 30s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_coordinator_serves_the_dashboard_and_honours_the_others_links_and_sessions() {
    let (cluster, leader) = cluster_with_ui(1, &[]).await;
    let follower_addr = format!("127.0.0.1:{}", reef_tests::wait::free_port());
    let mut second = ReefProcess::coordinator(
        &cluster.nats.url,
        cluster.dir.path(),
        &["--ui", &follower_addr, "--name", "second"],
    );
    let follower = format!("http://{follower_addr}");
    let port: u16 = follower_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    eventually("the second coordinator's dashboard", WAIT, || async {
        reef_tests::http::get(port, &follower_addr, "/").await.ok()
    })
    .await;
    // Links are issued by whichever coordinator answers; each works on
    // either dashboard.
    let viewer = Cli::user(&cluster.nats.url, "viewer", "vic");
    let link = viewer
        .ok(&["ui", "--url", &follower])
        .await
        .stdout
        .trim()
        .to_string();
    assert!(
        link.starts_with(&format!("{follower}/signin?token=")),
        "{link}"
    );
    let path = link.strip_prefix(&follower).expect("path").to_string();
    let signed_in = reef_tests::http::get(port, &follower_addr, &path)
        .await
        .expect("sign in");
    assert_eq!(
        signed_in.status,
        303,
        "{signed_in:?}\n{}",
        second.log_text()
    );
    let cookie = signed_in
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.split(';').next())
        .expect("a cookie")
        .to_string();

    // The session works on the other coordinator's dashboard too, and both
    // push the cluster's nodes.
    for base in [&follower, &leader] {
        let addr = base.trim_start_matches("http://");
        let request = format!(
            "GET /events HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        let events = read_until(addr, &request, "node-1").await;
        assert!(events.starts_with("HTTP/1.1 200"), "{events}");
        assert!(events.contains("event: nodes"), "{events}");
    }
    second.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_prints_its_dashboard_and_reef_ui_signs_in_there_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = reef_tests::dev::ReefDev::start(&["--nodes", "1", "--port", "0"], dir.path());
    let exports = dev.printed("export REEF_NATS_URL=").await;
    let url = exports
        .split_whitespace()
        .next()
        .expect("a NATS URL")
        .to_string();
    let printed = dev.printed("dashboard: http://").await;
    let addr = printed.split('/').next().expect("an address").to_string();
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let cli = Cli::for_dev(&url, dir.path());
    assert_eq!(cli.wait_for_nodes(1).await.len(), 1);
    let link = link(&cli).await;
    let path = link
        .strip_prefix(&format!("http://{addr}"))
        .unwrap_or_else(|| panic!("{link} is not on the printed dashboard {addr}"))
        .to_string();

    let signed_in = reef_tests::http::get(port, &addr, &path)
        .await
        .expect("sign in");
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    let header = |name: &str| {
        signed_in
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("location"), "/");
    let set_cookie = header("set-cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("a cookie").to_string();
    let request =
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    let page = reef_tests::http::send(port, request.as_bytes())
        .await
        .expect("the page");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("/app.js"), "{}", page.body);

    let again = reef_tests::http::get(port, &addr, &path)
        .await
        .expect("the link again");
    assert_eq!(again.status, 401, "{again:?}");
    let anonymous = reef_tests::http::get(port, &addr, "/")
        .await
        .expect("no cookie");
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    dev.terminate().await;
}
