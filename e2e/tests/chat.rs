//! Chat completions (`POST /chats/{workspace}/chat/completions`, admin/src/chat): the
//! conversation Meilisearch 1.50 runs with a provider, its searches going through Miroir's
//! merged search. A fake provider (an OpenAI-compatible event stream, scripted: first a
//! `_meiliSearchInIndex` tool call, then two content chunks) records what it receives.
//!
//! The expected shapes were captured from a real Meilisearch 1.50 talking to the same script.

use miroir_e2e::{read_request, Client, Cluster, ClusterSpec};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request the provider got: its headers (and `:path`) and JSON body.
type Received = (BTreeMap<String, String>, Value);

/// The fake provider: its base URL and every request it got.
struct Llm {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
    gate: Arc<Gate>,
}

/// When armed, the provider holds its content answer until the test opens the gate (or a
/// minute passes: then `timed_out` tells the test the events did not arrive meanwhile).
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool, bool)>, // (armed, open, timed_out)
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut st = self.state.lock().unwrap();
        if !st.0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !st.1 {
            let now = Instant::now();
            if now >= deadline {
                st.2 = true;
                break;
            }
            st = self.cv.wait_timeout(st, deadline - now).unwrap().0;
        }
        st.0 = false;
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

fn sse(chunks: &[Value]) -> String {
    let mut out = String::new();
    for c in chunks {
        out.push_str(&format!("data: {c}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// The provider's answer to `req`: a tool call when the conversation has no tool answer yet,
/// content after; model `error` is refused as OpenAI refuses a bad key.
fn answer(req: &Value) -> (u16, &'static str, String) {
    let model = req["model"].as_str().unwrap_or_default();
    if model == "error" {
        let e = json!({"error": {"message": "bad key", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        return (401, "application/json", e.to_string());
    }
    let base = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model});
    let chunk = |choice: Value| {
        let mut c = base.clone();
        c["choices"] = json!([choice]);
        c
    };
    let answered = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["role"] == "tool");
    let body = if answered {
        sse(&[
            chunk(
                json!({"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": null}),
            ),
            chunk(json!({"index": 0, "delta": {"content": " world"}, "finish_reason": null})),
            chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"})),
        ])
    } else {
        let args = json!({"index_uid": "movies", "q": "star", "filter": ""}).to_string();
        sse(&[
            chunk(
                json!({"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "_meiliSearchInIndex", "arguments": ""}}
            ]}, "finish_reason": null}),
            ),
            chunk(json!({"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": args}}
            ]}, "finish_reason": null})),
            chunk(json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"})),
        ])
    };
    (200, "text/event-stream", body)
}

fn llm() -> Llm {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let gate = Arc::new(Gate::default());
    let llm_gate = gate.clone();
    std::thread::spawn(move || {
        let gate = llm_gate;
        for stream in listener.incoming().flatten() {
            let mut out = stream.try_clone().unwrap();
            let mut rd = BufReader::new(stream);
            let Ok(Some(served)) = read_request(&mut rd) else {
                continue;
            };
            let mut hs = served.headers;
            hs.insert(":path".to_string(), served.path);
            let body = served.body;
            let req: Value = serde_json::from_slice(&body).unwrap();
            let (status, ct, text) = answer(&req);
            if text.contains("Hello") {
                gate.wait();
            }
            g.lock().unwrap().push((hs, req));
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                text.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(text.as_bytes());
        }
    });
    Llm { base, got, gate }
}

/// The `data:` events of a stream (`[DONE]` as a string).
fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())))
        .collect()
}

fn completion(client: &Client, workspace: &str, body: &Value) -> miroir_e2e::Response {
    client
        .post_json(&format!("/chats/{workspace}/chat/completions"), body)
        .unwrap()
}

/// Meilisearch's default chat document template for these documents (every field
/// searchable, in document order).
fn render(hit: &Value) -> String {
    hit.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}: {s}\n"),
            other => format!("{k}: {other}\n"),
        })
        .collect()
}

