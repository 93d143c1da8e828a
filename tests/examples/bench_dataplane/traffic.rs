//! Traffic through the chain: the live-frames generator (`BPF_PROG_TEST_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`, redirecting into g0) and the counting sink on s0. Both come
//! from one load of the bench object, so they share nothing with the router under test.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMap, PerCpuArray},
    programs::{ProgramError, TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use failover_common::bench::{self, GenConfig};
use failover_tests::netns;
use failover_user::dataplane;

use crate::chain::{self, G0, GEN_NS, S0, SINK_NS};
use crate::options::Spread;

/// Frames per live-frames batch (the kernel's default, one NAPI budget).
const BATCH: u32 = 64;
/// Frames in the first `BPF_PROG_TEST_RUN` call of a burst; later calls aim at [`CALL_TIME`].
const FIRST_CALL: u32 = 1 << 16;
const CALL_TIME: Duration = Duration::from_millis(50);

/// When a burst of traffic ends: after `min` and `frames` both, or at `max`.
#[derive(Clone, Copy, Debug)]
pub struct Until {
    pub min: Duration,
    pub frames: u64,
    pub max: Duration,
}

/// What one burst sent.
#[derive(Clone, Copy, Debug)]
pub struct Burst {
    pub frames: u64,
    pub elapsed: Duration,
}

pub struct Traffic {
    ebpf: Ebpf,
    frame: Vec<u8>,
}

impl Traffic {
    /// Loads the bench object, attaches the sink to s0 and points the generator at g0.
    pub fn new() -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .load(dataplane::BENCH_OBJECT)
            .context("loading the bench object")?;
        let s0 = chain::ifindex(S0)?;
        let sink = dataplane::xdp_program(&mut ebpf, bench::PROG_SINK)?;
        // Attaching resolves the index in the caller's namespace: attach from inside it.
        netns::in_netns(SINK_NS, || sink.attach_to_if_index(s0, XdpMode::Driver))?
            .context("attaching the sink to s0")?;
        let g0 = chain::ifindex(G0)?;
        netns::in_netns(GEN_NS, || set_devmap(&mut ebpf, bench::MAP_GEN_TX, g0))??;
        dataplane::xdp_program(&mut ebpf, bench::PROG_GEN)?;
        Ok(Self {
            ebpf,
            frame: chain::template_frame(),
        })
    }

    /// Makes the generator cycle through `flows` flows.
    pub fn set_flows(&mut self, flows: u32, spread: Spread) -> Result<()> {
        let name = bench::MAP_GEN_CONFIG;
        let map = self
            .ebpf
            .map_mut(name)
            .with_context(|| format!("no map {name}"))?;
        let mut config = Array::<_, GenConfig>::try_from(map)?;
        config.set(0, chain::gen_config(flows, spread), 0)?;
        Ok(())
    }

    /// Frames the sink has counted so far, over all CPUs.
    pub fn delivered(&self) -> Result<u64> {
        let name = bench::MAP_SINK_COUNT;
        let map = self
            .ebpf
            .map(name)
            .with_context(|| format!("no map {name}"))?;
        let counts = PerCpuArray::<_, u64>::try_from(map)?;
        Ok(counts.get(&0, 0)?.iter().sum())
    }

    /// `Some(reason)` when the kernel cannot run the generator (no live-frames mode).
    pub fn live_frames_missing(&self) -> Result<Option<String>> {
        match self.call(BATCH) {
            Ok(()) => Ok(None),
            Err(ProgramError::SyscallError(e))
                if matches!(
                    e.io_error.raw_os_error(),
                    // 524: the kernel's internal ENOTSUPP, which leaks out of some BPF paths.
                    Some(libc::EINVAL | libc::EOPNOTSUPP | 524)
                ) =>
            {
                Ok(Some(format!(
                    "the kernel rejects BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES \
                     (needs Linux >= 5.18): {}",
                    e.io_error
                )))
            }
            Err(e) => Err(e).context("probing live-frames BPF_PROG_TEST_RUN"),
        }
    }

    /// Sends frames until `until` says stop. Runs on a thread inside the generator's
    /// namespace (live frames are injected there), pinned like the caller.
    pub fn run(&self, until: Until) -> Result<Burst> {
        netns::in_netns(GEN_NS, || {
            let start = Instant::now();
            let mut frames = 0;
            let mut call = FIRST_CALL;
            loop {
                failover_tests::interrupt::check()?;
                self.call(call).context("live-frames BPF_PROG_TEST_RUN")?;
                frames += u64::from(call);
                let elapsed = start.elapsed();
                if (elapsed >= until.min && frames >= until.frames) || elapsed >= until.max {
                    return Ok(Burst { frames, elapsed });
                }
                call = next_call(frames, elapsed);
            }
        })?
    }

    fn call(&self, frames: u32) -> Result<(), ProgramError> {
        let program: &Xdp = self
            .ebpf
            .program(bench::PROG_GEN)
            .ok_or(ProgramError::NotLoaded)?
            .try_into()?;
        program.test_run(TestRunOptions {
            data_in: Some(&self.frame),
            repeat: frames,
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..TestRunOptions::default()
        })?;
        Ok(())
    }
}

/// Frames for the next call, so that it lasts about [`CALL_TIME`] at the rate so far.
fn next_call(frames: u64, elapsed: Duration) -> u32 {
    let rate = crate::stats::ratio(frames, 1) / elapsed.as_secs_f64().max(1e-6);
    let wanted = (rate * CALL_TIME.as_secs_f64()).clamp(f64::from(BATCH), f64::from(1 << 24));
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped to 64..=2^24 above"
    )]
    let wanted = wanted as u32;
    wanted
}

/// Sets slot 0 of devmap `name` to interface `ifindex`. The kernel resolves the index in the
/// namespace of the thread that updates the map: call this from a thread in the right one.
pub fn set_devmap(ebpf: &mut Ebpf, name: &str, ifindex: u32) -> Result<()> {
    let map = ebpf.map_mut(name).ok_or_else(|| anyhow!("no map {name}"))?;
    DevMap::try_from(map)?
        .set(0, ifindex, None, 0)
        .with_context(|| format!("setting {name}[0] to interface {ifindex}"))?;
    Ok(())
}
