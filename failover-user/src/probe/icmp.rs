//! ICMP echo through one uplink, to its gateway or a far target.
//!
//! A raw socket sees every ICMP packet arriving on the interface, so replies are matched by
//! source, identifier and sequence number, and `IP_PKTINFO` says which interface each one
//! came in on: a reply on another interface proves nothing about this uplink.

use std::{
    io,
    mem::size_of_val,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use socket2::{Protocol, Socket, Type};
use tokio::io::Interest;

use super::{PathEnd, ProbeError, ProbePath, bound_socket, register, within};

/// Echo identifiers of probes: above every NAT port range (the data plane translates ICMP
/// ids inside an uplink's range and would claim replies with ids it has bound) and above
/// Linux's local port range, which NAT ranges stay below.
pub const ECHO_ID_MIN: u16 = 61000;
pub const ECHO_ID_MAX: u16 = 65535;
const _: () = assert!(ECHO_ID_MIN > failover_common::nat::DEFAULT_PORT_MAX);

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
const IPPROTO_ICMP: u8 = 1;
/// Fixed payload: lets a packet capture show what the probe is.
const PAYLOAD: [u8; 16] = *b"failover probe\0\0";
const REQUEST_LEN: usize = 8 + PAYLOAD.len();

/// The identifier and sequence number that tie a reply to its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    pub id: u16,
    pub seq: u16,
}

static ECHOES_SENT: AtomicU32 = AtomicU32::new(0);

/// A fresh pair: identifiers cycle through the probe range, the sequence number counts the
/// cycles, so a pair repeats only after 4536 × 65536 probes.
fn next_echo() -> Echo {
    let n = ECHOES_SENT.fetch_add(1, Ordering::Relaxed);
    let span = u32::from(ECHO_ID_MAX - ECHO_ID_MIN) + 1;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "n % span < 4536 and n / span < 2^32 / 4536 < 2^20; the sequence wraps on purpose"
    )]
    Echo {
        id: ECHO_ID_MIN + (n % span) as u16,
        seq: (n / span) as u16,
    }
}

/// The ICMP part of an echo request (the kernel adds the IP header).
#[must_use]
pub fn echo_request(echo: Echo) -> [u8; REQUEST_LEN] {
    let mut packet = [0; REQUEST_LEN];
    packet[0] = ECHO_REQUEST;
    packet[4..6].copy_from_slice(&echo.id.to_be_bytes());
    packet[6..8].copy_from_slice(&echo.seq.to_be_bytes());
    packet[8..].copy_from_slice(&PAYLOAD);
    let check = !sum(&packet);
    packet[2..4].copy_from_slice(&check.to_be_bytes());
    packet
}

/// One's-complement sum of big-endian 16-bit words (RFC 1071), folded.
fn sum(bytes: &[u8]) -> u16 {
    use failover_common::checksum::fold;
    bytes.chunks(2).fold(0, |acc, pair| {
        let word = match *pair {
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            [hi] => u16::from(hi) << 8,
            _ => 0,
        };
        // Folding as we go keeps the accumulator from overflowing, whatever the length.
        fold(u32::from(acc) + u32::from(word))
    })
}

/// Source address and echo of an IPv4 packet carrying a valid ICMP echo reply.
#[must_use]
pub fn parse_reply(packet: &[u8]) -> Option<(Ipv4Addr, Echo)> {
    let (&version_ihl, _) = packet.split_first()?;
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if version_ihl >> 4 != 4 || header_len < 20 || total_len > packet.len() {
        return None;
    }
    if packet[9] != IPPROTO_ICMP {
        return None;
    }
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let icmp = packet.get(header_len..total_len)?;
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[1] != 0 || sum(icmp) != 0xffff {
        return None;
    }
    let echo = Echo {
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
    };
    Some((source, echo))
}

/// `None` when `packet` is not the reply to `echo` from `target`; otherwise whether it
/// arrived on the probed interface.
fn check_reply(
    packet: &[u8],
    arrived_on: u32,
    target: Ipv4Addr,
    echo: Echo,
    ifindex: u32,
) -> Option<Result<(), ProbeError>> {
    if parse_reply(packet)? != (target, echo) {
        return None;
    }
    Some(if arrived_on == ifindex {
        Ok(())
    } else {
        Err(ProbeError::WrongPath {
            expected: PathEnd::Interface(ifindex),
            got: PathEnd::Interface(arrived_on),
        })
    })
}

/// Sends an echo request to `target` through `path` and waits for its reply.
pub async fn probe(
    path: &ProbePath,
    target: Ipv4Addr,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let socket = bound_socket(path, Type::RAW, Protocol::ICMPV4)?;
    set_recv_pktinfo(&socket)?;
    let socket = register(socket)?;
    let echo = next_echo();
    let request = echo_request(echo);
    let destination = SocketAddrV4::new(target, 0).into();
    within(timeout, async {
        let start = Instant::now();
        socket
            .async_io(Interest::WRITABLE, |s| s.send_to(&request, &destination))
            .await?;
        let mut buf = [0; 1500];
        loop {
            let (len, arrived_on) = socket
                .async_io(Interest::READABLE, |s| recv_with_ifindex(s, &mut buf))
                .await?;
            if let Some(verdict) = check_reply(&buf[..len], arrived_on, target, echo, path.ifindex)
            {
                return verdict.map(|()| start.elapsed());
            }
        }
    })
    .await
}

