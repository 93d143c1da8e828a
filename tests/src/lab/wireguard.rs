//! A WireGuard uplink made of real parts: `wireguard-go` in the router (`wg-fo`, a tun device
//! without an Ethernet header, MTU 1420) and in a "vps" namespace on the internet
//! (`fo-vps`, 198.18.3.2), which routes the tunnel's addresses. The tunnel itself runs over
//! the lab's lte uplink (a host route to the VPS), as a tunnel to a rented server would over
//! the backup line. [`WgLink`] removes everything it made; `lab down` removes the namespace
//! and the recorded processes too.

use std::fs;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::cmd::Cmd;
use super::nft::{self, Table};
use super::plan::Plan;
use super::probe::{expect_within, ping_once};
use super::servers::{self, LabProcess};
use super::topology;

/// The WireGuard uplink's plan.
pub struct Wg;

impl Wg {
    /// The VPS's namespace.
    pub const NS_VPS: &'static str = "fo-vps";
    /// The router's tunnel interface: the uplink's name in the controller's config.
    pub const ROUTER_DEV: &'static str = "wg-fo";
    /// The VPS's end (a distinct name: wireguard-go's control sockets share one directory).
    pub const VPS_DEV: &'static str = "wg-fo-vps";
    /// The router's tunnel address: what the server sees for flows through the tunnel.
    pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 2, 2);
    pub const VPS_TUNNEL_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 2, 1);
    pub const TUNNEL_PREFIX: &'static str = "100.64.2.0/24";
    /// The VPS's public address, on its link to the internet namespace.
    pub const VPS_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 2);
    pub const INET_SIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);
    pub const PORT: u16 = 51820;
    /// WireGuard's usual MTU: 1500 less the outer IPv4, UDP and WireGuard headers (and room).
    pub const MTU: u16 = 1420;
    /// Behind fiber, lte and the raw-IP uplink in the router's main table.
    pub const METRIC: u32 = 400;
}

/// The tunnel, up and handshaken, until dropped.
#[must_use = "the tunnel is removed when the link is dropped"]
pub struct WgLink {
    processes: Vec<LabProcess>,
    /// wireguard-go made its control-socket directory: removed again when empty.
    made_socket_dir: bool,
}

/// Where wireguard-go puts its control sockets (one directory for every namespace).
const SOCKET_DIR: &str = "/var/run/wireguard";

impl WgLink {
    /// Builds the VPS and the tunnel; the lab must be up. Returns once a ping crosses the
    /// tunnel.
    pub fn up() -> Result<Self> {
        // Leftovers of a run that was killed.
        remove_vps();
        let mut link = Self {
            processes: Vec::new(),
            made_socket_dir: !std::path::Path::new(SOCKET_DIR).exists(),
        };
        link.build().context("building the WireGuard uplink")?;
        Ok(link)
    }

    fn build(&mut self) -> Result<()> {
        add_vps()?;
        let (router_key, vps_key) = (generate_key("router")?, generate_key("vps")?);
        for (ns, dev) in [(Plan::NS_ROUTER, Wg::ROUTER_DEV), (Wg::NS_VPS, Wg::VPS_DEV)] {
            self.processes.push(servers::spawn(
                dev,
                ns,
                &["wireguard-go", "--foreground", dev],
            )?);
            expect_within(
                &format!("wireguard-go to create {dev} in {ns}"),
                Duration::from_secs(5),
                || {
                    Ok(Cmd::ip(ns)
                        .args(["link", "show", "dev", dev])
                        .output()?
                        .success())
                },
            )?;
        }
        let port = Wg::PORT.to_string();
        let endpoint = format!("{}:{port}", Wg::VPS_IP);
        Cmd::new("wg")
            .args(["set", Wg::ROUTER_DEV, "private-key", &router_key.path_str()])
            .args(["peer", &vps_key.public, "endpoint", &endpoint])
            .args(["allowed-ips", "0.0.0.0/0", "persistent-keepalive", "5"])
            .run()?;
        Cmd::new("wg")
            .args(["set", Wg::VPS_DEV, "listen-port", &port])
            .args(["private-key", &vps_key.path_str()])
            .args(["peer", &router_key.public, "allowed-ips", Wg::TUNNEL_PREFIX])
            .run()?;
        let mtu = Wg::MTU.to_string();
        for (ns, dev, ip) in [
            (Plan::NS_ROUTER, Wg::ROUTER_DEV, Wg::ROUTER_IP),
            (Wg::NS_VPS, Wg::VPS_DEV, Wg::VPS_TUNNEL_IP),
        ] {
            Cmd::ip(ns)
                .args(["link", "set", "dev", dev, "mtu", &mtu])
                .run()?;
            topology::address_up(ns, dev, ip)?;
        }
        // The tunnel's packets leave through lte, which this test leaves to the kernel.
        Cmd::ip(Plan::NS_ROUTER)
            .args(["route", "add", &format!("{}/32", Wg::VPS_IP)])
            .args(["via", &Plan::LTE.gateway.ip().to_string()])
            .args(["dev", Plan::LTE.router.name])
            .run()?;
        Cmd::ip(Plan::NS_ROUTER)
            .args(["route", "add", "default", "dev", Wg::ROUTER_DEV])
            .args(["metric", &Wg::METRIC.to_string()])
            .run()?;
        expect_within(
            "a ping across the tunnel (the handshake)",
            Duration::from_secs(10),
            || ping_once(Plan::NS_ROUTER, Wg::VPS_TUNNEL_IP),
        )
    }
}

