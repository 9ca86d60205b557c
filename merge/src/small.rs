//! The small merges: facet search, document listings, index stats.

use crate::doc_values::{cmp_docs, sort_value, DocSort};
use crate::facets::sort_values;
use crate::rank::SortValue;
use crate::scan::{ScanError, Scanner};
use crate::search::{HitFilter, ShardHits};
use crate::{write, FacetOrder, MergeError, MergeStats, ShardInput};
use bumpalo::Bump;
use std::collections::{BTreeMap, HashMap};

fn malformed(shard: usize) -> impl Fn(ScanError) -> MergeError {
    move |e| MergeError::Malformed {
        shard,
        offset: e.offset,
        reason: e.reason,
    }
}

fn unexpected(shard: usize, field: &'static str, reason: &'static str) -> MergeError {
    MergeError::Unexpected {
        shard,
        field,
        reason,
    }
}

/// Opens the top-level object of shard `i`, or reports it as not an object.
fn open(i: usize, body: &[u8]) -> Result<Scanner<'_>, MergeError> {
    let mut sc = Scanner::new(body);
    if sc.peek() != Some(b'{') {
        return Err(unexpected(i, "(body)", "is not a JSON object"));
    }
    sc.object_start().map_err(malformed(i))?;
    Ok(sc)
}

fn u64_field(sc: &mut Scanner, i: usize, field: &'static str) -> Result<u64, MergeError> {
    sc.u64_or_skip()
        .map_err(malformed(i))?
        .ok_or_else(|| unexpected(i, field, "is not a non-negative integer"))
}

/// Merges `POST /indexes/{uid}/facet-search` responses
/// (`{"facetHits":[{"value","count"}],"facetQuery","processingTimeMs"}`): counts summed per
/// value, ordered by `order` (count: count descending then value ascending; alpha: value
/// ascending, byte order), cut to `max_values` (the index's `maxValuesPerFacet`, Meilisearch
/// default 100). `facetQuery` and unknown fields come from the first answering shard,
/// `processingTimeMs` is the maximum. Appends the body to `out`.
///
/// Assumption: Meilisearch orders facet-search hits per the facet's `sortFacetValuesBy`;
/// the caller passes that order.
pub fn merge_facet_search(
    shards: &[ShardInput],
    max_values: usize,
    order: FacetOrder,
    arena: &Bump,
    out: &mut Vec<u8>,
) -> Result<MergeStats, MergeError> {
    let mut stats = MergeStats::default();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut facet_query: Option<&[u8]> = None;
    let mut others: Vec<&[u8]> = Vec::new();
    let mut ms = 0u64;
    for (i, s) in shards.iter().enumerate() {
        let ShardInput::Ok(body) = s else {
            stats.failed.push(i);
            continue;
        };
        let is_first = stats.answered == 0;
        stats.answered += 1;
        let m = malformed(i);
        let mut sc = open(i, body)?;
        let mut first = true;
        let mut seen = false;
        while let Some(k) = sc.next_key(&mut first).map_err(&m)? {
            if k.is("facetHits") {
                seen = true;
                if sc.peek() != Some(b'[') {
                    return Err(unexpected(i, "facetHits", "is not an array"));
                }
                sc.array_start().map_err(&m)?;
                let mut f = true;
                while sc.next_element(&mut f).map_err(&m)? {
                    if !sc.at_object() {
                        return Err(unexpected(i, "facetHits", "has a non-object"));
                    }
                    sc.object_start().map_err(&m)?;
                    let (mut value, mut count) = (None, None);
                    let mut ff = true;
                    while let Some(hk) = sc.next_key(&mut ff).map_err(&m)? {
                        if hk.is("value") && sc.peek() == Some(b'"') {
                            let v = sc.string().map_err(&m)?;
                            value = Some(v.unescape(arena).map_err(&m)?);
                        } else if hk.is("count") {
                            count = Some(u64_field(&mut sc, i, "facetHits")?);
                        } else {
                            sc.skip_value().map_err(&m)?;
                        }
                    }
                    let (Some(v), Some(c)) = (value, count) else {
                        return Err(unexpected(i, "facetHits", "has a hit without value/count"));
                    };
                    let e = counts.entry(v).or_insert(0);
                    *e = e.saturating_add(c);
                }
            } else if k.is("processingTimeMs") {
                ms = ms.max(u64_field(&mut sc, i, "processingTimeMs")?);
            } else if is_first && k.is("facetQuery") {
                let (a, b) = sc.skip_value().map_err(&m)?;
                facet_query = Some(&body[a..b]);
            } else if is_first {
                let (_, b) = sc.skip_value().map_err(&m)?;
                others.push(&body[k.start..b]);
            } else {
                sc.skip_value().map_err(&m)?;
            }
        }
        sc.finish().map_err(&m)?;
        if !seen {
            return Err(unexpected(i, "facetHits", "is missing"));
        }
    }
    let mut values: Vec<(&str, u64)> = counts.into_iter().collect();
    stats.total = values.len() as u64;
    sort_values(&mut values, order);
    values.truncate(max_values);
    stats.returned = values.len();
    let mut first = true;
    out.push(b'{');
    write::key(out, &mut first, "facetHits");
    out.push(b'[');
    for (j, (v, c)) in values.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":");
        write::string(out, v);
        out.extend_from_slice(b",\"count\":");
        write::uint(out, *c);
        out.push(b'}');
    }
    out.push(b']');
    write::key(out, &mut first, "facetQuery");
    out.extend_from_slice(facet_query.unwrap_or(b"null"));
    write::key(out, &mut first, "processingTimeMs");
    write::uint(out, ms);
    for raw in others {
        out.push(b',');
        out.extend_from_slice(raw);
    }
    out.push(b'}');
    Ok(stats)
}

