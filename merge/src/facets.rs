//! `facetDistribution` and `facetStats` across shards.
//!
//! Counts are summed per (facet, value), then each facet's values are ordered and cut to
//! `maxValuesPerFacet` the way one Meilisearch node holding every document would
//! ([`order_distribution`]), as read in milli 1.50 `search/facet/facet_distribution.rs` and
//! checked against a real Meilisearch 1.50 (e2e differential with real nodes):
//! * values that came from **numbers** (their text is exactly what `f64`'s `Display`
//!   writes, as milli does) always come first, then the string values; the cut applies to
//!   both together (numbers fill the slots first);
//! * alpha, at most [`CANDIDATES_THRESHOLD`] matching documents (milli walks the candidates'
//!   own values into a `BTreeMap<String, _>`): numbers in **text** order (`"10"` before
//!   `"9"`), strings by their lower-cased text;
//! * alpha, more candidates (milli walks its facet database): numbers in numeric order,
//!   strings by lower-cased text;
//! * count: count descending, equal counts by value descending (milli's max-heap over the
//!   facet database pops the larger key first among equal leaf counts; its group levels can
//!   reorder some ties, which no merge can reproduce).
//!
//! Assumptions: the lower-casing stands in for Meilisearch's facet normalisation; a string
//! facet value that looks exactly like a formatted number (`"1950"`) is ordered as a number.
//!
//! Facets are written in facet-name byte order (Meilisearch's map is a `BTreeMap`). Reserved
//! facets (`_miroir_*`) are removed. `facetStats`: min of the mins, max of the maxes, written
//! with the winning shard's original number text.
//!
//! Known limit (inherent to merging truncated lists): a value outside one shard's top
//! `maxValuesPerFacet` is missing from that shard's counts.

use crate::scan::Scanner;
use crate::write;
use crate::FacetOrder;
use bumpalo::Bump;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// A shape problem in a facet object: which field, why.
pub(crate) type ShapeError = (&'static str, &'static str);

pub(crate) enum FacetErr {
    Scan(crate::scan::ScanError),
    Shape(ShapeError),
}

impl From<crate::scan::ScanError> for FacetErr {
    fn from(e: crate::scan::ScanError) -> Self {
        FacetErr::Scan(e)
    }
}

#[derive(Default)]
pub(crate) struct FacetAcc<'a> {
    /// `Some` once any shard had `facetDistribution`.
    pub dist: Option<BTreeMap<&'a str, HashMap<&'a str, u64>>>,
    /// `Some` once any shard had `facetStats`.
    pub stats: Option<BTreeMap<&'a str, MinMax<'a>>>,
}

#[derive(Default, Clone, Copy)]
pub(crate) struct MinMax<'a> {
    pub min: Option<(f64, &'a [u8])>,
    pub max: Option<(f64, &'a [u8])>,
}

/// Walks a `{facet: {...}}` object (cursor at it), calling `each` with the scanner at every
/// facet's inner object; facets whose name starts with `reserved` are skipped unread.
fn for_each_facet<'a>(
    sc: &mut Scanner<'a>,
    arena: &'a Bump,
    reserved: &str,
    field: &'static str,
    mut each: impl FnMut(&'a str, &mut Scanner<'a>) -> Result<(), FacetErr>,
) -> Result<(), FacetErr> {
    if !sc.at_object() {
        return Err(FacetErr::Shape((field, "is not an object")));
    }
    sc.object_start()?;
    let mut first = true;
    while let Some(facet) = sc.next_key(&mut first)? {
        let name = facet.unescape(arena)?;
        if !sc.at_object() {
            return Err(FacetErr::Shape((
                field,
                "has a facet that is not an object",
            )));
        }
        if name.starts_with(reserved) {
            sc.skip_value()?;
            continue;
        }
        each(name, sc)?;
    }
    Ok(())
}

impl<'a> FacetAcc<'a> {
    /// Adds one shard's `facetDistribution` (cursor at the value).
    pub fn add_distribution(
        &mut self,
        sc: &mut Scanner<'a>,
        arena: &'a Bump,
        reserved: &str,
    ) -> Result<(), FacetErr> {
        const F: &str = "facetDistribution";
        let dist = self.dist.get_or_insert_with(BTreeMap::new);
        for_each_facet(sc, arena, reserved, F, |name, sc| {
            let values = dist.entry(name).or_default();
            sc.object_start()?;
            let mut f = true;
            while let Some(v) = sc.next_key(&mut f)? {
                let v = v.unescape(arena)?;
                let Some(n) = sc.u64_or_skip()? else {
                    return Err(FacetErr::Shape((F, "has a count that is not an integer")));
                };
                let c = values.entry(v).or_insert(0);
                *c = c.saturating_add(n);
            }
            Ok(())
        })
    }

