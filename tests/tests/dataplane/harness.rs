//! Fixture tables for data-plane programs: `{name, frame, map setup, expected verdict, expected
//! output}`, run through `BPF_PROG_TEST_RUN`. A failure names the fixture and dumps the frames.

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions},
};
use failover_tests::frame::{hex_dump, verify_checksums};
use failover_user::dataplane;

/// XDP verdicts (`enum xdp_action`).
pub mod verdict {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;

    #[must_use]
    pub fn name(verdict: u32) -> &'static str {
        match verdict {
            ABORTED => "XDP_ABORTED",
            DROP => "XDP_DROP",
            PASS => "XDP_PASS",
            TX => "XDP_TX",
            REDIRECT => "XDP_REDIRECT",
            _ => "unknown",
        }
    }
}

/// What the program must leave in the frame.
pub enum Output {
    /// The frame comes out byte for byte as it went in.
    Unchanged,
    /// The frame comes out as exactly these bytes.
    Bytes(Vec<u8>),
}

/// Prepares maps (and may run priming packets) before a fixture runs.
pub type MapSetup = Box<dyn Fn(&mut Ebpf)>;
/// Checks maps after a fixture ran, given their state before it.
pub type MapCheck = Box<dyn Fn(&Ebpf, &Snapshot)>;

/// One row of a fixture table.
pub struct Fixture {
    pub name: &'static str,
    pub program: &'static str,
    pub frame: Vec<u8>,
    pub setup: MapSetup,
    pub verdict: u32,
    pub output: Output,
    pub check: MapCheck,
}

/// Map state captured before a fixture runs, for checks on what changed.
pub struct Snapshot {
    pub class_stats: dataplane::ClassStats,
}

/// No map check beyond the harness's own (verdict, bytes, checksums).
pub fn no_check() -> MapCheck {
    Box::new(|_, _| {})
}

/// No map setup.
pub fn no_setup() -> MapSetup {
    Box::new(|_| {})
}

/// Loads a fresh copy of the data plane, so fixtures never see each other's map state.
pub fn fresh_dataplane() -> Ebpf {
    dataplane::open(dataplane::TableSizes {
        flows: 4096,
        bindings: 4096,
    })
    .expect("load the data plane object")
}

/// Runs `frame` once through `program` and returns (verdict, output frame).
pub fn run_once(ebpf: &mut Ebpf, program: &'static str, frame: &[u8]) -> (u32, Vec<u8>) {
    let prog = dataplane::xdp_program(ebpf, program).expect("verifier accepts the program");
    // Room for programs that grow the frame (encapsulation, ICMP errors).
    let mut out = vec![0u8; frame.len() + 256];
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: 1,
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

/// Runs every fixture; reports all failures at once.
pub fn run_table(fixtures: Vec<Fixture>) {
    let mut failures = Vec::new();
    let count = fixtures.len();
    for fixture in fixtures {
        let mut ebpf = fresh_dataplane();
        (fixture.setup)(&mut ebpf);
        let before = Snapshot {
            class_stats: dataplane::ClassStats::read(&ebpf).expect("read stats"),
        };
        let (verdict, out) = run_once(&mut ebpf, fixture.program, &fixture.frame);
        let mut problems = Vec::new();
        if verdict != fixture.verdict {
            problems.push(format!(
                "verdict {} ({verdict}), expected {}",
                verdict::name(verdict),
                verdict::name(fixture.verdict)
            ));
        }
        let expected = match &fixture.output {
            Output::Unchanged => &fixture.frame,
            Output::Bytes(bytes) => bytes,
        };
        if &out != expected {
            problems.push(format!(
                "output bytes differ\nexpected:\n{}\ngot:\n{}",
                hex_dump(expected),
                hex_dump(&out)
            ));
        }
        // Whatever the data plane forwards must carry checksums that a full recomputation
        // accepts, independently of the incremental updates it made.
        if verdict == verdict::REDIRECT
            && let Err(e) = verify_checksums(&out)
        {
            problems.push(format!("forwarded frame has a bad checksum: {e}"));
        }
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (fixture.check)(&ebpf, &before);
        })) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            problems.push(format!("map check failed: {message}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "fixture `{}` ({}):\n  {}\ninput frame:\n{}",
                fixture.name,
                fixture.program,
                problems.join("\n  "),
                hex_dump(&fixture.frame)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} fixtures failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
