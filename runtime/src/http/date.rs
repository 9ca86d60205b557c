//! The `Date` response header (RFC 9110 IMF-fixdate), formatted at most once per second per
//! core: the cache is a per-core `Cell`, never shared.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// Formats `unix_secs` as an IMF-fixdate.
pub fn http_date(unix_secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = [0u8; DATE_LEN];
    let wd = DAYS[(days % 7) as usize];
    out[..3].copy_from_slice(wd);
    out[3] = b',';
    out[4] = b' ';
    two(&mut out[5..7], d as u64);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    out[11] = b' ';
    let y = y as u64;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    out[16] = b' ';
    two(&mut out[17..19], secs_of_day / 3600);
    out[19] = b':';
    two(&mut out[20..22], secs_of_day / 60 % 60);
    out[22] = b':';
    two(&mut out[23..25], secs_of_day % 60);
    out[25..].copy_from_slice(b" GMT");
    out
}

fn two(dst: &mut [u8], v: u64) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Per-core cache of the current `Date` value.
#[derive(Debug, Default)]
pub struct DateCache {
    secs: Cell<u64>,
    value: Cell<[u8; DATE_LEN]>,
}

impl DateCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current date, reformatted only when the second changed.
    pub fn now(&self) -> [u8; DATE_LEN] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs.get() || self.value.get()[0] == 0 {
            self.secs.set(secs);
            self.value.set(http_date(secs));
        }
        self.value.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        // 2000-02-29 (leap day of a year divisible by 400) 23:59:59
        assert_eq!(&http_date(951_868_799), b"Tue, 29 Feb 2000 23:59:59 GMT");
        // 2026-11-23 19:50:01
        assert_eq!(&http_date(1_795_463_401), b"Mon, 23 Nov 2026 19:50:01 GMT");
    }

    #[test]
    fn cache_returns_a_formatted_date() {
        let c = DateCache::new();
        let v = c.now();
        assert!(v.ends_with(b" GMT"));
        assert_eq!(c.now()[..4], v[..4]);
    }
}
