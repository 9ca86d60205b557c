//! A document's values as milli sees them, for sorted document listings
//! (`GET …/documents?sort=…`, `POST …/documents/fetch` with `sort`) and for `distinct` across
//! shards: the value a document sorts by, every value it is deduplicated by, and the order of
//! two documents.
//!
//! Values are facet values: numbers, strings (as facets are stored: trimmed and lowercased),
//! booleans as the strings `true`/`false`, each element of an array; `null` and objects have
//! none. A dotted path reaches into objects and arrays of objects, or names a literal dotted
//! key (milli flattens documents). milli also applies Unicode compatibility decomposition
//! (NFKD) to strings; Miroir does not (no normalisation tables in the data plane), so strings
//! that differ only by precomposed vs decomposed accents may compare differently from one node.
//!
//! Sorting (milli's `documents/sort.rs`) walks a field's facet values: ascending, numbers in
//! increasing order, then strings in increasing byte order, then documents without a value;
//! descending, numbers decreasing, then strings decreasing, then documents without a value. A
//! document with several values comes with the first of them in that walk. Equal values go to
//! the next criterion, then to the node's own order.

use crate::rank::{cmp_sort_value, SortValue};
use crate::scan::{ScanError, Scanner};
use bumpalo::Bump;
use std::cmp::Ordering;

/// One criterion of a document listing's `sort`: a field path and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocSort {
    pub field: String,
    pub asc: bool,
}

impl DocSort {
    /// `field:asc` or `field:desc`. `None` for anything else, including geo sorts
    /// (`_geoPoint(…)`): the caller then keeps the unsorted merge, and nodes judge the syntax.
    pub fn parse(s: &str) -> Option<DocSort> {
        let (field, dir) = s.trim().rsplit_once(':')?;
        let asc = match dir {
            "asc" => true,
            "desc" => false,
            _ => return None,
        };
        let field = field.trim();
        if field.is_empty() || field.starts_with("_geo") {
            return None;
        }
        Some(DocSort {
            field: field.to_owned(),
            asc,
        })
    }
}

/// The value `doc` (an object's bytes) sorts by under `c`.
pub(crate) fn sort_value<'a>(
    doc: &'a [u8],
    c: &DocSort,
    arena: &'a Bump,
) -> Result<SortValue<'a>, ScanError> {
    let mut best = SortValue::Missing;
    let mut sc = Scanner::new(doc);
    walk(&mut sc, &c.field, arena, &mut |v| {
        if cmp_sort_value(c.asc, &v, &best) == Ordering::Greater {
            best = v;
        }
    })?;
    Ok(best)
}

/// Every facet value of `doc` (an object's bytes) at `field` (what `distinct` compares).
pub(crate) fn facet_values<'a>(
    doc: &'a [u8],
    field: &str,
    arena: &'a Bump,
) -> Result<Vec<SortValue<'a>>, ScanError> {
    let mut out = Vec::new();
    walk(&mut Scanner::new(doc), field, arena, &mut |v| out.push(v))?;
    Ok(out)
}

/// A facet value as a hashable key, what `distinct` compares: numbers by their bits (`-0.0`
/// is `0.0`), strings normalised as above.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DistinctKey {
    Number(u64),
    String(String),
}

/// The facet values of `field` in the hit `doc` (an object's bytes), as keys.
pub fn distinct_keys(doc: &[u8], field: &str) -> Result<Vec<DistinctKey>, ScanError> {
    let arena = Bump::new();
    Ok(facet_values(doc, field, &arena)?
        .into_iter()
        .filter_map(|v| match v {
            SortValue::Number(n) => Some(DistinctKey::Number(number_key(n))),
            SortValue::String(s) => Some(DistinctKey::String(s.to_owned())),
            SortValue::Missing | SortValue::Other => None,
        })
        .collect())
}

/// One key per number value (`-0.0` is `0.0`).
pub(crate) fn number_key(n: f64) -> u64 {
    if n == 0.0 {
        0
    } else {
        n.to_bits()
    }
}

/// Calls `found` with every facet value at `path` inside the object at the cursor: a key
/// equal to `path`, or a key that is a prefix of it (`a` for `a.b`) holding an object, or an
/// array of objects, to descend into (milli flattens both).
fn walk<'a>(
    sc: &mut Scanner<'a>,
    path: &str,
    arena: &'a Bump,
    found: &mut dyn FnMut(SortValue<'a>),
) -> Result<(), ScanError> {
    if !sc.at_object() {
        sc.skip_value()?;
        return Ok(());
    }
    sc.object_start()?;
    let mut first = true;
    while let Some(k) = sc.next_key(&mut first)? {
        let key = k.unescape(arena)?;
        if key == path {
            values(sc, arena, found)?;
        } else if let Some(rest) = path.strip_prefix(key).and_then(|r| r.strip_prefix('.')) {
            descend(sc, rest, arena, found)?;
        } else {
            sc.skip_value()?;
        }
    }
    Ok(())
}

