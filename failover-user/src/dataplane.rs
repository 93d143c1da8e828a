//! The compiled data plane: loading its object, its programs and reading its maps.

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapError, PerCpuArray},
    programs::{ProgramError, Xdp},
};
use failover_common::{
    classify::{CLASS_STATS_ENTRIES, Direction, PacketClass, stat_index},
    names,
};

/// The data plane's ELF object, built by `build.rs` from `failover-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/failover"));

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
}

/// Parses the object and creates its maps, without loading programs or attaching anything.
pub fn open() -> Result<Ebpf, DataplaneError> {
    Ok(EbpfLoader::new().load(EBPF_OBJECT)?)
}

/// The XDP program `name`, loaded into the kernel (verified) if it was not yet.
pub fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut Xdp, DataplaneError> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?
        .try_into()
        .map_err(|source| DataplaneError::Program { name, source })?;
    if program.fd().is_err() {
        program
            .load()
            .map_err(|source| DataplaneError::Program { name, source })?;
    }
    Ok(program)
}

/// Packet counters per direction and class, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassStats(Vec<u64>);

impl ClassStats {
    pub fn read(ebpf: &Ebpf) -> Result<Self, DataplaneError> {
        let name = names::MAP_CLASS_STATS;
        let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
        let array = PerCpuArray::<_, u64>::try_from(map)
            .map_err(|source| DataplaneError::Map { name, source })?;
        (0..CLASS_STATS_ENTRIES)
            .map(|index| {
                array
                    .get(&index, 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .map_err(|source| DataplaneError::Map { name, source })
            })
            .collect::<Result<_, _>>()
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
