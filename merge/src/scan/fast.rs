//! The fast path of the hit scan: string ends from precomputed quote bitmaps.
//!
//! Most of a ~1 KiB Meilisearch hit is string content, and the scalar scanner finds each
//! string's end with SWAR words and `memchr2` calls that restart at every escape. Here a
//! window of 16 blocks of 64 bytes ahead of the hit cursor ([`QuoteIndex`]) is classified at
//! once ([`super::simd`]) into bitmasks of `"` and `\`. Escapes are resolved per block (a
//! backslash that is not itself escaped escapes the next byte; the state carries across
//! blocks), which leaves the mask of *unescaped* quotes, and every escaped byte is checked
//! against JSON's escape grammar then (`\u` needs four hex digits). Strings are consumed in
//! order, so the closing quote of a string is the next bit of that quote stream: a
//! `trailing_zeros` and a clear-lowest-bit, however long the string and however many escapes
//! it has.
//!
//! The walk between strings ([`QuoteIndex::skip_value`], and the hit loop in `search.rs`) is
//! scalar and only handles compact JSON (what Meilisearch writes): any whitespace, unusual
//! token, nesting deeper than [`FAST_DEPTH`] or invalid escape returns `None`, and the caller
//! rescans that hit with the scalar scanner, which then accepts it or reports the error itself.
//! So the fast path never changes what is accepted, nor an error: it either produces the
//! scalar scanner's result or defers to it.
//!
//! The masks are only meaningful if the index starts outside any string (the first byte is
//! not escaped): it is created at the `[` of a hits array and only moves forward.

use super::simd::{self, Level, BATCH};
use super::{hex4, number_end_at};

/// Nesting (inside the value being skipped) handled on the fast path; deeper values are left
/// to the scalar scanner, which enforces [`super::MAX_DEPTH`].
pub const FAST_DEPTH: u32 = 16;

/// Quote and escape bitmasks of a window of [`BATCH`] 64-byte blocks, refilled forward.
pub struct QuoteIndex {
    level: Level,
    /// Byte offset of block 0 of the window.
    base: usize,
    /// Valid blocks in the window.
    len: usize,
    /// Unescaped `"` per block.
    quotes: [u64; BATCH],
    /// Escaped bytes per block (the byte after an escaping backslash).
    escaped: [u64; BATCH],
    /// The quote stream's cursor: block `cur` of the window, and its unescaped quotes not
    /// consumed yet (0 = unknown, look the position up). Strings are consumed in order, so the
    /// next opening quote is usually the lowest bit of `mask`.
    cur: usize,
    mask: u64,
    /// Whether the first byte after the window is escaped.
    carry: bool,
    /// An invalid escape was classified: the body is not valid JSON from there on (there is no
    /// backslash outside strings in valid JSON), so every later string defers to the scalar
    /// scanner, which reports the error where it finds it. Checking escapes once per window
    /// here keeps the per-string path free of it.
    poisoned: bool,
}

impl QuoteIndex {
    /// An index whose first block starts at `start`, which must be outside any string and not
    /// escaped (the `[` of a hits array). `level` must not be [`Level::Scalar`] for speed, but
    /// any level gives the same results.
    pub fn new(level: Level, start: usize) -> Self {
        QuoteIndex {
            level,
            base: start,
            len: 0,
            quotes: [0; BATCH],
            escaped: [0; BATCH],
            cur: 0,
            mask: 0,
            carry: false,
            poisoned: false,
        }
    }

    /// The window block holding byte `p` (refilling forward as needed), or `None` when `p` is
    /// before the window or past the end of `buf`.
    #[inline(always)]
    fn block(&mut self, buf: &[u8], p: usize) -> Option<usize> {
        let i = p.checked_sub(self.base)? / 64;
        if i < self.len {
            return Some(i);
        }
        self.refill(buf, p)
    }

    /// Moves the window forward until it holds byte `p`; returns its block.
    #[inline(never)]
    fn refill(&mut self, buf: &[u8], p: usize) -> Option<usize> {
        loop {
            self.base += 64 * self.len;
            let mut backslashes = [0u64; BATCH];
            self.len = simd::classify(
                self.level,
                buf,
                self.base,
                &mut self.quotes,
                &mut backslashes,
            );
            if self.len == 0 {
                return None;
            }
            self.mask = 0;
            let (mut carry, mut valid) = (self.carry, true);
            let blocks = self
                .quotes
                .iter_mut()
                .zip(&mut self.escaped)
                .zip(backslashes);
            for (j, ((quotes, escaped), bs)) in blocks.take(self.len).enumerate() {
                let e = escaped_bytes(bs, &mut carry);
                *escaped = e;
                *quotes &= !e;
                if e != 0 {
                    valid &= valid_escapes(buf, self.base + 64 * j, e);
                }
            }
            self.carry = carry;
            self.poisoned |= !valid;
            let i = (p - self.base) / 64;
            if i < self.len {
                return Some(i);
            }
        }
    }

