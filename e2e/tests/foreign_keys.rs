//! Foreign keys across shards (Meilisearch 1.50's experimental `foreignKeys`, decision 044):
//! a hit's foreign ids are hydrated with documents that live on any node, exactly as one
//! Meilisearch embeds them.
//!
//! Two indexes spread over three nodes (64 shards): `authors` (displayed fields `id`, `name`;
//! `secret` hidden) and `books`, whose `author` holds one author id and `related` a list with
//! author ids, an id no author has (hydrated as `{}`) and an invalid id (left as it is). The
//! expected hits are built from the corpus. Checked: the setting's round trip (full settings
//! and sub-route) and its errors, search, multi-search and federated multi-search (document
//! and `_formatted`), foreign filters (`_foreign(field, filter)`) in searches, document
//! listings and facet search with Meilisearch's errors, and that nothing is hydrated while the
//! feature is off.
//!
//! Over real Meilisearch nodes (`MIROIR_E2E_MEILI_BIN`), the same corpus is also loaded into
//! one real node and the hits are compared with its own (differential).
//!
//! A second test restarts the admin (separate admin and data plane) and checks that the
//! setting and the feature flag survive and hydration goes on.

use miroir_e2e::{
    start_node, temp_dir, try_wait_until, within, Client, Cluster, ClusterSpec, Deployment,
    DeploymentOptions,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const AUTHORS: usize = 120;
const BOOKS: usize = 150;

fn authors() -> Vec<Value> {
    (0..AUTHORS)
        .map(|i| json!({"id": format!("a{i}"), "name": format!("Author {i}"), "secret": i}))
        .collect()
}

fn books() -> Vec<Value> {
    (0..BOOKS)
        .map(|i| {
            json!({
                "id": format!("b{i}"),
                "title": format!("Book number {i}"),
                "author": format!("a{}", (i * 7) % AUTHORS),
                "related": [format!("a{}", (i * 3 + 1) % AUTHORS), "a9999", "not an id"],
            })
        })
        .collect()
}

/// The author as one Meilisearch embeds it: its displayed fields.
fn shown_author(id: &str) -> Value {
    let i: usize = id[1..].parse().unwrap();
    if i >= AUTHORS {
        return json!({});
    }
    json!({"id": id, "name": format!("Author {i}")})
}

/// `book` with its foreign ids replaced as one Meilisearch does.
fn hydrated(book: &Value) -> Value {
    let mut b = book.clone();
    b["author"] = shown_author(book["author"].as_str().unwrap());
    b["related"] = json!([
        shown_author(book["related"][0].as_str().unwrap()),
        {},
        "not an id"
    ]);
    b
}

fn task(http: &Client, r: miroir_e2e::Response) -> Value {
    assert_eq!(r.status, 202, "{}", r.text());
    miroir_testkit_wait(http, r.json()["taskUid"].as_u64().unwrap())
}

fn miroir_testkit_wait(http: &Client, uid: u64) -> Value {
    let t = try_wait_until(within(Duration::from_secs(120)), || {
        let t = http.get(&format!("/tasks/{uid}")).ok()?.json();
        matches!(
            t["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
        .then_some(t)
    })
    .expect("task finished");
    assert_eq!(t["status"], "succeeded", "{t}");
    t
}

/// Creates and fills both indexes through `http` (Miroir or one node).
fn load(http: &Client) {
    for uid in ["authors", "books"] {
        task(
            http,
            http.post_json("/indexes", &json!({"uid": uid, "primaryKey": "id"}))
                .unwrap(),
        );
    }
    task(
        http,
        http.send_json(
            "PATCH",
            "/indexes/authors/settings",
            &json!({"displayedAttributes": ["id", "name"], "filterableAttributes": ["name"]}),
        )
        .unwrap(),
    );
    task(
        http,
        http.post_json("/indexes/authors/documents", &json!(authors()))
            .unwrap(),
    );
    task(
        http,
        http.send_json(
            "PATCH",
            "/indexes/books/settings",
            &json!({"filterableAttributes": ["author", "related", "title"]}),
        )
        .unwrap(),
    );
    task(
        http,
        http.post_json("/indexes/books/documents", &json!(books()))
            .unwrap(),
    );
}

/// The `foreignKeys` setting of `books`.
fn keys() -> Value {
    json!([
        {"foreignIndexUid": "authors", "fieldName": "author"},
        {"foreignIndexUid": "authors", "fieldName": "related"}
    ])
}

fn enable(http: &Client, on: bool) {
    let r = http.send_json(
        "PATCH",
        "/experimental-features",
        &json!({"foreignKeys": on}),
    );
    let r = r.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["foreignKeys"], on);
}

fn search_all(http: &Client) -> Value {
    http.post_json(
        "/indexes/books/search",
        &json!({"q": "", "limit": BOOKS, "attributesToHighlight": ["title"]}),
    )
    .unwrap()
    .json()
}

/// Hits by id, without the fields that depend on the query (`_formatted` checked apart).
fn by_id(hits: &Value) -> BTreeMap<String, Value> {
    hits.as_array()
        .unwrap_or_else(|| panic!("hits: {hits}"))
        .iter()
        .map(|h| {
            let mut h: Map<String, Value> = h.as_object().unwrap().clone();
            h.retain(|k, _| !k.starts_with('_'));
            (h["id"].as_str().unwrap().to_string(), Value::Object(h))
        })
        .collect()
}

fn expected() -> BTreeMap<String, Value> {
    books()
        .iter()
        .map(|b| (b["id"].as_str().unwrap().to_string(), hydrated(b)))
        .collect()
}

#[test]
fn foreign_documents_are_hydrated_across_shards() {
    let cluster = Cluster::start(ClusterSpec::default());
    let http = cluster.http();
    load(&http);

    // The feature is off: the setting is refused as one Meilisearch refuses it.
    let r = http
        .send_json(
            "PATCH",
            "/indexes/books/settings",
            &json!({"foreignKeys": keys()}),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "feature_not_enabled");
    assert_eq!(
        r.json()["message"],
        "setting `foreignKeys` in the index settings requires enabling the `foreign_keys` experimental feature. See https://github.com/orgs/meilisearch/discussions/873"
    );
    let s = http.get("/indexes/books/settings").unwrap().json();
    assert!(s.get("foreignKeys").is_none(), "{s}");

    enable(&http, true);
    // Shape errors, worded as Meilisearch words them (also on the sub-route).
    let r = http
        .send_json(
            "PATCH",
            "/indexes/books/settings",
            &json!({"foreignKeys": [{"fieldName": "author"}]}),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_settings_foreign_keys");
    assert_eq!(
        r.json()["message"],
        "Missing field `foreignIndexUid` inside `.foreignKeys[0]`"
    );
    let r = http
        .send_json("PUT", "/indexes/books/settings/foreign-keys", &json!("x"))
        .unwrap();
    assert_eq!(
        r.json()["message"],
        "Invalid value type: expected an array, but found a string: `\"x\"`"
    );

    let t = task(
        &http,
        http.send_json(
            "PATCH",
            "/indexes/books/settings",
            &json!({"foreignKeys": keys()}),
        )
        .unwrap(),
    );
    assert_eq!(t["details"], json!({"foreignKeys": keys()}));
    let fk = http.get("/indexes/books/settings/foreign-keys").unwrap();
    assert_eq!(fk.status, 200);
    assert_eq!(fk.json(), keys());
    let s = http.get("/indexes/books/settings").unwrap().json();
    let names: Vec<&String> = s.as_object().unwrap().keys().collect();
    let at = names
        .iter()
        .position(|k| *k == "foreignKeys")
        .expect("shown");
    assert_eq!(names[at - 1], "sortableAttributes", "{s}");
    assert_eq!(s["foreignKeys"], keys());

    // Search: every hit hydrated, in the document and in `_formatted`.
    let want = expected();
    let page = try_wait_until(within(Duration::from_secs(30)), || {
        let page = search_all(&http);
        (by_id(&page["hits"]) == want).then_some(page)
    })
    .unwrap_or_else(|| panic!("hydrated hits: {}", search_all(&http)));
    for h in page["hits"].as_array().unwrap() {
        let id = h["id"].as_str().unwrap();
        assert_eq!(h["_formatted"]["author"], want[id]["author"], "{h}");
        assert_eq!(h["_formatted"]["related"], want[id]["related"], "{h}");
    }

    // Multi-search, each query hydrated like a search.
    let m = http
        .post_json(
            "/multi-search",
            &json!({"queries": [
                {"indexUid": "books", "q": "", "limit": BOOKS},
                {"indexUid": "authors", "q": "", "limit": 5}
            ]}),
        )
        .unwrap()
        .json();
    assert_eq!(by_id(&m["results"][0]["hits"]), want, "{m}");
    assert_eq!(m["results"][1]["hits"][0].get("secret"), None);

    // Federated: books hits hydrated, authors hits as they are.
    let f = http
        .post_json(
            "/multi-search",
            &json!({"federation": {"limit": 500}, "queries": [
                {"indexUid": "books", "q": ""},
                {"indexUid": "authors", "q": ""}
            ]}),
        )
        .unwrap()
        .json();
    let hits = f["hits"].as_array().unwrap_or_else(|| panic!("{f}"));
    assert_eq!(hits.len(), BOOKS + AUTHORS, "{f}");
    for h in hits {
        let id = h["id"].as_str().unwrap();
        let mut plain = h.as_object().unwrap().clone();
        plain.retain(|k, _| !k.starts_with('_'));
        if h["_federation"]["indexUid"] == "books" {
            assert_eq!(Value::Object(plain), want[id], "{h}");
        } else {
            assert_eq!(Value::Object(plain), shown_author(id), "{h}");
        }
    }

    // Foreign filters: resolved over the foreign index's shards, then `field IN [ids]`.
    let filtered = |http: &Client, filter: Value| {
        http.post_json(
            "/indexes/books/search",
            &json!({"filter": filter, "limit": BOOKS}),
        )
        .unwrap()
        .json()
    };
    let only = |pred: &dyn Fn(&Value) -> bool| -> BTreeMap<String, Value> {
        books()
            .iter()
            .filter(|b| pred(b))
            .map(|b| (b["id"].as_str().unwrap().to_string(), hydrated(b)))
            .collect()
    };
    let f = filtered(&http, json!("_foreign(author, name = \"Author 14\")"));
    assert_eq!(by_id(&f["hits"]), only(&|b| b["author"] == "a14"), "{f}");
    let f = filtered(
        &http,
        json!([[
            "_foreign(related, name IN [\"Author 1\", \"Author 4\"])",
            "title = \"Book number 0\""
        ]]),
    );
    let want_related =
        only(&|b| ["a1", "a4"].contains(&b["related"][0].as_str().unwrap()) || b["id"] == "b0");
    assert!(!want_related.is_empty());
    assert_eq!(by_id(&f["hits"]), want_related, "{f}");
    // Also in document listings and facet search (documents are not hydrated there).
    let a14 = "_foreign(author, name = \"Author 14\")";
    let docs = http
        .post_json(
            "/indexes/books/documents/fetch",
            &json!({"filter": a14, "limit": BOOKS}),
        )
        .unwrap()
        .json();
    let plain_a14: BTreeMap<String, Value> = books()
        .into_iter()
        .filter(|b| b["author"] == "a14")
        .map(|b| (b["id"].as_str().unwrap().to_string(), b))
        .collect();
    assert_eq!(by_id(&docs["results"]), plain_a14, "{docs}");
    let facets = |http: &Client| {
        http.post_json(
            "/indexes/books/facet-search",
            &json!({"facetName": "author", "filter": a14}),
        )
        .unwrap()
        .json()
    };
    let fh = facets(&http);
    assert_eq!(
        fh["facetHits"],
        json!([{"value": "a14", "count": plain_a14.len()}]),
        "{fh}"
    );
    let r = http
        .post_json(
            "/indexes/books/search",
            &json!({"filter": "_foreign(title, name = x)"}),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_search_filter");
    assert_eq!(
        r.json()["message"],
        "Index `books`: Field `title` is not a foreign key"
    );
    let r = http
        .post_json(
            "/indexes/books/search",
            &json!({"filter": "_foreign(author, name EXISTS)"}),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "Index `authors`: Foreign filter is retrieving too many documents, foreign filters can't retrieve more than 100 documents per index"
    );

    // Over real nodes: the same answers as one real Meilisearch holding everything.
    if miroir_e2e::real_meilisearch().is_some() {
        let dir = temp_dir("fk-reference");
        let reference = start_node(dir.path(), "reference", &cluster.spec.master_key);
        let one = reference.http();
        load(&one);
        enable(&one, true);
        task(
            &one,
            one.send_json(
                "PATCH",
                "/indexes/books/settings",
                &json!({"foreignKeys": keys()}),
            )
            .unwrap(),
        );
        let theirs = search_all(&one);
        assert_eq!(by_id(&theirs["hits"]), by_id(&page["hits"]));
        let formatted = |p: &Value| -> BTreeMap<String, Value> {
            p["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["id"].as_str().unwrap().to_string(),
                        h["_formatted"].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(formatted(&theirs), formatted(&page));
        let fed = |http: &Client| {
            let f = http
                .post_json(
                    "/multi-search",
                    &json!({"federation": {"limit": 500}, "queries": [{"indexUid": "books", "q": ""}]}),
                )
                .unwrap()
                .json();
            by_id(&f["hits"])
        };
        assert_eq!(fed(&one), fed(&http));
        for filter in [
            json!("_foreign(author, name = \"Author 14\")"),
            json!("_foreign(related, name IN [\"Author 1\", \"Author 4\"]) OR title = \"Book number 0\""),
        ] {
            assert_eq!(
                by_id(&filtered(&one, filter.clone())["hits"]),
                by_id(&filtered(&http, filter)["hits"])
            );
        }
        let mut theirs = facets(&one);
        let mut ours = facets(&http);
        for v in [&mut theirs, &mut ours] {
            v.as_object_mut().unwrap().remove("processingTimeMs");
        }
        assert_eq!(theirs, ours);
        for filter in ["_foreign(title, name = x)", "_foreign(author, name EXISTS)"] {
            let body = json!({ "filter": filter });
            let a = one.post_json("/indexes/books/search", &body).unwrap();
            let b = http.post_json("/indexes/books/search", &body).unwrap();
            assert_eq!((a.status, a.json()), (b.status, b.json()), "{filter}");
        }
        let s_one = one.get("/indexes/books/settings").unwrap().json();
        assert_eq!(s_one["foreignKeys"], s["foreignKeys"]);
        eprintln!("differential: Miroir's hydrated hits equal one real node's");
    }

    // Feature off: nothing hydrated, the setting hidden again.
    enable(&http, false);
    let plain: BTreeMap<String, Value> = books()
        .iter()
        .map(|b| (b["id"].as_str().unwrap().to_string(), b.clone()))
        .collect();
    try_wait_until(within(Duration::from_secs(30)), || {
        by_id(&search_all(&http)["hits"]) == plain
    })
    .unwrap_or_else(|| panic!("plain hits: {}", search_all(&http)));
    let s = http.get("/indexes/books/settings").unwrap().json();
    assert!(s.get("foreignKeys").is_none(), "{s}");
}

/// The setting and the feature flag are Miroir's own state: they survive a restart of the
/// admin (separate admin and data plane processes), and the data plane keeps hydrating.
#[test]
fn foreign_keys_survive_an_admin_restart() {
    let mut d = Deployment::start(
        &ClusterSpec {
            shards: 16,
            ..ClusterSpec::default()
        },
        &DeploymentOptions::default(),
    );
    let http = d.http();
    load(&http);
    enable(&http, true);
    task(
        &http,
        http.send_json(
            "PATCH",
            "/indexes/books/settings",
            &json!({"foreignKeys": keys()}),
        )
        .unwrap(),
    );
    let want = expected();
    let hydrated_now = |http: &Client| {
        try_wait_until(within(Duration::from_secs(30)), || {
            by_id(&search_all(http)["hits"]) == want
        })
        .is_some()
    };
    assert!(hydrated_now(&http), "{}", search_all(&http));

    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    let http = d.http();
    assert_eq!(
        http.get("/indexes/books/settings/foreign-keys")
            .unwrap()
            .json(),
        keys()
    );
    assert_eq!(
        http.get("/indexes/books/settings").unwrap().json()["foreignKeys"],
        keys()
    );
    // A change published by the restarted admin carries the flag and the setting too.
    task(
        &http,
        http.send_json(
            "PATCH",
            "/indexes/books/settings",
            &json!({"stopWords": ["the"]}),
        )
        .unwrap(),
    );
    assert!(hydrated_now(&http), "{}", search_all(&http));
}
