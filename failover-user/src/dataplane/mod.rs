//! The data plane as the user side sees it, and the only code there that touches aya: the
//! compiled object, its programs and maps (this file), [`Dataplane`], the handle the running
//! controller holds (`handle`), loading or adopting it ([`loader`]), which programs go on
//! which interface ([`attachments`]) and what stays pinned across restarts ([`pins`]).

use aya::{
    Ebpf, EbpfLoader, Pod,
    maps::{Array, DevMap, HashMap, MapData, MapError, PerCpuArray, xdp::XdpMapError},
    programs::{ProgramError, RawTracePoint, SchedClassifier, Xdp},
};
use failover_common::{
    classify::{CLASS_STATS_ENTRIES, Direction, PacketClass, stat_index},
    limits::{HostKey, HostLimits, HostUsage},
    names, nat,
    verdict::{RedirectFailures, UplinkCounters},
};

use crate::config::DataplaneLog;

pub mod attachments;
mod handle;
pub mod loader;
pub mod pins;
#[cfg(test)]
pub use handle::MemoryFlows;
pub use handle::{Dataplane, FlowTable};

/// The data plane's ELF object, built by `build.rs` from `failover-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/failover"));
/// The benchmark's programs (`failover_common::bench`), built from the same crate.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/failover-bench"));

/// Errors loading or reading the data plane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("loading the eBPF object failed (are you root, with a BPF-enabled kernel?): {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program `{name}`: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot tell the kernel's tick rate: {0}")]
    Clock(#[source] std::io::Error),
    #[error("cannot tell how many CPUs the kernel may bring online: {0}")]
    Cpus(#[source] std::io::Error),
    #[error("map `fo_devices`: {0}")]
    Devices(#[from] XdpMapError),
}

/// Capacity of the NAT tables. Each is an LRU map: when full, the least recently used entry
/// makes room, so a full table degrades (old idle flows go first) but never corrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSizes {
    pub flows: u32,
    pub bindings: u32,
}

impl Default for TableSizes {
    fn default() -> Self {
        TableSizes {
            flows: nat::FLOW_ENTRIES,
            bindings: nat::BINDING_ENTRIES,
        }
    }
}

/// Parses the object and creates its maps, without loading programs or attaching anything.
pub fn open(sizes: TableSizes) -> Result<Ebpf, DataplaneError> {
    open_pinned(sizes, None, DataplaneLog::Off)
}

/// Like [`open`], with every map pinned in `map_dir` as `map_dir/NAME`, the layout of
/// `crate::pins::Pins` (or, when already pinned there, the pinned map with its contents, in
/// place of a new one), and the programs' log statements enabled up to `log`.
pub fn open_pinned(
    sizes: TableSizes,
    map_dir: Option<&std::path::Path>,
    log: DataplaneLog,
) -> Result<Ebpf, DataplaneError> {
    let tick = crate::clock::tick_ns().map_err(DataplaneError::Clock)?;
    let log_level = log.level();
    // Unknown (no kernel BTF): the tracepoint programs count nothing; `redirect_counting`
    // says so.
    let ifindex_offset = crate::kernel_btf::net_device_ifindex_offset().unwrap_or(0);
    let mut loader = EbpfLoader::new();
    loader
        .override_global(names::GLOBAL_NS_PER_TICK, &tick, true)
        .override_global(names::GLOBAL_IFINDEX_OFFSET, &ifindex_offset, true)
        .override_global(aya_log::LEVEL, &log_level, true)
        .map_max_entries(names::MAP_FLOWS, sizes.flows)
        .map_max_entries(names::MAP_FLOW_CACHE, flow_cache_entries()?)
        .map_max_entries(names::MAP_BINDINGS, sizes.bindings)
        .map_max_entries(names::MAP_REVERSE, sizes.bindings);
    if let Some(dir) = map_dir {
        for name in names::MAPS.into_iter().chain([LOG_MAP]) {
            loader.map_pin_path(name, dir.join(name));
        }
    }
    Ok(loader.load(EBPF_OBJECT)?)
}

/// aya-log's ring buffer: pinned too, so a controller that adopts the data plane reads its
/// messages.
const LOG_MAP: &str = "AYA_LOGS";

/// The policy the data plane holds.
pub fn policy(ebpf: &Ebpf) -> Result<nat::Policy, DataplaneError> {
    read_array(ebpf, names::MAP_POLICY, 0)
}

/// `FLOW_CACHE_SLOTS` for each CPU the kernel may bring online.
fn flow_cache_entries() -> Result<u32, DataplaneError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))?;
    Ok(nat::FLOW_CACHE_SLOTS * u32::try_from(cpus).unwrap_or(1))
}

