//! The `miroir-dataplane` binary: starts from a config file, follows the LMDB snapshot,
//! heartbeats over the control socket, exits 0 on SIGTERM. Run with `server.io: epoll`, with
//! `MONOIO_FORCE_LEGACY_DRIVER=1`, and with io_uring when available.

mod transport_support;

use miroir_core::snapshot::Snapshot;
use miroir_core::snapshot_store::SnapshotStore;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use transport_support::Client;

struct Dataplane {
    child: Child,
    addr: std::net::SocketAddr,
    io_backend: String,
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miroir-dataplane"));
    cmd.arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Dataplane {
        addr: v["listening"].as_str().unwrap().parse().unwrap(),
        io_backend: v["io_backend"].as_str().unwrap().to_string(),
        child,
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> transport_support::Reply {
    let mut c = Client::connect(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    c.reply().unwrap()
}

fn sigterm_and_wait(mut dp: Dataplane) -> i32 {
    // SAFETY: sending a signal to our own child process by its pid.
    unsafe { libc::kill(dp.child.id() as i32, libc::SIGTERM) };
    dp.child.wait().unwrap().code().expect("exited, not killed")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("miroir-dp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("data")).unwrap();
    d
}

#[test]
fn follows_snapshots_heartbeats_and_exits_cleanly() {
    let mut ios = vec!["epoll"];
    if monoio::utils::detect_uring() {
        ios.push("io_uring");
    }
    for io in ios {
        let dir = tmpdir(io);
        let sock = dir.join("data").join("control.sock");
        let control = UnixListener::bind(&sock).unwrap();
        let dp = start(&dir, io, &[]);
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
        let mut tries = 0;
        loop {
            let r = get(dp.addr, "/indexes/movies/search");
            if r.status != 503 {
                // The proxy now routes with the snapshot (which has no such index).
                assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
                break;
            }
            tries += 1;
            assert!(tries < 2000, "snapshot never applied");
            std::thread::sleep(Duration::from_millis(5));
        }

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
            assert_eq!(body["pid"], dp.child.id());
            if body["generation"] == generation && body["epoch"] == 5 {
                saw = true;
                break;
            }
        }
        assert!(saw, "no heartbeat carried the published generation");
        assert_eq!(sigterm_and_wait(dp), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn forced_legacy_driver_and_config_errors() {
    let dir = tmpdir("legacy");
    let dp = start(&dir, "auto", &[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
    assert_eq!(dp.io_backend, "epoll");
    assert_eq!(get(dp.addr, "/health").status, 200);
    assert_eq!(sigterm_and_wait(dp), 0);

    // An invalid configuration is exit code 2 with a message naming the key.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "server:\n  nope: 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_miroir-dataplane"))
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
    let _ = std::fs::remove_dir_all(&dir);
}
