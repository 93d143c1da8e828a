//! Builds Ethernet frames for data-plane fixtures: IPv4 with TCP, UDP or ICMP echo, ARP, IPv6,
//! with knobs for the awkward cases (VLAN tag, fragments, IP options, truncation, bad
//! lengths). Checksums are computed here from scratch (RFC 1071), independently of the
//! incremental updates the data plane does, so tests can verify the program's output.

use std::net::{Ipv4Addr, SocketAddrV4};

use failover_common::classify::{
    ether_type::{
        ARP as ETHERTYPE_ARP, IPV4 as ETHERTYPE_IPV4, IPV6 as ETHERTYPE_IPV6,
        VLAN as ETHERTYPE_VLAN,
    },
    ip_proto::{ICMP as PROTO_ICMP, TCP as PROTO_TCP, UDP as PROTO_UDP},
};
/// TCP flag bits (the data plane's own constants).
pub use failover_common::nat::tcp_flag as tcp_flags;

pub type Mac = [u8; 6];

/// The transport layer of an IPv4 frame.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        options: Vec<u8>,
    },
    /// `checksum: false` sends a zero checksum, which UDP over IPv4 allows.
    Udp {
        src_port: u16,
        dst_port: u16,
        checksum: bool,
    },
    /// ICMP echo request (type 8) or reply (type 0).
    IcmpEcho { icmp_type: u8, id: u16, seq: u16 },
    /// Any other protocol, payload only.
    Other { protocol: u8 },
}

/// A frame under construction. Start from [`Frame::tcp`], [`Frame::udp`], [`Frame::icmp_echo`],
/// [`Frame::arp_request`] or [`Frame::ipv6`], adjust, then [`Frame::build`].
#[derive(Clone, Debug)]
pub struct Frame {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub vlan: Option<u16>,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    Ipv4(Ipv4),
    Raw { ether_type: u16, bytes: Vec<u8> },
}

#[derive(Clone, Debug)]
struct Ipv4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    tos: u8,
    id: u16,
    flags_fragment: u16,
    options: Vec<u8>,
    l4: L4,
    payload: Vec<u8>,
    /// The TCP window field.
    tcp_window: u16,
    /// Overrides the computed total length (to build inconsistent headers).
    total_len: Option<u16>,
}

/// Default MACs: a LAN host talking to the router.
pub const HOST_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x11];
pub const ROUTER_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

/// Bit "don't fragment" of the IPv4 flags/fragment field.
pub const IP_DF: u16 = 0x4000;
/// Bit "more fragments".
pub const IP_MF: u16 = 0x2000;

