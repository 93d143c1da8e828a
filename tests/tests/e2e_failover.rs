//! End-to-end tests of the controller (`failover run`, default settings, the lab's far
//! targets) in the lab: each fault moves LAN traffic to lte with a bounded outage and an
//! explained event, loss does not, failback waits for the hold-down, flapping is damped, TCP
//! flows of the failed uplink are reset while the other uplink's run on, and the operator's
//! override survives a restart. Time bounds are generous on purpose (noisy machines). Root
//! only; run with `--test-threads=1` (the tests share the lab).

use std::thread;
use std::time::{Duration, Instant};

use failover_tests::{
    daemon::DaemonGuard,
    http::KeepAlive,
    lab::{self, Fault, Isp, LabGuard, Plan},
    privilege::skip_unless_root,
    stream::{self, EchoStream},
};
use failover_user::{config::HealthConfig, events::Event, policy};

const HOST: &str = Plan::NS_HOST1;
/// Room for detection (about a second) plus slow `curl`s on a busy machine.
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);

/// The lab and the daemon, fiber carrying new flows; the daemon is dropped (stopped) first.
fn start() -> (LabGuard, DaemonGuard) {
    start_with("")
}

/// Like [`start`], with `extra` appended to the daemon's config.
fn start_with(extra: &str) -> (LabGuard, DaemonGuard) {
    let lab = LabGuard::up().expect("building the lab");
    assert!(
        !lab::masquerade_enabled().expect("reading masquerade"),
        "kernel masquerade must be off: the data plane is the NAT"
    );
    let daemon = DaemonGuard::start_with(extra).expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("new flows through fiber");
    (lab, daemon)
}

fn events_of<'a>(events: &'a [Event], kind: &str, uplink: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.kind == kind && e.uplink == uplink)
        .collect()
}

/// Injects `fault` at fiber under a running stream; new flows and the stream must reach the
/// server through lte, the stream's outage must stay under `max_gap`, and the log must explain
/// fiber going down (`cause`) with evidence, and the switch.
fn assert_failover(fault: Fault, max_gap: Duration, cause: &str) {
    let (_lab, daemon) = start();
    let mut echo = EchoStream::start(HOST).expect("starting the UDP stream");
    echo.wait_flowing(Duration::from_secs(5))
        .expect("the stream flows through fiber");
    thread::sleep(Duration::from_secs(1));

    let at = Instant::now();
    lab::fault(Isp::Fiber, fault).expect("injecting the fault");
    let moved = stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT).expect("moved to lte");
    echo.wait_flowing(Duration::from_secs(5))
        .expect("the stream flows again");
    thread::sleep(Duration::from_secs(1));
    echo.stop();
    let gap = echo.gap_around(at);
    println!(
        "{fault}: stream gap {} ms, new flows on lte {} ms after the fault; (sent, echoed) {:?}",
        gap.as_millis(),
        (moved - at).as_millis(),
        echo.counts()
    );
    assert!(
        gap < max_gap,
        "{fault}: the stream lost {gap:?} (bound {max_gap:?})"
    );

    let status = daemon.status().expect("status");
    assert_eq!(status.active, "lte", "{status:?}");
    let fiber = &status.uplinks[0];
    assert_eq!(
        (fiber.name.as_str(), fiber.state.as_str()),
        ("fiber", "down")
    );

    let events = daemon.events().expect("events");
    let down: Vec<_> = events_of(&events, "state", "fiber")
        .into_iter()
        .filter(|e| e.to == "down")
        .collect();
    assert_eq!(down.len(), 1, "one fiber down event: {events:#?}");
    let down = down[0];
    assert!(
        down.cause.contains(cause),
        "cause {:?} should say {cause:?}",
        down.cause
    );
    for key in [
        "interface",
        "carrier",
        "address",
        "gateway",
        "gateway_mac",
        "far_targets_answered",
    ] {
        assert!(
            down.evidence.contains_key(key),
            "evidence {key} missing: {:?}",
            down.evidence
        );
    }
    let switches = events_of(&events, "switch", "lte");
    assert!(
        switches.iter().any(|e| e.from == "fiber" && e.to == "lte"),
        "a switch fiber -> lte: {events:#?}"
    );
    assert!(switches[0].at >= down.at, "switched after the state change");
}

#[test]
fn gateway_silent_moves_traffic_to_lte_within_3_s() {
    if skip_unless_root("gateway_silent_moves_traffic_to_lte_within_3_s") {
        return;
    }
    assert_failover(
        Fault::GatewaySilent,
        Duration::from_secs(3),
        "gateway silent",
    );
}

