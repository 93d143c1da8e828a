//! The persistent event log (one JSON object a line, appended, so it survives restarts) and the
//! hook command run on every event.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// Values of [`Event::kind`].
pub mod kind {
    /// An uplink's health state changed (`up`, `degraded`, `down`).
    pub const STATE: &str = "state";
    /// New flows switched from one uplink to another.
    pub const SWITCH: &str = "switch";
    /// A manual override was set or cleared.
    pub const OVERRIDE: &str = "override";
    /// A far probe target became suspect (answers on no uplink) or answers again.
    pub const TARGET: &str = "target";
    /// A config reload (refused, with the error).
    pub const CONFIG: &str = "config";
    /// The data plane did not do what it was told: its maps drifted from the controller's
    /// intent (repaired), an uplink is a blackhole, or the kernel refused redirects.
    pub const DATAPLANE: &str = "dataplane";
    /// A LAN host reached its `[limits]` (`ok` to `limited`: its new flows are dropped) or
    /// is no longer refused (`limited` to `ok`); the host is in the evidence.
    pub const HOST_LIMIT: &str = "host-limit";
    /// The `[dns]` records were pointed at an uplink's address (`to`), or the server has not
    /// acknowledged the update yet (it is retried).
    pub const DNS: &str = "dns";
}

/// A hook still running after this long is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Something that happened to an uplink, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, to the millisecond (what the log keeps).
    #[serde(with = "rfc3339_millis")]
    pub at: SystemTime,
    /// One of [`kind`]'s values.
    pub kind: String,
    pub uplink: String,
    pub from: String,
    pub to: String,
    /// In words, e.g. "gateway unreachable".
    pub cause: String,
    /// The measurements behind the decision, e.g. `loss_percent = "40"`.
    #[serde(default)]
    pub evidence: BTreeMap<String, String>,
}

impl Event {
    /// An event happening now, without evidence.
    #[must_use]
    pub fn now(kind: &str, uplink: &str, from: &str, to: &str, cause: &str) -> Self {
        Self {
            at: to_millis(SystemTime::now()),
            kind: kind.to_owned(),
            uplink: uplink.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            cause: cause.to_owned(),
            evidence: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn with_evidence(mut self, key: &str, value: impl Into<String>) -> Self {
        self.evidence.insert(key.to_owned(), value.into());
        self
    }
}

/// One line: time, kind, uplink, `from -> to`, cause, then the evidence as `key=value`.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uplink = if self.uplink.is_empty() {
            "-"
        } else {
            &self.uplink
        };
        write!(
            f,
            "{}  {:<8} {:<10}",
            humantime::format_rfc3339_millis(self.at),
            self.kind,
            uplink
        )?;
        if !self.from.is_empty() || !self.to.is_empty() {
            write!(f, " {} -> {}:", self.from, self.to)?;
        }
        write!(f, " {}", self.cause)?;
        for (key, value) in &self.evidence {
            write!(f, "  {key}={value}")?;
        }
        Ok(())
    }
}

/// `failover events --since T`: an RFC 3339 time (`2026-11-25T10:00:00Z`, the `T` or the `Z`
/// may be left out) or a duration before `now` (`1h`, `30m`, `2days`).
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        format!(
            "`{text}` is neither an RFC 3339 time (2026-11-25T10:00:00Z) nor a duration (1h, 30m)"
        )
    })?;
    now.checked_sub(ago)
        .ok_or_else(|| format!("`{text}` reaches back before 1970"))
}

/// Truncated to what the log keeps, so an event equals itself read back.
fn to_millis(at: SystemTime) -> SystemTime {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

mod rfc3339_millis {
    use std::time::SystemTime;

    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(D::Error::custom)
    }
}

/// The log file, open for appending.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    file: File,
}