/// Merges document listings (`GET /indexes/{uid}/documents`, `POST …/documents/fetch`),
/// each node having been asked for `offset=0, limit=offset+limit` (and the client's
/// `fields`/`filter`/`ids`).
///
/// Global order (Miroir's, documented): the documents of `shards[0]` in that node's order,
/// then those of `shards[1]`, and so on — so with `total_i` the node totals, global position
/// `p` is node `i`'s local position `p − (total_0 + … + total_{i−1})`. The output is
/// `{"results":[…],"offset":offset,"limit":limit,"total":Σ total_i}` with reserved fields
/// removed from every document. A node that returned fewer documents than its `total`
/// promised (it changed in between) contributes what it returned. Appends to `out`.
///
/// With a `sort` (each node having been asked for it too), the global order is instead that
/// of one node holding every document: a k-way merge of the nodes' lists by the documents'
/// sort values ([`crate::doc_values`]), equal documents in node order. `drop` names top-level
/// fields to remove from every document (sort fields Miroir added to the client's `fields`).
///
/// Assumption: the caller passes only the nodes that together hold every shard once (one
/// covering set), so totals are not replica-multiplied.
#[allow(clippy::too_many_arguments)]
pub fn merge_document_lists(
    shards: &[ShardInput],
    offset: usize,
    limit: usize,
    sort: &[DocSort],
    drop: &[&str],
    reserved_prefix: &str,
    arena: &Bump,
    out: &mut Vec<u8>,
) -> Result<MergeStats, MergeError> {
    let filter = HitFilter {
        reserved_prefix,
        keep_score: true,
        keep_details: true,
        parse_details: false,
        formatted: false,
        drop,
        distinct: None,
    };
    let mut stats = MergeStats::default();
    let mut lists = Vec::new();
    let mut scratch = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let ShardInput::Ok(body) = s else {
            stats.failed.push(i);
            continue;
        };
        stats.answered += 1;
        let m = malformed(i);
        let mut sc = open(i, body)?;
        let expect = offset.saturating_add(limit).min(body.len() / 64 + 1);
        let mut docs = ShardHits::new(body, arena, expect, false);
        // Document `d`'s sort values are `keys[d * sort.len()..][..sort.len()]`.
        let mut keys: Vec<SortValue> = Vec::new();
        let mut total = None;
        let mut seen = false;
        let mut first = true;
        while let Some(k) = sc.next_key(&mut first).map_err(&m)? {
            if k.is("results") {
                seen = true;
                if sc.peek() != Some(b'[') {
                    return Err(unexpected(i, "results", "is not an array"));
                }
                sc.array_start().map_err(&m)?;
                let mut f = true;
                while sc.next_element(&mut f).map_err(&m)? {
                    let start = sc.pos();
                    docs.scan_hit(&mut sc, arena, &filter, &mut scratch)
                        .map_err(&m)?;
                    for c in sort {
                        keys.push(sort_value(&body[start..sc.pos()], c, arena).map_err(&m)?);
                    }
                }
            } else if k.is("total") {
                total = Some(u64_field(&mut sc, i, "total")?);
            } else {
                sc.skip_value().map_err(&m)?;
            }
        }
        sc.finish().map_err(&m)?;
        if !seen {
            return Err(unexpected(i, "results", "is missing"));
        }
        let total = total.ok_or_else(|| unexpected(i, "total", "is missing"))?;
        lists.push((docs, total, keys));
    }
    let end = offset.saturating_add(limit) as u64;
    let mut first = true;
    out.push(b'{');
    write::key(out, &mut first, "results");
    out.push(b'[');
    if !sort.is_empty() {
        let total = write_sorted(&lists, sort, offset, limit, &mut stats, out);
        return Ok(finish_list(out, &mut first, offset, limit, total, stats));
    }
    let mut prefix = 0u64;
    for (docs, total, _) in &lists {
        // This node's slice of the global window, in local positions.
        let lo = (offset as u64).saturating_sub(prefix).min(*total);
        let hi = end.saturating_sub(prefix).min(*total);
        let hi = (hi as usize).min(docs.hits.len());
        for d in (lo as usize)..hi {
            if stats.returned > 0 {
                out.push(b',');
            }
            docs.write_hit(d, out);
            stats.returned += 1;
        }
        prefix = prefix.saturating_add(*total);
    }
    Ok(finish_list(out, &mut first, offset, limit, prefix, stats))
}

