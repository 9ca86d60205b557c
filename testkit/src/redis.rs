//! A real `redis-server` on a loopback port: persistent (an append-only file fsynced every
//! second, as Miroir requires of a task store), or volatile for the tests of that refusal.

use crate::poll::{try_wait_until, within};
use crate::process::Proc;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// A `redis-server` killed on drop. A missing `redis-server` is a failure saying how to
/// install it, never a skip.
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
    dir: Option<tempfile::TempDir>,
}

impl Redis {
    /// On a free port.
    pub fn start() -> Redis {
        Redis::start_on(None)
    }

    /// On `port` (e.g. the port of a previous server, to restart it), or a free one.
    pub fn start_on(fixed_port: Option<u16>) -> Redis {
        Redis::start_with(
            fixed_port,
            &["--appendonly", "yes", "--appendfsync", "everysec"],
        )
    }

    /// Without persistence (`appendonly no`): what Miroir refuses as a task store.
    pub fn start_volatile() -> Redis {
        Redis::start_with(None, &["--appendonly", "no"])
    }

    fn start_with(fixed_port: Option<u16>, persistence: &[&str]) -> Redis {
        if let Err(e) = Command::new("redis-server").arg("--version").output() {
            panic!(
                "redis-server is required by this test and could not be run ({e}); install it \
                 (Debian: apt-get install -y redis-server)"
            );
        }
        // A free port found by binding and releasing can be taken by another process before
        // redis binds it: a server that exits at start is retried on a new port.
        let mut last = String::new();
        for _ in 0..5 {
            let port = fixed_port.unwrap_or_else(crate::free_port);
            let dir = crate::temp_dir("redis");
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--daemonize", "no"])
                .args(persistence)
                .arg("--dir")
                .arg(dir.path());
            let mut proc = Proc::spawn("redis-server", &mut cmd, dir.path().join("redis.log"));
            let ready = try_wait_until(within(Duration::from_secs(20)), || {
                proc.try_wait().is_some() || ping(port)
            });
            if ready.is_some() && proc.try_wait().is_none() {
                return Redis {
                    proc,
                    port,
                    dir: Some(dir),
                };
            }
            last = proc.died("did not start");
        }
        panic!("{last}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One RESP command; returns the first reply line (enough for PING and integer replies).
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        command(self.port, args)
    }
}

fn ping(port: u16) -> bool {
    command(port, &["PING"]).is_ok_and(|l| l == "+PONG")
}

fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
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
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.proc.kill();
        if let Some(d) = self.dir.take() {
            crate::keep_if_panicking(d);
        }
    }
}
