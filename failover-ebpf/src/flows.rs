//! Connection tracking and endpoint-independent port bindings.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::{bpf_get_smp_processor_id, bpf_jiffies64},
};
use failover_common::{
    classify::ip_proto,
    nat::{
        Binding, BindingKey, CachedFlow, FLOW_CACHE_SLOTS, FLOW_CACHE_TTL_NS, Flow, FlowKey,
        MAX_UPLINKS, NO_UPLINK, PORT_PROBES, REVERSE_REFRESH_NS, ReverseKey, Uplink, binding_hash,
        binding_timeout_ns, candidate_port, expired, flow_cache_slot, flow_origin, flow_timeout_ns,
        next_tcp_state, tcp_flag, tcp_state,
    },
    verdict::Reason,
};

use crate::{
    host_limits,
    maps::{BINDINGS, FLOW_CACHE, FLOWS, FORWARDS, POLICY, REVERSE, UPLINKS},
};

/// Nanoseconds per kernel tick, set by the loader (`names::GLOBAL_NS_PER_TICK`).
#[unsafe(no_mangle)]
static FO_NS_PER_TICK: u64 = 0;

/// Monotonic time at tick resolution (4 ms at HZ=250): timeouts are seconds, and reading
/// jiffies costs a fraction of a clock read (about 30 ns per packet on the test machines).
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a plain read of a load-time constant; no preconditions for the helper.
    unsafe { bpf_jiffies64() * core::ptr::read_volatile(&raw const FO_NS_PER_TICK) }
}

/// The uplink in `slot` if the controller lets flows use it.
#[inline(always)]
pub fn usable_uplink(slot: u32) -> Option<&'static Uplink> {
    if slot >= MAX_UPLINKS {
        return None;
    }
    UPLINKS.get(slot).filter(|u| u.usable != 0)
}

/// The slot of the uplink whose address is `addr`.
#[inline(always)]
pub fn uplink_with_addr(addr: [u8; 4]) -> Option<u32> {
    (0..MAX_UPLINKS).find(|slot| {
        UPLINKS
            .get(*slot)
            .is_some_and(|u| u.ifindex != 0 && u.addr == addr)
    })
}

/// The slot of the uplink on interface `ifindex`.
#[inline(always)]
pub fn uplink_on(ifindex: u32) -> Option<(u32, &'static Uplink)> {
    (0..MAX_UPLINKS).find_map(|slot| {
        UPLINKS
            .get(slot)
            .filter(|u| u.ifindex == ifindex)
            .map(|u| (slot, u))
    })
}

/// Where an outbound packet goes: its uplink slot and external port.
pub struct Steering {
    pub slot: u32,
    pub uplink: &'static Uplink,
    pub ext_port: [u8; 2],
}

/// TCP flags that change a flow's state: segments carrying them always reach the flow table.
const STATE_FLAGS: u8 = tcp_flag::SYN | tcp_flag::FIN | tcp_flag::RST;

/// Finds or creates the flow of an outbound packet. A flow keeps its uplink while that uplink
/// is usable and its binding still belongs to it; otherwise it moves to the active uplink.
///
/// A per-CPU cache answers most packets of a busy flow without touching the flow table:
/// outbound segments without SYN, FIN or RST never change a flow's state, and the table's
/// time for the flow is refreshed whenever the cached entry is older than
/// `FLOW_CACHE_TTL_NS`, far below any timeout.
#[inline(always)]
pub fn steer_outbound(key: &FlowKey, tcp_flags: u8, now: u64) -> Result<Steering, Reason> {
    // SAFETY: no preconditions; the verifier inlines this helper.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let cached = FLOW_CACHE.get_ptr_mut(cpu * FLOW_CACHE_SLOTS + flow_cache_slot(key));
    if let Some(entry) = cached {
        // SAFETY: this CPU's slot of a preallocated array.
        let entry = unsafe { &*entry };
        if tcp_flags & STATE_FLAGS == 0
            && entry.key == *key
            && now.saturating_sub(entry.checked_ns) < FLOW_CACHE_TTL_NS
            && let Some(uplink) = usable_uplink(entry.uplink)
        {
            return Ok(Steering {
                slot: entry.uplink,
                uplink,
                ext_port: entry.ext_port,
            });
        }
    }
    let steering = match steer_through_table(key, tcp_flags, now) {
        Ok(steering) => steering,
        Err(reason) => {
            if let Some(entry) = cached
                && reason == Reason::ResetToClient
            {
                // The flow is gone from the table; its cached copy must not outlive it.
                // SAFETY: this CPU's slot; no other program runs on this CPU meanwhile.
                unsafe { (*entry).uplink = NO_UPLINK };
            }
            return Err(reason);
        }
    };
    if let Some(entry) = cached {
        // SAFETY: this CPU's slot; no other program runs on this CPU meanwhile.
        unsafe {
            *entry = CachedFlow {
                key: *key,
                checked_ns: now,
                uplink: steering.slot,
                ext_port: steering.ext_port,
                _pad: [0; 2],
            };
        }
    }
    Ok(steering)
}

