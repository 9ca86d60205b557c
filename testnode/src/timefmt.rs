//! Timestamps and durations in Meilisearch's wire formats.
//!
//! Times are kept as Unix nanoseconds (`i128`) so they journal and compare trivially.
//! Meilisearch formats with `time`'s RFC 3339 (fraction trimmed of trailing zeros, omitted when
//! zero); SDKs (Python) reject a timestamp without a fraction, so [`now`] never returns a
//! whole second.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub type Ts = i128;

/// Current time in Unix nanoseconds, nudged off exact seconds (see module docs).
pub fn now() -> Ts {
    let t = OffsetDateTime::now_utc().unix_timestamp_nanos();
    if t % 1_000_000_000 == 0 {
        t + 1
    } else {
        t
    }
}

pub fn rfc3339(ts: Ts) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ts)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses the task-filter date forms Meilisearch accepts: RFC 3339 or `YYYY-MM-DD`.
pub fn parse_filter_date(s: &str) -> Option<Ts> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp_nanos())
}

/// ISO 8601 duration exactly as Meilisearch's `serialize_duration` writes it:
/// `PT0.001S`, `PT0.001234S`, `PT0.001234567S`, `PT2S`, `P1DT3S`.
pub fn iso_duration(nanos: i128) -> String {
    let nanos = nanos.max(0);
    let secs_total = (nanos / 1_000_000_000) as i64;
    let sub = (nanos % 1_000_000_000) as i64;
    let days = secs_total / 86_400;
    let secs = secs_total - days * 86_400;
    let mut out = String::from("P");
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if secs != 0 || sub != 0 || days == 0 {
        if sub == 0 {
            out.push_str(&format!("T{secs}S"));
        } else if sub % 1_000_000 == 0 {
            out.push_str(&format!("T{secs}.{:03}S", sub / 1_000_000));
        } else if sub % 1_000 == 0 {
            out.push_str(&format!("T{secs}.{:06}S", sub / 1_000));
        } else {
            out.push_str(&format!("T{secs}.{sub:09}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_meilisearch() {
        assert_eq!(iso_duration(1_000_000), "PT0.001S");
        assert_eq!(iso_duration(1_234_000), "PT0.001234S");
        assert_eq!(iso_duration(1_234_567), "PT0.001234567S");
        assert_eq!(iso_duration(2_000_000_000), "PT2S");
        assert_eq!(iso_duration(0), "PT0S");
        assert_eq!(iso_duration(86_400_000_000_003), "P1DT0.000000003S");
        assert_eq!(iso_duration(86_400_000_000_000), "P1D");
    }

    #[test]
    fn timestamps_have_fraction_and_z() {
        let s = rfc3339(now());
        assert!(s.ends_with('Z') && s.contains('.'), "{s}");
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(
            parse_filter_date("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_filter_date("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_filter_date("nope"), None);
    }
}
