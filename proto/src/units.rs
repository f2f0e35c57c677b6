//! Human sizes (`512M`, `2GiB`) and durations (`90s`, `5m`, `1h30m`), parsed
//! strictly: anything that is not understood is an error naming it.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error(
        "invalid size {0:?}: expected a number with an optional unit K, M, G or T (e.g. 512M, 2G)"
    )]
    Size(String),
    #[error("invalid duration {0:?}: expected e.g. 500ms, 30s, 5m, 2h or 1h30m")]
    Duration(String),
}

/// Parses a byte size. Units are binary (`K` = 1024); `B`, `iB` suffixes are accepted.
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size(input.to_string());
    let s = input.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return Err(err());
    }
    let number: u64 = s[..digits_end].parse().map_err(|_| err())?;
    let shift = match s[digits_end..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(err()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(err)
}

/// Formats a byte size with a binary unit, e.g. `1.5G`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let tenths = (value * 10.0).round() / 10.0;
    if unit == 0 || tenths >= 100.0 || tenths.fract() == 0.0 {
        format!("{:.0}{}", value, UNITS[unit])
    } else {
        format!("{tenths:.1}{}", UNITS[unit])
    }
}

/// Parses a duration made of one or more `<number><unit>` parts (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration(input.to_string());
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits_end == 0 {
            return Err(err());
        }
        let number: u64 = rest[..digits_end].parse().map_err(|_| err())?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(err()),
        };
        rest = &rest[unit_end..];
        let part = number.checked_mul(millis_per_unit).ok_or_else(err)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(err)?;
    }
    Ok(total)
}

/// Formats a duration compactly, e.g. `1h2m`, `3.2s`, `15ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2GB"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in [
            "",
            "M",
            "12X",
            "-1",
            "1.5G",
            "99999999999999999999",
            "20000000T",
            "1IB",
            "1BB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_size(1536 << 20), "1.5G");
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(24564 << 20), "24G");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "30", "s", "3x", "1h30", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_duration(Duration::from_millis(3200)), "3.2s");
    }
}