    /// Adds one shard's `facetStats` (cursor at the value).
    pub fn add_stats(
        &mut self,
        sc: &mut Scanner<'a>,
        arena: &'a Bump,
        reserved: &str,
    ) -> Result<(), FacetErr> {
        const F: &str = "facetStats";
        let stats = self.stats.get_or_insert_with(BTreeMap::new);
        for_each_facet(sc, arena, reserved, F, |name, sc| {
            let mm = stats.entry(name).or_default();
            sc.object_start()?;
            let mut f = true;
            while let Some(k) = sc.next_key(&mut f)? {
                let is_min = k.is("min");
                if !is_min && !k.is("max") {
                    sc.skip_value()?;
                    continue;
                }
                let bytes = sc.bytes();
                let start = sc.pos();
                let Some(x) = sc.f64_or_skip()? else {
                    return Err(FacetErr::Shape((F, "has a min/max that is not a number")));
                };
                let raw = &bytes[start..sc.pos()];
                // Earlier shards win ties, so equal values keep the first shard's text.
                if is_min {
                    if mm.min.is_none_or(|(m, _)| x < m) {
                        mm.min = Some((x, raw));
                    }
                } else if mm.max.is_none_or(|(m, _)| x > m) {
                    mm.max = Some((x, raw));
                }
            }
            Ok(())
        })
    }

    /// Writes `"facetDistribution":{…}` and/or `"facetStats":{…}` (each when present).
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        first: &mut bool,
        max_values: usize,
        candidates: u64,
        order_of: impl Fn(&str) -> FacetOrder,
    ) {
        if let Some(dist) = &self.dist {
            write::key(out, first, "facetDistribution");
            out.push(b'{');
            let mut sorted: Vec<(&str, u64)> = Vec::new();
            for (i, (facet, values)) in dist.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write::string(out, facet);
                out.extend_from_slice(b":{");
                sorted.clear();
                sorted.extend(values.iter().map(|(v, c)| (*v, *c)));
                order_distribution(&mut sorted, order_of(facet), candidates);
                for (j, (v, c)) in sorted.iter().take(max_values).enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write::string(out, v);
                    out.push(b':');
                    write::uint(out, *c);
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
        if let Some(stats) = &self.stats {
            write::key(out, first, "facetStats");
            out.push(b'{');
            let mut firsts = true;
            for (facet, mm) in stats {
                if !firsts {
                    out.push(b',');
                }
                firsts = false;
                write::string(out, facet);
                out.push(b':');
                let mut f = true;
                out.push(b'{');
                if let Some((_, raw)) = mm.min {
                    write::key(out, &mut f, "min");
                    out.extend_from_slice(raw);
                }
                if let Some((_, raw)) = mm.max {
                    write::key(out, &mut f, "max");
                    out.extend_from_slice(raw);
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
    }
}

/// Above this many matching documents milli reads facet values from its facet database
/// (numeric order for numbers) instead of from the documents (text order).
pub const CANDIDATES_THRESHOLD: u64 = 3000;

/// Orders one facet's `(value, count)` pairs of a search's `facetDistribution`, given the
/// number of documents the search matched (see the module docs).
pub(crate) fn order_distribution(values: &mut [(&str, u64)], order: FacetOrder, candidates: u64) {
    // Classify once: `Some(x)` for values written from a number.
    let mut keyed: Vec<(Option<f64>, &str, u64)> = values
        .iter()
        .map(|&(v, c)| (number_value(v), v, c))
        .collect();
    keyed.sort_unstable_by(|a, b| {
        let class = a.0.is_none().cmp(&b.0.is_none()); // numbers first
        class.then_with(|| match (order, a.0, b.0) {
            (FacetOrder::Alpha, Some(x), Some(y)) if candidates > CANDIDATES_THRESHOLD => {
                x.total_cmp(&y).then_with(|| a.1.cmp(b.1))
            }
            (FacetOrder::Alpha, Some(_), Some(_)) => a.1.cmp(b.1),
            (FacetOrder::Alpha, _, _) => cmp_text(a.1, b.1),
            (FacetOrder::Count, Some(x), Some(y)) => {
                b.2.cmp(&a.2)
                    .then_with(|| y.total_cmp(&x))
                    .then_with(|| b.1.cmp(a.1))
            }
            (FacetOrder::Count, _, _) => b.2.cmp(&a.2).then_with(|| cmp_text(b.1, a.1)),
        })
    });
    for (slot, (_, v, c)) in values.iter_mut().zip(keyed) {
        *slot = (v, c);
    }
}

/// The number a facet value was written from, if its text is exactly `f64`'s `Display` of
/// it (how milli turns number facets into distribution keys: `1950`, `0.5`, `-3`).
pub(crate) fn number_value(s: &str) -> Option<f64> {
    use std::io::Write;
    let x: f64 = s.parse().ok()?;
    if !x.is_finite() || s.len() > 40 {
        return None;
    }
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    write!(w, "{x}").ok()?;
    let n = 48 - w.len();
    (buf[..n] == *s.as_bytes()).then_some(x)
}

/// Case-insensitive text order (lower-cased, then bytes so that the order is total).
fn cmp_text(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        // Allocation-free fast path.
        let la = a.bytes().map(|c| c.to_ascii_lowercase());
        let lb = b.bytes().map(|c| c.to_ascii_lowercase());
        return la.cmp(lb).then_with(|| a.cmp(b));
    }
    let lower = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<Vec<_>>();
    lower(a).cmp(&lower(b)).then_with(|| a.cmp(b))
}

/// Orders facet-search `(value, count)` pairs (see the module docs).
pub(crate) fn sort_values(values: &mut [(&str, u64)], order: FacetOrder) {
    match order {
        FacetOrder::Alpha => values.sort_unstable_by(|a, b| cmp_alpha(a.0, b.0)),
        FacetOrder::Count => {
            values.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| cmp_alpha(a.0, b.0)))
        }
    }
}

