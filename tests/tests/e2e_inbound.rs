//! Inbound: a web server on a LAN host, reached from the internet through a port forward on
//! each uplink's address. The connection arrives untranslated at its source (the server sees
//! the client's own address), its replies leave through the uplink it came in on whatever
//! the active one is (the uplink counters and a capture at the ISP say so), it survives a
//! failover and a failback away from and back to its uplink, and the site answers through the
//! backup while the fiber gateway is silent. Behind carrier-grade NAT, a VPS forwarding its
//! port into a WireGuard uplink reaches the same server. A LAN host reaches it at each
//! uplink's address too (hairpin), and `[dns]` keeps its name on the carrying uplink. Root only; run with
//! `--test-threads=1`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use failover_tests::{
    capture::{self, Capture},
    daemon::DaemonGuard,
    lab::{self, Fault, Isp, Knot, LabGuard, Plan, Wg, WgLink},
    lan_server::{Client, LanServer, fetch, fetch_by_name},
    privilege::skip_unless_root,
    stream,
};

const HOST: &str = Plan::NS_HOST1;
const SERVER_PORT: u16 = 8080;
const PUBLIC_PORT: u16 = 80;
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// The forward, and a hold-down short enough to watch a failback.
const CONFIG: &str = "\n[[forward]]\nname = \"web\"\nport = 80\nto = \"10.10.0.11:8080\"\n\
                      \n[health]\nhold_down = \"4s\"\n";

/// The lab, the LAN server, and the controller with the forward; fiber carrying.
fn start() -> (LabGuard, LanServer, DaemonGuard) {
    let lab = LabGuard::up().expect("building the lab");
    let server = LanServer::start(HOST, SERVER_PORT).expect("the LAN web server");
    let daemon = DaemonGuard::start_with(CONFIG).expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("fiber carries");
    (lab, server, daemon)
}

/// The address of `isp`'s uplink on the router: where the internet reaches the forward.
fn public(isp: Isp) -> SocketAddr {
    SocketAddr::from((isp.uplink().router.ip(), PUBLIC_PORT))
}

/// The internet's address on the link towards `isp`: the client's source through it.
fn client_addr(isp: Isp) -> Ipv4Addr {
    match isp {
        Isp::Fiber => "198.18.1.2".parse().expect("address"),
        Isp::Lte => "198.18.2.2".parse().expect("address"),
    }
}

/// The names `[dns]` keeps pointed at the carrying uplink in the DNS test.
const WWW: &str = "www.lab.example";
const MAIL: &str = "mail.lab.example";

