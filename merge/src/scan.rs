//! A small validating JSON scanner that reports byte spans instead of building values.
//!
//! The merge needs very little from a shard body: where each hit starts and ends, where each
//! of a hit's top-level members starts and ends (to leave some out), a handful of numbers and
//! short strings. Everything else — the bulk of a ~1 KiB hit is string content — only has to
//! be *skipped correctly*. So this is a cursor over the original bytes with:
//!
//! * structure checked fully (objects, arrays, commas, colons, literals, the number grammar,
//!   string escapes, nesting depth ≤ [`MAX_DEPTH`]): a malformed body is an error, never a
//!   panic and never spliced into the output;
//! * string bodies skipped 8 bytes at a time (SWAR) for the first 16 bytes, then with
//!   `memchr2(b'"', b'\\')` (SIMD on x86-64/aarch64);
//! * the per-token steps inlined into the caller's loop, the rare or long parts (escapes,
//!   long strings, nested containers, whitespace) out of line: the cost of a hit is
//!   dominated by per-member overhead, not by the bytes (docs/decisions/003-merge-parser.md);
//! * strings that the merge *interprets* (keys, facet values, sort values) unescaped only when
//!   they contain a backslash (rare), into the arena.
//!
//! Hits in Meilisearch's layout are first tried on a faster path (`scan::fast`): 64-byte blocks
//! classified into quote/backslash bitmasks with SIMD ([`simd`], the crate's only `unsafe`),
//! so that a string's end is a bit lookup. It only takes compact, well-formed hits and hands
//! anything else back to this scanner, so what is accepted, and every error, stays this
//! scanner's.
//!
//! Deliberately lenient, because the bytes are relayed from Meilisearch rather than trusted
//! for anything: raw control characters and invalid UTF-8 inside string bodies that the merge
//! does not interpret are passed through as received (a strict check would cost a pass over
//! every byte). Strings that are interpreted are validated as UTF-8.

use bumpalo::Bump;

pub(crate) mod fast;
pub mod simd;

/// Maximum nesting depth accepted (Meilisearch documents are shallow; this bounds recursion).
pub const MAX_DEPTH: u32 = 128;

/// Where and why scanning failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub reason: &'static str,
}

pub type Result<T> = std::result::Result<T, ScanError>;

/// A JSON string as it appears in the input: `raw` is the body between the quotes (escapes
/// not processed), `span` the position of the opening quote and one past the closing quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str<'a> {
    pub raw: &'a [u8],
    pub escaped: bool,
    pub start: usize,
    pub end: usize,
}

impl<'a> Str<'a> {
    /// Whether the unescaped string equals `s` (which must not need escaping).
    #[inline(always)]
    pub fn is(&self, s: &str) -> bool {
        !self.escaped && short_eq(self.raw, s.as_bytes())
    }

    /// Whether the unescaped string starts with `prefix`.
    #[inline]
    pub fn starts_with(&self, prefix: &str, arena: &Bump) -> Result<bool> {
        if !self.escaped {
            let p = prefix.as_bytes();
            return Ok(self.raw.len() >= p.len() && short_eq(&self.raw[..p.len()], p));
        }
        Ok(self.unescape(arena)?.starts_with(prefix))
    }

    /// The unescaped text (borrowed from the input when there is nothing to unescape).
    pub fn unescape<'b>(&self, arena: &'b Bump) -> Result<&'b str>
    where
        'a: 'b,
    {
        if !self.escaped {
            return std::str::from_utf8(self.raw).map_err(|_| ScanError {
                offset: self.start,
                reason: "invalid UTF-8 in string",
            });
        }
        let mut buf = bumpalo::collections::String::with_capacity_in(self.raw.len(), arena);
        unescape_into(self.raw, self.start + 1, &mut buf)?;
        Ok(buf.into_bump_str())
    }
}

