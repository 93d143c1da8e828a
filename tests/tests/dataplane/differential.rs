//! Differential test of the NAT data plane against its reference model
//! (`failover_tests::model`): thousands of random and mutated frames go through the real
//! programs (`BPF_PROG_TEST_RUN`, in the scratch namespace) and through the model with the
//! same configuration. Every frame must get the same verdict, the same output bytes and the
//! same reason; at the end of each batch the flow, binding and reverse tables and the
//! counters must agree too.
//!
//! Forwarded frames are also checked against checksums recomputed from scratch, so an
//! arithmetic mistake that both sides share cannot hide.
//!
//! Size: 24 batches of 1000 random frames per direction plus truncation sweeps, about 25 000
//! LAN and 28 000 uplink frames in about 12 s on two cores. Each batch loads a fresh data
//! plane (empty tables).
//!
//! Deterministic: frames come from a seeded PRNG; the seed is printed, and `FO_DIFF_SEED=<n>`
//! replays another one. The kernel's clock is real and the model's is not, so each batch
//! must end well within the shortest timeout: then nothing expires on either side and the
//! tables are compared without their timestamps.
//!
//! When this test was written both tests failed on three data-plane bugs, which
//! `differential_known_cases` shows one by one: the MSS clamp's checksum update for an MSS
//! at an odd offset, an MSS option running past the TCP header, and ICMP errors (and TCP
//! options) read past the end of the IPv4 packet.

use std::collections::{BTreeMap, HashMap, btree_map};
use std::fmt::Write as _;
use std::hash::Hash;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use aya::{
    Ebpf, Pod,
    maps::{Array, DevMap, HashMap as KernelHashMap, MapData, PerCpuArray},
};
use failover_common::{
    classify::{CLASS_STATS_ENTRIES, Direction, PacketClass, ip_proto, stat_index},
    limits::HostLimits,
    names,
    nat::{
        Binding, BindingKey, DEVICE_SLOTS, Flow, FlowKey, ForwardTarget, Lan, MAX_UPLINKS,
        NO_UPLINK, Policy, ReverseKey, Uplink, flow_origin,
    },
    verdict::{REASON_COUNT, Reason, UplinkCounters},
};
use failover_tests::{
    frame::{
        Frame, ROUTER_MAC, hex_dump, internet_checksum, set_icmp_type, tcp_flags, verify_checksums,
    },
    model::{Fib, Model, Outcome, SHORTEST_TIMEOUT_S},
    privilege::skip_unless_root,
};
use failover_user::dataplane;

use crate::{
    harness::{fresh_dataplane, is_tc, run_once, skb_buildable, tc_twin, tc_verdict, verdict},
    nat::{FIBER, FIBER_ADDR, FIBER_GW_MAC, FIBER_MAC, HOST_MAC, LTE, LTE_ADDR, Net, in_scratch},
    scratch_netns::RESOLVED_HOST,
};

const SEED_ENV: &str = "FO_DIFF_SEED";
const DEFAULT_SEED: u64 = 0x00c0_ffee_d1ff;
/// Each batch starts from a freshly loaded data plane (empty tables, a new clock origin).
const BATCHES: usize = 24;
/// Random frames per direction and batch, besides the truncation sweeps.
const PER_DIRECTION: usize = 1000;
/// A batch stops early past this: the kernel expires a closed TCP flow after
/// `SHORTEST_TIMEOUT_S` without traffic, the model never (its clock barely moves).
const BATCH_TIME_LIMIT: Duration = Duration::from_secs(SHORTEST_TIMEOUT_S * 7 / 10);
/// The model's clock advances this much per frame: a whole run stays far below any timeout.
const MODEL_TICK_NS: u64 = 1_000;
/// Kinds of mismatch reported in full (the first frame of each); the rest are only counted.
const MAX_KINDS: usize = 20;
/// `BPF_PROG_TEST_RUN` frames arrive on the namespace's loopback interface.
const LOOPBACK_IFINDEX: u32 = 1;
/// The shortest frame `BPF_PROG_TEST_RUN` takes: an Ethernet header.
const ETH_HLEN: usize = 14;
const IPV4_HLEN: usize = 20;

/// Reasons this setup cannot produce: every devmap slot an uplink or the LAN uses is set,
/// every interface takes XDP frames (the hand-over to TC is tested in `nat`), and no uplink's
/// MTU is below the LAN's (too-big packets are tested in `nat` and `e2e_uplinks`).
const UNREACHABLE_REASONS: [Reason; 3] = [Reason::RedirectFailed, Reason::TcPath, Reason::TooBig];

#[test]
fn differential_against_the_model() {
    if skip_unless_root("differential_against_the_model") {
        return;
    }
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map_or(DEFAULT_SEED, |s| parse_seed(&s));
    println!("differential: seed {seed:#x} (replay with {SEED_ENV}={seed:#x})");
    let started = Instant::now();
    let mut totals = Totals::default();
    in_scratch(|scratch| {
        let mut rng = Rng(seed);
        for batch in 0..BATCHES {
            let net = random_net(&mut rng, Net::new(scratch));
            Batch::new(batch, seed, net, &mut rng, &mut totals).run();
        }
    });
    println!(
        "differential: {} LAN frames, {} uplink frames in {:.1?}; reasons: {}",
        totals.frames[0],
        totals.frames[1],
        started.elapsed(),
        totals.reason_histogram()
    );
    assert!(
        totals.mismatches == 0,
        "{} mismatches between the data plane and the model (seed {seed:#x}), {} kinds; the \
         first frame of each:\n\n{}",
        totals.mismatches,
        totals.kinds.len(),
        totals.kinds_report()
    );
    let missing = totals.unexercised_reasons();
    assert!(
        missing.is_empty(),
        "seed {seed:#x} never produced reasons {missing:?}: the generator lost coverage"
    );
}

