//! Go durations (`time.ParseDuration`), as the kubelet's CredentialProviderConfig and
//! `PULLSECRET_WATCH` write them. Hand-written on purpose: `kube::core::Duration` panics on an
//! overflowing value, and a plugin's answer must be an error, never a crash.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

/// A Go `time.ParseDuration` string ("12h", "1h30m", "0.5s", "300ms", "0") as a Duration.
pub fn parse_go_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        bail!("must not be negative");
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        bail!("empty duration");
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow!("missing unit (ns, us, ms, s, m, h)"))?;
        let number: f64 = rest[..number_end].parse().map_err(|_| anyhow!("not a duration"))?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => bail!("unknown unit {other:?} (ns, us, ms, s, m, h)"),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    // Go's durations are int64 nanoseconds: about 292 years at most. Beyond that (or a number too
    // long to be finite) the answer is unusable, never a panic.
    const GO_MAX_SECS: f64 = i64::MAX as f64 / 1e9;
    if !total.is_finite() || total > GO_MAX_SECS {
        bail!("out of range (a Go duration is at most about 292 years)");
    }
    Duration::try_from_secs_f64(total).map_err(|_| anyhow!("out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("6h0m0s").unwrap(), Duration::from_secs(21_600));
        assert_eq!(parse_go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("12").is_err());
        assert!(parse_go_duration("-1h").is_err());
        assert!(parse_go_duration("1d").is_err());
    }

    #[test]
    fn durations_past_gos_range_are_errors_not_panics() {
        for huge in ["99999999999999999999h", "300000000000s", "1e400h"] {
            assert!(parse_go_duration(huge).is_err(), "{huge}");
        }
        assert!(parse_go_duration("2562047h").is_ok(), "just inside Go's range");
    }
}
