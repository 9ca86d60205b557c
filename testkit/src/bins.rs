//! The workspace binaries cargo built for this test run.

use std::path::{Path, PathBuf};

/// Path of the workspace binary `name` (`miroir`, `miroir-admin`, `miroir-dataplane`,
/// `miroir-testnode`, …).
///
/// `CARGO_BIN_EXE_<name>` first (set by cargo at compile time and by nextest at run time for
/// the binaries of the test's own package), else the profile directory of this test
/// executable (`<target>/<profile>/deps/<test>-<hash>` → `<target>/<profile>/`), which is
/// where cargo put every other package's binaries whatever `CARGO_TARGET_DIR` says. Panics
/// with the command that builds it when it is missing.
pub fn bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        let p = PathBuf::from(p);
        if p.exists() {
            return p;
        }
    }
    let p = profile_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace's binaries first with `cargo build --workspace --bins` \
         (same CARGO_TARGET_DIR and profile as the tests)",
        p.display()
    );
    p
}

/// `<target>/<profile>/`, found from this test executable.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("the test executable's directory");
    // Integration tests live in `<profile>/deps/`; examples and benches one level deeper
    // would not, so step out of `deps` only when that is where we are.
    if deps.file_name() == Some(std::ffi::OsStr::new("deps")) {
        deps.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        deps.to_path_buf()
    }
}
