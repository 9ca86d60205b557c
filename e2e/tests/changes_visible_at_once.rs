//! A key, an index or a setting changed through Miroir is usable on the very next request:
//! the admin answers (and finishes the task) only once every live data plane serves the
//! snapshot carrying the change. Before, a key created through Miroir was refused for a
//! short while (the data plane had not yet applied it) — one Meilisearch never does that.

use miroir_e2e::{Client, Cluster, ClusterSpec};
use serde_json::json;

#[test]
fn keys_indexes_and_settings_work_on_the_next_request() {
    let cluster = Cluster::start(ClusterSpec::default());
    let master = cluster.http();
    for round in 0..10 {
        // A new index, then at once a search on it.
        let uid = format!("idx{round}");
        let r = master
            .post_json("/indexes", &json!({"uid": uid, "primaryKey": "id"}))
            .unwrap();
        let t = cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
        assert_eq!(t["status"], "succeeded", "{t}");
        let s = master
            .post_json(&format!("/indexes/{uid}/search"), &json!({"q": ""}))
            .unwrap();
        assert_eq!(
            s.status,
            200,
            "round {round}: {}",
            String::from_utf8_lossy(&s.body)
        );

        // A setting, then at once a query that needs it.
        let r = master
            .send_json(
                "PATCH",
                &format!("/indexes/{uid}/settings"),
                &json!({"filterableAttributes": ["tag"]}),
            )
            .unwrap();
        let t = cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
        assert_eq!(t["status"], "succeeded", "{t}");
        let s = master
            .post_json(
                &format!("/indexes/{uid}/search"),
                &json!({"q": "", "filter": "tag = 1"}),
            )
            .unwrap();
        assert_eq!(
            s.status,
            200,
            "round {round}: {}",
            String::from_utf8_lossy(&s.body)
        );

        // A key, then at once a search with it.
        let r = master
            .post_json(
                "/keys",
                &json!({"actions": ["search"], "indexes": [uid], "expiresAt": null}),
            )
            .unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let key = r.json()["key"].as_str().unwrap().to_string();
        let s = Client::tcp(cluster.addr)
            .bearer(&key)
            .post_json(&format!("/indexes/{uid}/search"), &json!({"q": ""}))
            .unwrap();
        assert_eq!(
            s.status,
            200,
            "round {round}: {}",
            String::from_utf8_lossy(&s.body)
        );

        // And a deleted key is refused at once.
        let uid_of_key = r.json()["uid"].as_str().unwrap().to_string();
        assert_eq!(
            master
                .delete(&format!("/keys/{uid_of_key}"))
                .unwrap()
                .status,
            204
        );
        let s = Client::tcp(cluster.addr)
            .bearer(&key)
            .post_json(&format!("/indexes/{uid}/search"), &json!({"q": ""}))
            .unwrap();
        assert_eq!(s.status, 403, "round {round}: a deleted key still works");
    }
}
