//! Cron schedules: the five fields of crontab(5) (minute, hour, day of
//! month, month, day of week), or six with seconds first, read strictly;
//! and the instants at which one fires in a time zone.
//!
//! A schedule names wall-clock times. Where a daylight-saving change makes
//! a wall time happen twice or not at all, the rule is the one cron
//! implementations converged on:
//!
//! - a schedule that fires in every hour (its hour field is `*`) follows
//!   the clock: a skipped hour has no ticks, a repeated hour has its ticks
//!   twice;
//! - any other schedule fires at a wall time once: a time that happens
//!   twice fires the first time only, and a time the clock skips fires
//!   when the skip ends (one tick for all the times it skipped).

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan as _};

/// The longest schedule text accepted.
pub const MAX_SCHEDULE_BYTES: usize = 256;

/// How far ahead a schedule is searched for its next tick; one that never
/// fires within this many years (`0 0 30 2 *`) is refused.
const SEARCH_YEARS: i16 = 8;

/// A field's values as bits (bit n: value n).
type Bits = u64;

/// A parsed schedule. Built only by [`Schedule::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    seconds: Bits,
    minutes: Bits,
    hours: Bits,
    days: Bits,
    months: Bits,
    weekdays: Bits,
    /// Day of month and day of week were both restricted: a day matches
    /// either (crontab(5)); otherwise both.
    either_day: bool,
}

/// Why a schedule was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Shape(String),
    #[error("{field} field {text:?}: {why}")]
    Field {
        field: &'static str,
        text: String,
        why: String,
    },
    #[error("{0:?} never fires: no date matches its day and month fields")]
    Never(String),
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
// 7 is Sunday too; folded into 0 after parsing.
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Schedule {
    /// Reads `min hour dom month dow`, `sec min hour dom month dow`, or one
    /// of `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
    /// (`@midnight`), `@hourly`. Fields take `*`, numbers, names (`jan`,
    /// `mon`), ranges `a-b`, steps `*/n` and `a-b/n`, and lists of these.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        if text.len() > MAX_SCHEDULE_BYTES {
            return Err(ScheduleError::Shape(format!(
                "a schedule is at most {MAX_SCHEDULE_BYTES} bytes"
            )));
        }
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(ScheduleError::Shape(format!(
                    "{other:?} is not a schedule: the shorthands are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly"
                )))
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(ScheduleError::Shape(format!(
                    "{text:?} has {n} fields; a schedule has five (minute hour day-of-month month day-of-week), or six with seconds first"
                )))
            }
        };
        let mut weekdays = parse_field(rest[4], &WEEKDAY)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let schedule = Self {
            seconds: parse_field(seconds, &SECOND)?,
            minutes: parse_field(rest[0], &MINUTE)?,
            hours: parse_field(rest[1], &HOUR)?,
            days: parse_field(rest[2], &DAY)?,
            months: parse_field(rest[3], &MONTH)?,
            weekdays,
            either_day: !rest[2].starts_with('*') && !rest[4].starts_with('*'),
        };
        // A day-and-month combination that never exists (30 February).
        let from = Date::constant(2000, 1, 1).at(0, 0, 0, 0);
        if schedule.next_civil(from).is_none() {
            return Err(ScheduleError::Never(text.trim().to_string()));
        }
        Ok(schedule)
    }

    /// Whether it fires in every hour of the day (and so follows the clock
    /// through daylight-saving changes).
    fn every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days, date.day() as u32);
        let dow = has(self.weekdays, date.weekday().to_sunday_zero_offset() as u32);
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first wall time at or after `from` (whole seconds) that matches
    /// every field, within [`SEARCH_YEARS`].
    fn next_civil(&self, from: DateTime) -> Option<DateTime> {
        let mut t = if from.subsec_nanosecond() > 0 {
            from.with()
                .subsec_nanosecond(0)
                .build()
                .ok()?
                .checked_add(1.second())
                .ok()?
        } else {
            from
        };
        let limit = from.year().checked_add(SEARCH_YEARS)?;
        while t.year() <= limit {
            if !has(self.months, t.month() as u32) {
                t = first_of_next_month(t.date())?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            let Some(hour) = next_bit(self.hours, t.hour() as u32, 23) else {
                t = t.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            };
            if hour != t.hour() as u32 {
                t = t.date().at(hour as i8, 0, 0, 0);
            }
            let Some(minute) = next_bit(self.minutes, t.minute() as u32, 59) else {
                t = next_hour(t)?;
                continue;
            };
            if minute != t.minute() as u32 {
                t = t.date().at(t.hour(), minute as i8, 0, 0);
            }
            let Some(second) = next_bit(self.seconds, t.second() as u32, 59) else {
                t = t
                    .date()
                    .at(t.hour(), t.minute(), 0, 0)
                    .checked_add(1.minute())
                    .ok()?;
                continue;
            };
            return Some(t.date().at(t.hour(), t.minute(), second as i8, 0));
        }
        None
    }

    /// The instant a matching wall time fires at on its first (or only)
    /// pass, if it fires: see the module's rule.
    fn first_instant(&self, wall: DateTime, tz: &TimeZone) -> Option<Timestamp> {
        match tz.to_ambiguous_timestamp(wall).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(wall).ok(),
            // The earlier of the two: the offset in force before the change.
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(wall).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                if self.every_hour() {
                    return None;
                }
                // When the skip ends: the change itself, the first instant
                // after the wall time read with the new offset.
                let inside = after.to_timestamp(wall).ok()?;
                tz.following(inside).next().map(|change| change.timestamp())
            }
        }
    }

    /// The first tick strictly after `after` in `tz`, or None if there is
    /// none within [`SEARCH_YEARS`].
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // First passes: wall time and instant rise together, so the first
        // match from `after`'s own wall time on that fires later is next.
        let mut from = tz.to_datetime(after);
        // In the second pass of a repeated hour, the rest of that hour's
        // wall times had their first pass already: start where it ends.
        if let Some(change) = tz.preceding(after.checked_add(1.nanosecond()).ok()?).next() {
            let before = tz.to_offset(change.timestamp().checked_sub(1.second()).ok()?);
            if before.seconds() > change.offset().seconds() {
                from = from.max(before.to_datetime(change.timestamp()));
            }
        }
        let mut wall = self.next_civil(from)?;
        let mut best = loop {
            match self.first_instant(wall, tz) {
                Some(t) if t > after => break t,
                _ => wall = self.next_civil(wall.checked_add(1.second()).ok()?)?,
            }
        };
        if !self.every_hour() {
            return Some(best);
        }
        // Second passes of repeated hours between `after` and `best`: their
        // ticks come after the first passes' and may be earlier than `best`.
        let since = after.checked_sub(26.hours()).ok()?;
        for change in tz.following(since) {
            let at = change.timestamp();
            if at >= best {
                break;
            }
            let before = tz.to_offset(at.checked_sub(1.second()).ok()?);
            let now = change.offset();
            let repeated = before.seconds() - now.seconds();
            if repeated <= 0 {
                continue;
            }
            // The wall times [start, end) come again, read with `now`.
            let start = now.to_datetime(at);
            let end = start.checked_add(repeated.seconds()).ok()?;
            let from = start.max(now.to_datetime(after));
            let mut wall = self.next_civil(from)?;
            while wall < end {
                let t = now.to_timestamp(wall).ok()?;
                if t > after {
                    best = best.min(t);
                    break;
                }
                wall = self.next_civil(wall.checked_add(1.second()).ok()?)?;
            }
        }
        Some(best)
    }
}

