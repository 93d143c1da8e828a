//! The uplinks real users plug in besides Ethernet: failover from fiber to a raw-IP uplink
//! (`wwan0`, a tun device without an Ethernet header, as a raw-IP LTE modem gives). The
//! flows move to it through the TC path, and everything a LAN host does works there: a
//! download checked by its SHA-256, UDP echo, ping, traceroute; the fiber download is reset on
//! the switch; a restart interrupts nothing. Root only; run with `--test-threads=1`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use failover_tests::{
    daemon::DaemonGuard,
    http::KeepAlive,
    lab::{self, BLOB_SHA256, Fault, Isp, LabGuard, Plan, RawIp, TunLink, Wg, WgLink, sha256_hex},
    privilege::skip_unless_root,
    stream::{self, EchoStream},
};

const HOST: &str = Plan::NS_HOST1;
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// A restart that adopts the data plane interrupts nothing; room for a slow echo.
const MAX_RESTART_GAP: Duration = Duration::from_millis(500);

/// The lab, the uplink `link` makes (interface `uplink`), and the controller managing fiber
/// and then that uplink, fiber carrying; dropped in reverse (the controller first).
fn start<L>(uplink: &str, link: impl FnOnce() -> anyhow::Result<L>) -> (LabGuard, L, DaemonGuard) {
    let lab = LabGuard::up().expect("building the lab");
    let link = link().unwrap_or_else(|e| panic!("the {uplink} uplink: {e:#}"));
    let daemon = DaemonGuard::start_with_uplinks(&[Plan::FIBER.router.name, uplink], "")
        .expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("fiber carries");
    (lab, link, daemon)
}

/// A LAN host's ordinary traffic through the uplink whose address is `source` and whose
/// far end (the first hop after the router) is `next_hop`.
fn assert_everything_works_through(source: Ipv4Addr, next_hop: Ipv4Addr) {
    assert_eq!(stream::whoami(HOST).expect("whoami"), source);
    let blob = lab::http_get(HOST, &Plan::blob_url(), Duration::from_secs(30)).expect("download");
    assert_eq!(
        sha256_hex(&blob),
        BLOB_SHA256,
        "the download arrives intact"
    );

    let server = SocketAddr::from((Plan::SERVER, Plan::UDP_ECHO_PORT));
    let echo = lab::udp_echo(HOST, server, b"through the uplink", Duration::from_secs(2))
        .expect("UDP echo");
    assert_eq!(echo, b"through the uplink");

    let ping = lab::ping(HOST, Plan::SERVER, &["-c", "3", "-i", "0.2", "-W", "2"]).expect("ping");
    assert!(ping.all_answered(), "{}", ping.output.all_output());

    let trace = lab::traceroute(HOST, Plan::SERVER).expect("running traceroute");
    let hops = &trace.hops;
    let router = Plan::ROUTER_LAN.ip().to_string();
    let (next_hop, server) = (next_hop.to_string(), Plan::SERVER.to_string());
    assert!(
        hops.len() >= 3 && hops[0] == router && hops[1] == next_hop && hops.last() == Some(&server),
        "router, {next_hop}, ..., server:\n{}",
        trace.output.all_output()
    );
}

/// fiber's gateway goes silent under a download: the download is reset, new flows and a UDP
/// stream move to `uplink` (address `source`), where the uplink's data path is TC.
fn assert_fails_over_from_fiber(daemon: &DaemonGuard, uplink: &str, source: Ipv4Addr) {
    let report = daemon.uplink(uplink).expect("the uplink's status");
    assert_eq!(report.state, "up", "{report:?}");
    let datapath = report.datapath.as_deref().unwrap_or_default();
    assert!(
        datapath.starts_with("tc"),
        "{uplink} takes the TC path: {datapath}"
    );

    let mut download = KeepAlive::open(HOST).expect("a connection through fiber");
    assert_eq!(download.whoami().expect("whoami"), Plan::FIBER.router.ip());
    download
        .start_slow_download(32 * 1024, 32 * 1024)
        .expect("a slow download");
    let mut echo = EchoStream::start(HOST).expect("UDP stream");
    echo.wait_flowing(Duration::from_secs(5))
        .expect("the stream flows through fiber");

    let at = Instant::now();
    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("gateway-silent");
    let error = download
        .read_until_error(at + Duration::from_secs(5))
        .expect("the fiber download fails within 5 s");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    let moved = stream::wait_for_source(HOST, source, MOVE_TIMEOUT).expect("moved");
    echo.wait_flowing(Duration::from_secs(5))
        .expect("the stream flows again");
    std::thread::sleep(Duration::from_secs(1));
    echo.stop();
    println!(
        "{uplink}: new flows {} ms after the fault, stream gap {} ms",
        (moved - at).as_millis(),
        echo.gap_around(at).as_millis()
    );
    assert!(echo.gap_around(at) < Duration::from_secs(3));
    assert_eq!(daemon.status().expect("status").active, uplink);
}

