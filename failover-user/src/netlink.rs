//! What the controller reads from the kernel over netlink (rtnetlink): interfaces, their
//! IPv4 addresses, gateways from the routing table, and neighbour (ARP) entries; and what it
//! writes: the per-uplink routing tables and rules of the probes.

use std::net::Ipv4Addr;

use futures_util::stream::TryStreamExt as _;
use netlink_packet_route::{
    address::AddressAttribute,
    link::{LinkAttribute, LinkLayerType},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope},
    rule::{RuleAction, RuleAttribute},
};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder, RuleAddRequest};

/// Errors talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    #[error("netlink: {0}")]
    Request(#[from] rtnetlink::Error),
    #[error("no interface named `{0}`")]
    NoSuchInterface(String),
}

/// An interface as the data plane needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: [u8; 6],
    /// The interface is administratively up and has a carrier.
    pub carrier: bool,
    /// Its frames carry an Ethernet header (`ARPHRD_ETHER`); tun, WireGuard, ppp and raw-IP
    /// modems carry bare IP and have neither MACs nor ARP.
    pub ethernet: bool,
}

/// A netlink connection, driven by a task on the current tokio runtime.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's network namespace.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub async fn link(&self, name: &str) -> Result<Link, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let message = match links.try_next().await {
            Ok(Some(message)) => message,
            // The kernel answers ENODEV for an unknown name.
            Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => {
                return Err(NetlinkError::NoSuchInterface(name.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut link = Link {
            index: message.header.index,
            mac: [0; 6],
            carrier: false,
            ethernet: message.header.link_layer_type == LinkLayerType::Ether,
        };
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                    link.mac.copy_from_slice(&bytes);
                }
                LinkAttribute::Carrier(carrier) => link.carrier = carrier != 0,
                _ => {}
            }
        }
        Ok(link)
    }

    /// The first IPv4 address of interface `index`, with its prefix length.
    pub async fn ipv4(&self, index: u32) -> Result<Option<(Ipv4Addr, u8)>, NetlinkError> {
        let mut addresses = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(message) = addresses.try_next().await? {
            for attribute in &message.attributes {
                if let AddressAttribute::Address(std::net::IpAddr::V4(addr)) = attribute {
                    return Ok(Some((*addr, message.header.prefix_len)));
                }
            }
        }
        Ok(None)
    }

    /// The gateway of a route through interface `index` (the default route's, if there is one).
    pub async fn gateway_on(&self, index: u32) -> Result<Option<Ipv4Addr>, NetlinkError> {
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut best: Option<(u8, Ipv4Addr)> = None;
        while let Some(route) = routes.try_next().await? {
            let mut oif = None;
            let mut gateway = None;
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                    _ => {}
                }
            }
            let prefix = route.header.destination_prefix_length;
            if let (Some(i), Some(g)) = (oif, gateway)
                && i == index
                && best.is_none_or(|(p, _)| prefix < p)
            {
                best = Some((prefix, g));
            }
        }
        Ok(best.map(|(_, g)| g))
    }

    /// The MAC of neighbour `ip` on interface `index`, if the kernel has resolved it.
    pub async fn neighbour_mac(
        &self,
        index: u32,
        ip: Ipv4Addr,
    ) -> Result<Option<[u8; 6]>, NetlinkError> {
        let mut neighbours = self.handle.neighbours().get().execute();
        while let Some(message) = neighbours.try_next().await? {
            if message.header.ifindex != index
                || matches!(
                    message.header.state,
                    NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::None
                )
            {
                continue;
            }
            let mut destination = None;
            let mut mac = None;
            for attribute in &message.attributes {
                match attribute {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => {
                        destination = Some(*d);
                    }
                    NeighbourAttribute::LinkLayerAddress(bytes) if bytes.len() == 6 => {
                        mac = Some([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]]);
                    }
                    _ => {}
                }
            }
            if destination == Some(ip) && mac.is_some() {
                return Ok(mac);
            }
        }
        Ok(None)
    }

    /// Sets the default route of routing table `table`: via `gateway` (or, on a
    /// point-to-point link without one, straight) out of interface `oif`, with `source` as
    /// the preferred source of the router's own packets.
    pub async fn replace_default_route(
        &self,
        table: u32,
        oif: u32,
        gateway: Option<Ipv4Addr>,
        source: Ipv4Addr,
    ) -> Result<(), NetlinkError> {
        let builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .table_id(table)
            .output_interface(oif)
            .pref_source(source);
        let route = match gateway {
            Some(gateway) => builder.gateway(gateway),
            None => builder.scope(RouteScope::Link),
        }
        .build();
        self.handle.route().add(route).replace().execute().await?;
        Ok(())
    }

    /// Deletes every IPv4 route of routing table `table`.
    pub async fn flush_table(&self, table: u32) -> Result<(), NetlinkError> {
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        // Collected first: deleting while the dump is still being read may skip entries.
        let mut doomed = Vec::new();
        while let Some(route) = routes.try_next().await? {
            if route_table(&route) == table {
                doomed.push(route);
            }
        }
        for route in doomed {
            self.handle.route().del(route).execute().await?;
        }
        Ok(())
    }

    /// Adds the rule `from SOURCE/32 lookup TABLE` at `priority`.
    pub async fn add_source_rule(
        &self,
        source: Ipv4Addr,
        table: u32,
        priority: u32,
    ) -> Result<(), NetlinkError> {
        self.lookup_rule(table, priority)
            .source_prefix(source, 32)
            .execute()
            .await?;
        Ok(())
    }

    /// Adds the rule `fwmark MARK lookup TABLE` at `priority`.
    pub async fn add_mark_rule(
        &self,
        mark: u32,
        table: u32,
        priority: u32,
    ) -> Result<(), NetlinkError> {
        self.lookup_rule(table, priority)
            .fw_mark(mark)
            .execute()
            .await?;
        Ok(())
    }

    /// An IPv4 rule `lookup TABLE` at `priority`, its selector still to add.
    fn lookup_rule(&self, table: u32, priority: u32) -> RuleAddRequest<Ipv4Addr> {
        self.handle
            .rule()
            .add()
            .v4()
            .table_id(table)
            .priority(priority)
            .action(RuleAction::ToTable)
    }

    /// Deletes every IPv4 rule at `priority` or looking up `table`.
    pub async fn delete_rules(&self, priority: u32, table: u32) -> Result<(), NetlinkError> {
        let mut rules = self.handle.rule().get(IpVersion::V4).execute();
        let mut doomed = Vec::new();
        while let Some(rule) = rules.try_next().await? {
            let mut rule_table = u32::from(rule.header.table);
            let mut rule_priority = 0;
            for attribute in &rule.attributes {
                match attribute {
                    RuleAttribute::Table(t) => rule_table = *t,
                    RuleAttribute::Priority(p) => rule_priority = *p,
                    _ => {}
                }
            }
            if rule_priority == priority || rule_table == table {
                doomed.push(rule);
            }
        }
        for rule in doomed {
            self.handle.rule().del(rule).execute().await?;
        }
        Ok(())
    }
}

