//! The addressing plan: every namespace, interface, address and MAC of the lab, spelled once.
//! Other code (the lab builder, tests, frame fixtures) reads names and addresses from here.
//!
//! MAC scheme: `02:f0:SS:00:00:HH`, locally administered unicast, where `SS` is the segment
//! (0x10 LAN, 0x20 fiber access, 0x21 fiber transit, 0x30 lte access, 0x31 lte transit) and
//! `HH` is the last octet of the interface's IPv4 address. Bridge ports carry no address and
//! use `02:f0:10:ff:00:HH` with `HH` of the interface at the other end of their veth.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A lab MAC, `02:f0:SS:00:00:HH` (see the module docs).
    const fn lab(segment: u8, host: u8) -> Self {
        Self([0x02, 0xf0, segment, 0x00, 0x00, host])
    }

    /// The MAC of a bridge port whose veth leads to the interface with last octet `host`.
    const fn lan_port(host: u8) -> Self {
        Self([0x02, 0xf0, 0x10, 0xff, 0x00, host])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ":" };
            write!(f, "{sep}{byte:02x}")?;
        }
        Ok(())
    }
}

/// An IPv4 address with its prefix length, e.g. `10.10.0.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    const fn new(a: u8, b: u8, c: u8, d: u8, len: u8) -> Self {
        Self {
            addr: Ipv4Addr::new(a, b, c, d),
            len,
        }
    }

    /// The network this address is in, e.g. `192.0.2.2/24` -> `192.0.2.0/24`.
    #[must_use]
    pub const fn network(self) -> Self {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        };
        Self {
            addr: Ipv4Addr::from_bits(self.addr.to_bits() & mask),
            len: self.len,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One network interface of the lab: where it lives, its name, MAC and (optional) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    pub ns: &'static str,
    pub name: &'static str,
    pub mac: Mac,
    pub addr: Option<Cidr>,
}

impl Iface {
    /// The interface's IPv4 address. Panics for the address-less bridge and bridge ports.
    #[must_use]
    pub const fn ip(&self) -> Ipv4Addr {
        match self.addr {
            Some(cidr) => cidr.addr,
            None => panic!("this lab interface has no IPv4 address"),
        }
    }
}

/// A veth pair: `a` is the "inner" end (router, host, ISP upstream), `b` its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VethPair {
    pub a: Iface,
    pub b: Iface,
    /// Turn GRO on at `b`: `XDP_REDIRECT` into `a` only delivers when `b` runs NAPI.
    pub gro_on_b: bool,
}

/// One ISP as seen from the router: the access link, the gateway and its transit link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uplink {
    pub isp: Isp,
    /// The ISP gateway's namespace.
    pub ns: &'static str,
    /// The router's uplink interface (`fiber` / `lte`).
    pub router: Iface,
    /// The gateway's customer-facing interface, the router's peer.
    pub gateway: Iface,
    /// The gateway's interface towards the internet namespace.
    pub upstream: Iface,
    /// The internet namespace's end of the transit link.
    pub inet_side: Iface,
    /// Metric of the router's default route through this ISP (lower wins).
    pub metric: u32,
}

/// The two ISPs the router is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isp {
    Fiber,
    Lte,
}

impl Isp {
    pub const ALL: [Self; 2] = [Self::Fiber, Self::Lte];

    /// The lowercase name used on the command line and as the router's interface name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fiber => "fiber",
            Self::Lte => "lte",
        }
    }

    /// Everything the lab knows about this ISP's link.
    #[must_use]
    pub const fn uplink(self) -> &'static Uplink {
        match self {
            Self::Fiber => &Plan::FIBER,
            Self::Lte => &Plan::LTE,
        }
    }

    /// The ISP whose router-side interface is called `dev`.
    #[must_use]
    pub fn from_router_dev(dev: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|isp| isp.uplink().router.name == dev)
    }
}

impl fmt::Display for Isp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isp {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|isp| isp.name() == s)
            .ok_or_else(|| ParseError(format!("unknown ISP `{s}` (valid: fiber, lte)")))
    }
}

/// A value on the command line (ISP, fault) that the lab does not know; says what is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// The namespaces, interfaces and addresses of the lab (see docs/lab.md for the diagram).
pub struct Plan;

impl Plan {
    /// Where the lab keeps its configs, logs, and the PIDs of the processes it started.
    pub const STATE_DIR: &'static str = "/run/failover-lab";
    /// Held (flock) by every [`LabGuard`](super::LabGuard): one lab per machine at a time.
    /// Outside the state directory, which `down` removes.
    pub const LOCK_FILE: &'static str = "/run/failover-lab.lock";
    /// Every namespace name starts with this; the lab never touches any other namespace.
    pub const NS_PREFIX: &'static str = "fo-";

