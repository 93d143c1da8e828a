//! The little of nftables the controller needs, spoken over netlink (`NETLINK_NETFILTER`):
//! atomic transactions and a dump of rules. The messages are `netlink-packet-netfilter`'s; this
//! module frames them into batches, numbers them and reads the kernel's answers.

use std::{cell::Cell, time::Duration};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
    nftables::{
        ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook,
        Immediate, InetHookNumber, ListAttribute, NfTablesMessage, Operator, Register,
        RuleAttribute, RuleMessage, TableAttribute, TableMessage,
    },
    none::ControlMessage,
};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

/// The kernel answers within microseconds; a bound keeps a lost answer from hanging a caller.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nftables netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("the kernel refused the nftables change: {0}")]
    Refused(std::io::Error),
    #[error("nftables answer could not be read: {0}")]
    Decode(String),
}

/// One message of a transaction: its family, body and the flags beyond request/ack.
pub struct Change {
    pub family: NetfilterProtoFamily,
    pub message: NfTablesMessage,
    pub flags: u16,
}

pub struct Nftables {
    socket: Socket,
    seq: Cell<u32>,
}

impl Nftables {
    pub fn connect() -> Result<Self, NftError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(NftError::Socket)?;
        socket.bind_auto().map_err(NftError::Socket)?;
        socket2::SockRef::from(&socket)
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(NftError::Socket)?;
        Ok(Self {
            socket,
            seq: Cell::new(1),
        })
    }

    /// Applies `changes` as one transaction: all of them or, on the first refusal, none.
    pub fn transaction(&self, changes: Vec<Change>) -> Result<(), NftError> {
        let mut wire = Vec::new();
        let begin = self.frame(
            NetfilterProtoFamily::Unspec,
            ControlMessage::BatchBegin,
            NLM_F_REQUEST,
        );
        wire.extend(begin.1);
        let mut pending = Vec::new();
        for change in changes {
            let (seq, bytes) = self.frame(
                change.family,
                change.message,
                NLM_F_REQUEST | NLM_F_ACK | change.flags,
            );
            pending.push(seq);
            wire.extend(bytes);
        }
        let end = self.frame(
            NetfilterProtoFamily::Unspec,
            ControlMessage::BatchEnd,
            NLM_F_REQUEST,
        );
        wire.extend(end.1);
        self.socket.send(&wire, 0).map_err(NftError::Socket)?;
        // Every change is acknowledged or refused; the first refusal is the reason.
        while !pending.is_empty() {
            for message in self.receive()? {
                if let NetlinkPayload::Error(error) = message.payload {
                    pending.retain(|seq| *seq != message.header.sequence_number);
                    if error.code.is_some() {
                        return Err(NftError::Refused(error.to_io()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every rule of `family` (`Unspec`: all families), optionally of one table.
    pub fn rules(
        &self,
        family: NetfilterProtoFamily,
        table: Option<&str>,
    ) -> Result<Vec<(NetfilterProtoFamily, RuleMessage)>, NftError> {
        use netlink_packet_netfilter::nftables::RuleAttribute;
        let filter = table
            .map(|t| vec![RuleAttribute::Table(t.to_owned())])
            .unwrap_or_default();
        let (seq, bytes) = self.frame(
            family,
            NfTablesMessage::GetRule(RuleMessage { attributes: filter }),
            NLM_F_REQUEST | NLM_F_DUMP,
        );
        self.socket.send(&bytes, 0).map_err(NftError::Socket)?;
        let mut rules = Vec::new();
        loop {
            for message in self.receive()? {
                if message.header.sequence_number != seq {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(rules),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        let error = e.to_io();
                        // A table that does not exist has no rules.
                        return if error.raw_os_error() == Some(libc::ENOENT) {
                            Ok(rules)
                        } else {
                            Err(NftError::Refused(error))
                        };
                    }
                    NetlinkPayload::InnerMessage(NetfilterMessage {
                        header,
                        inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(rule)),
                        ..
                    }) => rules.push((header.family, rule)),
                    _ => {}
                }
            }
        }
    }

    fn frame(
        &self,
        family: NetfilterProtoFamily,
        inner: impl Into<NetfilterMessageInner>,
        flags: u16,
    ) -> (u32, Vec<u8>) {
        let inner = inner.into();
        // Batch delimiters name the subsystem they frame in the header's resource id.
        let res_id = match inner {
            NetfilterMessageInner::None(_) => u16::from(NFNL_SUBSYS_NFTABLES),
            _ => 0,
        };
        let mut message = NetlinkMessage::from(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, res_id),
            inner,
        ));
        message.header.flags = flags;
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        message.header.sequence_number = seq;
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        (seq, bytes)
    }

    /// The messages of one datagram.
    fn receive(&self) -> Result<Vec<NetlinkMessage<NetfilterMessage>>, NftError> {
        let (datagram, _) = self.socket.recv_from_full().map_err(NftError::Socket)?;
        let mut messages = Vec::new();
        let mut offset = 0;
        while offset < datagram.len() {
            let buffer = NetlinkBuffer::new_checked(&datagram[offset..])
                .map_err(|e| NftError::Decode(e.to_string()))?;
            let length = buffer.length() as usize;
            if length == 0 {
                break;
            }
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(&datagram[offset..])
                .map_err(|e| NftError::Decode(e.to_string()))?;
            messages.push(message);
            offset += length.next_multiple_of(4);
        }
        Ok(messages)
    }
}

/// `NFNL_SUBSYS_NFTABLES` (linux/netfilter/nfnetlink.h).
const NFNL_SUBSYS_NFTABLES: u8 = 10;

/// Builders for the tables, chains and expressions the controller's rules use.
pub(crate) fn table(
    family: NetfilterProtoFamily,
    name: &str,
    message: fn(TableMessage) -> NfTablesMessage,
) -> Change {
    Change {
        family,
        message: message(TableMessage {
            attributes: vec![TableAttribute::Name(name.to_owned())],
        }),
        flags: NLM_F_CREATE,
    }
}

/// Add-then-delete: deletes the table whether it exists or not, within the transaction.
pub(crate) fn remove_table_changes(family: NetfilterProtoFamily, name: &str) -> Vec<Change> {
    vec![
        table(family, name, NfTablesMessage::NewTable),
        table(family, name, NfTablesMessage::DeleteTable),
    ]
}

/// A base chain of `kind` (`nat`, `filter`) on `hook` at `priority` (as the kernel reads
/// it: a negative priority is its two's complement), accepting by default.
pub(crate) fn base_chain(
    family: NetfilterProtoFamily,
    table: &str,
    name: &str,
    kind: &str,
    (hook, priority): (InetHookNumber, u32),
) -> Change {
    Change {
        family,
        message: NfTablesMessage::NewChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(table.to_owned()),
                ChainAttribute::Name(name.to_owned()),
                ChainAttribute::Hook(vec![Hook::Number(hook.into()), Hook::Priority(priority)]),
                ChainAttribute::Policy(NF_ACCEPT),
                ChainAttribute::Type(kind.to_owned()),
            ],
        }),
        flags: NLM_F_CREATE,
    }
}

