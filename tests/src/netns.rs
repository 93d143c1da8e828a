//! Running Rust code inside a named network namespace (as made by `ip netns add`), so tests
//! can open sockets there without shelling out.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::{Context, Result};

/// Where iproute2 keeps the bind mounts that name namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// The file that names namespace `ns`.
#[must_use]
pub fn netns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(ns)
}

/// True when a namespace named `ns` exists.
#[must_use]
pub fn exists(ns: &str) -> bool {
    netns_path(ns).exists()
}

/// Runs `f` inside network namespace `ns` and returns its result.
///
/// `f` runs on a fresh thread that enters the namespace with `setns(CLONE_NEWNET)`: the
/// network namespace is per thread, so the caller's thread never moves and the thread (and
/// with it the namespace membership) ends with `f`. Sockets opened inside `f` stay in `ns`
/// even if they are returned. A panic in `f` is resumed on the caller's thread.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    thread::scope(|scope| {
        let worker = scope.spawn(move || {
            enter(ns)?;
            Ok(f())
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Moves the calling thread into network namespace `ns` for the rest of its life. Only for
/// threads made for the purpose (as [`in_netns`] does): other code on the thread would follow.
pub fn enter(ns: &str) -> Result<()> {
    let path = netns_path(ns);
    let file = File::open(&path)
        .with_context(|| format!("network namespace {ns} not found ({})", path.display()))?;
    // SAFETY: `file` is an open namespace file; setns only changes this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setns into network namespace {ns}"));
    }
    Ok(())
}

/// Writes a sysctl (e.g. `net.ipv4.ip_forward`) of namespace `ns`: `/proc/sys/net` shows the
/// namespace of the thread that opens it, so this needs no `sysctl` binary.
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    in_netns(ns, || std::fs::write(&path, value))?
        .with_context(|| format!("sysctl -w {key}={value} in namespace {ns}"))
}