/// The smallest frames that showed each difference the random run found, on their own: a
/// fix (or a regression) shows by name. Each case primes flows from the LAN, then sends its
/// frame. All four are data-plane bugs (the model is right; see `failover_tests::model`):
///
/// - `mss::clamp` patches the TCP checksum with the MSS value as an aligned word; at an odd
///   offset (after a window-scale option) the forwarded SYN's checksum is wrong, and the
///   connection never opens through a clamping uplink. Both directions.
/// - `mss::clamp` reads and rewrites an MSS value that lies past the TCP header (in the
///   payload or a trailer) when the option's length runs past the header's end.
/// - `icmp_error::translate` bounds its reads by the frame, not by the IPv4 total length: it
///   translates a "quote" found in a trailer, and patches the ICMP checksum for bytes it does
///   not cover, so the LAN host gets an ICMP error with a wrong checksum.
#[test]
fn differential_known_cases() {
    if skip_unless_root("differential_known_cases") {
        return;
    }
    let mut failures = Vec::new();
    in_scratch(|scratch| {
        for (index, case) in known_cases().into_iter().enumerate() {
            let net = Net {
                active: case.uplink,
                ingress: case.uplink,
                ..Net::new(scratch)
            };
            let (mut rng, mut totals) = (Rng(0), Totals::default());
            let mut batch = Batch::new(index, 0, net, &mut rng, &mut totals);
            for frame in case.priming {
                batch.check(Direction::Lan, &Sample::new("priming", frame));
            }
            batch.check(case.direction, &Sample::new(case.name, case.frame));
            batch.compare_tables();
            if totals.mismatches != 0 {
                failures.push(format!("--- {}\n{}", case.name, totals.kinds_report()));
            }
        }
    });
    assert!(
        failures.is_empty(),
        "{} known cases differ between the data plane and the model:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

struct KnownCase {
    name: &'static str,
    /// Active uplink, and the one frames arrive on.
    uplink: u32,
    priming: Vec<Vec<u8>>,
    direction: Direction,
    frame: Vec<u8>,
}

fn known_cases() -> Vec<KnownCase> {
    let host = sock([10, 10, 0, 11], 40000);
    let web = sock([203, 0, 113, 10], 80);
    let syn = |options: &[u8], payload: &[u8]| {
        Frame::tcp(host, web, tcp_flags::SYN)
            .tcp_options(options)
            .payload(payload)
            .build()
    };
    // A window-scale option (3 bytes) puts the MSS value at an odd offset.
    let odd_mss = [3, 3, 7, 2, 4, 0x05, 0xb4];
    let syn_ack = Frame::tcp(web, sock(LTE_ADDR, 40000), tcp_flags::SYN | tcp_flags::ACK)
        .tcp_options(&odd_mss)
        .build();
    // The TCP packet as it left, quoted in full by a port unreachable whose IPv4 total
    // length covers only the first 28 bytes (RFC 792's minimum); the rest stays in the
    // frame as a trailer.
    let left = Frame::tcp(sock(FIBER_ADDR, 40000), web, tcp_flags::SYN)
        .ttl(63)
        .build();
    let mut error = icmp_message(ROUTER_ON_THE_PATH, FIBER_ADDR, (3, 3), &[0; 4], &left[14..]);
    Cut::PacketKeepTrailer.apply(&mut error, 14 + 20 + 8 + 28);
    // As a sender would: the ICMP checksum covers the message the total length says.
    set_icmp_type(&mut error, 3, 3);
    vec![
        KnownCase {
            name: "LAN SYN clamped on LTE, MSS at an odd offset",
            uplink: LTE,
            priming: vec![],
            direction: Direction::Lan,
            frame: syn(&odd_mss, b""),
        },
        KnownCase {
            name: "SYN-ACK clamped on LTE, MSS at an odd offset",
            uplink: LTE,
            priming: vec![syn(&[], b"")],
            direction: Direction::Uplink,
            frame: syn_ack,
        },
        KnownCase {
            name: "LAN SYN whose MSS option runs past the TCP header into the payload",
            uplink: LTE,
            priming: vec![],
            direction: Direction::Lan,
            frame: syn(&[1, 1, 1, 1, 1, 1, 2, 4], &[0x05, 0xb4, 0xde, 0xad]),
        },
        KnownCase {
            name: "ICMP error whose quoted TCP checksum is past the IPv4 packet, in a trailer",
            uplink: FIBER,
            priming: vec![syn(&[], b"")],
            direction: Direction::Uplink,
            frame: error,
        },
    ]
}

fn parse_seed(text: &str) -> u64 {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .unwrap_or_else(|e| panic!("{SEED_ENV}={text}: {e}"))
}

/// Counts over the whole run.
#[derive(Default)]
struct Totals {
    /// Frames per direction (LAN, uplink).
    frames: [usize; 2],
    /// Frames per reason, as the model gave them.
    reasons: [usize; REASON_COUNT as usize],
    mismatches: usize,
    /// Mismatches by kind (what differs, in which direction): how many, and the first report.
    kinds: BTreeMap<String, (usize, String)>,
}

impl Totals {
    fn reason_histogram(&self) -> String {
        Reason::ALL
            .iter()
            .map(|r| format!("{} {}", r.name(), self.reasons[*r as usize]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn unexercised_reasons(&self) -> Vec<&'static str> {
        Reason::ALL
            .iter()
            .filter(|r| self.reasons[**r as usize] == 0 && !UNREACHABLE_REASONS.contains(r))
            .map(|r| r.name())
            .collect()
    }

    fn mismatch(&mut self, kind: String, report: String) {
        self.mismatches += 1;
        let room = self.kinds.len() < MAX_KINDS;
        match self.kinds.entry(kind) {
            btree_map::Entry::Occupied(mut seen) => seen.get_mut().0 += 1,
            btree_map::Entry::Vacant(new) if room => {
                new.insert((1, report));
            }
            btree_map::Entry::Vacant(_) => {}
        }
    }

    fn kinds_report(&self) -> String {
        self.kinds
            .iter()
            .map(|(kind, (count, first))| format!("=== {count} x {kind}\n{first}"))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// splitmix64: tiny, seedable, and good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).expect("usize fits u64");
        usize::try_from(self.next() % n).expect("below n")
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.byte()).collect()
    }
}

/// One fresh data plane and model, fed the same frames.
struct Batch<'a> {
    index: usize,
    seed: u64,
    ebpf: Ebpf,
    model: Model,
    net: Net,
    rng: &'a mut Rng,
    totals: &'a mut Totals,
    /// The model's clock.
    now: u64,
    /// The kernel's reason counters after the previous frame.
    kernel_reasons: Vec<u64>,
    frame_index: usize,
}

/// A generated frame and how it was made, for reports.
struct Sample {
    label: String,
    frame: Vec<u8>,
}

impl Sample {
    fn new(label: impl Into<String>, frame: Vec<u8>) -> Self {
        Sample {
            label: label.into(),
            frame,
        }
    }
}

impl<'a> Batch<'a> {
    fn new(index: usize, seed: u64, net: Net, rng: &'a mut Rng, totals: &'a mut Totals) -> Self {
        let mut ebpf = fresh_dataplane();
        net.apply(&mut ebpf);
        dataplane::set_forwards(&mut ebpf, &FORWARDS).expect("set forwards");
        let mut model = Model::new();
        model.forwards = FORWARDS.into_iter().collect();
        sync_config(&mut model, &ebpf);
        let kernel_reasons = dataplane::reason_counts(&ebpf).expect("read reasons");
        Batch {
            index,
            seed,
            ebpf,
            model,
            net,
            rng,
            totals,
            now: 1_000_000_000,
            kernel_reasons,
            frame_index: 0,
        }
    }

    fn run(mut self) {
        let started = Instant::now();
        let (mut lan_left, mut uplink_left) = (PER_DIRECTION, PER_DIRECTION);
        let mut swept = false;
        while lan_left + uplink_left > 0 {
            if started.elapsed() > BATCH_TIME_LIMIT {
                println!(
                    "differential: batch {} stopped early after {:.1?} to stay clear of timeouts",
                    self.index,
                    started.elapsed()
                );
                break;
            }
            if self.rng.chance(2) {
                self.reconfigure();
            }
            // Halfway, when there are flows to reply to.
            if !swept && lan_left + uplink_left <= PER_DIRECTION {
                swept = true;
                self.truncation_sweeps();
            }
            let from_lan = uplink_left == 0 || (lan_left > 0 && self.rng.chance(50));
            if from_lan {
                lan_left -= 1;
                let sample = lan_sample(self.rng, &self.model);
                self.check(Direction::Lan, &sample);
            } else {
                uplink_left -= 1;
                let sample = uplink_sample(self.rng, &self.model);
                self.check(Direction::Uplink, &sample);
            }
        }
        self.compare_tables();
    }

    /// Policy change, uplinks marked (un)usable, another port range, another ingress uplink.
    fn reconfigure(&mut self) {
        self.net = random_net(self.rng, self.net);
        self.net.apply(&mut self.ebpf);
        sync_config(&mut self.model, &self.ebpf);
    }

    /// Frames cut at every length: a LAN SYN with options, replies to a live flow, ICMP errors
    /// about it; and the ICMP errors cut consistently (total length fixed), with and without
    /// the cut bytes left behind as a trailer.
    fn truncation_sweeps(&mut self) {
        let syn = Frame::tcp(
            SocketAddrV4::new(Ipv4Addr::new(10, 10, 0, 11), 40000),
            SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 80),
            tcp_flags::SYN,
        )
        .tcp_options(&[1, 1, 4, 2, 2, 4, 0x05, 0xb4])
        .payload(b"x")
        .build();
        self.sweep(Direction::Lan, "lan syn", &syn, Cut::Frame);
        let flows = sorted_flows(&self.model);
        let Some(&(key, flow)) = flows.first() else {
            return;
        };
        let here = ingress_addr(&self.model);
        let reply = reply_to_flow(self.rng, &key, &flow, here);
        self.sweep(Direction::Uplink, &reply.label, &reply.frame, Cut::Frame);
        let error = icmp_error_about_flow(self.rng, &key, &flow, here, Quote::Full);
        for cut in [Cut::Frame, Cut::Packet, Cut::PacketKeepTrailer] {
            self.sweep(Direction::Uplink, &error.label, &error.frame, cut);
        }
    }

    fn sweep(&mut self, direction: Direction, label: &str, frame: &[u8], cut: Cut) {
        let first = if cut == Cut::Frame {
            ETH_HLEN
        } else {
            ETH_HLEN + IPV4_HLEN
        };
        for len in first..frame.len() {
            let mut cut_frame = frame.to_vec();
            cut.apply(&mut cut_frame, len);
            let sample = Sample::new(format!("{label}, {cut:?} cut at {len}"), cut_frame);
            self.check(direction, &sample);
        }
    }

    /// Runs one frame through the program and the model and records any difference.
    fn check(&mut self, direction: Direction, sample: &Sample) {
        assert!(
            sample.frame.len() >= ETH_HLEN,
            "generated a runt: {}",
            sample.label
        );
        self.frame_index += 1;
        self.now += MODEL_TICK_NS;
        let (program, counted) = match direction {
            Direction::Lan => (names::PROG_LAN_INGRESS, 0),
            Direction::Uplink => (names::PROG_UPLINK_INGRESS, 1),
        };
        // Odd batches run the TC programs: the same translation on an skb.
        let program = if self.index % 2 == 1 {
            if !skb_buildable(&sample.frame) {
                return;
            }
            tc_twin(program).expect("both ingress programs have a TC twin")
        } else {
            program
        };
        self.totals.frames[counted] += 1;
        let (action, output) = run_once(&mut self.ebpf, program, &sample.frame);
        let kernel_reason = self.kernel_reason();
        let expected = match direction {
            Direction::Lan => self.model.lan_ingress(&sample.frame, self.now),
            Direction::Uplink => {
                let fib = scratch_fib(self.net.lan_ifindex);
                self.model
                    .uplink_ingress(&sample.frame, LOOPBACK_IFINDEX, self.now, &fib)
            }
        };
        self.totals.reasons[expected.reason as usize] += 1;
        let action = if is_tc(program) {
            tc_verdict::as_xdp(action, expected.verdict.xdp_action())
        } else {
            action
        };
        let problems = differences(sample, action, &output, &kernel_reason, &expected);
        if !problems.is_empty() {
            let program = Side {
                action,
                reason: kernel_reason.as_ref().map_or("?", |r| r.name()),
                frame: &output,
            };
            let model = Side {
                action: expected.verdict.xdp_action(),
                reason: expected.reason.name(),
                frame: &expected.frame,
            };
            let report = self.report(direction, sample, &problems, [program, model]);
            self.totals
                .mismatch(mismatch_kind(direction, &problems), report);
            // Carry on from the kernel's state, so one difference is reported once rather
            // than as every later frame it affects.
            self.adopt_kernel_state();
        }
    }

    /// The reason the kernel counted for the last frame: exactly one counter went up by one.
    fn kernel_reason(&mut self) -> Result<Reason, String> {
        let counts = dataplane::reason_counts(&self.ebpf).expect("read reasons");
        let raised: Vec<(Reason, u64)> = Reason::ALL
            .iter()
            .map(|r| (*r, counts[*r as usize] - self.kernel_reasons[*r as usize]))
            .filter(|(_, delta)| *delta != 0)
            .collect();
        self.kernel_reasons = counts;
        match raised[..] {
            [(reason, 1)] => Ok(reason),
            _ => Err(format!("reason counters moved by {raised:?}")),
        }
    }

    fn report(
        &self,
        direction: Direction,
        sample: &Sample,
        problems: &[String],
        [program, model]: [Side; 2],
    ) -> String {
        let net = self.net;
        let mut report = format!(
            "seed {:#x}, batch {}, frame {} ({direction:?} ingress): {}\n  {}\n",
            self.seed,
            self.index,
            self.frame_index,
            sample.label,
            problems.join("\n  ")
        );
        let _ = writeln!(
            report,
            "config: active {} fiber_usable {} lte_usable {} ingress {} fiber_ports {:?} \
             fiber_gateway_known {}",
            net.active,
            net.fiber_usable,
            net.lte_usable,
            net.ingress,
            net.fiber_ports,
            net.fiber_gateway_known
        );
        let _ = write!(report, "input:\n{}", hex_dump(&sample.frame));
        for (name, side) in [("program", program), ("model", model)] {
            let _ = write!(
                report,
                "\n{name}: {} ({}):\n{}",
                verdict::name(side.action),
                side.reason,
                hex_dump(side.frame)
            );
        }
        report
    }

    /// After a mismatch: the model takes the kernel's tables and counters.
    fn adopt_kernel_state(&mut self) {
        let now = self.now;
        self.model.flows = seen_at(kernel_flows(&self.ebpf), now);
        self.model.bindings = seen_at(kernel_bindings(&self.ebpf), now);
        self.model.reverse = seen_at(kernel_reverse(&self.ebpf), now);
        self.model.hosts = kernel_table(&self.ebpf, names::MAP_HOSTS);
        for (model, kernel) in self.model.reasons.iter_mut().zip(&self.kernel_reasons) {
            *model = *kernel;
        }
        self.model.uplink_counters = kernel_uplink_counters(&self.ebpf);
        self.model.class_stats = kernel_class_stats(&self.ebpf);
    }

    /// The tables (without timestamps) and every counter, kernel against model.
    fn compare_tables(&mut self) {
        let model = &self.model;
        let mut problems = diff_tables(
            "flows",
            &seen_at(kernel_flows(&self.ebpf), 0),
            &seen_at(model.flows.clone(), 0),
        );
        problems.extend(diff_tables(
            "bindings",
            &seen_at(kernel_bindings(&self.ebpf), 0),
            &seen_at(model.bindings.clone(), 0),
        ));
        problems.extend(diff_tables(
            "hosts",
            &kernel_table(&self.ebpf, names::MAP_HOSTS),
            &model.hosts,
        ));
        problems.extend(diff_tables(
            "reverse bindings",
            &seen_at(kernel_reverse(&self.ebpf), 0),
            &seen_at(model.reverse.clone(), 0),
        ));
        if self.kernel_reasons[..] != self.model.reasons[..] {
            problems.push(format!(
                "reason counters: kernel {:?}, model {:?}",
                self.kernel_reasons, self.model.reasons
            ));
        }
        let counters = kernel_uplink_counters(&self.ebpf);
        if counters != self.model.uplink_counters {
            problems.push(format!(
                "uplink counters: kernel {counters:?}, model {:?}",
                self.model.uplink_counters
            ));
        }
        let classes = kernel_class_stats(&self.ebpf);
        if classes != self.model.class_stats {
            problems.push(format!(
                "class counters: kernel {classes:?}, model {:?}",
                self.model.class_stats
            ));
        }
        if !problems.is_empty() {
            self.totals.mismatch(
                "tables or counters differ".into(),
                format!(
                    "seed {:#x}, batch {}: tables differ after {} frames:\n  {}",
                    self.seed,
                    self.index,
                    self.frame_index,
                    problems.join("\n  ")
                ),
            );
        }
    }
}

/// How a sweep shortens a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// The frame ends early; the IPv4 header still claims the whole packet.
    Frame,
    /// The IPv4 packet ends early (total length and header checksum fixed), and so does
    /// the frame.
    Packet,
    /// The IPv4 packet ends early, but the frame keeps the bytes after it, as a trailer.
    PacketKeepTrailer,
}

