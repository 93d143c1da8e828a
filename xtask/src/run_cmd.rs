//! `cargo xtask run`: the release build of `failover run` in the foreground, with a config
//! that has been checked first.

use std::{os::unix::process::CommandExt as _, path::Path, process::Command};

use anyhow::{Result, bail};

/// Builds, checks `config`, then replaces this process with `failover -c CONFIG run`, so
/// Ctrl-C and SIGTERM reach the controller itself.
pub fn run(config: &Path) -> Result<()> {
    if !config.exists() {
        bail!(
            "no config at {}: install the skeleton with `sudo -E cargo xtask install` (or copy \
             docs/failover.example.toml there) and edit it, or name another with -c FILE",
            config.display()
        );
    }
    let binary = crate::install::build_release()?;
    let checked = Command::new(&binary)
        .arg("check-config")
        .arg(config)
        .output()?;
    if !checked.status.success() {
        bail!(
            "refusing to run: {} is invalid\n{}",
            config.display(),
            String::from_utf8_lossy(&checked.stderr).trim_end()
        );
    }
    if !failover_tests::privilege::is_root() {
        bail!("`failover run` loads BPF programs: run as root (sudo -E cargo xtask run)");
    }
    println!("running {} -c {} run", binary.display(), config.display());
    let error = Command::new(&binary)
        .arg("-c")
        .arg(config)
        .arg("run")
        .exec();
    bail!("starting {}: {error}", binary.display())
}
