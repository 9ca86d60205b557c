//! Several Miroir hosts on one Redis (docs/architecture.md#several-hosts): three hosts (own
//! ports and data directories, same test nodes, same `redis-server`), one leader.
//!
//! - A key, an index or a setting changed through one host is usable through every other
//!   host on the very next request (the leader's publish waits for every live host).
//! - Writes and searches go to all three hosts at once; the leader is `kill -9`ed during the
//!   writes, then its successor in the middle of a settings broadcast (one node answers the
//!   settings change slowly, so the broadcast is under way when the kill comes). Each time
//!   another host takes the lease with default timings; the last one rolls the interrupted
//!   broadcast back.
//! - Afterwards, on every live host: every acknowledged task is answerable and terminal, uids
//!   are dense and unique, every node has the same settings, every acknowledged document is
//!   present.

use miroir_e2e::{wait_until, within, Client, ClusterSpec, Redis};
use miroir_testkit::{Cluster, Host, Launch};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const INDEX: &str = "docs";
const KEY: &str = "test-master-key";

/// One host as the test sees it: its data plane and its admin.
#[derive(Clone, Copy)]
struct Addrs {
    data: SocketAddr,
    admin: SocketAddr,
}

impl Addrs {
    fn http(&self) -> Client {
        Client::tcp(self.data)
            .bearer(KEY)
            .timeout(Duration::from_secs(30))
    }

    /// `GET /_miroir/leader` on this host's admin, `None` when it does not answer.
    fn leader(&self) -> Option<Value> {
        let r = Client::tcp(self.admin)
            .bearer(KEY)
            .timeout(Duration::from_secs(5))
            .get("/_miroir/leader")
            .ok()?;
        (r.status == 200).then(|| r.json())
    }
}

/// The index of the one host among `hosts` that reports leading (waits for one).
fn wait_leader(hosts: &[(usize, Addrs)]) -> usize {
    let mut found = None;
    wait_until(
        within(Duration::from_secs(30)),
        "one host to take the leader lease",
        || {
            let leading: Vec<usize> = hosts
                .iter()
                .filter(|(_, h)| h.leader().is_some_and(|l| l["isLeader"] == json!(true)))
                .map(|(i, _)| *i)
                .collect();
            found = (leading.len() == 1).then(|| leading[0]);
            found.is_some()
        },
    );
    found.expect("checked")
}