impl Cut {
    fn apply(self, frame: &mut Vec<u8>, len: usize) {
        if self != Cut::Frame {
            let total = u16::try_from(len - ETH_HLEN).expect("short frame");
            frame[16..18].copy_from_slice(&total.to_be_bytes());
            fix_ip_checksum(frame);
        }
        if self != Cut::PacketKeepTrailer {
            frame.truncate(len);
        }
    }
}

/// One side's result, as a mismatch report shows it.
struct Side<'a> {
    action: u32,
    reason: &'a str,
    frame: &'a [u8],
}

/// What a mismatch is, without the details that vary from frame to frame.
fn mismatch_kind(direction: Direction, problems: &[String]) -> String {
    let what: Vec<&str> = problems
        .iter()
        .map(|p| p.split(" at offsets").next().unwrap_or(p))
        .collect();
    format!("{direction:?} ingress: {}", what.join("; "))
}

/// Everything that differs between the program's result and the model's.
fn differences(
    sample: &Sample,
    action: u32,
    output: &[u8],
    kernel_reason: &Result<Reason, String>,
    expected: &Outcome,
) -> Vec<String> {
    let mut problems = Vec::new();
    if action != expected.verdict.xdp_action() {
        problems.push(format!(
            "verdict: program {}, model {}",
            verdict::name(action),
            verdict::name(expected.verdict.xdp_action())
        ));
    }
    match kernel_reason {
        Ok(reason) if *reason == expected.reason => {}
        Ok(reason) => problems.push(format!(
            "reason: program {}, model {}",
            reason.name(),
            expected.reason.name()
        )),
        Err(e) => problems.push(e.clone()),
    }
    if output != expected.frame {
        let offsets: Vec<usize> = (0..output.len().max(expected.frame.len()))
            .filter(|i| output.get(*i) != expected.frame.get(*i))
            .collect();
        problems.push(format!("output bytes differ at offsets {offsets:?}"));
    }
    if problems.is_empty() && action == verdict::REDIRECT {
        problems.extend(forwarded_checksum_problems(&sample.frame, output));
    }
    problems
}

