//! Which of two shard heads comes first.
//!
//! ## Without `sort`
//! `_rankingScore` descending. The score is Meilisearch's global score, a mixed-radix encoding
//! of the per-rule ranks (`Rank::global_score` in milli's `score_details.rs`), hence monotone
//! with the lexicographic bucket order a node uses. A hit without a score sorts last.
//!
//! ## With `sort`
//! The sort rule sits between other ranking rules, so the score alone is wrong (it only counts
//! the rank rules *before* the first sort rule). Nodes are asked for
//! `showRankingScoreDetails: true`, and heads are compared rule by rule in `order`, which is
//! what Meilisearch's own federated search does (`ScoreDetails::weighted_score_values` and the
//! comparison in `search/federated/perform.rs`). Our reading of that code:
//!
//! * rank rules (`words`, `typo`, `proximity`, `attribute`, `exactness`, and vector rules
//!   which report `similarity`) compare by their `score`, higher first. milli coalesces
//!   *consecutive* rank rules into one merged rank before comparing; comparing their local
//!   scores one by one gives the same order whenever two hits' rules have the same maximum
//!   ranks (they depend on the query and settings only, which all nodes share), and is exact
//!   instead of within `f64::EPSILON`.
//! * sort rules (detail keys `"field:asc"`/`"field:desc"`) compare their `value` with
//!   milli's sort-value order: a missing/`null` value is worst whatever the direction;
//!   numbers come before strings whatever the direction; numbers by value, strings by byte
//!   order (the detail carries the node's stored string), each reversed for `desc`; values of
//!   any other type (booleans, arrays, objects) compare equal and the next rule decides.
//! * geo sort (`"_geoPoint(lat, lng):asc"`) compares `distance`: closer first for `asc`,
//!   farther first for `desc`, a missing distance last.
//! * when the two heads' rules do not line up (different kinds or directions at the same
//!   position, or different lengths — nodes with different settings, which Miroir prevents),
//!   fall back to `_rankingScore`, as milli falls back to the global score.
//! * a detail entry with neither `score`, `similarity` nor a sort key (e.g. `skipped`) is
//!   ignored.
//!
//! Ties (all rules equal) are broken by the caller: lower shard index first.

use crate::scan::{Result, ScanError, Scanner, Str};
use bumpalo::Bump;
use std::cmp::Ordering;

/// One ranking rule's outcome for a hit, in comparable form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crit<'a> {
    /// A rank rule's score (higher is better).
    Score(f64),
    /// A sort rule.
    Sort { asc: bool, value: SortValue<'a> },
    /// A geo sort rule.
    Geo { asc: bool, distance: Option<f64> },
}

/// A sort rule's `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortValue<'a> {
    Missing,
    Number(f64),
    String(&'a str),
    /// Booleans, arrays, objects: not ordered by milli.
    Other,
}

/// Compares two global scores (higher better); a missing score is worst.
#[inline]
pub fn cmp_score(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
}

/// milli's sort-value order; `Greater` means `a` comes first.
pub fn cmp_sort_value(asc: bool, a: &SortValue, b: &SortValue) -> Ordering {
    use SortValue::*;
    let directed = |o: Ordering| if asc { o.reverse() } else { o };
    match (a, b) {
        (Missing, Missing) => Ordering::Equal,
        (Missing, _) => Ordering::Less,
        (_, Missing) => Ordering::Greater,
        (Number(_), String(_)) => Ordering::Greater,
        (String(_), Number(_)) => Ordering::Less,
        (Number(x), Number(y)) => directed(x.partial_cmp(y).unwrap_or(Ordering::Equal)),
        (String(x), String(y)) => directed(x.as_bytes().cmp(y.as_bytes())),
        _ => Ordering::Equal,
    }
}