#[test]
fn chat_completions_search_every_shard() {
    let llm = llm();
    let cluster = Cluster::start(ClusterSpec::default());
    let master = cluster.http();
    let ask = json!({"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": true,
        "tools": [{"type": "function", "function": {"name": "_meiliSearchProgress"}},
                  {"type": "function", "function": {"name": "_meiliSearchSources"}},
                  {"type": "function", "function": {"name": "_meiliAppendConversationMessage"}}]});

    // Feature off: refused as Meilisearch refuses it.
    let r = completion(&master, "ws", &ask);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "feature_not_enabled");
    cluster.change(
        "PATCH",
        "/experimental-features",
        &json!({"chatCompletions": true}),
    );

    // Documents that match `star` on several shards, among others that do not.
    let docs: Vec<Value> = (0..40)
        .map(|i| {
            let title = if i % 5 == 0 {
                format!("Star {i}")
            } else {
                format!("Other {i}")
            };
            json!({"id": i, "title": title, "genre": if i % 3 == 0 { "scifi" } else { "drama" }})
        })
        .collect();
    cluster.change("POST", "/indexes/movies/documents", &json!(docs));
    cluster.change(
        "PATCH",
        "/indexes/movies/settings",
        &json!({"filterableAttributes": ["genre"]}),
    );
    let holders = cluster
        .nodes
        .iter()
        .filter(|n| {
            let r = n.call(
                "POST",
                "/indexes/movies/search",
                Some(&json!({"q": "star"})),
            );
            r.json()["hits"].as_array().is_some_and(|h| !h.is_empty())
        })
        .count();
    assert!(holders >= 2, "the matching documents are all on one node");

    // Unknown workspace, then the workspace.
    let r = completion(&master, "ws", &ask);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["code"], "chat_not_found");
    assert_eq!(r.json()["message"], "Chat `ws` not found");
    cluster.change(
        "PATCH",
        "/chats/ws/settings",
        &json!({"source": "vLlm", "baseUrl": llm.base, "apiKey": "sk-test"}),
    );

    // Not streamed: refused as Meilisearch 1.50 refuses it.
    let mut plain = ask.clone();
    plain["stream"] = json!(false);
    let r = completion(&master, "ws", &plain);
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(
        r.json()["code"],
        "unimplemented_non_streaming_chat_completions"
    );

    let r = completion(&master, "ws", &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    let body = r.text();
    assert!(body.starts_with("retry: 10000\n\n"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // What the provider received: the system prompt, the search tool over `movies`, the key.
    let got = llm.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let (headers, first) = &got[0];
    assert_eq!(headers[":path"], "/v1/chat/completions");
    assert_eq!(headers["authorization"], "Bearer sk-test");
    assert_eq!(first["messages"][0]["role"], "system");
    assert_eq!(
        first["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
    let tools = first["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "the front-end tools are not the provider's");
    let tool = &tools[0]["function"];
    assert_eq!(tool["name"], "_meiliSearchInIndex");
    assert_eq!(
        tool["parameters"]["properties"]["index_uid"]["enum"],
        json!(["movies"])
    );
    let filter_doc = tool["parameters"]["properties"]["filter"]["description"]
        .as_str()
        .unwrap();
    assert!(
        filter_doc
            .ends_with("\n## Facet distributions of the movies index\ngenre: drama, scifi.\n\n"),
        "{filter_doc:?}"
    );
    assert!(
        first.get("stream_options").is_none(),
        "vLLM is not asked for usage"
    );

    // The tool answer holds the merged search's hits, rendered with the template.
    let merged = master
        .post_json("/indexes/movies/search", &json!({"q": "star"}))
        .unwrap()
        .json();
    let hits = merged["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 8);
    let expected: Vec<String> = hits.iter().map(render).collect();
    let second = &got[1].1;
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "_meiliSearchInIndex", "arguments": "{\"index_uid\":\"movies\",\"q\":\"star\",\"filter\":\"\"}"}}]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "content": expected.join("\n"), "tool_call_id": "call_1"})
    );

    // What the client received, in Meilisearch's order and shapes.
    let ev = events(&body);
    let names: Vec<String> = ev
        .iter()
        .map(|e| {
            let d = &e["choices"][0]["delta"];
            match d["tool_calls"][0]["function"]["name"].as_str() {
                Some(n) => n.to_string(),
                None if e.is_string() => e.as_str().unwrap().to_string(),
                None => format!("content:{}", d["content"]),
            }
        })
        .collect();
    assert_eq!(
        names,
        [
            "_meiliSearchProgress",
            "_meiliAppendConversationMessage",
            "_meiliSearchSources",
            "_meiliAppendConversationMessage",
            "content:\"Hello\"",
            "content:\" world\"",
            "content:null",
            "[DONE]"
        ]
    );
    let sources: Value = serde_json::from_str(
        ev[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sources, json!({"call_id": "call_1", "sources": hits}));
    let progress: Value = serde_json::from_str(
        ev[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(progress["call_id"], "call_1");
    assert_eq!(progress["function_name"], "_meiliSearchInIndex");
    // A forwarded chunk, exactly as Meilisearch re-serialises it.
    assert_eq!(
        ev[5].to_string(),
        r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" world","function_call":null,"tool_calls":null,"role":null,"refusal":null},"finish_reason":null,"logprobs":null}],"created":1,"model":"m1","service_tier":null,"system_fingerprint":null,"object":"chat.completion.chunk","usage":null}"#
    );
    assert_eq!(ev[6]["choices"][0]["finish_reason"], "stop");

    // A provider's refusal is relayed in the stream.
    let mut bad = ask.clone();
    bad["model"] = json!("error");
    let r = completion(&master, "ws", &bad);
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = events(&r.text());
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["type"], "error");
    assert_eq!(
        ev[0]["error"],
        json!({"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key", "param": null, "event_id": null})
    );
    assert_eq!(ev[1], "[DONE]");

    // Keys: without the action refused; with it (and `search`), the conversation searches as
    // that key.
    let key = |actions: Value| {
        let k = cluster.change(
            "POST",
            "/keys",
            &json!({"actions": actions, "indexes": ["*"], "expiresAt": null}),
        );
        Client::tcp(cluster.addr).bearer(k["key"].as_str().unwrap())
    };
    let r = completion(&key(json!(["search"])), "ws", &ask);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["code"], "invalid_api_key");
    let r = completion(&Client::tcp(cluster.addr), "ws", &ask);
    assert_eq!(r.status, 401, "{}", r.text());
    let before = llm.got.lock().unwrap().len();
    let r = completion(&key(json!(["search", "chatCompletions"])), "ws", &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = llm.got.lock().unwrap().clone();
    assert_eq!(got.len(), before + 2);
    assert_eq!(
        got[before + 1].1["messages"][3]["content"],
        expected.join("\n")
    );

    // A tenant token: its rules' filter applies to the conversation's searches and to the
    // facet distributions declared to the provider.
    let parent = cluster.change(
        "POST",
        "/keys",
        &json!({"actions": ["search", "chatCompletions"], "indexes": ["*"], "expiresAt": null}),
    );
    let token = miroir_testkit::tenant_token(
        parent["key"].as_str().unwrap(),
        &json!({"apiKeyUid": parent["uid"], "searchRules": {"movies": {"filter": "genre = scifi"}}}),
    );
    let before = llm.got.lock().unwrap().len();
    let r = completion(&Client::tcp(cluster.addr).bearer(&token), "ws", &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = llm.got.lock().unwrap().clone();
    let filter_doc = got[before].1["tools"][0]["function"]["parameters"]["properties"]["filter"]
        ["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        filter_doc.ends_with("index\ngenre: scifi.\n\n"),
        "{filter_doc:?}"
    );
    let scifi: Vec<String> = hits
        .iter()
        .filter(|h| h["genre"] == "scifi")
        .map(render)
        .collect();
    assert!(!scifi.is_empty() && scifi.len() < hits.len());
    assert_eq!(
        got[before + 1].1["messages"][3]["content"],
        scifi.join("\n")
    );

    // The index's chat settings (real nodes only: the test node does not implement them):
    // description, document template and search parameters are the index's.
    if miroir_e2e::real_meilisearch().is_some() {
        let chat = json!({"chat": {"description": "Movies index", "documentTemplate": "{{ doc.title }}!",
            "searchParameters": {"limit": 3, "sort": ["id:desc"]}}});
        cluster.change(
            "PATCH",
            "/indexes/movies/settings",
            &json!({"sortableAttributes": ["id"]}),
        );
        cluster.change("PATCH", "/indexes/movies/settings", &chat);
        let before = llm.got.lock().unwrap().len();
        let r = completion(&master, "ws", &ask);
        assert_eq!(r.status, 200, "{}", r.text());
        let got = llm.got.lock().unwrap().clone();
        let description = got[before].1["tools"][0]["function"]["description"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            description.ends_with("\n\n - movies: Movies index\n\n"),
            "{description:?}"
        );
        let top: Vec<String> = [35, 30, 25].iter().map(|i| format!("Star {i}!")).collect();
        assert_eq!(got[before + 1].1["messages"][3]["content"], top.join("\n"));
    }

    // Deleting the workspace forgets it.
    let r = master.delete("/chats/ws").unwrap();
    assert!(r.status < 300, "{}", r.text());
    assert_eq!(completion(&master, "ws", &ask).status, 404);
}

/// Reads a chunked body from `rd` chunk by chunk, calling `seen` with the body so far after
/// each chunk; returns the whole body.
fn read_chunked(rd: &mut impl BufRead, mut seen: impl FnMut(&str)) -> String {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        rd.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; n + 2];
        rd.read_exact(&mut chunk).unwrap();
        if n == 0 {
            return String::from_utf8(body).unwrap();
        }
        body.extend_from_slice(&chunk[..n]);
        seen(std::str::from_utf8(&body).unwrap());
    }
}

