//! `DaemonGuard`: the real controller (`failover run`) in the router namespace for the
//! lifetime of a value, with a lab config of defaults (only the lab's probe targets and a
//! temp dir for its paths), the CLI to talk to it, and its event log.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use failover_user::{
    control::{StatusReport, UplinkReport},
    events,
};

use crate::lab::{Isp, Plan};

/// The env variable that names a prebuilt `failover` binary (tier 3 and the bench set it).
pub const BIN_ENV: &str = "FAILOVER_BIN";

/// The lab's far targets; never the defaults, which are real internet addresses.
pub const TARGETS: [&str; 2] = ["icmp:203.0.113.20", "icmp:203.0.113.30"];

/// Loading the data plane and the first status answer take well under this.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM first; a daemon still alive after this gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The controller running in [`Plan::NS_ROUTER`]; stopped by its pid, and its temp dir
/// removed, on drop (its log is printed first when the test is failing).
#[must_use = "the daemon is stopped when the guard is dropped"]
pub struct DaemonGuard {
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    /// The managed router interfaces, in the config's order.
    uplinks: Vec<String>,
}

impl DaemonGuard {
    /// Writes the config and starts the daemon; returns once `status` answers. The lab must
    /// be up.
    pub fn start() -> Result<Self> {
        Self::start_with("")
    }

    /// Like [`Self::start`], with `extra` (whole TOML tables) appended to the config.
    pub fn start_with(extra: &str) -> Result<Self> {
        Self::start_with_uplinks(&Isp::ALL.map(|isp| isp.uplink().router.name), extra)
    }

    /// Like [`Self::start_with`], managing the router interfaces `uplinks` in this order of
    /// preference (each uplink named as its interface; `lte` metered).
    pub fn start_with_uplinks(uplinks: &[&str], extra: &str) -> Result<Self> {
        let bin = binary()?;
        let dir = fresh_dir()?;
        let text = format!("{}{extra}", config_text(&dir, uplinks));
        fs::write(dir.join("lab.toml"), text).context("writing the lab config")?;
        let mut guard = Self {
            dir,
            bin,
            child: None,
            uplinks: uplinks.iter().map(|&name| name.to_owned()).collect(),
        };
        // After the guard exists, so its drop unmounts whatever happens next.
        mount_bpffs(&guard.dir)?;
        guard.spawn()?;
        Ok(guard)
    }

