//! The forwarding chain `gen ns [g0] ⇄ [r0] router ns [r1] ⇄ [s0] sink ns`: its addressing
//! plan, spelled once, and a guard that builds it and removes it on every exit path.
//!
//! Flows go from 10.99.1.100 (or 10.99.1.100+k, see `Spread`) behind r0 to 10.99.3.1+k, a
//! network the router reaches through the sink's address 10.99.2.1 with a static neighbour
//! entry, so no ARP is in the path.

use std::ffi::CString;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context, Result, bail};
use failover_common::bench::{GenConfig, TEMPLATE_WORDS};
use failover_tests::{frame, lab::Cmd, netns};

use crate::options::Spread;

/// Every namespace of the benchmark starts with this; leftovers with it are removed at start.
pub const NS_PREFIX: &str = "fob-";
pub const GEN_NS: &str = "fob-gen";
pub const ROUTER_NS: &str = "fob-rtr";
pub const SINK_NS: &str = "fob-sink";

/// One end of a veth pair.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    pub ns: &'static str,
    pub name: &'static str,
    pub mac: frame::Mac,
    pub addr: Ipv4Addr,
}

pub const PREFIX_LEN: u8 = 24;
pub const G0: Port = port(GEN_NS, "g0", 0x01, [10, 99, 1, 1]);
pub const R0: Port = port(ROUTER_NS, "r0", 0x02, [10, 99, 1, 254]);
pub const R1: Port = port(ROUTER_NS, "r1", 0x03, [10, 99, 2, 254]);
pub const S0: Port = port(SINK_NS, "s0", 0x04, [10, 99, 2, 1]);

/// The network behind the sink that the flows are addressed to.
pub const DST_NET: &str = "10.99.3.0/24";
/// First source/destination address and port of the generated flows.
const SRC_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 100);
const DST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 3, 1);
const SRC_PORT: u16 = 10_000;
const DST_PORT: u16 = 9;
/// Source ports per address: under a NAT's 64 Ki ports per address.
const PORTS_PER_ADDR: u32 = 50_000;
/// Ethernet frame size without FCS: the minimum, 60 bytes.
pub const FRAME_LEN: usize = 60;
/// Ethernet, IPv4 and UDP headers.
const HEADERS_LEN: usize = 14 + 20 + 8;

const fn port(ns: &'static str, name: &'static str, host: u8, addr: [u8; 4]) -> Port {
    Port {
        ns,
        name,
        mac: [0x02, 0xfb, 0x00, 0x00, 0x00, host],
        addr: Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]),
    }
}

/// The generator's template: a 60-byte UDP frame of the first flow, from g0 to r0, with a zero
/// UDP checksum so the generator can change ports without touching it.
pub fn template_frame() -> Vec<u8> {
    let frame = frame::Frame::udp(
        SocketAddrV4::new(SRC_ADDR, SRC_PORT),
        SocketAddrV4::new(DST_ADDR, DST_PORT),
    )
    .payload(&[0; FRAME_LEN - HEADERS_LEN])
    .macs(G0.mac, R0.mac)
    .udp_without_checksum()
    .build();
    debug_assert_eq!(frame.len(), FRAME_LEN);
    frame
}

/// The generator's configuration for `flows` flows spread as asked, from [`template_frame`].
pub fn gen_config(flows: u32, spread: Spread) -> GenConfig {
    let frame = template_frame();
    let mut template = [0; TEMPLATE_WORDS];
    for (word, bytes) in template.iter_mut().zip(frame.chunks_exact(8)) {
        *word = u64::from_ne_bytes(bytes.try_into().expect("8-byte chunk"));
    }
    GenConfig {
        flows,
        ports_per_addr: PORTS_PER_ADDR,
        // Both spreads vary the destination: Linux masquerade keeps at most 64 Ki flows per
        // destination address and port.
        src_addr_step: u32::from(spread == Spread::Lan),
        dst_addr_step: 1,
        template,
    }
}

fn mac_string(mac: frame::Mac) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

fn cidr(port: Port) -> String {
    format!("{}/{PREFIX_LEN}", port.addr)
}

