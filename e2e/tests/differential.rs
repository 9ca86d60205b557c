//! Differential test (issue 5): Miroir over three test nodes must answer every search like one
//! test node holding the whole corpus.
//!
//! Corpus: 12 000 seeded synthetic documents — titles and overviews drawn from an English word
//! list with a skewed (Zipf-like) frequency, low-cardinality facets (`genre`, `language`,
//! `tags`, `available`), a 150-value string facet (`author`, more than `maxValuesPerFacet`),
//! numbers (`year`, `rating`, `pages`) and fields missing from some documents. It is loaded
//! through Miroir (settings through Miroir's settings API) and directly into a standalone
//! reference node with the same settings. Both keep the default `searchableAttributes: ["*"]`
//! (Miroir's nodes too, decision 006), so attribute ranks — and therefore scores — are
//! comparable.
//!
//! Queries (≥ 300): words, several words, prefixes, one- and two-typo words, placeholders,
//! filters (equality, ranges, `IN`, `NOT`, `EXISTS`, `IS NULL`, arrays), sorts on numbers and
//! strings (with missing values), facets with stats, offset/limit and page/hitsPerPage,
//! highlighting and `attributesToRetrieve`; every 8th query is also sent through
//! `/multi-search`. Two topologies: 3 nodes with RF=1, and 3 nodes with RF=2 plus a
//! `maxValuesPerFacet` cap of 20 (facet truncation after the merge).
//!
//! Known limits deliberately left out (documented by PRODUCT.md §2, not merge bugs):
//! `distinct` totals (hits are deduplicated across shards by the merge, but each node counts
//! its own distinct hits; `runtime/tests/proxy_differential.rs` checks the hits), `sortFacetValuesBy: count` with truncated facets, and
//! `matchingStrategy: frequency` (word frequencies are per node).
//!
//! What "the same response" means (ties are the only freedom Miroir has: each node breaks
//! ties by its own internal document id, which Miroir cannot see):
//! - totals, `totalPages`, paging echo, `query`, `facetDistribution` and `facetStats` equal;
//! - the sequence of hit keys equal, position by position, where the key is `_rankingScore`
//!   (plus the sort values when the query sorts);
//! - every run of equal keys lying wholly inside the page holds the same set of ids;
//! - every hit Miroir returns is a genuine hit of that query on the reference node with the
//!   same key and the same document body (checked with an extra reference search restricted
//!   to the page's ids), and no id appears twice.
//!
//! The test prints how many queries differed from the reference only inside tie runs.

use miroir_e2e::{start_node, temp_dir, ClusterSpec, Deployment, DeploymentOptions, TestNode};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const INDEX: &str = "library";
const DOCS: usize = 12_000;
const BATCH: usize = 3_000;

