//! Conformance suite: drives a test node (or the real Meilisearch at `MEILI_URL`, with
//! `MEILI_MASTER_KEY` for the auth tests) over HTTP and asserts Meilisearch's exact response
//! shapes. Test-node-only parts (task uids from 0, faults, restart, canned search) live in
//! `testnode_only.rs`.

mod common;

use common::{is_duration, is_timestamp, is_uuid_v7, unique, RespExt, Server};
use miroir_testkit::tenant_token;
use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "red", "blue", "green", "quick", "brown", "fox", "lazy", "dog", "night", "star", "river",
    "stone", "winter", "summer", "ocean", "forest",
];
const GENRES: &[&str] = &["Drama", "Comedy", "Horror", "Action", "Sci-Fi"];

fn doc(i: usize) -> Value {
    let title = format!(
        "{} {} {}",
        WORDS[i % 16],
        WORDS[(i / 16) % 16],
        WORDS[(i * 7 + 3) % 16]
    );
    json!({"id": i, "title": title, "genre": GENRES[i % 5], "year": 1950 + (i % 70), "price": (i % 100) as f64 + 0.5})
}

fn ndjson(docs: &[Value]) -> Vec<u8> {
    docs.iter()
        .map(|d| serde_json::to_string(d).unwrap() + "\n")
        .collect::<String>()
        .into_bytes()
}

fn csv(docs: &[Value]) -> Vec<u8> {
    let mut s = String::from("id:number,title,genre,year:number,price:number\n");
    for d in docs {
        s.push_str(&format!(
            "{},\"{}\",{},{},{}\n",
            d["id"],
            d["title"].as_str().unwrap(),
            d["genre"].as_str().unwrap(),
            d["year"],
            d["price"]
        ));
    }
    s.into_bytes()
}

/// An index with 1 000 documents added as JSON (400), NDJSON (300) and CSV (300).
fn corpus(s: &Server, settings: Value) -> String {
    let ix = unique("movies");
    let t = s.task(s.post("/indexes", json!({"uid": ix, "primaryKey": "id"})));
    assert_eq!(t["status"], "succeeded", "{t}");
    if !settings.is_null() {
        let t = s.task(s.patch(&format!("/indexes/{ix}/settings"), settings));
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let docs: Vec<Value> = (0..1000).map(doc).collect();
    let path = format!("/indexes/{ix}/documents");
    let r = s.task(s.post(&path, Value::Array(docs[..400].to_vec())));
    assert_eq!(
        r["details"],
        json!({"receivedDocuments": 400, "indexedDocuments": 400})
    );
    let r = s.task(s.raw(
        "POST",
        &path,
        Some(("application/x-ndjson", &ndjson(&docs[400..700]))),
        s.key.as_deref(),
    ));
    assert_eq!(
        r["details"],
        json!({"receivedDocuments": 300, "indexedDocuments": 300}),
        "{r}"
    );
    let r = s.task(s.raw(
        "PUT",
        &path,
        Some(("text/csv", &csv(&docs[700..]))),
        s.key.as_deref(),
    ));
    assert_eq!(
        r["details"],
        json!({"receivedDocuments": 300, "indexedDocuments": 300}),
        "{r}"
    );
    ix
}

#[test]
fn tasks_have_meilisearch_shapes() {
    let s = Server::start();
    let ix = unique("tasks");
    let r = s.post("/indexes", json!({"uid": ix}));
    assert_eq!(r.status, 202);
    assert_eq!(
        r.ordered().keys(),
        ["taskUid", "indexUid", "status", "type", "enqueuedAt"]
    );
    let sum = r.json();
    assert_eq!(
        (
            sum["status"].as_str(),
            sum["type"].as_str(),
            sum["indexUid"].as_str()
        ),
        (Some("enqueued"), Some("indexCreation"), Some(ix.as_str()))
    );
    assert!(is_timestamp(&sum["enqueuedAt"]), "{sum}");
    let uid = sum["taskUid"].as_u64().unwrap();
    s.wait(uid);
    let t = s.get(&format!("/tasks/{uid}"));
    assert_eq!(
        t.ordered().keys(),
        [
            "uid",
            "batchUid",
            "indexUid",
            "status",
            "type",
            "canceledBy",
            "details",
            "error",
            "duration",
            "enqueuedAt",
            "startedAt",
            "finishedAt"
        ]
    );
    let t = t.json();
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["details"], json!({"primaryKey": null}));
    assert!(t["error"].is_null() && t["canceledBy"].is_null() && t["batchUid"].is_u64());
    assert!(is_duration(&t["duration"]), "{t}");
    for k in ["enqueuedAt", "startedAt", "finishedAt"] {
        assert!(is_timestamp(&t[k]), "{k}: {t}");
    }
    let b = s.get(&format!("/batches/{}", t["batchUid"]));
    assert_eq!(b.status, 200);
    let bo = b.ordered();
    assert_eq!(
        bo.keys(),
        [
            "uid",
            "progress",
            "details",
            "stats",
            "duration",
            "startedAt",
            "finishedAt",
            "batchStrategy"
        ]
    );
    assert_eq!(
        &bo.at("stats").keys()[..4],
        ["totalNbTasks", "status", "types", "indexUids"]
    );
    assert_eq!(
        b.json()["batchStrategy"],
        format!("created batch containing only task with id {uid} of type `indexCreation` that cannot be batched with any other task.")
    );

    // A second task fails asynchronously: the index exists.
    let f = s.task(s.post("/indexes", json!({"uid": ix})));
    assert_eq!(f["status"], "failed");
    assert_eq!(f["error"]["code"], "index_already_exists");
    assert_eq!(f["error"]["type"], "invalid_request");

    // Listing: newest first, filters, from/next pagination.
    let l = s.get(&format!("/tasks?indexUids={ix}&limit=1"));
    assert_eq!(
        l.ordered().keys(),
        ["results", "total", "limit", "from", "next"]
    );
    let l = l.json();
    assert_eq!(l["total"], 2);
    assert_eq!(l["results"][0]["uid"], f["uid"]);
    assert_eq!(l["from"], f["uid"]);
    assert_eq!(l["next"], uid);
    let l2 = s
        .get(&format!("/tasks?indexUids={ix}&limit=1&from={}", l["next"]))
        .json();
    assert_eq!(l2["results"][0]["uid"], uid);
    assert!(l2["next"].is_null());
    let failed = s
        .get(&format!(
            "/tasks?indexUids={ix}&statuses=failed&types=indexCreation"
        ))
        .json();
    assert_eq!(failed["total"], 1);
    let rev = s.get(&format!("/tasks?indexUids={ix}&reverse=true")).json();
    assert_eq!(rev["results"][0]["uid"], uid);
    s.get("/tasks?statuses=bogus")
        .error(400, "invalid_task_statuses");
    s.get("/tasks/999999999").error(404, "task_not_found");
    let e = s.get("/tasks/abc").error(400, "invalid_task_uids");
    assert_eq!(
        e["message"],
        "Task uid `abc` is invalid. It should only contain numeric characters."
    );

    // Deleting finished tasks records the client's filter verbatim. Task deletion and
    // cancelation answer 200 (not 202) with the usual summary.
    let q = format!("?uids={}&indexUids={ix}", f["uid"]);
    let d = s.task_200(s.delete(&format!("/tasks{q}")));
    assert_eq!(d["type"], "taskDeletion");
    assert!(d["indexUid"].is_null());
    assert_eq!(
        d["details"],
        json!({"matchedTasks": 1, "deletedTasks": 1, "originalFilter": q})
    );
    s.get(&format!("/tasks/{}", f["uid"]))
        .error(404, "task_not_found");
    s.delete("/tasks").error(400, "missing_task_filters");
    s.req("POST", "/tasks/cancel", None)
        .error(400, "missing_task_filters");
    let c = s.task_200(s.req("POST", &format!("/tasks/cancel?uids={uid}"), None));
    assert_eq!(c["type"], "taskCancelation");
    assert_eq!(
        c["details"],
        json!({"matchedTasks": 1, "canceledTasks": 0, "originalFilter": format!("?uids={uid}")})
    );
}

