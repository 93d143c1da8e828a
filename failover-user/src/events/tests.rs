use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    Event, EventLog, HookOutcome, kind, parse_lines, parse_since, read_since, run_hook_within,
};

/// A directory of its own under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("failover-events-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event_at(secs: u64, uplink: &str) -> Event {
    Event {
        at: UNIX_EPOCH + Duration::from_secs(secs),
        ..Event::now(kind::STATE, uplink, "up", "down", "gateway unreachable")
    }
}

#[test]
fn appended_events_survive_a_reopen() {
    let dir = TempDir::new("reopen");
    // The directory does not exist yet: open creates it.
    let path = dir.0.join("var/events.jsonl");
    let first = Event::now(kind::SWITCH, "lte", "fiber", "lte", "fiber down")
        .with_evidence("loss_percent", "100")
        .with_evidence("rtt_ms", "12.5");
    let second = event_at(1_700_000_000, "fiber");
    let third = Event::now(kind::OVERRIDE, "lte", "auto", "lte", "set by the CLI");

    let mut log = EventLog::open(&path).unwrap();
    log.append(&first).unwrap();
    log.append(&second).unwrap();
    drop(log);
    let mut log = EventLog::open(&path).unwrap();
    log.append(&third).unwrap();

    assert_eq!(read_since(&path, None).unwrap(), [first, second, third]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.contains(r#""at":"2023-11-14T22:13:20.000Z","kind":"state","uplink":"fiber""#),
        "{text}"
    );
}

#[test]
fn read_since_keeps_events_at_or_after() {
    let dir = TempDir::new("since");
    let path = dir.0.join("events.jsonl");
    let mut log = EventLog::open(&path).unwrap();
    for (secs, uplink) in [(1000, "a"), (2000, "b"), (3000, "c")] {
        log.append(&event_at(secs, uplink)).unwrap();
    }
    let uplinks = |since: Option<u64>| -> Vec<String> {
        read_since(&path, since.map(|s| UNIX_EPOCH + Duration::from_secs(s)))
            .unwrap()
            .into_iter()
            .map(|e| e.uplink)
            .collect()
    };
    assert_eq!(uplinks(None), ["a", "b", "c"]);
    assert_eq!(uplinks(Some(2000)), ["b", "c"]);
    assert_eq!(uplinks(Some(2001)), ["c"]);
    assert!(uplinks(Some(4000)).is_empty());
    assert!(
        read_since(&dir.0.join("none.jsonl"), None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_truncated_last_line_is_skipped_and_ended() {
    let dir = TempDir::new("truncated");
    let path = dir.0.join("events.jsonl");
    let mut log = EventLog::open(&path).unwrap();
    log.append(&event_at(1000, "a")).unwrap();
    log.append(&event_at(2000, "b")).unwrap();
    drop(log);
    // A crash in the middle of a write.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"at":"2024-01-01T00:00:00.000Z","kind":"sta"#)
        .unwrap();
    drop(file);

    let (events, skipped) = parse_lines(&std::fs::read_to_string(&path).unwrap(), None);
    assert_eq!((events.len(), skipped), (2, 1));
    assert_eq!(read_since(&path, None).unwrap().len(), 2);

    // The next start ends the cut line, so the next event is not lost with it.
    let mut log = EventLog::open(&path).unwrap();
    log.append(&event_at(3000, "c")).unwrap();
    let uplinks: Vec<String> = read_since(&path, None)
        .unwrap()
        .into_iter()
        .map(|e| e.uplink)
        .collect();
    assert_eq!(uplinks, ["a", "b", "c"]);
}

/// Hook tests write and then run scripts; run them one at a time so a script is never
/// executed while another test's fork still holds it open for writing (ETXTBSY).
static HOOKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&path)
        .unwrap();
    writeln!(file, "#!/bin/sh\n{body}").unwrap();
    path
}

#[tokio::test]
async fn the_hook_gets_the_event_in_its_environment() {
    let _one_at_a_time = HOOKS.lock().await;
    let dir = TempDir::new("hook-env");
    let out = dir.0.join("env.txt");
    let hook = script(&dir.0, "hook", &format!("env > '{}'", out.display()));
    let event = event_at(1_700_000_000, "fiber")
        .with_evidence("loss_percent", "40")
        .with_evidence("gateway rtt-ms", "3");

    let outcome = run_hook_within(&hook, &event, Duration::from_secs(10)).await;

    assert_eq!(outcome, HookOutcome::Succeeded);
    let env = std::fs::read_to_string(&out).unwrap();
    for expected in [
        "FAILOVER_AT=2023-11-14T22:13:20.000Z",
        "FAILOVER_KIND=state",
        "FAILOVER_UPLINK=fiber",
        "FAILOVER_FROM=up",
        "FAILOVER_TO=down",
        "FAILOVER_CAUSE=gateway unreachable",
        r#"FAILOVER_EVIDENCE={"gateway rtt-ms":"3","loss_percent":"40"}"#,
        "FAILOVER_EVIDENCE_LOSS_PERCENT=40",
        "FAILOVER_EVIDENCE_GATEWAY_RTT_MS=3",
    ] {
        assert!(
            env.lines().any(|line| line == expected),
            "no {expected} in\n{env}"
        );
    }
}

#[tokio::test]
async fn a_failing_or_missing_hook_is_not_fatal() {
    let _one_at_a_time = HOOKS.lock().await;
    let dir = TempDir::new("hook-fail");
    let failing = script(&dir.0, "fail", "exit 3");
    let event = event_at(1000, "lte");

    assert_eq!(
        run_hook_within(&failing, &event, Duration::from_secs(10)).await,
        HookOutcome::Failed(Some(3))
    );
    assert_eq!(
        run_hook_within(&dir.0.join("missing"), &event, Duration::from_secs(10)).await,
        HookOutcome::NotStarted
    );
}

#[tokio::test]
async fn a_slow_hook_is_killed_with_what_it_started() {
    let _one_at_a_time = HOOKS.lock().await;
    let dir = TempDir::new("hook-slow");
    let pid_file = dir.0.join("sleep.pid");
    let hook = script(
        &dir.0,
        "slow",
        &format!("sleep 30 &\necho $! > '{}'\nwait", pid_file.display()),
    );

    let started = Instant::now();
    let outcome = run_hook_within(&hook, &event_at(1000, "lte"), Duration::from_millis(300)).await;

    assert_eq!(outcome, HookOutcome::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The hook's own child went with it (gone, or a zombie waiting for init).
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let status = Path::new("/proc").join(pid.trim()).join("status");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::read_to_string(&status) {
            Err(_) => break,
            Ok(text)
                if text
                    .lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z')) =>
            {
                break;
            }
            Ok(_) if Instant::now() > deadline => panic!("the hook's `sleep` survived"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[test]
fn event_time_keeps_milliseconds() {
    let event = Event::now(kind::STATE, "a", "up", "down", "x");
    let since_epoch = event.at.duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(since_epoch.subsec_nanos() % 1_000_000, 0);
    assert!(SystemTime::now() >= event.at);
}

#[test]
fn since_takes_an_rfc3339_time_or_a_duration_ago() {
    let now = UNIX_EPOCH + Duration::from_hours(500_000);
    let at = |secs| Ok(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(parse_since("2027-01-15T08:00:00Z", now), at(1_800_000_000));
    assert_eq!(parse_since("2027-01-15 07:00:00", now), at(1_799_996_400));
    assert_eq!(parse_since("1h", now), at(1_799_996_400));
    assert_eq!(parse_since("30m", now), at(1_799_998_200));
    let error = parse_since("yesterday", now).unwrap_err();
    assert!(error.contains("neither an RFC 3339 time"), "{error}");
}

#[test]
fn an_event_reads_as_one_line_with_its_evidence() {
    let event = event_at(1_800_000_000, "fiber").with_evidence("carrier", "up");
    assert_eq!(
        event.to_string(),
        "2027-01-15T08:00:00.000Z  state    fiber      up -> down: gateway unreachable  carrier=up"
    );
    let config = Event {
        at: UNIX_EPOCH,
        ..Event::now(kind::CONFIG, "", "", "", "reload refused")
    };
    assert_eq!(
        config.to_string(),
        "1970-01-01T00:00:00.000Z  config   -          reload refused"
    );
}
