//! One LAN host opening new flows as fast as it can (a port scan, a torrent client, a
//! compromised camera) while other hosts go on: the scenario behind the per-host limits'
//! end-to-end test and `cargo xtask bench flood`. The flood is raw IPv4/UDP, each packet a
//! new (source port, destination port) pair, sent to the lab's server only.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    http::KeepAlive,
    lab::{BLOB_SHA256, Cmd, Plan},
    netns,
    stream::EchoStream,
};

/// What the flooder sent.
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    pub flows: u32,
    pub elapsed: Duration,
}

impl FloodReport {
    /// New flows per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
        f64::from(self.flows) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Source and destination port of flood packet `i`: the first `new_ports` each from a new
/// source port (as many external ports asked for), the rest from a few source ports to new
/// destination ports (as many flows, few ports). No pair repeats.
#[must_use]
pub fn flood_ports(i: u32, new_ports: u32) -> (u16, u16) {
    const SOURCES: u32 = 64_000;
    const DESTINATIONS: u32 = 60_000;
    let port = |n: u32| u16::try_from(n).expect("ports fit 16 bits");
    if i < new_ports {
        (port(1024 + i % SOURCES), port(9 + i / SOURCES))
    } else {
        let j = i - new_ports;
        (
            port(20_000 + j / DESTINATIONS),
            port(1000 + j % DESTINATIONS),
        )
    }
}

/// Sends `flows` UDP packets from `src` (an address of a LAN host in namespace `ns`) to the
/// lab's server, each opening a new flow (see [`flood_ports`]), as fast as the socket takes
/// them.
pub fn udp_flood(ns: &str, src: Ipv4Addr, flows: u32, new_ports: u32) -> Result<FloodReport> {
    let socket = netns::in_netns(ns, raw_socket)??;
    let dst = Plan::SERVER;
    // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::sa_family_t::try_from(libc::AF_INET)?;
    to.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    let start = Instant::now();
    for i in 0..flows {
        let (sport, dport) = flood_ports(i, new_ports);
        let packet = udp_packet(src, dst, sport, dport);
        loop {
            // SAFETY: a valid socket, buffer and address of the lengths given.
            let sent = unsafe {
                libc::sendto(
                    socket.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&raw const to).cast(),
                    libc::socklen_t::try_from(size_of::<libc::sockaddr_in>())?,
                )
            };
            if sent >= 0 {
                break;
            }
            let error = std::io::Error::last_os_error();
            // A full device queue: wait for it rather than skip the flow.
            if error.raw_os_error() == Some(libc::ENOBUFS) {
                thread::yield_now();
                continue;
            }
            return Err(error).context("sending the flood");
        }
    }
    Ok(FloodReport {
        flows,
        elapsed: start.elapsed(),
    })
}

/// A raw IPv4 socket whose packets carry their own header (`IPPROTO_RAW`).
fn raw_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket creation; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a raw socket");
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An IPv4/UDP packet (the kernel fills in the IPv4 length, identification and checksum;
/// UDP's checksum 0 means none).
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> [u8; 36] {
    let mut p = [0u8; 36];
    p[0] = 0x45;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&16u16.to_be_bytes());
    p[28..36].copy_from_slice(b"flooding");
    p
}

/// An extra address on a host's interface, removed when dropped: a third LAN host sharing
/// a namespace.
pub struct ExtraAddress {
    ns: &'static str,
    iface: &'static str,
    cidr: String,
}

impl ExtraAddress {
    pub fn add(ns: &'static str, iface: &'static str, addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        let cidr = format!("{addr}/{prefix}");
        let _ = Cmd::in_ns(ns, "ip")
            .args(["addr", "del", &cidr, "dev", iface])
            .output();
        Cmd::in_ns(ns, "ip")
            .args(["addr", "add", &cidr, "dev", iface])
            .run()?;
        Ok(Self { ns, iface, cidr })
    }
}

impl Drop for ExtraAddress {
    fn drop(&mut self) {
        let _ = Cmd::in_ns(self.ns, "ip")
            .args(["addr", "del", &self.cidr, "dev", self.iface])
            .output();
    }
}

/// New UDP flows of a LAN host (address `from` in `ns`): each from a new socket, answered by
/// the server's echo within `within`, or not.
pub struct NewFlows {
    pub tried: u32,
    pub answered: u32,
    pub slowest: Duration,
}

