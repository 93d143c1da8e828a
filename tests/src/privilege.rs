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

/// The `main` of a root-only runner (a benchmark, the soak): SKIPPED when not root (a
/// success, as for tests), else `run`'s verdict; an error is printed after `name`.
pub fn run_as_root(
    name: &str,
    run: impl FnOnce() -> anyhow::Result<bool>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    if !is_root() {
        println!("SKIPPED {name}: needs root (network namespaces and BPF)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