/// Byte equality without a `memcmp` call: the merge compares keys with short names once or
/// twice per hit, where the call costs more than the comparison.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn unescape_into(raw: &[u8], base: usize, out: &mut bumpalo::collections::String) -> Result<()> {
    let err = |i: usize, reason| ScanError {
        offset: base + i,
        reason,
    };
    let mut i = 0;
    while i < raw.len() {
        let next = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |p| i + p);
        let chunk =
            std::str::from_utf8(&raw[i..next]).map_err(|_| err(i, "invalid UTF-8 in string"))?;
        out.push_str(chunk);
        if next == raw.len() {
            break;
        }
        // raw[next] == '\\' and the scanner guaranteed a valid escape follows.
        let c = raw.get(next + 1).copied().ok_or(err(next, "bad escape"))?;
        i = next + 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw, i).ok_or(err(i, "bad \\u escape"))?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    if raw.get(i) != Some(&b'\\') || raw.get(i + 1) != Some(&b'u') {
                        return Err(err(i, "lone surrogate"));
                    }
                    let lo = hex4(raw, i + 2).ok_or(err(i, "bad \\u escape"))?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(err(i, "lone surrogate"));
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or(err(i, "lone surrogate"))?
            }
            _ => return Err(err(next, "bad escape")),
        };
        out.push(ch);
    }
    Ok(())
}

/// SWAR masks of the `"` and the `\\` bytes of `word` (little-endian order): bit 7 of a byte
/// is set for a match. Only the *lowest* set bit of each mask is exact (the "has zero byte"
/// trick may flag bytes above a true match), which is all the callers use.
#[inline(always)]
fn quote_and_backslash_masks(word: u64) -> (u64, u64) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = word ^ (LO * b'"' as u64);
    let b = word ^ (LO * b'\\' as u64);
    (q.wrapping_sub(LO) & !q & HI, b.wrapping_sub(LO) & !b & HI)
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// The end of the number starting at `i` (JSON grammar), or the offset of the first byte that
/// breaks the grammar.
#[inline(always)]
fn number_end_at(b: &[u8], mut i: usize) -> std::result::Result<usize, usize> {
    let digits = |i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return Err(i),
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return Err(i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err(i);
        }
    }
    Ok(i)
}

/// The value of a number already checked against the JSON grammar, as Rust's correctly
/// rounded `f64` parser gives it (NaN cannot happen; out-of-range values are infinities).
///
/// Ranking scores are parsed for every compared hit, and the standard parser's layers (UTF-8
/// check, its own grammar pass) cost more than the conversion. So the common case is done
/// here: at most 19 digits, no exponent, and a decimal significand `w ≤ 2^53` with at most 22
/// fraction digits, where `w / 10^k` is one correctly rounded division of two
/// exact doubles, i.e. exactly what the standard parser returns (Clinger's fast path, which the
/// standard parser also uses). Anything else goes to `str::parse`.
#[inline]
pub(crate) fn parse_f64(text: &[u8]) -> f64 {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mut w: u64 = 0;
    let mut frac: Option<usize> = None;
    let mut n = 0;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                if n == 19 {
                    return parse_f64_slow(text);
                }
                w = w * 10 + u64::from(c - b'0');
                n += 1;
                frac = frac.map(|k| k + 1);
            }
            b'.' => frac = Some(0),
            _ => return parse_f64_slow(text),
        }
    }
    let k = frac.unwrap_or(0);
    if w > 1 << 53 || k >= POW10.len() {
        return parse_f64_slow(text);
    }
    let v = w as f64 / POW10[k];
    if neg {
        -v
    } else {
        v
    }
}

