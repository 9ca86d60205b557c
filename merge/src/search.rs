//! `merge_search`: K search responses → one.
//!
//! 1. Read each answering shard's top-level fields ([`scan_shard`]): totals, facets and
//!    pass-through fields go into an accumulator. In Meilisearch's layout ([`tail_layout`])
//!    the hits are left for step 2; otherwise they are scanned here, in order.
//! 2. k-way merge of the shards' hit lists: each hit is scanned once, when it first becomes a
//!    head (its member spans, as runs of kept members, and its ranking data go into arena
//!    vectors); the best head wins, equal heads go to the lower shard index; the first
//!    `start` picks are skipped, the next `len` are written by splicing. In the lazy mode a
//!    hit is first tried on the SIMD fast path ([`ShardHits::scan_hit_fast`]), which hands it
//!    back to the scalar [`ShardHits::scan_hit`] for anything unusual.
//! 3. Write the top-level object in Meilisearch's key order.

use crate::facets::{FacetAcc, FacetErr};
use crate::rank::{self, Crit, SortValue};
use crate::scan::fast::QuoteIndex;
use crate::scan::simd::Level;
use crate::scan::{ScanError, Scanner, Str};
use crate::{write, MergeError, MergeStats, Pagination, SearchMergeRequest, ShardInput};
use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;
use std::cmp::Ordering;

/// How a hit's members are kept or dropped.
#[derive(Clone, Copy)]
pub(crate) struct HitFilter<'p> {
    pub reserved_prefix: &'p str,
    pub keep_score: bool,
    pub keep_details: bool,
    /// Parse `_rankingScoreDetails` into [`Crit`]s (sort mode).
    pub parse_details: bool,
    /// Strip reserved keys inside `_formatted` too.
    pub formatted: bool,
    /// More top-level keys to remove (fields Miroir asked for itself, e.g. sort fields).
    pub drop: &'p [&'p str],
    /// The distinct attribute: record each hit's span to read its values.
    pub distinct: Option<&'p str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegKind {
    /// A run of consecutive kept members (with the separators between them).
    Members,
    /// `"_formatted":{` — inner runs follow, then `Close`.
    Open,
    Inner,
    Close,
}

#[derive(Clone, Copy)]
pub(crate) struct Seg {
    start: usize,
    end: usize,
    kind: SegKind,
}

#[derive(Clone, Copy)]
pub(crate) struct Hit {
    segs: (usize, usize),
    score: Option<f64>,
    crits: Option<(usize, usize)>,
}

/// The state of one hit's scan.
struct HitScan {
    seg_lo: usize,
    /// The current run of kept members.
    run: Option<(usize, usize)>,
    score: Option<f64>,
    crits: Option<(usize, usize)>,
}

impl HitScan {
    fn new(seg_lo: usize) -> Self {
        HitScan {
            seg_lo,
            run: None,
            score: None,
            crits: None,
        }
    }

    /// Whether the member needs [`ShardHits::special_member`]: reserved keys start with `_`
    /// (normally), as do the ranking and `_formatted` keys; an escaped key may be anything.
    #[inline(always)]
    fn special(&self, k: &Str, f: &HitFilter) -> bool {
        k.escaped
            || k.raw.first() == Some(&b'_')
            || !f.reserved_prefix.starts_with('_')
            || !f.drop.is_empty()
    }

    /// The member `start..end` is kept: it extends the current run.
    #[inline(always)]
    fn keep(&mut self, start: usize, end: usize) {
        self.run = Some((self.run.map_or(start, |r| r.0), end));
    }
}

/// One shard's hits, borrowing its body. Hits are scanned either all at once (general
/// layout) or lazily, one when the merge first needs it (Meilisearch's layout, see
/// [`tail_layout`]): then hits past the merge window are never scanned at all.
pub(crate) struct ShardHits<'a> {
    body: &'a [u8],
    pub hits: BVec<'a, Hit>,
    segs: BVec<'a, Seg>,
    crits: BVec<'a, Crit<'a>>,
    /// Lazy mode: the cursor inside the hits array, until it reaches the closing `]`.
    cursor: Option<Scanner<'a>>,
    first_elem: bool,
    /// Lazy mode: where the closing `]` of the hits array must be.
    hits_end: usize,
    /// Lazy mode with a SIMD level: the quote bitmaps of the fast hit scan.
    quotes: Option<&'a mut QuoteIndex>,
    /// Each hit's byte span, when a distinct attribute is in force.
    spans: BVec<'a, (usize, usize)>,
}

