//! Telling LAN hosts at once that their TCP connections through a failed uplink are gone.
//!
//! The data plane answers any segment of such a flow with a RST whose sequence number is the
//! segment's ACK, the one number the host accepts (`failover_common::reset`). An idle host
//! (one waiting for a download that no longer arrives) sends nothing, so the controller makes
//! it speak: it sends the host a bare ACK in the remote's name with a sequence number outside
//! the host's window. TCP answers that with a duplicate ACK carrying its exact numbers
//! (RFC 9293, 3.10.7.4), the data plane turns the answer into the RST, and the application
//! sees "connection reset" within a round trip instead of a timeout minutes later.

use std::net::{Ipv4Addr, SocketAddrV4};

use failover_common::{
    classify::ip_proto,
    nat::{FlowKey, tcp_flag},
    reset::tcp_headers,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Sends the out-of-window ACK to the LAN end of every TCP flow in `flows`; returns how many
/// hosts were asked. Two sequence numbers half the space apart make sure one of them is outside
/// any window a host can have.
pub fn ask_hosts_to_answer(flows: &[FlowKey]) -> std::io::Result<usize> {
    // IPPROTO_RAW implies IP_HDRINCL: the packet goes out as built, in the remote's name.
    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )?;
    let mut asked = 0;
    for key in flows.iter().filter(|k| k.proto == ip_proto::TCP) {
        let host = SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::from(key.lan_addr),
            u16::from_be_bytes(key.lan_port),
        ));
        for packet in probe_segments(key) {
            socket.send_to(&packet, &host)?;
        }
        asked += 1;
    }
    Ok(asked)
}

/// The two bare ACKs for one flow, from its remote end to its LAN end.
fn probe_segments(key: &FlowKey) -> [[u8; 40]; 2] {
    // Any numbers do; these differ per flow so no two hosts see the same segment.
    let seq = u32::from_be_bytes(key.remote_addr) ^ u32::from(u16::from_be_bytes(key.lan_port));
    [seq, seq.wrapping_add(1 << 31)].map(|seq| {
        tcp_headers(
            key.remote_addr,
            key.lan_addr,
            key.remote_port,
            key.lan_port,
            seq,
            seq.rotate_left(16),
            tcp_flag::ACK,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_come_from_the_remote_with_sequence_numbers_half_the_space_apart() {
        let key = FlowKey {
            lan_addr: [10, 10, 0, 11],
            remote_addr: [203, 0, 113, 10],
            lan_port: 40000u16.to_be_bytes(),
            remote_port: 80u16.to_be_bytes(),
            proto: ip_proto::TCP,
            ..FlowKey::default()
        };
        let [a, b] = probe_segments(&key);
        for p in [&a, &b] {
            assert_eq!(&p[12..16], &[203, 0, 113, 10]);
            assert_eq!(&p[16..20], &[10, 10, 0, 11]);
            assert_eq!(u16::from_be_bytes([p[20], p[21]]), 80);
            assert_eq!(u16::from_be_bytes([p[22], p[23]]), 40000);
            assert_eq!(p[33], tcp_flag::ACK);
        }
        let seq = |p: &[u8; 40]| u32::from_be_bytes([p[24], p[25], p[26], p[27]]);
        assert_eq!(seq(&b).wrapping_sub(seq(&a)), 1 << 31);
    }
}
