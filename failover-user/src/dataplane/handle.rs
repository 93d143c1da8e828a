//! [`Dataplane`]: the loaded data plane as the running controller holds it. The daemon reads
//! and writes the maps through it alone, in the maps' own types; it never sees aya. The
//! decisions that walk the flow table take any [`FlowTable`], so they are tested against an
//! in-memory one ([`MemoryFlows`]).

#[cfg(test)]
use std::collections::BTreeMap;

use aya::Ebpf;
use failover_common::{
    limits::{HostKey, HostLimits, HostUsage},
    nat,
    verdict::{RedirectFailures, UplinkCounters},
};

use super::DataplaneError;

/// The connection-tracking table, as the controller's decisions about flows see it.
pub trait FlowTable {
    /// Every tracked flow.
    fn flows(&self) -> Result<Vec<(nat::FlowKey, nat::Flow)>, DataplaneError>;
    /// Rewrites a flow that is still tracked (one that ended meanwhile stays gone).
    fn update_flow(&mut self, key: &nat::FlowKey, flow: nat::Flow) -> Result<(), DataplaneError>;
    /// Forgets `keys`; returns how many were still there.
    fn remove_flows(&mut self, keys: &[nat::FlowKey]) -> Result<usize, DataplaneError>;
}

/// The loaded data plane: its programs, maps and the links that keep them attached.
pub struct Dataplane {
    ebpf: Ebpf,
}

impl Dataplane {
    #[must_use]
    pub fn new(ebpf: Ebpf) -> Self {
        Self { ebpf }
    }

    /// Forwards the programs' log messages (aya-log's ring buffer) to the controller's log,
    /// from a task on the tokio runtime.
    pub fn forward_log(&mut self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use tokio::io::{Interest, unix::AsyncFd};
        let logger =
            aya_log::EbpfLogger::init(&mut self.ebpf).context("reading the data plane's log")?;
        // SAFETY: the logger owns its ring buffer's descriptor and keeps it open for as long
        // as the AsyncFd owns the logger.
        let mut ready = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("watching the data plane's log")?;
        tokio::spawn(async move {
            while let Ok(mut guard) = ready.readable_mut().await {
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
        });
        Ok(())
    }

    pub fn set_lan(&mut self, lan: nat::Lan) -> Result<(), DataplaneError> {
        super::set_lan(&mut self.ebpf, lan)
    }

    pub fn lan(&self) -> Result<nat::Lan, DataplaneError> {
        super::lan(&self.ebpf)
    }

    pub fn set_uplink(&mut self, slot: u32, uplink: nat::Uplink) -> Result<(), DataplaneError> {
        super::set_uplink(&mut self.ebpf, slot, uplink)
    }

    pub fn clear_uplink(&mut self, slot: u32) -> Result<(), DataplaneError> {
        super::clear_uplink(&mut self.ebpf, slot)
    }

    pub fn uplink(&self, slot: u32) -> Result<nat::Uplink, DataplaneError> {
        super::uplink(&self.ebpf, slot)
    }

    /// The devmap's target per slot (uplinks, then the LAN).
    pub fn devices(&self) -> Result<Vec<Option<u32>>, DataplaneError> {
        super::devices(&self.ebpf)
    }

    pub fn set_policy(&mut self, policy: nat::Policy) -> Result<(), DataplaneError> {
        super::set_policy(&mut self.ebpf, policy)
    }

    pub fn policy(&self) -> Result<nat::Policy, DataplaneError> {
        super::policy(&self.ebpf)
    }

    pub fn uplink_counters(&self, slot: u32) -> Result<UplinkCounters, DataplaneError> {
        super::uplink_counters(&self.ebpf, slot)
    }

    pub fn redirect_failures(&self, slot: u32) -> Result<RedirectFailures, DataplaneError> {
        super::redirect_failures(&self.ebpf, slot)
    }

    /// Packet counters per verdict reason, indexed by `Reason as usize`.
    pub fn reason_counts(&self) -> Result<Vec<u64>, DataplaneError> {
        super::reason_counts(&self.ebpf)
    }

    pub fn reverse_bindings(&self) -> Result<Vec<(nat::ReverseKey, nat::Binding)>, DataplaneError> {
        super::reverse_bindings(&self.ebpf)
    }

    pub fn forwards(&self) -> Result<Vec<(nat::ReverseKey, nat::ForwardTarget)>, DataplaneError> {
        super::forwards(&self.ebpf)
    }

    /// See [`super::set_forwards`].
    pub fn set_forwards(
        &mut self,
        wanted: &[(nat::ReverseKey, nat::ForwardTarget)],
    ) -> Result<(), DataplaneError> {
        super::set_forwards(&mut self.ebpf, wanted)
    }

    pub fn set_host_limits(&mut self, limits: HostLimits) -> Result<(), DataplaneError> {
        super::set_host_limits(&mut self.ebpf, limits)
    }

    pub fn hosts(&self) -> Result<Vec<(HostKey, HostUsage)>, DataplaneError> {
        super::hosts(&self.ebpf)
    }

    /// See [`super::correct_host`].
    pub fn correct_host(
        &mut self,
        key: HostKey,
        counts: Option<(u32, [u32; nat::MAX_UPLINKS as usize])>,
    ) -> Result<(), DataplaneError> {
        super::correct_host(&mut self.ebpf, key, counts)
    }
}

impl FlowTable for Dataplane {
    fn flows(&self) -> Result<Vec<(nat::FlowKey, nat::Flow)>, DataplaneError> {
        super::flows(&self.ebpf)
    }

