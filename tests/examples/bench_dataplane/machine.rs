//! The machine under test: what it is (for the report), pinning to one CPU, and waiting for
//! the CPUs to be idle before a round (`BENCH_METHOD.md`: these VMs are shared and noisy).

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What the report states about the machine.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    /// CPU vulnerability mitigations that tax every kernel call and return, which the
    /// forwarding chain is made of; they explain absolute figures differing between VM kinds.
    pub mitigations: String,
}

impl Machine {
    pub fn detect() -> Result<Self> {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = online_cpus()?;
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("reading the kernel release")?
            .trim()
            .to_owned();
        Ok(Self {
            cpu_model,
            cores,
            kernel,
            mitigations: mitigations(),
        })
    }
}

/// "name: state" of the mitigations that cost kernel paths most, "none" if none applies.
fn mitigations() -> String {
    let states: Vec<String> = ["spectre_v2", "spec_rstack_overflow", "retbleed"]
        .into_iter()
        .filter_map(|name| {
            let path = format!("/sys/devices/system/cpu/vulnerabilities/{name}");
            let state = fs::read_to_string(path).ok()?;
            // The first clause names the mitigation; the rest are details.
            let state = state.split(';').next().unwrap_or_default().trim();
            (state != "Not affected").then(|| format!("{name}: {state}"))
        })
        .collect();
    if states.is_empty() {
        "none".to_owned()
    } else {
        states.join("; ")
    }
}

/// Number of online CPUs.
pub fn online_cpus() -> Result<usize> {
    Ok(thread::available_parallelism()
        .context("counting CPUs")?
        .get())
}

/// Pins the calling thread, and every thread and process it starts later, to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write inside it, and
    // sched_setaffinity(0, ..) only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("pinning to CPU {cpu}"));
    }
    Ok(())
}

/// A CPU counts as idle above this idle share.
pub const IDLE_THRESHOLD: f64 = 0.9;
const SAMPLE: Duration = Duration::from_millis(200);

/// Waits until every CPU is idle over a short window, or `max_wait` passed. True when the
/// machine was quiet, false when the wait gave up.
pub fn wait_until_idle(max_wait: Duration) -> Result<bool> {
    let deadline = Instant::now() + max_wait;
    loop {
        failover_tests::interrupt::check()?;
        let before = cpu_times()?;
        thread::sleep(SAMPLE);
        let after = cpu_times()?;
        let min_idle = before
            .iter()
            .zip(&after)
            .map(|(b, a)| {
                let total = a.total.saturating_sub(b.total);
                if total == 0 {
                    1.0
                } else {
                    crate::stats::ratio(a.idle.saturating_sub(b.idle), total)
                }
            })
            .fold(1.0, f64::min);
        let quiet = min_idle >= IDLE_THRESHOLD;
        if quiet || Instant::now() >= deadline {
            return Ok(quiet);
        }
    }
}

struct CpuTimes {
    idle: u64,
    total: u64,
}

/// Per-CPU jiffies from /proc/stat: idle (idle + iowait) and the total of all states.
fn cpu_times() -> Result<Vec<CpuTimes>> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let times: Vec<CpuTimes> = stat
        .lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            CpuTimes {
                idle: fields.iter().skip(3).take(2).sum(),
                total: fields.iter().sum(),
            }
        })
        .collect();
    if times.is_empty() {
        bail!("no per-CPU lines in /proc/stat");
    }
    Ok(times)
}
