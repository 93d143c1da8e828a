//! Reading what [`crate::datapath::choose`] decides from: an interface's link type (the
//! `SIOCGIFHWADDR` ioctl: sysfs shows the namespace it was mounted in, not the caller's),
//! its driver (the `ETHTOOL_GDRVINFO` ioctl, which virtual devices answer too) and the XDP
//! features the kernel reports (the `netdev` generic-netlink family, kernel 6.3 and later).
//! Synchronous: each is one quick kernel call, read at start and when a link changes.

use std::{io, os::fd::AsRawFd as _, sync::OnceLock};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, Nla,
    NlaBuffer, NlasIterator, Parseable, ParseableParametrized, parse_u32, parse_u64,
};
use netlink_packet_generic::{
    GenlFamily, GenlHeader, GenlMessage,
    ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use crate::datapath::{Facts, XdpFeatures};

/// The facts of `interface` (index `ifindex`). A fact the kernel does not give is left out
/// (`None`); only a missing link type is an error.
pub fn read(interface: &str, ifindex: u32) -> io::Result<Facts> {
    Ok(Facts {
        link_type: link_type(interface)?,
        driver: driver(interface).ok(),
        xdp: xdp_features(ifindex).ok().flatten().map(XdpFeatures),
    })
}

/// An `ifreq` naming `interface`.
fn ifreq_for(interface: &str) -> io::Result<libc::ifreq> {
    let name = interface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: a plain C struct for which all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(name) {
        *to = libc::c_char::from_ne_bytes([*from]);
    }
    Ok(request)
}

/// `dev->type` (`ARPHRD_*`), which the kernel returns as the hardware address's family.
fn link_type(interface: &str) -> io::Result<u16> {
    let mut request = ifreq_for(interface)?;
    // Any AF_INET datagram socket takes the ioctl; it sends nothing.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: SIOCGIFHWADDR with a valid ifreq, alive for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut request) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the hardware address member.
    Ok(unsafe { request.ifr_ifru.ifru_hwaddr.sa_family })
}

/// `ETHTOOL_GDRVINFO` (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// `struct ethtool_drvinfo` (linux/ethtool.h).
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The driver's name, as `ethtool -i` prints it.
fn driver(interface: &str) -> io::Result<String> {
    let mut request = ifreq_for(interface)?;
    // Any AF_INET datagram socket takes the ioctl; it sends nothing.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: a plain C struct for which all zeroes is a valid value.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    request.ifr_ifru.ifru_data = (&raw mut info).cast();
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data points at a drvinfo of the size the
    // kernel writes, both alive for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &raw mut request) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info
        .driver
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// `NETDEV_CMD_DEV_GET` and the attributes used (linux/netdev.h).
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;

/// A `netdev` family message: a command and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Netdev {
    cmd: u8,
    attrs: Vec<NetdevAttr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NetdevAttr {
    Ifindex(u32),
    XdpFeatures(u64),
    Other(DefaultNla),
}

impl Nla for NetdevAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Ifindex(_) => 4,
            Self::XdpFeatures(_) => 8,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Ifindex(_) => NETDEV_A_DEV_IFINDEX,
            Self::XdpFeatures(_) => NETDEV_A_DEV_XDP_FEATURES,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Ifindex(index) => buffer[..4].copy_from_slice(&index.to_ne_bytes()),
            Self::XdpFeatures(features) => buffer[..8].copy_from_slice(&features.to_ne_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for NetdevAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        Ok(match buf.kind() {
            NETDEV_A_DEV_IFINDEX => Self::Ifindex(parse_u32(buf.value())?),
            NETDEV_A_DEV_XDP_FEATURES => Self::XdpFeatures(parse_u64(buf.value())?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl GenlFamily for Netdev {
    fn family_name() -> &'static str {
        "netdev"
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for Netdev {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Netdev {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = NlasIterator::new(buf)
            .map(|nla| nla.and_then(|nla| NetdevAttr::parse(&nla)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// The XDP features of interface `ifindex`; `Ok(None)` when the kernel has no `netdev`
/// family (before 6.3) or does not say.
fn xdp_features(ifindex: u32) -> io::Result<Option<u64>> {
    // The family's id is fixed while the kernel runs: asked once per process, not at every
    // re-read (the watchdog re-reads each uplink every second).
    static FAMILY: OnceLock<Option<u16>> = OnceLock::new();
    let mut socket = Socket::new(NETLINK_GENERIC)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let family = if let Some(family) = FAMILY.get() {
        *family
    } else {
        let family = family_id(&socket)?;
        *FAMILY.get_or_init(|| family)
    };
    let Some(family) = family else {
        return Ok(None);
    };
    let mut message = GenlMessage::from_payload(Netdev {
        cmd: NETDEV_CMD_DEV_GET,
        attrs: vec![NetdevAttr::Ifindex(ifindex)],
    });
    message.set_resolved_family_id(family);
    let reply: Option<Netdev> = request(&socket, message)?;
    Ok(reply.and_then(|reply| {
        reply.attrs.into_iter().find_map(|attr| match attr {
            NetdevAttr::XdpFeatures(features) => Some(features),
            _ => None,
        })
    }))
}

/// The `netdev` family's id, from the generic-netlink controller; `None` when it has none.
fn family_id(socket: &Socket) -> io::Result<Option<u16>> {
    let message = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(Netdev::family_name().to_owned())],
    });
    let reply: Option<GenlCtrl> = request(socket, message)?;
    Ok(reply.and_then(|reply| {
        reply.nlas.into_iter().find_map(|attr| match attr {
            GenlCtrlAttrs::FamilyId(id) => Some(id),
            _ => None,
        })
    }))
}

/// Sends one request and returns its answer; `None` when the kernel answers with an error
/// (no such family, no such device).
fn request<F>(socket: &Socket, mut message: GenlMessage<F>) -> io::Result<Option<F>>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    message.finalize();
    let mut outer = NetlinkMessage::from(message);
    outer.header.flags = NLM_F_REQUEST;
    outer.finalize();
    let mut bytes = vec![0; outer.buffer_len()];
    outer.serialize(&mut bytes);
    socket.send(&bytes, 0)?;
    let (datagram, _) = socket.recv_from_full()?;
    let reply = NetlinkMessage::<GenlMessage<F>>::deserialize(&datagram)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(match reply.payload {
        NetlinkPayload::InnerMessage(inner) => Some(inner.payload),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_not_ethernet_and_its_facts_read() {
        // Loopback exists in every namespace the tests run in.
        let facts = read("lo", 1).expect("reading lo");
        assert_eq!(facts.link_type, 772, "ARPHRD_LOOPBACK");
        assert_ne!(facts.link_type, crate::datapath::ARPHRD_ETHER);
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        assert!(read("fo-no-such-if", 0).is_err());
    }

    #[test]
    fn netdev_messages_round_trip() {
        let message = Netdev {
            cmd: NETDEV_CMD_DEV_GET,
            attrs: vec![NetdevAttr::Ifindex(7), NetdevAttr::XdpFeatures(0x7)],
        };
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        let parsed = Netdev::parse_with_param(
            &bytes,
            GenlHeader {
                cmd: NETDEV_CMD_DEV_GET,
                version: 1,
            },
        )
        .expect("parsing");
        assert_eq!(parsed, message);
    }
}
