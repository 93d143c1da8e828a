//! Never leak: the router's main table has default routes through both ISPs (as every real
//! router has), yet no packet from the LAN leaves an uplink with its LAN source. A capture at
//! each ISP gateway sees the traffic of every reason the data plane does not translate
//! itself: IP fragments and IP options (the kernel's safety-net NAT translates them, and
//! they get answers), and the no-uplink window of a total outage (dropped). Root only; run
//! with `--test-threads=1`.

use std::time::Duration;

use failover_tests::{
    capture::{self, Capture},
    daemon::DaemonGuard,
    lab::{self, Isp, LabGuard, Plan},
    privilege::skip_unless_root,
    stream::{self, EchoStream},
};

const HOST: &str = Plan::NS_HOST1;

#[test]
fn no_lan_source_leaves_any_uplink() {
    if skip_unless_root("no_lan_source_leaves_any_uplink") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    assert!(!lab::masquerade_enabled().expect("reading masquerade"));
    let daemon = DaemonGuard::start().expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(15)).expect("fiber carries");
    let captures: Vec<Capture> = Isp::ALL
        .iter()
        .map(|isp| Capture::start(*isp).expect("starting a capture"))
        .collect();

    // Fragments (a 3000-byte ping over 1500-byte links) and IP options (record route): the
    // data plane leaves them to the kernel, whose safety net translates them.
    let fragments = lab::ping(HOST, Plan::SERVER, &["-c", "3", "-W", "2", "-s", "3000"])
        .expect("fragmented ping");
    assert!(
        fragments.received > 0,
        "fragmented pings get answers: {fragments:?}"
    );
    let options =
        lab::ping(HOST, Plan::SERVER, &["-c", "3", "-W", "2", "-R"]).expect("record-route ping");
    assert!(
        options.received > 0,
        "pings with IP options get answers: {options:?}"
    );

    // A total outage: with no usable uplink, the stream's packets have nowhere to go.
    let mut stream = EchoStream::start(HOST).expect("starting the UDP stream");
    for isp in Isp::ALL {
        lab::fault(isp, lab::Fault::GatewaySilent).expect("silencing a gateway");
    }
    let all_down = lab::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        Ok(daemon.status()?.uplinks.iter().all(|u| u.state != "up"))
    })
    .expect("reading status");
    assert!(all_down, "both uplinks down: {:?}", daemon.status());
    std::thread::sleep(Duration::from_secs(2));
    for isp in Isp::ALL {
        lab::heal(isp).expect("healing a gateway");
    }
    // Fiber takes new flows again after it has been up for the hold-down (30 s): wait for
    // that with a margin, not exactly that long.
    stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_mins(1)).expect("fiber is back");
    stream.stop();

    let status = daemon.status().expect("status");
    let lan = Plan::ROUTER_LAN.addr.expect("the LAN's address");
    let mut seen = 0;
    for (isp, capture) in Isp::ALL.iter().zip(captures) {
        let sources = capture.stop().expect("reading a capture");
        seen += sources.len();
        let leaked = capture::inside(&sources, lan);
        assert!(
            leaked.is_empty(),
            "{} packets left through {} with a LAN source: {:?}",
            leaked.len(),
            isp.name(),
            &leaked[..leaked.len().min(10)]
        );
    }
    assert!(seen > 0, "the captures saw the LAN's translated traffic");
    let fiber = status
        .uplinks
        .iter()
        .find(|u| u.name == Isp::Fiber.name())
        .expect("fiber in status");
    assert!(
        fiber.guard_masqueraded.is_some_and(|n| n > 0),
        "the safety net translated the fragments and options: {fiber:?}"
    );
    assert!(
        status.untranslated_dropped > 0,
        "the outage's packets were dropped by the data plane, not passed: {status:?}"
    );
    let metrics = daemon.cli(&["metrics"]).unwrap_or_default();
    drop(daemon);
    assert!(
        metrics.is_empty() || metrics.contains("failover_leak_guard_packets_total"),
        "{metrics}"
    );
}