/// A change the kernel announced that may concern an uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A link's state; `carrier` when the message says.
    Link { index: u32, carrier: Option<bool> },
    /// An IPv4 address added or removed on an interface.
    Address { index: u32 },
    /// A neighbour (ARP) entry on an interface changed.
    Neighbour { index: u32 },
    /// An IPv4 route changed (a learned gateway may have moved).
    Route,
}

/// The kernel's announcements of link, address, neighbour and route changes, as they happen
/// (the way `ip monitor` gets them). The stream ends only if the kernel closes the socket.
pub fn watch() -> Result<impl futures_util::Stream<Item = Change>, NetlinkError> {
    use futures_util::StreamExt as _;
    use netlink_packet_route::RouteNetlinkMessage as M;
    use rtnetlink::MulticastGroup as G;
    use rtnetlink::packet_core::NetlinkPayload;

    let (connection, _, messages) =
        rtnetlink::new_multicast_connection(&[G::Link, G::Ipv4Ifaddr, G::Neigh, G::Ipv4Route])?;
    tokio::spawn(connection);
    Ok(messages.filter_map(|(message, _)| {
        let change = match message.payload {
            NetlinkPayload::InnerMessage(M::NewLink(link) | M::DelLink(link)) => {
                let carrier = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Carrier(c) => Some(*c != 0),
                    _ => None,
                });
                Some(Change::Link {
                    index: link.header.index,
                    carrier,
                })
            }
            NetlinkPayload::InnerMessage(M::NewAddress(a) | M::DelAddress(a)) => {
                Some(Change::Address {
                    index: a.header.index,
                })
            }
            NetlinkPayload::InnerMessage(M::NewNeighbour(n) | M::DelNeighbour(n)) => {
                Some(Change::Neighbour {
                    index: n.header.ifindex,
                })
            }
            NetlinkPayload::InnerMessage(M::NewRoute(_) | M::DelRoute(_)) => Some(Change::Route),
            _ => None,
        };
        std::future::ready(change)
    }))
}

/// The table of a dumped route: the attribute when present (it is for tables above 255).
fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}