impl EventLog {
    /// Opens (creating it and its directory) the log at `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        // A crash mid-write leaves a line without its newline; end it, or the next event would
        // be glued to it and lost with it.
        if file.metadata()?.len() > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line. A single `write` on an `O_APPEND` file, so a line is never interleaved
    /// with another writer's and is in the kernel when this returns.
    pub fn append(&mut self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

/// The events in the log at `path` at or after `since` (all with `None`), oldest first. A
/// missing log has no events. Lines that do not parse (a last line cut short by a crash) are
/// skipped with a warning, not an error: the rest of the history is still worth reading.
pub fn read_since(path: &Path, since: Option<SystemTime>) -> io::Result<Vec<Event>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let (events, skipped) = parse_lines(&text, since);
    if skipped > 0 {
        tracing::warn!(
            "{}: skipped {skipped} malformed line(s) in the event log",
            path.display()
        );
    }
    Ok(events)
}

/// The events at or after `since`, and how many non-empty lines did not parse.
fn parse_lines(text: &str, since: Option<SystemTime>) -> (Vec<Event>, usize) {
    let mut skipped = 0;
    let events = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            serde_json::from_str::<Event>(line)
                .inspect_err(|_| skipped += 1)
                .ok()
        })
        .filter(|event| since.is_none_or(|since| event.at >= since))
        .collect();
    (events, skipped)
}

/// How a hook run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum HookOutcome {
    Succeeded,
    /// Exited unsuccessfully; the exit code, if it exited rather than died by a signal.
    Failed(Option<i32>),
    /// Could not be started (missing, not executable).
    NotStarted,
    /// Still running after the timeout, and killed.
    TimedOut,
}

/// Runs the hook for `event` with [`HOOK_TIMEOUT`]. Problems are logged, never returned: a
/// broken hook must not stop the router.
pub async fn run_hook(hook: &Path, event: &Event) -> HookOutcome {
    run_hook_within(hook, event, HOOK_TIMEOUT).await
}

/// Runs `hook` with the event in its environment (see [`hook_env`]) and waits at most `timeout`
/// for it. A hook still running then is killed with its process group (whatever it started).
pub async fn run_hook_within(hook: &Path, event: &Event, timeout: Duration) -> HookOutcome {
    let mut command = tokio::process::Command::new(hook);
    command
        .envs(hook_env(event))
        .stdin(Stdio::null())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        // If the caller gives up on this future, the hook does not outlive it.
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!("event hook {}: cannot start: {e}", hook.display());
            return HookOutcome::NotStarted;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => HookOutcome::Succeeded,
        Ok(Ok(status)) => {
            tracing::warn!("event hook {}: {status}", hook.display());
            HookOutcome::Failed(status.code())
        }
        Ok(Err(e)) => {
            tracing::warn!("event hook {}: waiting for it: {e}", hook.display());
            HookOutcome::Failed(None)
        }
        Err(_) => {
            tracing::warn!(
                "event hook {}: still running after {}, killed",
                hook.display(),
                humantime::format_duration(timeout)
            );
            kill_group(&mut child).await;
            HookOutcome::TimedOut
        }
    }
}

/// Kills the hook's process group, then reaps the hook.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: kill(2) takes no pointers. The group id is the unreaped hook's pid, so it
        // cannot have been reused by another process.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    // Covers a hook that is already gone (kill is then a no-op), and reaps it.
    let _ = child.kill().await;
}

/// `FAILOVER_AT`, `_KIND`, `_UPLINK`, `_FROM`, `_TO`, `_CAUSE`, `_EVIDENCE` (the evidence as a
/// JSON object) and one `FAILOVER_EVIDENCE_<KEY>` per evidence key (upper case, anything other
/// than letters and digits as `_`).
#[must_use]
pub fn hook_env(event: &Event) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "FAILOVER_AT".to_owned(),
            humantime::format_rfc3339_millis(event.at).to_string(),
        ),
        ("FAILOVER_KIND".to_owned(), event.kind.clone()),
        ("FAILOVER_UPLINK".to_owned(), event.uplink.clone()),
        ("FAILOVER_FROM".to_owned(), event.from.clone()),
        ("FAILOVER_TO".to_owned(), event.to.clone()),
        ("FAILOVER_CAUSE".to_owned(), event.cause.clone()),
        (
            "FAILOVER_EVIDENCE".to_owned(),
            serde_json::to_string(&event.evidence).unwrap_or_default(),
        ),
    ];
    env.extend(event.evidence.iter().map(|(key, value)| {
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        (format!("FAILOVER_EVIDENCE_{key}"), value.clone())
    }));
    env
}

#[cfg(test)]
mod tests;
