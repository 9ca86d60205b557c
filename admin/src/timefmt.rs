//! Timestamps and durations in the exact textual forms Meilisearch clients parse.
//!
//! - Timestamps: RFC 3339, UTC, **always** with a fractional part and `Z`
//!   (`2026-11-23T19:50:01.123456Z`). The Python SDK rejects a timestamp without a fraction,
//!   and Rust's `time` RFC 3339 formatter drops a zero fraction, so we format by hand with
//!   microsecond precision.
//! - Durations: ISO 8601 as Meilisearch writes them (`PT0.012S`, `PT1.000250S`, `P1DT2S`):
//!   the fraction uses 3, 6 or 9 digits, the shortest that is exact (Meilisearch's
//!   `serialize_duration`).

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Formats `t` as RFC 3339 UTC with microseconds and `Z`.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Now, formatted.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Parses any RFC 3339 timestamp (with or without fraction, any offset).
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// A key's `expiresAt` as Meilisearch echoes it: parsed in the forms it accepts (RFC 3339,
/// `YYYY-MM-DDTHH:MM:SS` and `YYYY-MM-DD HH:MM:SS` as UTC, `YYYY-MM-DD` as midnight UTC) and
/// written back as `time`'s RFC 3339 (offset kept, `Z` for UTC, no zero fraction) — so
/// `2050-11-13T00:00:00.000Z` is echoed `2050-11-13T00:00:00Z`. `None` when unreadable.
pub fn key_expiry(s: &str) -> Option<String> {
    use time::macros::{format_description, time};
    use time::{Date, PrimitiveDateTime};
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(
                s,
                format_description!(
                    "[year repr:full base:calendar]-[month repr:numerical]-[day]T[hour]:[minute]:[second]"
                ),
            )
            .ok()
            .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            PrimitiveDateTime::parse(
                s,
                format_description!(
                    "[year repr:full base:calendar]-[month repr:numerical]-[day] [hour]:[minute]:[second]"
                ),
            )
            .ok()
            .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            Date::parse(
                s,
                format_description!("[year repr:full base:calendar]-[month repr:numerical]-[day]"),
            )
            .ok()
            .map(|d| PrimitiveDateTime::new(d, time!(00:00)).assume_utc())
        })?;
    t.format(&Rfc3339).ok()
}

/// Meilisearch's ISO 8601 duration form; `None` for a negative duration (Meilisearch
/// serialises those as `null`).
pub fn format_iso8601_duration(d: Duration) -> Option<String> {
    if d.is_negative() {
        return None;
    }
    const SECS_PER_DAY: i64 = 86_400;
    let secs = d.whole_seconds();
    let days = secs / SECS_PER_DAY;
    let secs = secs - days * SECS_PER_DAY;
    let nanos = d.subsec_nanoseconds();
    let has_date = days != 0;
    let has_time = secs != 0 || nanos != 0 || !has_date;
    let mut out = String::from("P");
    if has_date {
        out.push_str(&format!("{days}D"));
    }
    if has_time {
        if nanos == 0 {
            out.push_str(&format!("T{secs}S"));
        } else if nanos % 1_000_000 == 0 {
            out.push_str(&format!("T{secs}.{:03}S", nanos / 1_000_000));
        } else if nanos % 1_000 == 0 {
            out.push_str(&format!("T{secs}.{:06}S", nanos / 1_000));
        } else {
            out.push_str(&format!("T{secs}.{nanos:09}S"));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_expiry_echoes_as_meilisearch() {
        assert_eq!(
            key_expiry("2050-11-13T00:00:00.000Z").as_deref(),
            Some("2050-11-13T00:00:00Z")
        );
        assert_eq!(
            key_expiry("2050-11-13").as_deref(),
            Some("2050-11-13T00:00:00Z")
        );
        assert_eq!(
            key_expiry("2050-11-13 10:20:30").as_deref(),
            Some("2050-11-13T10:20:30Z")
        );
        assert_eq!(
            key_expiry("2050-11-13T10:20:30.5+02:00").as_deref(),
            Some("2050-11-13T10:20:30.5+02:00")
        );
        assert_eq!(key_expiry("tomorrow"), None);
    }
    use time::macros::datetime;

    #[test]
    fn timestamps_always_have_a_fraction_and_z() {
        assert_eq!(
            format_rfc3339(datetime!(2026-11-23 19:50:01 UTC)),
            "2026-11-23T19:50:01.000000Z"
        );
        assert_eq!(
            format_rfc3339(datetime!(2026-11-23 19:50:01.123456789 +02:00)),
            "2026-11-23T17:50:01.123456Z"
        );
    }

    #[test]
    fn parse_accepts_what_nodes_send_and_round_trips() {
        let t = parse_rfc3339("2026-11-23T19:50:01.5Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-23T19:50:01.500000Z");
        assert!(parse_rfc3339("2026-11-23T19:50:01Z").is_some());
        assert!(parse_rfc3339("yesterday").is_none());
        let now = now_rfc3339();
        assert_eq!(parse_rfc3339(&now).map(format_rfc3339), Some(now));
    }

    #[test]
    fn durations_match_meilisearch_forms() {
        let f = |d| format_iso8601_duration(d).unwrap();
        assert_eq!(f(Duration::ZERO), "PT0S");
        assert_eq!(f(Duration::milliseconds(12)), "PT0.012S");
        assert_eq!(f(Duration::microseconds(1_000_250)), "PT1.000250S");
        assert_eq!(f(Duration::nanoseconds(1)), "PT0.000000001S");
        assert_eq!(f(Duration::days(1)), "P1D");
        assert_eq!(f(Duration::days(1) + Duration::seconds(2)), "P1DT2S");
        assert_eq!(format_iso8601_duration(Duration::seconds(-1)), None);
    }
}
