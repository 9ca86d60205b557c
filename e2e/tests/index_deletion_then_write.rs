//! An index deleted and written to at once, without waiting for the deletion (the official
//! JS SDK's tenant-token tests do exactly that in their `beforeEach`): on Meilisearch the
//! write runs after the deletion and re-creates the index. Through Miroir the deletion marks
//! the index `deleting`, the write goes through the admin's prepare-write, which waits for
//! the deletion and creates the index afresh on every node with Miroir's node settings
//! (docs/contract.md#index-deletion). Before, the write reached the nodes directly, they
//! re-created the index behind Miroir's back, and Miroir then dropped it from its catalog:
//! an acknowledged write lost.

use miroir_e2e::{Cluster, ClusterSpec};
use serde_json::{json, Value};

#[test]
fn a_write_right_after_a_deletion_re_creates_the_index() {
    let cluster = Cluster::start(ClusterSpec::default());
    let http = cluster.http();
    for round in 0..3 {
        let old: Vec<Value> = (10..13).map(|i| json!({"id": i, "title": "old"})).collect();
        let t = cluster.change("POST", "/indexes/rdel/documents", &json!(old));
        assert_eq!(
            cluster.wait_task(t["taskUid"].as_u64().unwrap())["status"],
            "succeeded"
        );

        let deletion = http.delete("/indexes/rdel").unwrap();
        assert_eq!(deletion.status, 202, "{}", deletion.text());
        let docs = json!([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}]);
        let addition = http.post_json("/indexes/rdel/documents", &docs).unwrap();
        assert_eq!(addition.status, 202, "{}", addition.text());
        let deletion = cluster.wait_task(deletion.json()["taskUid"].as_u64().unwrap());
        let addition = cluster.wait_task(addition.json()["taskUid"].as_u64().unwrap());
        assert_eq!(deletion["status"], "succeeded", "round {round}: {deletion}");
        assert_eq!(addition["status"], "succeeded", "round {round}: {addition}");
        assert!(
            deletion["uid"].as_u64() < addition["uid"].as_u64(),
            "round {round}: the write is ordered after the deletion"
        );

        let index = http.get("/indexes/rdel").unwrap();
        assert_eq!(index.status, 200, "round {round}: {}", index.text());
        let listed = http.get("/indexes").unwrap().json();
        assert!(
            listed["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["uid"] == "rdel"),
            "round {round}: {listed}"
        );
        let search = http
            .post_json("/indexes/rdel/search", &json!({"q": ""}))
            .unwrap();
        assert_eq!(search.status, 200, "round {round}: {}", search.text());
        let hits = search.json();
        assert_eq!(
            miroir_testkit::hit_ids(&hits),
            [1, 2],
            "round {round}: only the new documents: {hits}"
        );
        // Every node's copy was created by Miroir (its shard field is filterable), none by a
        // write that slipped past the catalog.
        for node in &cluster.nodes {
            let s = node.http().get("/indexes/rdel/settings").unwrap();
            assert_eq!(s.status, 200, "round {round}: {}", s.text());
            let filterable = s.json()["filterableAttributes"].clone();
            assert!(
                filterable.to_string().contains("_miroir_shard"),
                "round {round}: {filterable}"
            );
        }
    }
    // The index can be deleted and created again as usual afterwards.
    let t = http.delete("/indexes/rdel").unwrap().json();
    assert_eq!(
        cluster.wait_task(t["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let t = cluster.change("POST", "/indexes", &json!({"uid": "rdel"}));
    assert_eq!(
        cluster.wait_task(t["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    assert_eq!(http.get("/indexes/rdel").unwrap().status, 200);
}