/// The program types the data plane loads without arguments.
trait Loadable {
    fn is_loaded(&self) -> bool;
    fn load_it(&mut self) -> Result<(), ProgramError>;
}

impl Loadable for Xdp {
    fn is_loaded(&self) -> bool {
        self.fd().is_ok()
    }

    fn load_it(&mut self) -> Result<(), ProgramError> {
        self.load()
    }
}

impl Loadable for SchedClassifier {
    fn is_loaded(&self) -> bool {
        self.fd().is_ok()
    }

    fn load_it(&mut self) -> Result<(), ProgramError> {
        self.load()
    }
}

/// Program `name` of type `P`, loaded into the kernel (verified) if it was not yet.
fn loaded<'a, P: Loadable>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut P, DataplaneError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program: &mut P = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?
        .try_into()
        .map_err(|source| DataplaneError::Program { name, source })?;
    if !program.is_loaded() {
        program
            .load_it()
            .map_err(|source| DataplaneError::Program { name, source })?;
    }
    Ok(program)
}

/// The XDP program `name`, loaded into the kernel (verified) if it was not yet.
pub fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut Xdp, DataplaneError> {
    loaded(ebpf, name)
}

/// The TC program `name`, loaded into the kernel (verified) if it was not yet.
pub fn tc_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DataplaneError> {
    loaded(ebpf, name)
}

/// Loads and attaches the two tracepoint programs that count, per uplink, the redirects the
/// kernel refused after the XDP program returned. They are not pinned: they count while a
/// controller runs (the links belong to `ebpf`: dropping it, or exiting, detaches them).
pub fn count_refused_redirects(ebpf: &mut Ebpf) -> Result<(), String> {
    crate::kernel_btf::net_device_ifindex_offset()?;
    for (name, tracepoint) in [
        (names::PROG_REDIRECT_ERR, names::TRACEPOINT_REDIRECT_ERR),
        (names::PROG_XMIT_ERR, names::TRACEPOINT_DEVMAP_XMIT),
    ] {
        let program: &mut RawTracePoint = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("the eBPF object has no program `{name}`"))?
            .try_into()
            .map_err(|e| format!("{name}: {e}"))?;
        if program.fd().is_err() {
            program.load().map_err(|e| format!("loading {name}: {e}"))?;
        }
        program
            .attach(tracepoint)
            .map_err(|e| format!("attaching {name} to {tracepoint}: {e}"))?;
    }
    Ok(())
}

/// Redirects of uplink `slot` that never left, summed over CPUs.
pub fn redirect_failures(ebpf: &Ebpf, slot: u32) -> Result<RedirectFailures, DataplaneError> {
    per_cpu_fold(
        ebpf,
        names::MAP_REDIRECT_FAILURES,
        slot,
        |sum: &mut RedirectFailures, c| {
            sum.to_uplink += c.to_uplink;
            sum.to_lan += c.to_lan;
        },
    )
}

/// Packet counters per direction and class, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassStats(Vec<u64>);

impl ClassStats {
    pub fn read(ebpf: &Ebpf) -> Result<Self, DataplaneError> {
        per_cpu_sums::<u64>(ebpf, names::MAP_CLASS_STATS, CLASS_STATS_ENTRIES, |v| *v)
            .map(ClassStats)
    }

    #[must_use]
    pub fn get(&self, direction: Direction, class: PacketClass) -> u64 {
        self.0[stat_index(direction, class) as usize]
    }

