//! A raw-IP uplink, as a `qmi_wwan` or `mhi_net` LTE modem gives: `wwan0` in the router is a `tun`
//! device (no Ethernet header, no ARP, no gateway: a device route), its far end `wwan-isp` a
//! second `tun` device in the lte ISP's namespace, and this process copies the packets
//! between the two. The devices live as long as the [`TunLink`] (closing a tun's descriptor
//! removes the device), so a test that fails cannot leave them behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result};

use super::cmd::Cmd;
use super::plan::Plan;
use super::topology;
use crate::netns;

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// How often a copying thread looks at the stop flag.
const POLL_MS: libc::c_int = 100;

/// The raw-IP uplink's plan.
pub struct RawIp;

impl RawIp {
    /// The router's interface: the uplink's name in the controller's config.
    pub const ROUTER_DEV: &'static str = "wwan0";
    /// The far end, in [`Plan::NS_ISP_LTE`] (the mobile operator's side).
    pub const ISP_DEV: &'static str = "wwan-isp";
    /// The router's address on it: what the server sees for flows through it.
    pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 2);
    pub const ISP_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 1);
    pub const PREFIX: &'static str = "100.64.1.0/24";
    /// Behind fiber (100) and lte (200) in the router's main table.
    pub const METRIC: u32 = 300;
}

/// The two tun devices, configured, and the threads that copy between them.
#[must_use = "the devices are removed when the link is dropped"]
pub struct TunLink {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TunLink {
    /// Creates and configures the link; the lab must be up. The router gets a default route
    /// `dev wwan0` behind the lab's others, and the internet a route back through lte's ISP.
    pub fn up() -> Result<Self> {
        let router = open_in(Plan::NS_ROUTER, RawIp::ROUTER_DEV)?;
        let isp = open_in(Plan::NS_ISP_LTE, RawIp::ISP_DEV)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (router2, isp2) = (router.try_clone()?, isp.try_clone()?);
        let threads = vec![
            spawn_copy("wwan0 -> isp", router, isp2, Arc::clone(&stop))?,
            spawn_copy("isp -> wwan0", isp, router2, Arc::clone(&stop))?,
        ];
        let link = Self { stop, threads };
        configure().context("configuring the raw-IP uplink")?;
        Ok(link)
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // The devices went with their descriptors; the internet's route back is ours too.
        let _ = Cmd::ip(Plan::NS_INET)
            .args(["route", "del", RawIp::PREFIX])
            .output();
    }
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _union_rest: [u8; 22],
}

/// A `tun` device called `name` in namespace `ns` (IP packets, no packet-info header).
fn open_in(ns: &str, name: &'static str) -> Result<File> {
    netns::in_netns(ns, || -> Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context("opening /dev/net/tun")?;
        let mut request = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: libc::c_short::try_from(libc::IFF_TUN | libc::IFF_NO_PI)?,
            _union_rest: [0; 22],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `request` is laid out as.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut request) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("TUNSETIFF");
        }
        Ok(file)
    })?
    .with_context(|| format!("creating tun device {name} in {ns}"))
}

/// Copies packets from `from` to `to` until `stop`; a packet the far end refuses (its
/// device down) is dropped, as a modem would.
fn spawn_copy(
    name: &str,
    mut from: File,
    mut to: File,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let mut poll = libc::pollfd {
                    fd: from.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd for a descriptor this thread owns.
                if unsafe { libc::poll(&raw mut poll, 1, POLL_MS) } <= 0 {
                    continue;
                }
                match from.read(&mut buf) {
                    Ok(n) if n > 0 => drop(to.write(&buf[..n])),
                    Ok(_) => {}
                    // A read while the device is down fails; wait for it to come back.
                    Err(_) => thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
        })
        .context("starting a tun copying thread")
}

fn configure() -> Result<()> {
    for (ns, dev, ip) in [
        (Plan::NS_ROUTER, RawIp::ROUTER_DEV, RawIp::ROUTER_IP),
        (Plan::NS_ISP_LTE, RawIp::ISP_DEV, RawIp::ISP_IP),
    ] {
        topology::address_up(ns, dev, ip)?;
    }
    // A modem's default route is a device route: no gateway to resolve.
    Cmd::ip(Plan::NS_ROUTER)
        .args(["route", "add", "default", "dev", RawIp::ROUTER_DEV])
        .args(["metric", &RawIp::METRIC.to_string()])
        .run()?;
    let lte_isp = Plan::LTE.upstream.ip().to_string();
    Cmd::ip(Plan::NS_INET)
        .args(["route", "add", RawIp::PREFIX, "via", &lte_isp])
        .args(["dev", Plan::LTE.inet_side.name])
        .args(["advmss", &(Plan::LINK_MTU - 40).to_string()])
        .run()?;
    Ok(())
}
