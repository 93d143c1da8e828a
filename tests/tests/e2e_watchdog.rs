//! The controller notices when the data plane does not do what it was told: a map entry
//! rewritten behind its back is put back (with an event), and frames the kernel refuses to
//! redirect (the fiber gateway's veth left without GRO, so XDP frames cannot reach it) are
//! counted on that uplink and reported with the fix, until the controller sees what the kernel
//! now reports and fiber's flows take the TC path, which carries them again. Root only; run
//! with `--test-threads=1`.

use std::time::Duration;

use aya::maps::{Array, MapData};
use failover_common::{names, nat::Uplink};
use failover_tests::{
    daemon::DaemonGuard,
    lab::{self, Cmd, Isp, LabGuard, Plan},
    privilege::skip_unless_root,
    stream::{self, EchoStream},
};
use failover_user::events::kind;

const HOST: &str = Plan::NS_HOST1;

/// Turns GRO on the ISP side of fiber off and back on when dropped, even if the test fails.
struct GroOff(&'static lab::Uplink);

impl GroOff {
    fn set(uplink: &'static lab::Uplink, on: bool) {
        Cmd::in_ns(uplink.ns, "ethtool")
            .args([
                "-K",
                uplink.gateway.name,
                "gro",
                if on { "on" } else { "off" },
            ])
            .run()
            .expect("ethtool");
    }
}

impl Drop for GroOff {
    fn drop(&mut self) {
        Self::set(self.0, true);
    }
}

#[test]
fn the_watchdog_repairs_drift_and_counts_refused_redirects() {
    if skip_unless_root("the_watchdog_repairs_drift_and_counts_refused_redirects") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let daemon = DaemonGuard::start().expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(15)).expect("fiber carries");
    drift_is_repaired(&daemon);
    let status = daemon.status().expect("status");
    assert_eq!(status.uncounted_redirects, None, "{status:?}");
    if lab::kernel_offloads() {
        // No veth has GRO: every interface is on the TC path from the start, and carries.
        println!(
            "kernel-default offloads: every interface starts on TC, so the XDP-to-TC change \
             is checked on the tuned lab; checking that TC carries instead"
        );
        assert_eq!(fiber_datapath(&daemon), "tc", "{status:?}");
        let mut stream = EchoStream::start(HOST).expect("starting the UDP stream");
        stream
            .wait_flowing(Duration::from_secs(5))
            .expect("echoes on TC");
        std::thread::sleep(Duration::from_secs(1));
        stream.stop();
        assert_eq!(fiber_failures(&daemon), 0, "no refused redirects on TC");
        return;
    }
    refused_redirects_are_counted_until_tc_takes_over(&daemon);
}

/// Fiber's slot gets a wrong NAT address; the watchdog puts it back, with an event.
fn drift_is_repaired(daemon: &DaemonGuard) {
    // Drift: fiber's slot gets a wrong NAT address, as a stray `bpftool map update` would.
    let pin = daemon.pin_dir().join(names::MAP_UPLINKS);
    let map = MapData::from_pin(&pin).expect("opening the pinned uplink map");
    let mut uplinks: Array<MapData, Uplink> =
        Array::try_from(aya::maps::Map::Array(map)).expect("an array");
    let good = uplinks.get(&0, 0).expect("slot 0");
    let mut bad = good;
    bad.addr = [192, 0, 2, 250];
    uplinks.set(0, bad, 0).expect("writing the drift");
    let repaired = lab::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        Ok(uplinks.get(&0, 0)? == good)
    })
    .expect("reading the map");
    assert!(
        repaired,
        "the drifted entry was put back:\n{}",
        daemon.log()
    );
    let events = daemon.events().expect("events");
    let drift = events
        .iter()
        .find(|e| e.kind == kind::DATAPLANE && e.from == "drift")
        .unwrap_or_else(|| panic!("no drift event: {events:?}"));
    assert_eq!(drift.to, "repaired", "{drift:?}");
    assert_eq!(drift.uplink, Isp::Fiber.name(), "{drift:?}");
    let evidence = drift
        .evidence
        .get("fo_uplinks[0].addr")
        .unwrap_or_else(|| panic!("the event names the field: {drift:?}"));
    assert!(evidence.starts_with("192.0.2.250"), "{evidence}");
    assert!(daemon.status().expect("status").map_repairs >= 1);
}