impl Frame {
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, l4: L4) -> Self {
        Frame {
            dst_mac: ROUTER_MAC,
            src_mac: HOST_MAC,
            vlan: None,
            body: Body::Ipv4(Ipv4 {
                src,
                dst,
                ttl: 64,
                tos: 0,
                id: 0x1234,
                flags_fragment: IP_DF,
                options: Vec::new(),
                l4,
                payload: Vec::new(),
                tcp_window: 0xffff,
                total_len: None,
            }),
        }
    }

    #[must_use]
    pub fn tcp(src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Self {
        let l4 = L4::Tcp {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: 1000,
            ack: if flags & tcp_flags::ACK != 0 { 2000 } else { 0 },
            flags,
            options: Vec::new(),
        };
        Self::ipv4(*src.ip(), *dst.ip(), l4)
    }

    #[must_use]
    pub fn udp(src: SocketAddrV4, dst: SocketAddrV4) -> Self {
        let l4 = L4::Udp {
            src_port: src.port(),
            dst_port: dst.port(),
            checksum: true,
        };
        Self::ipv4(*src.ip(), *dst.ip(), l4)
    }

    #[must_use]
    pub fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Self {
        Self::ipv4(
            src,
            dst,
            L4::IcmpEcho {
                icmp_type: 8,
                id,
                seq,
            },
        )
    }

    /// An IPv4 packet of another protocol (GRE, ESP, ...).
    #[must_use]
    pub fn ip_other(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Self {
        Self::ipv4(src, dst, L4::Other { protocol })
    }

    /// ARP who-has `target` from `sender`.
    #[must_use]
    pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Self {
        let mut bytes = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
        bytes.extend_from_slice(&HOST_MAC);
        bytes.extend_from_slice(&sender.octets());
        bytes.extend_from_slice(&[0; 6]);
        bytes.extend_from_slice(&target.octets());
        Frame {
            dst_mac: [0xff; 6],
            src_mac: HOST_MAC,
            vlan: None,
            body: Body::Raw {
                ether_type: ETHERTYPE_ARP,
                bytes,
            },
        }
    }

    /// A minimal IPv6 header with no payload (the data plane passes IPv6 to the kernel).
    #[must_use]
    pub fn ipv6() -> Self {
        let mut bytes = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        bytes.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        Frame {
            dst_mac: ROUTER_MAC,
            src_mac: HOST_MAC,
            vlan: None,
            body: Body::Raw {
                ether_type: ETHERTYPE_IPV6,
                bytes,
            },
        }
    }

    /// A frame of an arbitrary Ethernet type.
    #[must_use]
    pub fn raw(ether_type: u16, bytes: &[u8]) -> Self {
        Frame {
            dst_mac: ROUTER_MAC,
            src_mac: HOST_MAC,
            vlan: None,
            body: Body::Raw {
                ether_type,
                bytes: bytes.to_vec(),
            },
        }
    }

    fn ip_mut(&mut self) -> &mut Ipv4 {
        match &mut self.body {
            Body::Ipv4(ip) => ip,
            Body::Raw { .. } => panic!("this frame has no IPv4 header"),
        }
    }

    #[must_use]
    pub fn macs(mut self, src: Mac, dst: Mac) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    #[must_use]
    pub fn vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }

    /// Sets a TCP frame's sequence and acknowledgment numbers and window.
    #[must_use]
    pub fn tcp_numbers(mut self, seq_number: u32, ack_number: u32, window: u16) -> Self {
        if let Body::Ipv4(ip) = &mut self.body {
            if let L4::Tcp { seq, ack, .. } = &mut ip.l4 {
                (*seq, *ack) = (seq_number, ack_number);
            }
            ip.tcp_window = window;
        }
        self
    }

    #[must_use]
    pub fn ip_id(mut self, id: u16) -> Self {
        if let Body::Ipv4(ip) = &mut self.body {
            ip.id = id;
        }
        self
    }

    #[must_use]
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ip_mut().ttl = ttl;
        self
    }

    /// Sets the whole flags + fragment offset field (see [`IP_DF`], [`IP_MF`]).
    #[must_use]
    pub fn flags_fragment(mut self, value: u16) -> Self {
        self.ip_mut().flags_fragment = value;
        self
    }

    /// IPv4 options, padded with end-of-options to a multiple of 4 bytes.
    #[must_use]
    pub fn ip_options(mut self, options: &[u8]) -> Self {
        let mut options = options.to_vec();
        options.resize(options.len().div_ceil(4) * 4, 0);
        self.ip_mut().options = options;
        self
    }

    #[must_use]
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.ip_mut().payload = payload.to_vec();
        self
    }

    /// TCP options (e.g. MSS), padded with end-of-options to a multiple of 4 bytes.
    #[must_use]
    pub fn tcp_options(mut self, new: &[u8]) -> Self {
        if let L4::Tcp { options, .. } = &mut self.ip_mut().l4 {
            *options = new.to_vec();
            options.resize(options.len().div_ceil(4) * 4, 0);
        } else {
            panic!("tcp_options on a frame that is not TCP");
        }
        self
    }

    /// Sends a zero UDP checksum ("no checksum").
    #[must_use]
    pub fn udp_without_checksum(mut self) -> Self {
        if let L4::Udp { checksum, .. } = &mut self.ip_mut().l4 {
            *checksum = false;
        } else {
            panic!("udp_without_checksum on a frame that is not UDP");
        }
        self
    }

    /// Writes `len` into the IPv4 total-length field instead of the real length.
    #[must_use]
    pub fn claimed_total_len(mut self, len: u16) -> Self {
        self.ip_mut().total_len = Some(len);
        self
    }

    #[must_use]
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        if let Some(id) = self.vlan {
            out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            out.extend_from_slice(&(id & 0x0fff).to_be_bytes());
        }
        match &self.body {
            Body::Raw { ether_type, bytes } => {
                out.extend_from_slice(&ether_type.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Body::Ipv4(ip) => {
                out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                out.extend_from_slice(&ip.build());
            }
        }
        out
    }
}

