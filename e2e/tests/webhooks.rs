//! Webhooks for Miroir's own tasks (admin/src/webhooks): a receiver gets every finished task
//! once, as one Meilisearch sends them (a `POST` of gzip-compressed NDJSON with the webhook's
//! headers), also when deliveries failed for a while and the admin was restarted meanwhile.

use miroir_e2e::{read_request, wait_until, within, ClusterSpec, Deployment, DeploymentOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A tiny HTTP/1.1 receiver: records every task uid it gets and the requests' headers;
/// answers 503 while `refuse` is set.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<u64>>>,
    headers: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    refuse: Arc<AtomicBool>,
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let headers = Arc::new(Mutex::new(Vec::new()));
    let refuse = Arc::new(AtomicBool::new(false));
    let (g, h, r) = (got.clone(), headers.clone(), refuse.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (g, h, r) = (g.clone(), h.clone(), r.clone());
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut rd = BufReader::new(stream);
                // Keep-alive: one request after another on the connection.
                loop {
                    let Ok(Some(served)) = read_request(&mut rd) else {
                        return;
                    };
                    let (hs, body) = (served.headers, served.body);
                    if r.load(Ordering::SeqCst) {
                        out.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
                        )
                        .unwrap();
                        continue;
                    }
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut text)
                        .unwrap();
                    let mut uids = Vec::new();
                    for l in text.lines() {
                        let task: Value = serde_json::from_str(l).unwrap();
                        assert!(
                            ["succeeded", "failed", "canceled"]
                                .contains(&task["status"].as_str().unwrap()),
                            "{task}"
                        );
                        uids.push(task["uid"].as_u64().unwrap());
                    }
                    g.lock().unwrap().extend(uids);
                    h.lock().unwrap().push(hs);
                    out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    Receiver {
        url,
        got,
        headers,
        refuse,
    }
}

fn add(d: &Deployment, from: u64) -> u64 {
    let docs: Vec<Value> = (from..from + 5)
        .map(|i| json!({"id": i, "title": format!("doc {i}")}))
        .collect();
    d.write_ok("POST", "/indexes/movies/documents", &json!(docs))
}

/// Waits until the receiver got exactly `expected` (each once).
fn wait_delivered(rx: &Receiver, expected: &[u64]) {
    wait_until(
        within(Duration::from_secs(30)),
        "the webhook to receive the finished tasks",
        || rx.got.lock().unwrap().len() >= expected.len(),
    );
    let mut got = rx.got.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, expected, "each finished task once");
}

#[test]
fn every_finished_task_is_delivered_once_also_across_an_admin_restart() {
    let mut d = Deployment::start(&ClusterSpec::default(), &DeploymentOptions::default());
    let rx = receiver();
    // A task before the webhook exists is not sent.
    let before = add(&d, 0);
    let r = d.http().call(
        "POST",
        "/webhooks",
        Some(&json!({"url": rx.url, "headers": {"Authorization": "Bearer a-long-secret-token", "x-origin": "miroir"}})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let hook = r.json();
    assert_eq!(hook["isEditable"], true);
    assert_eq!(hook["headers"]["Authorization"], "Bearer a-XXXX...");
    assert_eq!(hook["headers"]["x-origin"], "miroir");
    let uuid = hook["uuid"].as_str().unwrap().to_string();
    let listed = d.http().call("GET", "/webhooks", None).json();
    assert_eq!(listed, json!({"results": [hook]}));

    let mut expected: Vec<u64> = (0..3).map(|i| add(&d, 10 + i * 10)).collect();
    wait_delivered(&rx, &expected);
    assert!(!rx.got.lock().unwrap().contains(&before));
    let hs = rx.headers.lock().unwrap()[0].clone();
    assert_eq!(hs["authorization"], "Bearer a-long-secret-token");
    assert_eq!(hs["x-origin"], "miroir");
    assert_eq!(hs["content-type"], "application/x-ndjson");
    assert_eq!(hs["content-encoding"], "gzip");

    // The receiver refuses for a while: tasks pile up, the admin restarts, then they arrive,
    // each once, and nothing delivered before comes again.
    rx.refuse.store(true, Ordering::SeqCst);
    expected.extend((0..2).map(|i| add(&d, 100 + i * 10)));
    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    expected.push(add(&d, 200));
    rx.refuse.store(false, Ordering::SeqCst);
    wait_delivered(&rx, &expected);
    // Nothing more arrives (no duplicate after the restart).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.got.lock().unwrap().len(), expected.len());

    // CRUD: a PATCH merges headers, a DELETE stops the calls.
    let r = d.http().call(
        "PATCH",
        &format!("/webhooks/{uuid}"),
        Some(&json!({"headers": {"x-origin": null}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["headers"],
        json!({"Authorization": "Bearer a-XXXX..."})
    );
    assert_eq!(
        d.http()
            .call("DELETE", &format!("/webhooks/{uuid}"), None)
            .status,
        204
    );
    let r = d.http().call("GET", &format!("/webhooks/{uuid}"), None);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (404, json!("webhook_not_found"))
    );
    let r = d.http().call("GET", "/webhooks/not-a-uuid", None);
    assert_eq!(r.json()["code"], "invalid_webhook_uuid");
}

/// The configured webhook (`task_webhook`, Meilisearch's `--task-webhook-url`): listed with the
/// nil uuid, not editable, called like the others.
#[test]
fn the_configured_webhook_is_listed_immutable_and_called() {
    let rx = receiver();
    let d = Deployment::start(
        &ClusterSpec {
            extra_yaml: format!(
                "task_webhook: {{ url: \"{}\", authorization_header: \"Bearer abcdefghijklmnop\" }}\n",
                rx.url
            ),
            ..ClusterSpec::default()
        },
        &DeploymentOptions::default(),
    );
    let nil = "00000000-0000-0000-0000-000000000000";
    let listed = d.http().call("GET", "/webhooks", None).json();
    assert_eq!(
        listed,
        json!({"results": [{"uuid": nil, "isEditable": false, "url": rx.url, "headers": {"Authorization": "Bearer abXXXX..."}}]})
    );
    for (method, body) in [
        ("PATCH", Some(json!({"url": "http://x"}))),
        ("DELETE", None),
    ] {
        let r = d
            .http()
            .call(method, &format!("/webhooks/{nil}"), body.as_ref());
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (400, json!("immutable_webhook"))
        );
    }
    let uid = add(&d, 0);
    wait_delivered(&rx, &[uid]);
    assert_eq!(
        rx.headers.lock().unwrap()[0]["authorization"],
        "Bearer abcdefghijklmnop"
    );
}