fn has(bits: Bits, n: u32) -> bool {
    n < 64 && bits & (1 << n) != 0
}

/// The smallest set bit at or above `from` and at most `max`.
fn next_bit(bits: Bits, from: u32, max: u32) -> Option<u32> {
    (from..=max).find(|&n| has(bits, n))
}

fn first_of_next_month(date: Date) -> Option<DateTime> {
    let first = date.first_of_month().checked_add(1.month()).ok()?;
    Some(first.at(0, 0, 0, 0))
}

fn next_hour(t: DateTime) -> Option<DateTime> {
    t.date().at(t.hour(), 0, 0, 0).checked_add(1.hour()).ok()
}

fn parse_field(text: &str, field: &Field) -> Result<Bits, ScheduleError> {
    let fail = |why: String| ScheduleError::Field {
        field: field.name,
        text: text.to_string(),
        why,
    };
    let mut bits: Bits = 0;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| (1..=field.max).contains(s))
                    .ok_or_else(|| {
                        fail(format!(
                            "step {step:?} must be a number from 1 to {}",
                            field.max
                        ))
                    })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (
                value(a, field).map_err(fail)?,
                value(b, field).map_err(fail)?,
            );
            if a > b {
                return Err(fail(format!("range {range:?} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range, field).map_err(fail)?;
            // `a/n` is `a-max/n`, as in most crons.
            if item.contains('/') {
                (a, field.max)
            } else {
                (a, a)
            }
        };
        let mut n = low;
        while n <= high {
            bits |= 1 << n;
            n += step;
        }
    }
    Ok(bits)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        // Months count from 1 (their field's least value), weekdays from 0.
        return Ok(i as u32 + field.min);
    }
    match text.parse::<u32>() {
        Ok(n) if (field.min..=field.max).contains(&n) => Ok(n),
        _ if text.is_empty() => Err("a value is missing".to_string()),
        _ => {
            let names = match field.names {
                [] => String::new(),
                names => format!(" or a name ({})", names.join(", ")),
            };
            Err(format!(
                "{text:?} is not a number from {} to {}{names}",
                field.min, field.max
            ))
        }
    }
}

/// A time zone by its IANA name (`Europe/Berlin`, `UTC`).
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name.len() > 64 || name.contains(char::is_whitespace) {
        return Err(format!("{name:?} is not a time zone name"));
    }
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as UTC, Europe/Berlin or America/New_York")
    })
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