    pub const NS_LAN: &'static str = "fo-lan";
    pub const NS_HOST1: &'static str = "fo-host1";
    pub const NS_HOST2: &'static str = "fo-host2";
    pub const NS_ROUTER: &'static str = "fo-router";
    pub const NS_ISP_FIBER: &'static str = "fo-isp-fiber";
    pub const NS_ISP_LTE: &'static str = "fo-isp-lte";
    pub const NS_INET: &'static str = "fo-inet";

    /// All namespaces, in creation order.
    pub const NAMESPACES: [&'static str; 7] = [
        Self::NS_LAN,
        Self::NS_HOST1,
        Self::NS_HOST2,
        Self::NS_ROUTER,
        Self::NS_ISP_FIBER,
        Self::NS_ISP_LTE,
        Self::NS_INET,
    ];
    /// Namespaces that forward IPv4 (`ip_forward=1`).
    pub const FORWARDING_NAMESPACES: [&'static str; 3] =
        [Self::NS_ROUTER, Self::NS_ISP_FIBER, Self::NS_ISP_LTE];

    /// The LAN switch: a bridge without an address.
    pub const BRIDGE: Iface = Iface {
        ns: Self::NS_LAN,
        name: "br0",
        mac: Mac::lan_port(0x00),
        addr: None,
    };

    pub const ROUTER_LAN: Iface = Iface {
        ns: Self::NS_ROUTER,
        name: "lan0",
        mac: Mac::lab(0x10, 1),
        addr: Some(Cidr::new(10, 10, 0, 1, 24)),
    };
    pub const HOST1: Iface = Iface {
        ns: Self::NS_HOST1,
        name: "eth0",
        mac: Mac::lab(0x10, 11),
        addr: Some(Cidr::new(10, 10, 0, 11, 24)),
    };
    pub const HOST2: Iface = Iface {
        ns: Self::NS_HOST2,
        name: "eth0",
        mac: Mac::lab(0x10, 12),
        addr: Some(Cidr::new(10, 10, 0, 12, 24)),
    };
    /// The LAN client hosts (default route via [`Plan::ROUTER_LAN`]).
    pub const HOSTS: [Iface; 2] = [Self::HOST1, Self::HOST2];

    /// Bridge ports, the peers of `lan0` and the hosts' `eth0`.
    pub const LAN_PORT_ROUTER: Iface = Iface {
        ns: Self::NS_LAN,
        name: "p-router",
        mac: Mac::lan_port(1),
        addr: None,
    };
    pub const LAN_PORT_HOST1: Iface = Iface {
        ns: Self::NS_LAN,
        name: "p-host1",
        mac: Mac::lan_port(11),
        addr: None,
    };
    pub const LAN_PORT_HOST2: Iface = Iface {
        ns: Self::NS_LAN,
        name: "p-host2",
        mac: Mac::lan_port(12),
        addr: None,
    };

    pub const FIBER: Uplink = Uplink {
        isp: Isp::Fiber,
        ns: Self::NS_ISP_FIBER,
        router: Iface {
            ns: Self::NS_ROUTER,
            name: "fiber",
            mac: Mac::lab(0x20, 2),
            addr: Some(Cidr::new(192, 0, 2, 2, 24)),
        },
        gateway: Iface {
            ns: Self::NS_ISP_FIBER,
            name: "cust",
            mac: Mac::lab(0x20, 1),
            addr: Some(Cidr::new(192, 0, 2, 1, 24)),
        },
        upstream: Iface {
            ns: Self::NS_ISP_FIBER,
            name: "upstream",
            mac: Mac::lab(0x21, 1),
            addr: Some(Cidr::new(198, 18, 1, 1, 24)),
        },
        inet_side: Iface {
            ns: Self::NS_INET,
            name: "isp-fiber",
            mac: Mac::lab(0x21, 2),
            addr: Some(Cidr::new(198, 18, 1, 2, 24)),
        },
        metric: 100,
    };
    pub const LTE: Uplink = Uplink {
        isp: Isp::Lte,
        ns: Self::NS_ISP_LTE,
        router: Iface {
            ns: Self::NS_ROUTER,
            name: "lte",
            mac: Mac::lab(0x30, 2),
            addr: Some(Cidr::new(100, 64, 0, 2, 24)),
        },
        gateway: Iface {
            ns: Self::NS_ISP_LTE,
            name: "cust",
            mac: Mac::lab(0x30, 1),
            addr: Some(Cidr::new(100, 64, 0, 1, 24)),
        },
        upstream: Iface {
            ns: Self::NS_ISP_LTE,
            name: "upstream",
            mac: Mac::lab(0x31, 1),
            addr: Some(Cidr::new(198, 18, 2, 1, 24)),
        },
        inet_side: Iface {
            ns: Self::NS_INET,
            name: "isp-lte",
            mac: Mac::lab(0x31, 2),
            addr: Some(Cidr::new(198, 18, 2, 2, 24)),
        },
        metric: 200,
    };

    /// Every veth pair of the lab, in creation order.
    pub const VETH_PAIRS: [VethPair; 7] = [
        VethPair {
            a: Self::ROUTER_LAN,
            b: Self::LAN_PORT_ROUTER,
            gro_on_b: true,
        },
        VethPair {
            a: Self::HOST1,
            b: Self::LAN_PORT_HOST1,
            gro_on_b: false,
        },
        VethPair {
            a: Self::HOST2,
            b: Self::LAN_PORT_HOST2,
            gro_on_b: false,
        },
        VethPair {
            a: Self::FIBER.router,
            b: Self::FIBER.gateway,
            gro_on_b: true,
        },
        VethPair {
            a: Self::LTE.router,
            b: Self::LTE.gateway,
            gro_on_b: true,
        },
        VethPair {
            a: Self::FIBER.upstream,
            b: Self::FIBER.inet_side,
            gro_on_b: false,
        },
        VethPair {
            a: Self::LTE.upstream,
            b: Self::LTE.inet_side,
            gro_on_b: false,
        },
    ];

    /// The MTU of every lab link when no `mtu=N` fault is active.
    pub const LINK_MTU: u16 = 1500;

    /// The internet server (HTTP, UDP echo, DNS, ICMP echo), on `lo` in [`Plan::NS_INET`].
    pub const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    /// Further addresses of the internet namespace that answer ping, for health probes.
    pub const FAR_TARGETS: [Ipv4Addr; 2] = [
        Ipv4Addr::new(203, 0, 113, 20),
        Ipv4Addr::new(203, 0, 113, 30),
    ];
    pub const HTTP_PORT: u16 = 80;
    pub const UDP_ECHO_PORT: u16 = 7;
    pub const DNS_PORT: u16 = 53;
    /// The one name the lab's DNS server knows (the health probes' default `dns_name`)...
    pub const DNS_NAME: &'static str = "example.com";
    /// ...and its A record.
    pub const DNS_ANSWER: Ipv4Addr = Self::SERVER;
    /// The served file of known SHA-256 (see `lab::BLOB_SHA256`).
    pub const BLOB_PATH: &'static str = "/blob.bin";
    /// Answers with the client's source address as the server sees it, plus a newline.
    pub const WHOAMI_PATH: &'static str = "/whoami";

    /// `http://203.0.113.10/blob.bin`
    #[must_use]
    pub fn blob_url() -> String {
        format!("http://{}{}", Self::SERVER, Self::BLOB_PATH)
    }

    /// `http://203.0.113.10/whoami`
    #[must_use]
    pub fn whoami_url() -> String {
        format!("http://{}{}", Self::SERVER, Self::WHOAMI_PATH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isp_round_trips_and_rejects_unknown_names() {
        for isp in Isp::ALL {
            assert_eq!(isp.to_string().parse::<Isp>(), Ok(isp));
        }
        let err = "dsl".parse::<Isp>().unwrap_err().to_string();
        assert!(err.contains("dsl") && err.contains("fiber, lte"), "{err}");
    }

    #[test]
    fn addresses_and_macs_follow_the_plan() {
        assert_eq!(
            Plan::FIBER.router.addr.unwrap().network().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(Plan::LTE.gateway.ip(), Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(Plan::HOST1.mac.to_string(), "02:f0:10:00:00:0b");
        assert_eq!(Isp::from_router_dev("lte"), Some(Isp::Lte));
        assert_eq!(Plan::whoami_url(), "http://203.0.113.10/whoami");
    }

    #[test]
    fn every_interface_name_fits_the_kernel_limit_and_macs_are_unique() {
        let mut macs = vec![Plan::BRIDGE.mac];
        for pair in Plan::VETH_PAIRS {
            for end in [pair.a, pair.b] {
                assert!(end.name.len() < 16, "{} too long", end.name);
                macs.push(end.mac);
            }
        }
        let count = macs.len();
        macs.sort_by_key(|m| m.0);
        macs.dedup();
        assert_eq!(macs.len(), count, "duplicate MAC in the plan");
    }
}
