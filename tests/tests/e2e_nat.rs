//! End-to-end tests of the data plane in the lab, with kernel masquerade off on the router:
//! the eBPF programs alone translate LAN traffic to each uplink and back. HTTP with the
//! content checksum verified, UDP echo, ping, traceroute, and an upload across an ISP with a
//! lower path MTU (path-MTU discovery works through the router). Root only; run with
//! `--test-threads=1` (the tests share the lab).

use std::{net::SocketAddr, time::Duration};

use failover_common::verdict::Reason;
use failover_tests::{
    lab::{self, Fault, Isp, LabGuard, Plan},
    netns,
    privilege::skip_unless_root,
    stream,
};
use failover_user::{
    config::DataplaneLog,
    dataplane::TableSizes,
    loader::{self, LoaderSpec, Running, UplinkSpec},
};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const UDP_TIMEOUT: Duration = Duration::from_secs(2);

fn uplink_spec(isp: Isp) -> UplinkSpec {
    let name = isp.uplink().router.name;
    format!("{name}={name}").parse().expect("uplink spec")
}

/// Loads and attaches the data plane in the router namespace with `active` carrying new flows.
/// The returned handle keeps the programs attached; drop it before the lab.
fn start_dataplane(active: Isp) -> Running {
    let spec = LoaderSpec {
        dataplane_log: DataplaneLog::Off,
        pins: None,
        lan: Plan::ROUTER_LAN.name.to_owned(),
        uplinks: Isp::ALL.iter().map(|isp| uplink_spec(*isp)).collect(),
        active: active.uplink().router.name.to_owned(),
        skb_mode: false,
        lan_datapath: failover_user::datapath::Mode::Auto,
        tables: TableSizes {
            flows: 65536,
            bindings: 65536,
        },
    };
    // Netlink and attach work in the namespace of the calling thread: use one made for it.
    std::thread::spawn(move || -> anyhow::Result<Running> {
        netns::enter(Plan::NS_ROUTER)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(loader::start(&spec))?)
    })
    .join()
    .expect("loader thread")
    .expect("starting the data plane in the router namespace")
}

fn reasons(running: &Running) -> Vec<u64> {
    running
        .dataplane()
        .reason_counts()
        .expect("reading verdict reasons")
}

fn whoami(ns: &str) -> anyhow::Result<String> {
    let body = lab::http_get(ns, &Plan::whoami_url(), Duration::from_secs(3))?;
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

/// LAN traffic through `isp` works only because the data plane translates it.
fn assert_lan_traffic_through(isp: Isp, host: &str) {
    let _lab = LabGuard::up().expect("building the lab");
    assert!(
        !lab::masquerade_enabled().expect("reading masquerade"),
        "the lab starts without kernel masquerade"
    );
    // Control: without the data plane, untranslated LAN packets find no way back.
    assert!(
        whoami(host).is_err(),
        "LAN traffic must not work without NAT"
    );

    let running = start_dataplane(isp);
    let uplink_addr = isp.uplink().router.ip().to_string();
    assert_eq!(
        whoami(host).expect("whoami through the data plane"),
        uplink_addr,
        "the server sees the uplink address"
    );

    let blob = lab::http_get(host, &Plan::blob_url(), HTTP_TIMEOUT).expect("download");
    assert_eq!(blob.len(), lab::BLOB_LEN, "download length");
    assert_eq!(
        lab::sha256_hex(&blob),
        lab::BLOB_SHA256,
        "download checksum"
    );

    let echo_to = SocketAddr::from((Plan::SERVER, Plan::UDP_ECHO_PORT));
    let payload = b"failover udp echo 0001";
    let echoed = lab::udp_echo(host, echo_to, payload, UDP_TIMEOUT).expect("UDP echo");
    assert_eq!(echoed, payload, "UDP echo content");

    let ping = lab::ping(host, Plan::SERVER, &["-c", "5", "-i", "0.2", "-W", "1"]).expect("ping");
    assert!(ping.all_answered(), "ping through the data plane: {ping:?}");

    let counts = reasons(&running);
    assert!(
        counts[Reason::TranslatedOut as usize] > 20,
        "outbound packets translated by XDP: {counts:?}"
    );
    assert!(
        counts[Reason::TranslatedIn as usize] > 20,
        "inbound packets translated by XDP: {counts:?}"
    );
    drop(running);
}

#[test]
fn lan_traffic_through_fiber_is_translated_by_the_data_plane() {
    if skip_unless_root("lan_traffic_through_fiber_is_translated_by_the_data_plane") {
        return;
    }
    assert_lan_traffic_through(Isp::Fiber, Plan::NS_HOST1);
}

#[test]
fn lan_traffic_through_lte_is_translated_by_the_data_plane() {
    if skip_unless_root("lan_traffic_through_lte_is_translated_by_the_data_plane") {
        return;
    }
    assert_lan_traffic_through(Isp::Lte, Plan::NS_HOST2);
}

/// Hop 1 is the router (TTL expiry goes to the kernel), hop 2 the ISP gateway (its time
/// exceeded is translated back), and the last hop the server (its port unreachable too).
#[test]
fn traceroute_sees_router_gateway_and_server() {
    if skip_unless_root("traceroute_sees_router_gateway_and_server") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let running = start_dataplane(Isp::Fiber);
    let lab::Trace { output: out, hops } =
        lab::traceroute(Plan::NS_HOST1, Plan::SERVER).expect("running traceroute");
    assert!(out.success(), "traceroute failed: {}", out.all_output());
    let expected = [
        Plan::ROUTER_LAN.ip(),
        Plan::FIBER.gateway.ip(),
        Plan::SERVER,
    ]
    .map(|ip| ip.to_string());
    assert!(hops.len() >= 3, "traceroute output:\n{}", out.stdout);
    assert_eq!(hops[0], expected[0], "hop 1 is the router:\n{}", out.stdout);
    assert_eq!(
        hops[1], expected[1],
        "hop 2 is the fiber gateway:\n{}",
        out.stdout
    );
    assert_eq!(
        hops.last().map(String::as_str),
        Some(expected[2].as_str()),
        "the trace ends at the server:\n{}",
        out.stdout
    );
    let counts = reasons(&running);
    assert!(
        counts[Reason::IcmpErrorTranslated as usize] >= 2,
        "ICMP errors translated: {counts:?}"
    );
    assert!(
        counts[Reason::TtlExpiring as usize] >= 1,
        "TTL-1 probe left to the kernel: {counts:?}"
    );
    drop(running);
}

/// An upload from a LAN host across an ISP whose transit link has MTU 1400: the gateway's
/// "fragmentation needed" must reach the LAN host translated, or the transfer stalls.
#[test]
fn path_mtu_discovery_works_through_the_router() {
    if skip_unless_root("path_mtu_discovery_works_through_the_router") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    lab::fault(Isp::Lte, Fault::Mtu(1400)).expect("lowering the path MTU behind lte");
    let running = start_dataplane(Isp::Lte);
    stream::assert_upload_arrives(Plan::NS_HOST1);
    let counts = reasons(&running);
    assert!(
        counts[Reason::IcmpErrorTranslated as usize] >= 1,
        "the gateway's fragmentation-needed was translated: {counts:?}"
    );
    drop(running);
}
