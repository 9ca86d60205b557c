//! The official Python SDK runs create-index → add documents → wait → search → settings →
//! stats → delete through Miroir over 3 test nodes (e2e/sdk/python_flow.py).

use miroir_e2e::{Cluster, ClusterSpec};
use std::process::Command;

#[test]
fn python_sdk_flow_through_miroir() {
    let probe = Command::new("python3")
        .args(["-c", "import meilisearch"])
        .status();
    assert!(
        matches!(probe, Ok(s) if s.success()),
        "the Python SDK is required: pip install meilisearch==0.43.0 (.ci/run does)"
    );
    let cluster = Cluster::start(ClusterSpec::default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/python_flow.py");
    let out = Command::new("python3")
        .arg(script)
        .env("MEILISEARCH_URL", format!("http://{}", cluster.addr))
        .env("MEILISEARCH_MASTER_KEY", &cluster.spec.master_key)
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python SDK flow failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("python SDK flow: all good"), "{stdout}");
}
