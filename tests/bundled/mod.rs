//! Builds the plugin bundles the host tests load: `cargo run -p xtask -- bundle cantor` in the
//! debug profile (sharing the test build's compiled dependencies), with
//! `assert_process_allocs` so an allocation in a real host's process() call aborts.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `target/bundled`, after (re)building the bundles once per test binary.
pub fn bundle() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(&root)
                .args(["run", "--quiet", "-p", "xtask", "--", "bundle", "cantor", "--features", "assert_process_allocs"])
                .status()
                .expect("cannot run cargo to build the plugin bundle");
            assert!(status.success(), "building the plugin bundle failed");
            let dir = root.join("target/bundled");
            assert!(dir.join("Cantor.clap").exists() && dir.join("Cantor.vst3").exists(), "no bundle in {}", dir.display());
            dir
        })
        .clone()
}
