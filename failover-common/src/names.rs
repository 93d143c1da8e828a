//! Program and map names. Neither side spells a name twice: the eBPF crate declares its maps
//! and programs under these names and user space looks them up with the same constants.
//! Kernel object names are limited to 15 characters.

/// XDP program attached to the LAN interface (traffic from LAN hosts).
pub const PROG_LAN_INGRESS: &str = "fo_lan_ingress";
/// XDP program attached to each uplink (traffic from the ISPs).
pub const PROG_UPLINK_INGRESS: &str = "fo_wan_ingress";
/// TC programs (ingress, `clsact`/TCX) of the TC path: the LAN, an Ethernet uplink, and an
/// uplink without an Ethernet header. Behind the XDP programs where those run.
pub const PROG_LAN_TC: &str = "fo_lan_tc";
pub const PROG_UPLINK_TC: &str = "fo_wan_tc";
pub const PROG_UPLINK_TC_L3: &str = "fo_wan_tc_l3";
/// Every TC program (the loader attaches them as TC, the rest as XDP or tracepoints).
pub const TC_PROGRAMS: [&str; 3] = [PROG_LAN_TC, PROG_UPLINK_TC, PROG_UPLINK_TC_L3];
/// Reference program: swap MACs and send the frame back out (`XDP_TX`). The floor any XDP
/// forwarder is measured against, and the first program whose output bytes are tested.
pub const PROG_MAC_SWAP: &str = "fo_mac_swap";

/// Raw tracepoint program on `xdp_redirect_err`: a redirect the kernel refused after the
/// program returned, counted per uplink.
pub const PROG_REDIRECT_ERR: &str = "fo_redirect_err";
/// Raw tracepoint program on `xdp_devmap_xmit`: frames a target device dropped.
pub const PROG_XMIT_ERR: &str = "fo_xmit_err";
/// The kernel tracepoints those two programs attach to (raw: no tracefs needed).
pub const TRACEPOINT_REDIRECT_ERR: &str = "xdp_redirect_err";
pub const TRACEPOINT_DEVMAP_XMIT: &str = "xdp_devmap_xmit";

/// Per-CPU packet counters indexed by [`crate::classify::stat_index`].
pub const MAP_CLASS_STATS: &str = "fo_class_stats";

/// Per-CPU counters indexed by [`crate::verdict::Reason`].
pub const MAP_REASONS: &str = "fo_reasons";
/// Per-CPU [`crate::verdict::UplinkCounters`] per uplink slot.
pub const MAP_UPLINK_COUNTERS: &str = "fo_uplink_ctrs";
/// Per-CPU [`crate::verdict::RedirectFailures`] per uplink slot.
pub const MAP_REDIRECT_FAILURES: &str = "fo_redir_fail";
/// [`crate::nat::Uplink`] per uplink slot.
pub const MAP_UPLINKS: &str = "fo_uplinks";
/// The one [`crate::nat::Policy`].
pub const MAP_POLICY: &str = "fo_policy";
/// The one [`crate::nat::Lan`].
pub const MAP_LAN: &str = "fo_lan";
/// Interfaces to redirect to: uplink slots `0..MAX_UPLINKS`, then the LAN at [`crate::nat::LAN_SLOT`].
pub const MAP_DEVICES: &str = "fo_devices";
/// Connection tracking: [`crate::nat::FlowKey`] to [`crate::nat::Flow`].
pub const MAP_FLOWS: &str = "fo_flows";
/// Per-CPU cache of recent outbound translations: [`crate::nat::CachedFlow`].
pub const MAP_FLOW_CACHE: &str = "fo_flow_cache";
/// Endpoint-independent bindings: [`crate::nat::BindingKey`] to [`crate::nat::Binding`].
pub const MAP_BINDINGS: &str = "fo_bindings";
/// Reverse index of the bindings: [`crate::nat::ReverseKey`] to [`crate::nat::Binding`].
pub const MAP_REVERSE: &str = "fo_reverse";
/// Port forwards: [`crate::nat::ReverseKey`] (uplink, protocol, external port) to
/// [`crate::nat::ForwardTarget`], written by the controller from `[[forward]]`.
pub const MAP_FORWARDS: &str = "fo_forwards";
/// Per LAN host: [`crate::limits::HostKey`] to [`crate::limits::HostUsage`].
pub const MAP_HOSTS: &str = "fo_hosts";
/// The one [`crate::limits::HostLimits`].
pub const MAP_HOST_LIMITS: &str = "fo_host_limits";

/// Every map of the data plane: all are pinned, so a restarted controller finds its state.
pub const MAPS: [&str; 15] = [
    MAP_CLASS_STATS,
    MAP_REASONS,
    MAP_UPLINK_COUNTERS,
    MAP_REDIRECT_FAILURES,
    MAP_UPLINKS,
    MAP_POLICY,
    MAP_LAN,
    MAP_DEVICES,
    MAP_FLOWS,
    MAP_FLOW_CACHE,
    MAP_BINDINGS,
    MAP_REVERSE,
    MAP_FORWARDS,
    MAP_HOSTS,
    MAP_HOST_LIMITS,
];

/// Load-time constant: nanoseconds per kernel tick (1e9 / `CONFIG_HZ`). The data plane's
/// clock is `jiffies * FO_NS_PER_TICK`: reading jiffies costs a fraction of a clock read.
pub const GLOBAL_NS_PER_TICK: &str = "FO_NS_PER_TICK";

/// Load-time constant: byte offset of `ifindex` in the kernel's `struct net_device`, read
/// from the kernel's BTF by the loader (0: unknown, the tracepoint programs count nothing).
pub const GLOBAL_IFINDEX_OFFSET: &str = "FO_IFINDEX_OFF";

/// The nftables table (family `ip`) of the kernel-side leak guard and safety-net NAT.
pub const NFT_TABLE: &str = "failover";

/// The nftables table (family `ip`) of hairpin NAT: LAN hosts reaching a forward through an
/// uplink's address.
pub const NFT_HAIRPIN_TABLE: &str = "failover_hairpin";

/// Directory under the BPF filesystem where maps and program links are pinned by default.
pub const PIN_DIR: &str = "/sys/fs/bpf/failover";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_object_names_fit_in_15_bytes() {
        for name in [
            PROG_LAN_INGRESS,
            PROG_UPLINK_INGRESS,
            PROG_LAN_TC,
            PROG_UPLINK_TC,
            PROG_UPLINK_TC_L3,
            PROG_MAC_SWAP,
            PROG_REDIRECT_ERR,
            PROG_XMIT_ERR,
        ]
        .into_iter()
        .chain(MAPS)
        {
            assert!(
                name.len() <= 15,
                "{name} is longer than BPF_OBJ_NAME_LEN - 1"
            );
        }
    }
}
