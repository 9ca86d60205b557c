//! Dynamic search rules (decision 042): the rules live in Miroir, and a pinned document lands
//! at its position in the *merged* page for every page size and offset, with the totals one
//! Meilisearch gives. Over test nodes the expected pages come from Miroir's own organic order
//! and milli's placement; with `MIROIR_E2E_MEILI_BIN` the same requests also go to one real
//! node holding the whole corpus and the answers must be the same (differential).

use miroir_e2e::{
    real_meilisearch, start_node, temp_dir, Client, Cluster, ClusterSpec, Deployment,
    DeploymentOptions, Redis, TestNode,
};
use serde_json::{json, Value};

const KEY: &str = "dsr-master-key";
const DOCS: i64 = 60;

struct Sides {
    cluster: Cluster,
    /// One real Meilisearch with every document (only with `MIROIR_E2E_MEILI_BIN`).
    one: Option<TestNode>,
    _dir: miroir_testkit::TempDir,
}

impl Sides {
    fn clients(&self) -> Vec<(&'static str, Client)> {
        let mut c = vec![("Miroir", self.cluster.http())];
        if let Some(one) = &self.one {
            c.push(("one node", one.http()));
        }
        c
    }

    /// A write on every side; waits for its task; returns Miroir's answer and task.
    fn write(&self, method: &str, path: &str, body: Option<&Value>) -> (Value, Value) {
        let mut first = None;
        for (name, c) in self.clients() {
            let r = c.call(method, path, body);
            assert_eq!(r.status, 202, "{name} {method} {path}: {}", r.text());
            let summary = r.json();
            let task = miroir_testkit::wait_task(&c, summary["taskUid"].as_u64().unwrap());
            assert_eq!(task["status"], "succeeded", "{name}: {task}");
            first.get_or_insert((summary, task));
        }
        first.unwrap()
    }

    /// A read on every side: the same status and body everywhere (timings aside).
    fn read(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut first: Option<(u16, Value)> = None;
        for (name, c) in self.clients() {
            let r = c.call(method, path, body);
            let mut answer = if r.body.is_empty() {
                Value::Null
            } else {
                r.json()
            };
            // Per-request values (also in each multi-search result).
            let strip = |v: &mut Value| {
                if let Some(m) = v.as_object_mut() {
                    m.remove("processingTimeMs");
                    m.remove("requestUid");
                }
            };
            strip(&mut answer);
            if let Some(Value::Array(results)) = answer.get_mut("results") {
                results.iter_mut().for_each(strip);
            }
            let got = (r.status, answer);
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(
                    &got, f,
                    "{method} {path} {body:?}: {name} differs from Miroir"
                ),
            }
        }
        first.unwrap()
    }
}

fn sides() -> Sides {
    let dir = temp_dir("dsr");
    let one = real_meilisearch().map(|_| start_node(dir.path(), "one", KEY));
    let cluster = Cluster::start(ClusterSpec {
        master_key: KEY.into(),
        ..ClusterSpec::default()
    });
    Sides {
        cluster,
        one,
        _dir: dir,
    }
}

/// The ids of a search's hits, and its total.
fn search(s: &Sides, body: Value) -> (Vec<i64>, Value) {
    let (status, r) = s.read("POST", "/indexes/products/search", Some(&body));
    assert_eq!(status, 200, "{body}: {r}");
    let ids = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    let total = r
        .get("estimatedTotalHits")
        .or_else(|| r.get("totalHits"))
        .cloned()
        .unwrap_or(Value::Null);
    (ids, total)
}

/// milli's placement: pins (in rule order) into the organic list, then the page.
fn expected(organic: &[i64], pins: &[(i64, usize)], skip: usize, take: usize) -> Vec<i64> {
    let pinned: Vec<i64> = pins.iter().map(|p| p.0).collect();
    let mut organic = organic.iter().filter(|i| !pinned.contains(i)).copied();
    let mut pins = pins.iter().copied().peekable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < skip + take {
        let next = match pins.peek() {
            Some(&(_, pos)) if pos <= i => pins.next().map(|p| p.0),
            Some(_) => organic.next().or_else(|| pins.next().map(|p| p.0)),
            None => organic.next(),
        };
        let Some(h) = next else { break };
        if i >= skip {
            out.push(h);
        }
        i += 1;
    }
    out
}

