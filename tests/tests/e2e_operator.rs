//! End-to-end tests of what an operator reads off a running controller in the lab: `flows`
//! lists a LAN host's live flow with its uplink and external port, `report` gathers what an
//! ISP's support desk asks for, the metrics endpoint answers in the Prometheus text format,
//! and the CLI says plainly when no daemon runs. Root only; run with `--test-threads=1` (the tests share the lab).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

use failover_tests::{
    daemon::{DaemonGuard, TARGETS},
    lab::{self, Isp, LabGuard, Plan},
    netns,
    privilege::skip_unless_root,
    stream::{self, EchoStream},
};
use failover_user::control::{FlowEntry, OutageReport};

const HOST: &str = Plan::NS_HOST1;
/// In the router's namespace, where the daemon runs.
const METRICS: &str = "127.0.0.1:9469";
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);

fn start() -> (LabGuard, DaemonGuard) {
    let lab = LabGuard::up().expect("building the lab");
    let daemon = DaemonGuard::start_with(&format!("\n[metrics]\nlisten = \"{METRICS}\"\n"))
        .expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("new flows through fiber");
    (lab, daemon)
}

#[test]
fn flows_list_a_live_udp_flow_on_its_uplink() {
    if skip_unless_root("flows_list_a_live_udp_flow_on_its_uplink") {
        return;
    }
    let (_lab, daemon) = start();
    let echoes = EchoStream::start(HOST).expect("UDP stream");
    echoes
        .wait_flowing(Duration::from_secs(5))
        .expect("echoes come back");
    let server = SocketAddrV4::new(Plan::SERVER, Plan::UDP_ECHO_PORT);
    let is_stream =
        |f: &FlowEntry| f.proto == "udp" && *f.lan.ip() == Plan::HOST1.ip() && f.remote == server;

    let flows = flows_on(&daemon, "fiber");
    let flow = flows
        .iter()
        .find(|f| is_stream(f))
        .unwrap_or_else(|| panic!("the stream's flow is listed: {flows:#?}"));
    assert_eq!(flow.uplink, "fiber");
    assert!(
        (1024..=32767).contains(&flow.external_port),
        "external port from the default range: {flow:?}"
    );
    assert!(flow.idle_secs < 5.0, "{flow:?}");
    assert!(flow.tcp_state.is_none(), "{flow:?}");

    let on_lte = flows_on(&daemon, "lte");
    assert!(!on_lte.iter().any(is_stream), "{on_lte:#?}");

    let table = daemon.cli(&["flows"]).expect("flows as a table");
    let lan_end = format!("{}:", Plan::HOST1.ip());
    assert!(
        table
            .lines()
            .any(|l| l.contains(&lan_end) && l.contains(&server.to_string())),
        "{table}"
    );
}

