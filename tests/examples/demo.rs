//! `cargo xtask demo`: the product in one command. Builds the lab, starts the controller
//! (`failover run`, default settings) in its router with kernel masquerade off, runs a UDP
//! echo stream from a LAN host, silences the fiber gateway while its link stays up (the
//! motivating outage), shows the failover and, after the heal, the failback live in the
//! status table, prints the measured outages, and tears everything down: Ctrl-C included.
//!
//! Needs root. `cargo xtask demo` builds the `failover` binary and passes it in
//! `FAILOVER_BIN`.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use failover_tests::{
    daemon::DaemonGuard,
    interrupt,
    lab::{self, Fault, Isp, LabGuard, Plan},
    privilege,
    stream::{self, EchoStream},
};

const HOST: &str = Plan::NS_HOST1;
/// Longest wait for the failover (it takes about 0.6 s).
const FAILOVER_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for the failback: the 30 s hold-down, the 2 s `up_after` and room to spare.
const FAILBACK_WAIT: Duration = Duration::from_secs(45);
/// How often the live view asks `failover status`.
const POLL: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    if !privilege::is_root() {
        eprintln!(
            "demo: needs root (it creates network namespaces and loads BPF programs): \
             sudo -E cargo xtask demo"
        );
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    interrupt::install()?;
    step("building the lab: 2 LAN hosts, the router (lan0, fiber, lte), 2 ISPs, a server");
    let _lab = LabGuard::up()?;
    println!(
        "  kernel masquerade on the router: {} (the data plane is the NAT)",
        if lab::masquerade_enabled()? {
            "on"
        } else {
            "off"
        }
    );

    step("starting `failover run` in the router (default settings, probes every 100 ms)");
    let daemon = DaemonGuard::start()?;
    stream::wait_for_uplink(HOST, Isp::Fiber, FAILOVER_WAIT).context("traffic on fiber")?;
    print_indented(&daemon.cli(&["status"])?);
    show_whoami();
    let blob = lab::http_get(HOST, &Plan::blob_url(), Duration::from_secs(10))?;
    println!(
        "  host1 downloaded {} bytes, sha256 {}",
        blob.len(),
        if lab::sha256_hex(&blob) == lab::BLOB_SHA256 {
            "matches"
        } else {
            "DOES NOT MATCH"
        }
    );

    step("host1 sends a UDP datagram every 10 ms to the server, which echoes it");
    let echoes = EchoStream::start(HOST)?;
    echoes.wait_flowing(Duration::from_secs(5))?;
    thread::sleep(Duration::from_secs(1));
    interrupt::check()?;

    step("the motivating outage: the fiber gateway goes silent, its link stays up");
    let fault_at = Instant::now();
    lab::fault(Isp::Fiber, Fault::GatewaySilent)?;
    let link = lab::link_state(Plan::NS_ROUTER, Plan::FIBER.router.name)?;
    println!(
        "  router's fiber link: carrier {}",
        if link.has_carrier() { "up" } else { "down" }
    );
    let moved = watch_until(&daemon, "lte", fault_at, FAILOVER_WAIT)?;
    thread::sleep(Duration::from_millis(500));
    let outage = echoes.gap_around(fault_at);
    println!(
        "  the controller moved traffic to lte {} ms after the fault; host1's UDP stream \
         was silent for {} ms",
        moved.as_millis(),
        outage.as_millis()
    );
    show_whoami();
    println!("  the event log (failover events):");
    print_indented(&daemon.cli(&["events"])?);

    step("fiber heals; the controller fails back once fiber has been healthy for 30 s");
    let heal_at = Instant::now();
    lab::heal(Isp::Fiber)?;
    let back = watch_until(&daemon, "fiber", heal_at, FAILBACK_WAIT)?;
    thread::sleep(Duration::from_millis(500));
    let failback_gap = echoes.gap_around(heal_at + back);
    show_whoami();

    step("measured");
    let (sent, received) = echoes.counts();
    println!(
        "  outage seen by host1 when the fiber gateway went silent: {} ms (target: under 1 s)",
        outage.as_millis()
    );
    println!(
        "  failback {:.1} s after the heal (hold-down 30 s), longest silence around it: {} ms \
         (failback = \"keep\": the running UDP stream stays on lte, new flows take fiber)",
        back.as_secs_f64(),
        failback_gap.as_millis()
    );
    println!("  UDP stream: {sent} datagrams sent, {received} echoes received");

    step("tearing everything down");
    Ok(())
}

/// Prints a line whenever the active uplink or a state changes, and the whole status table
/// when the active uplink becomes `wanted`; returns how long after `since` that was.
fn watch_until(
    daemon: &DaemonGuard,
    wanted: &str,
    since: Instant,
    within: Duration,
) -> Result<Duration> {
    let mut last = String::new();
    loop {
        interrupt::check()?;
        let status = daemon.status()?;
        let now = since.elapsed();
        let uplink_states: Vec<String> = status
            .uplinks
            .iter()
            .map(|u| format!("{} {}", u.name, u.state))
            .collect();
        let line = format!("active {:<6} {}", status.active, uplink_states.join(", "));
        if line != last {
            println!("  +{:>5.1} s  {line}", now.as_secs_f64());
            last = line;
        }
        if status.active == wanted {
            print_indented(&daemon.cli(&["status"])?);
            return Ok(now);
        }
        if now > within {
            bail!("the active uplink did not become {wanted} within {within:?}");
        }
        thread::sleep(POLL);
    }
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

fn show_whoami() {
    match stream::whoami(HOST) {
        Ok(addr) => println!(
            "  host1 -> http://{}/whoami: the server sees {addr} ({})",
            Plan::SERVER,
            Isp::ALL
                .into_iter()
                .find(|isp| isp.uplink().router.ip() == addr)
                .map_or("no uplink's address", |isp| isp.uplink().router.name)
        ),
        Err(e) => println!("  host1 -> http://{}/whoami: {e:#}", Plan::SERVER),
    }
}
