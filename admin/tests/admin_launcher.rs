//! `miroir` (one command): runs the admin in-process and supervises the `miroir-dataplane`
//! found next to its own executable. The data plane is a different crate's binary, so these
//! tests put the real `miroir` binary in a temporary directory next to a stand-in
//! `miroir-dataplane` script that records how it was started and what signals it got.

mod admin_common;

use admin_common::*;
use miroir_testkit::{within, Proc};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Copies `miroir` into `dir` and writes `script` as `dir/miroir-dataplane`.
fn install(dir: &Path, script: &str) -> std::path::PathBuf {
    let miroir = dir.join("miroir");
    std::fs::copy(miroir_testkit::bin("miroir"), &miroir).unwrap();
    let dp = dir.join("miroir-dataplane");
    std::fs::write(&dp, script).unwrap();
    std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(0o755)).unwrap();
    miroir
}

/// `miroir --config config` started from `dir` with `script` as its data plane.
fn spawn(dir: &Path, config: &Path, script: &str) -> Proc {
    let miroir = install(dir, script);
    let mut cmd = Command::new(&miroir);
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    Proc::spawn("miroir", &mut cmd, dir.join("miroir.log"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn starts_the_data_plane_with_the_same_arguments_and_forwards_sigterm() {
    let dir = tempdir();
    let node = start_testnode(&dir.path().join("node"));
    let config = write_config(dir.path(), &[&node], 8, "");
    let log = dir.path().join("dataplane.log");
    let script = format!(
        "#!/bin/sh\necho \"args $*\" >> {log}\ntrap 'echo term >> {log}; exit 0' TERM\nwhile true; do sleep 0.05; done\n",
        log = log.display()
    );
    let mut proc = spawn(dir.path(), &config, &script);
    proc.wait_for_line("admin listening on ", within(Duration::from_secs(60)));
    let first = proc.log().lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("admin listening on "), "{first}");
    eventually("the data plane started", || {
        read(&log).contains("args").then_some(())
    });
    assert!(
        read(&log).contains(&format!("args --config {}", config.display())),
        "{}",
        read(&log)
    );

    let status = proc.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        read(&log).contains("term"),
        "SIGTERM was forwarded: {}",
        read(&log)
    );
}

#[test]
fn gives_up_when_the_data_plane_keeps_dying() {
    let dir = tempdir();
    let node = start_testnode(&dir.path().join("node"));
    let config = write_config(dir.path(), &[&node], 8, "");
    let log = dir.path().join("dataplane.log");
    let script = format!("#!/bin/sh\necho start >> {}\nexit 3\n", log.display());
    let miroir = install(dir.path(), &script);
    let status = Command::new(&miroir)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        read(&log).lines().count(),
        5,
        "restarted until the limit, then gave up"
    );
}

#[test]
fn a_sigterm_while_waiting_to_restart_the_data_plane_shuts_down() {
    let dir = tempdir();
    let node = start_testnode(&dir.path().join("node"));
    let config = write_config(dir.path(), &[&node], 8, "");
    let log = dir.path().join("dataplane.log");
    let script = format!("#!/bin/sh\necho start >> {}\nexit 3\n", log.display());
    let mut proc = spawn(dir.path(), &config, &script);
    eventually("the data plane started once", || {
        read(&log).contains("start").then_some(())
    });
    // The first restart waits 500 ms: the signal lands in that wait (or, at worst, while the
    // exit is being noticed), never with no handler installed.
    std::thread::sleep(Duration::from_millis(100));
    let status = proc.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        read(&log).lines().count() < 5,
        "stopped instead of restarting until the limit: {}",
        read(&log)
    );
}