fn set_recv_pktinfo(socket: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and an int option of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&raw const on).cast(),
            libc::socklen_t::try_from(size_of_val(&on)).expect("int fits socklen_t"),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one packet and the index of the interface it arrived on (`IP_PKTINFO`, which
/// the kernel always attaches once asked to).
fn recv_with_ifindex(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, u32)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s: the control buffer must be aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: msg points at live buffers of the lengths it states.
    let received = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
    let len = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
    let mut ifindex = None;
    // SAFETY: the CMSG_* walk stays inside msg_controllen as filled in by the kernel, and
    // IP_PKTINFO data is an `in_pktinfo` (read unaligned, as CMSG_DATA promises no alignment).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                ifindex = u32::try_from(info.ipi_ifindex).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let ifindex = ifindex.ok_or_else(|| io::Error::other("a packet without IP_PKTINFO"))?;
    Ok((len, ifindex))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
    const ECHO: Echo = Echo { id: 61234, seq: 7 };

    /// The reply a host sends to `request`: an IPv4 header from `source`, the same ICMP
    /// message with type 0 and its checksum patched.
    fn reply_from(source: Ipv4Addr, request: &[u8]) -> Vec<u8> {
        let mut icmp = request.to_vec();
        icmp[0] = ECHO_REPLY;
        icmp[2..4].fill(0);
        let check = !sum(&icmp);
        icmp[2..4].copy_from_slice(&check.to_be_bytes());
        let total = u16::try_from(20 + icmp.len()).unwrap();
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IPPROTO_ICMP, 0, 0];
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet.extend_from_slice(&source.octets());
        packet.extend_from_slice(&[192, 0, 2, 2]);
        packet.extend_from_slice(&icmp);
        packet
    }

    #[test]
    fn request_has_type_id_seq_and_a_valid_checksum() {
        let request = echo_request(ECHO);
        assert_eq!(request[0], ECHO_REQUEST);
        assert_eq!(request[1], 0);
        assert_eq!(&request[4..8], &[0xef, 0x32, 0, 7]);
        assert_eq!(sum(&request), 0xffff, "checksum does not verify");
    }

    #[test]
    fn checksum_matches_rfc_1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(sum(&[0xff]), 0xff00, "odd length pads with a zero byte");
    }

    #[test]
    fn reply_is_parsed_and_matched() {
        let reply = reply_from(TARGET, &echo_request(ECHO));
        assert_eq!(parse_reply(&reply), Some((TARGET, ECHO)));
        assert!(matches!(
            check_reply(&reply, 4, TARGET, ECHO, 4),
            Some(Ok(()))
        ));
    }

    #[test]
    fn other_echoes_and_other_sources_are_not_ours() {
        let other = Echo { seq: 8, ..ECHO };
        let reply = reply_from(TARGET, &echo_request(other));
        assert!(check_reply(&reply, 4, TARGET, ECHO, 4).is_none());
        let reply = reply_from(Ipv4Addr::new(203, 0, 113, 30), &echo_request(ECHO));
        assert!(check_reply(&reply, 4, TARGET, ECHO, 4).is_none());
    }

    #[test]
    fn requests_corrupt_and_truncated_packets_are_rejected() {
        let request = echo_request(ECHO);
        let mut looped = reply_from(TARGET, &request);
        looped[20] = ECHO_REQUEST;
        assert_eq!(parse_reply(&looped), None, "our own request is not a reply");
        let mut corrupt = reply_from(TARGET, &request);
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(parse_reply(&corrupt), None, "bad checksum");
        let reply = reply_from(TARGET, &request);
        for len in 0..reply.len() {
            assert_eq!(parse_reply(&reply[..len]), None, "truncated to {len}");
        }
    }

    #[test]
    fn reply_on_another_interface_is_the_wrong_path() {
        let reply = reply_from(TARGET, &echo_request(ECHO));
        let verdict = check_reply(&reply, 3, TARGET, ECHO, 4);
        assert!(
            matches!(
                verdict,
                Some(Err(ProbeError::WrongPath {
                    expected: PathEnd::Interface(4),
                    got: PathEnd::Interface(3)
                }))
            ),
            "{verdict:?}"
        );
    }

    #[test]
    fn echo_ids_stay_in_the_probe_range() {
        for _ in 0..10_000 {
            let echo = next_echo();
            assert!((ECHO_ID_MIN..=ECHO_ID_MAX).contains(&echo.id), "{echo:?}");
        }
    }
}
