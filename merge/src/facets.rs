//! `facetDistribution` and `facetStats` across shards.
//!
//! Counts are summed per (facet, value), then each facet's values are ordered per
//! `sortFacetValuesBy` and cut to `maxValuesPerFacet`, as a single node does:
//! * alpha ([`cmp_alpha`]): values that are numbers first, in numeric order, then the others
//!   by their lower-cased text — our reading of milli's `facet_distribution.rs`, which walks
//!   the number facets then the string facets, each in database order (numeric order,
//!   normalised-string order). Assumption: the lower-casing stands in for Meilisearch's facet
//!   normalisation, so values that differ by accents or other normalisation may come in a
//!   different order; ties fall back to byte order so the order is total;
//! * count: count descending, then the alpha order.
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
                sort_values(&mut sorted, order_of(facet));
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

/// Orders one facet's `(value, count)` pairs (see the module docs).
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
