//! Health probes that leave through the uplink they test: every socket is bound to the
//! uplink's interface (`SO_BINDTODEVICE`) and source address, so the answer proves that
//! uplink works whatever the main routing table currently prefers. [`routing`] adds the
//! per-uplink table and rule that let bound probes reach beyond the gateway.
//!
//! One function per kind (`arp`, `icmp`, `tcp`, `dns`, `http`), each returning the round-trip
//! time, and [`run_probe`] to run any of them with the configured timeout.

pub mod arp;
pub mod dns;
pub mod http;
pub mod icmp;
pub mod routing;
pub mod tcp;

use std::{
    future::Future,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::{
    config::{HealthConfig, Target},
    netlink::{Netlink, NetlinkError},
};

/// Everything a probe needs to know about the uplink it goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePath {
    /// The uplink's name (`fiber`), for messages.
    pub uplink: String,
    /// Its network interface (`eth1`).
    pub interface: String,
    pub ifindex: u32,
    /// The uplink's own IPv4 address: the source of every probe.
    pub source: Ipv4Addr,
    /// The interface's MAC (the sender of ARP requests); zero on a headerless link.
    pub mac: [u8; 6],
    /// The ISP gateway. A headerless link (tun, WireGuard, ppp, a raw-IP modem) may have
    /// none: its packets need no next hop's MAC, and only far targets are probed on it.
    pub gateway: Option<Ipv4Addr>,
    /// The link carries Ethernet frames (ARP and MACs apply).
    pub ethernet: bool,
}

impl ProbePath {
    /// Reads the path of uplink `uplink` on `interface` from the kernel: index, MAC, first
    /// IPv4 address and, unless `gateway` is given (the config's), the gateway of a route
    /// through the interface, which an Ethernet uplink must have.
    pub async fn discover(
        netlink: &Netlink,
        uplink: &str,
        interface: &str,
        gateway: Option<Ipv4Addr>,
    ) -> Result<Self, PathError> {
        let link = netlink.link(interface).await?;
        let (source, _) = netlink
            .ipv4(link.index)
            .await?
            .ok_or_else(|| PathError::NoAddress(interface.to_owned()))?;
        let gateway = match gateway {
            Some(gateway) => Some(gateway),
            None => netlink.gateway_on(link.index).await?,
        };
        if gateway.is_none() && link.ethernet {
            return Err(PathError::NoGateway(interface.to_owned()));
        }
        Ok(Self {
            uplink: uplink.to_owned(),
            interface: interface.to_owned(),
            ifindex: link.index,
            source,
            mac: link.mac,
            gateway,
            ethernet: link.ethernet,
        })
    }
}

/// Why an uplink's [`ProbePath`] cannot be known (yet).
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("{0} has no IPv4 address")]
    NoAddress(String),
    #[error("no route through {0} names a gateway; set `gateway` in its [[uplink]]")]
    NoGateway(String),
}

/// What to probe through an uplink.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// An ARP request for the gateway: proves layer 2 up to the gateway.
    GatewayArp,
    /// An ICMP echo to the gateway: proves its IP stack answers.
    GatewayIcmp,
    /// A far target: proves the ISP forwards.
    Far(Target),
}

impl ProbeKind {
    /// Whether this probe means anything on `path`: ARP needs an Ethernet link and a
    /// gateway, the gateway's echo a gateway. Far targets apply everywhere.
    #[must_use]
    pub fn applies_to(&self, path: &ProbePath) -> bool {
        match self {
            Self::GatewayArp => path.ethernet && path.gateway.is_some(),
            Self::GatewayIcmp => path.gateway.is_some(),
            Self::Far(_) => true,
        }
    }

    /// The kind alone, as a metrics label: `gateway_arp`, `gateway_icmp`, or the far target's
    /// kind (`icmp`, `tcp`, `dns`, `http`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::GatewayArp => "gateway_arp",
            Self::GatewayIcmp => "gateway_icmp",
            Self::Far(Target::Icmp(_)) => "icmp",
            Self::Far(Target::Tcp(_)) => "tcp",
            Self::Far(Target::Dns(_)) => "dns",
            Self::Far(Target::Http { .. }) => "http",
        }
    }
}

