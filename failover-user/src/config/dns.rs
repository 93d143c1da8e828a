//! `[dns]`: the records kept pointed at the uplink that carries the services, by RFC 2136
//! updates signed with TSIG.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::PathBuf,
    time::Duration,
};

use serde::Deserialize;

/// The DNS port, when `server` names none.
const DNS_PORT: u16 = 53;

/// `[dns]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The zone's primary authoritative server, `"IP"` or `"IP:PORT"` (port 53).
    pub server: DnsServer,
    /// The zone the records are in (`"example.com"`).
    pub zone: String,
    /// The TSIG key the server accepts updates with: a file as `tsig-keygen` writes it
    /// (`key "NAME" { algorithm hmac-sha256; secret "BASE64"; };`) or one line
    /// `hmac-sha256:NAME:BASE64`.
    pub key_file: PathBuf,
    /// The names whose A record follows the uplink carrying new flows: its
    /// `public_address`, or its interface's address.
    pub records: Vec<String>,
    /// The records' TTL: how long resolvers may keep the old address after a switch.
    #[serde(default = "defaults::ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// An update unanswered after this long is sent again (with a growing pause between
    /// attempts, up to 30 s), until the server acknowledges it.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Where updates go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DnsServer(pub SocketAddrV4);

impl TryFrom<String> for DnsServer {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse::<SocketAddrV4>()
            .or_else(|_| {
                text.parse::<Ipv4Addr>()
                    .map(|ip| SocketAddrV4::new(ip, DNS_PORT))
            })
            .map(Self)
            .map_err(|_| format!("server `{text}` is not an IPv4 address, optionally with :PORT"))
    }
}

impl std::fmt::Display for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub mod defaults {
    use std::time::Duration;

    /// Short, so resolvers follow a switch soon: the site is back within `ttl` of the update.
    pub const TTL: Duration = Duration::from_secs(30);

    pub(super) fn ttl() -> Duration {
        TTL
    }

    pub(super) fn timeout() -> Duration {
        Duration::from_secs(2)
    }
}
