use super::*;

/// The value of the sample named exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[test]
fn requests_are_counted_by_app_and_class() {
    let metrics = Metrics::new();
    metrics.record("web", StatusCode::OK, Duration::from_millis(3));
    metrics.record("web", StatusCode::CREATED, Duration::from_millis(3));
    metrics.record("web", StatusCode::BAD_GATEWAY, Duration::from_millis(3));
    metrics.record("", StatusCode::NOT_FOUND, Duration::ZERO);
    metrics.record("api", StatusCode::SWITCHING_PROTOCOLS, Duration::ZERO);
    let text = metrics.render();
    let count = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}"));
    assert_eq!(
        count(r#"reef_proxy_requests_total{app="web",class="2xx"}"#),
        "2"
    );
    assert_eq!(
        count(r#"reef_proxy_requests_total{app="web",class="5xx"}"#),
        "1"
    );
    assert_eq!(
        count(r#"reef_proxy_requests_total{app="web",class="4xx"}"#),
        "0"
    );
    assert_eq!(
        count(r#"reef_proxy_requests_total{app="",class="4xx"}"#),
        "1"
    );
    assert_eq!(
        count(r#"reef_proxy_requests_total{app="api",class="1xx"}"#),
        "1"
    );
}

#[test]
fn the_histogram_is_cumulative_with_sum_and_count() {
    let metrics = Metrics::new();
    metrics.record("web", StatusCode::OK, Duration::from_micros(500));
    metrics.record("web", StatusCode::OK, Duration::from_millis(1));
    metrics.record("web", StatusCode::OK, Duration::from_millis(40));
    metrics.record("web", StatusCode::OK, Duration::from_secs(30));
    let text = metrics.render();
    let bucket = |le: &str| {
        let series =
            format!(r#"reef_proxy_request_duration_seconds_bucket{{app="web",le="{le}"}}"#);
        sample(&text, &series).unwrap_or_else(|| panic!("{series}"))
    };
    assert_eq!(bucket("0.001"), "2", "the bound is inclusive");
    assert_eq!(bucket("0.025"), "2");
    assert_eq!(bucket("0.05"), "3");
    assert_eq!(bucket("10"), "3");
    assert_eq!(bucket("+Inf"), "4");
    assert_eq!(
        sample(
            &text,
            r#"reef_proxy_request_duration_seconds_count{app="web"}"#
        )
        .as_deref(),
        Some("4")
    );
    let sum: f64 = sample(
        &text,
        r#"reef_proxy_request_duration_seconds_sum{app="web"}"#,
    )
    .expect("sum")
    .parse()
    .expect("a number");
    assert!((sum - 30.0415).abs() < 1e-9, "{sum}");
}

#[test]
fn every_family_has_help_and_type() {
    let metrics = Metrics::new();
    metrics.record("web", StatusCode::OK, Duration::ZERO);
    let text = metrics.render();
    for (family, kind) in [
        ("reef_proxy_requests_total", "counter"),
        ("reef_proxy_request_duration_seconds", "histogram"),
        ("reef_proxy_open_connections", "gauge"),
        ("reef_proxy_tls_handshake_failures_total", "counter"),
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family}"
        );
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn open_connections_follow_their_guards() {
    let metrics = Metrics::new();
    let first = metrics.connection_opened();
    let second = metrics.connection_opened();
    assert_eq!(metrics.open_connections(), 2);
    drop(first);
    assert_eq!(
        sample(&metrics.render(), "reef_proxy_open_connections").as_deref(),
        Some("1")
    );
    drop(second);
    assert_eq!(metrics.open_connections(), 0);
    metrics.handshake_failed();
    assert_eq!(
        sample(&metrics.render(), "reef_proxy_tls_handshake_failures_total").as_deref(),
        Some("1")
    );
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label("a\nb"), r"a\nb");
    let metrics = Metrics::new();
    metrics.record("we\"ird", StatusCode::OK, Duration::ZERO);
    let text = metrics.render();
    assert!(
        text.contains(r#"reef_proxy_requests_total{app="we\"ird",class="2xx"} 1"#),
        "{text}"
    );
}

#[test]
fn odd_statuses_fall_into_the_nearest_class() {
    let metrics = Metrics::new();
    let odd = StatusCode::from_u16(599).expect("status");
    metrics.record("web", odd, Duration::ZERO);
    assert_eq!(
        sample(
            &metrics.render(),
            r#"reef_proxy_requests_total{app="web",class="5xx"}"#
        )
        .as_deref(),
        Some("1")
    );
}

#[test]
fn traffic_sums_each_apps_requests_errors_and_latency_for_the_heartbeat() {
    let metrics = Metrics::new();
    metrics.record("web", StatusCode::OK, Duration::from_millis(3));
    metrics.record("web", StatusCode::BAD_GATEWAY, Duration::from_millis(5));
    metrics.record("api", StatusCode::OK, Duration::from_micros(7));
    metrics.record("", StatusCode::NOT_FOUND, Duration::ZERO);
    let traffic = metrics.traffic(10);
    assert_eq!(
        traffic,
        vec![
            AppCounts {
                app: "api".into(),
                requests: 1,
                errors: 0,
                latency_micros: 7,
            },
            AppCounts {
                app: "web".into(),
                requests: 2,
                errors: 1,
                latency_micros: 8_000,
            },
        ]
    );
    assert_eq!(metrics.traffic(1).len(), 1, "bounded");
}