/// The flow table's answer for an outbound packet (see [`steer_outbound`]).
#[inline(always)]
fn steer_through_table(key: &FlowKey, tcp_flags: u8, now: u64) -> Result<Steering, Reason> {
    // A key still in the table (expired, or leaving its uplink) holds its place in the
    // host's flow count.
    let mut in_table = false;
    if let Some(flow) = FLOWS.get_ptr_mut(key) {
        in_table = true;
        // SAFETY: a map value pointer; concurrent updates of these plain fields are benign.
        let flow = unsafe { &mut *flow };
        let live = !expired(
            flow.last_seen_ns,
            flow_timeout_ns(key.proto, flow.state),
            now,
        );
        let uplink = usable_uplink(flow.uplink);
        let leaving = uplink.is_none() || flow.state == tcp_state::MOVED;
        let forwarded = flow.origin == flow_origin::FORWARDED;
        if live && leaving && must_reset(key.proto, flow.state, tcp_flags) {
            let _ = FLOWS.remove(key);
            return Err(Reason::ResetToClient);
        }
        // A reply to a forwarded connection means something only through the uplink the
        // remote reached: it never takes another.
        if live && leaving && forwarded {
            return Err(Reason::NoUplink);
        }
        // A forwarded flow's port is the forward's, which no binding can take.
        if live
            && !leaving
            && let Some(uplink) = uplink
            && (forwarded || reverse_still_ours(flow, key, now))
        {
            flow.last_seen_ns = now;
            flow.state = next_tcp_state(flow.state, tcp_flags, true);
            return Ok(Steering {
                slot: flow.uplink,
                uplink,
                ext_port: flow.ext_port,
            });
        }
    }
    let policy = POLICY.get(0).ok_or(Reason::NoUplink)?;
    let preferred = policy.pick(flow_cache_slot(key));
    let (slot, uplink) = match usable_uplink(preferred) {
        Some(uplink) => (preferred, uplink),
        None => (
            policy.active,
            usable_uplink(policy.active).ok_or(Reason::NoUplink)?,
        ),
    };
    let existing = existing_binding(key, slot, now);
    if !in_table || existing.is_none() {
        host_limits::admit(key.lan_addr, slot, now, !in_table, existing.is_none())?;
    }
    let ext_port = match existing {
        Some(ext_port) => ext_port,
        None => allocate_port(key, slot, uplink, now)?,
    };
    let state = if key.proto == ip_proto::TCP {
        next_tcp_state(tcp_state::OPENING, tcp_flags, true)
    } else {
        tcp_state::OPENING
    };
    let flow = Flow {
        last_seen_ns: now,
        reverse_seen_ns: now,
        uplink: slot,
        ext_port,
        state,
        origin: flow_origin::OUTBOUND,
    };
    // An LRU map makes room by evicting the least recently used flow; it cannot fail for
    // lack of space, so a failed insert only means a concurrent insert of the same flow.
    let _ = FLOWS.insert(key, flow, u64::from(BPF_ANY));
    Ok(Steering {
        slot,
        uplink,
        ext_port,
    })
}

/// A TCP flow that has to leave its uplink cannot continue elsewhere (the remote knows it by
/// the old address): its segments are answered with a reset, except a SYN (a new connection
/// on the same ports, which takes the active uplink) and a RST (never answered).
#[inline(always)]
fn must_reset(proto: u8, state: u8, tcp_flags: u8) -> bool {
    proto == ip_proto::TCP
        && state != tcp_state::CLOSED
        && tcp_flags & (tcp_flag::SYN | tcp_flag::RST) == 0
}

