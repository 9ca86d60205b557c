//! Arbitrary bytes as shard bodies: every merge entry point must return `Ok` or an error,
//! never panic, and an `Ok` search body must be well-formed enough to parse again as a
//! shard body (the merge never splices unscanned bytes). The search merge must also give the
//! same result (body or error) with the SIMD hit scan and with the scalar scanner alone.
//!
//! Input layout: byte 0 = flags (sort, scores, details, page mode, failed shard), byte 1 =
//! offset/page, byte 2 = limit, then up to 4 bodies separated by 0xFF bytes.
//!
//! Run (nightly + cargo-fuzz): `cd merge/fuzz && cargo +nightly fuzz run merge_search`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_merge::{
    merge_document_lists, merge_facet_search, merge_index_stats, merge_search,
    merge_search_with_level, Bump, FacetOrder, Level, Pagination, SearchMergeRequest, ShardInput,
};
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let [flags, a, b, rest @ ..] = data else {
        return;
    };
    let (a, b) = (*a as usize, *b as usize);
    let mut shards: Vec<ShardInput> = rest
        .split(|&x| x == 0xFF)
        .take(4)
        .map(ShardInput::Ok)
        .collect();
    if flags & 16 != 0 {
        shards.push(ShardInput::Failed);
    }
    let mut by = BTreeMap::new();
    by.insert(
        "*".to_string(),
        if flags & 32 != 0 {
            FacetOrder::Count
        } else {
            FacetOrder::Alpha
        },
    );
    let req = SearchMergeRequest {
        pagination: if flags & 8 != 0 {
            Pagination::Page {
                page: a % 8,
                hits_per_page: b,
            }
        } else {
            Pagination::OffsetLimit {
                offset: a,
                limit: b,
            }
        },
        sort_requested: flags & 1 != 0,
        want_ranking_score: flags & 2 != 0,
        want_ranking_score_details: flags & 4 != 0,
        max_values_per_facet: b % 8,
        sort_facet_values_by: &by,
        max_total_hits: 1 + a * 4,
        reserved_prefix: "_miroir_",
        query: None,
    };
    let arena = Bump::new();
    let mut out = Vec::new();
    let res = merge_search(&req, &shards, &arena, &mut out);
    let mut scalar = Vec::new();
    let res_scalar =
        merge_search_with_level(&req, &shards, &Bump::new(), &mut scalar, Level::Scalar);
    assert_eq!(res, res_scalar, "SIMD and scalar hit scans disagree");
    assert_eq!(out, scalar, "SIMD and scalar hit scans disagree");
    if res.is_ok() {
        // The output is itself a valid search response: merging it alone must succeed.
        let mut again = Vec::new();
        let one = [ShardInput::Ok(&out)];
        merge_search(&req, &one, &Bump::new(), &mut again).expect("merge output re-merges");
    }
    out.clear();
    let _ = merge_facet_search(&shards, b, FacetOrder::Count, &arena, &mut out);
    out.clear();
    let _ = merge_document_lists(&shards, a, b, "_miroir_", &arena, &mut out);
    out.clear();
    let _ = merge_index_stats(&shards, 1 + (a as u64 % 3), "_miroir_", &arena, &mut out);
});
