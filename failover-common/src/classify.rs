//! Packet classes and traffic directions counted by the data plane. The numbers are stable:
//! they index the `fo_class_stats` map that operators read with bpftool, so they are
//! append-only and never renumbered.

/// Where a frame entered the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Direction {
    /// From a LAN host.
    Lan = 0,
    /// From an ISP, on an uplink.
    Uplink = 1,
}

pub const DIRECTION_COUNT: u32 = 2;

/// What a frame is, as far as the data plane cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PacketClass {
    /// An Ethernet type the data plane does not handle (LLDP, ...).
    OtherL3 = 0,
    Arp = 1,
    Ipv6 = 2,
    Tcp = 3,
    Udp = 4,
    Icmp = 5,
    /// IPv4 with another protocol (GRE, ESP, ...).
    OtherIpv4 = 6,
    /// An IPv4 fragment (more-fragments set or a non-zero offset).
    Fragment = 7,
    /// IPv4 with options (IHL > 5).
    Ipv4Options = 8,
    /// A frame too short for its headers, or with an impossible IPv4 header.
    Malformed = 9,
}

pub const CLASS_COUNT: u32 = 10;

impl PacketClass {
    /// All classes in index order, for reports.
    pub const ALL: [PacketClass; CLASS_COUNT as usize] = [
        PacketClass::OtherL3,
        PacketClass::Arp,
        PacketClass::Ipv6,
        PacketClass::Tcp,
        PacketClass::Udp,
        PacketClass::Icmp,
        PacketClass::OtherIpv4,
        PacketClass::Fragment,
        PacketClass::Ipv4Options,
        PacketClass::Malformed,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PacketClass::OtherL3 => "other-l3",
            PacketClass::Arp => "arp",
            PacketClass::Ipv6 => "ipv6",
            PacketClass::Tcp => "tcp",
            PacketClass::Udp => "udp",
            PacketClass::Icmp => "icmp",
            PacketClass::OtherIpv4 => "other-ipv4",
            PacketClass::Fragment => "fragment",
            PacketClass::Ipv4Options => "ipv4-options",
            PacketClass::Malformed => "malformed",
        }
    }
}

/// Number of entries in the class counter map.
pub const CLASS_STATS_ENTRIES: u32 = DIRECTION_COUNT * CLASS_COUNT;

/// Index of a (direction, class) counter in the class counter map.
#[must_use]
#[inline(always)]
pub const fn stat_index(direction: Direction, class: PacketClass) -> u32 {
    direction as u32 * CLASS_COUNT + class as u32
}

/// Ethernet types the data plane looks at (host byte order).
pub mod ether_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers the data plane translates.
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// The fields of an IPv4 header that decide its class, as read from the wire.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Fields {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub version_ihl: u8,
    /// Flags and fragment offset, host byte order.
    pub flags_fragment: u16,
    /// Total length, host byte order.
    pub total_len: u16,
    pub protocol: u8,
}

/// Classifies an IPv4 packet from its header fields and the number of bytes the frame holds
/// from the start of the IPv4 header. Pure, so the host tests the exact code the data plane
/// runs; the data plane has already checked that the 20-byte base header is in the frame.
#[must_use]
#[inline(always)]
pub const fn classify_ipv4(fields: Ipv4Fields, bytes_from_ip: usize) -> PacketClass {
    let header_len = ((fields.version_ihl & 0x0f) as usize) * 4;
    let total_len = fields.total_len as usize;
    if fields.version_ihl >> 4 != 4
        || header_len < 20
        || total_len < header_len
        || total_len > bytes_from_ip
    {
        return PacketClass::Malformed;
    }
    // More-fragments flag or a non-zero offset: only the first fragment carries ports.
    if fields.flags_fragment & 0x3fff != 0 {
        return PacketClass::Fragment;
    }
    if header_len > 20 {
        return PacketClass::Ipv4Options;
    }
    let (class, l4_min_len) = match fields.protocol {
        ip_proto::TCP => (PacketClass::Tcp, 20),
        ip_proto::UDP => (PacketClass::Udp, 8),
        ip_proto::ICMP => (PacketClass::Icmp, 8),
        _ => return PacketClass::OtherIpv4,
    };
    if total_len - header_len < l4_min_len {
        return PacketClass::Malformed;
    }
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(version_ihl: u8, flags_fragment: u16, total_len: u16, protocol: u8) -> Ipv4Fields {
        Ipv4Fields {
            version_ihl,
            flags_fragment,
            total_len,
            protocol,
        }
    }

    #[test]
    fn ipv4_classes() {
        let cases = [
            ("tcp", fields(0x45, 0x4000, 40, 6), 40, PacketClass::Tcp),
            (
                "udp with trailing padding",
                fields(0x45, 0, 28, 17),
                46,
                PacketClass::Udp,
            ),
            ("icmp", fields(0x45, 0, 28, 1), 28, PacketClass::Icmp),
            ("gre", fields(0x45, 0, 24, 47), 24, PacketClass::OtherIpv4),
            (
                "first fragment",
                fields(0x45, 0x2000, 40, 17),
                40,
                PacketClass::Fragment,
            ),
            (
                "later fragment",
                fields(0x45, 0x0010, 40, 17),
                40,
                PacketClass::Fragment,
            ),
            (
                "options",
                fields(0x46, 0, 44, 6),
                44,
                PacketClass::Ipv4Options,
            ),
            (
                "version 6 in an IPv4 frame",
                fields(0x65, 0, 40, 6),
                40,
                PacketClass::Malformed,
            ),
            (
                "ihl below 5",
                fields(0x44, 0, 40, 6),
                40,
                PacketClass::Malformed,
            ),
            (
                "total length beyond the frame",
                fields(0x45, 0, 1500, 6),
                40,
                PacketClass::Malformed,
            ),
            (
                "total length below the header",
                fields(0x45, 0, 12, 6),
                40,
                PacketClass::Malformed,
            ),
            (
                "tcp header cut short",
                fields(0x45, 0, 30, 6),
                30,
                PacketClass::Malformed,
            ),
            (
                "udp header cut short",
                fields(0x45, 0, 24, 17),
                24,
                PacketClass::Malformed,
            ),
        ];
        for (name, f, avail, want) in cases {
            assert_eq!(classify_ipv4(f, avail), want, "{name}");
        }
    }

    #[test]
    fn stat_indexes_are_distinct_and_in_range() {
        let mut seen = [false; CLASS_STATS_ENTRIES as usize];
        for direction in [Direction::Lan, Direction::Uplink] {
            for class in PacketClass::ALL {
                let i = stat_index(direction, class) as usize;
                assert!(i < seen.len());
                assert!(!seen[i], "index {i} used twice");
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn class_table_is_in_index_order() {
        for (i, class) in PacketClass::ALL.iter().enumerate() {
            assert_eq!(*class as usize, i, "{}", class.name());
        }
    }
}