/// At most every `REVERSE_REFRESH_NS`, confirms that the flow's reverse binding still maps to
/// it (an LRU eviction or a reclaim may have taken it) and refreshes its time.
#[inline(always)]
fn reverse_still_ours(flow: &mut Flow, key: &FlowKey, now: u64) -> bool {
    if now.saturating_sub(flow.reverse_seen_ns) < REVERSE_REFRESH_NS {
        return true;
    }
    flow.reverse_seen_ns = now;
    refresh_reverse(key, flow.uplink, flow.ext_port, now)
}

/// Refreshes the reverse entry of (`slot`, `ext_port`) if it still maps to the flow's LAN end.
#[inline(always)]
fn refresh_reverse(key: &FlowKey, slot: u32, ext_port: [u8; 2], now: u64) -> bool {
    let rkey = reverse_key(ext_port, key.proto, slot);
    match REVERSE.get_ptr_mut(rkey) {
        Some(entry) => {
            // SAFETY: a map value pointer.
            let entry = unsafe { &mut *entry };
            if entry.lan_addr != key.lan_addr || entry.lan_port != key.lan_port {
                return false;
            }
            entry.last_seen_ns = now;
            true
        }
        None => false,
    }
}

#[inline(always)]
fn reverse_key(ext_port: [u8; 2], proto: u8, slot: u32) -> ReverseKey {
    ReverseKey {
        ext_port,
        proto,
        uplink: slot_byte(slot),
    }
}

/// Keys store the uplink slot in a byte; slots are below `MAX_UPLINKS`.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "slots are below MAX_UPLINKS (8)"
)]
fn slot_byte(slot: u32) -> u8 {
    slot as u8
}

#[inline(always)]
fn binding_key(key: &FlowKey, slot: u32) -> BindingKey {
    BindingKey {
        lan_addr: key.lan_addr,
        lan_port: key.lan_port,
        proto: key.proto,
        uplink: slot_byte(slot),
    }
}

/// The external port the LAN end of `key` already holds on uplink `slot`, while its
/// reverse entry still maps back to it (endpoint-independent mapping).
#[inline(always)]
fn existing_binding(key: &FlowKey, slot: u32, now: u64) -> Option<[u8; 2]> {
    // SAFETY: a map value read by copy.
    let existing = unsafe { BINDINGS.get(binding_key(key, slot)) }.copied()?;
    refresh_reverse(key, slot, existing.ext_port, now).then_some(existing.ext_port)
}

/// A newly allocated free external port for the LAN end of `key` on uplink `slot`.
#[inline(always)]
fn allocate_port(key: &FlowKey, slot: u32, uplink: &Uplink, now: u64) -> Result<[u8; 2], Reason> {
    let hash = binding_hash(key.lan_addr, key.lan_port, key.proto);
    let lan_port = u16::from_be_bytes(key.lan_port);
    for attempt in 0..PORT_PROBES {
        let ext_port =
            candidate_port(uplink.port_min, uplink.port_max, lan_port, hash, attempt).to_be_bytes();
        let binding = Binding {
            last_seen_ns: now,
            lan_addr: key.lan_addr,
            lan_port: key.lan_port,
            ext_port,
        };
        let rkey = reverse_key(ext_port, key.proto, slot);
        if claim(&rkey, &binding, key.proto, now) {
            let _ = BINDINGS.insert(binding_key(key, slot), binding, u64::from(BPF_ANY));
            return Ok(ext_port);
        }
    }
    Err(Reason::PortsExhausted)
}

/// Takes the external port of `rkey` if it is free or its binding went stale.
#[inline(always)]
fn claim(rkey: &ReverseKey, binding: &Binding, proto: u8, now: u64) -> bool {
    if REVERSE
        .insert(rkey, binding, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        return true;
    }
    match REVERSE.get_ptr_mut(rkey) {
        Some(entry) => {
            // SAFETY: a map value pointer.
            let entry = unsafe { &mut *entry };
            if expired(entry.last_seen_ns, binding_timeout_ns(proto), now) {
                *entry = *binding;
                return true;
            }
            false
        }
        None => REVERSE
            .insert(rkey, binding, u64::from(BPF_NOEXIST))
            .is_ok(),
    }
}

