//! The kernel-side guard: an nftables table (`ip failover`) that makes sure no LAN packet leaves
//! a managed uplink with its LAN source address, whatever the data plane left to the kernel.
//!
//! The data plane translates TCP, UDP and ICMP echo itself and redirects them past netfilter.
//! What it hands to the kernel instead (IP fragments, ESP, GRE, SCTP, packets with IP options)
//! would be routed out of the main table's default route untranslated. Two chains catch it:
//!
//! * `safety_nat` (nat, postrouting, priority srcnat - 1): per uplink, LAN sources are
//!   masqueraded to the uplink's address with ports from [`SAFETY_NET_PORTS`], a range disjoint
//!   from every data-plane range, so a kernel mapping never collides with one of the data plane;
//! * `leak_guard` (filter, postrouting, priority 300, after every NAT): per uplink, a packet
//!   that still carries a LAN source is dropped and counted.
//!
//! The table lives as long as the data plane: installed (replaced atomically) at every start,
//! kept across a hitless restart, removed when the data plane is detached.

use failover_common::names;
use netlink_packet_core::{DefaultNla, NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_netfilter::{
    NetfilterProtoFamily,
    nftables::{
        Bitwise, Cmp, DataAttribute, ExpressionAttribute, Expressions, Immediate, InetHookNumber,
        Meta, MetaKey, NfTablesMessage, Payload, Register, RuleAttribute, RuleMessage, Verdict,
        VerdictAttribute,
    },
};

use crate::nftables::{
    self, Change, NFT_PAYLOAD_NETWORK_HEADER, NFTNL_UDATA_RULE_COMMENT, NftError, Nftables,
    comment, data, equal, expressions, immediate, interface_name, prefix_mask,
};

/// Source ports of the kernel's safety-net masquerade. The kernel's own local port range
/// (32768-60999 by default) and every data-plane range must stay below it.
pub const SAFETY_NET_PORTS: (u16, u16) = (61000, 65535);

/// Whether a data-plane port range `(min, max)` shares a port with [`SAFETY_NET_PORTS`].
#[must_use]
pub fn overlaps_safety_net((min, max): (u16, u16)) -> bool {
    min <= SAFETY_NET_PORTS.1 && SAFETY_NET_PORTS.0 <= max
}

const FAMILY: NetfilterProtoFamily = NetfilterProtoFamily::IPv4;
const CHAIN_NAT: &str = "safety_nat";
const CHAIN_GUARD: &str = "leak_guard";
/// `srcnat - 1`: ahead of any masquerade of the operator's, so LAN packets on a managed
/// uplink get ports from the disjoint range.
const PRIORITY_NAT: u32 = 99;
/// After every NAT chain (srcnat is 100): what still has a LAN source here leaks.
const PRIORITY_GUARD: u32 = 300;

/// What the guard protects: the LAN subnet and the uplinks' interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardSpec {
    pub lan_net: [u8; 4],
    pub lan_prefix_len: u8,
    pub interfaces: Vec<String>,
}

/// What a guard rule did to LAN packets on one uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Masqueraded by the safety net (fragments, ESP, GRE, ...): left translated.
    Masquerade,
    /// Still carried a LAN source after NAT: dropped.
    Drop,
}

impl Action {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Action::Masquerade => "masquerade",
            Action::Drop => "drop",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardCounter {
    pub interface: String,
    pub action: Action,
    pub packets: u64,
    pub bytes: u64,
}

/// The packets the guard's rules for one interface counted, by action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardCounts {
    pub masqueraded: u64,
    pub dropped: u64,
}

impl GuardCounts {
    /// Sums the rule counters of `interface`.
    #[must_use]
    pub fn of(counters: &[GuardCounter], interface: &str) -> Self {
        let mut counts = Self::default();
        for c in counters.iter().filter(|c| c.interface == interface) {
            match c.action {
                Action::Masquerade => counts.masqueraded += c.packets,
                Action::Drop => counts.dropped += c.packets,
            }
        }
        counts
    }
}

/// An installed guard. It keeps the netlink socket it was installed with, which stays in the
/// installer's network namespace, so dropping or removing the guard from another thread acts
/// where it was installed.
pub struct KernelGuard {
    nft: Nftables,
}