#[test]
fn upstream_cut_moves_traffic_to_lte_within_4_s() {
    if skip_unless_root("upstream_cut_moves_traffic_to_lte_within_4_s") {
        return;
    }
    assert_failover(
        Fault::UpstreamCut,
        Duration::from_secs(4),
        "far targets answered",
    );
}

#[test]
fn carrier_down_moves_traffic_to_lte_within_1_s() {
    if skip_unless_root("carrier_down_moves_traffic_to_lte_within_1_s") {
        return;
    }
    assert_failover(Fault::CarrierDown, Duration::from_secs(1), "carrier down");
}

#[test]
fn ten_percent_loss_for_a_minute_causes_no_failover() {
    if skip_unless_root("ten_percent_loss_for_a_minute_causes_no_failover") {
        return;
    }
    let (_lab, daemon) = start();
    lab::fault(Isp::Fiber, Fault::Loss(10)).expect("loss=10");
    thread::sleep(Duration::from_mins(1));
    let events = daemon.events().expect("events");
    let status = daemon.status().expect("status");
    lab::heal(Isp::Fiber).expect("healing");
    println!("events under 10 % loss: {events:#?}\nstatus: {status:#?}");
    assert!(
        events.iter().all(|e| e.kind != "switch"),
        "no switch under 10 % loss: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| !(e.kind == "state" && e.to == "down")),
        "no uplink down under 10 % loss: {events:#?}"
    );
    assert_eq!(status.active, "fiber");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("still on fiber");
}

#[test]
fn failback_to_fiber_comes_after_the_hold_down() {
    if skip_unless_root("failback_to_fiber_comes_after_the_hold_down") {
        return;
    }
    let (_lab, daemon) = start();
    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("gateway-silent");
    stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT).expect("moved to lte");
    thread::sleep(Duration::from_secs(2));
    let healed = Instant::now();
    lab::heal(Isp::Fiber).expect("healing");
    // Still on lte while fiber proves itself.
    thread::sleep(Duration::from_secs(10));
    assert_eq!(
        stream::whoami_isp(HOST),
        Some(Isp::Lte),
        "no early failback"
    );
    let back = stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(50))
        .expect("failback to fiber");
    let after = back - healed;
    println!("failback {} ms after the heal", after.as_millis());
    assert!(
        (Duration::from_secs(25)..=Duration::from_secs(40)).contains(&after),
        "failback {after:?} after the heal (expected 25-40 s: hold-down 30 s)"
    );
    let events = daemon.events().expect("events");
    assert!(
        events_of(&events, "switch", "fiber")
            .iter()
            .any(|e| e.from == "lte"),
        "a switch lte -> fiber: {events:#?}"
    );
}

#[test]
fn flapping_fiber_switches_at_most_the_documented_bound() {
    if skip_unless_root("flapping_fiber_switches_at_most_the_documented_bound") {
        return;
    }
    let bound = policy::max_switches_per_minute(&HealthConfig::default());
    let (_lab, daemon) = start();
    let until = Instant::now() + Duration::from_mins(1);
    while Instant::now() < until {
        lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("fault");
        thread::sleep(Duration::from_secs(2));
        lab::heal(Isp::Fiber).expect("heal");
        thread::sleep(Duration::from_secs(2));
    }
    let events = daemon.events().expect("events");
    let switches: Vec<_> = events.iter().filter(|e| e.kind == "switch").collect();
    println!(
        "{} switch(es) in a minute of flapping (bound {bound}): {switches:#?}",
        switches.len()
    );
    assert!(!switches.is_empty(), "the flapping fiber was failed over");
    assert!(
        switches.len() <= usize::try_from(bound).unwrap_or(usize::MAX),
        "{} switches in a minute, bound {bound}: {switches:#?}",
        switches.len()
    );
}

