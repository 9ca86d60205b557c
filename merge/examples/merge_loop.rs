//! Runs the `merge` benchmark's 3×H merge in a loop, for profilers and instruction counts:
//! `cargo run --release -p miroir-merge --example merge_loop -- 1000 200 [sort] [level]`
//! (hits per shard, iterations, `sort` or `-`, `scalar`/`sse2`/`avx2`/`avx512`, default: the
//! detected level); `valgrind --tool=callgrind` gives load-independent instruction counts
//! (valgrind hides AVX-512, so the detected level is AVX2 there). The bodies are those of
//! `bench/benches/merge.rs` (kept in sync by hand).

use miroir_merge::{
    merge_search_with_level, Bump, Level, Pagination, SearchMergeRequest, ShardInput,
};
use std::collections::BTreeMap;

fn hit(shard: usize, i: usize, sort: bool) -> String {
    let id = shard * 100_000 + i;
    let score = 1.0 - (i / 4) as f64 * 0.000_7 - shard as f64 * 0.000_1;
    let overview = "When a mysterious signal reaches Earth from the edge of the solar system, \
        linguist Dr. Élodie Marchand is recruited to decode it before governments turn a first \
        contact into the last war. Racing against time — and a \\\"helpful\\\" AI that seems to \
        know more than it says — she uncovers a message that rewrites humanity’s origins. \
        Critics called it \\\"a cerebral, gorgeous puzzle box\\\"; audiences argued about the \
        ending for months.\\nStarring an ensemble cast, shot on location in Iceland, Chile and \
        Namibia, with a score by an award-winning composer whose themes echo long after the \
        credits roll. Director’s cut includes twelve minutes of additional footage.";
    let mut h = format!(
        r#"{{"id":"{id}","title":"Signal from the Edge — Part {i}","overview":"{overview}","genres":["Science Fiction","Drama","Mystery"],"poster":"https://image.tmdb.org/t/p/w500/aBcDeFgHiJkLmNoPqRsTuV{id}.jpg","release_date":{},"vote_average":7.{},"popularity":{}.25,"original_language":"en","_miroir_shard":{},"_rankingScore":{score}"#,
        1_500_000_000 + (i * 86_400) % 700_000_000,
        i % 10,
        1000 - i % 1000,
        id % 64,
    );
    if sort {
        h.push_str(&format!(
            r#","_rankingScoreDetails":{{"words":{{"order":0,"matchingWords":2,"maxMatchingWords":2,"score":1.0}},"typo":{{"order":1,"typoCount":0,"maxTypoCount":2,"score":1.0}},"proximity":{{"order":2,"score":{score}}},"attribute":{{"order":3,"attributeRankingOrderScore":1.0,"queryWordDistanceScore":0.9,"score":0.95}},"release_date:desc":{{"order":4,"value":{}}},"exactness":{{"order":5,"matchType":"noExactMatch","matchingWords":2,"maxMatchingWords":2,"score":0.5}}}}"#,
            1_500_000_000 - i * 3600
        ));
    }
    h.push('}');
    h
}

fn body(shard: usize, hits: usize, sort: bool) -> Vec<u8> {
    let hits: Vec<String> = (0..hits).map(|i| hit(shard, i, sort)).collect();
    format!(
        r#"{{"hits":[{}],"query":"signal edge","processingTimeMs":{},"limit":{},"offset":0,"estimatedTotalHits":{},"facetDistribution":{{"genres":{{"Drama":812,"Mystery":95,"Science Fiction":1023}}}},"facetStats":{{"vote_average":{{"min":1.5,"max":9.1}}}},"requestUid":"0193a5f2-{shard}"}}"#,
        hits.join(","),
        3 + shard,
        hits.len(),
        hits.len() * 7
    )
    .into_bytes()
}

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
