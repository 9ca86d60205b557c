//! The whole flow — create index, add documents, wait for tasks, search — through the data
//! plane with the admin's task registry in a real `redis-server` (`task_store.backend:
//! redis`), then kill -9 the admin, restart it, and check every task is still answered the
//! same and uids continue densely. `admin/tests/store_backends.rs` tests the store itself;
//! this checks the deployed wiring (config → admin → Redis) end to end.

use miroir_e2e::{
    eventually, free_port, ClusterSpec, Deployment, DeploymentOptions, Proc, TempDir,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const INDEX: &str = "recipes";

/// A `redis-server` without persistence on a free loopback port, killed on drop.
struct Redis {
    _proc: Proc,
    port: u16,
    _dir: TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = TempDir::new("redis");
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        // Spawn by hand first: a missing binary must be a clear failure, never a skip.
        if let Err(e) = Command::new("redis-server").arg("--version").output() {
            panic!("redis-server is required by this test and could not be run ({e}); install it (Debian: apt-get install redis-server)");
        }
        let proc = Proc::spawn("redis-server", &mut cmd);
        let r = Redis {
            _proc: proc,
            port,
            _dir: dir,
        };
        eventually(
            "redis-server to answer PING",
            Duration::from_secs(30),
            || r.command(&["PING"]).ok().filter(|l| l == "+PONG"),
        );
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One RESP command; returns the first reply line (enough for PING and integer replies).
    fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }

    fn dbsize(&self) -> u64 {
        let l = self.command(&["DBSIZE"]).expect("DBSIZE");
        l.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected DBSIZE reply {l:?}"))
    }
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
    assert_eq!(redis.dbsize(), 0);
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
    assert!(redis.dbsize() > 0, "nothing was stored in Redis");
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