/// Register 1 equals `value`.
pub(crate) fn equal(value: Vec<u8>) -> Expressions {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::Equal),
        Cmp::Data(DataAttribute::Value(value)),
    ])
}

pub(crate) fn immediate(register: Register, value: &[u8]) -> Expressions {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(register),
        Immediate::Data(DataAttribute::Value(value.to_vec())),
    ])
}

/// An interface name as `meta iifname`/`oifname` loads it: NUL-padded to `IFNAMSIZ`.
pub(crate) fn interface_name(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.resize(IFNAMSIZ, 0);
    bytes
}

pub(crate) fn prefix_mask(prefix_len: u8) -> [u8; 4] {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    bits.to_be_bytes()
}

/// A rule comment as `nft` writes and shows it: a user-data TLV, NUL-terminated.
pub(crate) fn comment(text: &str) -> Vec<u8> {
    let mut value = text.as_bytes().to_vec();
    value.push(0);
    let len = u8::try_from(value.len()).expect("comments are short");
    [vec![NFTNL_UDATA_RULE_COMMENT, len], value].concat()
}

/// The attributes of a rule's expressions, in order.
pub(crate) fn expressions(rule: &RuleMessage) -> impl Iterator<Item = &ExpressionAttribute> {
    rule.attributes
        .iter()
        .filter_map(|a| match a {
            RuleAttribute::Expressions(list) => Some(list),
            _ => None,
        })
        .flatten()
        .filter_map(|element| match element {
            ListAttribute::Element(attributes) => Some(attributes),
            _ => None,
        })
        .flatten()
}

/// The data of a rule's expressions, in order.
pub(crate) fn data(rule: &RuleMessage) -> impl Iterator<Item = &Expressions> {
    expressions(rule).filter_map(|e| match e {
        ExpressionAttribute::Data(data) => Some(data),
        _ => None,
    })
}

// linux/netfilter.h, linux/netfilter/nf_tables.h, libnftnl's udata.h, linux/if.h.
const NF_ACCEPT: u32 = 1;
pub(crate) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(crate) const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
pub(crate) const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
pub(crate) const IFNAMSIZ: usize = 16;
