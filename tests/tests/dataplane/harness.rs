//! Fixture tables for data-plane programs: `{name, frame, map setup, expected verdict, expected
//! output}`, run through `BPF_PROG_TEST_RUN`. A failure names the fixture and dumps the frames.

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions},
};
use failover_common::names;
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

/// TC verdicts (`TC_ACT_*`).
pub mod tc_verdict {
    pub const OK: u32 = 0;
    pub const SHOT: u32 = 2;
    pub const REDIRECT: u32 = 7;

    /// The TC verdict for what the XDP program's verdict does: a reset sent back (`XDP_TX`)
    /// is a redirect to the interface it came from.
    #[must_use]
    pub fn of_xdp(xdp: u32) -> u32 {
        match xdp {
            super::verdict::PASS => OK,
            super::verdict::REDIRECT | super::verdict::TX => REDIRECT,
            _ => SHOT,
        }
    }

    /// The XDP verdict a TC verdict stands for; a redirect is a reset sent back when
    /// `expected` (the XDP verdict looked for) is `XDP_TX`. Unknown verdicts stay unknown.
    #[must_use]
    pub fn as_xdp(tc: u32, expected: u32) -> u32 {
        match tc {
            OK => super::verdict::PASS,
            SHOT => super::verdict::DROP,
            REDIRECT if expected == super::verdict::TX => super::verdict::TX,
            REDIRECT => super::verdict::REDIRECT,
            other => 100 + other,
        }
    }

    #[must_use]
    pub fn name(verdict: u32) -> &'static str {
        match verdict {
            OK => "TC_ACT_OK",
            SHOT => "TC_ACT_SHOT",
            REDIRECT => "TC_ACT_REDIRECT",
            _ => "unknown",
        }
    }
}

/// The TC program that does what XDP program `xdp` does, on the TC path.
#[must_use]
pub fn tc_twin(xdp: &str) -> Option<&'static str> {
    match xdp {
        names::PROG_LAN_INGRESS => Some(names::PROG_LAN_TC),
        names::PROG_UPLINK_INGRESS => Some(names::PROG_UPLINK_TC),
        _ => None,
    }
}

/// Whether `program` is one of the TC programs.
#[must_use]
pub fn is_tc(program: &str) -> bool {
    names::TC_PROGRAMS.contains(&program)
}

/// Whether the kernel builds an skb from `frame` for `BPF_PROG_TEST_RUN`: it needs a whole
/// Ethernet header, and an IPv4 or IPv6 frame must hold the base header (a runt is refused
/// with EINVAL, so such fixtures run through XDP only).
pub fn skb_buildable(frame: &[u8]) -> bool {
    const ETH: usize = 14;
    if frame.len() < ETH {
        return false;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => frame.len() >= ETH + 20,
        0x86dd => frame.len() >= ETH + 40,
        _ => true,
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

/// Runs `frame` once through `program` (XDP or TC) and returns (verdict, output frame).
pub fn run_once(ebpf: &mut Ebpf, program: &'static str, frame: &[u8]) -> (u32, Vec<u8>) {
    // Room for programs that grow the frame (encapsulation, ICMP errors).
    let mut out = vec![0u8; frame.len() + 256];
    let options = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat: 1,
        ..Default::default()
    };
    let result = if is_tc(program) {
        dataplane::tc_program(ebpf, program)
            .expect("verifier accepts the program")
            .test_run(options)
    } else {
        dataplane::xdp_program(ebpf, program)
            .expect("verifier accepts the program")
            .test_run(options)
    }
    .expect("BPF_PROG_TEST_RUN");
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

/// Runs `frame` once through TC program `program` and returns (verdict, output frame, the
/// skb's mark afterwards).
pub fn run_tc_marked(ebpf: &mut Ebpf, program: &'static str, frame: &[u8]) -> (u32, Vec<u8>, u32) {
    /// Room for `struct __sk_buff` (192 bytes on 6.x); the kernel wants the rest zero.
    const SKB_CTX: usize = 256;
    /// `__sk_buff.mark`: after `len` and `pkt_type`.
    const MARK_AT: usize = 8;
    let mut out = vec![0u8; frame.len() + 256];
    let ctx_in = [0u8; SKB_CTX];
    let mut ctx_out = [0u8; SKB_CTX];
    let options = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        repeat: 1,
        ..Default::default()
    };
    let result = dataplane::tc_program(ebpf, program)
        .expect("verifier accepts the program")
        .test_run(options)
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(result.data_size_out as usize);
    let mark = u32::from_ne_bytes(
        ctx_out[MARK_AT..MARK_AT + 4]
            .try_into()
            .expect("four bytes"),
    );
    (result.return_value, out, mark)
}

/// Runs every fixture through its XDP program and through the TC program that does the same
/// on the TC path (same maps, same expected frame); reports all failures at once.
pub fn run_table(fixtures: &[Fixture]) {
    let mut failures = Vec::new();
    let mut runs = 0;
    for fixture in fixtures {
        failures.extend(run_fixture(fixture, fixture.program, fixture.verdict));
        runs += 1;
        if let Some(tc) = tc_twin(fixture.program)
            && skb_buildable(&fixture.frame)
        {
            failures.extend(run_fixture(
                fixture,
                tc,
                tc_verdict::of_xdp(fixture.verdict),
            ));
            runs += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} fixture runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    println!(
        "{runs} fixture runs ({} fixtures, XDP and TC) passed",
        fixtures.len()
    );
}

fn verdict_name(program: &str, verdict: u32) -> &'static str {
    if is_tc(program) {
        tc_verdict::name(verdict)
    } else {
        verdict::name(verdict)
    }
}

/// Runs one fixture through `program`; the problems found, if any.
fn run_fixture(fixture: &Fixture, program: &'static str, expected: u32) -> Option<String> {
    let mut ebpf = fresh_dataplane();
    (fixture.setup)(&mut ebpf);
    let before = Snapshot {
        class_stats: dataplane::ClassStats::read(&ebpf).expect("read stats"),
    };
    let (verdict, out) = run_once(&mut ebpf, program, &fixture.frame);
    let mut problems = Vec::new();
    if verdict != expected {
        problems.push(format!(
            "verdict {} ({verdict}), expected {}",
            verdict_name(program, verdict),
            verdict_name(program, expected)
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
    let forwarded = if is_tc(program) {
        verdict == tc_verdict::REDIRECT
    } else {
        verdict == verdict::REDIRECT
    };
    if forwarded && let Err(e) = verify_checksums(&out) {
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
    (!problems.is_empty()).then(|| {
        format!(
            "fixture `{}` ({program}):\n  {}\ninput frame:\n{}",
            fixture.name,
            problems.join("\n  "),
            hex_dump(&fixture.frame)
        )
    })
}
