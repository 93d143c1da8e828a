//! Hairpin NAT: a LAN host that connects to an uplink's address and a forwarded port
//! reaches the LAN server, as a client on the internet would. The data plane leaves packets
//! for the router's own addresses to the kernel; this nftables table (`ip
//! failover_hairpin`) translates them there:
//!
//! * `reflect_dnat` (nat, prerouting, dstnat): from the LAN interface to an uplink's address
//!   and a forwarded port, to the forward's host and port;
//! * `reflect_snat` (nat, postrouting, srcnat): what the router forwards from the LAN back
//!   into the LAN is masqueraded to the router's LAN address, so the server answers through
//!   the router and conntrack undoes both translations.
//!
//! The table follows the forwards and the uplinks' addresses: replaced atomically whenever
//! they change, removed when there is no forward or the data plane is detached.

use std::net::Ipv4Addr;

use failover_common::names;
use netlink_packet_core::{DefaultNla, NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_netfilter::{
    NetfilterProtoFamily,
    nftables::{
        Bitwise, DataAttribute, Expressions, InetHookNumber, Meta, MetaKey, NfTablesMessage,
        Payload, Register, RuleAttribute, RuleMessage,
    },
};

use crate::nftables::{
    self, Change, NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER, NftError, Nftables,
    comment, equal, immediate, interface_name, prefix_mask,
};

const FAMILY: NetfilterProtoFamily = NetfilterProtoFamily::IPv4;
const TABLE: &str = names::NFT_HAIRPIN_TABLE;
const CHAIN_DNAT: &str = "reflect_dnat";
const CHAIN_SNAT: &str = "reflect_snat";
/// `dstnat` (-100) as the kernel reads a chain priority, and `srcnat`.
const PRIORITY_DSTNAT: u32 = (-100i32).cast_unsigned();
const PRIORITY_SRCNAT: u32 = 100;

/// What the table translates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HairpinSpec {
    pub lan_interface: String,
    pub lan_net: [u8; 4],
    pub lan_prefix_len: u8,
    pub entries: Vec<HairpinEntry>,
}

/// One forwarded port of one uplink's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HairpinEntry {
    /// The uplink's address.
    pub addr: Ipv4Addr,
    pub proto: u8,
    pub port: u16,
    pub to: Ipv4Addr,
    pub to_port: u16,
}

/// Replaces the table with what `spec` says, in one transaction; with no entries, removes it.
pub fn install(spec: &HairpinSpec) -> Result<(), NftError> {
    Nftables::connect()?.transaction(changes(spec))
}

/// Removes the table, if there is one.
pub fn remove() -> Result<(), NftError> {
    Nftables::connect()?.transaction(nftables::remove_table_changes(FAMILY, TABLE))
}

fn changes(spec: &HairpinSpec) -> Vec<Change> {
    let mut changes = nftables::remove_table_changes(FAMILY, TABLE);
    if spec.entries.is_empty() {
        return changes;
    }
    changes.push(nftables::table(FAMILY, TABLE, NfTablesMessage::NewTable));
    changes.push(nftables::base_chain(
        FAMILY,
        TABLE,
        CHAIN_DNAT,
        "nat",
        (InetHookNumber::PreRouting, PRIORITY_DSTNAT),
    ));
    changes.push(nftables::base_chain(
        FAMILY,
        TABLE,
        CHAIN_SNAT,
        "nat",
        (InetHookNumber::PostRouting, PRIORITY_SRCNAT),
    ));
    for entry in &spec.entries {
        changes.push(dnat_rule(&spec.lan_interface, entry));
    }
    changes.push(snat_rule(spec));
    changes
}

/// `iifname LAN ip daddr ADDR ip protocol P th dport PORT counter dnat to TO:TO_PORT`.
fn dnat_rule(lan: &str, entry: &HairpinEntry) -> Change {
    let expressions = vec![
        meta(MetaKey::Iifname),
        equal(interface_name(lan)),
        load(NFT_PAYLOAD_NETWORK_HEADER, IPV4_DADDR_OFFSET, 4),
        equal(entry.addr.octets().to_vec()),
        load(NFT_PAYLOAD_NETWORK_HEADER, IPV4_PROTOCOL_OFFSET, 1),
        equal(vec![entry.proto]),
        load(NFT_PAYLOAD_TRANSPORT_HEADER, DPORT_OFFSET, 2),
        equal(entry.port.to_be_bytes().to_vec()),
        counter(),
        immediate(Register::Reg1, &entry.to.octets()),
        immediate(Register::Reg2, &entry.to_port.to_be_bytes()),
        Expressions::Other {
            expression_type: "nat".to_owned(),
            attributes: vec![
                DefaultNla::new(NFTA_NAT_TYPE, NFT_NAT_DNAT.to_be_bytes().to_vec()),
                DefaultNla::new(NFTA_NAT_FAMILY, NFPROTO_IPV4.to_be_bytes().to_vec()),
                register_nla(NFTA_NAT_REG_ADDR_MIN, Register::Reg1),
                register_nla(NFTA_NAT_REG_PROTO_MIN, Register::Reg2),
            ],
        },
    ];
    rule(
        CHAIN_DNAT,
        expressions,
        &format!(
            "{}:{} proto {} to {}:{}",
            entry.addr, entry.port, entry.proto, entry.to, entry.to_port
        ),
    )
}

