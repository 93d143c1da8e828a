//! End-to-end tests of the network lab with plain kernel forwarding and masquerade (no eBPF):
//! the paths through both ISPs work, every fault does what it says and `heal` undoes it, and
//! `up`/`down` leave nothing behind. Root only; run with `--test-threads=1` (the tests share
//! the `fo-*` namespace names).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use failover_tests::lab::{self, Cmd, Fault, Iface, Isp, LabGuard, Plan};
use failover_tests::privilege::skip_unless_root;

/// Long enough for ARP, carrier changes and a 1 MiB download; short enough to fail fast.
const WAIT: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn lab_up() -> LabGuard {
    LabGuard::up().expect("building the lab")
}

/// Router NATs to the uplink address and sends everything through `isp`.
fn kernel_nat_via(isp: Isp) {
    lab::set_masquerade(true).expect("masquerade on");
    lab::set_default_uplink(isp).expect("choosing the default uplink");
}

fn ping_once(ns: &str, dst: std::net::Ipv4Addr) -> bool {
    lab::ping_once(ns, dst).expect("running ping")
}

fn expect_within(what: &str, check: impl FnMut() -> anyhow::Result<bool>) {
    lab::expect_within(what, WAIT, check).unwrap();
}

fn router_link(isp: Isp) -> lab::LinkState {
    lab::link_state(Plan::NS_ROUTER, isp.uplink().router.name).expect("reading the router's uplink")
}

