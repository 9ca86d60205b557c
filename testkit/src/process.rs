//! Child processes killed on drop, their stdout and stderr in a log file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

/// A child process, `kill -9`ed and reaped on drop: tests never leave processes behind.
///
/// Its stdout and stderr are appended to one log file (a restarted process appends to the same
/// file), so a test that fails because a process died can say which one and where its log is.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` (stdin from /dev/null) with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: impl Into<PathBuf>) -> Proc {
        let log = log.into();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("opening the log of {name} at {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning a log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({:?}): {e}", cmd.get_program()));
        Proc {
            name: name.to_string(),
            child,
            log,
            exited: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it has exited (reaping it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> ExitStatus {
        if self.exited.is_none() {
            self.exited = Some(self.child.wait().expect("wait"));
        }
        self.exited.unwrap()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`); nothing when it has exited already.
    pub fn signal(&mut self, signal: i32) {
        if self.try_wait().is_none() {
            // SAFETY: kill(2) on the pid of our own unreaped child, which cannot have been
            // reused (an unreaped child keeps its pid).
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    /// `kill -9` and reap; nothing when it has exited already.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.wait();
        }
    }

    /// Panics saying which process died, how, and where its log is, when it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!("{}", self.died(&format!("exited ({status})")));
        }
    }

    /// The message naming this process, `what` happened, its log and the log's last lines.
    pub fn died(&self, what: &str) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{} (pid {}) {what}; its log is {}; last lines:\n{}",
            self.name,
            self.child.id(),
            self.log.display(),
            tail.join("\n")
        )
    }

    /// Waits until a line of its output starts with `prefix` (counting from the start of the
    /// log, so a restarted process sharing its log must use [`Proc::wait_for_line_after`]);
    /// returns the rest of the line, trimmed. Panics when the process exits first or at
    /// `deadline`.
    pub fn wait_for_line(&mut self, prefix: &str, deadline: Instant) -> String {
        self.wait_for_line_after(0, prefix, deadline)
    }

    /// Like [`Proc::wait_for_line`], reading the log from byte `offset` on.
    pub fn wait_for_line_after(&mut self, offset: u64, prefix: &str, deadline: Instant) -> String {
        loop {
            // Read the log before checking for an exit: a line printed just before exiting
            // still counts.
            let exited = self.try_wait();
            if let Some(rest) = find_line(&self.log, offset, prefix) {
                return rest;
            }
            if let Some(status) = exited {
                panic!(
                    "{}",
                    self.died(&format!("exited ({status}) before printing `{prefix}`"))
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}",
                    self.died(&format!("did not print `{prefix}` in time"))
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The current length of a log file (where a restarted process's output starts).
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn find_line(log: &Path, offset: u64, prefix: &str) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut r = BufReader::new(f);
    let mut line = String::new();
    // Only whole lines: the writer may be in the middle of one.
    while r.read_line(&mut line).ok()? > 0 && line.ends_with('\n') {
        if let Some(rest) = line.strip_prefix(prefix) {
            return Some(rest.trim().to_string());
        }
        line.clear();
    }
    None
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::within;
    use std::time::Duration;

    #[test]
    fn output_goes_to_the_log_and_lines_are_awaited() {
        let dir = crate::temp_dir("proc-test");
        let log = dir.path().join("sh.log");
        let mut p = Proc::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo err >&2; echo 'ready at 42'; sleep 30"]),
            &log,
        );
        assert_eq!(
            p.wait_for_line("ready at ", within(Duration::from_secs(10))),
            "42"
        );
        assert!(p.log().contains("err"));
        p.assert_running();
        p.kill();
        assert!(p.try_wait().is_some());
    }

    #[test]
    fn a_process_that_dies_is_named_with_its_log() {
        let dir = crate::temp_dir("proc-test");
        let log = dir.path().join("dies.log");
        let mut p = Proc::spawn(
            "dies",
            Command::new("sh").args(["-c", "echo boom; exit 3"]),
            &log,
        );
        let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait_for_line("never", within(Duration::from_secs(10)))
        }))
        .unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("dies (pid "), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains(&log.display().to_string()), "{msg}");
        assert!(msg.ends_with("boom"), "{msg}");
    }

    #[test]
    fn terminate_sends_sigterm() {
        let dir = crate::temp_dir("proc-test");
        let mut p = Proc::spawn(
            "trap",
            Command::new("sh").args([
                "-c",
                "trap 'exit 7' TERM; echo up; while true; do sleep 0.05; done",
            ]),
            dir.path().join("trap.log"),
        );
        p.wait_for_line("up", within(Duration::from_secs(10)));
        assert_eq!(p.terminate().code(), Some(7));
    }
}