/// `iifname LAN oifname LAN ip saddr LAN_NET counter masquerade`: only reflected traffic
/// goes from the LAN back into it through the router.
fn snat_rule(spec: &HairpinSpec) -> Change {
    let mut expressions = vec![
        meta(MetaKey::Iifname),
        equal(interface_name(&spec.lan_interface)),
        meta(MetaKey::Oifname),
        equal(interface_name(&spec.lan_interface)),
        load(NFT_PAYLOAD_NETWORK_HEADER, IPV4_SADDR_OFFSET, 4),
    ];
    let mask = prefix_mask(spec.lan_prefix_len);
    if mask != [0xff; 4] {
        expressions.push(Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg1),
            Bitwise::DestinationRegister(Register::Reg1),
            Bitwise::Length(4),
            Bitwise::Mask(DataAttribute::Value(mask.to_vec())),
            Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
        ]));
    }
    let net: Vec<u8> = spec.lan_net.iter().zip(mask).map(|(a, m)| a & m).collect();
    expressions.push(equal(net));
    expressions.push(counter());
    expressions.push(Expressions::Other {
        expression_type: "masq".to_owned(),
        attributes: Vec::new(),
    });
    rule(CHAIN_SNAT, expressions, "reflected to the LAN")
}

fn rule(chain: &str, expressions: Vec<Expressions>, note: &str) -> Change {
    Change {
        family: FAMILY,
        message: NfTablesMessage::NewRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(TABLE.to_owned()),
                RuleAttribute::Chain(chain.to_owned()),
                RuleAttribute::Expressions(expressions.into_iter().map(Into::into).collect()),
                RuleAttribute::UserData(comment(note)),
            ],
        }),
        flags: NLM_F_CREATE | NLM_F_APPEND,
    }
}

fn meta(key: MetaKey) -> Expressions {
    Expressions::Meta(vec![
        Meta::DestinationRegister(Register::Reg1),
        Meta::Key(key),
    ])
}

/// `len` bytes at `offset` of header `base` into register 1.
fn load(base: u32, offset: u32, len: u32) -> Expressions {
    Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
}

fn counter() -> Expressions {
    Expressions::Other {
        expression_type: "counter".to_owned(),
        attributes: Vec::new(),
    }
}

fn register_nla(kind: u16, register: Register) -> DefaultNla {
    DefaultNla::new(kind, u32::from(register).to_be_bytes().to_vec())
}

// linux/netfilter/nf_tables.h, linux/netfilter.h, the IPv4, TCP and UDP headers.
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;
const NFPROTO_IPV4: u32 = 2;
const IPV4_PROTOCOL_OFFSET: u32 = 9;
const IPV4_SADDR_OFFSET: u32 = 12;
const IPV4_DADDR_OFFSET: u32 = 16;
const DPORT_OFFSET: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(entries: Vec<HairpinEntry>) -> HairpinSpec {
        HairpinSpec {
            lan_interface: "lan0".to_owned(),
            lan_net: [10, 10, 0, 0],
            lan_prefix_len: 24,
            entries,
        }
    }

    fn web(addr: [u8; 4]) -> HairpinEntry {
        HairpinEntry {
            addr: Ipv4Addr::from(addr),
            proto: 6,
            port: 80,
            to: Ipv4Addr::new(10, 10, 0, 11),
            to_port: 8080,
        }
    }

    fn rules(changes: &[Change]) -> Vec<(&str, Vec<&Expressions>)> {
        changes
            .iter()
            .filter_map(|c| match &c.message {
                NfTablesMessage::NewRule(rule) => Some(rule),
                _ => None,
            })
            .map(|rule| {
                let chain = rule
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RuleAttribute::Chain(name) => Some(name.as_str()),
                        _ => None,
                    })
                    .unwrap_or_default();
                (chain, nftables::data(rule).collect())
            })
            .collect()
    }

    #[test]
    fn each_forwarded_port_of_each_address_is_reflected_and_the_return_masqueraded() {
        let changes = changes(&spec(vec![web([192, 0, 2, 2]), web([100, 64, 0, 2])]));
        let rules = rules(&changes);
        assert_eq!(rules.len(), 3);
        let (chain, first) = &rules[0];
        assert_eq!(*chain, CHAIN_DNAT);
        assert!(first.contains(&&equal(interface_name("lan0"))));
        assert!(first.contains(&&equal(vec![192, 0, 2, 2])));
        assert!(first.contains(&&equal(vec![6])));
        assert!(first.contains(&&equal(80u16.to_be_bytes().to_vec())));
        assert!(first.contains(&&immediate(Register::Reg1, &[10, 10, 0, 11])));
        assert!(first.contains(&&immediate(Register::Reg2, &8080u16.to_be_bytes())));
        assert!(rules[1].1.contains(&&equal(vec![100, 64, 0, 2])));
        let (chain, snat) = &rules[2];
        assert_eq!(*chain, CHAIN_SNAT);
        // The LAN network, not the host: a /24 is masked.
        assert!(snat.contains(&&equal(vec![10, 10, 0, 0])));
        assert!(snat.iter().any(|e| matches!(e, Expressions::Bitwise(_))));
    }

    #[test]
    fn without_forwards_the_table_is_only_removed() {
        let changes = changes(&spec(Vec::new()));
        assert_eq!(changes.len(), 2, "add-then-delete, nothing else");
        assert!(rules(&changes).is_empty());
    }

    #[test]
    fn dstnat_is_the_kernels_minus_100() {
        assert_eq!(PRIORITY_DSTNAT, 0xffff_ff9c);
    }
}