impl KernelGuard {
    /// Installs the guard, replacing any earlier one in one transaction (never a moment
    /// without one).
    pub fn install(spec: &GuardSpec) -> Result<Self, NftError> {
        let nft = Nftables::connect()?;
        let mut changes = remove_changes();
        changes.push(nftables::table(
            FAMILY,
            names::NFT_TABLE,
            NfTablesMessage::NewTable,
        ));
        changes.push(nftables::base_chain(
            FAMILY,
            names::NFT_TABLE,
            CHAIN_NAT,
            "nat",
            (InetHookNumber::PostRouting, PRIORITY_NAT),
        ));
        changes.push(nftables::base_chain(
            FAMILY,
            names::NFT_TABLE,
            CHAIN_GUARD,
            "filter",
            (InetHookNumber::PostRouting, PRIORITY_GUARD),
        ));
        for interface in &spec.interfaces {
            changes.push(rule(spec, interface, Action::Masquerade));
            changes.push(rule(spec, interface, Action::Drop));
        }
        nft.transaction(changes)?;
        Ok(Self { nft })
    }

    /// Removes the guard (a data plane detached for good).
    pub fn remove(self) -> Result<(), NftError> {
        self.nft.transaction(remove_changes())
    }

    /// The guard's counters, one per rule; empty when someone removed the table.
    pub fn counters(&self) -> Result<Vec<GuardCounter>, NftError> {
        let rules = self.nft.rules(FAMILY, Some(names::NFT_TABLE))?;
        Ok(rules
            .iter()
            .filter_map(|(_, rule)| {
                let (action, interface) = parse_comment(user_data(rule)?)?;
                let (packets, bytes) = counter(rule)?;
                Some(GuardCounter {
                    interface,
                    action,
                    packets,
                    bytes,
                })
            })
            .collect())
    }
}

/// Removes the guard of this thread's network namespace, if there is one (`failover detach`).
pub fn remove() -> Result<(), NftError> {
    Nftables::connect()?.transaction(remove_changes())
}

/// The nftables rules of every table and family, read once.
pub struct Ruleset(Vec<(NetfilterProtoFamily, RuleMessage)>);

impl Ruleset {
    pub fn read() -> Result<Self, NftError> {
        Ok(Self(
            Nftables::connect()?.rules(NetfilterProtoFamily::Unspec, None)?,
        ))
    }

    /// Tables of others whose masquerade may apply to `interface` (it names the interface or
    /// matches no output interface): it would hand out ports the data plane also hands out.
    #[must_use]
    pub fn foreign_masquerade(&self, interface: &str) -> Vec<String> {
        let mut tables: Vec<String> = self
            .0
            .iter()
            .filter(|(family, rule)| {
                !(*family == FAMILY && table_of(rule) == Some(names::NFT_TABLE))
                    && expression_names(rule).any(|n| n == "masq")
                    && (!matches_output_interface(rule) || names_interface(rule, interface))
            })
            .filter_map(|(_, rule)| table_of(rule).map(str::to_owned))
            .collect();
        tables.dedup();
        tables
    }
}

/// Add-then-delete: deletes the table whether it exists or not, within the transaction.
fn remove_changes() -> Vec<Change> {
    nftables::remove_table_changes(FAMILY, names::NFT_TABLE)
}