/// A node's scanned documents, its `total`, and its documents' sort values.
type DocList<'a> = (ShardHits<'a>, u64, Vec<SortValue<'a>>);

/// The sorted window `offset..offset + limit` of the k-way merge of `lists` (each already in
/// `sort` order); returns the summed total.
fn write_sorted(
    lists: &[DocList],
    sort: &[DocSort],
    offset: usize,
    limit: usize,
    stats: &mut MergeStats,
    out: &mut Vec<u8>,
) -> u64 {
    let n = sort.len();
    let mut heads = vec![0usize; lists.len()];
    let end = offset.saturating_add(limit);
    for pick in 0..end {
        let mut best: Option<usize> = None;
        for (l, (docs, _, keys)) in lists.iter().enumerate() {
            let h = heads[l];
            if h >= docs.hits.len() {
                continue;
            }
            let better = best.is_none_or(|b| {
                let bh = heads[b];
                let bk = &lists[b].2[bh * n..][..n];
                cmp_docs(sort, &keys[h * n..][..n], bk) == std::cmp::Ordering::Greater
            });
            if better {
                best = Some(l);
            }
        }
        let Some(b) = best else { break };
        if pick >= offset {
            if stats.returned > 0 {
                out.push(b',');
            }
            lists[b].0.write_hit(heads[b], out);
            stats.returned += 1;
        }
        heads[b] += 1;
    }
    lists.iter().fold(0u64, |t, l| t.saturating_add(l.1))
}

/// Closes the `results` array and writes the listing's other fields.
fn finish_list(
    out: &mut Vec<u8>,
    first: &mut bool,
    offset: usize,
    limit: usize,
    total: u64,
    mut stats: MergeStats,
) -> MergeStats {
    out.push(b']');
    stats.total = total;
    write::key(out, first, "offset");
    write::uint(out, offset as u64);
    write::key(out, first, "limit");
    write::uint(out, limit as u64);
    write::key(out, first, "total");
    write::uint(out, total);
    out.push(b'}');
    stats
}