/// A forwarded frame must keep every checksum that was right on input, judged by full
/// recomputation, independently of the incremental updates both sides made.
fn forwarded_checksum_problems(input: &[u8], output: &[u8]) -> Option<String> {
    if verify_checksums(input).is_ok()
        && let Err(e) = verify_checksums(output)
    {
        return Some(format!("forwarded frame: {e}"));
    }
    // An ICMP error's quoted IPv4 header (after the outer IPv4 and ICMP headers) has its own
    // checksum.
    let quoted_header = |frame: &[u8]| frame.get(42..62).map(internet_checksum);
    let protocol = output[ETH_HLEN + 9];
    if protocol == ip_proto::ICMP
        && quoted_header(input) == Some(0)
        && quoted_header(output) != Some(0)
    {
        return Some("forwarded ICMP error: quoted IPv4 header checksum is wrong".into());
    }
    None
}

/// What `bpf_fib_lookup` answers in the scratch namespace: lan0 holds 10.10.0.1/24, only the
/// resolved host has a neighbour entry, and there is no other route.
fn scratch_fib(lan_ifindex: u32) -> impl Fn(Ipv4Addr) -> Fib {
    let resolved: Ipv4Addr = RESOLVED_HOST.parse().expect("resolved host address");
    move |addr| match addr.octets() {
        _ if addr == resolved => Fib::Forward {
            ifindex: lan_ifindex,
            src_mac: ROUTER_MAC,
            dst_mac: HOST_MAC,
        },
        // The router's own address (a local route) and the subnet broadcast.
        [10, 10, 0, 1 | 255] => Fib::NotForwarded,
        [10, 10, 0, _] => Fib::NoNeighbour,
        _ => Fib::NotForwarded,
    }
}

/// Copies the configuration `Net::apply` wrote into the kernel's maps into the model.
fn sync_config(model: &mut Model, ebpf: &Ebpf) {
    model.lan = read_array::<Lan>(ebpf, names::MAP_LAN, 0);
    model.policy = read_array::<Policy>(ebpf, names::MAP_POLICY, 0);
    model.host_limits = read_array::<HostLimits>(ebpf, names::MAP_HOST_LIMITS, 0);
    for slot in 0..MAX_UPLINKS {
        model.uplinks[slot as usize] = read_array::<Uplink>(ebpf, names::MAP_UPLINKS, slot);
    }
    let map = ebpf.map(names::MAP_DEVICES).expect("devices map");
    let devices = DevMap::try_from(map).expect("a devmap");
    for slot in 0..DEVICE_SLOTS {
        // An empty slot reads as "not found".
        model.devices[slot as usize] = devices.get(slot, 0).ok().map(|d| d.if_index);
    }
}

fn read_array<V: Pod>(ebpf: &Ebpf, name: &'static str, index: u32) -> V {
    let map = ebpf.map(name).expect("map exists");
    Array::<_, V>::try_from(map)
        .expect("an array")
        .get(&index, 0)
        .expect("read array entry")
}

fn kernel_flows(ebpf: &Ebpf) -> HashMap<FlowKey, Flow> {
    dataplane::flows(ebpf)
        .expect("read flows")
        .into_iter()
        .collect()
}

fn kernel_reverse(ebpf: &Ebpf) -> HashMap<ReverseKey, Binding> {
    dataplane::reverse_bindings(ebpf)
        .expect("read reverse bindings")
        .into_iter()
        .collect()
}

fn kernel_table<K: Pod + Eq + Hash, V: Pod>(ebpf: &Ebpf, name: &'static str) -> HashMap<K, V> {
    let map = ebpf.map(name).expect("map exists");
    KernelHashMap::<&MapData, K, V>::try_from(map)
        .expect("a hash map")
        .iter()
        .collect::<Result<_, _>>()
        .expect("read hash map")
}

