//! Root-only tests report SKIPPED with the reason instead of failing on a normal account.

/// True when the process runs as root (effective uid 0).
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns `true` (and prints a loud SKIPPED line) when the calling test must be skipped
/// because the process is not root.
#[must_use]
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root (BPF and network namespaces)");
    true
}
