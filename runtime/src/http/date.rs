//! The `Date` response header (RFC 9110 IMF-fixdate), formatted by `httpdate` (hyper's
//! formatter) at most once per second per core: the cache is a per-core `Cell`, never shared.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// Formats `unix_secs` as an IMF-fixdate.
pub fn http_date(unix_secs: u64) -> [u8; DATE_LEN] {
    let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(unix_secs));
    let mut out = [0u8; DATE_LEN];
    // An IMF-fixdate is always exactly DATE_LEN bytes (httpdate covers years 1970..=9999).
    write!(&mut out[..], "{date}").expect("an IMF-fixdate is 29 bytes");
    out
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
