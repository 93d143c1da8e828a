//! The verifier's work per program stays well under its limit, so a change that makes the
//! data plane much harder to verify fails here, with the numbers, rather than at load time on
//! a router. Loads the object with bpftool, which prints the verifier's statistics.

use std::process::Command;

use failover_tests::privilege::skip_unless_root;
use failover_user::dataplane::EBPF_OBJECT;

/// The kernel stops verifying at one million processed instructions.
const VERIFIER_LIMIT: u64 = 1_000_000;
/// Each program must verify within this share of the limit.
const BUDGET: u64 = VERIFIER_LIMIT / 4;
const PIN_DIR: &str = "/sys/fs/bpf/failover-verifier-test";

/// Removes the programs bpftool pinned, even when the test fails.
struct Pins;

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(PIN_DIR);
    }
}

#[test]
fn every_program_verifies_within_a_quarter_of_the_limit() {
    if skip_unless_root("every_program_verifies_within_a_quarter_of_the_limit") {
        return;
    }
    let _ = std::fs::remove_dir_all(PIN_DIR);
    let _pins = Pins;
    let object = std::env::temp_dir().join(format!("failover-verifier-{}.o", std::process::id()));
    std::fs::write(&object, EBPF_OBJECT).expect("writing the object");
    let out = Command::new("bpftool")
        .args(["-d", "prog", "loadall"])
        .arg(&object)
        .args([PIN_DIR, "type", "xdp"])
        .output()
        .expect("running bpftool");
    let _ = std::fs::remove_file(&object);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bpftool prog loadall failed:\n{log}");
    let processed: Vec<u64> = log
        .lines()
        .filter_map(|line| line.strip_prefix("processed "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        processed.len() >= 3,
        "expected statistics for every program, bpftool printed:\n{log}"
    );
    for insns in &processed {
        assert!(
            *insns < BUDGET,
            "a program needed {insns} verifier steps (budget {BUDGET}): {processed:?}"
        );
    }
}