    /// The string whose opening quote is at `open` (which must follow a structural byte, so it
    /// is not escaped): the position of its closing quote, and the escaped bytes of the blocks
    /// it crosses (0: the string has no escape; else it may have). `None` if it is unterminated
    /// or an invalid escape was seen (the scalar scanner reports it).
    #[inline(always)]
    fn string_end(&mut self, buf: &[u8], open: usize) -> Option<(usize, u64)> {
        let (mut i, mut m) = (self.cur, self.mask);
        if m != 0 && self.base + 64 * i + m.trailing_zeros() as usize == open {
            m &= m - 1;
        } else {
            // Not the next quote of the stream (first string, or the scalar scanner consumed
            // some): look the position up.
            let p = open + 1;
            i = self.block(buf, p)?;
            m = self.quotes[i] & (!0u64 << ((p - self.base) % 64));
        }
        let mut escapes = self.escaped[i];
        while m == 0 {
            i += 1;
            if i >= self.len {
                i = self.refill(buf, self.base + 64 * self.len)?;
            }
            m = self.quotes[i];
            escapes |= self.escaped[i];
        }
        if self.poisoned {
            return None;
        }
        (self.cur, self.mask) = (i, m & (m - 1));
        Some((self.base + 64 * i + m.trailing_zeros() as usize, escapes))
    }

    /// [`QuoteIndex::string_end`] with the exact "has escapes" flag that keys need.
    #[inline(always)]
    pub fn string(&mut self, buf: &[u8], open: usize) -> Option<(usize, bool)> {
        let (close, escapes) = self.string_end(buf, open)?;
        if escapes == 0 {
            return Some((close, false));
        }
        Some((close, self.escapes_between(open + 1, close)?))
    }

    /// Whether `lo..hi` has escaped bytes; `None` if it does not lie in the window (a string
    /// with escapes across a refill: rare, left to the scalar scanner).
    #[inline(never)]
    fn escapes_between(&self, lo: usize, hi: usize) -> Option<bool> {
        if lo < self.base || lo >= hi {
            return if lo >= hi { Some(false) } else { None };
        }
        let (first, last) = ((lo - self.base) / 64, (hi - 1 - self.base) / 64);
        let mut any = 0;
        for j in first..=last {
            let at = self.base + 64 * j;
            let mut e = self.escaped[j];
            if lo > at {
                e &= !0u64 << (lo - at);
            }
            if hi - at < 64 {
                e &= (1u64 << (hi - at)) - 1;
            }
            any |= e;
        }
        Some(any != 0)
    }

    /// Skips the compact JSON value at `p`; returns its end. `None` for anything the fast path
    /// does not handle (see the module docs).
    #[inline(always)]
    pub fn skip_value(&mut self, buf: &[u8], p: usize) -> Option<usize> {
        match *buf.get(p)? {
            b'"' => self.string_end(buf, p).map(|(close, _)| close + 1),
            b'{' | b'[' => self.skip_container(buf, p, 1),
            b't' => literal(buf, p, b"true"),
            b'f' => literal(buf, p, b"false"),
            b'n' => literal(buf, p, b"null"),
            _ => number_end_at(buf, p).ok(),
        }
    }

    /// Skips the object or array at `p` (`depth` = its nesting inside the skipped value).
    #[inline(never)]
    fn skip_container(&mut self, buf: &[u8], p: usize, depth: u32) -> Option<usize> {
        if depth > FAST_DEPTH {
            return None;
        }
        let object = buf[p] == b'{';
        let close = if object { b'}' } else { b']' };
        let mut q = p + 1;
        if buf.get(q) == Some(&close) {
            return Some(q + 1);
        }
        loop {
            if object {
                if buf.get(q) != Some(&b'"') {
                    return None;
                }
                let (end, _) = self.string_end(buf, q)?;
                if buf.get(end + 1) != Some(&b':') {
                    return None;
                }
                q = end + 2;
            }
            q = match *buf.get(q)? {
                b'{' | b'[' => self.skip_container(buf, q, depth + 1)?,
                _ => self.skip_value(buf, q)?,
            };
            match *buf.get(q)? {
                b',' => q += 1,
                c if c == close => return Some(q + 1),
                _ => return None,
            }
        }
    }
}

/// The bytes escaped by the backslashes `bs` of one block: a backslash that is not itself
/// escaped escapes the next byte. `carry` says whether byte 0 is escaped (in) and whether the
/// next block's byte 0 is (out). Backslashes are rare in hits, so a loop over them is cheap.
#[inline(always)]
fn escaped_bytes(mut bs: u64, carry: &mut bool) -> u64 {
    let mut e = 0;
    if *carry {
        e = 1;
        bs &= !1;
    }
    *carry = false;
    while bs != 0 {
        let i = bs.trailing_zeros();
        if i == 63 {
            *carry = true;
            break;
        }
        e |= 2 << i;
        // The escaped byte (even if a backslash) escapes nothing.
        bs &= !(3 << i);
    }
    e
}

