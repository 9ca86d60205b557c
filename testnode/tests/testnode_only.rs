//! Behaviour only the test node has (always runs against the binary, never `MEILI_URL`):
//! task uids from 0, persistence across `kill -9`, every fault kind, canned search.

mod common;

use common::{RespExt, Server};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn task_uids_start_at_zero_and_are_dense() {
    let s = Server::spawn(&[]);
    for i in 0..3u64 {
        let r = s.post("/indexes", json!({"uid": format!("i{i}")})).json();
        assert_eq!(r["taskUid"], i);
    }
    let t = s.wait(2);
    assert_eq!(t["batchUid"].as_u64().map(|b| b <= 2), Some(true));
}

#[test]
fn state_survives_kill_9_and_restart() {
    let dir = std::env::temp_dir().join(format!("miroir-testnode-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.to_str().unwrap().to_string();
    let args = [
        "--db-path",
        path.as_str(),
        "--master-key",
        common::MASTER_KEY,
    ];
    let mut s = Server::spawn(&args);
    s.task(s.patch(
        "/indexes/books/settings",
        json!({"filterableAttributes": ["g"]}),
    ));
    let t = s.task(s.post(
        "/indexes/books/documents",
        json!([{"id": 1, "g": "a"}, {"id": 2, "g": "b"}, {"id": 3, "g": "a"}]),
    ));
    s.task(s.delete("/indexes/books/documents/2"));
    let key = s.post("/keys", json!({"uid": "11111111-2222-4333-8444-555555555555", "actions": ["search"], "indexes": ["*"], "expiresAt": null})).json();
    let keys_before = s.get("/keys").json()["results"].clone();
    let task_before = s.get(&format!("/tasks/{}", t["uid"])).json();
    let index_before = s.get("/indexes/books").json();
    let settings_before = s.get("/indexes/books/settings").json();
    s.kill9();

    let s = Server::spawn(&args);
    assert_eq!(s.get("/indexes/books/stats").json()["numberOfDocuments"], 2);
    assert_eq!(s.get(&format!("/tasks/{}", t["uid"])).json(), task_before);
    assert_eq!(s.get("/keys").json()["results"], keys_before);
    assert_eq!(s.get("/indexes/books").json(), index_before);
    assert_eq!(s.get("/indexes/books/settings").json(), settings_before);
    let r = s.raw(
        "POST",
        "/indexes/books/search",
        Some(("application/json", br#"{"filter":"g = a"}"#)),
        key["key"].as_str(),
    );
    assert_eq!(r.json()["estimatedTotalHits"], 2);
    // New tasks continue the uid sequence.
    let next = s.post("/indexes", json!({"uid": "more"})).json()["taskUid"]
        .as_u64()
        .unwrap();
    assert_eq!(next, task_before["uid"].as_u64().unwrap() + 2);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn faulty() -> Server {
    Server::spawn(&["--faults"])
}

#[test]
fn fault_error_injection_is_seeded() {
    let s = faulty();
    let set = json!({"seed": 9, "rules": [{"route": "/health", "probability": 0.5, "error": {"status": 503, "body": {"message": "injected", "code": "x"}}}]});
    let pattern = |s: &Server| -> Vec<u16> {
        assert_eq!(s.post("/_testnode/faults", set.clone()).status, 200);
        (0..40).map(|_| s.get("/health").status).collect()
    };
    let a = pattern(&s);
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
    assert_eq!(a, pattern(&s), "same seed, same sequence");
    let r = s.post("/_testnode/faults", json!({"rules": [{"route": "/version", "error": {"status": 500, "body": {"message": "boom"}}}]}));
    assert_eq!(r.json()["rules"][0]["probability"], 1.0);
    let v = s.get("/version");
    assert_eq!((v.status, v.json()), (500, json!({"message": "boom"})));
    assert_eq!(
        s.get("/_testnode/faults").json()["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.delete("/_testnode/faults").status, 200);
    assert_eq!(s.get("/version").status, 200);
    s.post("/_testnode/faults", json!({"bogus": true}))
        .error(400, "bad_request");
}

#[test]
fn fault_latency_hang_and_drop() {
    let s = faulty();
    s.post(
        "/_testnode/faults",
        json!({"rules": [
            {"route": "/stats", "latencyMs": 20},
            {"route": "/version", "hang": true},
            {"route": "/indexes", "method": "GET", "drop": true}
        ]}),
    );
    // Latency: the answer still arrives and is correct.
    assert_eq!(s.get("/stats").status, 200);
    // Hang: no answer at all (the client gives up).
    let e = s
        .try_raw(
            "GET",
            "/version",
            None,
            None,
            Some(Duration::from_millis(300)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e:?}"
    );
    // Drop: the connection closes without a response.
    let e = s.try_raw("GET", "/indexes", None, None, None).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e:?}");
    // Other methods on the same prefix are untouched.
    assert_eq!(s.post("/indexes", json!({"uid": "ok"})).status, 202);
    s.delete("/_testnode/faults");
    assert_eq!(s.get("/indexes").status, 200);
}

#[test]
fn fault_stall_tasks_then_cancel() {
    let s = faulty();
    s.post("/_testnode/faults", json!({"stallTasks": true}));
    let a = s.post("/indexes", json!({"uid": "a"})).json()["taskUid"]
        .as_u64()
        .unwrap();
    let b = s.post("/indexes/a/documents", json!([{"id": 1}])).json()["taskUid"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.get(&format!("/tasks/{a}")).json()["status"], "enqueued");
    assert_eq!(s.get("/indexes/a").status, 404);
    let c = s
        .req("POST", &format!("/tasks/cancel?uids={b}"), None)
        .json()["taskUid"]
        .as_u64()
        .unwrap();
    s.delete("/_testnode/faults");
    let cancel = s.wait(c);
    assert_eq!(
        cancel["details"],
        json!({"matchedTasks": 1, "canceledTasks": 1, "originalFilter": format!("?uids={b}")})
    );
    let tb = s.wait(b);
    assert_eq!(tb["status"], "canceled");
    assert_eq!(tb["canceledBy"], c);
    assert_eq!(
        tb["details"],
        json!({"receivedDocuments": 1, "indexedDocuments": 0})
    );
    assert_eq!(s.wait(a)["status"], "succeeded");
    let l = s.get(&format!("/tasks?canceledBy={c}")).json();
    assert_eq!(l["total"], 1);
}

#[test]
fn counters_per_route_template() {
    let s = faulty();
    s.get("/health");
    s.get("/health");
    s.post("/indexes/a/search", json!({}));
    s.get("/indexes/b/documents/7");
    let c = s.get("/_testnode/counters").json();
    assert_eq!(c["GET /health"], 2);
    assert_eq!(c["POST /indexes/{uid}/search"], 1);
    assert_eq!(c["GET /indexes/{uid}/documents/{id}"], 1);
}

#[test]
fn control_routes_exist_only_with_faults_flag() {
    let s = Server::spawn(&[]);
    assert_eq!(s.get("/_testnode/counters").status, 404);
}

#[test]
fn canned_search_answers_file_bytes() {
    let file = std::env::temp_dir().join(format!("miroir-canned-{}.json", std::process::id()));
    let body = br#"{"hits":[{"id":1}],"query":"","processingTimeMs":0,"limit":20,"offset":0,"estimatedTotalHits":1}"#;
    std::fs::write(&file, body).unwrap();
    let s = Server::spawn(&["--canned-search", file.to_str().unwrap()]);
    let r = s.post("/indexes/anything/search", json!({"q": "x"}));
    assert_eq!((r.status, r.body.as_slice()), (200, &body[..]));
    let _ = std::fs::remove_file(&file);
}

#[test]
fn gzip_bodies_are_accepted() {
    use std::io::Write;
    let s = Server::spawn(&[]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(br#"[{"id":1,"t":"zipped"}]"#).unwrap();
    let gz = enc.finish().unwrap();
    let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
    let head = format!("POST /indexes/z/documents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gz.len());
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&gz).unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stream, &mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");
    s.wait(0);
    let v: Value = s.get("/indexes/z/documents/1").json();
    assert_eq!(v["t"], "zipped");
}

#[test]
fn dumps_are_written_under_the_db_path() {
    let dir = std::env::temp_dir().join(format!("miroir-testnode-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = Server::spawn(&["--db-path", dir.to_str().unwrap()]);
    s.task(s.post("/indexes/d/documents", json!([{"id": 1, "t": "x"}])));
    let t = s.task(s.req("POST", "/dumps", None));
    let uid = t["details"]["dumpUid"].as_str().unwrap().to_string();
    let dump: Value = serde_json::from_slice(
        &std::fs::read(dir.join("dumps").join(format!("{uid}.dump.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(dump["indexes"][0]["uid"], "d");
    assert_eq!(
        dump["indexes"][0]["documents"],
        json!([{"id": 1, "t": "x"}])
    );
    s.task(s.req("POST", "/snapshots", None));
    assert_eq!(std::fs::read_dir(dir.join("snapshots")).unwrap().count(), 1);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_writes_get_dense_unique_uids() {
    let s = std::sync::Arc::new(Server::spawn(&[]));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        s.post("/indexes/c/documents", json!([{"id": t * 100 + i}]))
                            .json()["taskUid"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut uids: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    uids.sort_unstable();
    assert_eq!(uids, (0..80).collect::<Vec<_>>());
    s.wait(79);
    assert_eq!(s.get("/indexes/c/stats").json()["numberOfDocuments"], 80);
    // Processed in uid order: each task started no earlier than the previous one finished.
    let tasks = s.get("/tasks?limit=80&reverse=true").json();
    let ts: Vec<(String, String)> = tasks["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["startedAt"].as_str().unwrap().to_string(),
                t["finishedAt"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for w in ts.windows(2) {
        let parse = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        assert!(parse(&w[1].0) >= parse(&w[0].1), "{w:?}");
    }
}

#[test]
fn keep_alive_connection_serves_several_requests() {
    use std::io::{Read, Write};
    let s = Server::spawn(&[]);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut seen = 0;
    let mut buf = Vec::new();
    for _ in 0..3 {
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // Read until this response's body is complete (fixed-size JSON body).
        let want = br#"{"status":"available"}"#;
        while !buf.windows(want.len()).any(|w| w == want) {
            let mut chunk = [0u8; 1024];
            let n = c.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed after {seen} responses");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert!(buf.starts_with(b"HTTP/1.1 200"));
        buf.clear();
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn similar_and_vector_queries_are_refused_honestly() {
    let s = Server::spawn(&[]);
    s.task(s.post("/indexes/v/documents", json!([{"id": 1}])));
    s.post(
        "/indexes/v/similar",
        json!({"id": 1, "embedder": "default"}),
    )
    .error(400, "invalid_similar_embedder");
    s.post("/indexes/nope/similar", json!({"id": 1}))
        .error(404, "index_not_found");
    // Without `hybrid`, Meilisearch's own validation error; with it, the honest refusal.
    s.post("/indexes/v/search", json!({"vector": [0.1, 0.2]}))
        .error(400, "missing_search_hybrid");
    s.post(
        "/indexes/v/search",
        json!({"vector": [0.1, 0.2], "hybrid": {"embedder": "default"}}),
    )
    .error(400, "bad_request");
}
