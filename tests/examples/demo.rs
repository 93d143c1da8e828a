//! `cargo xtask demo`: the product in one command. Builds the lab, starts the controller
//! (`failover run`, default settings plus a port forward to a web server on a LAN host and
//! `[dns]` keeping its name pointed at the carrying uplink) in its router with kernel
//! masquerade off, runs a UDP echo stream from a LAN host and fetches the site by name from
//! the internet, silences the fiber gateway while its link stays up (the motivating outage),
//! shows the failover, the site answering by name through the backup and, after the heal,
//! the failback live in the status table, prints the measured outages, and tears everything
//! down: Ctrl-C included.
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
    lab::{self, Fault, Isp, Knot, LabGuard, Plan},
    lan_server::{Client, LanServer, fetch_by_name},
    privilege,
    stream::{self, EchoStream},
};

const HOST: &str = Plan::NS_HOST1;
/// Longest wait for the failover (it takes about 0.6 s).
const FAILOVER_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for the failback: the 30 s hold-down, the 2 s `up_after` and room to spare.
const FAILBACK_WAIT: Duration = Duration::from_secs(45);
/// The LAN host's web server, and the name and public port the internet reaches it at.
const SITE_PORT: u16 = 8080;
const SITE: &str = "www.lab.example";
const PUBLIC_PORT: u16 = 80;
/// The TTL the README recommends for `[dns]` records (its default).
const DNS_TTL: &str = "30s";
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

    let (_site, knot, inbound) = start_site()?;

    step("starting `failover run` in the router (default settings, probes every 100 ms)");
    let daemon = DaemonGuard::start_with(&inbound)?;
    stream::wait_for_uplink(HOST, Isp::Fiber, FAILOVER_WAIT).context("traffic on fiber")?;
    wait_for_name(&knot, Isp::Fiber, Instant::now(), FAILOVER_WAIT)?;
    print_indented(&daemon.cli(&["status"])?);
    show_whoami();
    show_site(&knot);
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
    let by_name = wait_for_name(&knot, Isp::Lte, fault_at, FAILOVER_WAIT)?;
    show_site(&knot);
    // Opened through the backup during the outage: it must outlive the failback.
    let mut on_backup = Client::open((Isp::Lte.uplink().router.ip(), PUBLIC_PORT).into())?;
    on_backup.get()?;
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
    wait_for_name(&knot, Isp::Fiber, heal_at, FAILOVER_WAIT)?;
    show_site(&knot);
    let kept = on_backup.get().map_or_else(
        |e| format!("FAILED: {e:#}"),
        |seen| format!("still answers (the server sees {seen})"),
    );
    println!("  the connection opened through lte during the outage {kept}");

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
    println!(
        "  the site by name through lte {} ms after the fault (target: within the records' TTL \
         {DNS_TTL} + 2 s; a resolver that cached fiber's address follows within the TTL)",
        by_name.as_millis()
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

/// host1's web server, the zone holding its name, and the config lines that forward the
/// site's port and keep its name pointed at the carrying uplink.
fn start_site() -> Result<(LanServer, Knot, String)> {
    step("host1 serves a web site; the internet's zone server holds its name (www.lab.example)");
    let site = LanServer::start(HOST, SITE_PORT)?;
    let knot = Knot::start(&[SITE])?;
    let inbound = format!(
        "\n[[forward]]\nname = \"web\"\nport = {PUBLIC_PORT}\nto = \"{}:{SITE_PORT}\"\n{}",
        Plan::HOST1.ip(),
        knot.dns_section(&[SITE], DNS_TTL)?
    );
    println!("  the config adds a port forward and the DNS record to follow the uplink:");
    print_indented(inbound.trim());
    Ok((site, knot, inbound))
}

/// Waits until the site's name leads to `isp`'s address and a fetch by name answers there;
/// returns how long after `since` that was.
fn wait_for_name(knot: &Knot, isp: Isp, since: Instant, within: Duration) -> Result<Duration> {
    let address = isp.uplink().router.ip();
    loop {
        interrupt::check()?;
        // Asked first: a fetch from an address that stopped answering would hang.
        if knot.query(SITE).ok().as_deref() == Some(&[address])
            && fetch_by_name(knot, SITE, PUBLIC_PORT).is_ok()
        {
            return Ok(since.elapsed());
        }
        if since.elapsed() > within {
            bail!("{SITE} did not lead to {address} within {within:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The internet fetches the site by name: where the name leads and what the server saw.
fn show_site(knot: &Knot) {
    match fetch_by_name(knot, SITE, PUBLIC_PORT) {
        Ok((address, seen)) => println!(
            "  internet -> http://{SITE}/: {SITE} is {address} ({}); host1's server sees the client at {seen}",
            Isp::ALL
                .into_iter()
                .find(|isp| isp.uplink().router.ip() == address)
                .map_or("no uplink's address", |isp| isp.uplink().router.name)
        ),
        Err(e) => println!("  internet -> http://{SITE}/: {e:#}"),
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