/// The LAN end of an inbound packet for `ext_port` on uplink `slot` from `remote`, if a live
/// flow of the LAN host to that remote exists (address- and port-dependent filtering).
/// Updates the flow's state and time.
#[inline(always)]
pub fn match_inbound(
    slot: u32,
    proto: u8,
    ext_port: [u8; 2],
    remote_addr: [u8; 4],
    remote_port: [u8; 2],
    tcp_flags: u8,
    now: u64,
) -> Result<FlowKey, Reason> {
    let rkey = reverse_key(ext_port, proto, slot);
    let entry = REVERSE.get_ptr_mut(rkey).ok_or(Reason::NoMapping)?;
    // SAFETY: a map value pointer.
    let entry = unsafe { &mut *entry };
    // Padding zeroed through Default: hash maps compare keys byte for byte.
    let key = FlowKey {
        lan_addr: entry.lan_addr,
        lan_port: entry.lan_port,
        remote_addr,
        remote_port,
        proto,
        ..FlowKey::default()
    };
    let flow = FLOWS.get_ptr_mut(key).ok_or(Reason::NoFlow)?;
    // SAFETY: a map value pointer.
    let flow = unsafe { &mut *flow };
    if flow.uplink != slot
        || flow.ext_port != ext_port
        || expired(flow.last_seen_ns, flow_timeout_ns(proto, flow.state), now)
    {
        return Err(Reason::NoFlow);
    }
    flow.last_seen_ns = now;
    flow.state = next_tcp_state(flow.state, tcp_flags, false);
    entry.last_seen_ns = now;
    Ok(key)
}

/// An inbound packet as the flow tables see it: the uplink it arrived on and its ends.
#[derive(Clone, Copy)]
pub struct Inbound {
    pub slot: u32,
    pub proto: u8,
    /// The uplink's port it is for (network byte order).
    pub ext_port: [u8; 2],
    pub remote_addr: [u8; 4],
    pub remote_port: [u8; 2],
}

/// The LAN end of an inbound packet for a forwarded port: the forward's flow with that
/// remote, created for a connection's first packet (a TCP SYN, or any UDP datagram) when
/// the uplink is usable. `tcp_flags` is `None` for an ICMP error quoting a packet of the
/// flow, which never opens one. Updates the flow's state and time. `Ok((key, true))` when
/// the flow was created. Not inlined: the uplink programs call it from two places, and the
/// verifier then walks one copy.
#[inline(always)]
pub fn match_forward(
    packet: &Inbound,
    tcp_flags: Option<u8>,
    now: u64,
) -> Result<(FlowKey, bool), Reason> {
    let Inbound {
        slot,
        ext_port,
        remote_addr,
        proto,
        remote_port,
    } = *packet;
    let fkey = reverse_key(ext_port, proto, slot);
    // SAFETY: a map value read by copy.
    let target = unsafe { FORWARDS.get(fkey) }
        .copied()
        .ok_or(Reason::NoMapping)?;
    // Padding zeroed through Default: hash maps compare keys byte for byte.
    let key = FlowKey {
        lan_addr: target.lan_addr,
        lan_port: target.lan_port,
        remote_addr,
        remote_port,
        proto,
        ..FlowKey::default()
    };
    if let Some(flow) = FLOWS.get_ptr_mut(key) {
        // SAFETY: a map value pointer.
        let flow = unsafe { &mut *flow };
        if !expired(flow.last_seen_ns, flow_timeout_ns(proto, flow.state), now) {
            // The same two ends already talk through another uplink or port: that flow
            // stays (a packet claiming to open it again through here is not its).
            if flow.uplink != slot || flow.ext_port != ext_port {
                return Err(Reason::NoFlow);
            }
            flow.last_seen_ns = now;
            flow.state = next_tcp_state(flow.state, tcp_flags.unwrap_or(0), false);
            return Ok((key, false));
        }
    }
    // Only a connection's opening packet makes a flow: a stray segment of one the router
    // no longer tracks goes to the kernel, which answers it.
    let Some(tcp_flags) = tcp_flags else {
        return Err(Reason::NoFlow);
    };
    if proto == ip_proto::TCP
        && tcp_flags & (tcp_flag::SYN | tcp_flag::ACK | tcp_flag::RST) != tcp_flag::SYN
    {
        return Err(Reason::NoFlow);
    }
    if usable_uplink(slot).is_none() {
        return Err(Reason::ForwardDown);
    }
    let flow = Flow {
        last_seen_ns: now,
        reverse_seen_ns: now,
        uplink: slot,
        ext_port,
        state: if proto == ip_proto::TCP {
            next_tcp_state(tcp_state::OPENING, tcp_flags, false)
        } else {
            tcp_state::OPENING
        },
        origin: flow_origin::FORWARDED,
    };
    let _ = FLOWS.insert(key, flow, u64::from(BPF_ANY));
    Ok((key, true))
}