/// `oifname IF ip saddr LAN counter` and then `masquerade to :61000-65535` or `drop`.
fn rule(spec: &GuardSpec, interface: &str, action: Action) -> Change {
    let mut expressions = vec![
        Expressions::Meta(vec![
            Meta::DestinationRegister(Register::Reg1),
            Meta::Key(MetaKey::Oifname),
        ]),
        equal(interface_name(interface)),
        Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NFT_PAYLOAD_NETWORK_HEADER),
            Payload::Offset(IPV4_SADDR_OFFSET),
            Payload::Len(4),
        ]),
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
    expressions.push(Expressions::Other {
        expression_type: "counter".to_owned(),
        attributes: Vec::new(),
    });
    let chain = match action {
        Action::Masquerade => {
            let (min, max) = SAFETY_NET_PORTS;
            expressions.push(immediate(Register::Reg1, &min.to_be_bytes()));
            expressions.push(immediate(Register::Reg2, &max.to_be_bytes()));
            expressions.push(Expressions::Other {
                expression_type: "masq".to_owned(),
                attributes: vec![
                    DefaultNla::new(
                        NFTA_MASQ_REG_PROTO_MIN,
                        u32::from(Register::Reg1).to_be_bytes().to_vec(),
                    ),
                    DefaultNla::new(
                        NFTA_MASQ_REG_PROTO_MAX,
                        u32::from(Register::Reg2).to_be_bytes().to_vec(),
                    ),
                ],
            });
            CHAIN_NAT
        }
        Action::Drop => {
            expressions.push(Expressions::Immediate(vec![
                Immediate::DestinationRegister(Register::Verdict),
                Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                    Verdict::Other(NF_DROP),
                )])),
            ]));
            CHAIN_GUARD
        }
    };
    Change {
        family: FAMILY,
        message: NfTablesMessage::NewRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(names::NFT_TABLE.to_owned()),
                RuleAttribute::Chain(chain.to_owned()),
                RuleAttribute::Expressions(expressions.into_iter().map(Into::into).collect()),
                RuleAttribute::UserData(comment(&format!("{} {interface}", action.name()))),
            ],
        }),
        flags: NLM_F_CREATE | NLM_F_APPEND,
    }
}

fn parse_comment(user_data: &[u8]) -> Option<(Action, String)> {
    let (&[kind, len], rest) = user_data.split_first_chunk::<2>()?;
    let text = rest.get(..usize::from(len))?;
    if kind != NFTNL_UDATA_RULE_COMMENT {
        return None;
    }
    let text = std::str::from_utf8(text.strip_suffix(&[0])?).ok()?;
    let (action, interface) = text.split_once(' ')?;
    let action = [Action::Masquerade, Action::Drop]
        .into_iter()
        .find(|a| a.name() == action)?;
    Some((action, interface.to_owned()))
}

fn user_data(rule: &RuleMessage) -> Option<&[u8]> {
    rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::UserData(data) => Some(data.as_slice()),
        _ => None,
    })
}

fn table_of(rule: &RuleMessage) -> Option<&str> {
    rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::Table(name) => Some(name.as_str()),
        _ => None,
    })
}

fn expression_names(rule: &RuleMessage) -> impl Iterator<Item = &str> {
    expressions(rule).filter_map(|e| match e {
        ExpressionAttribute::Name(name) => Some(name.as_str()),
        _ => None,
    })
}

/// `(packets, bytes)` of the rule's counter expression.
fn counter(rule: &RuleMessage) -> Option<(u64, u64)> {
    data(rule).find_map(|e| match e {
        Expressions::Other {
            expression_type,
            attributes,
        } if expression_type == "counter" => {
            let value = |kind| {
                attributes
                    .iter()
                    .find(|nla| netlink_packet_core::Nla::kind(*nla) == kind)
                    .map(|nla| {
                        let mut bytes = [0; 8];
                        netlink_packet_core::Nla::emit_value(nla, &mut bytes);
                        u64::from_be_bytes(bytes)
                    })
            };
            Some((value(NFTA_COUNTER_PACKETS)?, value(NFTA_COUNTER_BYTES)?))
        }
        _ => None,
    })
}

fn matches_output_interface(rule: &RuleMessage) -> bool {
    data(rule).any(|e| match e {
        Expressions::Meta(meta) => meta
            .iter()
            .any(|m| matches!(m, Meta::Key(MetaKey::Oif | MetaKey::Oifname))),
        _ => false,
    })
}

fn names_interface(rule: &RuleMessage, interface: &str) -> bool {
    data(rule).any(|e| match e {
        Expressions::Cmp(cmp) => cmp.iter().any(|c| {
            matches!(c, Cmp::Data(DataAttribute::Value(v))
                if v.split(|b| *b == 0).next() == Some(interface.as_bytes()))
        }),
        _ => false,
    })
}