impl Ipv4 {
    fn build(&self) -> Vec<u8> {
        let l4 = self.build_l4();
        let header_len = 20 + self.options.len();
        let total_len = self
            .total_len
            .unwrap_or(u16::try_from(header_len + l4.len()).expect("packet over 64 KiB"));
        let mut header = Vec::with_capacity(header_len);
        header.push(0x40 | u8::try_from(header_len / 4).expect("IPv4 options too long"));
        header.push(self.tos);
        header.extend_from_slice(&total_len.to_be_bytes());
        header.extend_from_slice(&self.id.to_be_bytes());
        header.extend_from_slice(&self.flags_fragment.to_be_bytes());
        header.push(self.ttl);
        header.push(self.protocol());
        header.extend_from_slice(&[0, 0]);
        header.extend_from_slice(&self.src.octets());
        header.extend_from_slice(&self.dst.octets());
        header.extend_from_slice(&self.options);
        let sum = internet_checksum(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        header.extend_from_slice(&l4);
        header
    }

    fn protocol(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => PROTO_TCP,
            L4::Udp { .. } => PROTO_UDP,
            L4::IcmpEcho { .. } => PROTO_ICMP,
            L4::Other { protocol } => protocol,
        }
    }

    fn build_l4(&self) -> Vec<u8> {
        let mut seg = Vec::with_capacity(64);
        let checksum_at = match &self.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                options,
            } => {
                seg.extend_from_slice(&src_port.to_be_bytes());
                seg.extend_from_slice(&dst_port.to_be_bytes());
                seg.extend_from_slice(&seq.to_be_bytes());
                seg.extend_from_slice(&ack.to_be_bytes());
                let data_offset =
                    u8::try_from((20 + options.len()) / 4).expect("TCP options too long");
                seg.extend_from_slice(&[data_offset << 4, *flags]);
                seg.extend_from_slice(&self.tcp_window.to_be_bytes());
                seg.extend_from_slice(&[0, 0, 0, 0]);
                seg.extend_from_slice(options);
                Some(16)
            }
            L4::Udp {
                src_port,
                dst_port,
                checksum,
            } => {
                let len = u16::try_from(8 + self.payload.len()).expect("UDP over 64 KiB");
                seg.extend_from_slice(&src_port.to_be_bytes());
                seg.extend_from_slice(&dst_port.to_be_bytes());
                seg.extend_from_slice(&len.to_be_bytes());
                seg.extend_from_slice(&[0, 0]);
                checksum.then_some(6)
            }
            L4::IcmpEcho { icmp_type, id, seq } => {
                seg.extend_from_slice(&[*icmp_type, 0, 0, 0]);
                seg.extend_from_slice(&id.to_be_bytes());
                seg.extend_from_slice(&seq.to_be_bytes());
                Some(2)
            }
            L4::Other { .. } => None,
        };
        seg.extend_from_slice(&self.payload);
        if let Some(at) = checksum_at {
            let sum = match self.l4 {
                L4::IcmpEcho { .. } => internet_checksum(&seg),
                _ => transport_checksum(self.src, self.dst, self.protocol(), &seg),
            };
            seg[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        seg
    }
}

/// RFC 1071 one's-complement checksum of `bytes`.
#[must_use]
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    !fold(ones_sum(0, bytes))
}

/// TCP/UDP checksum over the IPv4 pseudo-header and the segment (whose checksum field must
/// be zero). A UDP result of zero is sent as 0xffff (RFC 768).
#[must_use]
pub fn transport_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let sum = !fold(ones_sum(
        pseudo_header_sum(src, dst, protocol, segment),
        segment,
    ));
    if protocol == PROTO_UDP && sum == 0 {
        0xffff
    } else {
        sum
    }
}

fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u64 {
    let len = u16::try_from(segment.len()).expect("segment over 64 KiB");
    let mut pseudo = [0; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = protocol;
    pseudo[10..].copy_from_slice(&len.to_be_bytes());
    ones_sum(0, &pseudo)
}

fn ones_sum(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        acc += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    u16::try_from(acc).expect("folded to 16 bits")
}

/// Checks every checksum of an Ethernet/IPv4 frame from scratch; the error names the first bad
/// one. Frames that are not IPv4 are accepted as they are.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let mut at = 12;
    let mut ether_type = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if ether_type == ETHERTYPE_VLAN {
        at += 4;
        ether_type = u16::from_be_bytes([frame[at], frame[at + 1]]);
    }
    if ether_type != ETHERTYPE_IPV4 {
        return Ok(());
    }
    let ip = &frame[at + 2..];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if internet_checksum(&ip[..header_len]) != 0 {
        return Err("IPv4 header checksum is wrong".into());
    }
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg = &ip[header_len..total_len];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let ok = match ip[9] {
        PROTO_ICMP => internet_checksum(seg) == 0,
        PROTO_UDP if seg[6..8] == [0, 0] => true,
        // Summed with its checksum field, a correct segment folds to 0xffff.
        protocol @ (PROTO_TCP | PROTO_UDP) => {
            fold(ones_sum(pseudo_header_sum(src, dst, protocol, seg), seg)) == 0xffff
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("protocol {} checksum is wrong", ip[9]))
    }
}

/// Retypes the ICMP message of an untagged IPv4 frame (without IP options) and recomputes its
/// checksum from scratch.
pub fn set_icmp_type(frame: &mut [u8], kind: u8, code: u8) {
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    frame[34] = kind;
    frame[35] = code;
    frame[36..38].fill(0);
    let sum = internet_checksum(&frame[34..14 + total]);
    frame[36..38].copy_from_slice(&sum.to_be_bytes());
}

/// Formats a frame as hex, 16 bytes a line, for failure messages.
#[must_use]
pub fn hex_dump(frame: &[u8]) -> String {
    frame
        .chunks(16)
        .enumerate()
        .map(|(i, line)| {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}  {}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn rfc1071_example() {
        // The example of RFC 1071 section 3: sum 0xddf2, checksum its complement.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&bytes), !0xddf2);
    }

    #[test]
    fn built_frames_have_valid_checksums_and_lengths() {
        let frames = [
            Frame::tcp(
                addr("10.10.0.11:40000"),
                addr("203.0.113.10:80"),
                tcp_flags::SYN,
            )
            .tcp_options(&[2, 4, 0x05, 0xb4])
            .build(),
            Frame::udp(addr("10.10.0.11:40000"), addr("203.0.113.10:7"))
                .payload(b"hello")
                .build(),
            Frame::udp(addr("10.10.0.11:40000"), addr("203.0.113.10:7"))
                .payload(b"odd")
                .build(),
            Frame::icmp_echo(
                "10.10.0.11".parse().unwrap(),
                "203.0.113.10".parse().unwrap(),
                7,
                1,
            )
            .payload(b"ping")
            .vlan(10)
            .build(),
        ];
        for frame in &frames {
            verify_checksums(frame).unwrap_or_else(|e| panic!("{e}\n{}", hex_dump(frame)));
        }
        assert_eq!(frames[0].len(), 14 + 20 + 24);
        assert_eq!(frames[1].len(), 14 + 20 + 8 + 5);
        assert_eq!(frames[3].len(), 18 + 20 + 8 + 4);
    }

    #[test]
    fn corrupted_checksum_is_detected() {
        let mut frame = Frame::udp(addr("10.0.0.1:1"), addr("10.0.0.2:2"))
            .payload(b"x")
            .build();
        frame[14 + 20 + 8] ^= 0xff;
        assert!(verify_checksums(&frame).is_err());
    }
}