/// With GRO off at fiber's gateway, veth drops XDP frames redirected into it: counted and
/// reported, until the controller sees fiber needs TC, which then carries its flows.
fn refused_redirects_are_counted_until_tc_takes_over(daemon: &DaemonGuard) {
    let status = daemon.status().expect("status");
    // Refused redirects: with GRO off, veth drops XDP frames redirected into it.
    assert_eq!(fiber_datapath(daemon), "xdp", "{status:?}");
    assert!(
        status
            .lan_datapath
            .as_deref()
            .is_some_and(|p| p.starts_with("xdp")),
        "{status:?}"
    );
    let fiber = Isp::Fiber.uplink();
    let before = fiber_failures(daemon);
    let _restore = GroOff(fiber);
    GroOff::set(fiber, false);
    let mut stream = EchoStream::start(HOST).expect("starting the UDP stream");
    let counted = lab::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        Ok(fiber_failures(daemon) > before)
    })
    .expect("reading status");
    assert!(
        counted,
        "refused redirects are counted on fiber: {:?}",
        daemon.status()
    );
    let reported = lab::wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
        Ok(daemon
            .events()?
            .iter()
            .any(|e| e.kind == kind::DATAPLANE && e.to == "redirect-failed"))
    })
    .expect("reading events");
    assert!(reported, "the refusal is reported once, with the fix");
    // What the kernel now reports for fiber's interface: it cannot take redirected frames.
    let reported_tc = lab::wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
        Ok(fiber_datapath(daemon) == "tc")
    })
    .expect("reading status");
    assert!(
        reported_tc,
        "fiber's data path shows the need for TC: {:?}",
        daemon.status()
    );
    // The TC path carries fiber's flows: echoes come back, and no more redirects fail.
    stream
        .wait_flowing(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", daemon.status(), daemon.log()));
    let settled = fiber_failures(daemon);
    let (_, echoes) = stream.counts();
    std::thread::sleep(Duration::from_secs(2));
    stream.stop();
    assert!(stream.counts().1 > echoes + 10, "the stream flows on TC");
    assert_eq!(
        fiber_failures(daemon),
        settled,
        "no refused redirects on TC"
    );
    stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(10))
        .expect("HTTP through fiber on the TC path");
    let metrics = daemon.cli(&["metrics"]).unwrap_or_default();
    assert!(
        metrics.is_empty()
            || metrics
                .contains("failover_redirect_failures_total{uplink=\"fiber\",direction=\"out\"}"),
        "{metrics}"
    );
}

/// The path fiber's status names ("xdp", "tc"), or "" when none.
fn fiber_datapath(daemon: &DaemonGuard) -> String {
    daemon
        .status()
        .ok()
        .and_then(|s| s.uplinks.into_iter().find(|u| u.name == Isp::Fiber.name()))
        .and_then(|u| u.datapath)
        .and_then(|p| p.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn fiber_failures(daemon: &DaemonGuard) -> u64 {
    daemon
        .status()
        .ok()
        .and_then(|s| s.uplinks.into_iter().find(|u| u.name == Isp::Fiber.name()))
        .map_or(0, |u| u.redirect_failed_to_uplink)
}

/// fiber's ISP drops what the data plane translates (UDP from its port range) while the
/// probes (ICMP, ARP) still pass: a blackhole the probes cannot see.
#[test]
fn an_uplink_that_answers_probes_but_not_traffic_is_a_blackhole() {
    if skip_unless_root("an_uplink_that_answers_probes_but_not_traffic_is_a_blackhole") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let daemon = DaemonGuard::start().expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(15)).expect("fiber carries");
    let fiber = Isp::Fiber.uplink();
    let source = fiber.router.ip().to_string();
    let nft = |command: &str| {
        Cmd::in_ns(fiber.ns, "nft")
            .args([command])
            .run()
            .expect("nft");
    };
    // The ISP namespace goes with the lab, and its table with it.
    nft("add table ip blackhole");
    nft("add chain ip blackhole filter { type filter hook forward priority 0; }");
    nft(&format!(
        "add rule ip blackhole filter ip saddr {source} udp sport 1024-32767 drop"
    ));
    let mut stream = EchoStream::start(HOST).expect("starting the UDP stream");
    let flagged = lab::wait_until(Duration::from_secs(25), Duration::from_millis(250), || {
        Ok(daemon
            .status()?
            .uplinks
            .iter()
            .any(|u| u.name == Isp::Fiber.name() && u.blackhole && u.state == "up"))
    })
    .expect("reading status");
    assert!(
        flagged,
        "fiber is a suspected blackhole: {:?}",
        daemon.status()
    );
    let events = daemon.events().expect("events");
    let event = events
        .iter()
        .find(|e| e.kind == kind::DATAPLANE && e.to == "blackhole")
        .unwrap_or_else(|| panic!("no blackhole event: {events:?}"));
    assert_eq!(event.uplink, Isp::Fiber.name());
    assert!(
        event.evidence.contains_key("unanswered_packets"),
        "{event:?}"
    );
    assert!(daemon.log().contains("data-plane blackhole"), "logged");
    let metrics = daemon.cli(&["metrics"]).unwrap_or_default();
    assert!(
        metrics.is_empty() || metrics.contains("failover_uplink_blackhole{uplink=\"fiber\"} 1"),
        "{metrics}"
    );
    nft("delete table ip blackhole");
    let cleared = lab::wait_until(Duration::from_secs(10), Duration::from_millis(250), || {
        Ok(daemon.status()?.uplinks.iter().all(|u| !u.blackhole))
    })
    .expect("reading status");
    stream.stop();
    assert!(cleared, "replies again: cleared: {:?}", daemon.status());
}