// linux/netfilter.h, linux/netfilter/nf_tables.h, libnftnl's udata.h, linux/if.h.
const NF_DROP: u32 = 0;
const IPV4_SADDR_OFFSET: u32 = 12;
const NFTA_MASQ_REG_PROTO_MIN: u16 = 2;
const NFTA_MASQ_REG_PROTO_MAX: u16 = 3;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nftables::IFNAMSIZ;

    fn spec(prefix_len: u8) -> GuardSpec {
        GuardSpec {
            lan_net: [10, 10, 0, 7],
            lan_prefix_len: prefix_len,
            interfaces: vec!["fo-fiber".into(), "wwan0".into()],
        }
    }

    fn rule_message(change: &Change) -> &RuleMessage {
        match &change.message {
            NfTablesMessage::NewRule(rule) => rule,
            other => panic!("not a rule: {other:?}"),
        }
    }

    #[test]
    fn guard_counters_add_up_per_interface() {
        let counter = |interface: &str, action, packets| GuardCounter {
            interface: interface.to_owned(),
            action,
            packets,
            bytes: packets * 100,
        };
        let counters = [
            counter("eth1", Action::Masquerade, 3),
            counter("eth1", Action::Drop, 1),
            counter("wwan0", Action::Drop, 5),
            counter("eth1", Action::Drop, 2),
        ];
        assert_eq!(
            GuardCounts::of(&counters, "eth1"),
            GuardCounts {
                masqueraded: 3,
                dropped: 3
            }
        );
        assert_eq!(GuardCounts::of(&counters, "eth2"), GuardCounts::default());
    }

    #[test]
    fn masks_cover_the_prefix() {
        assert_eq!(prefix_mask(24), [255, 255, 255, 0]);
        assert_eq!(prefix_mask(17), [255, 255, 128, 0]);
        assert_eq!(prefix_mask(32), [255; 4]);
        assert_eq!(prefix_mask(0), [0; 4]);
    }

    #[test]
    fn a_rule_matches_the_lan_network_not_the_host_address() {
        let change = rule(&spec(24), "fo-fiber", Action::Drop);
        let rule = rule_message(&change);
        let values: Vec<&Vec<u8>> = data(rule)
            .filter_map(|e| match e {
                Expressions::Cmp(cmp) => cmp.iter().find_map(|c| match c {
                    Cmp::Data(DataAttribute::Value(v)) => Some(v),
                    _ => None,
                }),
                _ => None,
            })
            .collect();
        assert_eq!(values.len(), 2);
        assert_eq!(values[0].len(), IFNAMSIZ);
        assert!(values[0].starts_with(b"fo-fiber\0"));
        assert_eq!(values[1], &vec![10, 10, 0, 0]);
        assert!(expression_names(rule).any(|n| n == "bitwise"));
        assert!(names_interface(rule, "fo-fiber"));
        assert!(!names_interface(rule, "fo-fib"));
    }

    #[test]
    fn a_host_route_needs_no_mask() {
        let change = rule(&spec(32), "wwan0", Action::Masquerade);
        let rule = rule_message(&change);
        assert!(!expression_names(rule).any(|n| n == "bitwise"));
        assert!(expression_names(rule).any(|n| n == "masq"));
        assert!(matches_output_interface(rule));
    }

    #[test]
    fn comments_name_the_action_and_the_interface() {
        for action in [Action::Masquerade, Action::Drop] {
            let change = rule(&spec(24), "wwan0", action);
            let parsed = parse_comment(user_data(rule_message(&change)).unwrap());
            assert_eq!(parsed, Some((action, "wwan0".to_owned())));
        }
        assert_eq!(parse_comment(&[0, 9, b'x']), None, "length past the end");
        assert_eq!(parse_comment(&[1, 2, b'x', 0]), None, "not a comment");
        assert_eq!(parse_comment(b"\0\x06reset\0"), None, "unknown action");
    }

    #[test]
    fn the_safety_net_ports_sit_above_the_kernels_default_local_range() {
        assert!(SAFETY_NET_PORTS.0 > 60999);
        assert!(!overlaps_safety_net((1024, 32767)));
        assert!(!overlaps_safety_net((1024, 60999)));
        assert!(overlaps_safety_net((60000, 61000)));
        assert!(overlaps_safety_net((65535, 65535)));
    }
}
