//! # miroir-merge: one response out of K shard responses
//!
//! Miroir sends a search to every node of the covering set and must answer with exactly what
//! one big Meilisearch would have answered. This crate is that merge, as a pure library (no
//! I/O): shard response bodies in, one response body out.
//!
//! ## Design
//!
//! * **Scan, don't build.** Each shard body is read once by a small validating JSON scanner
//!   ([`scan`]) that records *byte spans* into the original buffer instead of building values:
//!   for every hit, the span of each top-level member and the few values the merge needs
//!   (`_rankingScore`, the `_rankingScoreDetails` entries). The bodies are never modified, so
//!   there is nothing to copy first.
//! * **SIMD where the bytes are.** A ~1 KiB hit is mostly string content. Hits are scanned
//!   on a fast path that classifies 64 bytes at a time into quote/backslash bitmasks
//!   (AVX-512BW, AVX2 or SSE2, detected at run time; [`scan::simd`] is the crate's only
//!   `unsafe`), so a string's end is a bit lookup however long it is and however many escapes
//!   it has. Anything unusual (whitespace, deep nesting, an invalid escape) goes back to the
//!   scalar scanner, which then accepts or rejects exactly as it always does: the output and
//!   the errors are the same with the SIMD path on or off (`MIROIR_MERGE_SCALAR=1` turns it
//!   off; [`merge_search_with_level`] picks a level).
//! * **Scan only what the merge consumes.** In Meilisearch's body layout
//!   (`{"hits":[…],"query":…`, compact) the top-level fields after the hits are read first and
//!   hits are scanned one at a time as the k-way merge reaches them, so a merge costs what the
//!   page costs, not K × page (other layouts are scanned in order). See
//!   `docs/decisions/003-merge-parser.md` for the measurements against simd-json's tape.
//! * **Splice, don't re-serialise.** A chosen hit is written as runs of its original bytes,
//!   leaving out reserved `_miroir_*` members (also inside `_formatted`) and
//!   `_rankingScore`/`_rankingScoreDetails` when the client did not ask for them.
//! * **k-way merge that keeps each node's order.** A node breaks score ties by an internal
//!   document id Miroir cannot see, so a shard's hits are never re-sorted: only the K heads are
//!   compared ([`rank`]), equal heads go in input order (`shards[0]` first). Consecutive pages
//!   therefore neither overlap nor skip.
//! * **Scratch in a caller-owned [`bumpalo::Bump`]**: the per-hit records live there; the
//!   caller resets the arena after the response is written. The only other allocations are
//!   the output buffer (caller's) and small per-facet maps.
//!
//! ## What the caller sends to the nodes
//!
//! [`SearchMergeRequest::node_request`] says it precisely: every node is asked for the first
//! `offset + limit` hits (`{"offset": 0, "limit": offset + limit}`), or in page mode for page 1
//! of size `page × hitsPerPage` (`{"page": 1, "hitsPerPage": page × hitsPerPage}`, so that
//! nodes return exhaustive `totalHits`), with `showRankingScore: true` always and
//! `showRankingScoreDetails: true` when the client sent `sort`. Everything else of the client's
//! query (`q`, `filter`, `facets`, `attributesToRetrieve`, …) is forwarded unchanged.
//!
//! ## Entry points
//! * [`merge_search`] — `POST /indexes/{uid}/search` (and each query of a multi-search);
//!   [`merge_search_with_level`] is the same with the SIMD level chosen by the caller.
//! * [`merge_facet_search`] — `POST /indexes/{uid}/facet-search`.
//! * [`merge_document_lists`] — `GET /indexes/{uid}/documents`, `POST …/documents/fetch`.
//! * [`merge_index_stats`] — `GET /indexes/{uid}/stats`.
//!
//! With the `reference` feature, [`reference`] holds a deliberately naive `serde_json::Value`
//! implementation of the same merges: the oracle of the property tests and the comparison of
//! the `merge` benchmark.

use std::collections::BTreeMap;

pub use bumpalo::Bump;
pub use miroir_core::snapshot::FacetOrder;

mod doc_values;
mod facets;
pub mod rank;
pub mod scan;
mod search;
mod small;
mod write;

#[cfg(test)]
mod simd_tests;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "reference"))]
pub mod reference;
#[cfg(any(test, feature = "reference"))]
pub mod samples;

