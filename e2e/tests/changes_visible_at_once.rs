//! A key, an index or a setting changed through Miroir is usable on the very next request:
//! the admin answers (and finishes the task) only once every live data plane serves the
//! snapshot carrying the change. Before, a key created through Miroir was refused for a
//! short while (the data plane had not yet applied it) — one Meilisearch never does that.

use miroir_e2e::{Client, Cluster, ClusterSpec};
use serde_json::{json, Value};

/// A search on `index` with `client`, right away: its status.
fn search_status(client: &Client, index: &str, body: Value) -> u16 {
    let r = client
        .post_json(&format!("/indexes/{index}/search"), &body)
        .unwrap();
    assert!(r.status == 200 || r.status == 403, "{}", r.text());
    r.status
}

#[test]
fn keys_indexes_and_settings_work_on_the_next_request() {
    let cluster = Cluster::start(ClusterSpec::default());
    let master = cluster.http();
    for round in 0..10 {
        let uid = format!("idx{round}");
        // A new index, then at once a search on it.
        cluster.change("POST", "/indexes", &json!({"uid": uid, "primaryKey": "id"}));
        assert_eq!(
            search_status(&master, &uid, json!({"q": ""})),
            200,
            "round {round}"
        );
        // A setting, then at once a query that needs it.
        let settings = json!({"filterableAttributes": ["tag"]});
        cluster.change("PATCH", &format!("/indexes/{uid}/settings"), &settings);
        let filtered = json!({"q": "", "filter": "tag = 1"});
        assert_eq!(search_status(&master, &uid, filtered), 200, "round {round}");
        // A key, then at once a search with it; a deleted key is refused at once.
        let key = cluster.change(
            "POST",
            "/keys",
            &json!({"actions": ["search"], "indexes": [uid], "expiresAt": null}),
        );
        let client = Client::tcp(cluster.addr).bearer(key["key"].as_str().unwrap());
        assert_eq!(
            search_status(&client, &uid, json!({"q": ""})),
            200,
            "round {round}"
        );
        let deleted = master
            .delete(&format!("/keys/{}", key["uid"].as_str().unwrap()))
            .unwrap();
        assert_eq!(deleted.status, 204);
        assert_eq!(
            search_status(&client, &uid, json!({"q": ""})),
            403,
            "round {round}: a deleted key still works"
        );
    }
}
