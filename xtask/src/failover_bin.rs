//! The `failover` binary for the root-only tiers, the failover bench and the demo: built once
//! here (debug profile) and handed over in `FAILOVER_BIN`, so the tests do not each run cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable `failover_tests::daemon` reads.
pub const ENV: &str = "FAILOVER_BIN";

/// `cargo build -p failover-user --bin failover` and where cargo put it.
pub fn build() -> anyhow::Result<PathBuf> {
    crate::setup::run(Command::new(env!("CARGO")).args([
        "build",
        "--quiet",
        "-p",
        "failover-user",
        "--bin",
        "failover",
    ]))?;
    Ok(target_dir().join("debug/failover"))
}

/// `$CARGO_TARGET_DIR`, or `target/` in the workspace (this crate's parent directory).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

/// Builds the binary, then replaces this process with the tests crate's example `example`
/// (release) run with `args` and the binary in [`ENV`].
pub fn exec_example(example: &str, args: &[String]) -> anyhow::Result<()> {
    eprintln!("building the failover binary (cargo build -p failover-user)");
    let bin = build()?;
    eprintln!("building and starting {example} (cargo run --release, example of the tests crate)");
    let mut command = Command::new(env!("CARGO"));
    command
        .env(ENV, bin)
        .args(["run", "--quiet", "--release", "-p", "failover-tests"])
        .args(["--example", example, "--"])
        .args(args);
    crate::bench::exec(&mut command)
}
