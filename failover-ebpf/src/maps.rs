//! Maps of the data plane. Declared as BTF maps so `bpftool map dump` prints typed values.
//! Names are the constants of `failover_common::names` (the attribute needs a literal; the
//! loader looks every map up by the constant, so a mismatch fails loudly at load).

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use failover_common::classify::CLASS_STATS_ENTRIES;

/// Packet counters per (direction, class): `names::MAP_CLASS_STATS`.
#[btf_map(name = "fo_class_stats")]
pub static CLASS_STATS: PerCpuArray<u64, { CLASS_STATS_ENTRIES as usize }> = PerCpuArray::new();
