use super::*;
use proptest::prelude::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn next(schedule: &str, tz: &str, after: &str) -> String {
    let schedule = Schedule::parse(schedule).expect("schedule");
    let tz = time_zone(tz).expect("time zone");
    schedule
        .next_after(at(after), &tz)
        .expect("a next tick")
        .to_string()
}

/// `n` ticks after `after`, as UTC instants.
fn ticks(schedule: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::parse(schedule).expect("schedule");
    let tz = time_zone(tz).expect("time zone");
    let mut t = at(after);
    (0..n)
        .map(|_| {
            t = schedule.next_after(t, &tz).expect("a next tick");
            t.to_string()
        })
        .collect()
}

#[test]
fn plain_schedules_fire_when_crontab_says() {
    assert_eq!(
        next("*/5 * * * *", "UTC", "2026-12-07T12:03:10Z"),
        "2026-12-07T12:05:00Z"
    );
    assert_eq!(
        next("*/5 * * * *", "UTC", "2026-12-07T12:05:00Z"),
        "2026-12-07T12:10:00Z"
    );
    assert_eq!(
        next("* * * * * *", "UTC", "2026-12-07T12:03:10.5Z"),
        "2026-12-07T12:03:11Z"
    );
    assert_eq!(
        next("*/15 * * * * *", "UTC", "2026-12-07T12:03:50Z"),
        "2026-12-07T12:04:00Z"
    );
    assert_eq!(
        next("@daily", "UTC", "2026-12-07T12:00:00Z"),
        "2026-12-08T00:00:00Z"
    );
    assert_eq!(
        next("@hourly", "UTC", "2026-12-07T12:00:00Z"),
        "2026-12-07T13:00:00Z"
    );
    assert_eq!(
        next("@weekly", "UTC", "2026-12-07T12:00:00Z"),
        "2026-12-13T00:00:00Z"
    );
    assert_eq!(
        next("@monthly", "UTC", "2026-12-07T12:00:00Z"),
        "2027-01-01T00:00:00Z"
    );
    assert_eq!(
        next("@yearly", "UTC", "2026-12-07T12:00:00Z"),
        "2027-01-01T00:00:00Z"
    );
    // Names, ranges, lists and steps; Sunday as 0 and 7.
    assert_eq!(
        next("0 9 * jan-mar mon-fri", "UTC", "2026-12-07T12:00:00Z"),
        "2027-01-01T09:00:00Z"
    );
    assert_eq!(
        next("0 0 * * 7", "UTC", "2026-12-07T12:00:00Z"),
        "2026-12-13T00:00:00Z"
    );
    assert_eq!(
        next("0 0 * * SUN", "UTC", "2026-12-07T12:00:00Z"),
        "2026-12-13T00:00:00Z"
    );
    assert_eq!(
        next("10,20 8-10/2 * * *", "UTC", "2026-12-07T08:20:00Z"),
        "2026-12-07T10:10:00Z"
    );
    assert_eq!(
        next("0 5/6 * * *", "UTC", "2026-12-07T12:00:00Z"),
        "2026-12-07T17:00:00Z"
    );
    // Leap days only.
    assert_eq!(
        next("0 0 29 2 *", "UTC", "2026-12-07T12:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    // In a zone: 9:00 in Berlin is 8:00 UTC in winter.
    assert_eq!(
        next("0 9 * * *", "Europe/Berlin", "2026-12-07T12:00:00Z"),
        "2026-12-08T08:00:00Z"
    );
}

#[test]
fn day_of_month_and_day_of_week_both_restricted_match_either() {
    // crontab(5): the 13th, and every Friday.
    let got = ticks("0 0 13 * fri", "UTC", "2026-11-01T00:00:00Z", 4);
    assert_eq!(
        got,
        [
            "2026-11-06T00:00:00Z",
            "2026-11-13T00:00:00Z",
            "2026-11-20T00:00:00Z",
            "2026-11-27T00:00:00Z",
        ]
    );
    // One of them `*`: both must match (every Friday the 13th).
    assert_eq!(
        next("0 0 13 * fri", "UTC", "2026-11-13T00:00:00Z"),
        "2026-11-20T00:00:00Z"
    );
    assert_eq!(
        next("0 0 13 */1 5", "UTC", "2026-11-13T00:00:00Z"),
        "2026-11-20T00:00:00Z"
    );
    assert_eq!(
        next("0 0 */1 * 5", "UTC", "2026-11-14T00:00:00Z"),
        "2026-11-20T00:00:00Z"
    );
    assert_eq!(
        next("0 0 13 * *", "UTC", "2026-11-14T00:00:00Z"),
        "2026-12-13T00:00:00Z"
    );
}

// New York, 2026: clocks go from 2:00 EST to 3:00 EDT on 8 March, and from
// 2:00 EDT back to 1:00 EST on 1 November.

#[test]
fn a_daily_time_the_clock_skips_fires_once_when_the_skip_ends() {
    let got = ticks("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-03-08T07:00:00Z", // 3:00 EDT, the end of the skipped hour
            "2026-03-09T06:30:00Z", // 2:30 EDT
            "2026-03-10T06:30:00Z",
        ]
    );
    // Several skipped times make one tick.
    let got = ticks(
        "0,15,30 2 * * *",
        "America/New_York",
        "2026-03-08T05:00:00Z",
        2,
    );
    assert_eq!(got, ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]);
}