fn kernel_uplink_counters(ebpf: &Ebpf) -> [UplinkCounters; MAX_UPLINKS as usize] {
    let map = ebpf.map(names::MAP_UPLINK_COUNTERS).expect("counters map");
    let array = PerCpuArray::<_, UplinkCounters>::try_from(map).expect("a per-CPU array");
    let mut sums = [UplinkCounters::default(); MAX_UPLINKS as usize];
    for (slot, sum) in (0..MAX_UPLINKS).zip(sums.iter_mut()) {
        for cpu in array.get(&slot, 0).expect("read counters").iter() {
            sum.packets_out += cpu.packets_out;
            sum.bytes_out += cpu.bytes_out;
            sum.packets_in += cpu.packets_in;
            sum.bytes_in += cpu.bytes_in;
        }
    }
    sums
}

fn kernel_class_stats(ebpf: &Ebpf) -> [u64; CLASS_STATS_ENTRIES as usize] {
    let stats = dataplane::ClassStats::read(ebpf).expect("read class stats");
    let mut counts = [0; CLASS_STATS_ENTRIES as usize];
    for direction in [Direction::Lan, Direction::Uplink] {
        for class in PacketClass::ALL {
            counts[stat_index(direction, class) as usize] = stats.get(direction, class);
        }
    }
    counts
}

fn kernel_bindings(ebpf: &Ebpf) -> HashMap<BindingKey, Binding> {
    kernel_table(ebpf, names::MAP_BINDINGS)
}

/// Table entries with a last-use time: the kernel's clock and the model's differ, so times
/// are never compared, and the model takes the kernel's entries at its own time.
trait LastSeen {
    fn seen_at(self, now: u64) -> Self;
}

impl LastSeen for Flow {
    fn seen_at(self, now: u64) -> Self {
        Flow {
            last_seen_ns: now,
            reverse_seen_ns: now,
            ..self
        }
    }
}

impl LastSeen for Binding {
    fn seen_at(self, now: u64) -> Self {
        Binding {
            last_seen_ns: now,
            ..self
        }
    }
}

fn seen_at<K: Eq + Hash, V: LastSeen>(table: HashMap<K, V>, now: u64) -> HashMap<K, V> {
    table
        .into_iter()
        .map(|(k, v)| (k, v.seen_at(now)))
        .collect()
}