#[inline(never)]
fn parse_f64_slow(text: &[u8]) -> f64 {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A cursor over one JSON text.
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// A cursor at `pos` inside `depth` open containers (to resume scanning mid-document).
    pub fn at(buf: &'a [u8], pos: usize, depth: u32) -> Self {
        Scanner {
            buf,
            pos: pos.min(buf.len()),
            depth,
        }
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    #[inline]
    fn err<T>(&self, reason: &'static str) -> Result<T> {
        Err(ScanError {
            offset: self.pos,
            reason,
        })
    }

    /// Skips JSON whitespace and returns the next byte without consuming it.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        // Meilisearch writes compact JSON: settle the common case in one compare.
        let b = *self.buf.get(self.pos)?;
        if b > b' ' {
            return Some(b);
        }
        self.skip_whitespace()
    }

    #[inline(never)]
    fn skip_whitespace(&mut self) -> Option<u8> {
        while let Some(&b) = self.buf.get(self.pos) {
            match b {
                b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                _ => return Some(b),
            }
        }
        None
    }

    #[inline(always)]
    fn expect(&mut self, want: u8, reason: &'static str) -> Result<()> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(reason)
        }
    }

    /// After the top-level value: only whitespace may follow.
    pub fn finish(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.err("trailing characters"),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(())
    }

    /// Consumes `{`. Then call [`Scanner::next_key`] until it returns `None`.
    pub fn object_start(&mut self) -> Result<()> {
        self.expect(b'{', "expected an object")?;
        self.enter()
    }

    /// Whether the next value is an object (without consuming anything).
    pub fn at_object(&mut self) -> bool {
        self.peek() == Some(b'{')
    }

    /// The next member's key (the cursor is then at its value), or `None` after the closing
    /// `}`. `first` must start `true` for each object.
    #[inline(always)]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Str<'a>>> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                self.depth = self.depth.saturating_sub(1);
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            Some(b'"') if *first => {}
            _ => return self.err("expected a member or `}`"),
        }
        *first = false;
        if self.peek() != Some(b'"') {
            return self.err("expected a key");
        }
        let key = self.string()?;
        self.expect(b':', "expected `:`")?;
        self.peek();
        Ok(Some(key))
    }

    /// Consumes `[`. Then call [`Scanner::next_element`] until it returns `false`.
    pub fn array_start(&mut self) -> Result<()> {
        self.expect(b'[', "expected an array")?;
        self.enter()
    }

    /// Whether another element follows (the cursor is then at it); consumes the closing `]`
    /// otherwise. `first` must start `true` for each array.
    #[inline(always)]
    pub fn next_element(&mut self, first: &mut bool) -> Result<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                self.depth = self.depth.saturating_sub(1);
                return Ok(false);
            }
            Some(b',') if !*first => {
                self.pos += 1;
                self.peek();
            }
            Some(_) if *first => {}
            _ => return self.err("expected an element or `]`"),
        }
        *first = false;
        Ok(true)
    }

    /// A string (cursor at its opening quote).
    #[inline(always)]
    pub fn string(&mut self) -> Result<Str<'a>> {
        let start = self.pos;
        if self.buf.get(start) != Some(&b'"') {
            return self.err("expected a string");
        }
        let (close, escaped) = self.string_body(start + 1)?;
        self.pos = close + 1;
        Ok(Str {
            raw: &self.buf[start + 1..close],
            escaped,
            start,
            end: close + 1,
        })
    }

    /// The index of the closing quote of the string body that starts at `i`, and whether the
    /// body contains an escape. Does not move the cursor (except to report an error).
    #[inline(always)]
    fn string_body(&mut self, i: usize) -> Result<(usize, bool)> {
        // Keys and most values are short: two SWAR words (16 bytes) settle them without a
        // call; longer bodies and escapes go to the out-of-line loop.
        if let Some(chunk) = self.buf.get(i..i + 16) {
            for (w, bytes) in chunk.chunks_exact(8).enumerate() {
                let word = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
                let (quote, backslash) = quote_and_backslash_masks(word);
                if quote | backslash != 0 {
                    // Lowest set bits are exact (see `quote_and_backslash_masks`); a quote
                    // before any backslash closes an unescaped string.
                    let (q, b) = (quote.trailing_zeros(), backslash.trailing_zeros());
                    let at = i + 8 * w + (q.min(b) / 8) as usize;
                    if q < b {
                        return Ok((at, false));
                    }
                    return self.string_body_slow(at, false);
                }
            }
            return self.string_body_slow(i + 16, false);
        }
        self.string_body_slow(i, false)
    }

    /// [`Scanner::string_body`] from `i` on: memchr2 (SIMD) to the next quote or backslash,
    /// escapes checked one by one.
    #[inline(never)]
    fn string_body_slow(&mut self, mut i: usize, mut escaped: bool) -> Result<(usize, bool)> {
        loop {
            let Some(off) = memchr::memchr2(b'"', b'\\', &self.buf[i..]) else {
                self.pos = self.buf.len();
                return self.err("unterminated string");
            };
            i += off;
            if self.buf[i] == b'"' {
                return Ok((i, escaped));
            }
            escaped = true;
            match self.buf.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    if hex4(self.buf, i + 2).is_none() {
                        self.pos = i;
                        return self.err("bad \\u escape");
                    }
                    i += 6;
                }
                _ => {
                    self.pos = i;
                    return self.err("bad escape");
                }
            }
        }
    }

    /// A number (cursor at its first byte); returns its text, validated against the JSON
    /// grammar (so Rust's float/int parsers accept it).
    pub fn number(&mut self) -> Result<&'a str> {
        let start = self.pos;
        let end = self.number_end()?;
        // All bytes are ASCII here.
        Ok(std::str::from_utf8(&self.buf[start..end]).unwrap_or("0"))
    }

    /// Moves the cursor past a number (at its first byte), checking the grammar; returns the
    /// end.
    #[inline(always)]
    fn number_end(&mut self) -> Result<usize> {
        match number_end_at(self.buf, self.pos) {
            Ok(end) => {
                self.pos = end;
                Ok(end)
            }
            Err(at) => {
                self.pos = at;
                self.err("bad number")
            }
        }
    }

    /// The open-container depth (to resume with [`Scanner::at`] elsewhere).
    #[inline]
    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    /// Moves the cursor to `pos`, which a caller has already scanned up to (same depth).
    #[inline]
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    #[inline(always)]
    fn literal(&mut self, lit: &'static [u8]) -> Result<()> {
        if self.buf[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            self.err("bad literal")
        }
    }

    /// Skips any value (cursor at it); returns its span `(start, end)`.
    #[inline(always)]
    pub fn skip_value(&mut self) -> Result<(usize, usize)> {
        let start = match self.peek() {
            Some(_) => self.pos,
            None => return self.err("expected a value"),
        };
        match self.buf[start] {
            b'"' => {
                let (close, _) = self.string_body(start + 1)?;
                self.pos = close + 1;
            }
            b'{' | b'[' => self.skip_container()?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => {
                self.number_end()?;
            }
        }
        Ok((start, self.pos))
    }

    /// Skips an object or array (cursor at its opening byte).
    #[inline(never)]
    fn skip_container(&mut self) -> Result<()> {
        let mut first = true;
        if self.buf[self.pos] == b'{' {
            self.object_start()?;
            while self.next_key(&mut first)?.is_some() {
                self.skip_value()?;
            }
        } else {
            self.array_start()?;
            while self.next_element(&mut first)? {
                self.skip_value()?;
            }
        }
        Ok(())
    }

    /// A number as `f64`; `None` (value skipped) when the value is not a number.
    pub fn f64_or_skip(&mut self) -> Result<Option<f64>> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                let end = self.number_end()?;
                Ok(Some(parse_f64(&self.buf[start..end])))
            }
            _ => {
                self.skip_value()?;
                Ok(None)
            }
        }
    }

    /// A non-negative integer; `None` (value skipped) for anything else.
    pub fn u64_or_skip(&mut self) -> Result<Option<u64>> {
        match self.peek() {
            Some(b'0'..=b'9') => Ok(self.number()?.parse().ok()),
            _ => {
                self.skip_value()?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(s: &str) -> Result<(usize, usize)> {
        let mut sc = Scanner::new(s.as_bytes());
        let span = sc.skip_value()?;
        sc.finish()?;
        Ok(span)
    }

    #[test]
    fn accepts_valid_json() {
        for s in [
            r#"{"a":[1,-2.5e3,true,false,null,"x\"y\\z\u00e9"],"b":{}}"#,
            " [ ] ",
            "0",
            "-0.0E+1",
            r#""\ud83d\ude00""#,
        ] {
            assert!(skip_all(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_malformed_json() {
        for s in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "[1 2]",
            "{} {}",
            "{1:2}",
            "[,1]",
        ] {
            assert!(skip_all(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn swar_masks_find_the_first_quote_and_backslash() {
        // (bytes, index of the first `"`, index of the first `\\`); 8 = none.
        for (bytes, q, b) in [
            (*b"abcdefgh", 8, 8),
            (*b"abc\"efgh", 3, 8),
            (*b"\\bcdefg\"", 7, 0),
            (*b"\x80\x81\"\xff\xff\xff\xff\xff", 2, 8),
            (*b"\x01\x00\x00\x00\x00\x00\x00\\", 8, 7),
            (*b"\"\"\\\\\x21\x5b\x5d\x5c", 0, 2),
        ] {
            let (qm, bm) = quote_and_backslash_masks(u64::from_le_bytes(bytes));
            assert_eq!(
                (qm.trailing_zeros() / 8, bm.trailing_zeros() / 8),
                (q, b),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn parse_f64_fast_and_slow_cases() {
        for s in [
            "0",
            "-0",
            "1",
            "0.5",
            "1.0",
            "0.9993",
            "0.30000000000000004",
            "0.9985999999999999",
            "9007199254740993",
            "9007199254740992.5",
            "123456789012345678901",
            "1e3",
            "-2.5E-3",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "1e400",
            "-1e400",
        ] {
            let want: f64 = s.parse().unwrap();
            assert_eq!(parse_f64(s.as_bytes()).to_bits(), want.to_bits(), "{s}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH as usize + 1) + &"]".repeat(MAX_DEPTH as usize + 1);
        assert_eq!(skip_all(&deep).unwrap_err().reason, "nesting too deep");
        let ok = "[".repeat(MAX_DEPTH as usize) + &"]".repeat(MAX_DEPTH as usize);
        assert!(skip_all(&ok).is_ok());
    }

    #[test]
    fn unescape_matches_serde_json() {
        let arena = Bump::new();
        for s in [r#""plain""#, r#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#] {
            let mut sc = Scanner::new(s.as_bytes());
            let st = sc.string().unwrap();
            let want: String = serde_json::from_str(s).unwrap();
            assert_eq!(st.unescape(&arena).unwrap(), want);
        }
        let mut sc = Scanner::new(br#""\ud83d""#);
        let st = sc.string().unwrap();
        assert!(st.unescape(&arena).is_err());
    }

    #[test]
    fn spans_point_into_the_input() {
        let s = r#"  {"k" : [1, 2] }  "#;
        let mut sc = Scanner::new(s.as_bytes());
        sc.object_start().unwrap();
        let mut first = true;
        let k = sc.next_key(&mut first).unwrap().unwrap();
        assert!(k.is("k"));
        assert_eq!(&s[k.start..k.end], "\"k\"");
        let (a, b) = sc.skip_value().unwrap();
        assert_eq!(&s[a..b], "[1, 2]");
        assert!(sc.next_key(&mut first).unwrap().is_none());
        sc.finish().unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// The scanner accepts exactly what serde_json accepts, on arbitrary short inputs
        /// biased towards JSON punctuation — except for the documented leniency (raw control
        /// characters and lone surrogates inside strings), which the generator does not
        /// produce (no control characters, no `u`).
        #[test]
        fn agrees_with_serde_json(s in r#"[\[\]{}",:0-9a-tv-z\\. eE+-]{0,24}"#) {
            let ours = skip_all(&s).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(&s).is_ok();
            proptest::prop_assert_eq!(ours, theirs, "{:?}", s);
        }

        /// The fast number conversion equals the standard parser bit for bit (so the ranking
        /// comparison is unchanged), on JSON numbers of every shape.
        #[test]
        fn parse_f64_matches_std(
            neg in proptest::bool::ANY,
            int in "0|[1-9][0-9]{0,20}",
            frac in proptest::option::of("[0-9]{1,24}"),
            exp in proptest::option::of("[eE][+-]?[0-9]{1,3}"),
        ) {
            let s = format!("{}{int}{}{}", if neg { "-" } else { "" }, frac.map(|f| format!(".{f}")).unwrap_or_default(), exp.unwrap_or_default());
            let want: f64 = s.parse().unwrap();
            proptest::prop_assert_eq!(parse_f64(s.as_bytes()).to_bits(), want.to_bits(), "{}", s);
        }

        /// Strings long enough to cross the SWAR words and reach the memchr path, with quotes
        /// and escapes anywhere (no `u`: lone surrogates are the documented leniency).
        #[test]
        fn strings_agree_with_serde_json(body in r#"[a-tv-z0-9"\\/ ]{0,80}"#) {
            let s = format!("\"{body}\"");
            let ours = skip_all(&s);
            let theirs = serde_json::from_str::<String>(&s).is_ok();
            proptest::prop_assert_eq!(ours.is_ok(), theirs, "{:?}", s);
            if let Ok(span) = ours {
                proptest::prop_assert_eq!(span, (0, s.len()));
            }
        }
    }
}
