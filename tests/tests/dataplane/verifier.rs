//! The verifier's work per program stays well under its limit, so a change that makes the
//! data plane much harder to verify fails here, with the numbers, rather than at load time on
//! a router. Loads every program with the data plane's log fully on (the most code to verify)
//! and reads the kernel's count of verified instructions.

use aya::programs::Program;
use failover_tests::privilege::skip_unless_root;
use failover_user::config::DataplaneLog;
use failover_user::dataplane::{self, TableSizes};

/// The kernel stops verifying at one million processed instructions.
const VERIFIER_LIMIT: u32 = 1_000_000;
/// Each program must verify within this share of the limit. The uplink programs reach a LAN
/// end three ways (a reply to a LAN host's flow, a forwarded connection, a new forwarded
/// connection), and the verifier walks the translation after each: 200-320k steps on
/// kernel 6.1, where a quarter of the limit held them before port forwards.
const BUDGET: u32 = VERIFIER_LIMIT * 2 / 5;

#[test]
fn every_program_verifies_within_two_fifths_of_the_limit() {
    if skip_unless_root("every_program_verifies_within_two_fifths_of_the_limit") {
        return;
    }
    let mut ebpf = dataplane::open_pinned(TableSizes::default(), None, DataplaneLog::Debug)
        .expect("opening the data plane object");
    let names: Vec<String> = ebpf.programs().map(|(name, _)| name.to_owned()).collect();
    assert!(names.len() >= 5, "expected every program, found {names:?}");
    let mut counts = Vec::new();
    for name in names {
        let name: &'static str = Box::leak(name.into_boxed_str());
        let info = match ebpf.program_mut(name).expect("listed") {
            Program::Xdp(_) => dataplane::xdp_program(&mut ebpf, name)
                .unwrap_or_else(|e| panic!("loading {name}: {e:?}"))
                .info(),
            Program::SchedClassifier(_) => dataplane::tc_program(&mut ebpf, name)
                .unwrap_or_else(|e| panic!("loading {name}: {e:?}"))
                .info(),
            Program::RawTracePoint(program) => {
                program
                    .load()
                    .unwrap_or_else(|e| panic!("loading {name}: {e:?}"));
                program.info()
            }
            _ => panic!("{name}: a program type this test does not know"),
        }
        .expect("reading the program's info");
        let Some(insns) = info.verified_instruction_count() else {
            println!(
                "SKIPPED every_program_verifies_within_a_quarter_of_the_limit: this kernel does \
                 not report verified instructions (needs 5.16)"
            );
            return;
        };
        counts.push((name, insns));
    }
    println!("verified instructions per program: {counts:?} (budget {BUDGET})");
    for (name, insns) in &counts {
        assert!(
            *insns < BUDGET,
            "{name} needed {insns} verifier steps (budget {BUDGET}): {counts:?}"
        );
    }
}
