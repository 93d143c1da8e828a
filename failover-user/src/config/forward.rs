//! `[[forward]]`: a port of the uplinks' addresses that leads to a LAN host (a web or mail
//! server), and what the data plane's forward table holds for it.

use std::net::Ipv4Addr;

use failover_common::classify::ip_proto;
use serde::Deserialize;

/// One `[[forward]]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// A short name for the logs (`web`, `mail`).
    pub name: String,
    /// `"tcp"` (default), `"udp"` or `"both"`.
    #[serde(default)]
    pub proto: ForwardProto,
    /// The port on the uplinks' addresses: a number or a range `"8000-8010"`.
    pub port: PortSpan,
    /// The LAN host, `"IP"` or `"IP:PORT"`; without a port, the same port(s) as `port`. With a
    /// range, `PORT` is where the range starts on the host.
    pub to: ForwardTo,
    /// The uplinks whose addresses answer on `port`; default: every uplink.
    pub uplinks: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardProto {
    #[default]
    Tcp,
    Udp,
    Both,
}

impl ForwardProto {
    /// The IP protocol numbers it covers.
    #[must_use]
    pub fn protocols(self) -> &'static [u8] {
        match self {
            Self::Tcp => &[ip_proto::TCP],
            Self::Udp => &[ip_proto::UDP],
            Self::Both => &[ip_proto::TCP, ip_proto::UDP],
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Both => "tcp+udp",
        }
    }
}

/// An inclusive range of ports, written `80` or `"8000-8010"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PortValue")]
pub struct PortSpan {
    pub first: u16,
    pub last: u16,
}

impl PortSpan {
    /// How many ports it holds (at least one).
    #[must_use]
    pub fn count(self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    /// Whether it shares a port with `other`.
    #[must_use]
    pub fn overlaps(self, other: PortSpan) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl std::fmt::Display for PortSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// What a `port` may be written as.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(i64),
    Text(String),
}

impl TryFrom<PortValue> for PortSpan {
    type Error = String;

    fn try_from(value: PortValue) -> Result<Self, Self::Error> {
        let port = |n: i64| {
            u16::try_from(n)
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("port {n} is not a port number (1-65535)"))
        };
        match value {
            PortValue::Number(n) => port(n).map(|p| Self { first: p, last: p }),
            PortValue::Text(text) => {
                let number = |part: &str| {
                    part.trim()
                        .parse::<i64>()
                        .map_err(|_| {
                            format!("port `{text}` is not a number or a range `FIRST-LAST`")
                        })
                        .and_then(port)
                };
                let (first, last) = if let Some((first, last)) = text.split_once('-') {
                    (number(first)?, number(last)?)
                } else {
                    let p = number(&text)?;
                    (p, p)
                };
                if first > last {
                    return Err(format!("port range `{text}` ends before it starts"));
                }
                Ok(Self { first, last })
            }
        }
    }
}

/// A forward's LAN end, written `"IP"` or `"IP:PORT"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ForwardTo {
    pub addr: Ipv4Addr,
    pub port: Option<u16>,
}

impl TryFrom<String> for ForwardTo {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let bad =
            || format!("`to = \"{text}\"` is not a LAN host's IPv4 address, optionally with :PORT");
        let (addr, port) = match text.split_once(':') {
            Some((addr, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(bad)?;
                (addr, Some(port))
            }
            None => (text.as_str(), None),
        };
        Ok(Self {
            addr: addr.parse().map_err(|_| bad())?,
            port,
        })
    }
}

impl std::fmt::Display for ForwardTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// One entry of the data plane's forward table: a port of one uplink, for one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ForwardEntry {
    /// The uplink's index in the config (its slot in the data plane).
    pub uplink: usize,
    pub proto: u8,
    pub port: u16,
    pub lan_addr: Ipv4Addr,
    pub lan_port: u16,
}

impl ForwardConfig {
    /// The uplinks it covers, as indices into `uplink_names`; names that are not uplinks
    /// are left out (validation refuses them).
    #[must_use]
    pub fn uplink_indices(&self, uplink_names: &[&str]) -> Vec<usize> {
        match &self.uplinks {
            None => (0..uplink_names.len()).collect(),
            Some(names) => names
                .iter()
                .filter_map(|name| uplink_names.iter().position(|u| u == name))
                .collect(),
        }
    }

    /// The first LAN port; the range continues from it.
    #[must_use]
    pub fn lan_first_port(&self) -> u16 {
        self.to.port.unwrap_or(self.port.first)
    }
}

/// Every entry of the forward table for `forwards` on the uplinks named `uplink_names`.
#[must_use]
pub fn entries(forwards: &[ForwardConfig], uplink_names: &[&str]) -> Vec<ForwardEntry> {
    let mut out = Vec::new();
    for forward in forwards {
        for uplink in forward.uplink_indices(uplink_names) {
            for &proto in forward.proto.protocols() {
                for offset in 0..forward.port.count() {
                    let Ok(offset) = u16::try_from(offset) else {
                        continue;
                    };
                    out.push(ForwardEntry {
                        uplink,
                        proto,
                        port: forward.port.first + offset,
                        lan_addr: forward.to.addr,
                        lan_port: forward.lan_first_port().saturating_add(offset),
                    });
                }
            }
        }
    }
    out
}

/// Why the world cannot open a connection to `addr`, if it cannot: addresses the ISP does
/// not route to the router from the internet (carrier-grade NAT, private ranges).
#[must_use]
pub fn unreachable_from_internet(addr: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = addr.octets();
    if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT space (100.64.0.0/10)")
    } else if addr.is_private() {
        Some("a private range (RFC 1918)")
    } else if addr.is_link_local() {
        Some("link-local")
    } else {
        None
    }
}

/// What `check-config` warns about `subject` (a forward, the `[dns]` records) on uplink
/// `uplink` whose address the world would reach it at is `addr` (`public`: the uplink's
/// `public_address`, else the interface's): nothing when the internet can open connections
/// to it.
#[must_use]
pub fn reachability_warning(
    subject: &str,
    uplink: &str,
    addr: Ipv4Addr,
    public: bool,
) -> Option<String> {
    let why = unreachable_from_internet(addr)?;
    let whose = if public {
        "its public_address"
    } else {
        "its address"
    };
    Some(format!(
        "warning: {subject} on uplink `{uplink}`: {whose} {addr} is {why}; no one on the \
         internet can open a connection to it. Behind carrier-grade NAT, use a tunnel uplink to a \
         host with a public address that forwards the ports into it, and set that uplink's \
         `public_address` (README, \"Behind carrier-grade NAT\")"
    ))
}
