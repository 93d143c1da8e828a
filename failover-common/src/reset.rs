//! The TCP reset the data plane answers a LAN host with when its flow cannot go on (the flow's
//! uplink failed, or the controller moves the flow): the host's application sees the
//! connection reset at once instead of waiting minutes for a timeout.

use crate::{checksum::fold, classify::ip_proto, nat::tcp_flag};

/// The segment being answered, as read from the LAN host's packet (fields as on the wire,
/// numbers in host order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src_addr: [u8; 4],
    pub dst_addr: [u8; 4],
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// TCP payload bytes in the segment.
    pub payload_len: u32,
}

/// IPv4 and TCP headers of a reset, without options or payload.
pub const RESET_LEN: usize = 40;

const TTL: u8 = 64;
/// Don't Fragment: a 40-byte packet never needs fragmenting.
const DONT_FRAGMENT: u8 = 0x40;

/// Sequence number, acknowledgment number and flags of the reset answering `seg`
/// (RFC 9293, 3.5.2): a segment with ACK gets a RST whose sequence number is that ACK, which
/// is exactly the number the host expects, so it accepts the reset; a segment without ACK
/// gets RST|ACK acknowledging everything it carried.
#[must_use]
#[inline(always)]
pub const fn reply_numbers(seg: &Segment) -> (u32, u32, u8) {
    if seg.flags & tcp_flag::ACK != 0 {
        return (seg.ack, 0, tcp_flag::RST);
    }
    let mut len = seg.payload_len;
    if seg.flags & tcp_flag::SYN != 0 {
        len += 1;
    }
    if seg.flags & tcp_flag::FIN != 0 {
        len += 1;
    }
    (0, seg.seq.wrapping_add(len), tcp_flag::RST | tcp_flag::ACK)
}

/// The IPv4 and TCP headers of the reset answering `seg`, from its destination back to its
/// source, with both checksums computed.
#[must_use]
#[inline(always)]
pub const fn reset_headers(seg: &Segment) -> [u8; RESET_LEN] {
    let (seq, ack, flags) = reply_numbers(seg);
    tcp_headers(
        seg.dst_addr,
        seg.src_addr,
        seg.dst_port,
        seg.src_port,
        seq,
        ack,
        flags,
    )
}