/// The chain, built; dropping it removes the namespaces (and with them every link, address,
/// route, nftables table and XDP attachment in them).
pub struct Chain(());

impl Chain {
    /// Removes leftovers of an earlier run, then builds the chain. A failed step removes
    /// what was built.
    pub fn build() -> Result<Self> {
        remove_leftovers()?;
        let chain = Chain(());
        for ns in [GEN_NS, ROUTER_NS, SINK_NS] {
            Cmd::new("ip").args(["netns", "add", ns]).run()?;
            // No IPv6 router solicitations or MLD reports to count at the sink; best effort, as
            // a kernel without IPv6 has nothing to disable.
            for key in [
                "net.ipv6.conf.all.disable_ipv6",
                "net.ipv6.conf.default.disable_ipv6",
            ] {
                let _ = netns::sysctl(ns, key, "1");
            }
        }
        for (a, b) in [(G0, R0), (R1, S0)] {
            let (a_mac, b_mac) = (mac_string(a.mac), mac_string(b.mac));
            Cmd::ip(a.ns)
                .args(["link", "add", a.name, "address", &a_mac, "type", "veth"])
                .args(["peer", "name", b.name, "address", &b_mac, "netns", b.ns])
                .run()?;
        }
        for p in [G0, R0, R1, S0] {
            let addr = cidr(p);
            Cmd::ip(p.ns)
                .args(["addr", "add", &addr, "dev", p.name])
                .run()?;
            Cmd::ip(p.ns).args(["link", "set", p.name, "up"]).run()?;
        }
        let (sink, sink_mac) = (S0.addr.to_string(), mac_string(S0.mac));
        Cmd::ip(ROUTER_NS)
            .args([
                "neigh", "replace", &sink, "lladdr", &sink_mac, "dev", R1.name,
            ])
            .args(["nud", "permanent"])
            .run()?;
        Cmd::ip(ROUTER_NS)
            .args(["route", "add", DST_NET, "via", &sink, "dev", R1.name])
            .run()?;
        set_forwarding(true)?;
        for conf in ["all", "default", R0.name] {
            netns::sysctl(ROUTER_NS, &format!("net.ipv4.conf.{conf}.rp_filter"), "0")?;
        }
        // Frames XDP-redirected into g0 reach r0 only when r0 runs NAPI: GRO on, or an XDP
        // program attached (BENCH_METHOD pitfall). The Linux variants rely on GRO.
        Cmd::in_ns(ROUTER_NS, "ethtool")
            .args(["-K", R0.name, "gro", "on"])
            .run()?;
        Ok(chain)
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        if let Err(e) = remove_leftovers() {
            eprintln!("bench: removing the chain's namespaces failed: {e:#}");
        }
    }
}

/// Turns Linux IPv4 forwarding in the router namespace on or off.
pub fn set_forwarding(on: bool) -> Result<()> {
    netns::sysctl(ROUTER_NS, "net.ipv4.ip_forward", if on { "1" } else { "0" })
}

/// Deletes every `fob-` namespace.
pub fn remove_leftovers() -> Result<()> {
    let listing = Cmd::new("ip").args(["netns", "list"]).run()?;
    for ns in listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|ns| ns.starts_with(NS_PREFIX))
    {
        Cmd::new("ip").args(["netns", "del", ns]).run()?;
    }
    Ok(())
}

/// The interface index of `port` in its namespace.
pub fn ifindex(port: Port) -> Result<u32> {
    let name = CString::new(port.name).context("interface name")?;
    // SAFETY: if_nametoindex reads a NUL-terminated string and has no other preconditions.
    let index = netns::in_netns(port.ns, || unsafe { libc::if_nametoindex(name.as_ptr()) })?;
    if index == 0 {
        bail!("no interface {} in namespace {}", port.name, port.ns);
    }
    Ok(index)
}

/// `nf_conntrack_max` as the router namespace sees it, when conntrack is loaded.
pub fn conntrack_max() -> Option<u64> {
    netns::in_netns(ROUTER_NS, || {
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").ok()
    })
    .ok()
    .flatten()
    .and_then(|text| text.trim().parse().ok())
}