impl WgLink {
    /// The VPS side of the README's carrier-grade-NAT recipe: the VPS's public `port` (TCP)
    /// is forwarded into the tunnel to the router's tunnel address, untranslated at its
    /// source, and the router's own traffic leaving the VPS is masqueraded. The table goes
    /// with the VPS's namespace.
    pub fn forward_port_to_router(&self, port: u16) -> Result<()> {
        let rules = [format!(
            "iifname \"inet\" tcp dport {port} dnat to {}",
            Wg::ROUTER_IP
        )];
        let mut body = nft::chain(
            "prerouting",
            "nat hook prerouting priority dstnat",
            "accept",
            &rules,
        );
        let masquerade = [format!(
            "oifname \"inet\" ip saddr {} masquerade",
            Wg::ROUTER_IP
        )];
        body.push_str(&nft::chain(
            "postrouting",
            "nat hook postrouting priority srcnat",
            "accept",
            &masquerade,
        ));
        VPS_FORWARD.replace(Wg::NS_VPS, &format!("tcp {port} to the router"), &body)
    }
}

/// The VPS's port forward into the tunnel.
const VPS_FORWARD: Table = Table {
    family: "ip",
    name: "failover_vps",
};

impl Drop for WgLink {
    fn drop(&mut self) {
        for process in self.processes.drain(..) {
            if let Err(e) = servers::stop(&process) {
                eprintln!("stopping {}: {e:#}", process.name);
            }
        }
        let _ = Cmd::ip(Plan::NS_ROUTER)
            .args(["route", "del", &format!("{}/32", Wg::VPS_IP)])
            .output();
        remove_vps();
        let _ = crate::netns::sysctl(Plan::NS_INET, "net.ipv4.ip_forward", "0");
        for key in ["router", "vps"] {
            let _ = fs::remove_file(key_path(key));
        }
        if self.made_socket_dir {
            // Only when empty: another WireGuard user may have come meanwhile.
            let _ = fs::remove_dir(SOCKET_DIR);
        }
    }
}

/// The VPS: a namespace with a link to the internet namespace, which routes the tunnel's
/// addresses to it.
fn add_vps() -> Result<()> {
    topology::add_namespace(Wg::NS_VPS)?;
    // The internet namespace, a host elsewhere in the lab, routes for the VPS meanwhile.
    for ns in [Wg::NS_VPS, Plan::NS_INET] {
        crate::netns::sysctl(ns, "net.ipv4.ip_forward", "1")?;
    }
    Cmd::ip(Plan::NS_INET)
        .args(["link", "add", "name", "vps", "type", "veth"])
        .args(["peer", "name", "inet", "netns", Wg::NS_VPS])
        .run()?;
    for (ns, dev, ip) in [
        (Plan::NS_INET, "vps", Wg::INET_SIDE_IP),
        (Wg::NS_VPS, "inet", Wg::VPS_IP),
    ] {
        topology::address_up(ns, dev, ip)?;
    }
    Cmd::ip(Wg::NS_VPS)
        .args([
            "route",
            "add",
            "default",
            "via",
            &Wg::INET_SIDE_IP.to_string(),
        ])
        .run()?;
    Cmd::ip(Plan::NS_INET)
        .args([
            "route",
            "add",
            Wg::TUNNEL_PREFIX,
            "via",
            &Wg::VPS_IP.to_string(),
        ])
        .args(["advmss", &(Plan::LINK_MTU - 40).to_string()])
        .run()?;
    Ok(())
}

/// Deletes the VPS namespace (its veth, and so the internet's routes through it, go too).
pub(crate) fn remove_vps() {
    if crate::netns::exists(Wg::NS_VPS) {
        let _ = Cmd::new("ip").args(["netns", "del", Wg::NS_VPS]).output();
    }
}

/// A private key in a file only root reads, and its public key.
struct Key {
    path: PathBuf,
    public: String,
}

impl Key {
    fn path_str(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(Plan::STATE_DIR).join(format!("wg-{name}.key"))
}

fn generate_key(name: &str) -> Result<Key> {
    let private = Cmd::new("wg").arg("genkey").run()?;
    let public = Cmd::new("wg").arg("pubkey").stdin(private.clone()).run()?;
    let path = key_path(name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(private.as_bytes())?;
    Ok(Key {
        path,
        public: public.trim().to_owned(),
    })
}