/// `failover flows --uplink UPLINK --json`, parsed.
fn flows_on(daemon: &DaemonGuard, uplink: &str) -> Vec<FlowEntry> {
    let out = daemon
        .cli(&["flows", "--uplink", uplink, "--json"])
        .unwrap_or_else(|e| panic!("flows on {uplink}: {e:#}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("flows --json parses: {e}: {out}"))
}

#[test]
fn report_gathers_link_ip_and_probe_evidence() {
    if skip_unless_root("report_gathers_link_ip_and_probe_evidence") {
        return;
    }
    let (_lab, daemon) = start();
    let fiber = Isp::Fiber.uplink();
    let read = || -> anyhow::Result<OutageReport> {
        Ok(serde_json::from_str(
            &daemon.cli(&["report", "fiber", "--json"])?,
        )?)
    };
    // Far targets are probed a little after the start: wait for every probe's first reply.
    lab::expect_within("every probe has answered", MOVE_TIMEOUT, || {
        let report = read()?;
        Ok(report
            .gateway_probes
            .iter()
            .chain(&report.far_targets)
            .all(|p| p.replies_total > 0))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:#?}", read()));
    let report = read().expect("report --json");
    assert_eq!(
        (report.uplink.as_str(), report.state.as_str()),
        ("fiber", "up")
    );
    assert!(report.active);
    assert_eq!(report.link.carrier, Some(true), "{report:#?}");
    assert_eq!(report.link.operstate.as_deref(), Some("up"), "{report:#?}");
    assert_eq!(report.ip.address, Some(fiber.router.ip()));
    assert_eq!(
        report.ip.prefix,
        fiber.router.addr.map(|cidr| cidr.len),
        "{report:#?}"
    );
    assert_eq!(report.ip.gateway, Some(fiber.gateway.ip()));
    assert_eq!(report.ip.mac, Some(fiber.router.mac.to_string()));
    assert_eq!(report.ip.gateway_mac, Some(fiber.gateway.mac.to_string()));
    assert_eq!(report.gateway_probes.len(), 2, "ARP and ICMP: {report:#?}");
    assert_eq!(report.far_targets.len(), TARGETS.len(), "{report:#?}");
    for probe in report.gateway_probes.iter().chain(&report.far_targets) {
        assert!(probe.last_reply_secs.is_some(), "{probe:?}");
        assert!(probe.median_rtt_ms.is_some(), "{probe:?}");
    }

    let text = daemon.cli(&["report", "fiber"]).expect("report");
    for needle in [
        "Outage report: uplink fiber".to_owned(),
        fiber.gateway.ip().to_string(),
        fiber.gateway.mac.to_string(),
        TARGETS[0].to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle:?} in:\n{text}");
    }
    let unknown = daemon.cli(&["report", "dsl"]);
    assert!(
        unknown.is_err(),
        "an unknown uplink is an error: {unknown:?}"
    );
}

#[test]
fn metrics_endpoint_answers_in_prometheus_text() {
    if skip_unless_root("metrics_endpoint_answers_in_prometheus_text") {
        return;
    }
    let (_lab, _daemon) = start();
    let response = netns::in_netns(Plan::NS_ROUTER, scrape)
        .expect("entering the router namespace")
        .expect("GET /metrics");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP response: {response}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for line in [
        "# TYPE failover_uplink_state gauge",
        "failover_uplink_state{uplink=\"fiber\",state=\"up\"} 1",
        "failover_uplink_active{uplink=\"fiber\"} 1",
        "failover_uplink_active{uplink=\"lte\"} 0",
        "# TYPE failover_switches_total counter",
        "# TYPE failover_probes_total counter",
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} in:\n{body}");
    }
    let packets_out = body
        .lines()
        .find_map(|l| {
            l.strip_prefix("failover_uplink_packets_total{uplink=\"fiber\",direction=\"out\"} ")
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("fiber's outbound packets in:\n{body}"));
    assert!(
        packets_out > 0,
        "the whoami requests went out through fiber"
    );
}

/// `GET /metrics` on [`METRICS`], the whole response.
fn scrape() -> std::io::Result<String> {
    let mut stream = TcpStream::connect(METRICS)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn the_cli_says_plainly_when_no_daemon_runs() {
    if skip_unless_root("the_cli_says_plainly_when_no_daemon_runs") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let mut daemon = DaemonGuard::start().expect("starting failover run");
    daemon.stop_and_detach().expect("stopping the daemon");
    let error = daemon
        .cli(&["status"])
        .expect_err("status without a daemon fails");
    let message = format!("{error:#}");
    assert!(
        message.contains("not running") && message.contains("failover run"),
        "{message}"
    );
}

#[test]
fn a_second_controller_refuses_to_start_beside_a_running_one() {
    if skip_unless_root("a_second_controller_refuses_to_start_beside_a_running_one") {
        return;
    }
    let (_lab, daemon) = start();
    let bin = failover_tests::daemon::binary().expect("the failover binary");
    let second = std::process::Command::new("ip")
        .args(["netns", "exec", Plan::NS_ROUTER])
        .arg(&bin)
        .arg("-c")
        .arg(daemon.config_path())
        .arg("run")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running a second failover run");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second one exits: {stderr}");
    assert!(
        stderr.contains("another `failover run` is running"),
        "it says why: {stderr}"
    );
    let status = daemon.status().expect("the first one still answers");
    assert_eq!(status.active, "fiber", "{status:?}");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("traffic still flows");
}