#[test]
fn indexes_lifecycle_and_errors() {
    let s = Server::start();
    let a = unique("idx_a");
    let b = unique("idx_b");
    s.task(s.post("/indexes", json!({"uid": a, "primaryKey": "sku"})));
    s.task(s.post("/indexes", json!({"uid": b})));
    let g = s.get(&format!("/indexes/{a}"));
    assert_eq!(
        g.ordered().keys(),
        ["uid", "createdAt", "updatedAt", "primaryKey"]
    );
    assert_eq!(g.json()["primaryKey"], "sku");
    let l = s.get("/indexes?limit=1&offset=0");
    assert_eq!(l.ordered().keys(), ["results", "offset", "limit", "total"]);
    assert_eq!(l.json()["limit"], 1);
    assert_eq!(l.json()["results"].as_array().unwrap().len(), 1);

    let t = s.task(s.patch(&format!("/indexes/{b}"), json!({"primaryKey": "code"})));
    assert_eq!(t["type"], "indexUpdate");
    assert_eq!(t["details"], json!({"primaryKey": "code"}));
    assert_eq!(s.get(&format!("/indexes/{b}")).json()["primaryKey"], "code");

    let e = s
        .post("/indexes", json!({"uid": "bad uid!"}))
        .error(400, "invalid_index_uid");
    assert_eq!(e["message"], "Invalid value at `.uid`: `bad uid!` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.");
    s.post("/indexes", json!({"primaryKey": "id"}))
        .error(400, "missing_index_uid");
    s.get("/indexes/does_not_exist_xyz")
        .error(404, "index_not_found");
    let t = s.task(s.delete("/indexes/does_not_exist_xyz"));
    assert_eq!(t["error"]["code"], "index_not_found");

    s.task(s.post(
        &format!("/indexes/{a}/documents"),
        json!([{"sku": "x1", "n": 1}, {"sku": "x2", "m": 2}]),
    ));
    let st = s.get(&format!("/indexes/{a}/stats"));
    assert_eq!(
        st.ordered().keys(),
        [
            "numberOfDocuments",
            "rawDocumentDbSize",
            "avgDocumentSize",
            "isIndexing",
            "numberOfEmbeddings",
            "numberOfEmbeddedDocuments",
            "fieldDistribution"
        ]
    );
    let st = st.json();
    assert_eq!(st["numberOfDocuments"], 2);
    assert_eq!(st["isIndexing"], false);
    assert_eq!(st["fieldDistribution"], json!({"sku": 2, "n": 1, "m": 1}));
    let gs = s.get("/stats");
    assert_eq!(
        gs.ordered().keys(),
        ["databaseSize", "usedDatabaseSize", "lastUpdate", "indexes"]
    );
    assert_eq!(gs.json()["indexes"][&a]["numberOfDocuments"], 2);

    s.post("/swap-indexes", json!([{"indexes": [a, a]}]))
        .error(400, "invalid_swap_duplicate_index_found");
    let t = s.task(s.post("/swap-indexes", json!([{"indexes": [a, b]}])));
    assert_eq!(t["type"], "indexSwap");
    assert_eq!(
        t["details"],
        json!({"swaps": [{"indexes": [a, b], "rename": false}]})
    );
    assert_eq!(
        s.get(&format!("/indexes/{b}/stats")).json()["numberOfDocuments"],
        2
    );
    assert_eq!(
        s.get(&format!("/indexes/{a}/stats")).json()["numberOfDocuments"],
        0
    );

    let t = s.task(s.delete(&format!("/indexes/{b}")));
    assert_eq!(t["details"], json!({"deletedDocuments": 2}));
    s.get(&format!("/indexes/{b}"))
        .error(404, "index_not_found");
}

/// Meilisearch 1.50's renames: `PATCH /indexes/{uid}` with `uid`, and swaps with `rename`.
#[test]
fn index_renames() {
    let s = Server::start();
    let (a, b, c, d) = (unique("ra"), unique("rb"), unique("rc"), unique("rd"));
    for ix in [&a, &c] {
        let t = s.task(s.post("/indexes", json!({"uid": ix, "primaryKey": "id"})));
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let t = s.task(s.post(&format!("/indexes/{a}/documents"), json!([{"id": 1}])));
    assert_eq!(t["status"], "succeeded", "{t}");
    s.patch(&format!("/indexes/{a}"), json!({"uid": "a b"}))
        .error(400, "invalid_index_uid");
    s.patch(&format!("/indexes/{a}"), json!({"uid": 5}))
        .error(400, "invalid_index_uid");
    // Onto an existing index: the task fails.
    let t = s.task(s.patch(&format!("/indexes/{a}"), json!({"uid": c})));
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["code"], "index_already_exists", "{t}");
    assert_eq!(
        t["error"]["message"],
        format!("Index `{c}` already exists.")
    );
    let t = s.task(s.patch(&format!("/indexes/{a}"), json!({"uid": b})));
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        t["details"],
        json!({"primaryKey": null, "oldIndexUid": a, "newIndexUid": b})
    );
    s.get(&format!("/indexes/{a}"))
        .error(404, "index_not_found");
    assert_eq!(
        s.get(&format!("/indexes/{b}/stats")).json()["numberOfDocuments"],
        1
    );
    // Swap with `rename`: onto an existing index fails, onto a free uid renames.
    let t = s.task(s.post(
        "/swap-indexes",
        json!([{"indexes": [b, c], "rename": true}]),
    ));
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["message"], format!("Cannot rename `{b}` to `{c}` as the index already exists. Hint: You can remove `{c}` first and then do your remove."));
    let t = s.task(s.post(
        "/swap-indexes",
        json!([{"indexes": [b, d], "rename": true}]),
    ));
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        t["details"],
        json!({"swaps": [{"indexes": [b, d], "rename": true}]})
    );
    s.get(&format!("/indexes/{b}"))
        .error(404, "index_not_found");
    assert_eq!(
        s.get(&format!("/indexes/{d}/stats")).json()["numberOfDocuments"],
        1
    );
}

#[test]
fn documents_in_three_formats_fetch_and_delete() {
    let s = Server::start();
    let ix = corpus(&s, json!({"filterableAttributes": ["genre", "year"]}));
    let p = format!("/indexes/{ix}/documents");
    assert_eq!(
        s.get(&format!("/indexes/{ix}/stats")).json()["numberOfDocuments"],
        1000
    );
    // CSV typing: numbers stay numbers.
    let d = s.get(&format!("{p}/750"));
    assert_eq!(d.json(), doc(750));
    assert_eq!(
        s.get(&format!("{p}/5?fields=title,year")).json(),
        json!({"title": doc(5)["title"], "year": doc(5)["year"]})
    );
    s.get(&format!("{p}/100000"))
        .error(404, "document_not_found");

    let l = s.get(&format!("{p}?offset=10&limit=5&fields=id"));
    assert_eq!(l.ordered().keys(), ["results", "offset", "limit", "total"]);
    let l = l.json();
    assert_eq!(l["total"], 1000);
    assert_eq!(
        l["results"],
        json!([{"id": 10}, {"id": 11}, {"id": 12}, {"id": 13}, {"id": 14}])
    );
    let f = s.post(&format!("{p}/fetch"), json!({"filter": "genre = Horror AND year >= 2010", "limit": 3, "fields": ["id", "genre"]})).json();
    assert_eq!(
        f["total"],
        (0..1000)
            .filter(|i| i % 5 == 2 && 1950 + (i % 70) >= 2010)
            .count()
    );
    assert_eq!(f["results"][0], json!({"id": 62, "genre": "Horror"}));
    // Document routes report the filter as written (no index prefix, no re-quoting).
    let e = s
        .post(&format!("{p}/fetch"), json!({"filter": "title = x"}))
        .error(400, "invalid_document_filter");
    assert_eq!(e["message"], "Attribute `title` is not filterable. Available filterable attribute patterns are: `genre`, `year`.\n1:6 title = x");
    let e = s
        .post(&format!("{p}/fetch"), json!({"nope": 1}))
        .error(400, "bad_request");
    assert_eq!(e["message"], "Unknown field `nope`: expected one of `offset`, `limit`, `fields`, `retrieveVectors`, `ids`, `filter`, `sort`, `useNetwork`");

    // Synchronous payload errors.
    let e = s
        .raw(
            "POST",
            &p,
            Some(("application/json", b"[{\"id\": 1,")),
            s.key.as_deref(),
        )
        .error(400, "malformed_payload");
    assert_eq!(e["message"], "The `json` payload provided is malformed. `Couldn't serialize document value: EOF while parsing an object at line 1 column 10`.");
    let e = s
        .raw(
            "POST",
            &p,
            Some(("application/json", b"12")),
            s.key.as_deref(),
        )
        .error(400, "malformed_payload");
    assert_eq!(e["message"], "The `json` payload provided is malformed. `Couldn't serialize document value: data are neither an object nor a list of objects`.");
    s.raw("POST", &p, Some(("text/plain", b"x")), s.key.as_deref())
        .error(415, "invalid_content_type");
    s.raw(
        "POST",
        &p,
        Some(("application/json", b"")),
        s.key.as_deref(),
    )
    .error(400, "missing_payload");

    // Asynchronous document errors surface as failed tasks.
    let fresh = unique("pk");
    let t = s.task(s.post(
        &format!("/indexes/{fresh}/documents"),
        json!([{"title": "no id"}]),
    ));
    assert_eq!(t["error"]["code"], "index_primary_key_no_candidate_found");
    assert_eq!(
        t["details"],
        json!({"receivedDocuments": 1, "indexedDocuments": 0})
    );
    // The failed first addition still created the index (without a primary key).
    let g = s.get(&format!("/indexes/{fresh}")).json();
    assert!(g["primaryKey"].is_null(), "{g}");
    assert_eq!(
        s.get(&format!("/indexes/{fresh}/stats")).json()["numberOfDocuments"],
        0
    );
    let t = s.task(s.post(
        &format!("/indexes/{fresh}/documents"),
        json!([{"id": 1, "author_id": 2}]),
    ));
    assert_eq!(
        t["error"]["code"],
        "index_primary_key_multiple_candidates_found"
    );
    let t = s.task(s.post(
        &format!("/indexes/{fresh}/documents"),
        json!([{"bookId": "a b"}]),
    ));
    assert_eq!(t["error"]["code"], "invalid_document_id");
    let t = s.task(s.post(
        &format!("/indexes/{fresh}/documents"),
        json!([{"bookId": "ok-1"}, {"title": "x"}]),
    ));
    assert_eq!(t["error"]["code"], "missing_document_id");
    let t = s.task(s.post(
        &format!("/indexes/{fresh}/documents?primaryKey=code"),
        json!({"code": 7, "title": "single object"}),
    ));
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        s.get(&format!("/indexes/{fresh}")).json()["primaryKey"],
        "code"
    );
    // PUT merges, POST replaces.
    s.task(s.put(
        &format!("/indexes/{fresh}/documents"),
        json!([{"code": 7, "extra": true}]),
    ));
    assert_eq!(
        s.get(&format!("/indexes/{fresh}/documents/7")).json(),
        json!({"code": 7, "title": "single object", "extra": true})
    );
    s.task(s.post(&format!("/indexes/{fresh}/documents"), json!([{"code": 7}])));
    assert_eq!(
        s.get(&format!("/indexes/{fresh}/documents/7")).json(),
        json!({"code": 7})
    );

    // Deletions.
    let t = s.task(s.delete(&format!("{p}/0")));
    assert_eq!(
        (t["type"].as_str(), &t["details"]),
        (
            Some("documentDeletion"),
            &json!({"providedIds": 1, "deletedDocuments": 1, "originalFilter": null})
        )
    );
    let t = s.task(s.post(&format!("{p}/delete-batch"), json!([1, "2", 99999])));
    assert_eq!(
        t["details"],
        json!({"providedIds": 3, "deletedDocuments": 2, "originalFilter": null})
    );
    let t = s.task(s.post(&format!("{p}/delete"), json!({"filter": "genre = Drama"})));
    assert_eq!(
        t["details"],
        json!({"providedIds": 0, "deletedDocuments": 199, "originalFilter": "\"genre = Drama\""})
    );
    assert_eq!(
        s.get(&format!("/indexes/{ix}/stats")).json()["numberOfDocuments"],
        1000 - 3 - 199
    );
    let t = s.task(s.delete(&p));
    assert_eq!(t["details"], json!({"deletedDocuments": 798}));
    assert_eq!(s.get(&p).json()["total"], 0);
}