/// SplitMix64: a tiny seeded generator (same corpus and queries on every run).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
    /// Skewed pick: low indexes are much more frequent (a few common words, a long tail).
    fn zipf<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let cap = 1 + self.below(from.len());
        from[self.below(cap)]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const WORDS: &[&str] = &[
    "the",
    "night",
    "house",
    "river",
    "secret",
    "garden",
    "summer",
    "winter",
    "shadow",
    "light",
    "journey",
    "stranger",
    "island",
    "kingdom",
    "memory",
    "silence",
    "letters",
    "mountain",
    "ocean",
    "forest",
    "daughter",
    "brother",
    "mother",
    "father",
    "wedding",
    "murder",
    "detective",
    "village",
    "station",
    "harbor",
    "empire",
    "emperor",
    "dragon",
    "thunder",
    "crystal",
    "painter",
    "musician",
    "soldier",
    "captain",
    "doctor",
    "teacher",
    "scientist",
    "machine",
    "engine",
    "railway",
    "bridge",
    "tower",
    "castle",
    "palace",
    "prison",
    "library",
    "archive",
    "manuscript",
    "chronicle",
    "legend",
    "prophecy",
    "rebellion",
    "revolution",
    "republic",
    "frontier",
    "desert",
    "glacier",
    "volcano",
    "meadow",
    "orchard",
    "vineyard",
    "lantern",
    "compass",
    "voyage",
    "expedition",
    "discovery",
    "invention",
    "experiment",
    "laboratory",
    "observatory",
    "telescope",
    "planet",
    "comet",
    "galaxy",
    "universe",
    "orbit",
    "gravity",
    "horizon",
    "twilight",
    "midnight",
    "morning",
    "evening",
    "autumn",
    "spring",
    "harvest",
    "festival",
    "carnival",
    "theater",
    "orchestra",
    "symphony",
    "melody",
    "rhythm",
    "poetry",
    "novel",
    "story",
    "tale",
    "fable",
    "myth",
    "history",
    "biography",
    "portrait",
    "landscape",
    "window",
    "mirror",
    "shelter",
    "refuge",
    "promise",
    "betrayal",
    "courage",
    "wisdom",
    "fortune",
    "treasure",
    "pirate",
    "merchant",
    "traveler",
    "pilgrim",
    "wanderer",
    "shepherd",
    "farmer",
    "hunter",
    "fisherman",
    "blacksmith",
    "carpenter",
    "weaver",
    "baker",
    "kitchen",
    "recipe",
    "bread",
    "honey",
    "salt",
    "copper",
    "silver",
    "golden",
    "iron",
    "velvet",
    "silk",
    "paper",
    "ink",
    "stone",
    "marble",
    "granite",
    "timber",
    "ember",
    "ashes",
    "storm",
    "rain",
    "snow",
    "wind",
    "cloud",
    "fog",
    "tide",
    "wave",
    "shore",
    "cliff",
    "valley",
    "canyon",
    "prairie",
    "tundra",
    "jungle",
    "swamp",
    "lagoon",
    "reef",
    "whale",
    "falcon",
    "raven",
    "wolf",
    "bear",
    "fox",
    "horse",
    "tiger",
    "lion",
    "elephant",
    "sparrow",
    "owl",
    "children",
    "friendship",
    "family",
    "neighbors",
    "strangers",
    "lovers",
    "enemies",
    "rivals",
    "heroes",
    "villains",
    "ghosts",
    "spirits",
    "angels",
    "demons",
    "witches",
    "wizards",
    "quiet",
    "broken",
    "hidden",
    "forgotten",
    "ancient",
    "modern",
    "distant",
    "endless",
    "burning",
    "frozen",
    "silent",
    "restless",
    "beautiful",
    "dangerous",
    "mysterious",
    "wonderful",
    "terrible",
    "curious",
    "gentle",
    "fierce",
    "brave",
    "lonely",
    "wild",
    "remember",
    "return",
    "escape",
    "search",
    "wander",
    "believe",
    "imagine",
    "discover",
    "survive",
    "protect",
    "destroy",
    "create",
    "build",
    "follow",
    "forgive",
    "understand",
];
const GENRES: &[&str] = &[
    "fiction", "mystery", "fantasy", "history", "science", "poetry",
];
const LANGUAGES: &[&str] = &["en", "fr", "de", "es"];
const TAGS: &[&str] = &[
    "classic",
    "awarded",
    "illustrated",
    "series",
    "translated",
    "debut",
    "bestseller",
    "rare",
];
const FIRST: &[&str] = &[
    "Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kenji",
    "Lena", "Marco", "Nadia", "Oscar",
];
const LAST: &[&str] = &[
    "Abbott", "Berger", "Castro", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova",
    "Jensen",
];

