//! Building and removing the namespaces, links, addresses and routes of the plan.
//! Everything is created inside `fo-*` namespaces (veths are born with both ends already in
//! their namespaces), so deleting the namespaces removes every link the lab made.

use anyhow::{Context, Result};

use super::cmd::Cmd;
use super::plan::{Iface, Isp, Plan, VethPair};
use crate::netns::{self, sysctl};

/// Builds the whole topology (without the servers).
pub(crate) fn build() -> Result<()> {
    for ns in Plan::NAMESPACES {
        add_namespace(ns)?;
    }
    add_bridge()?;
    for pair in &Plan::VETH_PAIRS {
        add_veth(pair)?;
    }
    add_server_addresses()?;
    add_routes()
}

/// Deletes every lab namespace that exists (and with them their links and nft tables).
pub(crate) fn remove_namespaces() -> Result<()> {
    // The WireGuard uplink's VPS, when a test made one.
    super::wireguard::remove_vps();
    let present = Plan::NAMESPACES.into_iter().filter(|ns| netns::exists(ns));
    super::all_ok(present.map(|ns| Cmd::new("ip").args(["netns", "del", ns]).run().map(drop)))
}

/// A namespace with IPv6 off (no router solicitations, DAD or MLD noise in captures), no
/// reverse-path filter (the router receives replies on either uplink) and `lo` up.
/// The `default` sysctls are set first so every interface made later inherits them.
pub(crate) fn add_namespace(ns: &str) -> Result<()> {
    Cmd::new("ip").args(["netns", "add", ns]).run()?;
    for scope in ["all", "default"] {
        sysctl(ns, &format!("net.ipv6.conf.{scope}.disable_ipv6"), "1")?;
        sysctl(ns, &format!("net.ipv4.conf.{scope}.rp_filter"), "0")?;
    }
    if Plan::FORWARDING_NAMESPACES.contains(&ns) {
        sysctl(ns, "net.ipv4.ip_forward", "1")?;
    }
    set_up(ns, "lo")
}

/// The LAN switch: no STP, so ports forward as soon as they are up.
fn add_bridge() -> Result<()> {
    let br = Plan::BRIDGE;
    Cmd::ip(br.ns)
        .args([
            "link",
            "add",
            "name",
            br.name,
            "address",
            &br.mac.to_string(),
            "type",
            "bridge",
            "stp_state",
            "0",
        ])
        .run()?;
    set_up(br.ns, br.name)
}

/// Creates the pair with both ends in their namespaces and fixed MACs, then configures each.
fn add_veth(pair: &VethPair) -> Result<()> {
    let (a, b) = (pair.a, pair.b);
    let (a_mac, b_mac) = (a.mac.to_string(), b.mac.to_string());
    Cmd::ip(a.ns)
        .args([
            "link", "add", "name", a.name, "address", &a_mac, "type", "veth",
        ])
        .args(["peer", "name", b.name, "address", &b_mac, "netns", b.ns])
        .run()?;
    configure_end(a)?;
    configure_end(b)?;
    if super::kernel_offloads() {
        return Ok(());
    }
    // The tuned lab: frames must carry complete checksums, as on a wire: with TX checksum offload a veth
    // hands over packets whose checksum field holds only the pseudo-header sum, which an
    // XDP program (seeing bytes, not skb metadata) cannot finish (the TC path can). Real
    // NICs deliver complete checksums.
    for end in [a, b] {
        Cmd::in_ns(end.ns, "ethtool")
            .args(["-K", end.name, "tx", "off"])
            .run()?;
    }
    if pair.gro_on_b {
        // XDP_REDIRECT into `a` reaches `b` only through NAPI, which veth runs with GRO on.
        Cmd::in_ns(b.ns, "ethtool")
            .args(["-K", b.name, "gro", "on"])
            .run()?;
    }
    Ok(())
}

/// Address (if any), bridge membership for LAN ports, then up.
fn configure_end(end: Iface) -> Result<()> {
    if let Some(cidr) = end.addr {
        Cmd::ip(end.ns)
            .args(["addr", "add", &cidr.to_string(), "dev", end.name])
            .run()?;
    }
    if end.ns == Plan::BRIDGE.ns {
        Cmd::ip(end.ns)
            .args(["link", "set", "dev", end.name, "master", Plan::BRIDGE.name])
            .run()?;
    }
    set_up(end.ns, end.name)
}

/// The server and the far targets live on `lo` of the internet namespace.
fn add_server_addresses() -> Result<()> {
    for ip in std::iter::once(Plan::SERVER).chain(Plan::FAR_TARGETS) {
        Cmd::ip(Plan::NS_INET)
            .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
            .run()?;
    }
    Ok(())
}

/// Hosts default via the router; the router default via both ISPs (fiber preferred by
/// metric); each ISP default via the internet; the internet back to each ISP's customers.
fn add_routes() -> Result<()> {
    let router_lan = Plan::ROUTER_LAN.ip().to_string();
    for host in Plan::HOSTS {
        Cmd::ip(host.ns)
            .args(["route", "add", "default", "via", &router_lan])
            .run()?;
    }
    for isp in Isp::ALL {
        let up = isp.uplink();
        let (gateway, metric) = (up.gateway.ip().to_string(), up.metric.to_string());
        Cmd::ip(Plan::NS_ROUTER)
            .args([
                "route",
                "add",
                "default",
                "via",
                &gateway,
                "dev",
                up.router.name,
                "metric",
                &metric,
            ])
            .run()?;
        let inet = up.inet_side.ip().to_string();
        Cmd::ip(up.ns)
            .args([
                "route",
                "add",
                "default",
                "via",
                &inet,
                "dev",
                up.upstream.name,
            ])
            .run()?;
        let customers = up
            .router
            .addr
            .context("uplink without address")?
            .network()
            .to_string();
        let isp_ip = up.upstream.ip().to_string();
        // The server advertises a full-size MSS, as servers on the internet do, so an
        // `mtu=N` fault is a bottleneck inside the path that only ICMP
        // fragmentation-needed reveals, not a smaller MSS in the handshake.
        let full_mss = (Plan::LINK_MTU - 40).to_string();
        Cmd::ip(Plan::NS_INET)
            .args([
                "route",
                "add",
                &customers,
                "via",
                &isp_ip,
                "dev",
                up.inet_side.name,
                "advmss",
                &full_mss,
            ])
            .run()?;
    }
    Ok(())
}

/// Gives `dev` in `ns` the address `ip/24` and brings it up (the links tests add).
pub(crate) fn address_up(ns: &str, dev: &str, ip: std::net::Ipv4Addr) -> Result<()> {
    Cmd::ip(ns)
        .args(["addr", "add", &format!("{ip}/24"), "dev", dev])
        .run()?;
    set_up(ns, dev)
}

fn set_up(ns: &str, dev: &str) -> Result<()> {
    Cmd::ip(ns)
        .args(["link", "set", "dev", dev, "up"])
        .run()
        .map(drop)
}
