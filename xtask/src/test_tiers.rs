//! `cargo xtask test`: lint, then the three test tiers, each with its pass/fail/skip counts.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// One `cargo` invocation of the suite, with the reason it may be skipped.
struct Tier {
    name: &'static str,
    args: &'static [&'static str],
    needs_root: bool,
    /// Runs the `failover` binary (built first, passed in `FAILOVER_BIN`).
    needs_failover_bin: bool,
    /// Environment the tier runs with.
    env: &'static [(&'static str, &'static str)],
}

/// The end-to-end suite: run on the tuned lab, then again on veths at the kernel's defaults.
const E2E_ARGS: &[&str] = &[
    "test",
    "-p",
    "failover-tests",
    "--test",
    "e2e_lab",
    "--test",
    "e2e_nat",
    "--test",
    "e2e_probe",
    "--test",
    "e2e_failover",
    "--test",
    "e2e_restart",
    "--test",
    "e2e_leak",
    "--test",
    "e2e_watchdog",
    "--test",
    "e2e_limits",
    "--test",
    "e2e_operator",
    "--test",
    "e2e_uplinks",
    "--test",
    "e2e_inbound",
    "--",
    "--test-threads=1",
];

const TIERS: &[Tier] = &[
    Tier {
        name: "tier 1: host unit tests",
        args: &[
            "test",
            "--workspace",
            "--exclude",
            "failover-ebpf",
            "--lib",
            "--bins",
        ],
        needs_root: false,
        needs_failover_bin: false,
        env: &[],
    },
    Tier {
        name: "tier 2: data-plane tests (BPF_PROG_TEST_RUN)",
        args: &["test", "-p", "failover-tests", "--test", "dataplane"],
        needs_root: true,
        needs_failover_bin: false,
        env: &[],
    },
    Tier {
        name: "tier 3: end-to-end tests (network lab)",
        args: E2E_ARGS,
        needs_root: true,
        needs_failover_bin: true,
        env: &[],
    },
    // Veths as containers and VMs give them (GRO off, TX checksum offload on): the router
    // takes the TC path there, through the automatic choice.
    Tier {
        name: "tier 3, kernel-default veth offloads",
        args: E2E_ARGS,
        needs_root: true,
        needs_failover_bin: true,
        env: &[(failover_tests::lab::OFFLOADS_ENV, "kernel")],
    },
];

#[derive(Default)]
struct Counts {
    passed: u32,
    failed: u32,
    skipped: u32,
    /// The build or the harness itself failed (no result line, or a non-zero exit).
    broken: bool,
}

pub fn run_all() -> anyhow::Result<()> {
    // Lint problems are reported, but the tiers still run: both results matter.
    let lint = lint();
    let mut summary = vec![match &lint {
        Ok(()) => "lint: clean".to_owned(),
        Err(e) => format!("lint: FAILED ({e})"),
    }];
    let mut all_passed = lint.is_ok();
    let root = failover_tests::privilege::is_root();
    for tier in TIERS {
        println!("\n=== {} ===", tier.name);
        if tier.needs_root && !root {
            println!(
                "SKIPPED {}: needs root (BPF and network namespaces); CI runs as root",
                tier.name
            );
            summary.push(format!("{}: SKIPPED (not root)", tier.name));
            continue;
        }
        let mut counts = run_tier(tier)?;
        // A tier that ran nothing is broken (a filter or a target list gone wrong), not green.
        counts.broken |= counts.passed + counts.failed + counts.skipped == 0;
        all_passed &= counts.failed == 0 && !counts.broken;
        summary.push(format!(
            "{}: {} passed, {} failed, {} skipped{}",
            tier.name,
            counts.passed,
            counts.failed,
            counts.skipped,
            if counts.broken {
                " (BUILD OR HARNESS FAILED)"
            } else {
                ""
            }
        ));
    }
    println!("\n=== summary ===");
    for line in &summary {
        println!("{line}");
    }
    if !all_passed {
        bail!("the test suite failed (see the summary above)");
    }
    Ok(())
}

/// Runs one tier, echoing its output, and counts results from libtest's summary lines and
/// the `SKIPPED` lines that root-only tests print (shown through `--show-output`).
fn run_tier(tier: &Tier) -> anyhow::Result<Counts> {
    let mut args: Vec<&str> = tier.args.to_vec();
    if !args.contains(&"--") {
        args.push("--");
    }
    args.push("--show-output");
    let mut command = Command::new(env!("CARGO"));
    command.envs(tier.env.iter().copied());
    if tier.needs_failover_bin {
        command.env(crate::failover_bin::ENV, crate::failover_bin::build()?);
    }
    let mut child = command
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting cargo {}", args.join(" ")))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut counts = Counts::default();
    let mut saw_result = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        println!("{line}");
        if line.starts_with("SKIPPED ") {
            counts.skipped += 1;
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            saw_result = true;
            counts.passed += count_before(rest, " passed");
            counts.failed += count_before(rest, " failed");
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    // A skipped test returns early and libtest counts it as passed.
    counts.passed = counts.passed.saturating_sub(counts.skipped);
    if !status.success() || !saw_result {
        counts.broken = true;
        counts.failed = counts.failed.max(1);
    }
    Ok(counts)
}

/// The number just before `label` in a libtest summary ("ok. 3 passed; 0 failed; ...").
fn count_before(summary: &str, label: &str) -> u32 {
    summary
        .split(';')
        .filter_map(|part| part.trim().strip_suffix(label))
        .find_map(|n| n.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Formatting and clippy for user space, then clippy for the eBPF crate with Debian's Rust.
fn lint() -> anyhow::Result<()> {
    println!("=== lint: cargo fmt, cargo clippy (user space and eBPF) ===");
    crate::setup::run(Command::new(env!("CARGO")).args(["fmt", "--all", "--check"]))?;
    crate::setup::run(Command::new(env!("CARGO")).args([
        "clippy",
        "--workspace",
        "--exclude",
        "failover-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::setup::run(
        Command::new("rustup")
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "run",
                "/usr",
                "cargo",
                "clippy",
                "-p",
                "failover-ebpf",
                "--bins",
                "--release",
            ])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--target-dir", "target/ebpf-clippy", "--", "-D", "warnings"]),
    )
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn reads_libtest_summary() {
        let s = "ok. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count_before(s, " passed"), 12);
        assert_eq!(count_before(s, " failed"), 3);
        assert_eq!(count_before("FAILED. 0 passed; 1 failed;", " failed"), 1);
    }
}