#[test]
fn events_reach_the_client_as_they_are_produced() {
    let llm = llm();
    let cluster = Cluster::start(ClusterSpec::default());
    cluster.change(
        "PATCH",
        "/experimental-features",
        &json!({"chatCompletions": true}),
    );
    let docs: Vec<Value> = (0..6)
        .map(|i| json!({"id": i, "title": format!("Star {i}")}))
        .collect();
    cluster.change("POST", "/indexes/movies/documents", &json!(docs));
    cluster.change(
        "PATCH",
        "/chats/ws/settings",
        &json!({"source": "vLlm", "baseUrl": llm.base}),
    );
    // The provider holds its content until the client has the search's sources: only an
    // answer relayed as it is produced lets the conversation finish before the gate's minute.
    llm.gate.state.lock().unwrap().0 = true;
    let body =
        json!({"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": true,
        "tools": [{"type": "function", "function": {"name": "_meiliSearchSources"}}]})
        .to_string();
    let mut conn = TcpStream::connect(cluster.addr).unwrap();
    write!(
        conn,
        "POST /chats/ws/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        cluster.spec.master_key,
        body.len()
    )
    .unwrap();
    let mut rd = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut l = String::new();
        rd.read_line(&mut l).unwrap();
        if l == "\r\n" {
            break;
        }
        head.push_str(&l.to_ascii_lowercase());
    }
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    let gate = llm.gate.clone();
    let text = read_chunked(&mut rd, |so_far| {
        if so_far.contains("_meiliSearchSources") {
            gate.open();
        }
    });
    assert!(
        !llm.gate.state.lock().unwrap().2,
        "the events arrived only at the end"
    );
    assert!(text.starts_with("retry: 10000\n\n"), "{text}");
    assert!(text.contains("\"content\":\"Hello\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}