/// The data plane (not the kernel) translated the uplink's packets, and no redirect failed.
fn assert_carried_by_the_data_plane(daemon: &DaemonGuard, uplink: &str) {
    let report = daemon.uplink(uplink).expect("the uplink's status");
    assert!(
        report.packets_out > 100 && report.packets_in > 100,
        "{report:?}"
    );
    assert_eq!(
        (
            report.redirect_failed_to_uplink,
            report.redirect_failed_to_lan
        ),
        (0, 0),
        "{report:?}"
    );
}

/// A connection and a UDP stream through the uplink at `source` live through a restart.
fn assert_restart_is_hitless(daemon: &mut DaemonGuard, source: Ipv4Addr) {
    let mut connection = KeepAlive::open(HOST).expect("a connection");
    assert_eq!(connection.whoami().expect("whoami"), source);
    let mut echo = EchoStream::start(HOST).expect("UDP stream");
    echo.wait_flowing(Duration::from_secs(5)).expect("echoes");
    daemon.restart().expect("restart");
    assert_eq!(
        connection
            .whoami()
            .expect("the connection works after the restart"),
        source
    );
    std::thread::sleep(Duration::from_secs(1));
    echo.stop();
    assert!(
        echo.largest_gap() < MAX_RESTART_GAP,
        "the stream stalled for {:?} across the restart",
        echo.largest_gap()
    );
}

#[test]
fn fails_over_from_fiber_to_a_raw_ip_uplink() {
    if skip_unless_root("fails_over_from_fiber_to_a_raw_ip_uplink") {
        return;
    }
    let (_lab, _wwan, mut daemon) = start(RawIp::ROUTER_DEV, TunLink::up);

    assert_fails_over_from_fiber(&daemon, RawIp::ROUTER_DEV, RawIp::ROUTER_IP);
    assert_everything_works_through(RawIp::ROUTER_IP, RawIp::ISP_IP);
    assert_carried_by_the_data_plane(&daemon, RawIp::ROUTER_DEV);
    assert_restart_is_hitless(&mut daemon, RawIp::ROUTER_IP);
}

/// Path-MTU discovery across the tunnel: a LAN host's packet too big for it comes back as
/// "fragmentation needed" with the tunnel's MTU, one that fits crosses, and a TCP upload
/// (whose segments the host cuts to the LAN's MTU until told) arrives intact.
fn assert_path_mtu_discovered(mtu: u16) {
    let too_big = (Plan::LINK_MTU - 28).to_string();
    let ping = lab::ping(
        HOST,
        Plan::SERVER,
        &["-M", "do", "-s", &too_big, "-c", "2", "-W", "2"],
    )
    .expect("ping");
    let said = ping.output.all_output();
    println!("ping -M do -s {too_big}: {said}");
    assert!(
        ping.received == 0
            && (said.contains(&format!("mtu = {mtu}")) || said.contains(&format!("mtu={mtu}"))),
        "a {} byte packet is answered with the tunnel's MTU {mtu}:\n{said}",
        Plan::LINK_MTU
    );
    let fits = (mtu - 28).to_string();
    let ping = lab::ping(
        HOST,
        Plan::SERVER,
        &["-M", "do", "-s", &fits, "-c", "2", "-W", "2"],
    )
    .expect("ping");
    assert!(ping.all_answered(), "{}", ping.output.all_output());
    stream::assert_upload_arrives(HOST);
}

#[test]
fn fails_over_from_fiber_to_a_wireguard_uplink() {
    if skip_unless_root("fails_over_from_fiber_to_a_wireguard_uplink") {
        return;
    }
    let (_lab, _wg, mut daemon) = start(Wg::ROUTER_DEV, WgLink::up);

    assert_fails_over_from_fiber(&daemon, Wg::ROUTER_DEV, Wg::ROUTER_IP);
    assert_everything_works_through(Wg::ROUTER_IP, Wg::VPS_TUNNEL_IP);
    assert_path_mtu_discovered(Wg::MTU);
    assert_carried_by_the_data_plane(&daemon, Wg::ROUTER_DEV);
    assert_restart_is_hitless(&mut daemon, Wg::ROUTER_IP);
}