#[test]
fn an_hourly_schedule_has_no_ticks_in_a_skipped_hour() {
    let got = ticks(
        "*/30 * * * *",
        "America/New_York",
        "2026-03-08T06:00:00Z",
        3,
    );
    // 1:30 EST, then 3:00 and 3:30 EDT: 2:00 and 2:30 never happen.
    assert_eq!(
        got,
        [
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z"
        ]
    );
}

#[test]
fn a_daily_time_that_happens_twice_fires_the_first_time_only() {
    let got = ticks("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-11-01T05:30:00Z", // 1:30 EDT
            "2026-11-02T06:30:00Z", // 1:30 EST the next day, not an hour later
            "2026-11-03T06:30:00Z",
        ]
    );
}

#[test]
fn an_hourly_schedule_fires_in_both_passes_of_a_repeated_hour() {
    let got = ticks(
        "*/30 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        5,
    );
    assert_eq!(
        got,
        [
            "2026-11-01T05:00:00Z", // 1:00 EDT
            "2026-11-01T05:30:00Z", // 1:30 EDT
            "2026-11-01T06:00:00Z", // 1:00 EST
            "2026-11-01T06:30:00Z", // 1:30 EST
            "2026-11-01T07:00:00Z", // 2:00 EST
        ]
    );
    // From inside the second pass.
    assert_eq!(
        next("*/30 * * * *", "America/New_York", "2026-11-01T06:10:00Z"),
        "2026-11-01T06:30:00Z"
    );
    // From inside the first pass, the second pass's ticks still follow.
    assert_eq!(
        next("*/30 * * * *", "America/New_York", "2026-11-01T05:40:00Z"),
        "2026-11-01T06:00:00Z"
    );
    // Every second through the change: 3600 more ticks than wall seconds.
    let schedule = Schedule::parse("* * * * * *").expect("schedule");
    let tz = time_zone("America/New_York").expect("tz");
    let mut t = at("2026-11-01T04:59:59Z");
    for _ in 0..7200 {
        let n = schedule.next_after(t, &tz).expect("next");
        assert_eq!(n.as_second() - t.as_second(), 1, "after {t}");
        t = n;
    }
}

#[test]
fn half_hour_changes_and_other_zones() {
    // Lord Howe Island moves its clocks by 30 minutes: 2:00 → 2:30 on
    // 4 October 2026.
    let got = ticks(
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00Z",
        2,
    );
    assert_eq!(got, ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]);
    // London: 1:00 GMT → 2:00 BST on 29 March 2026.
    assert_eq!(
        next("30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z"),
        "2026-03-29T01:00:00Z"
    );
}

#[test]
fn bad_schedules_say_which_field_and_why() {
    let cases = [
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("60 * * * *", "minute field \"60\""),
        ("* 24 * * *", "hour field \"24\""),
        ("* * 0 * *", "day-of-month field \"0\""),
        ("* * * 13 *", "month field \"13\""),
        ("* * * * 8", "day-of-week field \"8\""),
        ("* * * foo *", "a name (jan"),
        ("*/0 * * * *", "step \"0\""),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "a value is missing"),
        ("@every 5m", "is not a schedule"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("", "has 0 fields"),
    ];
    for (text, expected) in cases {
        let err = Schedule::parse(text).expect_err(text).to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    assert!(Schedule::parse(&"1,".repeat(200)).is_err());
}

#[test]
fn time_zones_are_iana_names() {
    assert!(time_zone("UTC").is_ok());
    assert!(time_zone("Europe/Berlin").is_ok());
    for bad in [
        "",
        "Mars/Olympus",
        "Europe/Berlin ",
        "../../etc/passwd",
        "CEST+2",
    ] {
        let err = time_zone(bad).expect_err(bad);
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

fn field(max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (0..=max).prop_map(|n| n.to_string()),
        (1..=max).prop_map(|n| format!("*/{n}")),
        (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        prop::collection::vec(0..=max, 1..4).prop_map(|v| v
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

fn day_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (1u32..=28).prop_map(|n| n.to_string())
    ]
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsing_never_panics(text in ".{0,80}") {
        let _ = Schedule::parse(&text);
    }

    #[test]
    fn parsing_field_like_text_never_panics(
        text in "[0-9*/,a-zA-Z@ -]{0,40}"
    ) {
        let _ = Schedule::parse(&text);
    }

    /// The next tick is later, and nothing in between has another next
    /// tick: no tick is skipped, none is early.
    #[test]
    fn the_next_tick_is_the_first_after(
        sec in field(59), min in field(59), hour in field(23), day in day_field(),
        tz in zone(),
        start in 1_700_000_000i64..1_900_000_000,
        fraction in 0.0f64..1.0,
    ) {
        let text = format!("{sec} {min} {hour} {day} * *");
        let schedule = Schedule::parse(&text).expect("valid");
        let tz = time_zone(tz).expect("tz");
        let after = Timestamp::from_second(start).expect("ts");
        let next = schedule.next_after(after, &tz).expect("a next tick");
        prop_assert!(next > after);
        let gap = next.as_second() - after.as_second();
        let inside = Timestamp::from_second(after.as_second() + (gap as f64 * fraction) as i64).expect("ts");
        if inside < next {
            prop_assert_eq!(schedule.next_after(inside, &tz), Some(next));
        }
        // In UTC a tick's wall time matches every field.
        if tz == TimeZone::UTC {
            let wall = tz.to_datetime(next);
            prop_assert!(has(schedule.seconds, wall.second() as u32));
            prop_assert!(has(schedule.minutes, wall.minute() as u32));
            prop_assert!(has(schedule.hours, wall.hour() as u32));
            prop_assert!(schedule.day_matches(wall.date()));
        }
    }
}