/// `gateway arp`, `gateway icmp`, or the far target as written in the config.
impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GatewayArp => f.write_str("gateway arp"),
            Self::GatewayIcmp => f.write_str("gateway icmp"),
            Self::Far(target) => target.fmt(f),
        }
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the answer arrived on {got}, but the probe went out on {expected}")]
    WrongPath { expected: PathEnd, got: PathEnd },
    #[error("connection refused")]
    Refused,
    #[error("the uplink has no gateway to probe")]
    NoGateway,
    #[error("unreachable: {0}")]
    Unreachable(io::Error),
    #[error("malformed answer: {0}")]
    BadReply(String),
    #[error("cannot build the probe: {0}")]
    Invalid(String),
    #[error(transparent)]
    Io(io::Error),
}

/// One side of a [`ProbeError::WrongPath`]: where an answer arrived, or where it should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathEnd {
    /// Interface index.
    Interface(u32),
    /// Local address of a connection.
    Source(IpAddr),
}

impl std::fmt::Display for PathEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Interface(index) => write!(f, "interface #{index}"),
            Self::Source(addr) => write!(f, "local address {addr}"),
        }
    }
}

impl From<io::Error> for ProbeError {
    /// Sorts out the errors the health logic treats differently from a broken socket.
    fn from(error: io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::ECONNREFUSED) => Self::Refused,
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => Self::Unreachable(error),
            _ => match error.kind() {
                io::ErrorKind::ConnectionRefused => Self::Refused,
                _ => Self::Io(error),
            },
        }
    }
}

/// Runs one probe through `path`, bounded by `cfg.timeout`; returns its round-trip time.
pub async fn run_probe(
    path: &ProbePath,
    probe: &ProbeKind,
    cfg: &HealthConfig,
) -> Result<Duration, ProbeError> {
    let timeout = cfg.timeout;
    match probe {
        ProbeKind::GatewayArp => arp::probe(path, timeout).await,
        ProbeKind::GatewayIcmp => match path.gateway {
            Some(gateway) => icmp::probe(path, gateway, timeout).await,
            None => Err(ProbeError::NoGateway),
        },
        ProbeKind::Far(Target::Icmp(ip)) => icmp::probe(path, *ip, timeout).await,
        ProbeKind::Far(Target::Tcp(addr)) => tcp::probe(path, *addr, timeout).await,
        ProbeKind::Far(Target::Dns(ip)) => dns::probe(path, *ip, &cfg.dns_name, timeout).await,
        ProbeKind::Far(Target::Http { addr, path: page }) => {
            http::probe(path, *addr, page, timeout).await
        }
    }
}

/// `probe` with a deadline: [`ProbeError::Timeout`] when it takes longer than `timeout`.
pub(crate) async fn within<T>(
    timeout: Duration,
    probe: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or(Err(ProbeError::Timeout(timeout)))
}

/// A non-blocking IPv4 socket bound to the uplink's interface and source address (port
/// chosen by the kernel), the start of every IP probe.
pub(crate) fn bound_socket(path: &ProbePath, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, ty, Some(protocol))?;
    socket.set_nonblocking(true)?;
    socket.bind_device(Some(path.interface.as_bytes()))?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(path.source, 0)).into())?;
    Ok(socket)
}

/// `socket` registered with the current tokio runtime, for probes tokio has no type for.
fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: the AsyncFd owns the Socket, which owns its fd and closes it only on drop.
    Ok(unsafe { AsyncFd::register(socket) }?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_what_health_logic_distinguishes() {
        let os = io::Error::from_raw_os_error;
        assert!(matches!(
            ProbeError::from(os(libc::ECONNREFUSED)),
            ProbeError::Refused
        ));
        assert!(matches!(
            ProbeError::from(os(libc::EHOSTUNREACH)),
            ProbeError::Unreachable(_)
        ));
        assert!(matches!(
            ProbeError::from(os(libc::EPERM)),
            ProbeError::Io(_)
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_probe_times_out() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Duration::ZERO)
        };
        let result = within(Duration::from_millis(10), slow).await;
        assert!(
            matches!(result, Err(ProbeError::Timeout(t)) if t == Duration::from_millis(10)),
            "{result:?}"
        );
    }
}