/// Until every `[dns]` record points at `address`.
fn wait_records(knot: &Knot, address: Ipv4Addr, within: Duration) {
    let deadline = Instant::now() + within;
    for name in [WWW, MAIL] {
        while knot.query(name).ok().as_deref() != Some(&[address]) {
            assert!(
                Instant::now() < deadline,
                "{name} never pointed at {address}: {:?}",
                knot.query(name)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The packets the data plane sent out through `uplink`.
fn packets_out(daemon: &DaemonGuard, uplink: &str) -> u64 {
    daemon
        .uplink(uplink)
        .expect("the uplink's status")
        .packets_out
}

fn wait_active(daemon: &DaemonGuard, name: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while daemon.status().ok().map(|s| s.active).as_deref() != Some(name) {
        assert!(Instant::now() < deadline, "{name} never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_forward_answers_on_each_uplink_and_its_replies_keep_that_uplink() {
    if skip_unless_root("a_forward_answers_on_each_uplink_and_its_replies_keep_that_uplink") {
        return;
    }
    let (_lab, _server, daemon) = start();

    // Through the active uplink: the server sees the client's own address.
    let seen = fetch(public(Isp::Fiber)).expect("the site through fiber");
    assert_eq!(seen.ip(), client_addr(Isp::Fiber));

    // Through lte while fiber carries the LAN's flows: the replies leave through lte, with
    // lte's address, and nothing leaves there with a LAN source.
    let (fiber_before, lte_before) = (
        packets_out(&daemon, Isp::Fiber.uplink().router.name),
        packets_out(&daemon, Isp::Lte.uplink().router.name),
    );
    let capture = Capture::start(Isp::Lte).expect("capture at lte's ISP");
    let seen = fetch(public(Isp::Lte)).expect("the site through lte");
    assert_eq!(seen.ip(), client_addr(Isp::Lte));
    let sources = capture.stop().expect("reading the capture");
    let (fiber_after, lte_after) = (
        packets_out(&daemon, Isp::Fiber.uplink().router.name),
        packets_out(&daemon, Isp::Lte.uplink().router.name),
    );
    assert!(
        lte_after >= lte_before + 2,
        "the server's replies left through lte: {lte_before} -> {lte_after}"
    );
    assert_eq!(
        fiber_after, fiber_before,
        "no reply of the lte connection left through fiber"
    );
    assert!(
        sources.contains(&Isp::Lte.uplink().router.ip()),
        "lte's ISP saw the replies from lte's address: {sources:?}"
    );
    let leaked = capture::inside(&sources, Plan::ROUTER_LAN.addr.expect("the LAN's address"));
    assert!(leaked.is_empty(), "LAN sources at lte's ISP: {leaked:?}");

    // A port with no forward answers nothing from the LAN server.
    let unforwarded = SocketAddr::from((Isp::Fiber.uplink().router.ip(), 81));
    assert!(fetch(unforwarded).is_err(), "port 81 is not forwarded");
}

#[test]
fn a_connection_through_the_backup_outlives_failover_and_failback() {
    if skip_unless_root("a_connection_through_the_backup_outlives_failover_and_failback") {
        return;
    }
    let (_lab, _server, daemon) = start();
    let mut on_lte = Client::open(public(Isp::Lte)).expect("a connection through lte");
    assert_eq!(
        on_lte.get().expect("first request").ip(),
        client_addr(Isp::Lte)
    );

    // fiber's gateway goes silent: the site answers through lte, new connections too.
    let fault = Instant::now();
    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("gateway-silent");
    wait_active(&daemon, Isp::Lte.uplink().router.name, MOVE_TIMEOUT);
    let answered = loop {
        if fetch(public(Isp::Lte)).is_ok() {
            break Instant::now();
        }
        assert!(
            fault.elapsed() < MOVE_TIMEOUT,
            "the site never answered through lte"
        );
    };
    println!(
        "the site answered through lte {} ms after the fault",
        (answered - fault).as_millis()
    );
    assert!(
        on_lte.get().is_ok(),
        "the lte connection works during the outage"
    );

    // fiber comes back and carries again; the lte connection goes on until it ends.
    lab::heal(Isp::Fiber).expect("healing fiber");
    wait_active(
        &daemon,
        Isp::Fiber.uplink().router.name,
        Duration::from_secs(30),
    );
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("LAN flows back on fiber");
    for _ in 0..3 {
        assert_eq!(
            on_lte
                .get()
                .expect("the lte connection after failback")
                .ip(),
            client_addr(Isp::Lte)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let seen = fetch(public(Isp::Fiber)).expect("the site through fiber again");
    assert_eq!(seen.ip(), client_addr(Isp::Fiber));
}

/// Behind carrier-grade NAT: a VPS forwards its public port into a WireGuard uplink (the
/// README's recipe). The site answers there with the client's own address while fiber
/// carries the LAN's flows (its replies go back into the tunnel), and through fiber's outage.
#[test]
fn a_vps_forwards_its_port_through_a_wireguard_uplink() {
    if skip_unless_root("a_vps_forwards_its_port_through_a_wireguard_uplink") {
        return;
    }
    // Dropped in reverse: the controller first, the lab last.
    let _lab = LabGuard::up().expect("building the lab");
    let _server = LanServer::start(HOST, SERVER_PORT).expect("the LAN web server");
    let wg = WgLink::up().expect("the WireGuard uplink");
    wg.forward_port_to_router(PUBLIC_PORT)
        .expect("the VPS's port forward");
    let daemon =
        DaemonGuard::start_with_uplinks(&[Plan::FIBER.router.name, Wg::ROUTER_DEV], CONFIG)
            .expect("starting failover run");
    stream::wait_for_uplink(HOST, Isp::Fiber, MOVE_TIMEOUT).expect("fiber carries");
    let vps = SocketAddr::from((Wg::VPS_IP, PUBLIC_PORT));

    let before = packets_out(&daemon, Wg::ROUTER_DEV);
    let seen = fetch(vps).expect("the site through the VPS");
    assert_eq!(
        seen.ip(),
        Wg::INET_SIDE_IP,
        "the server sees the client itself"
    );
    let after = packets_out(&daemon, Wg::ROUTER_DEV);
    assert!(
        after >= before + 2,
        "the replies went back into the tunnel: {before} -> {after}"
    );

    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("gateway-silent");
    wait_active(&daemon, Wg::ROUTER_DEV, MOVE_TIMEOUT);
    let seen = fetch(vps).expect("the site through the VPS during fiber's outage");
    assert_eq!(seen.ip(), Wg::INET_SIDE_IP);
}

#[test]
fn dns_follows_the_uplink_that_carries_the_site() {
    if skip_unless_root("dns_follows_the_uplink_that_carries_the_site") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let _server = LanServer::start(HOST, SERVER_PORT).expect("the LAN web server");
    let knot = Knot::start(&[WWW, MAIL]).expect("the zone's server");
    let dns = knot.dns_section(&[WWW, MAIL], "5s").expect("[dns]");
    let daemon = DaemonGuard::start_with(&format!("{CONFIG}{dns}")).expect("failover run");
    let (fiber, lte) = (Isp::Fiber.uplink(), Isp::Lte.uplink());

    // At start the records leave their stale address for fiber's, with the configured TTL,
    // and the site answers by name through fiber.
    wait_records(&knot, fiber.router.ip(), MOVE_TIMEOUT);
    assert_eq!(knot.ttl(WWW).expect("the TTL"), 5);
    let (address, seen) = fetch_by_name(&knot, WWW, PUBLIC_PORT).expect("the site by name");
    assert_eq!(
        (address, seen.ip()),
        (fiber.router.ip(), client_addr(Isp::Fiber).into())
    );
    let status = daemon
        .status()
        .expect("status")
        .dns
        .expect("the dns status");
    assert!(status.acknowledged, "{status:?}");
    assert_eq!(status.address, Some(fiber.router.ip().to_string()));
    assert_eq!(status.uplink.as_deref(), Some(fiber.router.name));

    // fiber's gateway goes silent: the update goes out through lte and the site answers by
    // name through lte.
    let fault = Instant::now();
    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("gateway-silent");
    let answered = loop {
        // Asked again until it names lte (a fetch from fiber's silent address would hang).
        if knot.query(WWW).ok().as_deref() == Some(&[lte.router.ip()]) {
            let (address, seen) =
                fetch_by_name(&knot, WWW, PUBLIC_PORT).expect("the site by name via lte");
            assert_eq!(
                (address, seen.ip()),
                (lte.router.ip(), client_addr(Isp::Lte).into())
            );
            break fault.elapsed();
        }
        assert!(
            fault.elapsed() < MOVE_TIMEOUT,
            "the name never led through lte"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "the site answered by name through lte {} ms after the fault (TTL 5 s; a resolver's cache adds up to it)",
        answered.as_millis()
    );
    wait_records(&knot, lte.router.ip(), MOVE_TIMEOUT);
    let events = daemon.events().expect("the event log");
    let updates: Vec<_> = events.iter().filter(|e| e.kind == "dns").collect();
    assert!(
        updates.iter().any(|e| e.uplink == lte.router.name
            && e.to == lte.router.ip().to_string()
            && e.cause.starts_with("acknowledged")
            && e.evidence.get("records").map(String::as_str)
                == Some("www.lab.example,mail.lab.example")),
        "{updates:#?}"
    );

    // Failback: the records follow fiber again.
    lab::heal(Isp::Fiber).expect("healing fiber");
    wait_active(&daemon, fiber.router.name, Duration::from_secs(30));
    wait_records(&knot, fiber.router.ip(), MOVE_TIMEOUT);
    let (address, seen) =
        fetch_by_name(&knot, WWW, PUBLIC_PORT).expect("the site by name after failback");
    assert_eq!(
        (address, seen.ip()),
        (fiber.router.ip(), client_addr(Isp::Fiber).into())
    );
}

#[test]
fn a_dns_update_with_a_key_the_server_refuses_is_retried_and_reported() {
    if skip_unless_root("a_dns_update_with_a_key_the_server_refuses_is_retried_and_reported") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let knot = Knot::start(&[WWW, MAIL]).expect("the zone's server");
    let dns = knot.dns_section(&[WWW, MAIL], "5s").expect("[dns]");
    // Same key name and algorithm, another secret: the server must refuse it.
    let key = knot.write_key_file().expect("the key file");
    std::fs::write(
        &key,
        "key \"failover-lab.\" { algorithm hmac-sha256; secret \"d3Jvbmcgc2VjcmV0\"; };\n",
    )
    .expect("writing the wrong key");
    let daemon = DaemonGuard::start_with(&format!("{CONFIG}{dns}")).expect("failover run");
    let deadline = Instant::now() + MOVE_TIMEOUT;
    let status = loop {
        let status = daemon
            .status()
            .expect("status")
            .dns
            .expect("the dns status");
        if status.attempts >= 2 {
            break status;
        }
        assert!(Instant::now() < deadline, "no retry: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.acknowledged, "{status:?}");
    assert!(
        status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("NOTAUTH")),
        "{status:?}"
    );
    assert_eq!(
        knot.query(WWW).expect("www"),
        [Knot::STALE],
        "nothing changed"
    );
    let events = daemon.events().expect("the event log");
    let failures: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "dns" && e.cause.starts_with("not acknowledged"))
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "one event, then retries in the status: {failures:#?}"
    );
}

#[test]
fn a_lan_host_reaches_the_forward_at_each_uplinks_address() {
    if skip_unless_root("a_lan_host_reaches_the_forward_at_each_uplinks_address") {
        return;
    }
    let (_lab, _server, mut daemon) = start();
    // host2 asks for the site at each uplink's public address: the router reflects it to
    // host1, from its own LAN address so host1's answer comes back through it.
    for isp in Isp::ALL {
        let seen = Client::open_from(Plan::NS_HOST2, public(isp))
            .and_then(|mut c| c.get())
            .unwrap_or_else(|e| panic!("the site at {}'s address from host2: {e:#}", isp.name()));
        assert_eq!(seen.ip(), Plan::ROUTER_LAN.ip(), "through {}", isp.name());
    }
    // A port with no forward is the router's own, and it serves nothing there.
    let unforwarded = SocketAddr::from((Isp::Fiber.uplink().router.ip(), 81));
    assert!(Client::open_from(Plan::NS_HOST2, unforwarded).is_err());
    let table = lab::ns_run(
        Plan::NS_ROUTER,
        &["nft", "list", "table", "ip", "failover_hairpin"],
    )
    .expect("the hairpin table");
    assert!(table.contains("dnat to 10.10.0.11:8080"), "{table}");
    // The internet still reaches it as before.
    assert_eq!(
        fetch(public(Isp::Fiber)).expect("from the internet").ip(),
        client_addr(Isp::Fiber)
    );
    // Detached, the data plane takes its hairpin table with it.
    daemon.stop_and_detach().expect("stop and detach");
    let tables = lab::ns_run(Plan::NS_ROUTER, &["nft", "list", "tables"]).expect("nft");
    assert!(!tables.contains("failover_hairpin"), "{tables}");
}
