//! The whole flow — create index, add documents, wait for tasks, search — through the data
//! plane with the admin's task registry in a real `redis-server` (`task_store.backend:
//! redis`), then kill -9 the admin, restart it, and check every task is still answered the
//! same and uids continue densely. `admin/tests/store_backends.rs` tests the store itself;
//! this checks the deployed wiring (config → admin → Redis) end to end.

use miroir_e2e::{ClusterSpec, Deployment, DeploymentOptions, Redis};
use serde_json::{json, Value};

const INDEX: &str = "recipes";

/// The number of keys in Redis (`DBSIZE`).
fn dbsize(redis: &Redis) -> u64 {
    let l = redis.command(&["DBSIZE"]).expect("DBSIZE");
    l.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected DBSIZE reply {l:?}"))
}

fn recipes(ids: std::ops::Range<u64>) -> Value {
    const DISHES: [&str; 5] = ["soup", "stew", "salad", "pie", "curry"];
    json!(ids
        .map(|id| json!({"id": id, "name": format!("{} number {id}", DISHES[(id % 5) as usize]), "minutes": 10 + id % 50}))
        .collect::<Vec<_>>())
}

fn document_count(d: &Deployment) -> u64 {
    let s = d
        .http()
        .get(&format!("/indexes/{INDEX}/stats"))
        .unwrap()
        .json();
    s["numberOfDocuments"]
        .as_u64()
        .unwrap_or_else(|| panic!("stats: {s}"))
}

fn search_count(d: &Deployment, q: &str) -> u64 {
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": q, "limit": 0}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["estimatedTotalHits"].as_u64().unwrap()
}

#[test]
fn tasks_live_in_redis_and_stay_dense_across_an_admin_restart() {
    let redis = Redis::start();
    assert_eq!(dbsize(&redis), 0);
    let mut d = Deployment::start(
        &ClusterSpec::default(),
        &DeploymentOptions {
            extra_yaml: format!(
                "task_store: {{ backend: redis, url: \"{}\" }}\n",
                redis.url()
            ),
            ..DeploymentOptions::default()
        },
    );

    let mut uids = vec![d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    )];
    uids.push(d.write_ok(
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &json!({"filterableAttributes": ["minutes"], "sortableAttributes": ["minutes"]}),
    ));
    let adds = [
        d.write(
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            &recipes(0..500),
        ),
        d.write(
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            &recipes(500..1000),
        ),
    ];
    for uid in adds {
        let t = d.wait_task(uid);
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["details"]["indexedDocuments"], json!(500), "{t}");
        uids.push(uid);
    }
    assert_eq!(uids, vec![0, 1, 2, 3], "dense uids from 0");
    assert_eq!(search_count(&d, "soup"), 200);
    assert_eq!(document_count(&d), 1000);
    // The registry really is in Redis.
    assert!(dbsize(&redis) > 0, "nothing was stored in Redis");
    let finals: Vec<Value> = uids.iter().map(|&u| d.wait_task(u)).collect();

    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    for (uid, before) in uids.iter().zip(&finals) {
        let r = d.http().get(&format!("/tasks/{uid}")).unwrap();
        assert_eq!(
            r.status,
            200,
            "task {uid}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(&r.json(), before, "task {uid} after the restart");
    }
    let next = d.write_ok(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        &recipes(1000..1010),
    );
    assert_eq!(next, 4, "uids continue densely after the restart");
    let deleted = d.write_ok(
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        &json!([0, 5, 10]),
    );
    assert_eq!(deleted, 5);
    assert_eq!(document_count(&d), 1007);
    assert_eq!(search_count(&d, "soup"), 200 - 3 + 2);
    let list = d.http().get("/tasks?limit=2").unwrap().json();
    assert_eq!(list["total"], json!(6), "{list}");
    assert_eq!(list["next"], json!(3), "{list}");
    let ids: Vec<u64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![5, 4]);
    // An unknown uid is still Meilisearch's 404.
    let r = d.http().get("/tasks/99").unwrap();
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (404, json!("task_not_found"))
    );
}
