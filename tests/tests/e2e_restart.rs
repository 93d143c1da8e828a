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