#[test]
fn pinned_documents_land_at_their_positions_in_the_merged_page() {
    let s = sides();
    // Behind the experimental feature, with Meilisearch's error.
    let (status, e) = s.read("POST", "/dynamic-search-rules", Some(&json!({})));
    assert_eq!(status, 400);
    assert_eq!(e["code"], "feature_not_enabled");
    assert_eq!(
        e["message"],
        "Calling the `POST /dynamic-search-rules` route requires enabling the `dynamic search rules` experimental feature. See https://github.com/orgs/meilisearch/discussions/884"
    );
    let (status, e) = s.read("GET", "/dynamic-search-rules/x", None);
    assert_eq!((status, &e["code"]), (400, &json!("feature_not_enabled")));
    for (_, c) in s.clients() {
        let r = c.call(
            "PATCH",
            "/experimental-features",
            Some(&json!({"dynamicSearchRules": true})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let docs: Vec<Value> = (0..DOCS)
        .map(|i| {
            let title = if i % 10 == 3 { "special item" } else { "item" };
            json!({"id": i, "rank": i, "color": if i % 3 == 0 { "red" } else { "blue" }, "title": title})
        })
        .collect();
    s.write(
        "PATCH",
        "/indexes/products/settings",
        Some(&json!({"sortableAttributes": ["rank"], "filterableAttributes": ["color"]})),
    );
    s.write(
        "POST",
        "/indexes/products/documents?primaryKey=id",
        Some(&json!(docs)),
    );

    // CRUD as Meilisearch answers it.
    assert_eq!(
        s.read("POST", "/dynamic-search-rules", Some(&json!({}))).1,
        json!({"results": [], "offset": 0, "limit": 20, "total": 0})
    );
    let promo = json!({
        "description": "promo",
        "precedence": 1,
        "conditions": {"query": {"isEmpty": true}},
        "actions": [
            {"selector": {"indexUid": "products", "id": "50"}, "action": {"type": "pin", "position": 0}},
            {"selector": {"id": "51"}, "action": {"type": "pin", "position": 4}},
        ],
    });
    let (summary, task) = s.write("PATCH", "/dynamic-search-rules/promo", Some(&promo));
    assert_eq!(
        (&summary["type"], &summary["indexUid"], &summary["status"]),
        (
            &json!("dsrUpdate"),
            &json!(".meili_dsr"),
            &json!("enqueued")
        )
    );
    assert_eq!(task["details"], json!({"rule": promo, "updatedRules": 1}));
    let want = json!({"uid": "promo", "description": "promo", "precedence": 1, "active": true,
        "conditions": promo["conditions"], "actions": promo["actions"]});
    assert_eq!(
        s.read("GET", "/dynamic-search-rules/promo", None),
        (200, want.clone())
    );
    assert_eq!(
        s.read("POST", "/dynamic-search-rules", Some(&json!({"limit": 5})))
            .1,
        json!({"results": [want], "offset": 0, "limit": 5, "total": 1})
    );
    let (status, e) = s.read("GET", "/dynamic-search-rules/nope", None);
    assert_eq!(
        (status, &e["code"]),
        (404, &json!("dynamic_search_rule_not_found"))
    );
    assert_eq!(e["message"], "Dynamic search rule `nope` not found.");
    let (status, e) = s.read(
        "PATCH",
        "/dynamic-search-rules/bad",
        Some(&json!({"actions": [{"selector": {"id": "1"}, "action": {"type": "pin"}}]})),
    );
    assert_eq!(
        (status, &e["code"]),
        (400, &json!("invalid_dynamic_search_rule_actions"))
    );

    // Every page size and offset, both pagination modes: the pins at 0 and 4, the organic
    // order (by rank) around them, every document counted once.
    let organic: Vec<i64> = (0..DOCS).collect();
    let pins = [(50, 0), (51, 4)];
    for limit in [1, 2, 3, 5, 7] {
        for offset in [0, 1, 2, 3, 4, 5, 8] {
            let (ids, total) = search(
                &s,
                json!({"sort": ["rank:asc"], "offset": offset, "limit": limit}),
            );
            assert_eq!(
                ids,
                expected(&organic, &pins, offset, limit),
                "offset {offset} limit {limit}"
            );
            assert_eq!(total, json!(DOCS));
        }
    }
    for hpp in [1, 2, 3, 5] {
        for page in 1..=4 {
            let (ids, total) = search(
                &s,
                json!({"sort": ["rank:asc"], "page": page, "hitsPerPage": hpp}),
            );
            let skip = (page - 1) * hpp;
            assert_eq!(
                ids,
                expected(&organic, &pins, skip, hpp),
                "page {page} hpp {hpp}"
            );
            assert_eq!(total, json!(DOCS));
        }
    }
    // A pinned hit has the score of a pin.
    let (_, r) = s.read(
        "POST",
        "/indexes/products/search",
        Some(&json!({"sort": ["rank:asc"], "limit": 1, "showRankingScore": true, "showRankingScoreDetails": true})),
    );
    assert_eq!(r["hits"][0]["id"], 50);
    assert_eq!(r["hits"][0]["_rankingScore"], 1.0);
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"],
        json!({"pin": {"order": 0, "position": 0}})
    );
    // A pinned hit is shaped like the others (fields asked for, `_formatted`).
    let (_, r) = s.read(
        "POST",
        "/indexes/products/search",
        Some(
            &json!({"sort": ["rank:asc"], "limit": 2, "attributesToRetrieve": ["title", "rank"],
            "attributesToHighlight": ["*"]}),
        ),
    );
    assert_eq!(
        r["hits"][0],
        json!({"title": "item", "rank": 50,
            "_formatted": {"id": "50", "rank": "50", "color": "blue", "title": "item"}})
    );
    // Each query of a (non-federated) multi-search is pinned.
    let (_, r) = s.read(
        "POST",
        "/multi-search",
        Some(&json!({"queries": [{"indexUid": "products", "sort": ["rank:asc"], "limit": 3}]})),
    );
    let ids: Vec<i64> = r["results"][0]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![50, 0, 1]);
    // …and a federated one: the pins at their positions in the federated page.
    for (offset, limit) in [(0, 6), (2, 4), (4, 1)] {
        let (_, r) = s.read(
            "POST",
            "/multi-search",
            Some(&json!({"federation": {"offset": offset, "limit": limit},
                "queries": [{"indexUid": "products", "sort": ["rank:asc"]}]})),
        );
        let ids: Vec<i64> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            ids,
            expected(&organic, &pins, offset, limit),
            "federated {offset} {limit}"
        );
        assert_eq!(r["estimatedTotalHits"], DOCS);
    }
    // Pins of two indexes at one position (51 at 4 has no index selector): ordered by index
    // uid, whatever the query order. The page holds only pins (organic ties aside).
    s.write(
        "POST",
        "/indexes/catalog/documents?primaryKey=id",
        Some(&json!([{"id": 51, "rank": 0}, {"id": 1, "rank": 1}])),
    );
    let (_, r) = s.read(
        "POST",
        "/multi-search",
        Some(&json!({"federation": {"offset": 4, "limit": 2},
            "queries": [{"indexUid": "products"}, {"indexUid": "catalog"}]})),
    );
    let got: Vec<(Value, Value)> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["_federation"]["indexUid"].clone(), h["id"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("catalog"), json!(51)),
            (json!("products"), json!(51))
        ]
    );
    // The filter applies to pins: 50 is blue, 51 is red.
    let red: Vec<i64> = (0..DOCS).filter(|i| i % 3 == 0).collect();
    let (ids, total) = search(
        &s,
        json!({"sort": ["rank:asc"], "filter": "color = red", "limit": 8}),
    );
    assert_eq!(ids, expected(&red, &[(51, 4)], 0, 8));
    assert_eq!(total, json!(red.len()), "51 is red: counted once");
    // A query: the `isEmpty` rule is off.
    let (ids, _) = search(&s, json!({"q": "item", "sort": ["rank:asc"], "limit": 6}));
    assert_eq!(ids, (0..6).collect::<Vec<_>>());

    // A `words` condition: on for a query with the word, off otherwise.
    s.write(
        "PATCH",
        "/dynamic-search-rules/words",
        Some(&json!({"conditions": {"query": {"words": "special"}},
            "actions": [{"selector": {"id": "7"}, "action": {"type": "pin", "position": 1}}]})),
    );
    let special: Vec<i64> = (0..DOCS).filter(|i| i % 10 == 3).collect();
    let (ids, total) = search(&s, json!({"q": "special", "sort": ["rank:asc"]}));
    assert_eq!(ids, expected(&special, &[(7, 1)], 0, 20));
    assert_eq!(total, json!(special.len() + 1));
    let (ids, _) = search(&s, json!({"q": "item", "sort": ["rank:asc"], "limit": 3}));
    assert_eq!(ids, vec![0, 1, 2]);

    // A time window: ended → off; open → on.
    s.write(
        "PATCH",
        "/dynamic-search-rules/promo",
        Some(&json!({"conditions": {"query": {"isEmpty": true}, "time": {"end": "2001-01-01T00:00:00Z"}}})),
    );
    let (ids, _) = search(&s, json!({"sort": ["rank:asc"], "limit": 6}));
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    s.write(
        "PATCH",
        "/dynamic-search-rules/promo",
        Some(&json!({"conditions": {"time": {"start": "2001-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z"}}})),
    );
    let (ids, _) = search(&s, json!({"sort": ["rank:asc"], "limit": 6}));
    assert_eq!(ids, expected(&organic, &pins, 0, 6));
    // Inactive → off. Once a rule has `active`, Meilisearch takes as active only rules stored
    // with `active: true`: `words`, created without it, is off too.
    s.write(
        "PATCH",
        "/dynamic-search-rules/promo",
        Some(&json!({"active": false})),
    );
    let (ids, _) = search(&s, json!({"sort": ["rank:asc"], "limit": 6}));
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    let (ids, _) = search(&s, json!({"q": "special", "sort": ["rank:asc"]}));
    assert_eq!(ids, special);
    let active = |a: bool| {
        s.read(
            "POST",
            "/dynamic-search-rules",
            Some(&json!({"filter": {"active": a}})),
        )
        .1["total"]
            .clone()
    };
    assert_eq!((active(true), active(false)), (json!(0), json!(1)));
    s.write(
        "PATCH",
        "/dynamic-search-rules/words",
        Some(&json!({"active": true})),
    );
    let (ids, _) = search(&s, json!({"q": "special", "sort": ["rank:asc"]}));
    assert_eq!(ids, expected(&special, &[(7, 1)], 0, 20));
    assert_eq!(active(true), json!(1));
    assert_eq!(
        s.read("POST", "/dynamic-search-rules", Some(&json!({"offset": 1})))
            .1["total"],
        2
    );

    // Delete one, then clear.
    let (summary, task) = s.write("DELETE", "/dynamic-search-rules/words", None);
    assert_eq!(summary["type"], "dsrUpdate");
    assert_eq!(task["details"], json!({"updatedRules": 1}));
    assert_eq!(s.read("GET", "/dynamic-search-rules/words", None).0, 404);
    let (summary, task) = s.write("DELETE", "/dynamic-search-rules", None);
    assert_eq!(summary["type"], "dsrClear");
    assert_eq!(task["details"], json!({"deletedDocuments": 1}));
    assert_eq!(
        s.read("POST", "/dynamic-search-rules", Some(&json!({}))).1["total"],
        0
    );
}