#[test]
fn settings_defaults_round_trip_and_reset() {
    let s = Server::start();
    let ix = unique("settings");
    s.task(s.post("/indexes", json!({"uid": ix})));
    let p = format!("/indexes/{ix}/settings");
    let d = s.get(&p);
    let keys = d
        .ordered()
        .keys()
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>();
    for k in [
        "displayedAttributes",
        "searchableAttributes",
        "filterableAttributes",
        "sortableAttributes",
        "rankingRules",
        "stopWords",
        "nonSeparatorTokens",
        "separatorTokens",
        "dictionary",
        "synonyms",
        "distinctAttribute",
        "proximityPrecision",
        "typoTolerance",
        "faceting",
        "pagination",
        "embedders",
        "searchCutoffMs",
        "localizedAttributes",
        "facetSearch",
        "prefixSearch",
    ] {
        assert!(keys.contains(&k.to_string()), "missing {k} in {keys:?}");
    }
    let d = d.json();
    assert_eq!(
        d["rankingRules"],
        json!([
            "words",
            "typo",
            "proximity",
            "attributeRank",
            "sort",
            "wordPosition",
            "exactness"
        ])
    );
    assert_eq!(
        d["faceting"],
        json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}})
    );
    assert_eq!(d["pagination"], json!({"maxTotalHits": 1000}));
    assert_eq!(
        d["typoTolerance"]["minWordSizeForTypos"],
        json!({"oneTypo": 5, "twoTypos": 9})
    );
    assert_eq!(d["displayedAttributes"], json!(["*"]));
    assert!(d["distinctAttribute"].is_null());

    // Sortable attributes are a set: stored (and shown in the task) sorted; filterable
    // attributes keep the client's order.
    let update = json!({"filterableAttributes": ["genre", "author"], "sortableAttributes": ["year", "price", "title"], "stopWords": ["the"], "synonyms": {"car": ["auto"]}, "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 4}}, "pagination": {"maxTotalHits": 50}});
    let t = s.task(s.patch(&p, update.clone()));
    assert_eq!(t["type"], "settingsUpdate");
    let mut sorted = update.clone();
    sorted["sortableAttributes"] = json!(["price", "title", "year"]);
    assert_eq!(t["details"], sorted);
    assert_eq!(
        s.get(&format!("{p}/sortable-attributes")).json(),
        json!(["price", "title", "year"])
    );
    let now = s.get(&p).json();
    assert_eq!(now["filterableAttributes"], json!(["genre", "author"]));
    assert_eq!(
        now["typoTolerance"]["minWordSizeForTypos"],
        json!({"oneTypo": 4, "twoTypos": 9})
    );
    assert_eq!(now["pagination"], json!({"maxTotalHits": 50}));

    // Sub-routes: PUT for lists, PATCH for objects, DELETE resets.
    s.task(s.put(
        &format!("{p}/searchable-attributes"),
        json!(["title", "genre"]),
    ));
    assert_eq!(
        s.get(&format!("{p}/searchable-attributes")).json(),
        json!(["title", "genre"])
    );
    s.task(s.patch(
        &format!("{p}/faceting"),
        json!({"sortFacetValuesBy": {"genre": "count"}}),
    ));
    assert_eq!(
        s.get(&format!("{p}/faceting")).json(),
        json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha", "genre": "count"}})
    );
    let t = s.task(s.delete(&format!("{p}/stop-words")));
    assert_eq!(t["details"], json!({"stopWords": null}));
    assert_eq!(s.get(&format!("{p}/stop-words")).json(), json!([]));
    s.patch(&p, json!({"rankingRules": ["nope"]}))
        .error(400, "invalid_settings_ranking_rules");
    s.patch(&p, json!({"unknownSetting": 1}))
        .error(400, "bad_request");
    let e = s
        .patch(&p, json!({"filterableAttribute": ["genre"]}))
        .error(400, "bad_request");
    assert!(
        e["message"].as_str().unwrap().starts_with(
            "Unknown field `filterableAttribute`: did you mean `filterableAttributes`? expected one of `displayedAttributes`, `searchableAttributes`, `filterableAttributes`, `sortableAttributes`, `foreignKeys`, `rankingRules`,"
        ),
        "{e}"
    );
    // Sub-routes validate their body as the root value: no `.setting` in locations.
    let e = s
        .put(&format!("{p}/ranking-rules"), json!(["nope"]))
        .error(400, "invalid_settings_ranking_rules");
    assert_eq!(e["message"], "Invalid value at `[0]`: `nope` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules.");
    let e = s
        .put(&format!("{p}/distinct-attribute"), json!(12))
        .error(400, "invalid_settings_distinct_attribute");
    assert_eq!(
        e["message"],
        "Invalid value type: expected a string, but found a positive integer: `12`"
    );
    // minWordSizeForTypos: inconsistent when both sizes are given is a synchronous 400;
    // inconsistent with the current value fails the task.
    let e = s
        .patch(
            &p,
            json!({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 9, "twoTypos": 4}}}),
        )
        .error(400, "invalid_settings_typo_tolerance");
    assert_eq!(e["message"], "Invalid value at `.typoTolerance.minWordSizeForTypos`: `minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but found `oneTypo: 9` and twoTypos: 4`.");
    let t = s.task(s.patch(
        &p,
        json!({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 10}}}),
    ));
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "invalid_settings_typo_tolerance");
    assert_eq!(t["error"]["message"], format!("Index `{ix}`: `minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but found `oneTypo: 10` and twoTypos: 9`."));
    s.task(s.delete(&p));
    assert_eq!(s.get(&p).json(), d);
    s.get("/indexes/nope_nope_nope/settings")
        .error(404, "index_not_found");
}

