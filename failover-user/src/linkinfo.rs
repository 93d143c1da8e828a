//! What the kernel says about an interface, read synchronously (the daemon answers a report
//! inside its event loop, where netlink's async requests cannot be awaited): the link state
//! from sysfs and the IPv4 addresses with their prefixes from `getifaddrs(3)`.

use std::{ffi::CStr, io, net::Ipv4Addr, path::Path};

use crate::control::LinkState;

/// Carrier, operstate, speed and duplex of `interface`, from `/sys/class/net/IF/`.
#[must_use]
pub fn link_state(interface: &str) -> LinkState {
    link_state_in(Path::new("/sys/class/net"), interface)
}

/// Each value the kernel does not give (a down interface has no readable `carrier`, many
/// drivers report speed -1 and duplex "unknown") is `None`.
fn link_state_in(root: &Path, interface: &str) -> LinkState {
    let dir = root.join(interface);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty() && text != "unknown")
    };
    LinkState {
        carrier: read("carrier").and_then(|c| match c.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }),
        operstate: read("operstate"),
        speed_mbps: read("speed").and_then(|s| s.parse().ok()),
        duplex: read("duplex"),
    }
}

/// The IPv4 addresses of `interface`, each with its prefix length.
pub fn ipv4_addresses(interface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs stores the head of a list it allocates in `list`; freed below.
    if unsafe { libc::getifaddrs(&raw mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs returned, valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_netmask.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a non-null `ifa_name` is a NUL-terminated string; every sockaddr starts
        // with its family.
        let (name, family) =
            unsafe { (CStr::from_ptr(entry.ifa_name), (*entry.ifa_addr).sa_family) };
        if name.to_bytes() != interface.as_bytes() || i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: for AF_INET both the address and the netmask are `sockaddr_in`; read
        // unaligned, as the list promises no alignment for the larger type.
        let (addr, mask) = unsafe {
            (
                entry.ifa_addr.cast::<libc::sockaddr_in>().read_unaligned(),
                entry
                    .ifa_netmask
                    .cast::<libc::sockaddr_in>()
                    .read_unaligned(),
            )
        };
        let prefix = u32::from_be(mask.sin_addr.s_addr).leading_ones();
        found.push((
            Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u8::try_from(prefix).unwrap_or(32),
        ));
    }
    // SAFETY: the list from getifaddrs above, not used after this.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_values_are_read_and_unknowns_left_out() {
        let root = std::env::temp_dir().join(format!("fo-linkinfo-{}", std::process::id()));
        let dir = root.join("eth1");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, value) in [
            ("carrier", "1\n"),
            ("operstate", "up\n"),
            ("speed", "100\n"),
        ] {
            std::fs::write(dir.join(name), value).unwrap();
        }
        std::fs::write(dir.join("duplex"), "full\n").unwrap();
        let up = link_state_in(&root, "eth1");
        std::fs::write(dir.join("speed"), "-1\n").unwrap();
        std::fs::write(dir.join("duplex"), "unknown\n").unwrap();
        std::fs::write(dir.join("carrier"), "0\n").unwrap();
        let unknown = link_state_in(&root, "eth1");
        let missing = link_state_in(&root, "eth9");
        std::fs::remove_dir_all(&root).unwrap();

        assert_eq!(
            up,
            LinkState {
                carrier: Some(true),
                operstate: Some("up".into()),
                speed_mbps: Some(100),
                duplex: Some("full".into()),
            }
        );
        assert_eq!(
            (unknown.carrier, unknown.speed_mbps, unknown.duplex),
            (Some(false), None, None)
        );
        assert_eq!(missing, LinkState::default());
    }

    #[test]
    fn loopback_has_127_0_0_1_slash_8() {
        let addresses = ipv4_addresses("lo").unwrap();
        assert!(
            addresses.contains(&(Ipv4Addr::LOCALHOST, 8)),
            "{addresses:?}"
        );
        assert_eq!(ipv4_addresses("no-such-if0").unwrap(), []);
    }
}
