//! Maps of the data plane. Declared as BTF maps so `bpftool map dump` prints typed values.
//! Names are the constants of `failover_common::names` (the attribute needs a literal; the
//! loader looks every map up by the constant, so a mismatch fails loudly at load).

use aya_ebpf::{
    btf_maps::{Array, DevMap, HashMap, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use failover_common::{
    classify::CLASS_STATS_ENTRIES,
    limits::{HOST_ENTRIES, HostKey, HostLimits, HostUsage},
    nat::{
        BINDING_ENTRIES, Binding, BindingKey, CachedFlow, DEVICE_SLOTS, FLOW_CACHE_SLOTS,
        FLOW_ENTRIES, FORWARD_ENTRIES, Flow, FlowKey, ForwardTarget, Lan, MAX_UPLINKS, Policy,
        ReverseKey, Uplink,
    },
    verdict::{REASON_COUNT, RedirectFailures, UplinkCounters},
};

/// Packet counters per (direction, class): `names::MAP_CLASS_STATS`.
#[btf_map(name = "fo_class_stats")]
pub static CLASS_STATS: PerCpuArray<u64, { CLASS_STATS_ENTRIES as usize }> = PerCpuArray::new();

/// Packet counters per verdict reason: `names::MAP_REASONS`.
#[btf_map(name = "fo_reasons")]
pub static REASONS: PerCpuArray<u64, { REASON_COUNT as usize }> = PerCpuArray::new();

/// Redirects that never left, per uplink slot: `names::MAP_REDIRECT_FAILURES`.
#[btf_map(name = "fo_redir_fail")]
pub static REDIRECT_FAILURES: PerCpuArray<RedirectFailures, { MAX_UPLINKS as usize }> =
    PerCpuArray::new();

/// Traffic per uplink slot: `names::MAP_UPLINK_COUNTERS`.
#[btf_map(name = "fo_uplink_ctrs")]
pub static UPLINK_COUNTERS: PerCpuArray<UplinkCounters, { MAX_UPLINKS as usize }> =
    PerCpuArray::new();

/// `names::MAP_UPLINKS`.
#[btf_map(name = "fo_uplinks")]
pub static UPLINKS: Array<Uplink, { MAX_UPLINKS as usize }> = Array::new();

/// `names::MAP_POLICY`.
#[btf_map(name = "fo_policy")]
pub static POLICY: Array<Policy, 1> = Array::new();

/// `names::MAP_LAN`.
#[btf_map(name = "fo_lan")]
pub static LAN: Array<Lan, 1> = Array::new();

/// `names::MAP_DEVICES`.
#[btf_map(name = "fo_devices")]
pub static DEVICES: DevMap<{ DEVICE_SLOTS as usize }> = DevMap::new();

/// `names::MAP_FLOWS`.
#[btf_map(name = "fo_flows")]
pub static FLOWS: LruHashMap<FlowKey, Flow, { FLOW_ENTRIES as usize }> = LruHashMap::new();

/// `names::MAP_FLOW_CACHE`: `FLOW_CACHE_SLOTS` slots per CPU, CPU after CPU (the loader
/// sizes it for the machine's CPUs). A plain array, not a per-CPU one: its lookup is one
/// address computation, where a per-CPU array first loads a pointer from a table, a cache
/// miss of its own when flows are many.
#[btf_map(name = "fo_flow_cache")]
pub static FLOW_CACHE: Array<CachedFlow, { FLOW_CACHE_SLOTS as usize }> = Array::new();

/// `names::MAP_BINDINGS`.
#[btf_map(name = "fo_bindings")]
pub static BINDINGS: LruHashMap<BindingKey, Binding, { BINDING_ENTRIES as usize }> =
    LruHashMap::new();

/// `names::MAP_REVERSE`.
#[btf_map(name = "fo_reverse")]
pub static REVERSE: LruHashMap<ReverseKey, Binding, { BINDING_ENTRIES as usize }> =
    LruHashMap::new();

/// `names::MAP_FORWARDS`: a plain hash, since only the controller adds and removes forwards.
#[btf_map(name = "fo_forwards")]
pub static FORWARDS: HashMap<ReverseKey, ForwardTarget, { FORWARD_ENTRIES as usize }> =
    HashMap::new();

/// `names::MAP_HOSTS`: what each LAN host holds and was refused (`failover_common::limits`).
#[btf_map(name = "fo_hosts")]
pub static HOSTS: LruHashMap<HostKey, HostUsage, { HOST_ENTRIES as usize }> = LruHashMap::new();

/// `names::MAP_HOST_LIMITS`: the per-host limits, renewed by the controller at each recount.
#[btf_map(name = "fo_host_limits")]
pub static HOST_LIMITS: Array<HostLimits, 1> = Array::new();
