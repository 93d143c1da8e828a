//! ARP to the gateway: the cheapest proof that the access link and the gateway's NIC work,
//! independent of its IP stack's routing. Sent from a packet socket bound to the uplink's
//! interface, so neither the kernel's neighbour cache nor any route is involved.

use std::{
    io,
    mem::size_of_val,
    net::Ipv4Addr,
    os::fd::AsRawFd as _,
    time::{Duration, Instant},
};

use socket2::{Domain, Socket, Type};
use tokio::io::Interest;

use super::{ProbeError, ProbePath, register, within};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const HTYPE_ETHERNET: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;
/// Ethernet header (14) and an Ethernet/IPv4 ARP message (28).
pub const FRAME_LEN: usize = 42;

/// A broadcast ARP request "who has `target`? tell `sender_ip`" from `sender_mac`.
#[must_use]
pub fn request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut frame = [0; FRAME_LEN];
    frame[0..6].fill(0xff);
    frame[6..12].copy_from_slice(&sender_mac);
    frame[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    let arp = &mut frame[14..];
    arp[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    arp[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&OP_REQUEST.to_be_bytes());
    arp[8..14].copy_from_slice(&sender_mac);
    arp[14..18].copy_from_slice(&sender_ip.octets());
    // Target hardware address stays zero: unknown, that is the question.
    arp[24..28].copy_from_slice(&target.octets());
    frame
}

/// The sender (MAC, IP) of an Ethernet/IPv4 ARP reply, or `None` for any other frame.
#[must_use]
pub fn parse_reply(frame: &[u8]) -> Option<([u8; 6], Ipv4Addr)> {
    let arp = frame.get(14..FRAME_LEN)?;
    let be16 = |at: usize| u16::from_be_bytes([arp[at], arp[at + 1]]);
    let is_reply = frame[12..14] == ETH_P_ARP.to_be_bytes()
        && be16(0) == HTYPE_ETHERNET
        && be16(2) == ETH_P_IP
        && arp[4] == 6
        && arp[5] == 4
        && be16(6) == OP_REPLY;
    if !is_reply {
        return None;
    }
    let mac = arp[8..14].try_into().ok()?;
    Some((mac, Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17])))
}

/// Asks for the gateway's MAC on `path`'s interface and waits for the gateway's answer.
pub async fn probe(path: &ProbePath, timeout: Duration) -> Result<Duration, ProbeError> {
    let Some(gateway) = path.gateway.filter(|_| path.ethernet) else {
        return Err(ProbeError::NoGateway);
    };
    let socket = register(packet_socket(path.ifindex)?)?;
    let frame = request(path.mac, path.source, gateway);
    within(timeout, async {
        let start = Instant::now();
        socket
            .async_io(Interest::WRITABLE, |s| s.send(&frame))
            .await?;
        let mut buf = [0; 128];
        loop {
            let len = socket
                .async_io(Interest::READABLE, |s| {
                    use std::io::Read as _;
                    (&*s).read(&mut buf)
                })
                .await?;
            if parse_reply(&buf[..len]).is_some_and(|(_, ip)| ip == gateway) {
                return Ok(start.elapsed());
            }
        }
    })
    .await
}

/// A non-blocking packet socket that sends on and receives ARP frames from one interface.
fn packet_socket(ifindex: u32) -> io::Result<Socket> {
    // Protocol 0 receives nothing until the bind below names ARP and the interface, so no
    // frame of another interface can slip in between.
    let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
    socket.set_nonblocking(true)?;
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = u16::try_from(libc::AF_PACKET).expect("AF_PACKET fits u16");
    address.sll_protocol = ETH_P_ARP.to_be();
    address.sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // SAFETY: a valid socket and a sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const address).cast(),
            libc::socklen_t::try_from(size_of_val(&address)).expect("sockaddr_ll fits socklen_t"),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER_MAC: [u8; 6] = [0x02, 0xf0, 0x20, 0, 0, 0x02];
    const GATEWAY_MAC: [u8; 6] = [0x02, 0xf0, 0x20, 0, 0, 0x01];
    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    /// What the gateway answers to `request` (RFC 826: swap the sides, fill in its MAC).
    fn answer(request: &[u8; FRAME_LEN], mac: [u8; 6]) -> [u8; FRAME_LEN] {
        let mut reply = *request;
        reply[0..6].copy_from_slice(&request[6..12]);
        reply[6..12].copy_from_slice(&mac);
        reply[20..22].copy_from_slice(&OP_REPLY.to_be_bytes());
        reply[32..42].copy_from_slice(&request[22..32]);
        reply[22..28].copy_from_slice(&mac);
        reply[28..32].copy_from_slice(&request[38..42]);
        reply
    }

    #[test]
    fn request_is_a_broadcast_who_has() {
        let frame = request(ROUTER_MAC, ROUTER, GATEWAY);
        #[rustfmt::skip]
        let expected: [u8; FRAME_LEN] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xf0, 0x20, 0, 0, 0x02, 0x08, 0x06,
            0, 1, 0x08, 0, 6, 4, 0, 1,
            0x02, 0xf0, 0x20, 0, 0, 0x02, 192, 0, 2, 2,
            0, 0, 0, 0, 0, 0, 192, 0, 2, 1,
        ];
        assert_eq!(frame, expected);
    }

    #[test]
    fn gateway_reply_is_parsed() {
        let reply = answer(&request(ROUTER_MAC, ROUTER, GATEWAY), GATEWAY_MAC);
        assert_eq!(parse_reply(&reply), Some((GATEWAY_MAC, GATEWAY)));
        // Ethernet padding to 60 bytes does not matter.
        let mut padded = reply.to_vec();
        padded.resize(60, 0);
        assert_eq!(parse_reply(&padded), Some((GATEWAY_MAC, GATEWAY)));
    }

    #[test]
    fn requests_other_protocols_and_short_frames_are_not_replies() {
        let request = request(ROUTER_MAC, ROUTER, GATEWAY);
        assert_eq!(parse_reply(&request), None, "our own request, looped back");
        let mut ipv4 = answer(&request, GATEWAY_MAC);
        ipv4[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        assert_eq!(parse_reply(&ipv4), None);
        let reply = answer(&request, GATEWAY_MAC);
        assert_eq!(parse_reply(&reply[..FRAME_LEN - 1]), None);
    }
}