impl NewFlows {
    /// Opens one new flow and waits for its echo.
    pub fn try_one(&mut self, ns: &str, from: Ipv4Addr, within: Duration) -> Result<()> {
        let socket = netns::in_netns(ns, || UdpSocket::bind((from, 0)))?
            .with_context(|| format!("binding a UDP socket to {from}"))?;
        socket.set_read_timeout(Some(within))?;
        let server = SocketAddr::from((Plan::SERVER, Plan::UDP_ECHO_PORT));
        let start = Instant::now();
        self.tried += 1;
        socket.send_to(b"a new flow", server)?;
        let mut buf = [0; 64];
        if socket.recv_from(&mut buf).is_ok() {
            self.answered += 1;
            self.slowest = self.slowest.max(start.elapsed());
        }
        Ok(())
    }
}

/// What the other hosts saw while one host flooded.
pub struct Outcome {
    pub flood: FloodReport,
    /// The bystander's UDP echo stream: its longest silence, datagrams sent and echoed.
    pub stream_gap: Duration,
    pub stream_sent: u64,
    pub stream_echoed: usize,
    /// The bystander's long TCP download: whole and intact.
    pub download_intact: bool,
    pub download_error: Option<String>,
    /// New flows of the third host during and after the flood.
    pub third: NewFlows,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flood: {} flows in {:.2} s ({:.0}/s); bystander: longest silence {} ms, {}/{} echoed, download intact {}; third host: {}/{} new flows answered, slowest {} ms",
            self.flood.flows,
            self.flood.elapsed.as_secs_f64(),
            self.flood.rate(),
            self.stream_gap.as_millis(),
            self.stream_echoed,
            self.stream_sent,
            self.download_intact,
            self.third.answered,
            self.third.tried,
            self.third.slowest.as_millis(),
        )
    }
}

/// The LAN side of the scenario, with the lab up and a controller running: `bystander`
/// (namespace of a LAN host) keeps a UDP echo stream and a 1 MiB download at 128 KiB/s
/// going, `flooder` (its namespace and address) sends `flows` new flows, the first
/// `new_ports` from new source ports, and `third` (an address in the bystander's
/// namespace) opens new flows throughout.
pub fn run(
    bystander: &'static str,
    flooder: (&'static str, Ipv4Addr),
    third: Ipv4Addr,
    flows: u32,
    new_ports: u32,
) -> Result<Outcome> {
    const NEW_FLOW_WITHIN: Duration = Duration::from_secs(1);
    let mut stream = EchoStream::start(bystander)?;
    stream.wait_flowing(Duration::from_secs(5))?;
    let mut download = KeepAlive::open(bystander)?;
    let downloading = thread::spawn(move || download.download_blob(128 << 10));
    thread::sleep(Duration::from_secs(1));
    let (ns, src) = flooder;
    let flooding = thread::spawn(move || udp_flood(ns, src, flows, new_ports));
    let mut new_flows = NewFlows {
        tried: 0,
        answered: 0,
        slowest: Duration::ZERO,
    };
    while !flooding.is_finished() {
        new_flows.try_one(bystander, third, NEW_FLOW_WITHIN)?;
        thread::sleep(Duration::from_millis(50));
    }
    let flood = match flooding.join() {
        Ok(report) => report?,
        Err(_) => bail!("the flood thread panicked"),
    };
    for _ in 0..10 {
        new_flows.try_one(bystander, third, NEW_FLOW_WITHIN)?;
    }
    let (download_intact, download_error) = match downloading.join() {
        Ok(Ok(sha)) => (sha == BLOB_SHA256, None),
        Ok(Err(e)) => (false, Some(format!("{e:#}"))),
        Err(_) => (false, Some("the download thread panicked".to_owned())),
    };
    stream.stop();
    let (stream_sent, stream_echoed) = stream.counts();
    Ok(Outcome {
        flood,
        stream_gap: stream.largest_gap(),
        stream_sent,
        stream_echoed,
        download_intact,
        download_error,
        third: new_flows,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn flood_pairs_never_repeat_and_new_ports_come_first() {
        let (flows, new_ports) = (300_000, 150_000);
        let pairs: HashSet<(u16, u16)> = (0..flows).map(|i| flood_ports(i, new_ports)).collect();
        assert_eq!(pairs.len(), flows as usize);
        let sources: HashSet<u16> = (0..new_ports)
            .map(|i| flood_ports(i, new_ports).0)
            .collect();
        assert_eq!(sources.len(), 64_000);
        let later: HashSet<u16> = (new_ports..flows)
            .map(|i| flood_ports(i, new_ports).0)
            .collect();
        assert_eq!(later.len(), 3, "few source ports for the rest");
    }
}
