//! Realistic shard response bodies, for the `merge` benchmark (`bench/benches/merge.rs`) and
//! the profiling driver (`examples/merge_loop.rs`), so both measure the same bytes.
//!
//! A hit is ~1 KiB and movie-like: a long overview with non-ASCII text and escapes, a few
//! scalar fields, an array, Miroir's `_miroir_shard`, the ranking score and (sort mode) the
//! ranking details, as a node answers Miroir's node request.

/// One hit of shard `shard` at rank `i`. Scores descend with frequent ties, like real
/// Meilisearch pages.
pub fn hit(shard: usize, i: usize, sort: bool) -> String {
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

/// A whole search response of `hits` hits from shard `shard`, compact, `hits` first.
pub fn body(shard: usize, hits: usize, sort: bool) -> Vec<u8> {
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