/// The alpha order of facet values (see the module docs).
pub(crate) fn cmp_alpha(a: &str, b: &str) -> Ordering {
    let num = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite());
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => {
            let lower = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<Vec<_>>();
            // Allocation-free fast path: plain ASCII compares case-insensitively in place.
            if a.is_ascii() && b.is_ascii() {
                let la = a.bytes().map(|c| c.to_ascii_lowercase());
                let lb = b.bytes().map(|c| c.to_ascii_lowercase());
                la.cmp(lb).then_with(|| a.cmp(b))
            } else {
                lower(a).cmp(&lower(b)).then_with(|| a.cmp(b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_alpha_and_count() {
        let mut v = vec![("b", 1), ("a", 1), ("c", 5)];
        sort_values(&mut v, FacetOrder::Alpha);
        assert_eq!(v, [("a", 1), ("b", 1), ("c", 5)]);
        sort_values(&mut v, FacetOrder::Count);
        assert_eq!(v, [("c", 5), ("a", 1), ("b", 1)]);
    }

    fn ordered(v: &[(&'static str, u64)], order: FacetOrder, candidates: u64) -> Vec<&'static str> {
        let mut v = v.to_vec();
        order_distribution(&mut v, order, candidates);
        v.iter().map(|e| e.0).collect()
    }

    #[test]
    fn distribution_orders_like_one_meilisearch_node() {
        let v = [
            ("b", 1),
            ("10", 2),
            ("Zed", 1),
            ("9.5", 2),
            ("a", 3),
            ("-1", 1),
            ("B", 1),
            ("1e3", 9),
        ];
        // Few candidates: numbers in text order, then strings; "1e3" is not how a number
        // facet is written, so it is a string.
        assert_eq!(
            ordered(&v, FacetOrder::Alpha, 10),
            ["-1", "10", "9.5", "1e3", "a", "B", "b", "Zed"]
        );
        // Many candidates: numbers in numeric order.
        assert_eq!(
            ordered(&v, FacetOrder::Alpha, 3001),
            ["-1", "9.5", "10", "1e3", "a", "B", "b", "Zed"]
        );
        // Count: numbers first, count descending, ties by value descending.
        assert_eq!(
            ordered(&v, FacetOrder::Count, 10),
            ["10", "9.5", "-1", "1e3", "a", "Zed", "b", "B"]
        );
    }

    #[test]
    fn number_values_are_recognised_by_their_exact_display_text() {
        assert_eq!(number_value("1950"), Some(1950.0));
        assert_eq!(number_value("0.5"), Some(0.5));
        assert_eq!(number_value("-3"), Some(-3.0));
        for s in ["1950.0", "1e3", "01", "+1", "NaN", "inf", " 1", "abc", ""] {
            assert_eq!(number_value(s), None, "{s}");
        }
    }

    #[test]
    fn alpha_puts_numbers_first_numerically_then_text_case_insensitively() {
        let mut v = vec![
            ("b", 1),
            ("10", 1),
            ("Zed", 1),
            ("9.5", 1),
            ("a", 1),
            ("Été", 1),
            ("-1", 1),
            ("B", 1),
            ("été", 1),
        ];
        sort_values(&mut v, FacetOrder::Alpha);
        let got: Vec<&str> = v.iter().map(|e| e.0).collect();
        assert_eq!(got, ["-1", "9.5", "10", "a", "B", "b", "Zed", "Été", "été"]);
    }
}