fn diff_tables<K: Eq + Hash + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    name: &str,
    kernel: &HashMap<K, V>,
    model: &HashMap<K, V>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in kernel {
        match model.get(key) {
            None => problems.push(format!("{name}: only in the kernel: {key:?} => {value:?}")),
            Some(m) if m != value => {
                problems.push(format!("{name}: {key:?}: kernel {value:?}, model {m:?}"));
            }
            Some(_) => {}
        }
    }
    for (key, value) in model {
        if !kernel.contains_key(key) {
            problems.push(format!("{name}: only in the model: {key:?} => {value:?}"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A random configuration over `base` (its interfaces): which uplink is active (or none, or
/// a slot with no uplink), which are usable, the fiber's port range (wide, tiny, one port,
/// inverted), whether its gateway is resolved, and which uplink frames arrive on.
fn random_net(rng: &mut Rng, base: Net) -> Net {
    Net {
        active: rng.pick(&[
            FIBER,
            FIBER,
            FIBER,
            FIBER,
            FIBER,
            FIBER,
            LTE,
            LTE,
            LTE,
            LTE,
            LTE,
            NO_UPLINK,
            2,
            MAX_UPLINKS + 1,
        ]),
        fiber_usable: rng.chance(90),
        lte_usable: rng.chance(90),
        ingress: rng.pick(&[FIBER, FIBER, FIBER, FIBER, FIBER, LTE, LTE, LTE, LTE, 99]),
        fiber_ports: rng.pick(&[
            (1024, 65535),
            (1024, 65535),
            (1024, 65535),
            (1024, 65535),
            (50000, 50003),
            (50000, 50000),
            (40000, 40001),
            (60000, 50000),
        ]),
        fiber_gateway_known: rng.chance(90),
        balanced: rng.chance(30),
        // Small limits, so that random frames of a few hosts reach them.
        host_limits: rng.pick(&[None, None, None, Some((3, 2)), Some((2, 0)), Some((0, 1))]),
        ..base
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

const LAN_HOSTS: [[u8; 4]; 9] = [
    [10, 10, 0, 11],
    [10, 10, 0, 11],
    [10, 10, 0, 11],
    [10, 10, 0, 12],
    [10, 10, 0, 12],
    [10, 10, 0, 13],
    // The router's own LAN address, the subnet's broadcast and network addresses: translated
    // out like any host, but the FIB cannot hand their replies to a neighbour.
    [10, 10, 0, 1],
    [10, 10, 0, 255],
    [10, 10, 0, 0],
];
/// LAN ports inside and outside the small fiber ranges, so ports are kept or probed.
const LAN_PORTS: [u16; 8] = [40000, 40001, 50000, 50001, 50002, 1024, 65535, 33434];
const REMOTES: [[u8; 4]; 3] = [[203, 0, 113, 10], [198, 51, 100, 7], [8, 8, 8, 8]];
const REMOTE_PORTS: [u16; 4] = [7, 80, 443, 53];
const ICMP_IDS: [u16; 5] = [4242, 1, 40000, 50000, 0];
const TCP_FLAG_SETS: [u8; 11] = [
    tcp_flags::SYN,
    tcp_flags::SYN,
    tcp_flags::SYN | tcp_flags::ACK,
    tcp_flags::ACK,
    tcp_flags::PSH | tcp_flags::ACK,
    tcp_flags::FIN | tcp_flags::ACK,
    tcp_flags::RST,
    tcp_flags::RST | tcp_flags::ACK,
    0,
    tcp_flags::SYN | tcp_flags::FIN,
    0xff,
];
/// TCP options: MSS above, at and below the LTE clamp, in odd places, and malformed.
const TCP_OPTIONS: [&[u8]; 17] = [
    &[],
    &[2, 4, 0x05, 0xb4],
    &[1, 1, 4, 2, 2, 4, 0x05, 0xb4],
    &[2, 4, 0x05, 0x50],
    &[2, 4, 0x05, 0x51],
    &[2, 4, 0xff, 0xff],
    &[2, 4, 0, 0],
    &[3, 3, 7, 2, 4, 0x05, 0xb4],
    &[0, 2, 4, 0x05, 0xb4],
    &[2, 3, 0x05, 0xb4],
    &[2, 0, 0x05, 0xb4],
    &[8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 2, 4, 0x05, 0xb4],
    // An MSS option that runs past the end of the header into the payload.
    &[1, 1, 1, 1, 1, 1, 2, 4],
    &[1, 1, 1, 1, 1, 1, 1, 2],
    // MSS as the 8th option, the last the clamp looks at, and as the 9th.
    &[1, 1, 1, 1, 1, 1, 1, 2, 4, 0x05, 0xb4],
    &[1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 0x05, 0xb4],
    &[1; 40],
];
/// Where truncation hurts: Ethernet, IPv4, transport, ICMP error quote, TCP options. Never
/// below an Ethernet header, which `BPF_PROG_TEST_RUN` refuses (and no NIC delivers).
const CUTS: [usize; 22] = [
    14, 15, 33, 34, 35, 37, 41, 42, 45, 53, 54, 55, 57, 58, 61, 62, 65, 69, 70, 77, 78, 80,
];
const ICMP_ERRORS: [(u8, u8); 9] = [
    (3, 0),
    (3, 1),
    (3, 3),
    (3, 4),
    (3, 13),
    (11, 0),
    (11, 1),
    (12, 0),
    (12, 2),
];
/// ICMP messages that are not errors the NAT translates: source quench, redirect, echo
/// request, echo reply (to a quote), timestamp.
const NOT_ICMP_ERRORS: [(u8, u8); 5] = [(4, 0), (5, 1), (8, 0), (0, 0), (13, 0)];
const ROUTER_ON_THE_PATH: [u8; 4] = [198, 18, 1, 1];

fn sock(addr: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(addr), port)
}

/// A frame from the LAN: mostly translatable traffic, then everything that is not, then
/// optionally mutated.
fn lan_sample(rng: &mut Rng, model: &Model) -> Sample {
    let forwarded: Vec<_> = sorted_flows(model)
        .into_iter()
        .filter(|(_, f)| f.origin == flow_origin::FORWARDED)
        .collect();
    let mut sample = match rng.below(100) {
        0..=9 if !forwarded.is_empty() => {
            let (key, _) = forwarded[rng.below(forwarded.len())];
            server_reply(rng, &key)
        }
        0..=69 => lan_flow_packet(rng),
        70..=79 => lan_not_forwarded(rng),
        _ => {
            let (host, remote) = (rng.pick(&LAN_HOSTS), rng.pick(&REMOTES));
            odd_frame(rng, host, remote)
        }
    };
    if rng.chance(25) {
        mutate(rng, &mut sample);
    }
    sample
}

/// Port forwards of every batch: a web server on fiber (tcp 80 to .11:8080, the resolved
/// host) and a game server on both uplinks (tcp and udp 5000 to .12, whose MAC the FIB does
/// not know).
const FORWARDS: [(ReverseKey, ForwardTarget); 5] = {
    const fn forward(
        uplink: u8,
        proto: u8,
        port: u16,
        host: u8,
        to: u16,
    ) -> (ReverseKey, ForwardTarget) {
        (
            ReverseKey {
                ext_port: port.to_be_bytes(),
                proto,
                uplink,
            },
            ForwardTarget {
                lan_addr: [10, 10, 0, host],
                lan_port: to.to_be_bytes(),
                _pad: [0; 2],
            },
        )
    }
    #[expect(clippy::cast_possible_truncation, reason = "slots 0 and 1")]
    let (fiber, lte) = (FIBER as u8, LTE as u8);
    [
        forward(fiber, ip_proto::TCP, 80, 11, 8080),
        forward(fiber, ip_proto::TCP, 5000, 12, 5000),
        forward(fiber, ip_proto::UDP, 5000, 12, 5000),
        forward(lte, ip_proto::TCP, 5000, 12, 5000),
        forward(lte, ip_proto::UDP, 5000, 12, 5000),
    ]
};

/// A LAN server's packet on a forwarded connection, to the remote that opened it.
fn server_reply(rng: &mut Rng, key: &FlowKey) -> Sample {
    let server = sock(key.lan_addr, u16::from_be_bytes(key.lan_port));
    let remote = sock(key.remote_addr, u16::from_be_bytes(key.remote_port));
    let (label, frame) = if key.proto == ip_proto::TCP {
        let flags = rng.pick(&TCP_FLAG_SETS);
        (
            format!("tcp {server} -> {remote} flags {flags:#04x}"),
            Frame::tcp(server, remote, flags).payload(&rng.bytes(12)),
        )
    } else {
        (
            format!("udp {server} -> {remote}"),
            Frame::udp(server, remote).payload(&rng.bytes(12)),
        )
    };
    Sample::new(format!("server reply {label}"), frame.build())
}

/// TCP, UDP or ICMP echo from a LAN host to a remote.
fn lan_flow_packet(rng: &mut Rng) -> Sample {
    let host = rng.pick(&LAN_HOSTS);
    let port = rng.pick(&LAN_PORTS);
    let remote = rng.pick(&REMOTES);
    let remote_port = rng.pick(&REMOTE_PORTS);
    let (label, frame) = transport_frame(rng, sock(host, port), sock(remote, remote_port));
    Sample::new(format!("lan {label}"), frame.build())
}

/// A TCP, UDP or ICMP echo request frame from `src` to `dst` (the echo identifier is the
/// source port or a common identifier).
fn transport_frame(rng: &mut Rng, src: SocketAddrV4, dst: SocketAddrV4) -> (String, Frame) {
    match rng.below(20) {
        0..=7 => {
            let flags = rng.pick(&TCP_FLAG_SETS);
            let options = rng.pick(&TCP_OPTIONS);
            let frame = Frame::tcp(src, dst, flags)
                .tcp_options(options)
                .payload(&rng.bytes(12));
            (
                format!("tcp {src} -> {dst} flags {flags:#04x} options {options:?}"),
                frame,
            )
        }
        8..=14 => {
            let mut frame = Frame::udp(src, dst).payload(&rng.bytes(24));
            let with_checksum = rng.chance(85);
            if !with_checksum {
                frame = frame.udp_without_checksum();
            }
            (
                format!("udp {src} -> {dst} checksum {with_checksum}"),
                frame,
            )
        }
        _ => {
            let id = if rng.chance(50) {
                rng.pick(&ICMP_IDS)
            } else {
                src.port()
            };
            let frame =
                Frame::icmp_echo(*src.ip(), *dst.ip(), id, rng.u16()).payload(&rng.bytes(8));
            (
                format!("icmp echo {} -> {} id {id}", src.ip(), dst.ip()),
                frame,
            )
        }
    }
}

/// LAN frames the data plane leaves to the kernel: to the router, another LAN host, an uplink
/// address or a special address; from outside the LAN; ICMP other than echo request.
fn lan_not_forwarded(rng: &mut Rng) -> Sample {
    let host = rng.pick(&LAN_HOSTS);
    match rng.below(3) {
        0 => {
            let dst = rng.pick(&[
                [224, 0, 0, 251],
                [239, 1, 2, 3],
                [255, 255, 255, 255],
                [127, 0, 0, 1],
                [0, 0, 0, 0],
                [10, 10, 0, 1],
                [10, 10, 0, 12],
                [10, 10, 0, 255],
                FIBER_ADDR,
                LTE_ADDR,
            ]);
            let frame = Frame::udp(sock(host, 5353), sock(dst, 5353)).build();
            Sample::new(format!("lan udp to {dst:?}"), frame)
        }
        1 => {
            let src = rng.pick(&[[172, 16, 0, 5], FIBER_ADDR, [10, 10, 1, 5], [0, 0, 0, 0]]);
            let frame = Frame::udp(sock(src, 40000), sock(REMOTES[0], 7)).build();
            Sample::new(format!("lan udp from {src:?}"), frame)
        }
        _ => {
            let (kind, code) = rng.pick(&[(0, 0), (3, 3), (11, 0), (13, 0), (5, 1)]);
            let mut frame = Frame::icmp_echo(host.into(), REMOTES[1].into(), 4242, 1).build();
            set_icmp_type(&mut frame, kind, code);
            Sample::new(format!("lan icmp type {kind} code {code}"), frame)
        }
    }
}

/// Frames that are not plain IPv4 TCP/UDP/ICMP: other protocols, ARP, IPv6, other Ethernet
/// types, VLAN tags, fragments, options, expiring TTLs, and garbage.
fn odd_frame(rng: &mut Rng, src: [u8; 4], dst: [u8; 4]) -> Sample {
    let udp = || Frame::udp(sock(src, 40000), sock(dst, 7)).payload(b"odd");
    match rng.below(10) {
        0 => {
            let proto = rng.pick(&[47, 50, 2, 58, 132]);
            let frame = Frame::ip_other(src.into(), dst.into(), proto)
                .payload(&rng.bytes(16))
                .build();
            Sample::new(format!("ip protocol {proto}"), frame)
        }
        1 => Sample::new("arp", Frame::arp_request(src.into(), dst.into()).build()),
        2 => Sample::new("ipv6", Frame::ipv6().build()),
        3 => Sample::new("lldp", Frame::raw(0x88cc, &rng.bytes(40)).build()),
        4 => Sample::new("vlan", udp().vlan(7).build()),
        5 => {
            let mut frame = udp().vlan(7).build();
            frame[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
            Sample::new("qinq", frame)
        }
        6 => {
            let value = rng.pick(&[0x2000, 0x0001, 0x6000, 0x3fff, 0x8000, 0x4000 | 0x0100]);
            Sample::new(
                format!("flags/fragment {value:#06x}"),
                udp().flags_fragment(value).build(),
            )
        }
        7 => Sample::new("ip options", udp().ip_options(&[0x94, 4, 0, 0]).build()),
        8 => {
            let ttl = rng.pick(&[0, 1, 2]);
            Sample::new(format!("ttl {ttl}"), udp().ttl(ttl).build())
        }
        _ => {
            let mut frame = Frame::raw(0x0800, &[]).build();
            frame.extend(rng.bytes(80));
            Sample::new("garbage", frame)
        }
    }
}

/// A frame from an ISP: replies to live flows, ICMP errors about them, strangers to live
/// mappings, unsolicited traffic, odd frames; optionally mutated.
fn uplink_sample(rng: &mut Rng, model: &Model) -> Sample {
    let flows = sorted_flows(model);
    let here = ingress_addr(model);
    let live = |rng: &mut Rng| flows[rng.below(flows.len())];
    let mut sample = match rng.below(100) {
        0..=44 if !flows.is_empty() => {
            let (key, flow) = live(rng);
            let dst = if rng.chance(80) {
                here
            } else {
                model.uplinks[flow.uplink as usize].addr
            };
            reply_to_flow(rng, &key, &flow, dst)
        }
        45..=64 if !flows.is_empty() => {
            let (key, flow) = live(rng);
            let some_bytes = Quote::Bytes(rng.below(60));
            let quote = rng.pick(&[
                Quote::Full,
                Quote::Full,
                Quote::Bytes(28),
                some_bytes,
                Quote::OtherRemote,
                Quote::Options,
                Quote::OtherProtocol,
                Quote::EchoReply,
            ]);
            icmp_error_about_flow(rng, &key, &flow, here, quote)
        }
        65..=74 if !flows.is_empty() => {
            let (key, flow) = live(rng);
            stranger(rng, &key, &flow, here)
        }
        0..=84 => unsolicited(rng, here),
        _ => {
            let remote = rng.pick(&REMOTES);
            odd_frame(rng, remote, here)
        }
    };
    if rng.chance(25) {
        mutate(rng, &mut sample);
    }
    sample
}

/// The model's flows in a fixed order, so the same seed picks the same flows.
fn sorted_flows(model: &Model) -> Vec<(FlowKey, Flow)> {
    let mut flows: Vec<(FlowKey, Flow)> = model.flows.iter().map(|(k, v)| (*k, *v)).collect();
    flows.sort_by_key(|(k, _)| {
        (
            k.proto,
            k.lan_addr,
            k.lan_port,
            k.remote_addr,
            k.remote_port,
        )
    });
    flows
}

/// The address of the uplink frames arrive on (the one on loopback), or the fiber's when
/// none is.
fn ingress_addr(model: &Model) -> [u8; 4] {
    model
        .uplinks
        .iter()
        .find(|u| u.ifindex == LOOPBACK_IFINDEX)
        .map_or(FIBER_ADDR, |u| u.addr)
}

/// The remote's answer to a flow, to `dst` (usually the ingress uplink's address).
fn reply_to_flow(rng: &mut Rng, key: &FlowKey, flow: &Flow, dst: [u8; 4]) -> Sample {
    let remote = sock(key.remote_addr, u16::from_be_bytes(key.remote_port));
    let ours = sock(dst, u16::from_be_bytes(flow.ext_port));
    let (label, frame) = match key.proto {
        ip_proto::TCP => {
            let flags = rng.pick(&TCP_FLAG_SETS);
            let options = rng.pick(&TCP_OPTIONS);
            let frame = Frame::tcp(remote, ours, flags)
                .tcp_options(options)
                .payload(&rng.bytes(12));
            (
                format!("tcp {remote} -> {ours} flags {flags:#04x} options {options:?}"),
                frame,
            )
        }
        ip_proto::UDP => {
            let frame = Frame::udp(remote, ours).payload(&rng.bytes(24));
            (format!("udp {remote} -> {ours}"), frame)
        }
        _ => {
            let frame = Frame::icmp_echo(*remote.ip(), *ours.ip(), ours.port(), rng.u16());
            (format!("icmp echo reply {} -> {ours}", remote.ip()), frame)
        }
    };
    let mut frame = frame.macs(FIBER_GW_MAC, FIBER_MAC).build();
    if key.proto == ip_proto::ICMP {
        set_icmp_type(&mut frame, 0, 0);
    }
    Sample::new(format!("reply {label}"), frame)
}

/// What an ICMP error quotes of the packet that left through the uplink.
#[derive(Clone, Copy)]
enum Quote {
    /// The whole packet.
    Full,
    /// Its first bytes (at least its IPv4 header).
    Bytes(usize),
    /// A packet to a remote the flow does not talk to.
    OtherRemote,
    /// The packet with IPv4 options.
    Options,
    /// A GRE packet.
    OtherProtocol,
    /// An echo reply instead of the request.
    EchoReply,
}

/// An ICMP error (or, sometimes, another ICMP type) from a router on the path or the remote,
/// quoting the flow's packet as it left through `wan_addr`.
fn icmp_error_about_flow(
    rng: &mut Rng,
    key: &FlowKey,
    flow: &Flow,
    wan_addr: [u8; 4],
    quote: Quote,
) -> Sample {
    let ours = sock(wan_addr, u16::from_be_bytes(flow.ext_port));
    let remote_addr = match quote {
        Quote::OtherRemote => REMOTES
            .into_iter()
            .find(|r| *r != key.remote_addr)
            .expect("several remotes"),
        _ => key.remote_addr,
    };
    let remote = sock(remote_addr, u16::from_be_bytes(key.remote_port));
    let left = match (quote, key.proto) {
        (Quote::OtherProtocol, _) => Frame::ip_other(*ours.ip(), *remote.ip(), 47),
        (_, ip_proto::TCP) => Frame::tcp(ours, remote, rng.pick(&TCP_FLAG_SETS)),
        (_, ip_proto::UDP) => Frame::udp(ours, remote),
        _ => Frame::icmp_echo(*ours.ip(), *remote.ip(), ours.port(), rng.u16()),
    }
    .payload(&rng.bytes(24))
    .ttl(rng.pick(&[1, 63]));
    let left = match quote {
        Quote::Options => left.ip_options(&[1, 1, 1, 1]),
        _ => left,
    };
    let mut left = left.build();
    if matches!(quote, Quote::EchoReply) && key.proto == ip_proto::ICMP {
        set_icmp_type(&mut left, 0, 0);
    }
    let packet = &left[14..];
    let quoted = match quote {
        Quote::Bytes(n) => &packet[..n.clamp(20, packet.len())],
        _ => packet,
    };
    let (kind, code) = if rng.chance(90) {
        rng.pick(&ICMP_ERRORS)
    } else {
        rng.pick(&NOT_ICMP_ERRORS)
    };
    let from = if rng.chance(70) {
        ROUTER_ON_THE_PATH
    } else {
        key.remote_addr
    };
    let frame = icmp_message(
        from,
        wan_addr,
        (kind, code),
        &rng.next().to_le_bytes()[..4],
        quoted,
    );
    Sample::new(
        format!(
            "icmp {kind}/{code} quoting {} bytes of proto {} {ours} -> {remote}",
            quoted.len(),
            key.proto
        ),
        frame,
    )
}

/// A frame to a live mapping from a remote (or a port) the LAN host never talked to.
fn stranger(rng: &mut Rng, key: &FlowKey, flow: &Flow, dst: [u8; 4]) -> Sample {
    let mut key = *key;
    if rng.chance(50) {
        key.remote_addr = rng.pick(&[[198, 51, 100, 9], [203, 0, 113, 11]]);
    } else if key.proto != ip_proto::ICMP {
        key.remote_port = rng.pick(&[8080u16, 5000]).to_be_bytes();
    }
    let mut sample = reply_to_flow(rng, &key, flow, dst);
    sample.label = format!("stranger {}", sample.label);
    sample
}

/// Traffic to the router's uplink address that no LAN host asked for, or to another address.
fn unsolicited(rng: &mut Rng, here: [u8; 4]) -> Sample {
    let remote = rng.pick(&REMOTES);
    let dst = if rng.chance(85) {
        here
    } else {
        rng.pick(&[[192, 0, 2, 99], FIBER_ADDR, LTE_ADDR, [10, 10, 0, 11]])
    };
    let src = sock(remote, rng.pick(&REMOTE_PORTS));
    // 80 and 5000 are forwarded (see `FORWARDS`).
    let dst = sock(
        dst,
        rng.pick(&[22, 33333, 40000, 50001, 1024, 80, 5000, 5000]),
    );
    let (label, frame) = transport_frame(rng, src, dst);
    let mut frame = frame.macs(FIBER_GW_MAC, FIBER_MAC).build();
    if frame[23] == ip_proto::ICMP {
        // An echo reply, or (to the router) an echo request.
        let kind = rng.pick(&[0, 8]);
        set_icmp_type(&mut frame, kind, 0);
    }
    Sample::new(format!("unsolicited {label}"), frame)
}

/// An ICMP message from `src` to `dst` with the 4 bytes after the checksum and the body.
fn icmp_message(
    src: [u8; 4],
    dst: [u8; 4],
    (kind, code): (u8, u8),
    rest: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let id = u16::from_be_bytes([rest[0], rest[1]]);
    let seq = u16::from_be_bytes([rest[2], rest[3]]);
    let mut frame = Frame::icmp_echo(src.into(), dst.into(), id, seq)
        .payload(body)
        .macs(FIBER_GW_MAC, FIBER_MAC)
        .build();
    set_icmp_type(&mut frame, kind, code);
    frame
}

/// Recomputes the IPv4 header checksum of an untagged IPv4 frame, when the header is there.
fn fix_ip_checksum(frame: &mut [u8]) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let header_len = usize::from(frame[14] & 0x0f) * 4;
    if header_len < 20 || 14 + header_len > frame.len() {
        return;
    }
    frame[24..26].fill(0);
    let sum = internet_checksum(&frame[14..14 + header_len]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// Damages a frame one way or another, and says how in its label.
fn mutate(rng: &mut Rng, sample: &mut Sample) {
    let frame = &mut sample.frame;
    let how = match rng.below(11) {
        0 => {
            let len = rng.pick(&CUTS).min(frame.len());
            frame.truncate(len);
            format!("truncated to {len}")
        }
        1 if frame.len() > 34 => {
            let len = 34 + rng.below(frame.len() - 34);
            let cut = rng.pick(&[Cut::Packet, Cut::PacketKeepTrailer]);
            cut.apply(frame, len);
            format!("{cut:?} cut at {len}")
        }
        5 if frame.len() > 14 => {
            let value = rng.pick(&[0x44, 0x46, 0x4f, 0x40, 0x65, 0x55, 0x35]);
            frame[14] = value;
            fix_ip_checksum(frame);
            format!("version/IHL {value:#04x}")
        }
        6 if frame.len() >= 34 => {
            let frame_total = frame.len() - 14;
            let total = rng.pick(&[0, 19, 20, 27, 28, frame_total - 1, frame_total + 1, 0xffff]);
            let total = u16::try_from(total).unwrap_or(u16::MAX);
            frame[16..18].copy_from_slice(&total.to_be_bytes());
            fix_ip_checksum(frame);
            format!("total length {total}")
        }
        7 if frame.len() >= 34 => {
            let value: u16 = rng.pick(&[0x2000, 0x0001, 0x4001, 0x3fff, 0x6000, 0x8000]);
            frame[20..22].copy_from_slice(&value.to_be_bytes());
            fix_ip_checksum(frame);
            format!("flags/fragment {value:#06x}")
        }
        8 if frame.len() >= 34 => {
            frame[22] = rng.pick(&[0, 1, 2, 255]);
            fix_ip_checksum(frame);
            format!("ttl {}", frame[22])
        }
        9 => {
            let trailer = rng.bytes(48);
            frame.extend_from_slice(&trailer);
            format!("{} trailer bytes", trailer.len())
        }
        10 if frame.len() >= 14 => {
            let kind: u16 = rng.pick(&[0x8100, 0x88a8, 0x86dd, 0x0806, 0x88cc, 0x0800]);
            if kind == 0x8100 {
                frame.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
            } else {
                frame[12..14].copy_from_slice(&kind.to_be_bytes());
            }
            format!("ether type {kind:#06x}")
        }
        _ => flip_bytes(rng, frame),
    };
    sample.label = format!("{}, {how}", sample.label);
}

/// Flips bits in one to three bytes of the headers (sometimes re-checksumming the IPv4
/// header, so the damage is not only a bad checksum).
fn flip_bytes(rng: &mut Rng, frame: &mut [u8]) -> String {
    if frame.is_empty() {
        return "nothing to flip".into();
    }
    let mut flipped = Vec::new();
    for _ in 0..=rng.below(3) {
        let at = rng.below(frame.len().min(90));
        let mask = rng.byte() | 1;
        frame[at] ^= mask;
        flipped.push((at, mask));
    }
    let fixed = rng.chance(50);
    if fixed {
        fix_ip_checksum(frame);
    }
    format!("flipped (offset, mask) {flipped:?}, IPv4 checksum fixed {fixed}")
}