/// Compares two heads; `Greater` means `a` comes first. `details` are `None` when a hit had
/// no `_rankingScoreDetails` (then only the scores are compared).
pub fn cmp_hits(
    score_a: Option<f64>,
    details_a: Option<&[Crit]>,
    score_b: Option<f64>,
    details_b: Option<&[Crit]>,
) -> Ordering {
    let (Some(da), Some(db)) = (details_a, details_b) else {
        return cmp_score(score_a, score_b);
    };
    if da.len() != db.len() {
        return cmp_score(score_a, score_b);
    }
    for (x, y) in da.iter().zip(db) {
        let o = match (x, y) {
            (Crit::Score(x), Crit::Score(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
            (Crit::Sort { asc: ax, value: vx }, Crit::Sort { asc: ay, value: vy }) if ax == ay => {
                cmp_sort_value(*ax, vx, vy)
            }
            (
                Crit::Geo {
                    asc: ax,
                    distance: dx,
                },
                Crit::Geo {
                    asc: ay,
                    distance: dy,
                },
            ) if ax == ay => match (dx, dy) {
                (Some(dx), Some(dy)) => {
                    let o = dx.partial_cmp(dy).unwrap_or(Ordering::Equal);
                    if *ax {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (None, None) => Ordering::Equal,
            },
            _ => return cmp_score(score_a, score_b),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Parses a `_rankingScoreDetails` object (cursor at it) and appends its rules to `out`,
/// ordered by each entry's `order`. `scratch` is a reusable buffer (cleared here). Strings are
/// unescaped into `arena` only when they contain escapes. A value that is not an object
/// appends nothing.
pub fn parse_details<'a>(
    sc: &mut Scanner<'a>,
    arena: &'a Bump,
    scratch: &mut Vec<(u64, Crit<'a>)>,
    out: &mut bumpalo::collections::Vec<'a, Crit<'a>>,
) -> Result<()> {
    scratch.clear();
    if !sc.at_object() {
        sc.skip_value()?;
        return Ok(());
    }
    sc.object_start()?;
    let mut first = true;
    while let Some(rule) = sc.next_key(&mut first)? {
        if let Some(entry) = parse_rule(sc, arena, rule)? {
            scratch.push(entry);
        }
    }
    // Stable, and allocation-free for the handful of rules an index has.
    scratch.sort_by_key(|e| e.0);
    out.extend(scratch.drain(..).map(|e| e.1));
    Ok(())
}

fn parse_rule<'a>(
    sc: &mut Scanner<'a>,
    arena: &'a Bump,
    rule: Str<'a>,
) -> Result<Option<(u64, Crit<'a>)>> {
    if !sc.at_object() {
        sc.skip_value()?;
        return Ok(None);
    }
    let name = rule.unescape(arena)?;
    let (is_sort, asc) = if let Some(field) = name.strip_suffix(":asc") {
        (!field.is_empty(), true)
    } else if let Some(field) = name.strip_suffix(":desc") {
        (!field.is_empty(), false)
    } else {
        (false, false)
    };
    let is_geo = is_sort && name.starts_with("_geoPoint(");
    let mut order = u64::MAX;
    let mut score = None;
    let mut similarity = None;
    let mut value = SortValue::Missing;
    let mut distance = None;
    sc.object_start()?;
    let mut first = true;
    while let Some(k) = sc.next_key(&mut first)? {
        if k.is("order") {
            order = sc.u64_or_skip()?.unwrap_or(u64::MAX);
        } else if k.is("score") {
            score = sc.f64_or_skip()?;
        } else if k.is("similarity") {
            similarity = sc.f64_or_skip()?;
        } else if k.is("distance") {
            distance = sc.f64_or_skip()?;
        } else if k.is("value") && is_sort && !is_geo {
            value = parse_sort_value(sc, arena)?;
        } else {
            sc.skip_value()?;
        }
    }
    let crit = if is_geo {
        Crit::Geo { asc, distance }
    } else if is_sort {
        Crit::Sort { asc, value }
    } else if let Some(s) = score.or(similarity) {
        Crit::Score(s)
    } else {
        return Ok(None);
    };
    Ok(Some((order, crit)))
}

fn parse_sort_value<'a>(sc: &mut Scanner<'a>, arena: &'a Bump) -> Result<SortValue<'a>> {
    Ok(match sc.peek() {
        Some(b'"') => SortValue::String(sc.string()?.unescape(arena)?),
        Some(b'-' | b'0'..=b'9') => {
            SortValue::Number(sc.number()?.parse().map_err(|_| ScanError {
                offset: sc.pos(),
                reason: "bad number",
            })?)
        }
        Some(b'n') => {
            sc.skip_value()?;
            SortValue::Missing
        }
        _ => {
            sc.skip_value()?;
            SortValue::Other
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn details<'a>(arena: &'a Bump, json: &'a str) -> &'a [Crit<'a>] {
        let mut v = bumpalo::collections::Vec::new_in(arena);
        let mut scratch = Vec::new();
        parse_details(
            &mut Scanner::new(json.as_bytes()),
            arena,
            &mut scratch,
            &mut v,
        )
        .unwrap();
        v.into_bump_slice()
    }

    #[test]
    fn parses_rules_in_order() {
        let arena = Bump::new();
        let d = details(
            &arena,
            r#"{"typo":{"order":1,"typoCount":0,"maxTypoCount":1,"score":1.0},
                "words":{"order":0,"matchingWords":1,"maxMatchingWords":1,"score":0.5},
                "price:desc":{"order":2,"value":12.5},
                "_geoPoint(1.0, 2.0):asc":{"order":3,"value":{"lat":1,"lng":2},"distance":7.0},
                "skipped":{"order":4},
                "title:asc":{"order":5,"value":"\u00e9t\u00e9"}}"#,
        );
        assert_eq!(
            d,
            &[
                Crit::Score(0.5),
                Crit::Score(1.0),
                Crit::Sort {
                    asc: false,
                    value: SortValue::Number(12.5)
                },
                Crit::Geo {
                    asc: true,
                    distance: Some(7.0)
                },
                Crit::Sort {
                    asc: true,
                    value: SortValue::String("été")
                },
            ]
        );
    }

    #[test]
    fn sort_value_order_follows_milli() {
        use SortValue::*;
        // asc: smaller first; numbers before strings; missing last.
        assert_eq!(cmp_sort_value(true, &Number(1.0), &Number(2.0)), Greater);
        assert_eq!(cmp_sort_value(false, &Number(1.0), &Number(2.0)), Less);
        assert_eq!(cmp_sort_value(true, &String("b"), &String("a")), Less);
        for asc in [true, false] {
            assert_eq!(cmp_sort_value(asc, &Number(9.0), &String("a")), Greater);
            assert_eq!(cmp_sort_value(asc, &String("a"), &Missing), Greater);
            assert_eq!(cmp_sort_value(asc, &Missing, &Number(0.0)), Less);
            assert_eq!(cmp_sort_value(asc, &Other, &Number(0.0)), Equal);
        }
    }

    #[test]
    fn sort_rule_between_rank_rules_decides_before_later_rules() {
        let arena = Bump::new();
        // Same words; a has the better sort value but worse exactness: a first.
        let a = details(
            &arena,
            r#"{"words":{"order":0,"score":1.0},"p:asc":{"order":1,"value":1},
                "exactness":{"order":2,"score":0.1}}"#,
        );
        let b = details(
            &arena,
            r#"{"words":{"order":0,"score":1.0},"p:asc":{"order":1,"value":2},
                "exactness":{"order":2,"score":0.9}}"#,
        );
        // Scores say the opposite (b's global score would be higher after the sort rule).
        assert_eq!(cmp_hits(Some(0.1), Some(a), Some(0.9), Some(b)), Greater);
        // An earlier rank rule beats the sort value.
        let c = details(
            &arena,
            r#"{"words":{"order":0,"score":0.5},"p:asc":{"order":1,"value":0}}"#,
        );
        let d = details(
            &arena,
            r#"{"words":{"order":0,"score":1.0},"p:asc":{"order":1,"value":5}}"#,
        );
        assert_eq!(cmp_hits(None, Some(c), None, Some(d)), Less);
    }

    #[test]
    fn geo_and_mismatch_fallbacks() {
        let arena = Bump::new();
        let near = details(
            &arena,
            r#"{"_geoPoint(0, 0):asc":{"order":0,"distance":1.0}}"#,
        );
        let far = details(
            &arena,
            r#"{"_geoPoint(0, 0):asc":{"order":0,"distance":9.0}}"#,
        );
        let none = details(
            &arena,
            r#"{"_geoPoint(0, 0):asc":{"order":0,"value":null}}"#,
        );
        assert_eq!(cmp_hits(None, Some(near), None, Some(far)), Greater);
        assert_eq!(cmp_hits(None, Some(far), None, Some(none)), Greater);
        let desc = details(
            &arena,
            r#"{"_geoPoint(0, 0):desc":{"order":0,"distance":9.0}}"#,
        );
        // Directions differ: fall back to the global score.
        assert_eq!(cmp_hits(Some(0.2), Some(near), Some(0.3), Some(desc)), Less);
        // Missing details: scores only; missing score last.
        assert_eq!(cmp_hits(Some(0.2), None, None, Some(far)), Greater);
    }
}
