//! The data plane's clock: kernel ticks (jiffies) times the tick length. The XDP programs
//! read jiffies, far cheaper per packet than a clock read; user space reads the same count
//! from `/proc/timer_list` to age entries, and measures the tick length once.

use std::{
    io,
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

/// Tick rates Linux can be built with (`CONFIG_HZ`).
const KNOWN_HZ: [u64; 4] = [100, 250, 300, 1000];
/// Long enough for a few ticks at the lowest rate, and to tell the rates apart.
const CALIBRATION: Duration = Duration::from_millis(120);

/// Nanoseconds per kernel tick, measured once per process.
pub fn tick_ns() -> io::Result<u64> {
    static TICK: OnceLock<u64> = OnceLock::new();
    if let Some(tick) = TICK.get() {
        return Ok(*tick);
    }
    let tick = 1_000_000_000 / measure_hz()?;
    Ok(*TICK.get_or_init(|| tick))
}

/// The data plane's current time in nanoseconds (same origin as its `last_seen_ns` fields).
pub fn now_ns() -> io::Result<u64> {
    Ok(jiffies()? * tick_ns()?)
}

fn measure_hz() -> io::Result<u64> {
    let (start, j0) = (Instant::now(), jiffies()?);
    thread::sleep(CALIBRATION);
    let (j1, elapsed) = (jiffies()?, start.elapsed());
    #[expect(
        clippy::cast_precision_loss,
        reason = "tick counts over a fraction of a second"
    )]
    let measured = (j1 - j0) as f64 / elapsed.as_secs_f64();
    Ok(nearest_hz(measured))
}

/// The valid `CONFIG_HZ` nearest to a measured rate.
fn nearest_hz(measured: f64) -> u64 {
    #[expect(clippy::cast_precision_loss, reason = "small integers")]
    let distance = |hz: &u64| (*hz as f64 - measured).abs();
    KNOWN_HZ
        .into_iter()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .unwrap_or(250)
}

/// The kernel's jiffies counter, from the `jiffies:` line of `/proc/timer_list`.
fn jiffies() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/timer_list")?;
    text.lines()
        .find_map(|line| line.strip_prefix("jiffies: "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no `jiffies:` line in /proc/timer_list",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::nearest_hz;

    #[test]
    fn measured_rates_snap_to_config_hz() {
        assert_eq!(nearest_hz(249.2), 250);
        assert_eq!(nearest_hz(1003.0), 1000);
        assert_eq!(nearest_hz(97.0), 100);
        assert_eq!(nearest_hz(290.0), 300);
    }
}
