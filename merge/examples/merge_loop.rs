//! Runs the `merge` benchmark's 3×H merge in a loop, for profilers and instruction counts:
//! `cargo run --release -p miroir-merge --example merge_loop -- 1000 200 [sort] [level]`
//! (hits per shard, iterations, `sort` or `-`, `scalar`/`sse2`/`avx2`/`avx512`, default: the
//! detected level); `valgrind --tool=callgrind` gives load-independent instruction counts
//! (valgrind hides AVX-512, so the detected level is AVX2 there). The bodies are the
//! benchmark's ([`miroir_merge::samples`]).

use miroir_merge::samples::body;
use miroir_merge::{
    merge_search_with_level, Bump, Level, Pagination, SearchMergeRequest, ShardInput,
};
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let h: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let iters: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let sort = args.get(3).is_some_and(|a| a == "sort");
    let level = match args.get(4).map(String::as_str) {
        Some("scalar") => Level::Scalar,
        Some("sse2") => Level::Sse2,
        Some("avx2") => Level::Avx2,
        Some("avx512") => Level::Avx512,
        _ => miroir_merge::scan::simd::detected(),
    };
    let bodies: Vec<Vec<u8>> = (0..3).map(|s| body(s, h, sort)).collect();
    let shards: Vec<ShardInput> = bodies.iter().map(|b| ShardInput::Ok(b)).collect();
    let by = BTreeMap::new();
    let req = SearchMergeRequest {
        pagination: Pagination::OffsetLimit {
            offset: 0,
            limit: h,
        },
        sort_requested: sort,
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
    let mut arena = Bump::new();
    let mut out = Vec::new();
    let mut total = 0;
    for _ in 0..iters {
        out.clear();
        arena.reset();
        merge_search_with_level(&req, &shards, &arena, &mut out, level).expect("valid bodies");
        total += out.len();
    }
    println!("{total} bytes written over {iters} merges at {level:?}");
}
