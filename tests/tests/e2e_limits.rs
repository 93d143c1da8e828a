//! One LAN host cannot take the router down: host2 opens 300 000 new UDP flows as fast as it
//! can (half from new source ports) under the default `[limits]`, while host1's UDP stream
//! and long TCP download go on untouched and a third host's new flows get out. The flooder
//! is refused with a deliberate verdict (dropped, counted for it, an event naming it). Root
//! only; run with `--test-threads=1`.

use std::{net::Ipv4Addr, time::Duration};

use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use failover_common::{
    limits::{DEFAULT_FLOWS_PER_HOST, DEFAULT_PORTS_PER_HOST, HostKey, HostUsage},
    names,
    verdict::Reason,
};
use failover_tests::{
    daemon::DaemonGuard,
    flood::{self, ExtraAddress},
    lab::{self, Isp, LabGuard, Plan},
    privilege::skip_unless_root,
    stream,
};
use failover_user::events::kind;

const FLOWS: u32 = 300_000;
const NEW_PORTS: u32 = 150_000;
const THIRD: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 13);

#[test]
fn a_host_flooding_new_flows_is_refused_and_the_others_go_on() {
    if skip_unless_root("a_host_flooding_new_flows_is_refused_and_the_others_go_on") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let daemon = DaemonGuard::start().expect("starting failover run");
    let bystander = Plan::NS_HOST1;
    stream::wait_for_uplink(bystander, Isp::Fiber, Duration::from_secs(15)).expect("fiber carries");
    let _third = ExtraAddress::add(bystander, Plan::HOST1.name, THIRD, 24).expect("third host");
    let flooder = Plan::HOST2.ip();

    let outcome = flood::run(
        bystander,
        (Plan::NS_HOST2, flooder),
        THIRD,
        FLOWS,
        NEW_PORTS,
    )
    .expect("running the flood");
    eprintln!("{outcome}");
    assert!(
        outcome.download_intact,
        "the bystander's download arrived whole: {:?}\n{}",
        outcome.download_error,
        daemon.log()
    );
    assert!(
        outcome.stream_gap < Duration::from_secs(1),
        "the bystander's stream went on: longest silence {:?}",
        outcome.stream_gap
    );
    let lost = outcome.stream_sent - outcome.stream_echoed as u64;
    assert!(
        lost * 50 <= outcome.stream_sent,
        "the bystander's stream lost {lost} of {}",
        outcome.stream_sent
    );
    assert!(outcome.third.tried >= 10);
    assert_eq!(
        outcome.third.answered, outcome.third.tried,
        "every new flow of the third host got out"
    );

    assert_refused_and_reported(&daemon, flooder);
}

/// The flooder got a deliberate verdict (dropped, counted under the limits' reasons), holds
/// no more than its limits, and the status and one event name it.
fn assert_refused_and_reported(daemon: &DaemonGuard, flooder: Ipv4Addr) {
    // The deliberate verdict: dropped and counted under the limits' reasons.
    let pins = daemon.pin_dir();
    let reasons = PerCpuArray::<MapData, u64>::try_from(Map::PerCpuArray(
        MapData::from_pin(pins.join(names::MAP_REASONS)).expect("fo_reasons"),
    ))
    .expect("a per-CPU array");
    let count = |reason: Reason| -> u64 {
        reasons
            .get(&(reason as u32), 0)
            .expect("a reason")
            .iter()
            .sum()
    };
    let (at_flows, at_ports) = (count(Reason::HostFlowLimit), count(Reason::HostPortLimit));
    eprintln!("refused at the flow limit {at_flows}, at the port limit {at_ports}");
    assert!(at_ports > 0 && at_flows > 0, "both limits were reached");
    assert!(
        at_flows + at_ports >= u64::from(FLOWS) * 8 / 10,
        "nearly all of the flood was refused"
    );

    // The flooder holds no more than its limits.
    let hosts = HashMap::<MapData, HostKey, HostUsage>::try_from(Map::LruHashMap(
        MapData::from_pin(pins.join(names::MAP_HOSTS)).expect("fo_hosts"),
    ))
    .expect("a hash map");
    let usage = hosts
        .get(
            &HostKey {
                addr: flooder.octets(),
            },
            0,
        )
        .expect("the flooder's entry");
    assert!(usage.flows <= DEFAULT_FLOWS_PER_HOST, "{usage:?}");
    assert!(usage.ports[0] <= DEFAULT_PORTS_PER_HOST, "{usage:?}");

    // Reported: the status names the flooder alone, and an event names it.
    let named =
        lab::wait_until(Duration::from_secs(15), Duration::from_millis(250), || {
            Ok(daemon.status()?.limited_hosts.iter().any(|h| {
                h.host == flooder.to_string() && h.refused_flows > 0 && h.refused_ports > 0
            }))
        })
        .expect("reading status");
    let status = daemon.status().expect("status");
    assert!(named, "the status names the flooder: {status:?}");
    assert_eq!(status.limited_hosts.len(), 1, "{:?}", status.limited_hosts);
    let events = daemon.events().expect("events");
    let event = events
        .iter()
        .find(|e| e.kind == kind::HOST_LIMIT && e.to == "limited")
        .unwrap_or_else(|| panic!("no host-limit event: {events:?}"));
    assert_eq!(
        event.evidence.get("host").map(String::as_str),
        Some(flooder.to_string().as_str()),
        "{event:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e.kind == kind::HOST_LIMIT).count(),
        1,
        "one event, not one per refusal: {events:?}"
    );
}
