//! `cargo xtask install`: the release binary, the systemd unit and a config skeleton, put
//! where a router runs them from. An existing config is never overwritten.

use std::{
    fmt,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The unit as shipped; its `ExecStart` names the binary under the default prefix.
const UNIT: &str = include_str!("../../packaging/failover.service");
/// The skeleton installed as the config: every setting, commented, with its default.
const CONFIG_SKELETON: &str = include_str!("../../docs/failover.example.toml");
pub const DEFAULT_PREFIX: &str = "/usr/local";
pub const CONFIG_PATH: &str = "/etc/failover/failover.toml";
const UNIT_PATH: &str = "/etc/systemd/system/failover.service";

/// One thing the install does.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Write `contents` (or the built binary when `None`) to `to` with `mode`.
    Write {
        to: PathBuf,
        mode: u32,
        contents: Option<String>,
    },
    /// Leave an existing file alone.
    Keep(PathBuf),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Write { to, mode, .. } => write!(f, "install {} (mode {mode:o})", to.display()),
            Self::Keep(path) => write!(f, "keep {} (exists; never overwritten)", path.display()),
        }
    }
}

/// What installing under `prefix` does, given whether a config is already in place.
fn plan(prefix: &Path, config_exists: bool) -> Vec<Step> {
    let binary = prefix.join("sbin/failover");
    let default_binary = Path::new(DEFAULT_PREFIX).join("sbin/failover");
    let unit = UNIT.replace(
        &format!("ExecStart={} run", default_binary.display()),
        &format!("ExecStart={} run", binary.display()),
    );
    vec![
        Step::Write {
            to: binary,
            mode: 0o755,
            contents: None,
        },
        Step::Write {
            to: PathBuf::from(UNIT_PATH),
            mode: 0o644,
            contents: Some(unit),
        },
        if config_exists {
            Step::Keep(PathBuf::from(CONFIG_PATH))
        } else {
            Step::Write {
                to: PathBuf::from(CONFIG_PATH),
                mode: 0o644,
                contents: Some(CONFIG_SKELETON.to_owned()),
            }
        },
    ]
}

/// Builds the release binary and installs everything (or, with `dry_run`, only says what it
/// would do).
pub fn run(prefix: &Path, dry_run: bool) -> Result<()> {
    if !prefix.is_absolute() {
        bail!("--prefix {} is not an absolute path", prefix.display());
    }
    let steps = plan(prefix, Path::new(CONFIG_PATH).exists());
    if dry_run {
        println!("install (dry run): would build the release binary, then:");
        for step in &steps {
            println!("  {step}");
        }
        return Ok(());
    }
    if !failover_tests::privilege::is_root() {
        bail!(
            "`cargo xtask install` writes to {} and /etc: run it as root (sudo -E cargo xtask install), or try --dry-run",
            prefix.display()
        );
    }
    let built = build_release()?;
    for step in &steps {
        if let Step::Write { to, mode, contents } = step {
            let bytes = match contents {
                Some(text) => text.as_bytes().to_vec(),
                None => {
                    std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?
                }
            };
            write_replacing(to, &bytes, *mode)?;
        }
        println!("install: {step}");
    }
    let binary = prefix.join("sbin/failover");
    println!(
        "\nNext:\n  edit {CONFIG_PATH} (lan, uplinks)\n  {} check-config\n  \
         systemctl daemon-reload && systemctl enable --now failover\n  \
         failover status",
        binary.display()
    );
    Ok(())
}

/// Writes `to` through a temporary file and a rename: the binary may be running, and a
/// running executable cannot be rewritten in place (ETXTBSY).
fn write_replacing(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = to.parent().context("an install path has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = to.file_name().context("an install path has a name")?;
    let temporary = dir.join(format!(".{}.new", name.to_string_lossy()));
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&temporary, to))
        .with_context(|| format!("installing {}", to.display()))
}

/// `cargo build --release -p failover-user`; returns the binary's path.
pub fn build_release() -> Result<PathBuf> {
    crate::setup::ensure(crate::setup::Mode::Quiet)?;
    println!("building the failover binary (release)");
    crate::setup::run(Command::new(env!("CARGO")).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "failover-user",
    ]))?;
    Ok(target_dir().join("release/failover"))
}

/// Where cargo puts build output: `CARGO_TARGET_DIR`, or `target/` in the workspace.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace");
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contents a step writes to `path`: `None` without such a step, `Some(None)` for
    /// the built binary.
    #[expect(
        clippy::option_option,
        reason = "no step, or a step writing the built binary"
    )]
    fn written(steps: &[Step], path: &str) -> Option<Option<String>> {
        steps.iter().find_map(|step| match step {
            Step::Write { to, contents, .. } if to == Path::new(path) => Some(contents.clone()),
            _ => None,
        })
    }

    #[test]
    fn the_default_prefix_installs_the_unit_as_shipped() {
        let steps = plan(Path::new(DEFAULT_PREFIX), false);
        let shown: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "install /usr/local/sbin/failover (mode 755)",
                "install /etc/systemd/system/failover.service (mode 644)",
                "install /etc/failover/failover.toml (mode 644)",
            ]
        );
        assert_eq!(written(&steps, UNIT_PATH), Some(Some(UNIT.to_owned())));
        assert_eq!(
            written(&steps, CONFIG_PATH),
            Some(Some(CONFIG_SKELETON.to_owned()))
        );
    }

    #[test]
    fn another_prefix_moves_the_binary_and_the_units_exec_start() {
        let steps = plan(Path::new("/opt/failover"), false);
        assert_eq!(written(&steps, "/opt/failover/sbin/failover"), Some(None));
        let unit = written(&steps, UNIT_PATH).flatten().unwrap();
        assert!(
            unit.lines()
                .any(|l| l == "ExecStart=/opt/failover/sbin/failover run"),
            "{unit}"
        );
        assert!(!unit.contains("/usr/local/sbin"), "{unit}");
    }

    #[test]
    fn an_existing_config_is_kept() {
        let steps = plan(Path::new(DEFAULT_PREFIX), true);
        assert_eq!(written(&steps, CONFIG_PATH), None);
        assert!(steps.contains(&Step::Keep(PathBuf::from(CONFIG_PATH))));
        assert_eq!(
            steps.last().unwrap().to_string(),
            "keep /etc/failover/failover.toml (exists; never overwritten)"
        );
    }

    #[test]
    fn the_shipped_unit_runs_the_default_binary_and_can_reload() {
        for line in [
            "ExecStart=/usr/local/sbin/failover run",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "After=network-online.target",
        ] {
            assert!(UNIT.lines().any(|l| l == line), "unit lacks {line}");
        }
    }

    #[test]
    fn a_dry_run_touches_nothing_and_a_relative_prefix_is_refused() {
        run(Path::new("/nonexistent-prefix"), true).unwrap();
        assert!(!Path::new("/nonexistent-prefix").exists());
        let error = run(Path::new("usr/local"), true).unwrap_err().to_string();
        assert!(error.contains("not an absolute path"), "{error}");
    }

    #[test]
    fn writes_replace_through_a_rename() {
        let dir = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        let to = dir.join("sbin/failover");
        write_replacing(&to, b"one", 0o755).unwrap();
        write_replacing(&to, b"two", 0o755).unwrap();
        let mode = std::fs::metadata(&to).unwrap().permissions().mode();
        let contents = std::fs::read(&to).unwrap();
        let leftovers = std::fs::read_dir(to.parent().unwrap()).unwrap().count();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(contents, b"two");
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }
}
