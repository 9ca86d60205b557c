//! Test support: a `miroir-testnode` started by the workspace test kit (`miroir-testkit`) on
//! a port of its choosing (or the real Meilisearch at `MEILI_URL`), and an order-preserving
//! JSON view so tests can assert exact key sets *and* key order.

#![allow(dead_code)]

use miroir_testkit::{Client, NodeSpec, TestNode};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use miroir_testkit::Response as Resp;

pub const MASTER_KEY: &str = "test-master-key-0123456789";

/// A server under test: a spawned test node, or the real Meilisearch at `MEILI_URL`.
pub struct Server {
    pub addr: String,
    pub key: Option<String>,
    node: Option<TestNode>,
    pub db_path: Option<std::path::PathBuf>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique index name, so suites can share one real Meilisearch.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn real_meili() -> Option<(String, Option<String>)> {
    let url = std::env::var("MEILI_URL").ok()?;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    Some((addr, std::env::var("MEILI_MASTER_KEY").ok()))
}

impl Server {
    /// The default target: `MEILI_URL` if set, else a fresh test node without a master key.
    pub fn start() -> Server {
        match real_meili() {
            Some((addr, key)) => Server {
                addr,
                key,
                node: None,
                db_path: None,
            },
            None => Server::spawn(&[]),
        }
    }

    /// A target with a master key (the real server must have been started with one).
    pub fn start_with_key() -> Server {
        match real_meili() {
            Some((addr, key)) => Server {
                addr,
                key: Some(key.expect("MEILI_MASTER_KEY is needed for auth tests")),
                node: None,
                db_path: None,
            },
            None => {
                let mut s = Server::spawn(&["--master-key", MASTER_KEY]);
                s.key = Some(MASTER_KEY.into());
                s
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.node.as_ref().and_then(TestNode::pid)
    }

    pub fn is_testnode(&self) -> bool {
        self.node.is_some()
    }

    /// Spawns the binary with these arguments on port 0; returns once it listens.
    pub fn spawn(extra: &[&str]) -> Server {
        let node = TestNode::start(NodeSpec {
            args: extra.iter().map(|a| a.to_string()).collect(),
            ..NodeSpec::default()
        });
        let key = extra
            .windows(2)
            .find(|w| w[0] == "--master-key")
            .map(|w| w[1].to_string());
        let db_path = extra
            .windows(2)
            .find(|w| w[0] == "--db-path")
            .map(|w| w[1].into());
        Server {
            addr: node.addr.to_string(),
            key,
            node: Some(node),
            db_path,
        }
    }

    /// SIGKILL (no shutdown path runs), like a crash.
    pub fn kill9(&mut self) {
        if let Some(mut n) = self.node.take() {
            n.kill();
        }
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let b = body.map(|b| serde_json::to_vec(b).unwrap());
        self.raw(
            method,
            path,
            b.as_deref().map(|b| ("application/json", b)),
            self.key.as_deref(),
        )
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }
    pub fn post(&self, path: &str, body: Value) -> Resp {
        self.req("POST", path, Some(&body))
    }
    pub fn put(&self, path: &str, body: Value) -> Resp {
        self.req("PUT", path, Some(&body))
    }
    pub fn patch(&self, path: &str, body: Value) -> Resp {
        self.req("PATCH", path, Some(&body))
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path, None)
    }

    /// One request on a fresh connection; `body` = (content type, bytes).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        key: Option<&str>,
    ) -> Resp {
        self.try_raw(method, path, body, key, None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        key: Option<&str>,
        timeout: Option<Duration>,
    ) -> std::io::Result<Resp> {
        let mut c = Client::tcp(&self.addr).timeout(timeout.unwrap_or(Duration::from_secs(60)));
        if let Some(k) = key {
            c = c.bearer(k);
        }
        c.send(method, path, body)
    }

    /// Polls a task until it is finished and returns its view.
    pub fn wait(&self, uid: u64) -> Value {
        let mut c = Client::tcp(&self.addr);
        if let Some(k) = &self.key {
            c = c.bearer(k);
        }
        miroir_testkit::wait_task(&c, uid)
    }

    /// Sends a write, asserts the 202 summary, waits and returns the finished task.
    pub fn task(&self, r: Resp) -> Value {
        assert_eq!(r.status, 202, "{}", r.text());
        let uid = r.json()["taskUid"].as_u64().expect("taskUid");
        self.wait(uid)
    }

    /// Like [`Server::task`] for the routes answering 200 with a task summary (task
    /// cancelation and deletion).
    pub fn task_200(&self, r: Resp) -> Value {
        assert_eq!(r.status, 200, "{}", r.text());
        let uid = r.json()["taskUid"].as_u64().expect("taskUid");
        self.wait(uid)
    }
}

/// This suite's assertions on responses.
pub trait RespExt {
    /// The body as order-preserving JSON.
    fn ordered(&self) -> OJ;
    /// Asserts a Meilisearch error body and returns it.
    fn error(&self, status: u16, code: &str) -> Value;
}

impl RespExt for Resp {
    fn ordered(&self) -> OJ {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.ordered().keys(),
            ["message", "code", "type", "link"],
            "{}",
            self.text()
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{}", self.text());
        assert_eq!(
            v["link"],
            format!("https://docs.meilisearch.com/errors#{code}")
        );
        v
    }
}

/// Order-preserving JSON, for key-order assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum OJ {
    V(Value),
    O(Vec<(String, OJ)>),
    A(Vec<OJ>),
}

impl OJ {
    pub fn keys(&self) -> Vec<&str> {
        match self {
            OJ::O(o) => o.iter().map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        }
    }
    pub fn at(&self, key: &str) -> &OJ {
        match self {
            OJ::O(o) => o
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key}")),
            _ => panic!("not an object"),
        }
    }
    pub fn idx(&self, i: usize) -> &OJ {
        match self {
            OJ::A(a) => &a[i],
            _ => panic!("not an array"),
        }
    }
}

impl<'de> Deserialize<'de> for OJ {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OJ;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, b: bool) -> Result<OJ, E> {
                Ok(OJ::V(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<OJ, E> {
                Ok(OJ::V(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<OJ, E> {
                Ok(OJ::V(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<OJ, E> {
                Ok(OJ::V(n.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<OJ, E> {
                Ok(OJ::V(Value::String(s.into())))
            }
            fn visit_unit<E>(self) -> Result<OJ, E> {
                Ok(OJ::V(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<OJ, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_element()? {
                    v.push(e);
                }
                Ok(OJ::A(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<OJ, A::Error> {
                let mut v = Vec::new();
                while let Some((k, e)) = a.next_entry::<String, OJ>()? {
                    v.push((k, e));
                }
                Ok(OJ::O(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// RFC 3339 UTC with a fraction and `Z` (what SDKs require).
pub fn is_timestamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() >= 22 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.contains('.')
    })
}

/// A hyphenated UUID of version 7 (what Meilisearch 1.50 puts in `requestUid`).
pub fn is_uuid_v7(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
            && parts[2].starts_with('7')
    })
}

/// ISO 8601 duration as Meilisearch writes it (`PT0.001234S`).
pub fn is_duration(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.starts_with("PT") && s.ends_with('S') && s[2..s.len() - 1].parse::<f64>().is_ok()
    })
}