/// [`walk`] into an object, or into each object of an array.
fn descend<'a>(
    sc: &mut Scanner<'a>,
    path: &str,
    arena: &'a Bump,
    found: &mut dyn FnMut(SortValue<'a>),
) -> Result<(), ScanError> {
    match sc.peek() {
        Some(b'{') => walk(sc, path, arena, found),
        Some(b'[') => {
            sc.array_start()?;
            let mut first = true;
            while sc.next_element(&mut first)? {
                descend(sc, path, arena, found)?;
            }
            Ok(())
        }
        _ => sc.skip_value().map(|_| ()),
    }
}

/// The facet values of the value at the cursor: numbers, strings (normalised), booleans (as
/// milli stores them, the strings `true`/`false`), and those inside arrays. `null` and
/// objects have none.
fn values<'a>(
    sc: &mut Scanner<'a>,
    arena: &'a Bump,
    found: &mut dyn FnMut(SortValue<'a>),
) -> Result<(), ScanError> {
    match sc.peek() {
        Some(b'"') => {
            let s = sc.string()?.unescape(arena)?;
            found(SortValue::String(arena.alloc_str(&s.trim().to_lowercase())));
        }
        Some(b'-' | b'0'..=b'9') => {
            let at = sc.pos();
            let n = sc.number()?.parse::<f64>().map_err(|_| ScanError {
                offset: at,
                reason: "bad number",
            })?;
            found(SortValue::Number(n));
        }
        Some(b't') => {
            sc.skip_value()?;
            found(SortValue::String("true"));
        }
        Some(b'f') => {
            sc.skip_value()?;
            found(SortValue::String("false"));
        }
        Some(b'[') => {
            sc.array_start()?;
            let mut first = true;
            while sc.next_element(&mut first)? {
                values(sc, arena, found)?;
            }
        }
        _ => {
            sc.skip_value()?;
        }
    }
    Ok(())
}

/// Compares two documents' values under `sort`; `Greater` means `a` comes first.
pub(crate) fn cmp_docs(sort: &[DocSort], a: &[SortValue], b: &[SortValue]) -> Ordering {
    for ((c, x), y) in sort.iter().zip(a).zip(b) {
        match cmp_sort_value(c.asc, x, y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(arena: &'a Bump, doc: &'a str, sort: &str) -> SortValue<'a> {
        sort_value(doc.as_bytes(), &DocSort::parse(sort).unwrap(), arena).unwrap()
    }

    #[test]
    fn parses_directions_and_leaves_geo_to_nodes() {
        assert_eq!(
            DocSort::parse("rating:desc"),
            Some(DocSort {
                field: "rating".into(),
                asc: false
            })
        );
        assert_eq!(DocSort::parse(" a.b:asc ").unwrap().field, "a.b");
        assert_eq!(DocSort::parse("_geoPoint(1,2):asc"), None);
        assert_eq!(DocSort::parse("rating"), None);
        assert_eq!(DocSort::parse("rating:up"), None);
        assert_eq!(DocSort::parse(":asc"), None);
    }

    #[test]
    fn values_follow_milli_facets() {
        let arena = Bump::new();
        use SortValue::*;
        assert_eq!(value(&arena, r#"{"r":8.5}"#, "r:asc"), Number(8.5));
        assert_eq!(value(&arena, r#"{"r":" AbC "}"#, "r:asc"), String("abc"));
        assert_eq!(value(&arena, r#"{"r":true}"#, "r:asc"), String("true"));
        assert_eq!(value(&arena, r#"{"r":null}"#, "r:asc"), Missing);
        assert_eq!(value(&arena, r#"{"x":1}"#, "r:asc"), Missing);
        assert_eq!(value(&arena, r#"{"r":{"s":1}}"#, "r:asc"), Missing);
        // Several values: the first met in milli's walk.
        assert_eq!(value(&arena, r#"{"r":[3,"a",10]}"#, "r:asc"), Number(3.0));
        assert_eq!(value(&arena, r#"{"r":[3,"a",10]}"#, "r:desc"), Number(10.0));
        assert_eq!(value(&arena, r#"{"r":["b","a"]}"#, "r:desc"), String("b"));
        // Dotted paths: nested objects, arrays of objects, or a literal dotted key.
        assert_eq!(value(&arena, r#"{"a":{"b":2}}"#, "a.b:asc"), Number(2.0));
        assert_eq!(
            value(&arena, r#"{"a":[{"b":5},{"b":4}]}"#, "a.b:asc"),
            Number(4.0)
        );
        assert_eq!(value(&arena, r#"{"a.b":7}"#, "a.b:asc"), Number(7.0));
        assert_eq!(value(&arena, r#"{"ab":7}"#, "a.b:asc"), Missing);
    }

    #[test]
    fn documents_compare_criterion_by_criterion() {
        let sort = [
            DocSort::parse("rating:desc").unwrap(),
            DocSort::parse("date:asc").unwrap(),
        ];
        use SortValue::*;
        let a = [Number(8.6), String("2014")];
        let b = [Number(8.6), String("2019")];
        let c = [Number(9.0), Missing];
        assert_eq!(cmp_docs(&sort, &a, &b), Ordering::Greater);
        assert_eq!(cmp_docs(&sort, &c, &a), Ordering::Greater);
        assert_eq!(cmp_docs(&sort, &a, &a), Ordering::Equal);
        // Missing comes last in both directions.
        let m = [Missing, String("a")];
        assert_eq!(cmp_docs(&sort, &a, &m), Ordering::Greater);
    }
}
