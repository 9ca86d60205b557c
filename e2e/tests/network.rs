//! `/network` and remote federated search (decision 045): the network lives in Miroir (its
//! admin's store, surviving a restart), answers as Meilisearch 1.50 CE, and a federated
//! multi-search that mixes local queries with queries for a remote returns the hits one
//! Meilisearch holding both corpora returns, in the same order, for several windows. A remote
//! that cannot be reached is reported in `remoteErrors` next to the local hits.
//! With `MIROIR_E2E_MEILI_BIN` the nodes, the remote and the reference are real Meilisearch.

use miroir_e2e::{
    start_node, temp_dir, Client, ClusterSpec, Deployment, DeploymentOptions, TestNode,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const KEY: &str = "network-master-key";
const LOCAL: &str = "local_docs";
const REMOTE: &str = "remote_docs";

fn docs(from: i64, n: i64) -> Value {
    let words = [
        "apple",
        "green apple pie",
        "red apple tree",
        "sky",
        "apple apple",
        "blue",
    ];
    let list: Vec<Value> = (from..from + n)
        .map(|i| json!({"id": i, "title": format!("{} {i}", words[i as usize % words.len()])}))
        .collect();
    json!(list)
}

fn write(c: &Client, method: &str, path: &str, body: &Value) {
    let r = c.call(method, path, Some(body));
    assert_eq!(r.status, 202, "{method} {path}: {}", r.text());
    let task = miroir_testkit::wait_task(c, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(task["status"], "succeeded", "{task}");
}

fn enable_network(c: &Client) {
    let r = c.call(
        "PATCH",
        "/experimental-features",
        Some(&json!({"network": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `(id, indexUid, queriesPosition, weightedRankingScore)` of each hit.
fn hits(v: &Value) -> Vec<(i64, Value, Value, f64)> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {v}"))
        .iter()
        .map(|h| {
            let f = &h["_federation"];
            (
                h["id"].as_i64().unwrap(),
                f["indexUid"].clone(),
                f["queriesPosition"].clone(),
                f["weightedRankingScore"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Miroir's page equals the reference's page up to the order of documents with equal
/// scores (one node breaks those ties by its internal document order, which a sharded index
/// does not have; Miroir breaks them by shard): the same `(index, query, score)` sequence,
/// and each hit is one the reference ranks with that score (`full`: the reference's answer
/// for the whole prefix).
fn same_page(
    got: &[(i64, Value, Value, f64)],
    want: &[(i64, Value, Value, f64)],
    full: &[(i64, Value, Value, f64)],
    what: &str,
) {
    let key = |h: &(i64, Value, Value, f64)| (h.1.clone(), h.2.clone(), h.3.to_bits());
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        want.iter().map(key).collect::<Vec<_>>(),
        "{what}: {got:?} vs {want:?}"
    );
    let ids: BTreeSet<i64> = got.iter().map(|h| h.0).collect();
    assert_eq!(ids.len(), got.len(), "{what}: duplicates in {got:?}");
    for h in got {
        assert!(
            full.iter().any(|f| f.0 == h.0 && key(f) == key(h)),
            "{what}: {h:?} is not ranked so by the reference"
        );
    }
}

fn node_version_free(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("version");
    v
}

#[test]
fn network_lives_in_miroir_and_remote_queries_merge_as_on_one_meilisearch() {
    let dir = temp_dir("network");
    let mut d = Deployment::start(
        &ClusterSpec {
            master_key: KEY.into(),
            shards: 8,
            ..ClusterSpec::default()
        },
        &DeploymentOptions::default(),
    );
    let miroir = d.http();
    let remote: TestNode = start_node(dir.path(), "remote", KEY);
    let one: TestNode = start_node(dir.path(), "one", KEY);

    // Behind the experimental feature, with Meilisearch's error; a malformed body is refused
    // before the feature is looked at.
    let r = miroir.call("GET", "/network", None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"message": "Using the /network route requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805",
               "code": "feature_not_enabled", "type": "invalid_request",
               "link": "https://docs.meilisearch.com/errors#feature_not_enabled"})
    );
    let r = miroir.call("PATCH", "/network", Some(&json!({"foo": 1})));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, json!("bad_request"))
    );
    for c in [&miroir, &remote.http(), &one.http()] {
        enable_network(c);
    }

    // GET before any PATCH, then merge-patch answers and refusals as CE.
    let r = miroir.call("GET", "/network", None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"self": null, "remotes": {}, "shards": {}, "leader": null,
               "version": "00000000-0000-0000-0000-000000000000"})
    );
    let patch = json!({"self": "miroir", "remotes": {
        "miroir": {"url": format!("http://{}", d.addr), "searchApiKey": KEY},
        "r": {"url": remote.url(), "searchApiKey": KEY, "writeApiKey": "w"},
        "dead": {"url": "http://127.0.0.1:1"},
    }});
    let r = miroir.call("PATCH", "/network", Some(&patch));
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(
        node_version_free(answer.clone()),
        json!({"self": "miroir", "remotes": {
            "dead": {"url": "http://127.0.0.1:1", "searchApiKey": null, "writeApiKey": null, "status": "available"},
            "miroir": {"url": format!("http://{}", d.addr), "searchApiKey": KEY, "writeApiKey": null, "status": "available"},
            "r": {"url": remote.url(), "searchApiKey": KEY, "writeApiKey": "w", "status": "available"},
        }, "shards": {}, "leader": null})
    );
    for (body, status, code) in [
        (
            json!({"leader": "miroir"}),
            451,
            "requires_enterprise_edition",
        ),
        (
            json!({"remotes": {"x": {"searchApiKey": "k"}}}),
            400,
            "missing_network_url",
        ),
        (
            json!({"remotes": {"r": {"url": null}}}),
            400,
            "invalid_network_url",
        ),
        (
            json!({"previousRemotes": {}}),
            400,
            "unexpected_network_previous_remotes",
        ),
    ] {
        let r = miroir.call("PATCH", "/network", Some(&body));
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (status, json!(code)),
            "{body}"
        );
    }
    // The nodes' own network stays empty: Miroir's shards are its own business (test nodes
    // have no `/network` at all).
    for n in &d.nodes {
        let r = n.http().call("GET", "/network", None);
        if r.status == 200 {
            assert_eq!(node_version_free(r.json())["remotes"], json!({}));
        }
    }
    // Persistence across an admin restart.
    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    let r = miroir.call("GET", "/network", None);
    assert_eq!(r.json(), answer);

    // Corpora: LOCAL in Miroir, REMOTE on the remote, both on the reference node.
    let settings = json!({"searchableAttributes": ["title"]});
    for (c, index, from) in [
        (&miroir, LOCAL, 0),
        (&remote.http(), REMOTE, 1000),
        (&one.http(), LOCAL, 0),
        (&one.http(), REMOTE, 1000),
    ] {
        write(c, "PATCH", &format!("/indexes/{index}/settings"), &settings);
        write(
            c,
            "POST",
            &format!("/indexes/{index}/documents?primaryKey=id"),
            &docs(from, 60),
        );
    }
    for (offset, limit) in [(0, 20), (0, 7), (5, 10), (40, 30), (110, 20)] {
        for q in ["apple", "apple pie", "sky"] {
            let federation = json!({"offset": offset, "limit": limit});
            let mixed = json!({"federation": federation, "queries": [
                {"indexUid": LOCAL, "q": q},
                {"indexUid": REMOTE, "q": q, "federationOptions": {"remote": "r", "weight": 0.9}},
            ]});
            let oracle = json!({"federation": federation, "queries": [
                {"indexUid": LOCAL, "q": q},
                {"indexUid": REMOTE, "q": q, "federationOptions": {"weight": 0.9}},
            ]});
            let got = miroir.call("POST", "/multi-search", Some(&mixed));
            assert_eq!(got.status, 200, "{}", got.text());
            let got = got.json();
            let want = one
                .http()
                .call("POST", "/multi-search", Some(&oracle))
                .json();
            let mut whole = oracle.clone();
            whole["federation"] = json!({"offset": 0, "limit": 1000});
            let full = one
                .http()
                .call("POST", "/multi-search", Some(&whole))
                .json();
            let what = format!("q={q:?} offset={offset} limit={limit}");
            same_page(&hits(&got), &hits(&want), &hits(&full), &what);
            assert_eq!(got["estimatedTotalHits"], want["estimatedTotalHits"]);
            assert_eq!(
                (&got["offset"], &got["limit"]),
                (&json!(offset), &json!(limit))
            );
            assert_eq!(got["remoteErrors"], json!({}));
            for h in got["hits"].as_array().unwrap() {
                let expected = if h["_federation"]["indexUid"] == LOCAL {
                    "miroir"
                } else {
                    "r"
                };
                assert_eq!(h["_federation"]["remote"], expected, "{h}");
                // Nothing of Meilisearch's remote hand-over (`weightedScoreValues`,
                // `extra_document`) shows.
                let keys: Vec<&String> = h["_federation"].as_object().unwrap().keys().collect();
                assert_eq!(
                    keys,
                    [
                        "indexUid",
                        "queriesPosition",
                        "weightedRankingScore",
                        "remote"
                    ],
                    "{h}"
                );
            }
        }
    }

    // A dead remote: its error in `remoteErrors`, the local hits still answered.
    let body = json!({"federation": {}, "queries": [
        {"indexUid": LOCAL, "q": "apple"},
        {"indexUid": REMOTE, "q": "apple", "federationOptions": {"remote": "dead"}},
    ]});
    let r = miroir.call("POST", "/multi-search", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["remoteErrors"]["dead"]["code"],
        "remote_could_not_send_request"
    );
    assert!(!hits(&v).is_empty());
    assert!(hits(&v).iter().all(|h| h.1 == LOCAL));
    // `useNetwork: true`: a copy of the query for every remote of the network (`self` runs
    // here); the remote lacks the index and `dead` is down, so both are in `remoteErrors`.
    let body = json!({"federation": {}, "queries": [
        {"indexUid": LOCAL, "q": "apple", "useNetwork": true},
    ]});
    let r = miroir.call("POST", "/multi-search", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let errors: Vec<(&String, &Value)> = v["remoteErrors"].as_object().unwrap().iter().collect();
    assert_eq!(
        errors
            .iter()
            .map(|(n, e)| (n.as_str(), e["code"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("dead", "remote_could_not_send_request"),
            ("r", "remote_bad_request")
        ]
    );
    let local_only = json!({"federation": {}, "queries": [{"indexUid": LOCAL, "q": "apple"}]});
    let plain = miroir
        .call("POST", "/multi-search", Some(&local_only))
        .json();
    assert_eq!(
        hits(&v).iter().map(|h| h.0).collect::<Vec<_>>(),
        hits(&plain).iter().map(|h| h.0).collect::<Vec<_>>()
    );
    assert!(v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["_federation"]["remote"] == "miroir"));
    // An unknown remote is the client's error, as in Meilisearch.
    let body = json!({"federation": {}, "queries": [
        {"indexUid": LOCAL, "q": "apple"},
        {"indexUid": REMOTE, "q": "apple", "federationOptions": {"remote": "nope"}},
    ]});
    let r = miroir.call("POST", "/multi-search", Some(&body));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Inside `.queries[1]`: Invalid `.federation_options.remote`: remote `nope` is not registered"
    );
    assert_eq!(r.json()["code"], "invalid_multi_search_remote");

    // Removing the remotes (the SDK's reset) leaves `self`.
    let r = miroir.call(
        "PATCH",
        "/network",
        Some(&json!({"remotes": {"r": null, "dead": null}, "leader": null})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["self"], "miroir");
    assert_eq!(v["remotes"].as_object().unwrap().len(), 1);
    miroir_testkit::keep_if_panicking(dir);
}

/// The network is in the admin's store with Redis too (shared by every host): it survives an
/// admin restart, and the data plane still sends remote queries with it.
#[test]
fn network_survives_an_admin_restart_redis() {
    let dir = temp_dir("network-redis");
    let redis = miroir_e2e::Redis::start();
    let mut d = Deployment::start(
        &ClusterSpec {
            master_key: KEY.into(),
            shards: 4,
            ..ClusterSpec::default()
        },
        &DeploymentOptions {
            extra_yaml: format!(
                "task_store: {{ backend: redis, url: \"{}\" }}\n",
                redis.url()
            ),
            ..DeploymentOptions::default()
        },
    );
    let miroir = d.http();
    let remote = start_node(dir.path(), "remote", KEY);
    for c in [&miroir, &remote.http()] {
        enable_network(c);
    }
    write(
        &remote.http(),
        "POST",
        &format!("/indexes/{REMOTE}/documents?primaryKey=id"),
        &docs(0, 10),
    );
    let patch = json!({"self": "m", "remotes": {"r": {"url": remote.url(), "searchApiKey": KEY}}});
    let r = miroir.call("PATCH", "/network", Some(&patch));
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    assert_eq!(miroir.call("GET", "/network", None).json(), answer);
    let body = json!({"federation": {}, "queries": [
        {"indexUid": REMOTE, "q": "apple", "federationOptions": {"remote": "r"}},
    ]});
    let r = miroir.call("POST", "/multi-search", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["remoteErrors"], json!({}));
    assert!(!hits(&v).is_empty());
    miroir_testkit::keep_if_panicking(dir);
}

/// Two hosts on one Redis: the network changed through either host is the one every host
/// answers and routes remote queries with.
#[test]
fn every_host_shares_the_network() {
    let dir = temp_dir("network-hosts");
    let redis = miroir_e2e::Redis::start();
    let cluster = miroir_testkit::Cluster::start(ClusterSpec {
        master_key: KEY.into(),
        extra_yaml: format!(
            "task_store: {{ backend: redis, url: \"{}\" }}\n",
            redis.url()
        ),
        shards: 4,
        launch: miroir_testkit::Launch::OneCommand,
        ..ClusterSpec::default()
    });
    let other = cluster.start_host();
    let hosts = [
        cluster.http(),
        Client::tcp(other.addr)
            .bearer(KEY)
            .timeout(std::time::Duration::from_secs(30)),
    ];
    let remote = start_node(dir.path(), "remote", KEY);
    enable_network(&hosts[0]);
    enable_network(&remote.http());
    write(
        &remote.http(),
        "POST",
        &format!("/indexes/{REMOTE}/documents?primaryKey=id"),
        &docs(0, 10),
    );
    for (i, via) in hosts.iter().enumerate() {
        let patch = json!({"self": format!("m{i}"), "remotes": {"r": {"url": remote.url(), "searchApiKey": KEY}}});
        let r = via.call("PATCH", "/network", Some(&patch));
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        for h in &hosts {
            let seen = miroir_e2e::wait_until(
                miroir_e2e::within(std::time::Duration::from_secs(30)),
                "every host to answer the new network",
                || {
                    let v = h.call("GET", "/network", None).json();
                    (v == answer).then_some(v)
                },
            );
            assert_eq!(seen["self"], json!(format!("m{i}")));
            let body = json!({"federation": {}, "queries": [
                {"indexUid": REMOTE, "q": "apple", "federationOptions": {"remote": "r"}},
            ]});
            let r = h.call("POST", "/multi-search", Some(&body));
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(v["remoteErrors"], json!({}), "{v}");
            assert!(!hits(&v).is_empty());
        }
    }
    drop(other);
    miroir_testkit::keep_if_panicking(dir);
}