/// The rules are in the admin's store (LMDB, or Redis): after a restart of the admin they are
/// listed and still pin.
fn rules_survive_an_admin_restart(opts: &DeploymentOptions) {
    let mut d = Deployment::start(
        &ClusterSpec {
            master_key: KEY.into(),
            ..ClusterSpec::default()
        },
        opts,
    );
    let r = d.http().call(
        "PATCH",
        "/experimental-features",
        Some(&json!({"dynamicSearchRules": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let docs: Vec<Value> = (0..10).map(|i| json!({"id": i, "rank": i})).collect();
    d.write_ok(
        "PATCH",
        "/indexes/products/settings",
        &json!({"sortableAttributes": ["rank"]}),
    );
    d.write_ok(
        "POST",
        "/indexes/products/documents?primaryKey=id",
        &json!(docs),
    );
    let rule =
        json!({"actions": [{"selector": {"id": "9"}, "action": {"type": "pin", "position": 1}}]});
    d.write_ok("PATCH", "/dynamic-search-rules/top", &rule);
    let first = |d: &Deployment| -> Vec<i64> {
        let r = d.http().call(
            "POST",
            "/indexes/products/search",
            Some(&json!({"sort": ["rank:asc"], "limit": 3})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(first(&d), vec![0, 9, 1]);
    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    let r = d.http().call("GET", "/dynamic-search-rules/top", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["actions"], rule["actions"]);
    assert_eq!(first(&d), vec![0, 9, 1]);
    d.write_ok("DELETE", "/dynamic-search-rules", &json!(null));
    assert_eq!(first(&d), vec![0, 1, 2]);
}

#[test]
fn rules_survive_an_admin_restart_lmdb() {
    rules_survive_an_admin_restart(&DeploymentOptions::default());
}

#[test]
fn rules_survive_an_admin_restart_redis() {
    let redis = Redis::start();
    rules_survive_an_admin_restart(&DeploymentOptions {
        extra_yaml: format!(
            "task_store: {{ backend: redis, url: \"{}\" }}\n",
            redis.url()
        ),
        ..DeploymentOptions::default()
    });
}