    fn update_flow(&mut self, key: &nat::FlowKey, flow: nat::Flow) -> Result<(), DataplaneError> {
        super::update_flow(&mut self.ebpf, key, flow)
    }

    fn remove_flows(&mut self, keys: &[nat::FlowKey]) -> Result<usize, DataplaneError> {
        super::remove_flows(&mut self.ebpf, keys)
    }
}

/// A flow table in memory, with the kernel table's update-only and remove semantics.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryFlows(pub BTreeMap<FlowOrder, nat::Flow>);

/// A [`nat::FlowKey`] ordered by its bytes (the map type has no `Ord`).
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowOrder([u8; 4], [u8; 4], [u8; 2], [u8; 2], u8);

#[cfg(test)]
impl From<&nat::FlowKey> for FlowOrder {
    fn from(key: &nat::FlowKey) -> Self {
        Self(
            key.lan_addr,
            key.remote_addr,
            key.lan_port,
            key.remote_port,
            key.proto,
        )
    }
}

#[cfg(test)]
impl FlowOrder {
    fn key(self) -> nat::FlowKey {
        nat::FlowKey {
            lan_addr: self.0,
            remote_addr: self.1,
            lan_port: self.2,
            remote_port: self.3,
            proto: self.4,
            ..nat::FlowKey::default()
        }
    }
}

#[cfg(test)]
impl MemoryFlows {
    /// A table holding `flows`.
    #[must_use]
    pub fn with(flows: impl IntoIterator<Item = (nat::FlowKey, nat::Flow)>) -> Self {
        Self(flows.into_iter().map(|(k, f)| ((&k).into(), f)).collect())
    }
}

#[cfg(test)]
impl FlowTable for MemoryFlows {
    fn flows(&self) -> Result<Vec<(nat::FlowKey, nat::Flow)>, DataplaneError> {
        Ok(self.0.iter().map(|(k, f)| (k.key(), *f)).collect())
    }

    fn update_flow(&mut self, key: &nat::FlowKey, flow: nat::Flow) -> Result<(), DataplaneError> {
        if let Some(entry) = self.0.get_mut(&key.into()) {
            *entry = flow;
        }
        Ok(())
    }

    fn remove_flows(&mut self, keys: &[nat::FlowKey]) -> Result<usize, DataplaneError> {
        Ok(keys
            .iter()
            .filter(|key| self.0.remove(&(*key).into()).is_some())
            .count())
    }
}