    /// The config file the daemon and the CLI read.
    #[must_use]
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("lab.toml")
    }

    /// The event log.
    #[must_use]
    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Where the daemon's stderr (and stdout) goes, across restarts.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    /// `failover status --json`, parsed.
    pub fn status(&self) -> Result<StatusReport> {
        let out = self.cli(&["status", "--json"])?;
        serde_json::from_str(&out).with_context(|| format!("parsing `status --json`: {out}"))
    }

    /// The status of the managed uplink `name`.
    pub fn uplink(&self, name: &str) -> Result<UplinkReport> {
        self.status()?
            .uplinks
            .into_iter()
            .find(|u| u.name == name)
            .with_context(|| format!("{name} is not a managed uplink"))
    }

    /// `failover switch NAME [--for DURATION]`.
    pub fn switch(&self, uplink: &str, for_: Option<&str>) -> Result<()> {
        let mut args = vec!["switch", uplink];
        args.extend(for_.iter().flat_map(|d| ["--for", d]));
        self.cli(&args).map(drop)
    }

    /// `failover auto`.
    pub fn auto(&self) -> Result<()> {
        self.cli(&["auto"]).map(drop)
    }

    /// Every event in the log so far, oldest first.
    pub fn events(&self) -> Result<Vec<events::Event>> {
        events::read_since(&self.events_path(), None).context("reading the event log")
    }

    /// Stops the daemon (SIGTERM: its data plane keeps forwarding, pinned) and starts it
    /// again with the same config and state; the new one adopts the running data plane.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    /// Kills the daemon with SIGKILL (no cleanup of its own) and starts it again.
    pub fn kill_and_restart(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn()
    }

    fn uplink_names(&self) -> Vec<&str> {
        self.uplinks.iter().map(String::as_str).collect()
    }

    /// The running daemon's pid.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Rewrites the config with `extra` appended (as [`Self::start_with`]) and has the
    /// daemon re-read it (SIGHUP, to its own pid).
    pub fn reload_with(&self, extra: &str) -> Result<()> {
        let text = format!("{}{extra}", config_text(&self.dir, &self.uplink_names()));
        fs::write(self.config_path(), text).context("rewriting the lab config")?;
        let pid = self.pid().context("no daemon process")?;
        // SAFETY: a plain signal to our own child.
        let rc = unsafe { libc::kill(i32::try_from(pid)?, libc::SIGHUP) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("SIGHUP to the daemon");
        }
        Ok(())
    }

    /// Where the data plane's maps and links are pinned: on a BPF filesystem of this guard's
    /// own (mounted in its temp dir, where `ip netns exec`, which hides /sys/fs/bpf, still
    /// sees it), so tests never meet a real router's data plane or another test's.
    #[must_use]
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir_for(&self.dir)
    }

    /// Stops the daemon and runs `failover detach`, which must leave no pin behind.
    pub fn stop_and_detach(&mut self) -> Result<()> {
        self.stop();
        // In the router: `detach` removes its namespace's nftables tables, never this one's.
        let out = Command::new("ip")
            .args(["netns", "exec", Plan::NS_ROUTER])
            .arg(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .arg("detach")
            .env("RUST_LOG", "warn")
            .output()
            .context("running failover detach in the router")?;
        if !out.status.success() {
            bail!(
                "`failover detach` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The daemon's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the daemon log")?;
        let config = self.config_path();
        // `ip netns exec` execs the binary, so the child's pid is the daemon's own.
        let child = Command::new("ip")
            .args(["netns", "exec", Plan::NS_ROUTER])
            .arg(&self.bin)
            .arg("-c")
            .arg(&config)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting `failover run` in the router namespace")?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls `status` until it answers; an early exit or a timeout quotes the daemon's log.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.status().is_ok() {
                return Ok(());
            }
            let child = self.child.as_mut().context("no daemon process")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "`failover run` exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "`failover run` did not answer `status` within {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the CLI (from this namespace: the socket is a file) and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .with_context(|| format!("running failover {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`failover {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM by pid, SIGKILL after [`STOP_GRACE`], then reaps.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pid) = i32::try_from(child.id()) else {
            return;
        };
        // SAFETY: signalling our own unreaped child by its pid (it cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("failover run ignored SIGTERM for {STOP_GRACE:?}: killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        self.stop();
        // The stopped daemon left its data plane pinned; nothing may outlive the test.
        if let Err(e) = failover_user::pins::Pins::new(&self.pin_dir()).remove_all() {
            eprintln!("removing the test's data plane pins failed: {e}");
        }
        // Unmounting also releases anything still pinned there.
        let _ = Command::new("umount").arg(bpffs_dir(&self.dir)).status();
        if thread::panicking() {
            eprintln!(
                "---- failover run log ({}) ----\n{}---- end of log ----",
                self.log_path().display(),
                self.log()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Defaults everywhere except the lab's far targets (never the real internet) and paths in
/// `dir`.
fn config_text(dir: &Path, uplinks: &[&str]) -> String {
    let targets = TARGETS.map(|t| format!("\"{t}\"")).join(", ");
    let mut text = format!(
        "lan = [\"{}\"]\nstate_dir = \"{}\"\npin_dir = \"{}\"\n",
        Plan::ROUTER_LAN.name,
        dir.join("state").display(),
        pin_dir_for(dir).display()
    );
    for &name in uplinks {
        let metered = if name == Plan::LTE.router.name {
            "metered = true\n"
        } else {
            ""
        };
        let _ = write!(
            text,
            "\n[[uplink]]\nname = \"{name}\"\ninterface = \"{name}\"\n{metered}targets = [{targets}]\n"
        );
    }
    let _ = write!(
        text,
        "\n[control]\nsocket = \"{}\"\n\n[events]\nlog = \"{}\"\n",
        dir.join("control.sock").display(),
        dir.join("events.jsonl").display()
    );
    text
}

/// The guard's own BPF filesystem.
fn bpffs_dir(dir: &Path) -> PathBuf {
    dir.join("bpf")
}

/// The pin directory of the guard whose temp dir is `dir`.
fn pin_dir_for(dir: &Path) -> PathBuf {
    bpffs_dir(dir).join("failover")
}

fn mount_bpffs(dir: &Path) -> Result<()> {
    let mount = bpffs_dir(dir);
    fs::create_dir_all(&mount)?;
    let status = Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&mount)
        .status()
        .context("running mount")?;
    if !status.success() {
        bail!("mounting a BPF filesystem at {} failed", mount.display());
    }
    Ok(())
}

/// A new directory under the system temp dir, unique per process and guard.
fn fresh_dir() -> Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("failover-e2e-{}-{n}", std::process::id()));
    // Leftovers of a killed run with a reused pid would mix old events in.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The `failover` binary: `$FAILOVER_BIN`, or built once per process with cargo (debug).
pub fn binary() -> Result<PathBuf> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(bin));
    }
    if let Some(bin) = BUILT.get() {
        return Ok(bin.clone());
    }
    let bin = build_binary()?;
    Ok(BUILT.get_or_init(|| bin).clone())
}

/// `cargo build -p failover-user --bin failover`, and the path cargo reports for it.
pub fn build_binary() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate has no parent directory")?;
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "failover-user",
            "--bin",
            "failover",
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build for the failover binary")?;
    if !out.status.success() {
        bail!("building the failover binary failed ({})", out.status);
    }
    executable_from_messages(&String::from_utf8_lossy(&out.stdout))
        .context("cargo did not report the failover executable")
}

/// The `executable` of the `failover` binary artifact in cargo's JSON messages.
fn executable_from_messages(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "failover")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_lab_targets_and_temp_paths_only() {
        let text = config_text(Path::new("/tmp/x"), &["fiber", "lte"]);
        let config = failover_user::config::parse(&text, "lab.toml").expect("valid config");
        assert_eq!(config.uplinks.len(), 2);
        for uplink in &config.uplinks {
            let targets: Vec<String> = uplink
                .targets_or_default()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(targets, TARGETS);
        }
        assert!(config.uplinks[1].metered && !config.uplinks[0].metered);
        assert_eq!(config.control.socket, Path::new("/tmp/x/control.sock"));
        assert_eq!(config.events.log, Path::new("/tmp/x/events.jsonl"));
        assert_eq!(config.state_dir, Path::new("/tmp/x/state"));
        assert_eq!(
            config.pin_dir,
            Path::new("/tmp/x/bpf/failover"),
            "never the real router's pins: a BPF filesystem of the test's own"
        );
        assert_eq!(
            config.health,
            failover_user::config::HealthConfig::default()
        );
    }

    #[test]
    fn the_executable_is_found_in_cargo_messages() {
        let messages = "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"failover_user\"},\"executable\":null}\n\
                        {\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"failover\"},\"executable\":\"/t/debug/failover\"}\n\
                        {\"reason\":\"build-finished\",\"success\":true}";
        assert_eq!(
            executable_from_messages(messages),
            Some(PathBuf::from("/t/debug/failover"))
        );
    }
}