/// Aggregates `GET /indexes/{uid}/stats` from the nodes holding the index, where every
/// document is held by `copies` of them (RF when asking one replica group's nodes, RF × RG
/// when asking all nodes): `numberOfDocuments`, `rawDocumentDbSize`, `numberOfEmbeddings`,
/// `numberOfEmbeddedDocuments` and each `fieldDistribution` count are summed and divided by
/// `copies` (rounded down); `avgDocumentSize` is recomputed as raw size ÷ documents;
/// `isIndexing` is true when any node is indexing; reserved fields are removed from
/// `fieldDistribution` (fields written in byte order, as Meilisearch's `BTreeMap`). Unknown
/// fields are passed through from the first answering node. Appends to `out`.
pub fn merge_index_stats(
    shards: &[ShardInput],
    copies: u64,
    reserved_prefix: &str,
    arena: &Bump,
    out: &mut Vec<u8>,
) -> Result<MergeStats, MergeError> {
    const SUMMED: [&str; 4] = [
        "numberOfDocuments",
        "rawDocumentDbSize",
        "numberOfEmbeddings",
        "numberOfEmbeddedDocuments",
    ];
    let copies = copies.max(1);
    let mut stats = MergeStats::default();
    let mut sums: [Option<u64>; 4] = [None; 4];
    let mut indexing = false;
    let mut avg_seen = false;
    let mut fields: Option<BTreeMap<&str, u64>> = None;
    // In the first answering node's order (Meilisearch's database order).
    let mut db_sizes: Option<Vec<(&str, u64)>> = None;
    let mut others: Vec<&[u8]> = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let ShardInput::Ok(body) = s else {
            stats.failed.push(i);
            continue;
        };
        let is_first = stats.answered == 0;
        stats.answered += 1;
        let m = malformed(i);
        let mut sc = open(i, body)?;
        let mut first = true;
        while let Some(k) = sc.next_key(&mut first).map_err(&m)? {
            if let Some(j) = SUMMED.iter().position(|n| k.is(n)) {
                let n = u64_field(&mut sc, i, SUMMED[j])?;
                sums[j] = Some(sums[j].unwrap_or(0).saturating_add(n));
            } else if k.is("isIndexing") {
                match sc.peek() {
                    Some(b't') => indexing = true,
                    Some(b'f') => {}
                    _ => return Err(unexpected(i, "isIndexing", "is not a boolean")),
                }
                sc.skip_value().map_err(&m)?;
            } else if k.is("avgDocumentSize") {
                avg_seen = true;
                sc.skip_value().map_err(&m)?;
            } else if k.is("internalDatabaseSizes") {
                if !sc.at_object() {
                    return Err(unexpected(i, "internalDatabaseSizes", "is not an object"));
                }
                let sizes = db_sizes.get_or_insert_with(Vec::new);
                sc.object_start().map_err(&m)?;
                let mut f = true;
                while let Some(name) = sc.next_key(&mut f).map_err(&m)? {
                    let n = u64_field(&mut sc, i, "internalDatabaseSizes")?;
                    let name = name.unescape(arena).map_err(&m)?;
                    match sizes.iter_mut().find(|(k, _)| *k == name) {
                        Some((_, v)) => *v = v.saturating_add(n),
                        None => sizes.push((name, n)),
                    }
                }
            } else if k.is("fieldDistribution") {
                if !sc.at_object() {
                    return Err(unexpected(i, "fieldDistribution", "is not an object"));
                }
                let map = fields.get_or_insert_with(BTreeMap::new);
                sc.object_start().map_err(&m)?;
                let mut f = true;
                while let Some(name) = sc.next_key(&mut f).map_err(&m)? {
                    let n = u64_field(&mut sc, i, "fieldDistribution")?;
                    let name = name.unescape(arena).map_err(&m)?;
                    if !name.starts_with(reserved_prefix) {
                        let e = map.entry(name).or_insert(0);
                        *e = e.saturating_add(n);
                    }
                }
            } else if is_first {
                let (_, b) = sc.skip_value().map_err(&m)?;
                others.push(&body[k.start..b]);
            } else {
                sc.skip_value().map_err(&m)?;
            }
        }
        sc.finish().map_err(&m)?;
    }
    let mut first = true;
    out.push(b'{');
    for (j, name) in SUMMED.iter().enumerate() {
        if let Some(n) = sums[j] {
            write::key(out, &mut first, name);
            write::uint(out, n / copies);
        }
        if j == 1 && avg_seen {
            // Meilisearch's field order: numberOfDocuments, rawDocumentDbSize,
            // avgDocumentSize, isIndexing, numberOfEmbeddings, …
            let docs = sums[0].unwrap_or(0) / copies;
            let raw = sums[1].unwrap_or(0) / copies;
            write::key(out, &mut first, "avgDocumentSize");
            write::uint(out, raw.checked_div(docs).unwrap_or(0));
        }
        if j == 1 {
            write::key(out, &mut first, "isIndexing");
            out.extend_from_slice(if indexing { b"true" } else { b"false" });
            if let Some(sizes) = &db_sizes {
                write::key(out, &mut first, "internalDatabaseSizes");
                out.push(b'{');
                for (k, (name, n)) in sizes.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    write::string(out, name);
                    out.push(b':');
                    write::uint(out, n / copies);
                }
                out.push(b'}');
            }
        }
    }
    if let Some(map) = &fields {
        write::key(out, &mut first, "fieldDistribution");
        out.push(b'{');
        for (j, (name, n)) in map.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write::string(out, name);
            out.push(b':');
            write::uint(out, n / copies);
        }
        out.push(b'}');
    }
    for raw in others {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(raw);
    }
    out.push(b'}');
    stats.total = sums[0].unwrap_or(0) / copies;
    Ok(stats)
}