/// IPv4 and TCP headers (no options, window 0, no payload) with both checksums computed.
/// The controller also sends such segments, to make a host answer with its exact numbers.
#[must_use]
#[inline(always)]
pub const fn tcp_headers(
    src_addr: [u8; 4],
    dst_addr: [u8; 4],
    src_port: [u8; 2],
    dst_port: [u8; 2],
    seq: u32,
    ack: u32,
    flags: u8,
) -> [u8; RESET_LEN] {
    let seq = seq.to_be_bytes();
    let ack = ack.to_be_bytes();
    #[expect(clippy::cast_possible_truncation, reason = "RESET_LEN is 40")]
    let total = (RESET_LEN as u16).to_be_bytes();
    let (s, d) = (src_addr, dst_addr);
    let mut h = [
        // IPv4: version 4, IHL 5, total length, id 0, DF, TTL, protocol, checksum, addresses.
        0x45,
        0,
        total[0],
        total[1],
        0,
        0,
        DONT_FRAGMENT,
        0,
        TTL,
        ip_proto::TCP,
        0,
        0,
        s[0],
        s[1],
        s[2],
        s[3],
        d[0],
        d[1],
        d[2],
        d[3],
        // TCP: ports, sequence, acknowledgment, data offset 5, flags, window 0, checksum, urgent.
        src_port[0],
        src_port[1],
        dst_port[0],
        dst_port[1],
        seq[0],
        seq[1],
        seq[2],
        seq[3],
        ack[0],
        ack[1],
        ack[2],
        ack[3],
        0x50,
        flags,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    let ip_check = (!fold(sum_words(&h, 0, 20, 0))).to_be_bytes();
    h[10] = ip_check[0];
    h[11] = ip_check[1];
    // TCP pseudo-header: both addresses, the protocol and the TCP length (20).
    let pseudo = sum_words(&h, 12, 20, ip_proto::TCP as u32 + 20);
    let tcp_check = (!fold(sum_words(&h, 20, 40, pseudo))).to_be_bytes();
    h[36] = tcp_check[0];
    h[37] = tcp_check[1];
    h
}

/// The reset's TCP checksum field for a packet the kernel still has to checksum
/// (`CHECKSUM_PARTIAL`, a segment from a host with checksum offload): the device sums the
/// TCP header into this pseudo-header seed, so the field must hold the seed, not the
/// complete checksum [`tcp_headers`] writes.
#[must_use]
#[inline(always)]
pub const fn partial_check_seed(headers: &[u8; RESET_LEN]) -> [u8; 2] {
    fold(sum_words(headers, 12, 20, ip_proto::TCP as u32 + 20)).to_be_bytes()
}

/// `acc` plus the big-endian 16-bit words of `bytes[from..to]` (`to - from` even).
#[inline(always)]
const fn sum_words(bytes: &[u8; RESET_LEN], from: usize, to: usize, mut acc: u32) -> u32 {
    let mut i = from;
    while i < to {
        acc += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(flags: u8, payload_len: u32) -> Segment {
        Segment {
            src_addr: [192, 168, 1, 10],
            dst_addr: [203, 0, 113, 10],
            src_port: 40000u16.to_be_bytes(),
            dst_port: 80u16.to_be_bytes(),
            seq: 1000,
            ack: 0xffff_fff0,
            flags,
            payload_len,
        }
    }

    #[test]
    fn the_partial_seed_completes_to_the_full_checksum() {
        let mut h = reset_headers(&segment(tcp_flag::ACK, 0));
        let full = [h[36], h[37]];
        // What a device does with CHECKSUM_PARTIAL: sum the TCP header over the seed.
        let seed = partial_check_seed(&h);
        h[36] = seed[0];
        h[37] = seed[1];
        assert_eq!((!verify(&h[20..])).to_be_bytes(), full);
    }

    /// One's-complement sum over a whole buffer, the textbook way (RFC 1071).
    fn verify(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        fold(sum)
    }

    #[test]
    fn answers_an_ack_with_its_acknowledgment_number() {
        let h = reset_headers(&segment(tcp_flag::ACK | tcp_flag::PSH, 100));
        assert_eq!(&h[12..16], &[203, 0, 113, 10], "from the remote");
        assert_eq!(&h[16..20], &[192, 168, 1, 10], "to the LAN host");
        assert_eq!(u16::from_be_bytes([h[20], h[21]]), 80);
        assert_eq!(u16::from_be_bytes([h[22], h[23]]), 40000);
        assert_eq!(
            u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
            0xffff_fff0
        );
        assert_eq!(h[33], tcp_flag::RST);
    }

    #[test]
    fn answers_a_segment_without_ack_by_acknowledging_it() {
        let h = reset_headers(&segment(tcp_flag::FIN, 5));
        assert_eq!(u32::from_be_bytes([h[24], h[25], h[26], h[27]]), 0);
        assert_eq!(u32::from_be_bytes([h[28], h[29], h[30], h[31]]), 1006);
        assert_eq!(h[33], tcp_flag::RST | tcp_flag::ACK);
    }

    #[test]
    fn checksums_verify() {
        for flags in [
            tcp_flag::ACK,
            tcp_flag::SYN,
            0,
            tcp_flag::FIN | tcp_flag::ACK,
        ] {
            let h = reset_headers(&segment(flags, 7));
            assert_eq!(verify(&h[..20]), 0xffff, "IPv4 header checksum");
            let mut pseudo = std::vec::Vec::from(&h[12..20]);
            pseudo.extend_from_slice(&[0, ip_proto::TCP, 0, 20]);
            pseudo.extend_from_slice(&h[20..]);
            assert_eq!(verify(&pseudo), 0xffff, "TCP checksum");
        }
    }
}