fn sentence(g: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| g.zipf(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Document `i`. Document 0 has every field, so the first-seen field order is fixed.
fn document(g: &mut Rng, i: usize) -> Value {
    let mut d = Map::new();
    d.insert("id".into(), json!(i));
    let n = 2 + g.below(5);
    d.insert("title".into(), json!(sentence(g, n)));
    let n = 8 + g.below(16);
    d.insert("overview".into(), json!(sentence(g, n)));
    d.insert("genre".into(), json!(g.pick(GENRES)));
    if i == 0 || g.chance(85) {
        d.insert("language".into(), json!(g.pick(LANGUAGES)));
    }
    let author = format!("{} {}", g.pick(FIRST), g.pick(LAST));
    d.insert("author".into(), json!(author));
    d.insert("year".into(), json!(1950 + g.below(75)));
    if i == 0 || g.chance(80) {
        // One decimal: ties on rating are frequent, which is what sorted merges must handle.
        d.insert("rating".into(), json!((g.below(101) as f64) / 10.0));
    }
    if i == 0 || g.chance(90) {
        let tags: BTreeSet<&str> = (0..g.below(4)).map(|_| g.pick(TAGS)).collect();
        d.insert("tags".into(), json!(tags));
    }
    d.insert("available".into(), json!(g.chance(60)));
    if i == 0 || g.chance(70) {
        d.insert("pages".into(), json!(40 + g.below(900)));
    }
    Value::Object(d)
}

fn corpus() -> Vec<Value> {
    let mut g = Rng(0x5EED_0005);
    (0..DOCS).map(|i| document(&mut g, i)).collect()
}

/// A one-typo variant of a word of ≥ 5 letters (substitution or adjacent transposition inside
/// the word, never on the first letter, which Meilisearch counts double).
fn one_typo(g: &mut Rng, w: &str) -> String {
    let mut c: Vec<char> = w.chars().collect();
    let i = 1 + g.below(c.len() - 2);
    if g.chance(50) {
        c.swap(i, i + 1);
    } else {
        c[i] = if c[i] == 'x' { 'q' } else { 'x' };
    }
    c.into_iter().collect()
}

fn long_word(g: &mut Rng, min: usize) -> &'static str {
    loop {
        let w = g.pick(WORDS);
        if w.len() >= min {
            return w;
        }
    }
}

fn keywords(g: &mut Rng, kind: usize) -> String {
    match kind {
        0 => g.zipf(WORDS).to_string(),
        1 => format!("{} {}", g.zipf(WORDS), g.zipf(WORDS)),
        2 => format!("{} {} {}", g.pick(WORDS), g.zipf(WORDS), g.pick(WORDS)),
        3 => {
            let w = long_word(g, 5);
            w[..2 + g.below(3)].to_string()
        }
        4 => format!("{} {}", g.zipf(WORDS), &long_word(g, 6)[..3]),
        5 => {
            let w = long_word(g, 5);
            one_typo(g, w)
        }
        6 => {
            // Two typos need ≥ 9 letters.
            let w = long_word(g, 9);
            let once = one_typo(g, w);
            let mut c: Vec<char> = once.chars().collect();
            let last = c.len() - 2;
            c[last] = if c[last] == 'z' { 'k' } else { 'z' };
            c.into_iter().collect()
        }
        7 => {
            let w = long_word(g, 6);
            format!("{} {}", one_typo(g, w), g.zipf(WORDS))
        }
        8 => String::new(),
        _ => g.pick(WORDS).to_string(),
    }
}

fn filter(g: &mut Rng) -> Value {
    match g.below(12) {
        0 => json!(format!("genre = {}", g.pick(GENRES))),
        1 => {
            let (lo, hi) = (1950 + g.below(60), 1980 + g.below(45));
            json!(format!("year >= {lo} AND year < {hi}"))
        }
        2 => {
            let (a, b) = (g.pick(LANGUAGES), g.pick(LANGUAGES));
            json!(format!("language IN [{a}, {b}]"))
        }
        3 => json!(format!("NOT genre = {}", g.pick(GENRES))),
        4 => json!("rating EXISTS"),
        5 => json!("rating IS NULL OR language NOT EXISTS"),
        6 => json!(format!("tags = {}", g.pick(TAGS))),
        7 => json!([
            format!("available = {}", g.chance(50)),
            [
                format!("genre = {}", g.pick(GENRES)),
                format!("genre = {}", g.pick(GENRES))
            ]
        ]),
        8 => {
            let (lo, hi) = (g.below(5), 5 + g.below(6));
            json!(format!("rating {lo} TO {hi}"))
        }
        9 => {
            let (f, l) = (g.pick(FIRST), g.pick(LAST));
            json!(format!("author = \"{f} {l}\""))
        }
        10 => json!(format!(
            "pages > {} AND tags IS NOT EMPTY",
            100 + g.below(600)
        )),
        _ => json!(format!("year = {}", 1950 + g.below(75))),
    }
}

fn sort(g: &mut Rng) -> Vec<String> {
    let one = |g: &mut Rng| -> String {
        let f = ["year", "rating", "pages", "author", "title"][g.below(5)];
        let dir = if g.chance(50) { "asc" } else { "desc" };
        format!("{f}:{dir}")
    };
    let mut s = vec![one(g)];
    if g.chance(40) {
        let second = one(g);
        if second.split(':').next() != s[0].split(':').next() {
            s.push(second);
        }
    }
    s
}

fn queries() -> Vec<Value> {
    let mut g = Rng(0x0000_0000_00C0_FFEE);
    let mut out = Vec::new();
    for i in 0..320 {
        let q = keywords(&mut g, i % 10);
        let mut body = json!({"q": q, "showRankingScore": true});
        // Each feature independently, so that combinations occur too.
        if g.chance(40) {
            body["filter"] = filter(&mut g);
        }
        if g.chance(35) {
            body["sort"] = json!(sort(&mut g));
        }
        if g.chance(30) {
            body["facets"] = match g.below(3) {
                0 => json!(["genre", "language", "tags", "available"]),
                1 => json!(["year", "rating", "pages"]),
                _ => json!(["author", "genre", "rating"]),
            };
        }
        match g.below(5) {
            0 => {
                body["offset"] = json!(g.below(120));
                body["limit"] = json!(1 + g.below(40));
            }
            1 => {
                body["page"] = json!(1 + g.below(6));
                body["hitsPerPage"] = json!(1 + g.below(25));
            }
            2 => body["limit"] = json!(g.below(3) * 50),
            _ => {}
        }
        if g.chance(10) {
            body["attributesToHighlight"] = json!(["title"]);
        }
        if g.chance(10) {
            body["attributesToRetrieve"] =
                json!(["id", "title", "year", "rating", "pages", "author"]);
        }
        if g.chance(10) {
            body["matchingStrategy"] = json!("all");
        }
        out.push(body);
    }
    out
}

/// The merge key of a hit: its score, preceded by its sort values when the query sorts
/// (missing field → `null`).
fn hit_key(q: &Value, hit: &Value) -> Vec<Value> {
    let mut key = Vec::new();
    if let Some(sort) = q["sort"].as_array() {
        for s in sort {
            let field = s.as_str().unwrap().split(':').next().unwrap();
            key.push(hit.get(field).cloned().unwrap_or(Value::Null));
        }
    }
    key.push(hit["_rankingScore"].clone());
    key
}

fn hits(v: &Value) -> &Vec<Value> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits array: {v}"))
}