    /// Counters that differ between `self` and `earlier`, with their increase.
    #[must_use]
    pub fn increase_since(&self, earlier: &ClassStats) -> Vec<(Direction, PacketClass, u64)> {
        [Direction::Lan, Direction::Uplink]
            .into_iter()
            .flat_map(|d| PacketClass::ALL.into_iter().map(move |c| (d, c)))
            .filter_map(|(d, c)| {
                let delta = self.get(d, c).wrapping_sub(earlier.get(d, c));
                (delta != 0).then_some((d, c, delta))
            })
            .collect()
    }
}

/// Writes `value` at `index` of the array map `name`.
fn write_array<V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    index: u32,
    value: V,
) -> Result<(), DataplaneError> {
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    let mut array =
        Array::<_, V>::try_from(map).map_err(|source| DataplaneError::Map { name, source })?;
    array
        .set(index, value, 0)
        .map_err(|source| DataplaneError::Map { name, source })
}

/// Describes the LAN side: its interface (redirect target of replies) and network.
pub fn set_lan(ebpf: &mut Ebpf, lan: nat::Lan) -> Result<(), DataplaneError> {
    write_array(ebpf, names::MAP_LAN, 0, lan)?;
    set_device(ebpf, nat::LAN_SLOT, lan.ifindex)
}

/// Describes the uplink in `slot` and makes its interface the slot's redirect target.
pub fn set_uplink(ebpf: &mut Ebpf, slot: u32, uplink: nat::Uplink) -> Result<(), DataplaneError> {
    write_array(ebpf, names::MAP_UPLINKS, slot, uplink)?;
    set_device(ebpf, slot, uplink.ifindex)
}

/// Empties uplink slot `slot`: no entry, no redirect target (a devmap slot set to ifindex 0
/// is empty).
pub fn clear_uplink(ebpf: &mut Ebpf, slot: u32) -> Result<(), DataplaneError> {
    write_array(ebpf, names::MAP_UPLINKS, slot, nat::Uplink::default())?;
    set_device(ebpf, slot, 0)
}

/// The data plane's LAN entry.
pub fn lan(ebpf: &Ebpf) -> Result<nat::Lan, DataplaneError> {
    read_array(ebpf, names::MAP_LAN, 0)
}

/// Chooses the uplink new flows take.
pub fn set_policy(ebpf: &mut Ebpf, policy: nat::Policy) -> Result<(), DataplaneError> {
    write_array(ebpf, names::MAP_POLICY, 0, policy)
}

fn set_device(ebpf: &mut Ebpf, slot: u32, ifindex: u32) -> Result<(), DataplaneError> {
    let name = names::MAP_DEVICES;
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    let mut devices =
        DevMap::try_from(map).map_err(|source| DataplaneError::Map { name, source })?;
    Ok(devices.set(slot, ifindex, None, 0)?)
}

/// Every devmap slot's target (`None`: empty).
pub fn devices(ebpf: &Ebpf) -> Result<Vec<Option<u32>>, DataplaneError> {
    let name = names::MAP_DEVICES;
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    let devices = DevMap::try_from(map).map_err(|source| DataplaneError::Map { name, source })?;
    (0..nat::DEVICE_SLOTS)
        .map(|slot| match devices.get(slot, 0) {
            Ok(value) => Ok(Some(value.if_index)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(None)
            }
            Err(source) => Err(DataplaneError::Map { name, source }),
        })
        .collect()
}

/// The data plane's entry for uplink `slot`.
pub fn uplink(ebpf: &Ebpf, slot: u32) -> Result<nat::Uplink, DataplaneError> {
    read_array(ebpf, names::MAP_UPLINKS, slot)
}

/// The value at `index` of the array map `name`.
fn read_array<V: Pod>(ebpf: &Ebpf, name: &'static str, index: u32) -> Result<V, DataplaneError> {
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    let array = Array::<&MapData, V>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    array
        .get(&index, 0)
        .map_err(|source| DataplaneError::Map { name, source })
}