/// The bytes that may follow `\` in JSON, other than `u` (which needs four hex digits).
const SIMPLE_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let ok = b"\"\\/bfnrt";
    let mut i = 0;
    while i < ok.len() {
        t[ok[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether every escaped byte in `mask` (of the block at `at`) is a valid JSON escape.
#[inline(never)]
fn valid_escapes(buf: &[u8], at: usize, mut mask: u64) -> bool {
    while mask != 0 {
        let i = at + mask.trailing_zeros() as usize;
        mask &= mask - 1;
        match buf.get(i) {
            Some(&c) if SIMPLE_ESCAPE[c as usize] => {}
            Some(b'u') if hex4(buf, i + 1).is_some() => {}
            _ => return false,
        }
    }
    true
}

#[inline(always)]
fn literal(buf: &[u8], p: usize, lit: &[u8]) -> Option<usize> {
    buf[p..].starts_with(lit).then_some(p + lit.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Scanner;
    use proptest::prelude::*;

    /// Byte-by-byte escape semantics, the oracle of [`escaped_bytes`].
    fn escaped_naive(bytes: &[u8]) -> Vec<bool> {
        let mut out = vec![false; bytes.len()];
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                out[i + 1] = true;
                i += 2;
            } else {
                i += 1;
            }
        }
        out
    }

    fn levels() -> Vec<Level> {
        simd::available()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Escape carry across blocks: backslash runs of any length at any offset.
        #[test]
        fn escapes_match_the_bytewise_rule(bytes in prop::collection::vec(prop_oneof![4 => Just(b'\\'), 1 => Just(b'"'), 2 => Just(b'a')], 0..300)) {
            let want = escaped_naive(&bytes);
            let mut carry = false;
            for (j, block) in bytes.chunks(64).enumerate() {
                let (_, bs) = simd::portable(block);
                let e = escaped_bytes(bs, &mut carry);
                for (k, _) in block.iter().enumerate() {
                    prop_assert_eq!(e >> k & 1 == 1, want[64 * j + k], "byte {}", 64 * j + k);
                }
            }
        }

        /// Strings of any length with quotes, backslash runs and `\u` escapes straddling block
        /// boundaries, at any offset: the fast string end equals the scalar scanner's, and the
        /// fast path accepts nothing the scalar scanner rejects.
        #[test]
        fn strings_match_the_scalar_scanner(
            lead in 0usize..70,
            body in prop::collection::vec(prop_oneof![
                6 => Just("a"), 2 => Just("\\\\"), 2 => Just("\\\""), 1 => Just("\\"), 1 => Just("\""),
                1 => Just("\\u00e9"), 1 => Just("\\u0g"), 1 => Just("\\n"), 1 => Just("\\x"), 1 => Just("é"),
            ], 0..120),
        ) {
            let s = format!("{}[\"{}\"]", ",".repeat(lead), body.concat());
            let buf = s.as_bytes();
            let open = lead + 1;
            let mut sc = Scanner::at(buf, open, 0);
            let scalar = sc.string().ok().map(|st| (st.end - 1, st.escaped));
            let mut whole = Scanner::at(buf, lead, 0);
            let whole_valid = whole.skip_value().is_ok() && whole.finish().is_ok();
            for level in levels() {
                let fast = QuoteIndex::new(level, lead).string(buf, open);
                match (fast, scalar) {
                    (Some(f), Some(s)) => prop_assert_eq!(f, s),
                    (Some(f), None) => prop_assert!(false, "{:?} accepted {:?} at {:?}", level, s, f),
                    // Deferring to the scalar scanner is always allowed, but on valid input
                    // it only happens when an invalid escape follows in the same window.
                    (None, Some(_)) => prop_assert!(!whole_valid, "{:?} deferred on {:?}", level, s),
                    (None, None) => {}
                }
            }
        }
    }

    #[test]
    fn compact_values_are_skipped_and_others_deferred() {
        for (s, want) in [
            (
                r#"{"a":[1,-2.5e3,true,false,null,"x\"y"],"b":{}}"#,
                Some(46),
            ),
            (r#"[[],{},[{"k":"v"}]]"#, Some(19)),
            (r#""\u00e9\\""#, Some(10)),
            ("123,", Some(3)),
            (r#"{"a" :1}"#, None),
            (r#"[1, 2]"#, None),
            (r#"[1,]"#, None),
            (r#"{"a":1,}"#, None),
            (r#"{"a"}"#, None),
            (r#""abc"#, None),
            (r#""\x""#, None),
            ("tru", None),
            ("01", Some(1)),
        ] {
            for level in levels() {
                assert_eq!(
                    QuoteIndex::new(level, 0).skip_value(s.as_bytes(), 0),
                    want,
                    "{s} {level:?}"
                );
            }
        }
        let deep = "[".repeat(FAST_DEPTH as usize + 1) + &"]".repeat(FAST_DEPTH as usize + 1);
        assert_eq!(
            QuoteIndex::new(Level::Scalar, 0).skip_value(deep.as_bytes(), 0),
            None
        );
        let ok = "[".repeat(FAST_DEPTH as usize) + &"]".repeat(FAST_DEPTH as usize);
        assert_eq!(
            QuoteIndex::new(Level::Scalar, 0).skip_value(ok.as_bytes(), 0),
            Some(ok.len())
        );
    }
}
