//! `cargo xtask soak [--minutes N]`: a soak, not part of CI. Both LAN hosts keep mixed
//! traffic going (1 MiB HTTP downloads one after another, a UDP echo stream every 10 ms, a
//! ping a second) while an uplink meets a fault every 30 s (held 10 s, then healed): fiber
//! and lte in turn, so each fault hits the uplink carrying the traffic (after a fault on
//! fiber, lte carries it through fiber's hold-down), each fault kind on each; the controller is restarted every 3 minutes (SIGTERM and
//! `kill -9` in turn) and its config reloaded every 5 (the host limits changed). tcpdump
//! watches both ISPs the whole time. After the traffic stops and the NAT timeouts pass, it
//! checks:
//!
//! - no packet with a LAN source reached either ISP;
//! - every download arrived intact or its connection was reset, none stalled (20 s without
//!   a byte and without an error);
//! - the controller's memory is flat: each instance's resident set at its end is within
//!   [`RSS_GROWTH_LIMIT`] of the first instance's;
//! - the NAT tables are back to their idle size: no live entry.
//!
//! Prints the figures, then PASS or FAIL (exit status 1). Needs root; prints SKIPPED
//! otherwise. The daemon, captures and the lab are removed on every exit path, Ctrl-C
//! included.

use std::{
    io,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, Map, MapData};
use clap::Parser;
use failover_common::{
    names,
    nat::{Flow, FlowKey, expired, flow_timeout_ns, timeout},
};
use failover_tests::{
    capture::{self, Capture},
    daemon::DaemonGuard,
    http::KeepAlive,
    lab::{self, BLOB_SHA256, Cmd, Fault, Isp, LabGuard, Plan},
    privilege,
    stream::{self, EchoStream},
};

const FAULT_EVERY: Duration = Duration::from_secs(30);
const FAULT_HELD: Duration = Duration::from_secs(10);
const RESTART_EVERY: Duration = Duration::from_mins(3);
const RELOAD_EVERY: Duration = Duration::from_mins(5);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// A download silent this long without an error has stalled.
const STALL: Duration = Duration::from_secs(20);
const DOWNLOAD_RATE: u32 = 256 << 10;
/// An instance's resident set at its end may exceed the first instance's by this much.
const RSS_GROWTH_LIMIT: f64 = 1.25;
/// Every fault kind the lab can inject, in turn.
const FAULTS: [Fault; 6] = [
    Fault::GatewaySilent,
    Fault::UpstreamCut,
    Fault::CarrierDown,
    Fault::GatewaySilentArp,
    Fault::Loss(10),
    Fault::Mtu(1280),
];
/// The reloads alternate these `[limits]`.
const RELOADS: [&str; 2] = [
    "\n[limits]\nflows_per_host = 6000\nports_per_host = 3000\n",
    "",
];

/// A long run of everything at once.
#[derive(Parser, Debug)]
#[command(name = "soak")]
struct Options {
    /// Minutes of traffic and faults (the NAT timeouts are waited out after).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    minutes: u32,
}

/// What the traffic workers saw.
#[derive(Debug, Default)]
struct Traffic {
    downloads_intact: u64,
    downloads_corrupt: u64,
    downloads_reset: u64,
    downloads_stalled: u64,
    /// Other failures (e.g. a connect refused while no uplink works), with the last error.
    downloads_failed: u64,
    last_failure: Option<String>,
    pings_answered: u64,
    pings_lost: u64,
}

/// One controller instance's resident set in KiB: at its first and last sample, and its peak.
#[derive(Debug, Clone, Copy)]
struct Rss {
    first: u64,
    last: u64,
    peak: u64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    privilege::run_as_root("soak", || run(&options))
}

fn run(options: &Options) -> Result<bool> {
    failover_tests::interrupt::install()?;
    failover_tests::daemon::binary()?;
    let _lab = LabGuard::up()?;
    let captures = [Capture::start(Isp::Fiber)?, Capture::start(Isp::Lte)?];
    let daemon = DaemonGuard::start()?;
    stream::wait_for_uplink(Plan::NS_HOST1, Isp::Fiber, Duration::from_secs(20))?;

    let running = Arc::new(AtomicBool::new(true));
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut streams = Vec::new();
    for host in Plan::HOSTS {
        workers.push(spawn_downloads(host.ns, &running, &traffic));
        workers.push(spawn_pings(host.ns, &running, &traffic));
        streams.push(EchoStream::start(host.ns)?);
    }
    let mut soak = Schedule::new(daemon);
    let end = soak.start + Duration::from_mins(u64::from(options.minutes));
    while Instant::now() < end {
        failover_tests::interrupt::check()?;
        soak.tick()?;
        thread::sleep(Duration::from_millis(200));
    }
    soak.finish()?;
    running.store(false, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.join();
    }
    let streams: Vec<(u64, usize)> = streams
        .iter_mut()
        .map(|s| {
            s.stop();
            s.counts()
        })
        .collect();

    // The longest timeout any of this traffic's flows has (UDP), and a little more.
    let settle = Duration::from_secs(timeout::UDP_S + 10);
    eprintln!(
        "soak: traffic stopped; waiting {} s for the NAT timeouts",
        settle.as_secs()
    );
    let settle_end = Instant::now() + settle;
    while Instant::now() < settle_end {
        failover_tests::interrupt::check()?;
        thread::sleep(Duration::from_secs(1));
    }
    let live_at_end = live_nat_entries(&soak.daemon)?;
    let lan = Plan::ROUTER_LAN.addr.context("the LAN's address")?;
    let mut leaks = Vec::new();
    for capture in captures {
        leaks.extend(capture::inside(&capture.stop()?, lan));
    }
    let traffic = traffic.lock().expect("traffic record").clone_figures();
    Ok(report(
        options,
        &soak,
        &traffic,
        &streams,
        live_at_end,
        leaks.len(),
    ))
}

