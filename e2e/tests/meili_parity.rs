//! Meilisearch 1.50 behaviours SDKs notice, compared with one node: the same requests go to
//! a lone node and to Miroir over three nodes, and the answers (status and body) must be the
//! same.

use miroir_e2e::{start_node, temp_dir, Client, Cluster, ClusterSpec, TestNode};
use serde_json::{json, Value};

const KEY: &str = "parity-master-key";

/// Fields drop in order: the processes stop before their directory goes.
struct Pair {
    one: TestNode,
    cluster: Cluster,
    _dir: miroir_testkit::TempDir,
}

fn pair() -> Pair {
    let dir = temp_dir("parity");
    let one = start_node(dir.path(), "one", KEY);
    let cluster = Cluster::start(ClusterSpec {
        master_key: KEY.into(),
        ..ClusterSpec::default()
    });
    Pair {
        one,
        cluster,
        _dir: dir,
    }
}

/// Status and JSON body (`Null` when empty).
fn answer(c: &Client, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let r = c.call(method, path, body);
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

impl Pair {
    /// Sends the request to both sides and asserts the same answer; returns it.
    fn same(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let a = answer(&self.one.http(), method, path, body);
        let b = answer(&self.cluster.http(), method, path, body);
        assert_eq!(b, a, "{method} {path}: Miroir (left) and one node (right)");
        a
    }
}

#[test]
fn chat_workspaces_as_one_node() {
    let p = pair();
    // Behind the experimental feature, as on Meilisearch.
    assert_eq!(p.same("GET", "/chats", None).0, 400);
    let on = json!({"chatCompletions": true});
    p.same("PATCH", "/experimental-features", Some(&on));
    assert_eq!(p.same("GET", "/chats/w/settings", None).0, 404);
    let settings = json!({"apiKey": "sk-0123456789", "prompts": {"system": "Be brief."}});
    let (status, got) = p.same("PATCH", "/chats/w/settings", Some(&settings));
    assert_eq!((status, &got["apiKey"]), (200, &json!("skXXXX...")));
    // Every node holds the workspace (a completion may be served by any of them).
    for n in &p.cluster.nodes {
        assert_eq!(n.call("GET", "/chats/w/settings", None).status, 200);
    }
    p.same("GET", "/chats", None);
    p.same("GET", "/chats?offset=1&limit=1", None);
    p.same("GET", "/chats/w", None);
    p.same("GET", "/chats/w/settings", None);
    assert_eq!(
        p.same("PATCH", "/chats/w/settings", Some(&json!({"nope": 1})))
            .0,
        400
    );
    p.same(
        "PATCH",
        "/chats/w/settings",
        Some(&json!({"source": "mistral"})),
    );
    p.same("DELETE", "/chats/w/settings", None);
    assert_eq!(p.same("DELETE", "/chats/w", None).0, 204);
    assert_eq!(p.same("DELETE", "/chats/w", None).0, 404);
    assert_eq!(p.same("PUT", "/chats/w/settings", Some(&json!({}))).0, 405);
    p.same("GET", "/chats", None);
    for n in &p.cluster.nodes {
        assert_eq!(n.call("GET", "/chats/w", None).status, 404);
    }
}

/// The SDKs' `DELETE /tasks?uids=N` right after enqueuing N: the task is gone once the
/// deletion task is done, although N was still running when it was asked for.
#[test]
fn deleting_a_task_just_enqueued_deletes_it() {
    let p = pair();
    let docs: Vec<Value> = (0..200)
        .map(|i| json!({"id": i, "title": format!("movie {i}")}))
        .collect();
    for (name, c) in [("one node", p.one.http()), ("Miroir", p.cluster.http())] {
        let r = c.call("POST", "/indexes/movies/documents", Some(&json!(docs)));
        assert_eq!(r.status, 202, "{name}: {}", r.text());
        let added = r.json()["taskUid"].as_u64().unwrap();
        let r = c.call("DELETE", &format!("/tasks?uids={added}"), None);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let deletion = miroir_testkit::wait_task(&c, r.json()["taskUid"].as_u64().unwrap());
        assert_eq!(deletion["status"], "succeeded", "{name}: {deletion}");
        assert_eq!(
            deletion["details"],
            json!({"matchedTasks": 1, "deletedTasks": 1, "originalFilter": format!("?uids={added}")}),
            "{name}"
        );
        let r = c.call("GET", &format!("/tasks/{added}"), None);
        assert_eq!(r.status, 404, "{name}: {}", r.text());
        assert_eq!(r.json()["code"], "task_not_found", "{name}");
        // The documents were written all the same.
        let r = c.call("GET", "/indexes/movies/documents?limit=1", None);
        assert_eq!(r.json()["total"], 200, "{name}: {}", r.text());
    }
}