/// Traffic counters of uplink `slot`, summed over CPUs.
pub fn uplink_counters(ebpf: &Ebpf, slot: u32) -> Result<UplinkCounters, DataplaneError> {
    per_cpu_fold(
        ebpf,
        names::MAP_UPLINK_COUNTERS,
        slot,
        |sum: &mut UplinkCounters, c| {
            sum.packets_out += c.packets_out;
            sum.bytes_out += c.bytes_out;
            sum.packets_in += c.packets_in;
            sum.bytes_in += c.bytes_in;
        },
    )
}

/// Entry `index` of the per-CPU array `name`, the CPUs' values added up by `add`.
fn per_cpu_fold<V: Pod + Default>(
    ebpf: &Ebpf,
    name: &'static str,
    index: u32,
    add: impl Fn(&mut V, &V),
) -> Result<V, DataplaneError> {
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    let array = PerCpuArray::<&MapData, V>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    let per_cpu = array
        .get(&index, 0)
        .map_err(|source| DataplaneError::Map { name, source })?;
    Ok(per_cpu.iter().fold(V::default(), |mut sum, v| {
        add(&mut sum, v);
        sum
    }))
}

/// Every tracked flow.
pub fn flows(ebpf: &Ebpf) -> Result<Vec<(nat::FlowKey, nat::Flow)>, DataplaneError> {
    hash_entries(ebpf, names::MAP_FLOWS)
}

/// Rewrites a tracked flow (the controller marks flows it moves `tcp_state::MOVED`).
/// A flow that ended meanwhile is not brought back.
pub fn update_flow(
    ebpf: &mut Ebpf,
    key: &nat::FlowKey,
    flow: nat::Flow,
) -> Result<(), DataplaneError> {
    /// `BPF_EXIST`: update only, never insert.
    const UPDATE_ONLY: u64 = 2;
    let name = names::MAP_FLOWS;
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    let mut table = HashMap::<&mut MapData, nat::FlowKey, nat::Flow>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    match table.insert(key, flow, UPDATE_ONLY) {
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other.map_err(|source| DataplaneError::Map { name, source }),
    }
}

/// Forgets the given flows (those of a failed uplink); returns how many were still there.
pub fn remove_flows(ebpf: &mut Ebpf, keys: &[nat::FlowKey]) -> Result<usize, DataplaneError> {
    let name = names::MAP_FLOWS;
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    let mut table = HashMap::<&mut MapData, nat::FlowKey, nat::Flow>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    Ok(keys.iter().filter(|key| table.remove(key).is_ok()).count())
}

/// Every endpoint-independent binding, by its reverse key.
pub fn reverse_bindings(
    ebpf: &Ebpf,
) -> Result<Vec<(nat::ReverseKey, nat::Binding)>, DataplaneError> {
    hash_entries(ebpf, names::MAP_REVERSE)
}

/// The port forwards the data plane holds.
pub fn forwards(ebpf: &Ebpf) -> Result<Vec<(nat::ReverseKey, nat::ForwardTarget)>, DataplaneError> {
    hash_entries(ebpf, names::MAP_FORWARDS)
}

/// Makes the forward table hold `wanted` and nothing else: new forwards are added before
/// stale ones go, and an entry that stays is rewritten in place, so a forward that stays
/// never stops answering.
pub fn set_forwards(
    ebpf: &mut Ebpf,
    wanted: &[(nat::ReverseKey, nat::ForwardTarget)],
) -> Result<(), DataplaneError> {
    let held = forwards(ebpf)?;
    let name = names::MAP_FORWARDS;
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    let mut table = HashMap::<&mut MapData, nat::ReverseKey, nat::ForwardTarget>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    for (key, target) in wanted {
        table
            .insert(key, target, 0)
            .map_err(|source| DataplaneError::Map { name, source })?;
    }
    for (key, _) in held {
        if !wanted.iter().any(|(k, _)| *k == key) {
            match table.remove(&key) {
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                other => other.map_err(|source| DataplaneError::Map { name, source })?,
            }
        }
    }
    Ok(())
}