pub use doc_values::{distinct_keys, DistinctKey, DocSort};
pub use scan::simd::Level;
pub use search::{merge_search, merge_search_with_level};
pub use small::{merge_document_lists, merge_facet_search, merge_index_stats};

/// Meilisearch's default `faceting.maxValuesPerFacet` (also the facet-search hit cap).
pub const DEFAULT_MAX_VALUES_PER_FACET: usize = 100;
/// Meilisearch's default `pagination.maxTotalHits`.
pub const DEFAULT_MAX_TOTAL_HITS: usize = 1000;
/// The prefix of Miroir's reserved document fields (`_miroir_shard`, …).
pub use miroir_core::documents::RESERVED_PREFIX;

/// The client's pagination, exactly as it sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    /// `offset`/`limit` (Meilisearch defaults: 0 / 20); response has `estimatedTotalHits`.
    OffsetLimit { offset: usize, limit: usize },
    /// `page`/`hitsPerPage` (sent when either is present; defaults 1 / 20); response has
    /// exhaustive `totalHits` and `totalPages`.
    Page { page: usize, hits_per_page: usize },
}

/// The pagination to put in each node's request (see [`SearchMergeRequest::node_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePagination {
    /// Send `"offset": offset, "limit": limit` (offset is always 0).
    OffsetLimit { offset: usize, limit: usize },
    /// Send `"page": page, "hitsPerPage": hits_per_page` (page is always 1).
    Page { page: usize, hits_per_page: usize },
}

impl Pagination {
    /// What every node must be asked so that the global window is contained in the union of
    /// the nodes' answers: the first `offset + limit` hits of each node. Page mode stays in
    /// page mode (page 1 of `page × hitsPerPage` hits) so that nodes count `totalHits`
    /// exhaustively, as the client expects; `page = 0` becomes `hitsPerPage = 0` (Meilisearch
    /// returns no hits for page 0 but still counts).
    pub fn node_pagination(&self) -> NodePagination {
        match *self {
            Pagination::OffsetLimit { offset, limit } => NodePagination::OffsetLimit {
                offset: 0,
                limit: offset.saturating_add(limit),
            },
            Pagination::Page {
                page,
                hits_per_page,
            } => NodePagination::Page {
                page: 1,
                hits_per_page: page.saturating_mul(hits_per_page),
            },
        }
    }

    /// The global window `(start, len)` of the merged hit sequence that the client gets,
    /// clamped like Meilisearch clamps it: `start = min(offset, maxTotalHits)`,
    /// `len = min(limit, maxTotalHits - start)`; page `p ≥ 1` is offset `(p-1)·hitsPerPage`,
    /// page 0 is empty.
    pub fn window(&self, max_total_hits: usize) -> (usize, usize) {
        let (offset, limit) = match *self {
            Pagination::OffsetLimit { offset, limit } => (offset, limit),
            Pagination::Page {
                page,
                hits_per_page,
            } => match page.checked_sub(1) {
                Some(p) => (p.saturating_mul(hits_per_page), hits_per_page),
                None => (0, 0),
            },
        };
        let start = offset.min(max_total_hits);
        (start, limit.min(max_total_hits - start))
    }
}

/// Free-function form of [`Pagination::node_pagination`].
pub fn node_pagination(p: &Pagination) -> NodePagination {
    p.node_pagination()
}

