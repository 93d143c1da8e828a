//! The data plane outlives its controller: a TCP connection and a UDP stream through fiber keep
//! working while `failover run` is restarted (SIGTERM) and killed (SIGKILL) and restarted; the
//! restarted controller adopts the pinned data plane with its NAT table. `failover detach`
//! leaves no program or pin behind. Root only; run with `--test-threads=1`.

use std::process::Command;
use std::time::Duration;

use failover_tests::{
    daemon::DaemonGuard,
    http::KeepAlive,
    lab::{self, Isp, LabGuard, Plan},
    privilege::skip_unless_root,
    stream::{self, EchoStream},
};

const HOST: &str = Plan::NS_HOST1;
/// The hold-down of the restart-during-an-outage test (`[health] hold_down`).
const HOLD_DOWN: Duration = Duration::from_secs(6);
/// A restart that adopts the data plane interrupts nothing; this leaves room for a slow echo.
const MAX_GAP: Duration = Duration::from_millis(500);

fn start() -> (LabGuard, DaemonGuard) {
    let lab = LabGuard::up().expect("building the lab");
    assert!(!lab::masquerade_enabled().expect("reading masquerade"));
    let daemon = DaemonGuard::start().expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(15)).expect("fiber carries");
    (lab, daemon)
}

/// Interfaces in the router namespace with an XDP program attached.
fn xdp_interfaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", Plan::NS_ROUTER, "-d", "link", "show"])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut attached = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once(": ")
            && !line.starts_with(' ')
        {
            rest.split(['@', ':'])
                .next()
                .unwrap_or_default()
                .clone_into(&mut current);
        }
        if line.contains("prog/xdp") || line.trim_start().starts_with("xdp") {
            attached.push(current.clone());
        }
    }
    attached.dedup();
    attached
}

#[test]
fn connections_survive_a_restart_and_a_kill_9() {
    if skip_unless_root("connections_survive_a_restart_and_a_kill_9") {
        return;
    }
    let (_lab, mut daemon) = start();
    let mut connection = KeepAlive::open(HOST).expect("a connection through fiber");
    let fiber = Plan::FIBER.router.ip();
    assert_eq!(connection.whoami().expect("whoami"), fiber);
    let mut echoes = EchoStream::start(HOST).expect("UDP stream");
    echoes.wait_flowing(Duration::from_secs(5)).expect("echoes");

    daemon.restart().expect("restart (SIGTERM, then start)");
    assert!(
        daemon.log().contains("adopted the running data plane"),
        "the new controller adopts the pinned data plane:\n{}",
        daemon.log()
    );
    assert_eq!(
        connection
            .whoami()
            .expect("the connection works after a restart"),
        fiber,
        "same flow, same translation"
    );

    daemon.kill_and_restart().expect("kill -9, then start");
    assert_eq!(
        connection
            .whoami()
            .expect("the connection works after kill -9"),
        fiber
    );
    std::thread::sleep(Duration::from_secs(2));
    echoes.stop();
    let (sent, received) = echoes.counts();
    println!(
        "UDP stream: {received}/{sent} echoes, largest gap {} ms",
        echoes.largest_gap().as_millis()
    );
    assert!(
        echoes.largest_gap() < MAX_GAP,
        "the stream stalled for {:?} across the restarts",
        echoes.largest_gap()
    );
    let status = daemon.status().expect("status");
    assert_eq!(status.active, "fiber", "{status:?}");
}

#[test]
fn detach_leaves_no_program_or_pin() {
    if skip_unless_root("detach_leaves_no_program_or_pin") {
        return;
    }
    let (_lab, mut daemon) = start();
    let mut attached = xdp_interfaces();
    attached.sort();
    assert_eq!(attached, ["fiber", "lan0", "lte"], "attached while running");
    assert!(daemon.pin_dir().exists(), "maps and links are pinned");
    daemon.stop_and_detach().expect("failover detach");
    assert!(
        xdp_interfaces().is_empty(),
        "no XDP program left: {:?}",
        xdp_interfaces()
    );
    assert!(
        !daemon.pin_dir().exists(),
        "{} removed",
        daemon.pin_dir().display()
    );
}

/// A restart during an outage (fiber's gateway silent, lte carrying): the new controller
/// adopts the data plane, keeps lte, and when fiber heals fails back only after the
/// hold-down, to a fiber the data plane really uses (the bug: status said fiber while every
/// new flow was passed to the kernel as `no-uplink`). Once with SIGTERM, once with kill -9.
#[test]
fn a_restart_during_an_outage_fails_back_after_the_hold_down_to_a_working_fiber() {
    if skip_unless_root(
        "a_restart_during_an_outage_fails_back_after_the_hold_down_to_a_working_fiber",
    ) {
        return;
    }
    for kill in [false, true] {
        let lab = LabGuard::up().expect("building the lab");
        let mut daemon = DaemonGuard::start_with("[health]\nhold_down = \"6s\"\n")
            .expect("starting failover run");
        stream::wait_for_uplink(HOST, Isp::Fiber, Duration::from_secs(15)).expect("fiber carries");
        lab::fault(Isp::Fiber, lab::Fault::GatewaySilent).expect("silencing fiber's gateway");
        stream::wait_for_uplink(HOST, Isp::Lte, Duration::from_secs(15)).expect("moved to lte");
        if kill {
            daemon.kill_and_restart().expect("kill -9, then start");
        } else {
            daemon.restart().expect("SIGTERM, then start");
        }
        std::thread::sleep(Duration::from_secs(3));
        let status = daemon.status().expect("status");
        assert_eq!(
            status.active, "lte",
            "still on lte after the restart: {status:?}"
        );
        assert_eq!(
            stream::whoami_isp(HOST),
            Some(Isp::Lte),
            "new flows still get out through lte"
        );
        let healed = std::time::Instant::now();
        lab::heal(Isp::Fiber).expect("healing fiber");
        let back = stream::wait_for_uplink(HOST, Isp::Fiber, HOLD_DOWN + Duration::from_secs(15))
            .expect("new flows through fiber again after the failback");
        assert!(
            back - healed >= HOLD_DOWN,
            "failed back {:?} after the heal, before the {HOLD_DOWN:?} hold-down (kill -9: {kill})",
            back - healed
        );
        let status = daemon.status().expect("status");
        assert_eq!(status.active, "fiber", "{status:?}");
        for _ in 0..3 {
            assert_eq!(
                stream::whoami_isp(HOST),
                Some(Isp::Fiber),
                "every new flow gets out through the fiber the status reports (kill -9: {kill})"
            );
        }
        drop(daemon);
        drop(lab);
    }
}
