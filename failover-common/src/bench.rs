//! What `cargo xtask bench dataplane` and its XDP programs (the `failover-bench` object, kept
//! apart from the data plane's) agree on: program and map names, the traffic generator's
//! configuration, and which flow each generated frame belongs to.
//! Kernel object names are limited to 15 characters.

/// Reference program: drops every frame. Its `BPF_PROG_TEST_RUN` time is the harness overhead
/// that the other programs' times are reported against.
pub const PROG_DROP: &str = "fob_drop";
/// Traffic generator, run through `BPF_PROG_TEST_RUN` with live frames: gives each frame the
/// next flow's addresses and port, then redirects it through [`MAP_GEN_TX`].
pub const PROG_GEN: &str = "fob_gen";
/// Sink on the far end of the chain: counts every frame in [`MAP_SINK_COUNT`] and drops it.
pub const PROG_SINK: &str = "fob_sink";
/// The floor for any XDP router: swap MACs, redirect through [`MAP_ROUTER_TX`].
pub const PROG_SWAP_REDIRECT: &str = "fob_swap_redir";

/// The floor for any TC router: swap MACs, `bpf_redirect` to the ifindex in
/// [`MAP_ROUTER_TC_TX`].
pub const PROG_TC_SWAP_REDIRECT: &str = "fob_tc_swap";

/// One [`GenConfig`] at index 0.
pub const MAP_GEN_CONFIG: &str = "fob_gen_cfg";
/// Per-CPU [`FlowCursor`] at index 0: where the generator is in the flow cycle.
pub const MAP_GEN_CURSOR: &str = "fob_gen_cur";
/// Devmap whose slot 0 is the generator's egress interface.
pub const MAP_GEN_TX: &str = "fob_gen_tx";
/// Per-CPU count of frames that reached the sink, at index 0.
pub const MAP_SINK_COUNT: &str = "fob_sink_cnt";
/// Devmap whose slot 0 is the bare router's egress interface.
pub const MAP_ROUTER_TX: &str = "fob_rtr_tx";
/// Array whose entry 0 is the bare TC router's egress ifindex.
pub const MAP_ROUTER_TC_TX: &str = "fob_rtr_tc_tx";

/// The start of a generated frame that the generator rewrites on every run, in 8-byte words:
/// the Ethernet, IPv4 (no options) and UDP headers (42 bytes) and the first payload bytes.
/// Whole aligned words copy as six loads and stores; a 42-byte copy became a memmove call.
/// Live frames keep whatever the previous trip through the chain left in them (a forwarding
/// router rewrites MACs and TTL in place), so every run starts from this copy.
pub const TEMPLATE_WORDS: usize = 6;

/// The generator's configuration. Flow `i` (of `flows`) is the template with `i %
/// ports_per_addr` added to the UDP source port, and `k = i / ports_per_addr` times
/// `src_addr_step` added to the source address and times `dst_addr_step` to the destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    pub flows: u32,
    pub ports_per_addr: u32,
    pub src_addr_step: u32,
    pub dst_addr_step: u32,
    /// The first `8 * TEMPLATE_WORDS` bytes of flow 0's frame, as in memory (native-endian
    /// words); its UDP checksum must be zero.
    pub template: [u64; TEMPLATE_WORDS],
}

// SAFETY: repr(C), integers only, four u32 before the u64 array: no padding.
#[cfg(feature = "user")]
unsafe impl aya::Pod for GenConfig {}

/// Flow `i`'s offsets: `port` is added to the source port, `addr` (`k`) scales the address steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowOffset {
    pub port: u16,
    pub addr: u32,
}

/// The generator's place in the flow cycle, kept per CPU. Stepping it takes no division (each
/// one costs tens of cycles per frame in BPF).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCursor {
    pub index: u32,
    pub port: u32,
    pub addr: u32,
}

impl FlowCursor {
    /// Returns the current flow's offsets and moves on, wrapping after `config.flows`. A cursor
    /// past the end (the flow count shrank) starts over; zero counts are taken as one.
    #[inline(always)]
    pub fn advance(&mut self, config: &GenConfig) -> FlowOffset {
        let flows = config.flows.max(1);
        if self.index >= flows {
            *self = Self::default();
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "port < ports_per_addr, which the runner keeps below 2^16"
        )]
        let current = FlowOffset {
            port: self.port as u16,
            addr: self.addr,
        };
        self.index += 1;
        self.port += 1;
        if self.port >= config.ports_per_addr.max(1) {
            self.port = 0;
            self.addr += 1;
        }
        if self.index >= flows {
            *self = Self::default();
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: GenConfig = GenConfig {
        flows: 120_000,
        ports_per_addr: 50_000,
        src_addr_step: 1,
        dst_addr_step: 1,
        template: [0; TEMPLATE_WORDS],
    };

    #[test]
    fn object_names_fit_in_15_bytes() {
        for name in [
            PROG_DROP,
            PROG_GEN,
            PROG_SINK,
            PROG_SWAP_REDIRECT,
            MAP_GEN_CONFIG,
            MAP_GEN_CURSOR,
            MAP_GEN_TX,
            MAP_SINK_COUNT,
            MAP_ROUTER_TX,
        ] {
            assert!(
                name.len() <= 15,
                "{name} is longer than BPF_OBJ_NAME_LEN - 1"
            );
        }
    }

    /// Flow `sequence` by the definition on [`GenConfig`].
    fn by_division(config: &GenConfig, sequence: u32) -> FlowOffset {
        let index = sequence % config.flows.max(1);
        let per_addr = config.ports_per_addr.max(1);
        FlowOffset {
            port: u16::try_from(index % per_addr).unwrap(),
            addr: index / per_addr,
        }
    }

    #[test]
    fn cursor_walks_ports_then_addresses_and_wraps() {
        for config in [
            CONFIG,
            GenConfig {
                flows: 7,
                ports_per_addr: 3,
                ..CONFIG
            },
            GenConfig { flows: 1, ..CONFIG },
            GenConfig {
                flows: 0,
                ports_per_addr: 0,
                ..CONFIG
            },
        ] {
            let mut cursor = FlowCursor::default();
            for sequence in 0..250_000 {
                assert_eq!(
                    cursor.advance(&config),
                    by_division(&config, sequence),
                    "{config:?} #{sequence}"
                );
            }
        }
        let mut cursor = FlowCursor::default();
        assert_eq!(cursor.advance(&CONFIG), FlowOffset { port: 0, addr: 0 });
        for _ in 1..50_001 {
            cursor.advance(&CONFIG);
        }
        assert_eq!(cursor.advance(&CONFIG), FlowOffset { port: 1, addr: 1 });
    }

    #[test]
    fn cursor_past_a_shrunk_flow_count_starts_over() {
        let mut cursor = FlowCursor {
            index: 500,
            port: 500,
            addr: 0,
        };
        let config = GenConfig {
            flows: 10,
            ..CONFIG
        };
        assert_eq!(cursor.advance(&config), FlowOffset { port: 0, addr: 0 });
        assert_eq!(cursor.advance(&config), FlowOffset { port: 1, addr: 0 });
    }

    #[test]
    fn config_has_no_padding() {
        assert_eq!(size_of::<GenConfig>(), 16 + 8 * TEMPLATE_WORDS);
    }
}
