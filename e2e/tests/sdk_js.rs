//! The official JS SDK runs its flow through Miroir over 3 test nodes (e2e/sdk/js/flow.mjs).

use miroir_e2e::{Cluster, ClusterSpec};
use std::path::Path;
use std::process::Command;

#[test]
fn js_sdk_flow_through_miroir() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/js");
    assert!(
        dir.join("node_modules/meilisearch").exists(),
        "the JS SDK is required: npm ci --prefix e2e/sdk/js (.ci/run does)"
    );
    let cluster = Cluster::start(ClusterSpec::default());
    let out = Command::new("node")
        .arg("flow.mjs")
        .current_dir(&dir)
        .env("MEILISEARCH_URL", format!("http://{}", cluster.addr))
        .env("MEILISEARCH_MASTER_KEY", &cluster.spec.master_key)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "JS SDK flow failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("js SDK flow: all good"), "{stdout}");
}
