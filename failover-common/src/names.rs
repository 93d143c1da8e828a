//! Program and map names. Neither side spells a name twice: the eBPF crate declares its maps
//! and programs under these names and user space looks them up with the same constants.
//! Kernel object names are limited to 15 characters.

/// XDP program attached to the LAN interface (traffic from LAN hosts).
pub const PROG_LAN_INGRESS: &str = "fo_lan_ingress";
/// XDP program attached to each uplink (traffic from the ISPs).
pub const PROG_UPLINK_INGRESS: &str = "fo_wan_ingress";
/// Reference program: swap MACs and send the frame back out (`XDP_TX`). The floor any XDP
/// forwarder is measured against, and the first program whose output bytes are tested.
pub const PROG_MAC_SWAP: &str = "fo_mac_swap";

/// Per-CPU packet counters indexed by [`crate::classify::stat_index`].
pub const MAP_CLASS_STATS: &str = "fo_class_stats";

/// Directory under the BPF filesystem where maps are pinned.
pub const PIN_DIR: &str = "/sys/fs/bpf/failover";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_object_names_fit_in_15_bytes() {
        for name in [
            PROG_LAN_INGRESS,
            PROG_UPLINK_INGRESS,
            PROG_MAC_SWAP,
            MAP_CLASS_STATS,
        ] {
            assert!(
                name.len() <= 15,
                "{name} is longer than BPF_OBJ_NAME_LEN - 1"
            );
        }
    }
}