#[test]
fn search_filters_sort_facets_pagination() {
    let s = Server::start();
    let ix = corpus(
        &s,
        json!({"filterableAttributes": ["genre", "year", "price"], "sortableAttributes": ["year", "price"], "searchableAttributes": ["title", "genre"]}),
    );
    let p = format!("/indexes/{ix}/search");

    let r = s.post(&p, json!({"q": "fox"}));
    assert_eq!(
        r.ordered().keys(),
        [
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "requestUid"
        ]
    );
    let r = r.json();
    assert!(is_uuid_v7(&r["requestUid"]), "{r}");
    assert_eq!(
        (
            r["limit"].as_u64(),
            r["offset"].as_u64(),
            r["query"].as_str()
        ),
        (Some(20), Some(0), Some("fox"))
    );
    let expected = (0..1000)
        .filter(|i| {
            doc(*i)["title"]
                .as_str()
                .unwrap()
                .split(' ')
                .any(|w| w == "fox" || w.starts_with("fox"))
        })
        .count();
    assert_eq!(r["estimatedTotalHits"], expected);

    // Typos: "wintr" (5 letters, one typo) finds "winter"; prefix on the last word.
    let r = s.post(&p, json!({"q": "wintr", "limit": 1})).json();
    assert!(
        r["hits"][0]["title"].as_str().unwrap().contains("winter"),
        "{r}"
    );
    let r = s.post(&p, json!({"q": "summ", "limit": 1})).json();
    assert!(
        r["hits"][0]["title"].as_str().unwrap().contains("summer"),
        "{r}"
    );

    // Filters in string and array forms.
    let r = s
        .post(
            &p,
            json!({"filter": "genre = Horror AND year 1990 TO 1999", "limit": 0}),
        )
        .json();
    let want = (0..1000)
        .filter(|i| i % 5 == 2 && (1990..=1999).contains(&(1950 + i % 70)))
        .count();
    assert_eq!(r["estimatedTotalHits"], want);
    let r = s
        .post(
            &p,
            json!({"filter": [["genre = Horror", "genre = Drama"], "year < 1960"], "limit": 0}),
        )
        .json();
    let want = (0..1000)
        .filter(|i| (i % 5 == 2 || i % 5 == 0) && 1950 + i % 70 < 1960)
        .count();
    assert_eq!(r["estimatedTotalHits"], want);
    let r = s
        .post(
            &p,
            json!({"filter": "genre IN [Action, comedy] AND NOT year >= 1951", "limit": 0}),
        )
        .json();
    let want = (0..1000)
        .filter(|i| (i % 5 == 3 || i % 5 == 1) && 1950 + i % 70 < 1951)
        .count();
    assert_eq!(r["estimatedTotalHits"], want);
    // Searches report filter errors against a canonical, quoted rendering of the filter.
    let e = s
        .post(&p, json!({"filter": "genre = Drama AND title = x"}))
        .error(400, "invalid_search_filter");
    assert_eq!(e["message"], format!("Index `{ix}`: Attribute `title` is not filterable. Available filterable attribute patterns are: `genre`, `price`, `year`.\n27:32 (\"genre\" = \"Drama\") AND (\"title\" = \"x\")"));
    let e = s
        .post(&p, json!({"filter": "genre ="}))
        .error(400, "invalid_search_filter");
    assert_eq!(
        e["message"],
        "Was expecting a value but instead got nothing.\n8:8 genre ="
    );

    // Sort (placeholder search: sort decides alone).
    let r = s.post(&p, json!({"sort": ["year:desc", "price:asc"], "limit": 3, "attributesToRetrieve": ["id", "year", "price"]})).json();
    let hits = r["hits"].as_array().unwrap();
    assert_eq!(hits[0]["year"], 2019);
    assert!(hits[0]["price"].as_f64() <= hits[1]["price"].as_f64());
    assert_eq!(hits[0].as_object().unwrap().len(), 3);
    let e = s
        .post(&p, json!({"sort": ["title:asc"]}))
        .error(400, "invalid_search_sort");
    assert_eq!(
        e["message"],
        format!("Index `{ix}`: Attribute `title` is not sortable. Available sortable attributes are: `price, year`.")
    );

    // Facets.
    let r = s.post(&p, json!({"facets": ["genre", "price"], "limit": 0}));
    let o = r.ordered();
    assert_eq!(
        o.keys(),
        [
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "facetDistribution",
            "facetStats",
            "requestUid"
        ]
    );
    assert_eq!(
        o.at("facetDistribution").at("genre").keys(),
        ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
    );
    let r = r.json();
    assert_eq!(r["facetDistribution"]["genre"]["Drama"], 200);
    assert_eq!(r["facetStats"]["price"], json!({"min": 0.5, "max": 99.5}));
    let e = s
        .post(&p, json!({"facets": ["title"]}))
        .error(400, "invalid_search_facets");
    assert_eq!(e["message"], "Invalid facet distribution: Pattern `title` is not filterable. Available filterable attributes patterns are: `genre, price, year`.");
    // `*` is only a pattern: an error unless `*` itself is filterable.
    s.post(&p, json!({"facets": ["*"]}))
        .error(400, "invalid_search_facets");

    // Pagination: page/hitsPerPage shape, and maxTotalHits caps both modes.
    let r = s.post(
        &p,
        json!({"page": 2, "hitsPerPage": 7, "filter": "genre = Drama"}),
    );
    assert_eq!(
        r.ordered().keys(),
        [
            "hits",
            "query",
            "processingTimeMs",
            "hitsPerPage",
            "page",
            "totalPages",
            "totalHits",
            "requestUid"
        ]
    );
    let r = r.json();
    assert_eq!(
        (
            r["totalHits"].as_u64(),
            r["totalPages"].as_u64(),
            r["hits"].as_array().unwrap().len()
        ),
        (Some(200), Some(29), 7)
    );
    s.task(s.patch(
        &format!("/indexes/{ix}/settings"),
        json!({"pagination": {"maxTotalHits": 30}}),
    ));
    // maxTotalHits bounds the hits window only: the totals still count every match.
    let r = s.post(&p, json!({"offset": 25, "limit": 10})).json();
    assert_eq!(r["hits"].as_array().unwrap().len(), 5);
    assert_eq!(r["estimatedTotalHits"], 1000);
    let r = s
        .post(
            &p,
            json!({"page": 5, "hitsPerPage": 7, "filter": "genre = Drama"}),
        )
        .json();
    assert_eq!(
        (
            r["totalHits"].as_u64(),
            r["totalPages"].as_u64(),
            r["hits"].as_array().unwrap().len()
        ),
        (Some(200), Some(29), 30 - 28)
    );

    // GET search, highlighting, ranking scores.
    let r = s.get(&format!(
        "{p}?q=river&limit=2&attributesToHighlight=title&showRankingScore=true"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let o = r.ordered();
    let hit = o.at("hits").idx(0);
    assert_eq!(
        &hit.keys()[hit.keys().len() - 2..],
        ["_formatted", "_rankingScore"]
    );
    let r = r.json();
    assert!(
        r["hits"][0]["_formatted"]["title"]
            .as_str()
            .unwrap()
            .contains("<em>river</em>"),
        "{r}"
    );
    // `_formatted` renders every field, numbers as strings.
    let f = &r["hits"][0]["_formatted"];
    assert_eq!(f["id"], json!(r["hits"][0]["id"].to_string()));
    assert!(f["price"].is_string() && f["year"].is_string(), "{f}");
    let score = r["hits"][0]["_rankingScore"].as_f64().unwrap();
    let m = s.post(&p, json!({"q": "river", "limit": 1, "showMatchesPosition": true, "attributesToRetrieve": ["title"]})).json();
    let title = m["hits"][0]["title"].as_str().unwrap();
    let pos = &m["hits"][0]["_matchesPosition"]["title"][0];
    let start = pos["start"].as_u64().unwrap() as usize;
    assert_eq!(
        &title[start..start + pos["length"].as_u64().unwrap() as usize],
        "river",
        "{m}"
    );
    assert!((0.0..=1.0).contains(&score));
}

#[test]
fn ranking_score_details_follow_ranking_rules() {
    let s = Server::start();
    let ix = unique("rank");
    s.task(s.patch(
        &format!("/indexes/{ix}/settings"),
        json!({"sortableAttributes": ["n"], "searchableAttributes": ["t"]}),
    ));
    s.task(s.post(
        &format!("/indexes/{ix}/documents"),
        json!([
            {"id": 1, "t": "dark night sky", "n": 3},
            {"id": 2, "t": "dark night", "n": 2},
            {"id": 3, "t": "night of the dark", "n": 1},
            {"id": 4, "t": "dark", "n": 0},
        ]),
    ));
    let r = s.post(&format!("/indexes/{ix}/search"), json!({"q": "dark night", "sort": ["n:asc"], "showRankingScore": true, "showRankingScoreDetails": true}));
    let o = r.ordered();
    let det = o.at("hits").idx(0).at("_rankingScoreDetails");
    assert_eq!(
        det.keys(),
        [
            "words",
            "typo",
            "proximity",
            "attributeRank",
            "n:asc",
            "wordPosition",
            "exactness"
        ]
    );
    assert_eq!(
        det.at("words").keys(),
        ["order", "matchingWords", "maxMatchingWords", "score"]
    );
    assert_eq!(
        det.at("typo").keys(),
        ["order", "typoCount", "maxTypoCount", "score"]
    );
    assert_eq!(det.at("proximity").keys(), ["order", "score"]);
    assert_eq!(det.at("attributeRank").keys(), ["order", "score"]);
    assert_eq!(det.at("wordPosition").keys(), ["order", "score"]);
    assert_eq!(det.at("n:asc").keys(), ["order", "value"]);
    let r = r.json();
    let ids: Vec<u64> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    // Both words, no typo, adjacent (1, 2) before the far pair (3); then the one-word match.
    assert_eq!(ids, [2, 1, 3, 4]);
    let scores: Vec<f64> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_rankingScore"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(
        r["hits"][0]["_rankingScoreDetails"]["words"],
        json!({"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0})
    );
    assert_eq!(
        r["hits"][3]["_rankingScoreDetails"]["words"]["matchingWords"],
        1
    );
    // matchingStrategy all drops the one-word match.
    let r = s
        .post(
            &format!("/indexes/{ix}/search"),
            json!({"q": "dark night", "matchingStrategy": "all"}),
        )
        .json();
    assert_eq!(r["estimatedTotalHits"], 3);

    // The pre-1.50 `attribute` rule is still accepted and reported as one combined entry.
    s.task(s.put(
        &format!("/indexes/{ix}/settings/ranking-rules"),
        json!([
            "words",
            "typo",
            "proximity",
            "attribute",
            "sort",
            "exactness"
        ]),
    ));
    let r = s.post(
        &format!("/indexes/{ix}/search"),
        json!({"q": "dark night", "limit": 1, "showRankingScoreDetails": true}),
    );
    let o = r.ordered();
    let det = o.at("hits").idx(0).at("_rankingScoreDetails");
    assert_eq!(
        det.keys(),
        ["words", "typo", "proximity", "attribute", "exactness"]
    );
    assert_eq!(
        det.at("attribute").keys(),
        [
            "order",
            "attributeRankingOrderScore",
            "queryWordDistanceScore",
            "score"
        ]
    );
}

#[test]
fn multi_search_and_facet_search() {
    let s = Server::start();
    let ix = unique("ms");
    s.task(s.patch(
        &format!("/indexes/{ix}/settings"),
        json!({"filterableAttributes": ["color"]}),
    ));
    s.task(s.post(&format!("/indexes/{ix}/documents"), json!([
        {"id": 1, "name": "apple", "color": "Red"}, {"id": 2, "name": "cherry", "color": "red"},
        {"id": 3, "name": "banana", "color": "Yellow"}, {"id": 4, "name": "lime", "color": "green"},
    ])));
    let r = s.post("/multi-search", json!({"queries": [{"indexUid": ix, "q": "apple"}, {"indexUid": ix, "filter": "color = red", "limit": 1}]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let o = r.ordered();
    assert_eq!(o.keys(), ["results"]);
    let first = o.at("results").idx(0).keys();
    assert_eq!(first[0], "indexUid");
    assert_eq!(first[first.len() - 1], "requestUid");
    let r = r.json();
    // One request, one uid shared by its results.
    assert!(is_uuid_v7(&r["results"][0]["requestUid"]), "{r}");
    assert_eq!(r["results"][0]["requestUid"], r["results"][1]["requestUid"]);
    assert_eq!(r["results"][0]["hits"][0]["id"], 1);
    assert_eq!(r["results"][1]["estimatedTotalHits"], 2);
    // A missing index inside a multi-search is a 400 (a 404 on the single-index route).
    let e = s
        .post(
            "/multi-search",
            json!({"queries": [{"indexUid": "missing_index_zz"}]}),
        )
        .error(400, "index_not_found");
    assert_eq!(
        e["message"],
        "Inside `.queries[0]`: Index `missing_index_zz` not found."
    );
    let e = s
        .post("/multi-search", json!({"queries": [{"q": "x"}]}))
        .error(400, "missing_index_uid");
    assert_eq!(
        e["message"],
        "Missing field `indexUid` inside `.queries[0]`"
    );
    let e = s
        .post(
            "/multi-search",
            json!({"queries": [{"indexUid": ix, "limit": "x"}]}),
        )
        .error(400, "invalid_search_limit");
    assert_eq!(e["message"], "Invalid value type at `.queries[0].limit`: expected a positive integer, but found a string: `\"x\"`");
    let e = s
        .post(
            "/multi-search",
            json!({"queries": [{"indexUid": ix, "matchingStrategy": "lastt"}]}),
        )
        .error(400, "invalid_search_matching_strategy");
    assert_eq!(e["message"], "Unknown value `lastt` at `.queries[0].matchingStrategy`: did you mean `last`? expected one of `last`, `all`, `frequency`");

    let f = s.post(
        &format!("/indexes/{ix}/facet-search"),
        json!({"facetName": "color", "facetQuery": "re"}),
    );
    assert_eq!(
        f.ordered().keys(),
        ["facetHits", "facetQuery", "processingTimeMs"]
    );
    let f = f.json();
    assert_eq!(f["facetHits"].as_array().unwrap().len(), 1);
    assert_eq!(f["facetHits"][0]["count"], 2);

    // sortFacetValuesBy count: equal counts come greatest value first (strings by
    // normalized value, numbers numerically); facet search only sees string values.
    let fx = unique("facet_order");
    s.task(s.patch(
        &format!("/indexes/{fx}/settings"),
        json!({"filterableAttributes": ["g", "n"], "faceting": {"sortFacetValuesBy": {"*": "count"}}}),
    ));
    s.task(s.post(&format!("/indexes/{fx}/documents"), json!([
        {"id": 1, "g": "b", "n": 1}, {"id": 2, "g": "a", "n": 2}, {"id": 3, "g": "c", "n": 1},
        {"id": 4, "g": "a", "n": 3}, {"id": 5, "g": "b", "n": 5}, {"id": 6, "g": "d", "n": 2},
        {"id": 7, "g": "B", "n": 2}, {"id": 8, "n": 10}, {"id": 9, "n": 9}, {"id": 10, "n": 10.5},
        {"id": 11, "n": 9},
    ])));
    let r = s.post(
        &format!("/indexes/{fx}/search"),
        json!({"limit": 0, "facets": ["g", "n"]}),
    );
    let o = r.ordered();
    assert_eq!(
        o.at("facetDistribution").at("g").keys(),
        ["b", "a", "d", "c"]
    );
    assert_eq!(
        o.at("facetDistribution").at("n").keys(),
        ["2", "9", "1", "10.5", "10", "5", "3"]
    );
    let f = s
        .post(
            &format!("/indexes/{fx}/facet-search"),
            json!({"facetName": "n"}),
        )
        .json();
    assert_eq!(f["facetHits"], json!([]));
    let f = s
        .post(
            &format!("/indexes/{fx}/facet-search"),
            json!({"facetName": "g"}),
        )
        .json();
    assert_eq!(f["facetHits"][0], json!({"value": "b", "count": 3}));
    s.post(
        &format!("/indexes/{ix}/facet-search"),
        json!({"facetName": "name"}),
    )
    .error(400, "invalid_facet_search_facet_name");
}

#[test]
fn health_version_and_unknown_routes() {
    let s = Server::start();
    assert_eq!(s.get("/health").json(), json!({"status": "available"}));
    let v = s.get("/version");
    assert_eq!(
        v.ordered().keys(),
        ["commitSha", "commitDate", "pkgVersion"]
    );
    assert!(v.json()["pkgVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(s.get("/definitely/not/a/route").status, 404);
}

#[test]
fn keys_and_auth() {
    let s = Server::start_with_key();
    let master = s.key.clone().unwrap();
    assert_eq!(
        s.raw("GET", "/indexes", None, None)
            .error(401, "missing_authorization_header")["type"],
        "auth"
    );
    s.raw("GET", "/indexes", None, Some("wrong"))
        .error(403, "invalid_api_key");
    assert_eq!(s.raw("GET", "/health", None, None).status, 200);

    let l = s.get("/keys");
    assert_eq!(l.ordered().keys(), ["results", "offset", "limit", "total"]);
    let l = l.json();
    let names: Vec<&str> = l["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    for n in [
        "Default Search API Key",
        "Default Admin API Key",
        "Default Read-Only Admin API Key",
        "Default Chat API Key",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    let search_key = l["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Default Search API Key")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();

    // Caller-chosen uid: the key is HMAC-SHA256(master, uid), lowercase hex. (Removed first
    // in case an interrupted run against a shared server left it behind.)
    let uid = "6062abda-a5aa-4414-ac91-ecd7944c0f8d";
    s.delete(&format!("/keys/{uid}"));
    let r = s.post("/keys", json!({"uid": uid, "name": "docs", "description": null, "actions": ["documents.add", "documents.get", "search"], "indexes": ["books*"], "expiresAt": null}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.ordered().keys(),
        [
            "name",
            "description",
            "key",
            "uid",
            "actions",
            "indexes",
            "expiresAt",
            "createdAt",
            "updatedAt"
        ]
    );
    let created = r.json();
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(master.as_bytes()).unwrap();
    mac.update(uid.as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(created["key"], want);
    s.post(
        "/keys",
        json!({"uid": uid, "actions": ["search"], "indexes": ["*"], "expiresAt": null}),
    )
    .error(409, "api_key_already_exists");
    s.post(
        "/keys",
        json!({"actions": ["fly"], "indexes": ["*"], "expiresAt": null}),
    )
    .error(400, "invalid_api_key_actions");

    // Actions and index patterns are enforced.
    let k = want.as_str();
    let books = unique("books");
    let r = s.raw(
        "POST",
        &format!("/indexes/{books}/documents"),
        Some(("application/json", b"[{\"id\":1}]")),
        Some(k),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    // Without `indexes.create` the key cannot create the index by writing to it.
    let t = s.wait(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["error"]["code"], "index_not_found", "{t}");
    s.task(s.post("/indexes", json!({"uid": books})));
    let r = s.raw(
        "POST",
        &format!("/indexes/{books}/documents"),
        Some(("application/json", b"[{\"id\":1}]")),
        Some(k),
    );
    let t = s.wait(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        s.raw(
            "POST",
            &format!("/indexes/{books}/search"),
            Some(("application/json", b"{}")),
            Some(k)
        )
        .status,
        200
    );
    s.raw(
        "POST",
        "/indexes/movies/search",
        Some(("application/json", b"{}")),
        Some(k),
    )
    .error(403, "invalid_api_key");
    s.raw("DELETE", &format!("/indexes/{books}"), None, Some(k))
        .error(403, "invalid_api_key");
    assert_eq!(
        s.raw(
            "POST",
            &format!("/indexes/{books}/search"),
            Some(("application/json", b"{}")),
            Some(&search_key)
        )
        .status,
        200
    );
    s.raw("GET", "/keys", None, Some(&search_key))
        .error(403, "invalid_api_key");

    // Tenant tokens: signed with a key, they grant search on their rules' indexes, with the
    // rule's filter applied on top of the client's.
    s.task(s.patch(
        &format!("/indexes/{books}/settings"),
        json!({"filterableAttributes": ["id"]}),
    ));
    s.task(s.post(
        &format!("/indexes/{books}/documents"),
        json!([{"id": 2}, {"id": 3}]),
    ));
    let search_uid = l["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Default Search API Key")
        .unwrap()["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let token = tenant_token(
        &search_key,
        &json!({"apiKeyUid": search_uid, "searchRules": {books.clone(): {"filter": "id >= 2"}}, "exp": null}),
    );
    let r = s.raw(
        "POST",
        &format!("/indexes/{books}/search"),
        Some(("application/json", br#"{"filter": "id != 3"}"#)),
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["hits"], json!([{"id": 2}]));
    s.raw(
        "POST",
        "/indexes/other/search",
        Some(("application/json", b"{}")),
        Some(&token),
    )
    .error(403, "invalid_api_key");
    s.raw(
        "GET",
        &format!("/indexes/{books}/documents"),
        None,
        Some(&token),
    )
    .error(403, "invalid_api_key");
    let forged = tenant_token(
        "not-the-key",
        &json!({"apiKeyUid": search_uid, "searchRules": ["*"]}),
    );
    s.raw(
        "POST",
        &format!("/indexes/{books}/search"),
        Some(("application/json", b"{}")),
        Some(&forged),
    )
    .error(403, "invalid_api_key");

    // Update (name/description only), get by key or uid, delete.
    let u = s.patch(&format!("/keys/{uid}"), json!({"name": "renamed"}));
    assert_eq!(u.status, 200);
    assert_eq!(s.get(&format!("/keys/{k}")).json()["name"], "renamed");
    s.patch(&format!("/keys/{uid}"), json!({"actions": ["*"]}))
        .error(400, "immutable_api_key_actions");
    assert_eq!(s.delete(&format!("/keys/{uid}")).status, 204);
    s.get(&format!("/keys/{uid}"))
        .error(404, "api_key_not_found");
    s.raw("GET", &format!("/indexes/{books}"), None, Some(k))
        .error(403, "invalid_api_key");
}

#[test]
fn experimental_features_dumps_and_snapshots() {
    let s = Server::start();
    let f = s.get("/experimental-features").json();
    assert_eq!(f["metrics"], false, "{f}");
    let p = s.patch("/experimental-features", json!({"metrics": true}));
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.json()["metrics"], true);
    assert_eq!(s.get("/experimental-features").json()["metrics"], true);
    s.patch("/experimental-features", json!({"metrics": false}));
    s.patch("/experimental-features", json!({"noSuchFeature": true}))
        .error(400, "bad_request");

    let d = s.task(s.req("POST", "/dumps", None));
    assert_eq!(
        (d["type"].as_str(), d["status"].as_str()),
        (Some("dumpCreation"), Some("succeeded")),
        "{d}"
    );
    assert!(d["indexUid"].is_null());
    assert!(d["details"]["dumpUid"].is_string(), "{d}");
    let sn = s.task(s.req("POST", "/snapshots", None));
    assert_eq!(
        (sn["type"].as_str(), sn["status"].as_str()),
        (Some("snapshotCreation"), Some("succeeded")),
        "{sn}"
    );
    if let Some(pid) = s.pid() {
        // In-memory test nodes export under a per-process temp directory.
        let dir = std::env::temp_dir().join(format!("miroir-testnode-exports-{pid}"));
        assert!(dir.join("dumps").is_dir() && dir.join("snapshots").is_dir());
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Request validation and error wording that SDKs and users see, as Meilisearch 1.50 words
/// them (each message below was observed on a real 1.50.0).
#[test]
fn validation_errors_match_meilisearch() {
    let s = Server::start();
    let ix = unique("errs");
    s.task(s.patch(
        &format!("/indexes/{ix}/settings"),
        json!({"filterableAttributes": ["g"], "sortableAttributes": ["n"]}),
    ));
    s.task(s.post(
        &format!("/indexes/{ix}/documents"),
        json!([{"id": 1, "g": "a", "n": 3, "t": "one two three four"}, {"id": 2, "g": "b", "n": 1}, {"id": 3, "n": 2}]),
    ));
    let docs = format!("/indexes/{ix}/documents");
    let search = format!("/indexes/{ix}/search");
    let msg = |r: common::Resp, status: u16, code: &str| -> String {
        r.error(status, code)["message"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Unknown fields and parameters, with deserr's "did you mean".
    assert_eq!(
        msg(s.post(&search, json!({"filtr": "g = a"})), 400, "bad_request"),
        format!(
            "Unknown field `filtr`: did you mean `filter`? expected one of {}",
            "`q`, `offset`, `limit`, `page`, `hitsPerPage`, `attributesToRetrieve`, `attributesToCrop`, `cropLength`, `cropMarker`, `attributesToHighlight`, `highlightPreTag`, `highlightPostTag`, `showMatchesPosition`, `filter`, `sort`, `distinct`, `facets`, `matchingStrategy`, `attributesToSearchOn`, `rankingScoreThreshold`, `locales`, `hybrid`, `vector`, `retrieveVectors`, `media`, `personalize`, `useNetwork`, `showRankingScore`, `showRankingScoreDetails`, `showPerformanceDetails`"
        )
    );
    assert_eq!(
        msg(s.get(&format!("{docs}?fitler=x")), 400, "bad_request"),
        "Unknown parameter `fitler`: did you mean `filter`? expected one of `offset`, `limit`, `fields`, `retrieveVectors`, `ids`, `filter`, `sort`, `useNetwork`"
    );
    assert_eq!(
        msg(s.get("/tasks?fromm=1"), 400, "bad_request"),
        "Unknown parameter `fromm`: did you mean `from`? expected one of `limit`, `from`, `reverse`, `batchUids`, `uids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`"
    );
    assert_eq!(
        msg(
            s.post(
                &format!("{docs}/delete"),
                json!({"filter": "g = a", "foo": 1})
            ),
            400,
            "bad_request"
        ),
        "Unknown field `foo`: expected one of `filter`"
    );
    assert_eq!(
        msg(
            s.post(
                "/swap-indexes",
                json!([{"indexes": [ix, "other"], "zzzz": 1}])
            ),
            400,
            "bad_request"
        ),
        "Unknown field `zzzz` inside `[0]`: expected one of `indexes`, `rename`"
    );
    assert_eq!(
        msg(s.get("/tasks?reverse=x"), 400, "invalid_task_reverse"),
        "Invalid value in parameter `reverse`: could not parse `x` as a boolean, expected either `true` or `false`"
    );
    assert_eq!(
        msg(s.post(&search, json!({"limit": -1})), 400, "invalid_search_limit"),
        "Invalid value type at `.limit`: expected a positive integer, but found a negative integer: `-1`"
    );

    // Filter syntax errors: message, span, filter.
    for (f, want) in [
        ("g Drama", "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` at `g Drama`.\n1:8 g Drama"),
        ("g = 1 AND", "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` but instead got nothing.\n10:10 g = 1 AND"),
        ("g IN [a", "Expected matching `]` after the list of field names given to `IN[`\n8:8 g IN [a"),
        ("g = 1 h = 2", "Found unexpected characters at the end of the filter: `h = 2`. You probably forgot an `OR` or an `AND` rule.\n7:12 g = 1 h = 2"),
        ("g = 'abc", "Expression `\\'abc` is missing the following closing delimiter: `'`.\n5:9 g = 'abc"),
    ] {
        assert_eq!(
            msg(s.post(&search, json!({"filter": f})), 400, "invalid_search_filter"),
            want,
            "{f}"
        );
    }
    let e = s
        .post(&search, json!({"filter": "g = 1 OR NOT t IS NOT EMPTY"}))
        .error(400, "invalid_search_filter");
    assert_eq!(e["message"], format!("Index `{ix}`: Attribute `t` is not filterable. Available filterable attribute patterns are: `g`.\n18:19 (\"g\" = \"1\") OR (\"t\" IS EMPTY)"));

    // Documents: sort (sortable attributes only), `_vectors` on request.
    let r = s
        .get(&format!(
            "{docs}?sort=n:desc&fields=id&retrieveVectors=true"
        ))
        .json();
    assert_eq!(
        r["results"],
        json!([{"id": 1, "_vectors": {}}, {"id": 3, "_vectors": {}}, {"id": 2, "_vectors": {}}])
    );
    assert_eq!(
        msg(
            s.post(&format!("{docs}/fetch"), json!({"sort": ["g:asc"]})),
            400,
            "invalid_document_sort"
        ),
        "Attribute `g` is not sortable. Available sortable attributes are: `n`."
    );
    let e = s
        .raw(
            "POST",
            &docs,
            Some(("application/x-ndjson", b"{\"id\":1}\n{bad")),
            s.key.as_deref(),
        )
        .error(400, "malformed_payload");
    assert_eq!(e["message"], "The `ndjson` payload provided is malformed. `Couldn't serialize document value: key must be a string at line 2 column 2`.");
    let e = s
        .raw(
            "POST",
            &docs,
            Some(("text/csv", b"id:number,a\nx,1")),
            s.key.as_deref(),
        )
        .error(400, "malformed_payload");
    assert_eq!(e["message"], "The `csv` payload provided is malformed: `Error parsing number \"x\" at line 1: invalid float literal`.");

    // Search extras: `facets: []` adds nothing, per-attribute crop length, `_vectors`.
    let r = s.post(&search, json!({"facets": []}));
    assert!(!r.ordered().keys().contains(&"facetDistribution"));
    let r = s
        .post(&search, json!({"q": "three", "attributesToCrop": ["t:1"], "cropMarker": "[..]", "attributesToRetrieve": ["t"], "retrieveVectors": true}))
        .json();
    assert_eq!(r["hits"][0]["_formatted"]["t"], "[..]three[..]");
    assert_eq!(r["hits"][0]["_vectors"], json!({}));

    // Batches take the task filters.
    let b = s.get(&format!("/batches?indexUids={ix}&limit=1")).json();
    assert_eq!(
        b["results"][0]["stats"]["indexUids"],
        json!({ix.clone(): 1})
    );
}

/// Miroir stores each document's shard as punctuation spelling its number
/// (`miroir_core::documents::shard_token`: `!#()*+-./;` for 0–9; repeated here because the
/// test node links no Miroir code) and keeps `searchableAttributes: ["*"]` on its nodes
/// (decision 006). That is only sound if every one of those characters is a separator: a query
/// made of them is a placeholder (matches everything), a field made of them matches no query,
/// and the values still work as string filters.
#[test]
fn shard_token_punctuation_is_never_a_word() {
    let s = Server::start();
    let ix = unique("tokens");
    let t = s.task(s.post("/indexes", json!({"uid": ix, "primaryKey": "id"})));
    assert_eq!(t["status"], "succeeded", "{t}");
    let t = s.task(s.patch(
        &format!("/indexes/{ix}/settings"),
        json!({"filterableAttributes": ["shard"]}),
    ));
    assert_eq!(t["status"], "succeeded", "{t}");
    let docs = json!([
        {"id": 1, "title": "river", "shard": "#."},
        {"id": 2, "title": "stone", "shard": "!#()*"},
        {"id": 3, "title": "ocean", "shard": "+-./;"},
    ]);
    let t = s.task(s.post(&format!("/indexes/{ix}/documents"), docs));
    assert_eq!(t["status"], "succeeded", "{t}");
    let search = |body: Value| {
        let r = s.post(&format!("/indexes/{ix}/search"), body);
        assert_eq!(r.status, 200, "{}", r.text());
        miroir_testkit::hit_ids(&r.json())
    };
    for c in "!#()*+-./;"
        .chars()
        .map(String::from)
        .chain(["#.".into(), "+-./;".into()])
    {
        assert_eq!(
            search(json!({"q": c})),
            [1, 2, 3],
            "query {c:?} is not a placeholder"
        );
    }
    // Words still match, and only in their own documents.
    assert_eq!(search(json!({"q": "river"})), [1]);
    assert_eq!(
        search(json!({"q": "", "filter": "shard IN [\"#.\", \"+-./;\"]"})),
        [1, 3]
    );
    assert_eq!(search(json!({"q": "", "filter": "shard = \"!#()*\""})), [2]);
}

/// A size as `sizeFormat=human` writes it: `4 KiB`, `1.99 KiB`, `512 B`.
fn assert_human_size(v: &Value) {
    let t = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let (num, unit) = t.split_once(' ').unwrap_or_else(|| panic!("{t}"));
    assert!(num.parse::<f64>().is_ok() && !num.ends_with('.'), "{t}");
    assert!(["B", "KiB", "MiB", "GiB"].contains(&unit), "{t}");
    if let Some((_, frac)) = num.split_once('.') {
        assert!(frac.len() <= 2 && !frac.ends_with('0'), "{t}");
    }
}

/// `showInternalDatabaseSizes` and `sizeFormat` on both stats routes (Meilisearch 1.50):
/// database sizes only when asked, numbers by default, binary-unit strings with `human`, and
/// the exact errors for bad values. (Database names and sizes are the engine's own; only their
/// presence and types are compared.)
#[test]
fn stats_size_parameters() {
    let s = Server::start();
    let ix = corpus(&s, Value::Null);
    let human = assert_human_size;
    let plain = s.get(&format!("/indexes/{ix}/stats")).json();
    assert!(plain.get("internalDatabaseSizes").is_none(), "{plain}");
    assert!(plain["rawDocumentDbSize"].is_u64());

    let raw = s
        .get(&format!(
            "/indexes/{ix}/stats?showInternalDatabaseSizes=true"
        ))
        .json();
    let dbs = raw["internalDatabaseSizes"].as_object().expect("sizes");
    assert!(
        dbs.contains_key("main") && dbs.contains_key("documents"),
        "{raw}"
    );
    assert!(dbs.values().all(Value::is_u64), "{raw}");

    let h = s
        .get(&format!(
            "/indexes/{ix}/stats?showInternalDatabaseSizes=true&sizeFormat=human"
        ))
        .json();
    human(&h["rawDocumentDbSize"]);
    human(&h["avgDocumentSize"]);
    h["internalDatabaseSizes"]
        .as_object()
        .unwrap()
        .values()
        .for_each(human);
    assert!(h["numberOfDocuments"].is_u64());

    let all = s.get("/stats?sizeFormat=human").json();
    human(&all["databaseSize"]);
    human(&all["usedDatabaseSize"]);
    human(&all["indexes"][&ix]["rawDocumentDbSize"]);
    assert!(all["indexes"][&ix].get("internalDatabaseSizes").is_none());

    for (path, code, message) in [
        (
            "/stats?sizeFormat=bogus",
            "invalid_stats_size_format",
            "Unknown value `bogus` for parameter `sizeFormat`: expected one of `human`, `raw`",
        ),
        (
            "/stats?showInternalDatabaseSizes=maybe",
            "invalid_stats_show_internal_database_sizes",
            "Invalid value in parameter `showInternalDatabaseSizes`: could not parse `maybe` as a boolean, expected either `true` or `false`",
        ),
    ] {
        for path in [path.to_string(), path.replace("/stats", &format!("/indexes/{ix}/stats"))] {
            let r = s.get(&path);
            assert_eq!(r.status, 400, "{path}");
            assert_eq!(r.json()["code"], code, "{path}");
            assert_eq!(r.json()["message"], message, "{path}");
        }
    }
}

/// `POST /indexes/{uid}/fields` (Meilisearch 1.50): each field with what the settings make of
/// it, in name order, filtered and paginated, and the body's errors. Expected values were
/// read from a real 1.50.0.
#[test]
fn index_fields_route() {
    let s = Server::start();
    let ix = unique("fields");
    let t = s.task(s.post("/indexes", json!({"uid": ix, "primaryKey": "id"})));
    assert_eq!(t["status"], "succeeded", "{t}");
    let t = s.task(s.post(
        &format!("/indexes/{ix}/documents"),
        json!([{"id": 1, "title": "river stone", "n": 3}, {"id": 2, "title": "ocean", "n": 4}]),
    ));
    assert_eq!(t["status"], "succeeded", "{t}");
    let t = s.task(s.patch(
        &format!("/indexes/{ix}/settings"),
        json!({
            "filterableAttributes": ["n", {"attributePatterns": ["ti*"], "features": {"facetSearch": true, "filter": {"equality": true, "comparison": true}}}],
            "sortableAttributes": ["n"],
            "searchableAttributes": ["title"],
            "displayedAttributes": ["id", "title"],
            "distinctAttribute": "id",
            "rankingRules": ["words", "n:desc"],
            "faceting": {"sortFacetValuesBy": {"n": "count"}},
            "localizedAttributes": [{"attributePatterns": ["title"], "locales": ["fra"]}]
        }),
    ));
    assert_eq!(t["status"], "succeeded", "{t}");
    let path = format!("/indexes/{ix}/fields");
    let off = json!({"enabled": false});
    let on = json!({"enabled": true});
    let id = json!({"name": "id", "displayed": on, "searchable": off, "sortable": off, "distinct": on,
        "rankingRule": off, "filterable": {"enabled": false, "sortBy": "alpha", "facetSearch": false, "equality": false, "comparison": false},
        "localized": {"locales": []}});
    let n = json!({"name": "n", "displayed": off, "searchable": off, "sortable": on, "distinct": off,
        "rankingRule": {"enabled": true, "order": "desc"}, "filterable": {"enabled": true, "sortBy": "count", "facetSearch": true, "equality": true, "comparison": true},
        "localized": {"locales": []}});
    let title = json!({"name": "title", "displayed": on, "searchable": on, "sortable": off, "distinct": off,
        "rankingRule": off, "filterable": {"enabled": true, "sortBy": "alpha", "facetSearch": true, "equality": true, "comparison": true},
        "localized": {"locales": ["Fra"]}});
    let r = s.post(&path, json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"results": [id, n, title.clone()], "offset": 0, "limit": 20, "total": 3})
    );
    let r = s.post(
        &path,
        json!({"offset": 1, "limit": 1, "filter": {"displayed": true}}),
    );
    assert_eq!(
        r.json(),
        json!({"results": [title.clone()], "offset": 1, "limit": 1, "total": 2})
    );
    let r = s.post(
        &path,
        json!({"filter": {"attributePatterns": ["t*"], "searchable": true}}),
    );
    assert_eq!(r.json()["results"], json!([title]));

    for (body, code, message) in [
        (json!({"bad": 1}), "bad_request", "Unknown field `bad`: expected one of `offset`, `limit`, `filter`"),
        (json!({"offset": -1}), "invalid_index_offset", "Invalid value type at `.offset`: expected a positive integer, but found a negative integer: `-1`"),
        (json!({"filter": {"bogus": true}}), "invalid_index_fields_filter", "Unknown field `bogus` inside `.filter`: expected one of `attributePatterns`, `displayed`, `searchable`, `sortable`, `distinct`, `rankingRule`, `filterable`"),
        (json!({"filter": {"searchable": "yes"}}), "invalid_index_fields_filter_searchable", "Invalid value type at `.filter.searchable`: expected a boolean, but found a string: `\"yes\"`"),
    ] {
        let r = s.post(&path, body.clone());
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["code"], code, "{body}");
        assert_eq!(r.json()["message"], message, "{body}");
    }
    let r = s.post("/indexes/no-such-index-for-fields/fields", json!({}));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "index_not_found");
}

/// `POST /indexes/{uid}/compact` (Meilisearch 1.50): an `indexCompaction` task that succeeds
/// with the database size before and after (human-formatted), documents untouched; on a
/// missing index the task fails with `index_not_found` and empty details.
#[test]
fn index_compaction_task() {
    let s = Server::start();
    let ix = corpus(&s, Value::Null);
    let r = s.post(&format!("/indexes/{ix}/compact"), Value::Null);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["type"], "indexCompaction");
    let t = s.task(r);
    assert_eq!(t["status"], "succeeded", "{t}");
    let d = t["details"].as_object().unwrap();
    assert_eq!(
        d.keys().collect::<Vec<_>>(),
        ["preCompactionSize", "postCompactionSize"]
    );
    d.values().for_each(assert_human_size);
    assert_eq!(
        s.get(&format!("/indexes/{ix}/stats")).json()["numberOfDocuments"],
        1000
    );
    let t = s.task(s.post("/indexes/no-such-index-to-compact/compact", Value::Null));
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["code"], "index_not_found");
    assert_eq!(t["details"], json!({}));
}

/// `foreignKeys` (experimental `foreignKeys`): refused while the feature is off, validated with
/// deserr's messages, echoed in its field order, shown in the settings only while the feature
/// is on. The test node stores it and never hydrates (Miroir keeps it, decision 044).
#[test]
fn foreign_keys_setting() {
    let s = Server::start();
    let ix = unique("fk");
    let settings = format!("/indexes/{ix}/settings");
    let fk = json!([{"fieldName": "author", "foreignIndexUid": "authors"}]);
    let e = s
        .patch(&settings, json!({"foreignKeys": fk}))
        .error(400, "feature_not_enabled");
    assert_eq!(
        e["message"],
        "setting `foreignKeys` in the index settings requires enabling the `foreign_keys` experimental feature. See https://github.com/orgs/meilisearch/discussions/873"
    );
    s.task(s.patch(&settings, json!({"foreignKeys": null})));
    assert!(s.get(&settings).json().get("foreignKeys").is_none());
    assert_eq!(s.get(&format!("{settings}/foreign-keys")).json(), json!([]));

    assert_eq!(
        s.patch("/experimental-features", json!({"foreignKeys": true}))
            .status,
        200
    );
    for (body, message) in [
        (json!("x"), "Invalid value type at `.foreignKeys`: expected an array, but found a string: `\"x\"`"),
        (json!([null]), "Invalid value type at `.foreignKeys[0]`: expected an object, but found null"),
        (json!([{}]), "Missing field `foreignIndexUid` inside `.foreignKeys[0]`"),
        (json!([{"foreignIndexUid": "a", "fieldName": 1}]), "Invalid value type at `.foreignKeys[0].fieldName`: expected a string, but found a positive integer: `1`"),
        (json!([{"fieldNam": "a"}]), "Unknown field `fieldNam` inside `.foreignKeys[0]`: did you mean `fieldName`? expected one of `foreignIndexUid`, `fieldName`"),
    ] {
        let e = s
            .patch(&settings, json!({ "foreignKeys": body }))
            .error(400, "invalid_settings_foreign_keys");
        assert_eq!(e["message"], message);
    }
    let e = s
        .put(&format!("{settings}/foreign-keys"), json!([{}]))
        .error(400, "invalid_settings_foreign_keys");
    assert_eq!(e["message"], "Missing field `foreignIndexUid` inside `[0]`");
    let t = s.task(s.patch(&settings, json!({"foreignKeys": fk})));
    let ordered = json!([{"foreignIndexUid": "authors", "fieldName": "author"}]);
    assert_eq!(t["details"], json!({"foreignKeys": ordered}), "{t}");
    let got = s.get(&settings).json();
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    let at = keys.iter().position(|k| *k == "foreignKeys").unwrap();
    assert_eq!(keys[at - 1], "sortableAttributes");
    assert_eq!(got["foreignKeys"], ordered);
    assert_eq!(s.get(&format!("{settings}/foreign-keys")).json(), ordered);
    s.patch("/experimental-features", json!({"foreignKeys": false}));
    assert!(s.get(&settings).json().get("foreignKeys").is_none());
}