fn fault_names(isp: Isp) -> BTreeSet<String> {
    lab::active_faults(isp)
        .expect("reading faults")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// HTTP download with the right hash, the server sees the uplink's address, UDP echo and ping.
fn assert_internet_via(host: Iface, isp: Isp) {
    let who = format!("{} via {isp}", host.ns);
    let body =
        lab::http_get(host.ns, &Plan::blob_url(), HTTP_TIMEOUT).expect("downloading the blob");
    assert_eq!(body.len(), lab::BLOB_LEN, "{who}: blob size");
    assert_eq!(lab::sha256_hex(&body), lab::BLOB_SHA256, "{who}: blob hash");

    let seen = lab::http_get(host.ns, &Plan::whoami_url(), HTTP_TIMEOUT).expect("asking whoami");
    let expected = format!("{}\n", isp.uplink().router.ip());
    assert_eq!(
        String::from_utf8_lossy(&seen),
        expected,
        "{who}: source address the server saw"
    );

    let echo_addr = SocketAddr::from((Plan::SERVER, Plan::UDP_ECHO_PORT));
    let payload = format!("echo from {who}");
    let echo = lab::udp_echo(
        host.ns,
        echo_addr,
        payload.as_bytes(),
        Duration::from_secs(2),
    )
    .expect("UDP echo");
    assert_eq!(echo, payload.as_bytes(), "{who}: UDP echo");

    let ping = lab::ping(host.ns, Plan::SERVER, &["-c", "3", "-i", "0.1", "-W", "1"]).unwrap();
    assert!(
        ping.all_answered(),
        "{who}: ping {}: {}",
        Plan::SERVER,
        ping.output.all_output()
    );
}

#[test]
fn lan_hosts_reach_the_internet_through_fiber_with_masquerade() {
    if skip_unless_root("lan_hosts_reach_the_internet_through_fiber_with_masquerade") {
        return;
    }
    let _lab = lab_up();
    assert_eq!(
        lab::default_uplink().unwrap(),
        Some(Isp::Fiber),
        "fiber is preferred by metric"
    );
    // No NAT by default: the internet has no route back to 10.10.0.0/24.
    assert!(!lab::masquerade_enabled().unwrap());
    assert!(
        !ping_once(Plan::HOST1.ns, Plan::SERVER),
        "reached the internet without NAT"
    );

    lab::set_masquerade(true).unwrap();
    assert!(lab::masquerade_enabled().unwrap());
    for host in Plan::HOSTS {
        assert_internet_via(host, Isp::Fiber);
    }
    for far in Plan::FAR_TARGETS {
        assert!(ping_once(Plan::NS_ROUTER, far), "far target {far}");
    }
}

#[test]
fn lan_hosts_reach_the_internet_through_lte_and_back_to_fiber() {
    if skip_unless_root("lan_hosts_reach_the_internet_through_lte_and_back_to_fiber") {
        return;
    }
    let _lab = lab_up();
    kernel_nat_via(Isp::Lte);
    assert_eq!(lab::default_uplink().unwrap(), Some(Isp::Lte));
    assert_internet_via(Plan::HOST1, Isp::Lte);

    lab::set_default_uplink(Isp::Fiber).unwrap();
    assert_eq!(lab::default_uplink().unwrap(), Some(Isp::Fiber));
    assert_internet_via(Plan::HOST2, Isp::Fiber);
}

#[test]
fn carrier_down_drops_the_uplink_carrier_and_heal_restores_it() {
    if skip_unless_root("carrier_down_drops_the_uplink_carrier_and_heal_restores_it") {
        return;
    }
    let _lab = lab_up();
    kernel_nat_via(Isp::Fiber);
    assert!(router_link(Isp::Fiber).has_carrier());
    assert!(ping_once(Plan::HOST1.ns, Plan::SERVER));

    lab::fault(Isp::Fiber, Fault::CarrierDown).unwrap();
    expect_within("the router's fiber to lose carrier", || {
        Ok(!router_link(Isp::Fiber).has_carrier())
    });
    let link = router_link(Isp::Fiber);
    assert!(
        link.has_flag("NO-CARRIER") && link.operstate != "UP",
        "{link:?}"
    );
    assert!(
        !ping_once(Plan::HOST1.ns, Plan::SERVER),
        "traffic passed a link without carrier"
    );
    assert!(
        router_link(Isp::Lte).has_carrier(),
        "lte must not be affected"
    );
    assert_eq!(
        lab::active_faults(Isp::Fiber).unwrap(),
        [Fault::CarrierDown]
    );
    assert!(lab::status().unwrap().contains("fiber: carrier-down"));

    lab::heal(Isp::Fiber).unwrap();
    expect_within("carrier to come back", || {
        Ok(router_link(Isp::Fiber).has_carrier())
    });
    expect_within("the internet via fiber", || {
        lab::ping_once(Plan::HOST1.ns, Plan::SERVER)
    });
    assert!(lab::active_faults(Isp::Fiber).unwrap().is_empty());
}

/// Pings the gateway from the router after forgetting its MAC; returns the neighbour entry.
fn ping_gateway_after_flush(isp: Isp) -> (lab::Ping, Option<lab::Neighbour>) {
    let up = isp.uplink();
    lab::flush_neighbours(Plan::NS_ROUTER, up.router.name).unwrap();
    let ping = lab::ping(
        Plan::NS_ROUTER,
        up.gateway.ip(),
        &["-c", "2", "-i", "0.2", "-W", "1"],
    )
    .unwrap();
    let neighbour = lab::neighbour(Plan::NS_ROUTER, up.router.name, up.gateway.ip()).unwrap();
    (ping, neighbour)
}

#[test]
fn gateway_silent_answers_nothing_not_even_arp() {
    if skip_unless_root("gateway_silent_answers_nothing_not_even_arp") {
        return;
    }
    let _lab = lab_up();
    let fiber = Isp::Fiber.uplink();
    assert!(ping_once(Plan::NS_ROUTER, fiber.gateway.ip()));

    lab::fault(Isp::Fiber, Fault::GatewaySilent).unwrap();
    assert!(
        router_link(Isp::Fiber).has_carrier(),
        "the link must stay up"
    );
    let (ping, neighbour) = ping_gateway_after_flush(Isp::Fiber);
    assert_eq!(ping.received, 0, "{}", ping.output.all_output());
    let neighbour = neighbour.expect("a neighbour entry while resolving");
    assert!(
        neighbour.unresolved() && neighbour.lladdr.is_none(),
        "ARP resolved: {neighbour:?}"
    );

    lab::heal(Isp::Fiber).unwrap();
    expect_within("the gateway to answer again", || {
        lab::ping_once(Plan::NS_ROUTER, fiber.gateway.ip())
    });
    let neighbour = lab::neighbour(Plan::NS_ROUTER, fiber.router.name, fiber.gateway.ip())
        .unwrap()
        .unwrap();
    assert_eq!(neighbour.lladdr, Some(fiber.gateway.mac.to_string()));
}

#[test]
fn gateway_silent_arp_still_resolves_but_answers_no_ping() {
    if skip_unless_root("gateway_silent_arp_still_resolves_but_answers_no_ping") {
        return;
    }
    let _lab = lab_up();
    let fiber = Isp::Fiber.uplink();

    lab::fault(Isp::Fiber, Fault::GatewaySilentArp).unwrap();
    let (ping, neighbour) = ping_gateway_after_flush(Isp::Fiber);
    assert_eq!(ping.received, 0, "{}", ping.output.all_output());
    let neighbour = neighbour.expect("a neighbour entry");
    assert!(
        !neighbour.unresolved(),
        "ARP must still work: {neighbour:?}"
    );
    assert_eq!(neighbour.lladdr, Some(fiber.gateway.mac.to_string()));
    assert_eq!(
        lab::active_faults(Isp::Fiber).unwrap(),
        [Fault::GatewaySilentArp]
    );

    lab::heal(Isp::Fiber).unwrap();
    expect_within("the gateway to answer again", || {
        lab::ping_once(Plan::NS_ROUTER, fiber.gateway.ip())
    });
}

#[test]
fn upstream_cut_gateway_answers_but_forwards_nothing() {
    if skip_unless_root("upstream_cut_gateway_answers_but_forwards_nothing") {
        return;
    }
    let _lab = lab_up();
    kernel_nat_via(Isp::Fiber);
    let gateway = Isp::Fiber.uplink().gateway.ip();

    lab::fault(Isp::Fiber, Fault::UpstreamCut).unwrap();
    assert!(
        ping_once(Plan::NS_ROUTER, gateway),
        "the gateway itself must still answer"
    );
    assert!(
        !ping_once(Plan::NS_ROUTER, Plan::SERVER),
        "the router reached the internet"
    );
    assert!(
        !ping_once(Plan::HOST1.ns, Plan::SERVER),
        "host1 reached the internet"
    );

    lab::heal(Isp::Fiber).unwrap();
    expect_within("the internet via fiber", || {
        lab::ping_once(Plan::HOST1.ns, Plan::SERVER)
    });
}

#[test]
fn loss_drops_about_the_requested_share_each_way_and_heal_ends_it() {
    if skip_unless_root("loss_drops_about_the_requested_share_each_way_and_heal_ends_it") {
        return;
    }
    let _lab = lab_up();
    let gateway = Isp::Fiber.uplink().gateway.ip();
    // Resolve ARP first: a lost ARP exchange would stall the fast pings below for a second.
    assert!(ping_once(Plan::NS_ROUTER, gateway));
    let fast = ["-q", "-c", "400", "-i", "0.002", "-W", "1"];

    lab::fault(Isp::Fiber, Fault::Loss(20)).unwrap();
    let ping = lab::ping(Plan::NS_ROUTER, gateway, &fast).unwrap();
    // 20 % each way: 1 - 0.8² = 36 % of round trips; the band is about ±5 standard deviations.
    let loss = ping.loss_percent();
    assert!(
        (20.0..=52.0).contains(&loss),
        "measured {loss:.1} % loss: {}",
        ping.output.all_output()
    );
    assert_eq!(lab::active_faults(Isp::Fiber).unwrap(), [Fault::Loss(20)]);

    lab::heal(Isp::Fiber).unwrap();
    let ping = lab::ping(Plan::NS_ROUTER, gateway, &fast).unwrap();
    assert!(
        ping.loss_percent() <= 1.0,
        "loss after heal: {}",
        ping.output.all_output()
    );
}

#[test]
fn mtu_fault_makes_the_gateway_report_fragmentation_needed() {
    if skip_unless_root("mtu_fault_makes_the_gateway_report_fragmentation_needed") {
        return;
    }
    let _lab = lab_up();
    kernel_nat_via(Isp::Fiber);
    let big = ["-M", "do", "-s", "1472", "-c", "1", "-W", "2"];
    let fits = ["-M", "do", "-s", "1372", "-c", "1", "-W", "2"];
    assert!(
        lab::ping(Plan::HOST1.ns, Plan::SERVER, &big)
            .unwrap()
            .all_answered()
    );

    lab::fault(Isp::Fiber, Fault::Mtu(1400)).unwrap();
    for ns in [Plan::HOST1.ns, Plan::NS_ROUTER] {
        let ping = lab::ping(ns, Plan::SERVER, &big).unwrap();
        let text = ping.output.all_output();
        assert!(
            !ping.all_answered(),
            "{ns}: 1500-byte DF packet passed: {text}"
        );
        assert!(
            text.contains("mtu = 1400") || text.contains("mtu=1400"),
            "{ns}: no frag-needed: {text}"
        );
        assert!(
            lab::ping(ns, Plan::SERVER, &fits).unwrap().all_answered(),
            "{ns}: 1400-byte packet lost"
        );
    }
    assert_eq!(lab::active_faults(Isp::Fiber).unwrap(), [Fault::Mtu(1400)]);

    lab::heal(Isp::Fiber).unwrap();
    // The learned path MTU is cached per destination; forget it to see the healed path.
    for ns in [Plan::HOST1.ns, Plan::NS_ROUTER] {
        lab::flush_route_cache(ns).unwrap();
        let ping = lab::ping(ns, Plan::SERVER, &big).unwrap();
        assert!(
            ping.all_answered(),
            "{ns}: after heal: {}",
            ping.output.all_output()
        );
    }
}

#[test]
fn lte_faults_combine_show_in_status_and_heal_together() {
    if skip_unless_root("lte_faults_combine_show_in_status_and_heal_together") {
        return;
    }
    let _lab = lab_up();
    kernel_nat_via(Isp::Lte);
    let lte = Isp::Lte.uplink();

    lab::fault(Isp::Lte, Fault::UpstreamCut).unwrap();
    assert!(ping_once(Plan::NS_ROUTER, lte.gateway.ip()));
    assert!(
        !ping_once(Plan::HOST1.ns, Plan::SERVER),
        "host1 reached the internet through a cut lte"
    );
    // Faults are per ISP: fiber still works.
    lab::set_default_uplink(Isp::Fiber).unwrap();
    assert!(
        ping_once(Plan::HOST1.ns, Plan::SERVER),
        "fiber broken by an lte fault"
    );

    lab::fault(Isp::Lte, Fault::CarrierDown).unwrap();
    lab::fault(Isp::Lte, Fault::Loss(5)).unwrap();
    lab::fault(Isp::Lte, Fault::Loss(7)).unwrap(); // replaces loss=5
    let expected: BTreeSet<String> = ["carrier-down", "upstream-cut", "loss=7"]
        .map(String::from)
        .into();
    assert_eq!(fault_names(Isp::Lte), expected);
    assert!(fault_names(Isp::Fiber).is_empty());
    let status = lab::status().unwrap();
    assert!(
        status.contains("lte: carrier-down, upstream-cut, loss=7"),
        "{status}"
    );
    assert!(
        status.contains("fiber: none") && status.contains("lab: up"),
        "{status}"
    );
    lab::fault(Isp::Lte, Fault::Loss(0)).unwrap(); // loss=0 removes the loss
    assert!(!fault_names(Isp::Lte).contains("loss=7"));

    lab::heal(Isp::Lte).unwrap();
    lab::heal(Isp::Lte).unwrap(); // idempotent
    assert!(fault_names(Isp::Lte).is_empty());
    lab::set_default_uplink(Isp::Lte).unwrap();
    expect_within("the internet via lte", || {
        lab::ping_once(Plan::HOST1.ns, Plan::SERVER)
    });
    assert_internet_via(Plan::HOST1, Isp::Lte);
}

fn lab_namespaces_listed() -> Vec<String> {
    // Only the lab's own: other `fo-*` namespaces (data-plane tests) may come and go.
    let list = Cmd::new("ip").args(["netns", "list"]).run().unwrap();
    let names = list
        .lines()
        .filter_map(|line| line.split_whitespace().next());
    names
        .filter(|name| Plan::NAMESPACES.contains(name))
        .map(str::to_owned)
        .collect()
}

fn proc_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn down_leaves_nothing_and_up_recovers_from_leftovers() {
    if skip_unless_root("down_leaves_nothing_and_up_recovers_from_leftovers") {
        return;
    }
    // The guard holds the lab lock throughout; the test drives up/down itself.
    let lab = lab_up();

    // A full cycle leaves no namespace, process or state behind; a second down is harmless.
    let servers = lab::processes().unwrap();
    let names: Vec<&str> = servers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["nginx", "socat", "dnsmasq"], "{servers:?}");
    assert!(servers.iter().all(lab::LabProcess::is_alive), "{servers:?}");
    lab::down().unwrap();
    assert_eq!(lab_namespaces_listed(), Vec::<String>::new());
    assert!(
        servers.iter().all(|p| !proc_exists(p.pid)),
        "left running: {servers:?}"
    );
    assert!(!Path::new(Plan::STATE_DIR).exists());
    lab::down().unwrap();
    assert_eq!(lab::status().unwrap(), "lab: down\n");

    // A previous run that died half way: some namespaces gone, servers still running in a
    // namespace that no longer has a name.
    lab::up().unwrap();
    let old = lab::processes().unwrap();
    for ns in [Plan::NS_INET, Plan::NS_HOST2] {
        Cmd::new("ip").args(["netns", "del", ns]).run().unwrap();
    }
    assert!(lab::status().unwrap().starts_with("lab: partly built"));
    lab.rebuild().unwrap();
    assert!(
        old.iter().all(|p| !proc_exists(p.pid)),
        "leftover servers survived: {old:?}"
    );
    assert!(
        lab::processes()
            .unwrap()
            .iter()
            .all(lab::LabProcess::is_alive)
    );
    assert!(ping_once(Plan::HOST2.ns, Plan::ROUTER_LAN.ip()));

    // A run that died while wiring: a few namespaces and one veth, no state directory.
    lab::down().unwrap();
    for ns in [Plan::NS_ROUTER, Plan::NS_LAN] {
        Cmd::new("ip").args(["netns", "add", ns]).run().unwrap();
    }
    let (a, b) = (Plan::ROUTER_LAN, Plan::LAN_PORT_ROUTER);
    Cmd::ip(a.ns)
        .args([
            "link", "add", "name", a.name, "type", "veth", "peer", "name", b.name, "netns", b.ns,
        ])
        .run()
        .unwrap();
    lab.rebuild().unwrap();
    lab::set_masquerade(true).unwrap();
    assert_internet_via(Plan::HOST1, Isp::Fiber);

    lab.down().unwrap();
    assert_eq!(lab_namespaces_listed(), Vec::<String>::new());
}