impl<'a> ShardHits<'a> {
    /// `expect` is a capacity hint (hits this shard will probably scan).
    pub fn new(body: &'a [u8], arena: &'a Bump, expect: usize, details: bool) -> Self {
        ShardHits {
            body,
            hits: BVec::with_capacity_in(expect, arena),
            segs: BVec::with_capacity_in(expect * 2, arena),
            crits: BVec::with_capacity_in(if details { expect * 6 } else { 0 }, arena),
            cursor: None,
            first_elem: true,
            hits_end: 0,
            quotes: None,
            spans: BVec::new_in(arena),
        }
    }

    /// Makes sure hit `i` is scanned if it exists; `false` when the shard has ≤ `i` hits.
    pub fn ensure(
        &mut self,
        i: usize,
        arena: &'a Bump,
        f: &HitFilter,
        scratch: &mut Vec<(u64, Crit<'a>)>,
    ) -> Result<bool, ScanError> {
        if i < self.hits.len() {
            return Ok(true);
        }
        let Some(mut sc) = self.cursor.take() else {
            return Ok(false);
        };
        while self.hits.len() <= i {
            if !sc.next_element(&mut self.first_elem)? {
                if sc.pos() != self.hits_end + 1 {
                    return Err(ScanError {
                        offset: sc.pos(),
                        reason: "the hits array does not end where `],\"query\":` is",
                    });
                }
                return Ok(false);
            }
            if let Some(idx) = self.quotes.take() {
                let fast = if f.drop.is_empty() && f.distinct.is_none() {
                    self.scan_hit_fast(idx, sc.pos(), sc.depth(), arena, f, scratch)
                } else {
                    Ok(None)
                };
                self.quotes = Some(idx);
                if let Some(end) = fast? {
                    sc.seek(end);
                    continue;
                }
            }
            self.scan_hit(&mut sc, arena, f, scratch)?;
        }
        self.cursor = Some(sc);
        Ok(true)
    }

    fn crits(&self, h: &Hit) -> Option<&[Crit<'a>]> {
        h.crits.map(|(lo, hi)| &self.crits[lo..hi])
    }

    /// Scans one hit (cursor at it) and records it.
    pub fn scan_hit(
        &mut self,
        sc: &mut Scanner<'a>,
        arena: &'a Bump,
        f: &HitFilter,
        scratch: &mut Vec<(u64, Crit<'a>)>,
    ) -> Result<(), ScanError> {
        if !sc.at_object() {
            return Err(ScanError {
                offset: sc.pos(),
                reason: "a hit is not an object",
            });
        }
        let start = sc.pos();
        sc.object_start()?;
        let mut m = HitScan::new(self.segs.len());
        let mut first = true;
        while let Some(k) = sc.next_key(&mut first)? {
            // Ordinary members (the vast majority) are recognised by their first byte.
            if !m.special(&k, f) {
                sc.skip_value()?;
                m.keep(k.start, sc.pos());
            } else {
                self.special_member(&mut m, k, sc, arena, f, scratch)?;
            }
        }
        if f.distinct.is_some() {
            self.spans.push((start, sc.pos()));
        }
        self.finish_hit(m);
        Ok(())
    }

    /// [`ShardHits::scan_hit`] on the fast path (see [`crate::scan::fast`]), for the hit at
    /// `p` inside `depth` open containers: returns the hit's end, or `None` (nothing recorded)
    /// when the scalar scanner must scan this hit instead. Special members (`_rankingScore`,
    /// details, `_formatted`, reserved keys) go through the same code as on the scalar path.
    fn scan_hit_fast(
        &mut self,
        idx: &mut QuoteIndex,
        p: usize,
        depth: u32,
        arena: &'a Bump,
        f: &HitFilter,
        scratch: &mut Vec<(u64, Crit<'a>)>,
    ) -> Result<Option<usize>, ScanError> {
        let body = self.body;
        if body.get(p) != Some(&b'{') {
            return Ok(None);
        }
        let (seg_lo, crit_lo) = (self.segs.len(), self.crits.len());
        let mut m = HitScan::new(seg_lo);
        let mut q = p + 1;
        let end = if body.get(q) == Some(&b'}') {
            q + 1
        } else {
            loop {
                let key = if body.get(q) == Some(&b'"') {
                    idx.string(body, q)
                } else {
                    None
                };
                let Some((close, escaped)) = key.filter(|&(c, _)| body.get(c + 1) == Some(&b':'))
                else {
                    return Ok(self.bail(seg_lo, crit_lo));
                };
                let k = Str {
                    raw: &body[q + 1..close],
                    escaped,
                    start: q,
                    end: close + 1,
                };
                let v = close + 2;
                let vend = if !m.special(&k, f) {
                    let Some(vend) = idx.skip_value(body, v) else {
                        return Ok(self.bail(seg_lo, crit_lo));
                    };
                    m.keep(q, vend);
                    vend
                } else {
                    let mut sc = Scanner::at(body, v, depth + 1);
                    self.special_member(&mut m, k, &mut sc, arena, f, scratch)?;
                    sc.pos()
                };
                match body.get(vend) {
                    Some(b',') => q = vend + 1,
                    Some(b'}') => break vend + 1,
                    _ => return Ok(self.bail(seg_lo, crit_lo)),
                }
            }
        };
        self.finish_hit(m);
        Ok(Some(end))
    }

    /// Forgets what a failed fast scan recorded.
    fn bail(&mut self, seg_lo: usize, crit_lo: usize) -> Option<usize> {
        self.segs.truncate(seg_lo);
        self.crits.truncate(crit_lo);
        None
    }

    /// A member whose key is special (cursor at its value): reserved, ranking score or
    /// details, `_formatted`, or (with a reserved prefix not starting with `_`) any key.
    fn special_member(
        &mut self,
        m: &mut HitScan,
        k: Str<'a>,
        sc: &mut Scanner<'a>,
        arena: &'a Bump,
        f: &HitFilter,
        scratch: &mut Vec<(u64, Crit<'a>)>,
    ) -> Result<(), ScanError> {
        let keep = if k.starts_with(f.reserved_prefix, arena)? || f.drop.iter().any(|d| k.is(d)) {
            sc.skip_value()?;
            false
        } else if k.is("_rankingScore") {
            m.score = sc.f64_or_skip()?;
            f.keep_score
        } else if k.is("_rankingScoreDetails") {
            if f.parse_details && sc.at_object() {
                let lo = self.crits.len();
                rank::parse_details(sc, arena, scratch, &mut self.crits)?;
                m.crits = Some((lo, self.crits.len()));
            } else {
                sc.skip_value()?;
            }
            f.keep_details
        } else if f.formatted && k.is("_formatted") && sc.at_object() {
            self.flush(&mut m.run, SegKind::Members);
            self.segs.push(Seg {
                start: k.start,
                end: sc.pos() + 1,
                kind: SegKind::Open,
            });
            self.scan_formatted(sc, arena, f)?;
            self.segs.push(Seg {
                start: 0,
                end: 0,
                kind: SegKind::Close,
            });
            return Ok(());
        } else {
            sc.skip_value()?;
            true
        };
        if keep {
            m.keep(k.start, sc.pos());
        } else {
            self.flush(&mut m.run, SegKind::Members);
        }
        Ok(())
    }

    fn finish_hit(&mut self, mut m: HitScan) {
        self.flush(&mut m.run, SegKind::Members);
        self.hits.push(Hit {
            segs: (m.seg_lo, self.segs.len()),
            score: m.score,
            crits: m.crits,
        });
    }

    fn scan_formatted(
        &mut self,
        sc: &mut Scanner<'a>,
        arena: &'a Bump,
        f: &HitFilter,
    ) -> Result<(), ScanError> {
        sc.object_start()?;
        let mut run = None;
        let mut first = true;
        while let Some(k) = sc.next_key(&mut first)? {
            let kstart = k.start;
            sc.skip_value()?;
            if k.starts_with(f.reserved_prefix, arena)? || f.drop.iter().any(|d| k.is(d)) {
                self.flush(&mut run, SegKind::Inner);
            } else {
                run = Some((run.map_or(kstart, |r: (usize, usize)| r.0), sc.pos()));
            }
        }
        self.flush(&mut run, SegKind::Inner);
        Ok(())
    }

    fn flush(&mut self, run: &mut Option<(usize, usize)>, kind: SegKind) {
        if let Some((start, end)) = run.take() {
            self.segs.push(Seg { start, end, kind });
        }
    }

    /// Writes hit `i` from its original bytes, minus the dropped members.
    pub fn write_hit(&self, i: usize, out: &mut Vec<u8>) {
        let h = &self.hits[i];
        out.push(b'{');
        let mut first = true;
        let mut inner_first = true;
        for s in &self.segs[h.segs.0..h.segs.1] {
            match s.kind {
                SegKind::Members | SegKind::Open => {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    inner_first = true;
                    out.extend_from_slice(&self.body[s.start..s.end]);
                }
                SegKind::Inner => {
                    if !inner_first {
                        out.push(b',');
                    }
                    inner_first = false;
                    out.extend_from_slice(&self.body[s.start..s.end]);
                }
                SegKind::Close => out.push(b'}'),
            }
        }
        out.push(b'}');
    }
}

/// Top-level values gathered across shards.
struct Acc<'a> {
    total: u64,
    processing_ms: u64,
    semantic: Option<u64>,
    /// The first answering shard's `query` value, raw.
    query: Option<&'a [u8]>,
    facets: FacetAcc<'a>,
    /// The first answering shard's other top-level members, raw (`"key":value`).
    others: Vec<&'a [u8]>,
}

const KNOWN: &[&str] = &[
    "hits",
    "query",
    "processingTimeMs",
    "limit",
    "offset",
    "estimatedTotalHits",
    "hitsPerPage",
    "page",
    "totalPages",
    "totalHits",
    "facetDistribution",
    "facetStats",
    "semanticHitCount",
];

fn malformed(shard: usize) -> impl Fn(ScanError) -> MergeError {
    move |e| MergeError::Malformed {
        shard,
        offset: e.offset,
        reason: e.reason,
    }
}

fn facet_err(shard: usize) -> impl Fn(FacetErr) -> MergeError {
    move |e| match e {
        FacetErr::Scan(e) => malformed(shard)(e),
        FacetErr::Shape((field, reason)) => MergeError::Unexpected {
            shard,
            field,
            reason,
        },
    }
}

/// Meilisearch writes `{"hits":[…],"query":…` compactly, with `hits` first. In that layout
/// the *last* occurrence of `],"query":` is the end of the hits array: inside a JSON string
/// every `"` is escaped, so the sequence cannot occur in a string, and no top-level field
/// after `query` holds an object with a `query` key after an array. Returns the positions of
/// the hits array's `[` and `]`, or `None` for any other layout (then everything is scanned
/// in order). A wrong guess cannot go unnoticed: the suffix must parse as the rest of the top
/// level object, and the lazy hit cursor checks that the array ends exactly there.
fn tail_layout(body: &[u8]) -> Option<(usize, usize)> {
    const HEAD: &[u8] = br#"{"hits":["#;
    const MARK: &[u8] = br#"],"query":"#;
    let lead = body.iter().position(|b| !b" \n\r\t".contains(b))?;
    if !body[lead..].starts_with(HEAD) {
        return None;
    }
    let open = lead + HEAD.len() - 1;
    let close = memchr::memmem::rfind(body, MARK)?;
    if close <= open {
        return None;
    }
    // The suffix must be a well-formed rest of the top-level object.
    let mut sc = Scanner::at(body, close + 1, 1);
    let mut first = false;
    loop {
        match sc.next_key(&mut first) {
            Ok(Some(_)) => {
                if sc.skip_value().is_err() {
                    return None;
                }
            }
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    sc.finish().ok()?;
    Some((open, close))
}

/// Reads one top-level member (cursor at its value) into `acc`; returns `false` when the key
/// is `hits` (left for the caller).
#[allow(clippy::too_many_arguments)]
fn top_member<'a>(
    shard: usize,
    body: &'a [u8],
    sc: &mut Scanner<'a>,
    k: crate::scan::Str<'a>,
    arena: &'a Bump,
    acc: &mut Acc<'a>,
    reserved: &str,
    is_first: bool,
) -> Result<bool, MergeError> {
    let m = malformed(shard);
    let unexpected = |field, reason| MergeError::Unexpected {
        shard,
        field,
        reason,
    };
    if k.is("hits") {
        return Ok(false);
    } else if k.is("estimatedTotalHits") || k.is("totalHits") {
        let n = sc.u64_or_skip().map_err(&m)?;
        let n = n.ok_or_else(|| unexpected("estimatedTotalHits", "is not an integer"))?;
        acc.total = acc.total.saturating_add(n);
    } else if k.is("processingTimeMs") {
        let n = sc.u64_or_skip().map_err(&m)?;
        let n = n.ok_or_else(|| unexpected("processingTimeMs", "is not an integer"))?;
        acc.processing_ms = acc.processing_ms.max(n);
    } else if k.is("semanticHitCount") {
        let n = sc.u64_or_skip().map_err(&m)?;
        let n = n.ok_or_else(|| unexpected("semanticHitCount", "is not an integer"))?;
        acc.semantic = Some(acc.semantic.unwrap_or(0).saturating_add(n));
    } else if k.is("facetDistribution") {
        acc.facets
            .add_distribution(sc, arena, reserved)
            .map_err(facet_err(shard))?;
    } else if k.is("facetStats") {
        acc.facets
            .add_stats(sc, arena, reserved)
            .map_err(facet_err(shard))?;
    } else if is_first && k.is("query") {
        let (a, b) = sc.skip_value().map_err(&m)?;
        acc.query = Some(&body[a..b]);
    } else if is_first && !KNOWN.iter().any(|n| k.is(n)) {
        let (_, b) = sc.skip_value().map_err(&m)?;
        acc.others.push(&body[k.start..b]);
    } else {
        sc.skip_value().map_err(&m)?;
    }
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn scan_shard<'a>(
    shard: usize,
    body: &'a [u8],
    filter: &HitFilter,
    arena: &'a Bump,
    acc: &mut Acc<'a>,
    is_first: bool,
    need: usize,
    scratch: &mut Vec<(u64, Crit<'a>)>,
    level: Level,
) -> Result<ShardHits<'a>, MergeError> {
    let m = malformed(shard);
    let unexpected = |field, reason| MergeError::Unexpected {
        shard,
        field,
        reason,
    };
    // Capacity hint: the merge scans at most `need + 1` hits of a shard; hits are rarely
    // under 64 bytes.
    let expect = need.saturating_add(1).min(body.len() / 64 + 1);
    let mut hits = ShardHits::new(body, arena, expect, filter.parse_details);
    let reserved = filter.reserved_prefix;

    if let Some((open, close)) = tail_layout(body) {
        let mut sc = Scanner::at(body, close + 1, 1);
        let mut first = false;
        while let Some(k) = sc.next_key(&mut first).map_err(&m)? {
            if !top_member(shard, body, &mut sc, k, arena, acc, reserved, is_first)? {
                sc.skip_value().map_err(&m)?;
            }
        }
        let mut cur = Scanner::at(body, open, 1);
        cur.array_start().map_err(&m)?;
        hits.cursor = Some(cur);
        hits.hits_end = close;
        if level != Level::Scalar {
            hits.quotes = Some(arena.alloc(QuoteIndex::new(level, open)));
        }
        return Ok(hits);
    }

    let mut sc = Scanner::new(body);
    if sc.peek() != Some(b'{') {
        return Err(unexpected("(body)", "is not a JSON object"));
    }
    sc.object_start().map_err(&m)?;
    let mut first = true;
    let mut seen_hits = false;
    while let Some(k) = sc.next_key(&mut first).map_err(&m)? {
        if top_member(shard, body, &mut sc, k, arena, acc, reserved, is_first)? {
            continue;
        }
        if sc.peek() != Some(b'[') {
            return Err(unexpected("hits", "is not an array"));
        }
        seen_hits = true;
        sc.array_start().map_err(&m)?;
        let mut f = true;
        while sc.next_element(&mut f).map_err(&m)? {
            hits.scan_hit(&mut sc, arena, filter, scratch).map_err(&m)?;
        }
    }
    sc.finish().map_err(&m)?;
    if !seen_hits {
        return Err(unexpected("hits", "is missing"));
    }
    Ok(hits)
}

/// Merges K search responses into one (see the crate docs for what nodes must be asked).
///
/// The merged body is **appended** to `out`. `arena` holds per-hit scratch; reset it after
/// the response is written. A [`ShardInput::Failed`] input is listed in
/// [`MergeStats::failed`] and otherwise ignored; a malformed body fails the whole merge
/// (the caller may retry the merge without that shard by passing it as `Failed`); on error
/// `out` is left as it was.
pub fn merge_search(
    req: &SearchMergeRequest,
    shards: &[ShardInput],
    arena: &Bump,
    out: &mut Vec<u8>,
) -> Result<MergeStats, MergeError> {
    merge_search_with_level(req, shards, arena, out, crate::scan::simd::detected())
}

/// [`merge_search`] with the hit scan's SIMD level chosen by the caller instead of
/// [`simd::detected`](crate::scan::simd::detected): [`Level::Scalar`] is the scalar scanner
/// alone. The output is the same at every level (the tests check it); this exists to compare
/// them (benchmarks, tests). A level the CPU lacks falls back to one it has.
pub fn merge_search_with_level(
    req: &SearchMergeRequest,
    shards: &[ShardInput],
    arena: &Bump,
    out: &mut Vec<u8>,
    level: Level,
) -> Result<MergeStats, MergeError> {
    let filter = HitFilter {
        reserved_prefix: req.reserved_prefix,
        keep_score: req.want_ranking_score,
        keep_details: req.want_ranking_score_details,
        parse_details: req.sort_requested,
        formatted: true,
        drop: req.drop,
        distinct: req.distinct,
    };
    let mut stats = MergeStats::default();
    let mut acc = Acc {
        total: 0,
        processing_ms: 0,
        semantic: None,
        query: None,
        facets: FacetAcc::default(),
        others: Vec::new(),
    };
    let (start, len) = req.pagination.window(req.max_total_hits);
    let need = start + len;
    let mut lists: BVec<ShardHits> = BVec::with_capacity_in(shards.len(), arena);
    let mut index: BVec<usize> = BVec::with_capacity_in(shards.len(), arena);
    let mut scratch = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        match s {
            ShardInput::Ok(body) => {
                let is_first = stats.answered == 0;
                lists.push(scan_shard(
                    i,
                    body,
                    &filter,
                    arena,
                    &mut acc,
                    is_first,
                    need,
                    &mut scratch,
                    level,
                )?);
                index.push(i);
                stats.answered += 1;
            }
            ShardInput::Failed => stats.failed.push(i),
        }
    }

    // Not capped by `maxTotalHits`: Meilisearch 1.50 caps only the hits window, its
    // `estimatedTotalHits`/`totalHits` count every match (checked against a real node).
    let total = acc.total;
    stats.total = total;

    let mark = out.len();
    let mut first = true;
    out.push(b'{');
    write::key(out, &mut first, "hits");
    out.push(b'[');
    let merged = k_way(
        &mut lists,
        &filter,
        arena,
        &mut scratch,
        start,
        len,
        |list, i, n| {
            if n > 0 {
                out.push(b',');
            }
            list.write_hit(i, out);
        },
    );
    stats.returned = match merged {
        Ok(n) => n,
        Err((k, e)) => {
            out.truncate(mark);
            return Err(malformed(index[k])(e));
        }
    };
    out.push(b']');

    write::key(out, &mut first, "query");
    match (req.query, acc.query) {
        (Some(q), _) => write::string(out, q),
        (None, Some(raw)) => out.extend_from_slice(raw),
        (None, None) => out.extend_from_slice(b"\"\""),
    }
    write::key(out, &mut first, "processingTimeMs");
    write::uint(out, acc.processing_ms);
    match req.pagination {
        Pagination::OffsetLimit { offset, limit } => {
            write::key(out, &mut first, "limit");
            write::uint(out, limit as u64);
            // Echoed as sent (Meilisearch 1.50 clamps only the window, not the echo).
            write::key(out, &mut first, "offset");
            write::uint(out, offset as u64);
            write::key(out, &mut first, "estimatedTotalHits");
            write::uint(out, total);
        }
        Pagination::Page {
            page,
            hits_per_page,
        } => {
            write::key(out, &mut first, "hitsPerPage");
            write::uint(out, hits_per_page as u64);
            write::key(out, &mut first, "page");
            write::uint(out, page as u64);
            write::key(out, &mut first, "totalPages");
            write::uint(out, total_pages(total, hits_per_page as u64));
            write::key(out, &mut first, "totalHits");
            write::uint(out, total);
        }
    }
    acc.facets
        .write(out, &mut first, req.max_values_per_facet, total, |f| {
            req.facet_order(f)
        });
    for raw in &acc.others {
        out.push(b',');
        out.extend_from_slice(raw);
    }
    // Each node counts the semantic hits of its own page; the merged page holds at most
    // `returned` of them. Exact when every hit or none is semantic (`semanticRatio` 1 or 0),
    // an upper bound otherwise (hits do not say which search found them).
    if let Some(n) = acc.semantic {
        write::key(out, &mut first, "semanticHitCount");
        write::uint(out, n.min(stats.returned as u64));
    }
    out.push(b'}');
    Ok(stats)
}

/// `ceil(total / hits_per_page)`, 0 when `hits_per_page` is 0 (as Meilisearch).
pub(crate) fn total_pages(total: u64, hits_per_page: u64) -> u64 {
    total.div_ceil(hits_per_page.max(1)) * u64::from(hits_per_page > 0)
}

/// The k-way merge: calls `emit(list, hit, n)` for the picks `start..start+len` in merged
/// order (`n` counts emitted hits); returns how many were emitted, or the list index and
/// error of a hit that failed to scan.
fn k_way<'a>(
    lists: &mut [ShardHits<'a>],
    filter: &HitFilter,
    arena: &'a Bump,
    scratch: &mut Vec<(u64, Crit<'a>)>,
    start: usize,
    len: usize,
    mut emit: impl FnMut(&ShardHits<'a>, usize, usize),
) -> Result<usize, (usize, ScanError)> {
    let mut heads: BVec<usize> = BVec::with_capacity_in(lists.len(), arena);
    heads.resize(lists.len(), 0);
    let need = start.saturating_add(len);
    let mut emitted = 0;
    let mut seen = Seen::default();
    let mut picked = 0;
    while picked < need {
        let mut best: Option<usize> = None;
        for k in 0..lists.len() {
            let more = lists[k]
                .ensure(heads[k], arena, filter, scratch)
                .map_err(|e| (k, e))?;
            if !more {
                continue;
            }
            let list = &lists[k];
            let h = &list.hits[heads[k]];
            let better = match best {
                None => true,
                Some(b) => {
                    let bl = &lists[b];
                    let bh = &bl.hits[heads[b]];
                    // Strictly better only: equal heads keep the lower shard index.
                    rank::cmp_hits(h.score, list.crits(h), bh.score, bl.crits(bh))
                        == Ordering::Greater
                }
            };
            if better {
                best = Some(k);
            }
        }
        let Some(b) = best else { break };
        if let Some(field) = filter.distinct {
            let list = &lists[b];
            let (lo, hi) = list.spans[heads[b]];
            let fresh = seen
                .admit(&list.body[lo..hi], field, arena)
                .map_err(|e| (b, e))?;
            if !fresh {
                heads[b] += 1;
                continue;
            }
        }
        if picked >= start {
            emit(&lists[b], heads[b], emitted);
            emitted += 1;
        }
        picked += 1;
        heads[b] += 1;
    }
    Ok(emitted)
}

/// The distinct values already returned (numbers by their bits, strings normalised).
#[derive(Default)]
struct Seen<'a> {
    numbers: std::collections::HashSet<u64>,
    strings: std::collections::HashSet<&'a str>,
}

impl<'a> Seen<'a> {
    /// Whether the hit `doc` may be returned: none of its values of `field` was returned
    /// before (a hit without a value always may). Records its values when it may.
    fn admit(&mut self, doc: &'a [u8], field: &str, arena: &'a Bump) -> Result<bool, ScanError> {
        let values = crate::doc_values::facet_values(doc, field, arena)?;
        let known = values.iter().any(|v| match v {
            SortValue::Number(n) => self.numbers.contains(&crate::doc_values::number_key(*n)),
            SortValue::String(s) => self.strings.contains(s),
            _ => false,
        });
        if known {
            return Ok(false);
        }
        for v in values {
            match v {
                SortValue::Number(n) => {
                    self.numbers.insert(crate::doc_values::number_key(n));
                }
                SortValue::String(s) => {
                    self.strings.insert(s);
                }
                _ => {}
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_layout_finds_the_hits_end() {
        // A document field named `query` after an array inside a hit: the last marker wins.
        let b = br#"{"hits":[{"tags":[1],"query":"x"},{"id":2}],"query":"q","processingTimeMs":1}"#;
        let (open, close) = tail_layout(b).unwrap();
        assert_eq!((b[open], b[close]), (b'[', b']'));
        assert_eq!(&b[close..close + 3], b"],\"");
        assert!(b[close + 1..].starts_with(br#","query":"q""#));
        // Other layouts: scanned in order.
        assert!(tail_layout(br#"{"query":"q","hits":[]}"#).is_none());
        assert!(tail_layout(br#"{ "hits": [], "query": "q" }"#).is_none());
        // A suffix that is not the rest of the top-level object is refused.
        assert!(tail_layout(br#"{"hits":[{"a":[1],"query":2,"b":3}],"x":1}"#).is_none());
    }

    #[test]
    fn lazy_cursor_rejects_a_misplaced_hits_end() {
        // Valid JSON, but not Meilisearch's layout: `query` does not follow `hits`. The
        // lazy cursor notices instead of merging from the wrong place.
        let by = std::collections::BTreeMap::new();
        let req = SearchMergeRequest {
            pagination: Pagination::OffsetLimit {
                offset: 0,
                limit: 10,
            },
            sort_requested: false,
            want_ranking_score: false,
            want_ranking_score_details: false,
            max_values_per_facet: 100,
            sort_facet_values_by: &by,
            max_total_hits: 1000,
            reserved_prefix: "_miroir_",
            query: None,
            distinct: None,
            drop: &[],
        };
        let b = br#"{"hits":[{"id":1}],"x":[],"query":"q","processingTimeMs":1}"#;
        let arena = Bump::new();
        let mut out = b"keep".to_vec();
        let err = merge_search(&req, &[ShardInput::Ok(b)], &arena, &mut out).unwrap_err();
        assert!(
            matches!(err, MergeError::Malformed { shard: 0, .. }),
            "{err}"
        );
        assert_eq!(out, b"keep", "output restored on error");
    }

    #[test]
    fn total_pages_rounds_up_and_handles_zero() {
        assert_eq!(total_pages(0, 20), 0);
        assert_eq!(total_pages(20, 20), 1);
        assert_eq!(total_pages(21, 20), 2);
        assert_eq!(total_pages(21, 0), 0);
    }
}