/// One flow on each uplink: the download through fiber is reset soon after fiber fails, the
/// connection through lte does not notice. The data plane's log is on, and says so.
#[test]
fn tcp_on_the_failed_uplink_is_reset_and_tcp_on_lte_keeps_working() {
    if skip_unless_root("tcp_on_the_failed_uplink_is_reset_and_tcp_on_lte_keeps_working") {
        return;
    }
    let (_lab, daemon) = start_with("\n[logging]\ndataplane = \"info\"\n");
    // Open one connection while lte is forced; the data plane keeps it there afterwards.
    daemon.switch("lte", None).expect("switch lte");
    stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT).expect("forced to lte");
    let mut on_lte = KeepAlive::open(Plan::NS_HOST2).expect("connection over lte");
    assert_eq!(on_lte.whoami().expect("whoami"), Plan::LTE.router.ip());
    daemon.auto().expect("auto");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("back to fiber");
    assert_eq!(
        on_lte.whoami().expect("whoami"),
        Plan::LTE.router.ip(),
        "the lte connection stays on lte"
    );

    let mut download = KeepAlive::open(HOST).expect("connection over fiber");
    assert_eq!(download.whoami().expect("whoami"), Plan::FIBER.router.ip());
    download
        .start_slow_download(32 * 1024, 32 * 1024)
        .expect("a slow download");

    let at = Instant::now();
    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("gateway-silent");
    let error = download
        .read_until_error(at + Duration::from_secs(5))
        .expect("the download fails within 5 s");
    println!(
        "download failed {} ms after the fault: {error}",
        at.elapsed().as_millis()
    );
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    let reset_logged = |log: &str| log.contains("reset: TCP 10.10.0.11:");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reset_logged(&daemon.log()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        reset_logged(&daemon.log()),
        "the data plane logs the reset it sent:\n{}",
        daemon.log()
    );

    assert_eq!(
        on_lte.whoami().expect("the lte connection still works"),
        Plan::LTE.router.ip()
    );
}

#[test]
fn override_survives_a_restart_and_auto_ends_it() {
    if skip_unless_root("override_survives_a_restart_and_auto_ends_it") {
        return;
    }
    let (_lab, mut daemon) = start();
    daemon.switch("lte", None).expect("switch lte");
    stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT).expect("new flows on lte");

    daemon.restart().expect("restarting the daemon");
    let status = daemon.status().expect("status");
    assert_eq!(status.active, "lte", "{status:?}");
    assert!(
        status
            .forced
            .as_deref()
            .is_some_and(|f| f.starts_with("lte")),
        "the override is restored: {status:?}"
    );
    stream::wait_for_uplink(HOST, Isp::Lte, MOVE_TIMEOUT).expect("still lte after restart");

    daemon.auto().expect("auto");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("auto returns to fiber");
    let status = daemon.status().expect("status");
    assert_eq!((status.active.as_str(), status.forced), ("fiber", None));
}

/// A DHCP renumbering: fiber's address is replaced by another of its subnet (added, then the
/// old one removed, the kernel promoting the new one as a DHCP client's update does). The
/// controller writes the new NAT address at once, new flows leave with it, and fiber stays
/// the active uplink (its probes follow the address too).
#[test]
fn a_renumbered_uplink_translates_new_flows_to_its_new_address() {
    if skip_unless_root("a_renumbered_uplink_translates_new_flows_to_its_new_address") {
        return;
    }
    let (_lab, daemon) = start();
    let fiber = Plan::FIBER.router;
    let old = fiber.addr.expect("fiber has an address");
    let new = std::net::Ipv4Addr::from(u32::from(old.addr) + 1);
    let ip = |args: &[&str]| {
        lab::Cmd::ip(Plan::NS_ROUTER)
            .args(args.iter().copied())
            .run()
            .expect("running ip")
    };
    lab::Cmd::in_ns(Plan::NS_ROUTER, "sysctl")
        .args([
            "-qw",
            &format!("net.ipv4.conf.{}.promote_secondaries=1", fiber.name),
        ])
        .run()
        .expect("sysctl promote_secondaries");
    let (new_cidr, old_cidr) = (
        format!("{new}/{}", old.len),
        format!("{}/{}", old.addr, old.len),
    );
    ip(&["addr", "add", &new_cidr, "dev", fiber.name]);
    ip(&["addr", "del", &old_cidr, "dev", fiber.name]);

    let renumbered_at = Instant::now();
    lab::expect_within("status shows fiber's new address", MOVE_TIMEOUT, || {
        let status = daemon.status()?;
        let fiber_status = status.uplinks.iter().find(|u| u.name == "fiber");
        Ok(fiber_status.and_then(|u| u.address.clone()) == Some(new.to_string()))
    })
    .expect("the controller follows the address");
    println!(
        "status showed the new address {} ms after the change",
        renumbered_at.elapsed().as_millis()
    );
    lab::expect_within("new flows leave with the new address", MOVE_TIMEOUT, || {
        Ok(stream::whoami(HOST).ok() == Some(new))
    })
    .expect("new flows use the new address");
    let status = daemon.status().expect("status");
    assert_eq!(status.active, "fiber", "fiber stays active: {status:?}");
    let fiber_state = status.uplinks.iter().find(|u| u.name == "fiber");
    assert_eq!(
        fiber_state.map(|u| u.state.as_str()),
        Some("up"),
        "{status:?}"
    );
}