fn id_of(hit: &Value) -> u64 {
    hit["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("hit without id: {hit}"))
}

/// The query restricted to `ids` (same score and sort values: both depend only on the
/// document and the query), with a page large enough for all of them.
fn restricted(q: &Value, ids: &[u64]) -> Value {
    let mut r = q.clone();
    let list = ids
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let id_filter = json!(format!("id IN [{list}]"));
    r["filter"] = match q.get("filter") {
        None => json!([id_filter]),
        Some(Value::Array(parts)) => {
            let mut p = parts.clone();
            p.push(id_filter);
            Value::Array(p)
        }
        Some(f) => json!([f, id_filter]),
    };
    let obj = r.as_object_mut().unwrap();
    for k in ["offset", "page", "hitsPerPage"] {
        obj.remove(k);
    }
    r["limit"] = json!(ids.len().max(1));
    r
}

#[derive(Default)]
struct Tally {
    identical: usize,
    tie_only: usize,
    nonempty: usize,
    sorted: usize,
    faceted: usize,
    multi: usize,
}

/// Compares one query; returns `Err(description)` on a real mismatch.
fn compare(
    q: &Value,
    got: &Value,
    want: &Value,
    reference: &TestNode,
    tally: &mut Tally,
) -> Result<(), String> {
    for k in [
        "estimatedTotalHits",
        "totalHits",
        "totalPages",
        "page",
        "hitsPerPage",
        "offset",
        "limit",
        "query",
        "facetDistribution",
        "facetStats",
    ] {
        if got.get(k) != want.get(k) {
            return Err(format!(
                "`{k}` differs: expected {:?}, got {:?}",
                want.get(k),
                got.get(k)
            ));
        }
    }
    let (g, w) = (hits(got), hits(want));
    if g.len() != w.len() {
        return Err(format!("{} hits, expected {}", g.len(), w.len()));
    }
    if !g.is_empty() {
        tally.nonempty += 1;
    }
    if g == w {
        tally.identical += 1;
        return Ok(());
    }
    // Keys position by position.
    let gk: Vec<Vec<Value>> = g.iter().map(|h| hit_key(q, h)).collect();
    let wk: Vec<Vec<Value>> = w.iter().map(|h| hit_key(q, h)).collect();
    if let Some(i) = (0..gk.len()).find(|&i| gk[i] != wk[i]) {
        return Err(format!(
            "hit {i}: key (sort values…, score) expected {:?} (id {}), got {:?} (id {})",
            wk[i],
            id_of(&w[i]),
            gk[i],
            id_of(&g[i])
        ));
    }
    let gids: Vec<u64> = g.iter().map(id_of).collect();
    if gids.iter().collect::<BTreeSet<_>>().len() != gids.len() {
        return Err(format!("duplicate ids in {gids:?}"));
    }
    // Runs wholly inside the page hold the same ids. A run touching the page's first position
    // (when the page does not start at 0) or its last position may continue outside it, so
    // its members may legitimately differ; those are covered by the membership check below.
    let starts_mid = q["offset"].as_u64().unwrap_or(0) > 0 || q["page"].as_u64().unwrap_or(1) > 1;
    let mut start = 0;
    while start < gk.len() {
        let mut end = start;
        while end < gk.len() && gk[end] == gk[start] {
            end += 1;
        }
        let cut = (start == 0 && starts_mid) || end == gk.len();
        if !cut {
            let a: BTreeSet<u64> = g[start..end].iter().map(id_of).collect();
            let b: BTreeSet<u64> = w[start..end].iter().map(id_of).collect();
            if a != b {
                return Err(format!(
                    "tie run {start}..{end} (key {:?}): expected ids {b:?}, got {a:?}",
                    gk[start]
                ));
            }
        }
        start = end;
    }
    // Membership: every hit Miroir returned is a hit of this query on the reference node, with
    // the same key and the same body (highlighting, retrieved attributes, score included).
    let r = reference
        .http()
        .post_json(&format!("/indexes/{INDEX}/search"), &restricted(q, &gids))
        .expect("reference restricted search");
    if r.status != 200 {
        return Err(format!(
            "restricted reference search failed: {}",
            String::from_utf8_lossy(&r.body)
        ));
    }
    let by_id: BTreeMap<u64, Value> = hits(&r.json())
        .iter()
        .map(|h| (id_of(h), h.clone()))
        .collect();
    for h in g {
        match by_id.get(&id_of(h)) {
            None => {
                return Err(format!(
                    "id {} is not a hit of this query on the reference",
                    id_of(h)
                ))
            }
            Some(expected) if expected != h => {
                return Err(format!("hit {}: expected {expected}, got {h}", id_of(h)))
            }
            Some(_) => {}
        }
    }
    tally.tie_only += 1;
    Ok(())
}

fn load_reference(node: &TestNode, settings: &Value, docs: &[Value]) {
    let http = node.http();
    let r = http
        .post_json("/indexes", &json!({"uid": INDEX, "primaryKey": "id"}))
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let r = http
        .send_json("PATCH", &format!("/indexes/{INDEX}/settings"), settings)
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let mut last = 0;
    for chunk in docs.chunks(BATCH) {
        let r = http
            .post_json(&format!("/indexes/{INDEX}/documents"), &json!(chunk))
            .unwrap();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        last = r.json()["taskUid"].as_u64().unwrap();
    }
    // One worker processes a node's tasks in order: the last one finishing means all did.
    let t = node.wait_task(last);
    assert_eq!(t["status"], "succeeded", "{t}");
    for uid in 0..last {
        let t = node.wait_task(uid);
        assert_eq!(t["status"], "succeeded", "{t}");
    }
}

#[test]
fn miroir_over_three_nodes_answers_like_one_node_holding_everything() {
    differential(
        "3 nodes, RF=1",
        ClusterSpec {
            shards: 32,
            ..ClusterSpec::default()
        },
        json!({}),
    );
}

/// With RF=2 every node holds two thirds of the shards: Miroir must ask each node only for the
/// shards it serves (one replica per shard), or hits, totals and facet counts would double.
/// This run also caps `maxValuesPerFacet` at 20 (below `year`'s 75 and `author`'s 150 values):
/// with the default alphabetical facet order, the first 20 values of the merged distribution
/// are always among each node's first 20, so the merged truncation must be exact.
#[test]
fn miroir_with_two_copies_of_every_shard_answers_like_one_node() {
    differential(
        "3 nodes, RF=2",
        ClusterSpec {
            shards: 16,
            replication_factor: 2,
            ..ClusterSpec::default()
        },
        json!({"faceting": {"maxValuesPerFacet": 20}}),
    );
}

fn differential(label: &str, spec: ClusterSpec, extra_settings: Value) {
    let docs = corpus();
    let filterable = json!([
        "id",
        "genre",
        "language",
        "tags",
        "available",
        "author",
        "year",
        "rating",
        "pages"
    ]);
    let sortable = json!(["year", "rating", "pages", "author", "title"]);
    let mut client_settings =
        json!({"filterableAttributes": filterable, "sortableAttributes": sortable});
    for (k, v) in extra_settings.as_object().unwrap() {
        client_settings[k] = v.clone();
    }

    // Generous node timeout and health thresholds: indexing 12 000 documents in a debug build
    // on a loaded machine must never make a node look dead (that would be a degraded answer,
    // not a merge difference).
    let d = Deployment::start(
        &spec,
        &DeploymentOptions {
            node_timeout_ms: 30_000,
            health_timeout_ms: 10_000,
            unhealthy_threshold: 50,
            ..DeploymentOptions::default()
        },
    );
    d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    d.write_ok(
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &client_settings,
    );
    let mut uids = Vec::new();
    for chunk in docs.chunks(BATCH) {
        uids.push(d.write(
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            &json!(chunk),
        ));
    }
    for uid in uids {
        let t = d.wait_task(uid);
        assert_eq!(t["status"], "succeeded", "{t}");
    }

    // Searchable `*` on Miroir's nodes too (decision 006), and clients read `*`.
    let client_view = d
        .http()
        .get(&format!("/indexes/{INDEX}/settings"))
        .unwrap()
        .json();
    assert_eq!(
        client_view["searchableAttributes"],
        json!(["*"]),
        "{client_view}"
    );
    for n in &d.nodes {
        let s = n
            .http()
            .get(&format!("/indexes/{INDEX}/settings/searchable-attributes"))
            .unwrap()
            .json();
        assert_eq!(s, json!(["*"]), "searchable attributes on a node");
    }
    let stats = d
        .http()
        .get(&format!("/indexes/{INDEX}/stats"))
        .unwrap()
        .json();
    assert_eq!(stats["numberOfDocuments"], json!(DOCS), "{stats}");

    let ref_dir = temp_dir("diff-reference");
    let reference = start_node(ref_dir.path(), "reference", &d.spec.master_key);
    load_reference(&reference, &client_settings, &docs);

    // The facet cap is in force (150 distinct authors; Meilisearch's default cap is 100).
    let cap = extra_settings["faceting"]["maxValuesPerFacet"]
        .as_u64()
        .unwrap_or(100) as usize;
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": "", "facets": ["author"], "limit": 0}),
        )
        .unwrap()
        .json();
    let authors = r["facetDistribution"]["author"].as_object().unwrap();
    assert_eq!(authors.len(), cap.min(FIRST.len() * LAST.len()), "{r}");

    let qs = queries();
    assert!(qs.len() >= 200);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for (q_index, q) in qs.iter().enumerate() {
        if q.get("sort").is_some() {
            tally.sorted += 1;
        }
        if q.get("facets").is_some() {
            tally.faceted += 1;
        }
        let got = d
            .http()
            .post_json(&format!("/indexes/{INDEX}/search"), q)
            .expect("search through Miroir");
        let want = reference
            .http()
            .post_json(&format!("/indexes/{INDEX}/search"), q)
            .expect("reference search");
        if got.status != want.status {
            failures.push(format!(
                "{q}\n  status: expected {} {}, got {} {}",
                want.status,
                String::from_utf8_lossy(&want.body),
                got.status,
                String::from_utf8_lossy(&got.body)
            ));
            continue;
        }
        assert_eq!(
            want.status,
            200,
            "reference rejected {q}: {}",
            String::from_utf8_lossy(&want.body)
        );
        if let Some(h) = got.header("x-miroir-degraded") {
            failures.push(format!("{q}\n  degraded answer: {h}"));
            continue;
        }
        let want = want.json();
        if let Err(e) = compare(q, &got.json(), &want, &reference, &mut tally) {
            failures.push(format!("{q}\n  {e}"));
        }
        // Every 8th query again through `/multi-search`: each query of a multi-search is
        // merged like a search (its result additionally names the index).
        if q_index % 8 == 0 {
            tally.multi += 1;
            let mut mq = q.clone();
            mq["indexUid"] = json!(INDEX);
            let r = d
                .http()
                .post_json("/multi-search", &json!({"queries": [mq]}))
                .expect("multi-search through Miroir");
            if r.status != 200 {
                failures.push(format!(
                    "multi-search {q}\n  {}",
                    String::from_utf8_lossy(&r.body)
                ));
                continue;
            }
            let mut one = r.json()["results"][0].clone();
            if one["indexUid"] != json!(INDEX) {
                failures.push(format!("multi-search {q}\n  indexUid missing: {one}"));
                continue;
            }
            one.as_object_mut().unwrap().remove("indexUid");
            let mut scratch = Tally::default();
            if let Err(e) = compare(q, &one, &want, &reference, &mut scratch) {
                failures.push(format!("multi-search {q}\n  {e}"));
            }
        }
    }
    eprintln!(
        "differential ({label}): {} queries ({} sorted, {} faceted, {} also through multi-search), {} with hits; {} identical, {} differing only inside tie runs, {} mismatches",
        qs.len(),
        tally.sorted,
        tally.faceted,
        tally.multi,
        tally.nonempty,
        tally.identical,
        tally.tie_only,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} queries differ from the single node:\n{}",
        failures.len(),
        qs.len(),
        failures.join("\n")
    );
    // The corpus and queries are built so that most queries match: a broken generator (or a
    // Miroir answering empty pages everywhere) must not pass silently.
    assert!(
        tally.nonempty > qs.len() * 2 / 3,
        "only {} of {} queries had hits",
        tally.nonempty,
        qs.len()
    );
    assert!(tally.sorted >= 60 && tally.faceted >= 50 && tally.multi >= 40);
}