/// Sets the per-host limits and how long the data plane enforces them without renewal.
pub fn set_host_limits(ebpf: &mut Ebpf, limits: HostLimits) -> Result<(), DataplaneError> {
    write_array(ebpf, names::MAP_HOST_LIMITS, 0, limits)
}

/// The per-host limits the data plane holds.
pub fn host_limits(ebpf: &Ebpf) -> Result<HostLimits, DataplaneError> {
    read_array(ebpf, names::MAP_HOST_LIMITS, 0)
}

/// What each LAN host holds and was refused, as the data plane counted it.
pub fn hosts(ebpf: &Ebpf) -> Result<Vec<(HostKey, HostUsage)>, DataplaneError> {
    hash_entries(ebpf, names::MAP_HOSTS)
}

/// Writes a host's true counts (`None`: forgets the host), keeping the refusals the data
/// plane counted: the entry is read back just before it is written.
pub fn correct_host(
    ebpf: &mut Ebpf,
    key: HostKey,
    counts: Option<(u32, [u32; nat::MAX_UPLINKS as usize])>,
) -> Result<(), DataplaneError> {
    let name = names::MAP_HOSTS;
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    let mut table = HashMap::<&mut MapData, HostKey, HostUsage>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    let Some((flows, ports)) = counts else {
        return match table.remove(&key) {
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            other => other.map_err(|source| DataplaneError::Map { name, source }),
        };
    };
    let mut usage = table.get(&key, 0).unwrap_or_default();
    usage.flows = flows;
    usage.ports = ports;
    table
        .insert(key, usage, 0)
        .map_err(|source| DataplaneError::Map { name, source })
}

fn hash_entries<K: Pod, V: Pod>(
    ebpf: &Ebpf,
    name: &'static str,
) -> Result<Vec<(K, V)>, DataplaneError> {
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    let table = HashMap::<&MapData, K, V>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    table
        .iter()
        .collect::<Result<_, _>>()
        .map_err(|source| DataplaneError::Map { name, source })
}

/// Packet counters per verdict reason, summed over CPUs, indexed by `Reason as usize`.
pub fn reason_counts(ebpf: &Ebpf) -> Result<Vec<u64>, DataplaneError> {
    per_cpu_sums::<u64>(
        ebpf,
        names::MAP_REASONS,
        failover_common::verdict::REASON_COUNT,
        |v| *v,
    )
}

fn per_cpu_sums<V: Pod>(
    ebpf: &Ebpf,
    name: &'static str,
    entries: u32,
    value: impl Fn(&V) -> u64,
) -> Result<Vec<u64>, DataplaneError> {
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    let array = PerCpuArray::<_, V>::try_from(map)
        .map_err(|source| DataplaneError::Map { name, source })?;
    (0..entries)
        .map(|index| {
            array
                .get(&index, 0)
                .map(|per_cpu| per_cpu.iter().map(&value).sum())
                .map_err(|source| DataplaneError::Map { name, source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use failover_common::names;

    /// Code outside this module reaches the kernel's BPF objects through it, never through
    /// aya directly.
    #[test]
    fn aya_is_used_in_the_dataplane_module_only() {
        fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("reading src") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path);
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let outside: Vec<_> = files
            .iter()
            .filter(|f| !f.starts_with(src.join("dataplane")))
            .filter(|f| {
                let text = std::fs::read_to_string(f).expect("reading a source file");
                text.contains("aya::") || text.contains("use aya") || text.contains("aya_log::")
            })
            .collect();
        assert!(
            outside.is_empty(),
            "aya used outside dataplane/: {outside:?}"
        );
    }

    /// The README's "Inspecting the data plane" shows a `bpftool` command for every map.
    #[test]
    fn the_readme_shows_how_to_dump_every_map() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### Inspecting the data plane")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README has the section");
        for name in names::MAPS {
            assert!(
                section.contains(&format!("/{name}`")),
                "no bpftool command for {name} in the README"
            );
        }
    }
}