/// Sends a change and, when it has a task, waits (through `via`) until it succeeded.
fn change(at: &Addrs, via: &Addrs, method: &str, path: &str, body: &Value) -> Value {
    let r = at.http().send_json(method, path, body).unwrap();
    assert!(r.status < 300, "{method} {path}: {}", r.text());
    let answer = r.json();
    if let Some(uid) = answer["taskUid"].as_u64() {
        let t = miroir_testkit::wait_task(&via.http(), uid);
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    answer
}

fn search_status(client: &Client, body: Value) -> u16 {
    let r = client
        .post_json(&format!("/indexes/{INDEX}/search"), &body)
        .unwrap();
    r.status
}

#[test]
fn three_hosts_one_leader_failover_without_losing_a_task() {
    let redis = Redis::start();
    // Test nodes even with MIROIR_E2E_MEILI_BIN: the slow settings route is fault injection.
    let cluster = Cluster::start(ClusterSpec {
        extra_yaml: format!(
            "task_store: {{ backend: redis, url: \"{}\" }}\n",
            redis.url()
        ),
        shards: 16,
        launch: Launch::OneCommand,
        ..ClusterSpec::default()
    });
    let mut extra: Vec<Host> = vec![cluster.start_host(), cluster.start_host()];
    let mut cluster = cluster;
    let all = [
        Addrs {
            data: cluster.addr,
            admin: cluster.admin_addr,
        },
        Addrs {
            data: extra[0].addr,
            admin: extra[0].admin_addr,
        },
        Addrs {
            data: extra[1].addr,
            admin: extra[1].admin_addr,
        },
    ];
    let indexed: Vec<(usize, Addrs)> = all.iter().copied().enumerate().collect();
    // The first host started first and leads.
    assert_eq!(wait_leader(&indexed), 0);

    // Changes through a follower are usable through every host on the next request.
    change(
        &all[1],
        &all[2],
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    for h in &all {
        assert_eq!(search_status(&h.http(), json!({"q": ""})), 200);
    }
    change(
        &all[2],
        &all[1],
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &json!({"filterableAttributes": ["group"]}),
    );
    // An index deleted through one follower and written to at once through another is
    // re-created by the write, as on one Meilisearch (decision 054).
    change(
        &all[1],
        &all[2],
        "POST",
        "/indexes",
        &json!({"uid": "gone"}),
    );
    let deletion = all[1].http().delete("/indexes/gone").unwrap();
    assert_eq!(deletion.status, 202, "{}", deletion.text());
    let addition = all[2]
        .http()
        .post_json("/indexes/gone/documents", &json!([{"id": 7}]))
        .unwrap();
    assert_eq!(addition.status, 202, "{}", addition.text());
    for t in [deletion.json(), addition.json()] {
        let t = miroir_testkit::wait_task(&all[0].http(), t["taskUid"].as_u64().unwrap());
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    for h in &all {
        let r = h
            .http()
            .post_json("/indexes/gone/search", &json!({"q": ""}))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(miroir_testkit::hit_ids(&r.json()), [7]);
    }
    for h in &all {
        let filtered = json!({"q": "", "filter": "group = 1"});
        assert_eq!(search_status(&h.http(), filtered), 200);
    }
    let key = change(
        &all[1],
        &all[0],
        "POST",
        "/keys",
        &json!({"actions": ["search"], "indexes": [INDEX], "expiresAt": null}),
    );
    let secret = key["key"].as_str().unwrap().to_string();
    for h in &all {
        let c = Client::tcp(h.data).bearer(&secret);
        assert_eq!(search_status(&c, json!({"q": ""})), 200, "new key refused");
    }
    let r = all[2]
        .http()
        .delete(&format!("/keys/{}", key["uid"].as_str().unwrap()))
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    for h in &all {
        let c = Client::tcp(h.data).bearer(&secret);
        assert_eq!(
            search_status(&c, json!({"q": ""})),
            403,
            "deleted key works"
        );
    }

    // Writes and searches on every host at once; two leaders die meanwhile.
    let alive: Vec<AtomicBool> = (0..3).map(|_| AtomicBool::new(true)).collect();
    let stop = AtomicBool::new(false);
    // (task uid, document ids) of every acknowledged write.
    let acked: Mutex<Vec<(u64, Vec<u64>)>> = Mutex::new(Vec::new());
    let settings_task = std::thread::scope(|s| {
        for (w, h) in all.iter().enumerate() {
            let (stop, acked, alive) = (&stop, &acked, &alive);
            s.spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if !alive[w].load(Ordering::Relaxed) {
                        break;
                    }
                    let ids: Vec<u64> = (0..10)
                        .map(|i| w as u64 * 1_000_000 + seq * 10 + i)
                        .collect();
                    seq += 1;
                    let docs: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"id": id, "group": id % 7, "n": id}))
                        .collect();
                    let r = h.http().send_json(
                        "POST",
                        &format!("/indexes/{INDEX}/documents"),
                        &json!(docs),
                    );
                    if let Ok(r) = r {
                        if r.status == 202 {
                            let uid = r.json()["taskUid"].as_u64().expect("taskUid");
                            acked.lock().unwrap().push((uid, ids));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) && alive[w].load(Ordering::Relaxed) {
                    let r = h.http().post_json(
                        &format!("/indexes/{INDEX}/search"),
                        &json!({"q": "", "limit": 1}),
                    );
                    if let Ok(r) = r {
                        assert!(
                            r.status == 200 || !alive[w].load(Ordering::Relaxed),
                            "search on host {w}: {} {}",
                            r.status,
                            r.text()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let acked_count = |n: usize| {
            wait_until(
                within(Duration::from_secs(60)),
                "more acknowledged writes",
                || acked.lock().unwrap().len() >= n,
            )
        };
        acked_count(15);
        // 1. The leader dies during the writes.
        alive[0].store(false, Ordering::Relaxed);
        cluster.kill_admin();
        let second = wait_leader(&indexed[1..]);
        let before = acked.lock().unwrap().len();
        acked_count(before + 10);
        // 2. The next leader dies in the middle of a settings broadcast: the last node never
        //    answers the change (it hangs), so the other nodes have it and this one does not
        //    when the kill comes (well before the leader's node timeout). Only the successor's
        //    rollback makes the nodes agree again.
        let slow = cluster.nodes.last().unwrap();
        let fault = json!({"rules": [{"route": format!("/indexes/{INDEX}/settings"),
            "method": "PATCH", "hang": true}]});
        let r = slow.call("POST", "/_testnode/faults", Some(&fault));
        assert!(r.status < 300, "{}", r.text());
        let leader = all[second];
        let patch = s.spawn(move || {
            leader.http().send_json(
                "PATCH",
                &format!("/indexes/{INDEX}/settings"),
                &json!({"sortableAttributes": ["n"], "filterableAttributes": ["group", "n"]}),
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        alive[second].store(false, Ordering::Relaxed);
        extra[second - 1].kill();
        let r = slow.call("DELETE", "/_testnode/faults", None);
        assert!(r.status < 300, "{}", r.text());
        // Normally cut off by the kill; if it was answered, its task is checked below.
        let settings_task = match patch.join().unwrap() {
            Ok(r) if r.status == 202 => r.json()["taskUid"].as_u64(),
            _ => None,
        };
        let third = 3 - second;
        assert_eq!(wait_leader(&indexed[third..=third]), third);
        let before = acked.lock().unwrap().len();
        acked_count(before + 10);
        stop.store(true, Ordering::Relaxed);
        (third, settings_task)
    });
    let (third, settings_task) = settings_task;
    // A host started afterwards joins as a follower and sees everything.
    let late = cluster.start_host();
    let live = [
        all[third],
        Addrs {
            data: late.addr,
            admin: late.admin_addr,
        },
    ];

    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= 35, "{} writes acknowledged", acked.len());
    let mut wanted_docs = BTreeSet::new();
    for (uid, ids) in &acked {
        let t = miroir_testkit::wait_task(&live[0].http(), *uid);
        assert_eq!(t["status"], "succeeded", "acknowledged write {uid}: {t}");
        wanted_docs.extend(ids.iter().copied());
    }
    if let Some(uid) = settings_task {
        let t = miroir_testkit::wait_task(&live[0].http(), uid);
        assert!(
            t["status"] == "succeeded" || t["status"] == "failed",
            "the interrupted settings task: {t}"
        );
    }
    let mut listings = Vec::new();
    for h in &live {
        for (uid, _) in &acked {
            let r = h.http().get(&format!("/tasks/{uid}")).unwrap();
            assert_eq!(r.status, 200, "task {uid}: {}", r.text());
        }
        let list = h.http().get("/tasks?limit=100000").unwrap().json();
        let uids: Vec<u64> = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["uid"].as_u64().unwrap())
            .collect();
        let total = list["total"].as_u64().unwrap();
        let dense: Vec<u64> = (0..total).rev().collect();
        assert_eq!(uids, dense, "uids are dense and unique");
        listings.push(uids);
    }
    assert_eq!(listings[0], listings[1], "both hosts list the same tasks");

    // Every node has the same settings (the new leader rolls the interrupted broadcast back
    // as it takes over: polled, since the takeover runs beside the requests).
    let mut last = Vec::new();
    let agree = miroir_testkit::try_wait_until(within(Duration::from_secs(30)), || {
        last = cluster
            .nodes
            .iter()
            .map(|n| {
                let r = n.call("GET", &format!("/indexes/{INDEX}/settings"), None);
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()
            })
            .collect::<Vec<Value>>();
        last.iter().all(|s| s == &last[0]).then_some(())
    });
    assert!(agree.is_some(), "nodes disagree on settings: {last:#?}");

    // Every acknowledged document is present (through both hosts).
    for h in &live {
        let docs = h
            .http()
            .get(&format!(
                "/indexes/{INDEX}/documents?limit=1000000&fields=id"
            ))
            .unwrap()
            .json();
        let have: BTreeSet<u64> = docs["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{docs}"))
            .iter()
            .map(|d| d["id"].as_u64().unwrap())
            .collect();
        let missing: Vec<&u64> = wanted_docs.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "acknowledged documents missing: {missing:?}"
        );
    }
    drop(late);
    drop(extra);
}