/// The faults, restarts and reloads, and the samples taken between them.
struct Schedule {
    daemon: DaemonGuard,
    start: Instant,
    faults: usize,
    restarts: u32,
    reloads: usize,
    next_fault: Instant,
    next_restart: Instant,
    next_reload: Instant,
    next_sample: Instant,
    /// The uplink faulted now, and when it heals.
    faulted: Option<(Isp, Instant)>,
    /// Finished controller instances, and the running one.
    rss: Vec<Rss>,
    current: Option<Rss>,
    peak_live: usize,
}

impl Schedule {
    fn new(daemon: DaemonGuard) -> Self {
        let start = Instant::now();
        Self {
            daemon,
            start,
            faults: 0,
            restarts: 0,
            reloads: 0,
            next_fault: start + FAULT_EVERY,
            next_restart: start + RESTART_EVERY,
            next_reload: start + RELOAD_EVERY,
            next_sample: start,
            faulted: None,
            rss: Vec::new(),
            current: None,
            peak_live: 0,
        }
    }

    fn say(&self, what: &str) {
        eprintln!("soak: {:>4} s: {what}", self.start.elapsed().as_secs());
    }

    /// Does whatever is due now.
    fn tick(&mut self) -> Result<()> {
        let now = Instant::now();
        if now >= self.next_sample {
            self.next_sample = now + SAMPLE_EVERY;
            if let Some(kib) = self.daemon.pid().and_then(rss_kib) {
                let rss = self.current.get_or_insert(Rss {
                    first: kib,
                    last: kib,
                    peak: kib,
                });
                rss.last = kib;
                rss.peak = rss.peak.max(kib);
            }
            let live = live_nat_entries(&self.daemon).unwrap_or(0);
            self.peak_live = self.peak_live.max(live);
        }
        if now >= self.next_fault {
            let isp = Isp::ALL[self.faults % Isp::ALL.len()];
            let fault = FAULTS[self.faults / Isp::ALL.len() % FAULTS.len()];
            self.say(&format!("fault {fault} on {}", isp.name()));
            lab::fault(isp, fault)?;
            self.faults += 1;
            self.faulted = Some((isp, now + FAULT_HELD));
            self.next_fault = now + FAULT_EVERY;
        }
        if let Some((isp, at)) = self.faulted
            && now >= at
        {
            lab::heal(isp)?;
            self.faulted = None;
        }
        if now >= self.next_restart {
            self.rss.extend(self.current.take());
            if self.restarts.is_multiple_of(2) {
                self.daemon.restart()?;
                self.say("controller restarted (SIGTERM)");
            } else {
                self.daemon.kill_and_restart()?;
                self.say("controller restarted (kill -9)");
            }
            self.restarts += 1;
            self.next_restart = now + RESTART_EVERY;
        }
        if now >= self.next_reload {
            self.daemon
                .reload_with(RELOADS[self.reloads % RELOADS.len()])?;
            self.say("config reloaded");
            self.reloads += 1;
            self.next_reload = now + RELOAD_EVERY;
        }
        Ok(())
    }

    /// Heals what is still faulted and closes the running instance's record.
    fn finish(&mut self) -> Result<()> {
        self.rss.extend(self.current.take());
        if let Some((isp, _)) = self.faulted.take() {
            lab::heal(isp)?;
        }
        Ok(())
    }
}

