//! `LabGuard`: the lab for the lifetime of a value, with a machine-wide lock because the
//! namespace names are fixed (tests in parallel threads or processes, e.g. under nextest,
//! take turns instead of tearing down each other's lab).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Plan, down, up};

/// How long a test waits for other tests' labs (they run one after another, each in seconds).
const LOCK_TIMEOUT: Duration = Duration::from_mins(10);

/// The lab, built by [`LabGuard::up`] and torn down on drop, also when a test panics.
#[must_use = "the lab is torn down when the guard is dropped"]
pub struct LabGuard {
    armed: bool,
    /// Closing the file releases the lock, after `Drop` has torn the lab down.
    _lock: File,
}

impl LabGuard {
    /// Waits for the machine-wide lab lock, then builds the lab (see [`up`]).
    pub fn up() -> Result<Self> {
        let lock = lock()?;
        up()?;
        Ok(Self {
            armed: true,
            _lock: lock,
        })
    }

    /// Builds the lab again under the same lock (see [`up`]: leftovers are removed first).
    pub fn rebuild(&self) -> Result<()> {
        up()
    }

    /// Tears the lab down now and reports the outcome, instead of on drop.
    pub fn down(mut self) -> Result<()> {
        self.armed = false;
        down()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = down() {
            eprintln!("lab teardown failed: {e:#}");
        }
    }
}

/// An exclusive `flock` on [`Plan::LOCK_FILE`], polled so a stuck holder cannot hang us.
fn lock() -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Plan::LOCK_FILE)
        .with_context(|| format!("opening {}", Plan::LOCK_FILE))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        // SAFETY: flock on a descriptor we own; the lock goes with the file.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("locking {}", Plan::LOCK_FILE));
        }
        if Instant::now() >= deadline {
            bail!("another lab held {} for {LOCK_TIMEOUT:?}", Plan::LOCK_FILE);
        }
        thread::sleep(Duration::from_millis(50));
    }
}
