//! A namespace of its own for data-plane tests: `BPF_PROG_TEST_RUN` runs in the caller's
//! namespace, where `bpf_fib_lookup` needs a LAN interface, a route and a neighbour entry.

use failover_tests::{lab::Cmd, netns};

pub const NS: &str = "fo-dptest";
/// The router's LAN interface in the namespace, and its MAC.
pub const LAN_IF: &str = "lan0";
pub const LAN_MAC: &str = "02:00:00:00:00:01";
/// The LAN host whose neighbour entry is resolved.
pub const RESOLVED_HOST: &str = "10.10.0.11";
pub const RESOLVED_HOST_MAC: &str = "02:00:00:00:00:11";

/// Creates the namespace (removing a leftover first) and removes it on drop.
pub struct ScratchNetns {
    pub lan_ifindex: u32,
    /// Another interface, usable as a redirect target that is not the LAN.
    pub peer_ifindex: u32,
}

impl ScratchNetns {
    pub fn create() -> Self {
        remove();
        let ip = |args: &[&str]| {
            Cmd::ip(NS)
                .args(args.iter().copied())
                .run()
                .unwrap_or_else(|e| panic!("{e:#}"));
        };
        Cmd::new("ip")
            .args(["netns", "add", NS])
            .run()
            .expect("ip netns add");
        let mut guard = ScratchNetns {
            lan_ifindex: 0,
            peer_ifindex: 0,
        };
        ip(&["link", "set", "lo", "up"]);
        ip(&[
            "link", "add", LAN_IF, "address", LAN_MAC, "type", "veth", "peer", "name", "lanpeer",
        ]);
        ip(&["addr", "add", "10.10.0.1/24", "dev", LAN_IF]);
        ip(&["link", "set", LAN_IF, "up"]);
        ip(&["link", "set", "lanpeer", "up"]);
        ip(&[
            "neigh",
            "replace",
            RESOLVED_HOST,
            "lladdr",
            RESOLVED_HOST_MAC,
            "dev",
            LAN_IF,
            "nud",
            "permanent",
        ]);
        netns::sysctl(NS, "net.ipv4.ip_forward", "1").expect("enable forwarding");
        guard.lan_ifindex = ifindex(LAN_IF);
        guard.peer_ifindex = ifindex("lanpeer");
        guard
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        remove();
    }
}

/// The interface's index inside the namespace (sysfs would show the caller's namespace; the
/// ioctl behind `if_nametoindex` uses a socket of the thread's own).
fn ifindex(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).expect("interface name");
    // SAFETY: a valid NUL-terminated string.
    let index = netns::in_netns(NS, || unsafe { libc::if_nametoindex(name.as_ptr()) })
        .expect("enter namespace");
    assert_ne!(index, 0, "no interface {name:?} in {NS}");
    index
}

fn remove() {
    if netns::exists(NS) {
        // Deleting the namespace deletes the veth pair in it.
        let _ = Cmd::new("ip").args(["netns", "del", NS]).run();
    }
}