/// Prints the figures and each check; true when every check passed.
fn report(
    options: &Options,
    soak: &Schedule,
    traffic: &Traffic,
    streams: &[(u64, usize)],
    live_at_end: usize,
    leaks: usize,
) -> bool {
    let first = soak.rss.first().map_or(0, |r| r.last);
    #[expect(clippy::cast_precision_loss, reason = "KiB counts")]
    let flat = soak
        .rss
        .iter()
        .all(|r| r.last as f64 <= first as f64 * RSS_GROWTH_LIMIT);
    println!(
        "soak: {} min, {} faults (each kind {} times on each uplink), {} restarts, {} reloads",
        options.minutes,
        soak.faults,
        soak.faults / (FAULTS.len() * Isp::ALL.len()),
        soak.restarts,
        soak.reloads
    );
    println!(
        "downloads: {} intact, {} reset, {} other failures (last: {}), {} corrupt, {} stalled",
        traffic.downloads_intact,
        traffic.downloads_reset,
        traffic.downloads_failed,
        traffic.last_failure.as_deref().unwrap_or("none"),
        traffic.downloads_corrupt,
        traffic.downloads_stalled
    );
    println!(
        "pings: {} answered, {} lost; UDP streams (sent, echoed): {streams:?}",
        traffic.pings_answered, traffic.pings_lost
    );
    let rss: Vec<String> = soak
        .rss
        .iter()
        .map(|r| format!("{}→{} (peak {})", r.first, r.last, r.peak))
        .collect();
    println!("controller RSS per instance, KiB: {}", rss.join(", "));
    println!(
        "live NAT entries: peak {}, after the timeouts {live_at_end}",
        soak.peak_live
    );
    println!("LAN sources seen at the ISPs: {leaks}");
    let checks = [
        ("no LAN source at either ISP", leaks == 0),
        (
            "every download intact or reset",
            traffic.downloads_corrupt == 0 && traffic.downloads_stalled == 0,
        ),
        ("controller memory flat", flat),
        ("NAT tables back to idle (no live entry)", live_at_end == 0),
    ];
    let mut pass = true;
    for (what, ok) in checks {
        println!("{} {what}", if ok { "PASS" } else { "FAIL" });
        pass &= ok;
    }
    pass
}

impl Traffic {
    fn clone_figures(&self) -> Traffic {
        Traffic {
            last_failure: self.last_failure.clone(),
            ..*self
        }
    }
}

/// Downloads of the 1 MiB blob from `ns`, one after another, until `running` ends.
fn spawn_downloads(
    ns: &'static str,
    running: &Arc<AtomicBool>,
    traffic: &Arc<Mutex<Traffic>>,
) -> JoinHandle<()> {
    let (running, traffic) = (running.clone(), traffic.clone());
    thread::spawn(move || {
        while running.load(Ordering::SeqCst) {
            let result = KeepAlive::open(ns).and_then(|mut connection| {
                connection.set_read_timeout(STALL)?;
                connection.download_blob(DOWNLOAD_RATE)
            });
            let mut t = traffic.lock().expect("traffic record");
            match result {
                Ok(sha) if sha == BLOB_SHA256 => t.downloads_intact += 1,
                Ok(_) => t.downloads_corrupt += 1,
                Err(e) => match io_kind(&e) {
                    Some(
                        io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe,
                    ) => t.downloads_reset += 1,
                    Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
                        if format!("{e:#}").contains("reading the download") =>
                    {
                        t.downloads_stalled += 1;
                        t.last_failure = Some(format!("stalled: {e:#}"));
                    }
                    _ => {
                        t.downloads_failed += 1;
                        t.last_failure = Some(format!("{e:#}"));
                    }
                },
            }
            drop(t);
            thread::sleep(Duration::from_millis(200));
        }
    })
}

fn io_kind(e: &anyhow::Error) -> Option<io::ErrorKind> {
    e.chain()
        .find_map(|cause| cause.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}

/// One ping a second from `ns` to the server until `running` ends.
fn spawn_pings(
    ns: &'static str,
    running: &Arc<AtomicBool>,
    traffic: &Arc<Mutex<Traffic>>,
) -> JoinHandle<()> {
    let (running, traffic) = (running.clone(), traffic.clone());
    thread::spawn(move || {
        let server = Plan::SERVER.to_string();
        while running.load(Ordering::SeqCst) {
            let answered = Cmd::in_ns(ns, "ping")
                .args(["-n", "-q", "-c", "1", "-W", "1", &server])
                .run()
                .is_ok();
            let mut t = traffic.lock().expect("traffic record");
            if answered {
                t.pings_answered += 1;
            } else {
                t.pings_lost += 1;
            }
            drop(t);
            thread::sleep(Duration::from_secs(1));
        }
    })
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Entries of the pinned NAT table that have not timed out.
fn live_nat_entries(daemon: &DaemonGuard) -> Result<usize> {
    let pin = daemon.pin_dir().join(names::MAP_FLOWS);
    let map = MapData::from_pin(&pin).with_context(|| format!("opening {}", pin.display()))?;
    let table = HashMap::<MapData, FlowKey, Flow>::try_from(Map::LruHashMap(map))?;
    let now = failover_user::clock::now_ns()?;
    let mut live = 0;
    for entry in &table {
        let (key, flow) = entry?;
        if !expired(
            flow.last_seen_ns,
            flow_timeout_ns(key.proto, flow.state),
            now,
        ) {
            live += 1;
        }
    }
    Ok(live)
}
