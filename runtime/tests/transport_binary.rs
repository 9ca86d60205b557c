//! The `miroir-dataplane` binary: starts from a config file, follows the LMDB snapshot,
//! heartbeats over the control socket, exits 0 on SIGTERM. Run with `server.io: epoll`, with
//! `MONOIO_FORCE_LEGACY_DRIVER=1`, and with io_uring when available.

mod transport_support;

use miroir_core::snapshot::Snapshot;
use miroir_core::snapshot_store::SnapshotStore;
use miroir_testkit::{wait_until, within, Proc};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use transport_support::Client;

struct Dataplane {
    proc: Proc,
    addr: std::net::SocketAddr,
    io_backend: String,
}

fn start(dir: &Path, io: &str, env: &[(&str, &str)]) -> Dataplane {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\nnodes:\n  - id: n0\n    address: http://127.0.0.1:9\nserver:\n  bind: 127.0.0.1\n  port: 0\n  workers: 2\n  io: {io}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(miroir_testkit::bin("miroir-dataplane"));
    cmd.arg("--config").arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn("miroir-dataplane", &mut cmd, dir.join("dataplane.log"));
    // The line on stdout `{"listening": …, "io_backend": …}` (stderr shares the log).
    const PREFIX: &str = "{\"listening\":";
    let line = format!(
        "{PREFIX}{}",
        proc.wait_for_line(PREFIX, within(Duration::from_secs(30)))
    );
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Dataplane {
        addr: v["listening"].as_str().unwrap().parse().unwrap(),
        io_backend: v["io_backend"].as_str().unwrap().to_string(),
        proc,
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> transport_support::Reply {
    let mut c = Client::connect(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    c.reply().unwrap()
}

fn sigterm_and_wait(mut dp: Dataplane) -> i32 {
    dp.proc.terminate().code().expect("exited, not killed")
}

/// A temporary directory with a `data` subdirectory.
fn tmpdir(name: &str) -> miroir_testkit::TempDir {
    let d = miroir_testkit::temp_dir(&format!("dp-{name}"));
    std::fs::create_dir_all(d.path().join("data")).unwrap();
    d
}

#[test]
fn follows_snapshots_heartbeats_and_exits_cleanly() {
    let mut ios = vec!["epoll"];
    if monoio::utils::detect_uring() {
        ios.push("io_uring");
    }
    for io in ios {
        let tmp = tmpdir(io);
        let dir = tmp.path();
        let sock = dir.join("data").join("control.sock");
        let control = UnixListener::bind(&sock).unwrap();
        let dp = start(dir, io, &[]);
        assert_eq!(dp.io_backend, io);

        assert_eq!(get(dp.addr, "/health").status, 200);
        // No snapshot yet: routes that need one say the admin is unavailable.
        get(dp.addr, "/indexes/movies/search").assert_error(503, "miroir_admin_unavailable");

        // Publish a snapshot the way the admin does; the watcher picks it up.
        let store = SnapshotStore::open(&dir.join("data").join("snapshot")).unwrap();
        let generation = store
            .publish(&Snapshot {
                epoch: 5,
                ..Default::default()
            })
            .unwrap();
        wait_until(
            within(Duration::from_secs(30)),
            "the snapshot applied",
            || {
                let r = get(dp.addr, "/indexes/movies/search");
                if r.status == 503 {
                    return false;
                }
                // The proxy now routes with the snapshot (which has no such index).
                assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
                true
            },
        );

        // Heartbeats report the applied generation and epoch.
        let mut saw = false;
        for _ in 0..40 {
            let (mut s, _) = control.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"}") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            if !req.ends_with(b"}") {
                continue;
            }
            // Heartbeats that waited in the backlog past their 250 ms budget were abandoned by
            // the data plane: answering them may fail, which is fine.
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            let text = String::from_utf8(req).unwrap();
            assert!(text.starts_with("POST /_internal/v1/heartbeat HTTP/1.1\r\n"));
            let body: serde_json::Value =
                serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
            assert_eq!(body["pid"], dp.proc.id());
            if body["generation"] == generation && body["epoch"] == 5 {
                saw = true;
                break;
            }
        }
        assert!(saw, "no heartbeat carried the published generation");
        assert_eq!(sigterm_and_wait(dp), 0);
    }
}

#[test]
fn forced_legacy_driver_and_config_errors() {
    let tmp = tmpdir("legacy");
    let dir = tmp.path();
    let dp = start(dir, "auto", &[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
    assert_eq!(dp.io_backend, "epoll");
    assert_eq!(get(dp.addr, "/health").status, 200);
    assert_eq!(sigterm_and_wait(dp), 0);

    // An invalid configuration is exit code 2 with a message naming the key.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "server:\n  nope: 1\n").unwrap();
    let out = Command::new(miroir_testkit::bin("miroir-dataplane"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