/// Everything [`merge_search`] needs to know about the client's request and the index.
#[derive(Debug, Clone, Copy)]
pub struct SearchMergeRequest<'a> {
    /// As the client sent it (echoed back; the merge window is derived from it).
    pub pagination: Pagination,
    /// The client sent a non-empty `sort`: heads are compared rule by rule on
    /// `_rankingScoreDetails` (nodes must have been asked for them), not on `_rankingScore`.
    pub sort_requested: bool,
    /// The client sent `showRankingScore: true` (otherwise `_rankingScore` is stripped).
    pub want_ranking_score: bool,
    /// The client sent `showRankingScoreDetails: true` (otherwise the details are stripped).
    pub want_ranking_score_details: bool,
    /// The index's `faceting.maxValuesPerFacet` (Meilisearch default 100).
    pub max_values_per_facet: usize,
    /// The index's `faceting.sortFacetValuesBy` (facet name or `"*"` → order; default
    /// alpha). Same type as `IndexMeta::sort_facet_values_by` in the snapshot.
    pub sort_facet_values_by: &'a BTreeMap<String, FacetOrder>,
    /// The index's `pagination.maxTotalHits` (Meilisearch default 1000).
    pub max_total_hits: usize,
    /// Keys starting with this are removed from hits, `_formatted`, `facetDistribution` and
    /// `facetStats` (normally [`RESERVED_PREFIX`]).
    pub reserved_prefix: &'a str,
    /// The client's `q` to echo as `query` (unescaped text; `None` = no `q` sent, then the
    /// first answering shard's `query` is echoed, or `""` when no shard answered).
    pub query: Option<&'a str>,
    /// The distinct attribute in force (the query's `distinct`, else the index's
    /// `distinctAttribute`): each node applied it to its own shards, so the merge keeps only
    /// the first hit of each value across shards (see [`crate::doc_values`] for values). Hits
    /// without a value are all kept, as Meilisearch keeps them.
    pub distinct: Option<&'a str>,
    /// Top-level fields to remove from hits and `_formatted` (fields Miroir added to the
    /// client's `attributesToRetrieve`, e.g. the distinct attribute).
    pub drop: &'a [&'a str],
}

/// The node-side search parameters the caller must set (the rest of the client's query is
/// forwarded as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRequest {
    pub pagination: NodePagination,
    /// Always `true`: without sort, heads are compared by `_rankingScore`.
    pub show_ranking_score: bool,
    /// `true` when the client sorted (rule-by-rule comparison) or asked for the details.
    pub show_ranking_score_details: bool,
}

impl SearchMergeRequest<'_> {
    /// What to ask each node: see the crate docs.
    pub fn node_request(&self) -> NodeRequest {
        NodeRequest {
            pagination: self.pagination.node_pagination(),
            show_ranking_score: true,
            show_ranking_score_details: self.sort_requested || self.want_ranking_score_details,
        }
    }

    /// The facet value order for `facet` per `sortFacetValuesBy` (`"*"` then alpha).
    pub fn facet_order(&self, facet: &str) -> FacetOrder {
        facet_order(self.sort_facet_values_by, facet)
    }
}

pub(crate) fn facet_order(by: &BTreeMap<String, FacetOrder>, facet: &str) -> FacetOrder {
    by.get(facet)
        .or_else(|| by.get("*"))
        .copied()
        .unwrap_or(FacetOrder::Alpha)
}

/// One shard's (node's) answer, in the caller's fixed shard order: that order is the
/// tie-break between equal heads, so it must be the same for every page of a query (e.g.
/// ascending node id or shard-set order, not arrival order).
#[derive(Debug, Clone, Copy)]
pub enum ShardInput<'b> {
    /// A 2xx response body (the bytes are not modified).
    Ok(&'b [u8]),
    /// The node did not answer usably (timeout, connection error, non-2xx after retries).
    /// Reported back in [`MergeStats::failed`]; the merge goes on without it.
    Failed,
}

/// What the caller needs besides the body: degraded-shard reporting and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Number of shard inputs that were merged.
    pub answered: usize,
    /// Indices (into the `shards` slice) of the inputs that were [`ShardInput::Failed`], in
    /// order. The caller applies `unavailable_shard_policy` / `X-Miroir-Degraded`.
    pub failed: Vec<usize>,
    /// Hits (or documents / facet values) written to the response.
    pub returned: usize,
    /// The merged total written (`estimatedTotalHits`/`totalHits` after the maxTotalHits cap,
    /// `total` for documents, facet values before truncation for facet search,
    /// `numberOfDocuments` for stats).
    pub total: u64,
}

/// A shard body the merge could not use. Never a panic: any byte string gives `Ok` or this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Not well-formed JSON (or nested deeper than the scanner allows).
    #[error("shard response {shard} is not valid JSON at byte {offset}: {reason}")]
    Malformed {
        shard: usize,
        offset: usize,
        reason: &'static str,
    },
    /// Valid JSON, but not the shape of a Meilisearch response (e.g. `hits` not an array,
    /// a total that is not a non-negative integer).
    #[error("shard response {shard}: `{field}` {reason}")]
    Unexpected {
        shard: usize,
        field: &'static str,
        reason: &'static str,
    },
}

impl MergeError {
    /// The index of the offending shard input.
    pub fn shard(&self) -> usize {
        match self {
            MergeError::Malformed { shard, .. } | MergeError::Unexpected { shard, .. } => *shard,
        }
    }
}
