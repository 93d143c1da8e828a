//! Classification and per-direction counting, and the MAC-swap reference program.

use std::net::{Ipv4Addr, SocketAddrV4};

use failover_common::{
    classify::{Direction, PacketClass},
    names,
};
use failover_tests::{
    frame::{Frame, IP_DF, IP_MF, tcp_flags},
    privilege::skip_unless_root,
};
use failover_user::dataplane::ClassStats;

use crate::harness::{Fixture, Output, no_check, no_setup, run_table, verdict};

const HOST: &str = "10.10.0.11:40000";
const SERVER: &str = "203.0.113.10:80";

fn sock(s: &str) -> SocketAddrV4 {
    s.parse().expect("socket address")
}

fn host_ip() -> Ipv4Addr {
    *sock(HOST).ip()
}

fn server_ip() -> Ipv4Addr {
    *sock(SERVER).ip()
}

/// Frames of every class, with the class the data plane must count them under.
/// (`BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header, so the shortest
/// input here is the bare 14-byte header.)
fn classified_frames() -> Vec<(&'static str, Vec<u8>, PacketClass)> {
    let udp = Frame::udp(sock(HOST), sock("203.0.113.10:7")).payload(b"echo me");
    let mut runt = udp.build();
    runt.truncate(14 + 10);
    let mut cut_tcp = Frame::tcp(sock(HOST), sock(SERVER), tcp_flags::SYN).build();
    cut_tcp.truncate(14 + 20 + 12);
    vec![
        (
            "tcp_syn",
            Frame::tcp(sock(HOST), sock(SERVER), tcp_flags::SYN).build(),
            PacketClass::Tcp,
        ),
        ("udp", udp.build(), PacketClass::Udp),
        (
            "udp_zero_checksum",
            udp.clone().udp_without_checksum().build(),
            PacketClass::Udp,
        ),
        (
            "icmp_echo",
            Frame::icmp_echo(host_ip(), server_ip(), 7, 1).build(),
            PacketClass::Icmp,
        ),
        (
            "tcp_in_vlan",
            Frame::tcp(sock(HOST), sock(SERVER), tcp_flags::ACK)
                .vlan(10)
                .build(),
            PacketClass::Tcp,
        ),
        (
            "gre",
            Frame::ip_other(host_ip(), server_ip(), 47).build(),
            PacketClass::OtherIpv4,
        ),
        (
            "first_fragment",
            udp.clone().flags_fragment(IP_MF).build(),
            PacketClass::Fragment,
        ),
        (
            "later_fragment",
            udp.clone().flags_fragment(IP_DF | 0x0040).build(),
            PacketClass::Fragment,
        ),
        (
            "ip_options",
            udp.clone().ip_options(&[0x94, 0x04, 0, 0]).build(),
            PacketClass::Ipv4Options,
        ),
        (
            "arp",
            Frame::arp_request(host_ip(), "10.10.0.1".parse().unwrap()).build(),
            PacketClass::Arp,
        ),
        ("ipv6", Frame::ipv6().build(), PacketClass::Ipv6),
        (
            "lldp",
            Frame::raw(0x88cc, &[0; 46]).build(),
            PacketClass::OtherL3,
        ),
        ("runt_ipv4", runt, PacketClass::Malformed),
        ("tcp_header_cut", cut_tcp, PacketClass::Malformed),
        (
            "total_len_beyond_frame",
            udp.clone().claimed_total_len(1400).build(),
            PacketClass::Malformed,
        ),
        (
            "ethernet_header_only",
            Frame::raw(0x0800, &[]).build(),
            PacketClass::Malformed,
        ),
    ]
}

/// Every frame goes to the kernel unchanged and bumps exactly its own counter by one.
#[test]
fn ingress_programs_classify_count_and_pass() {
    if skip_unless_root("ingress_programs_classify_count_and_pass") {
        return;
    }
    let mut fixtures = Vec::new();
    for (program, direction) in [
        (names::PROG_LAN_INGRESS, Direction::Lan),
        (names::PROG_UPLINK_INGRESS, Direction::Uplink),
    ] {
        for (name, frame, class) in classified_frames() {
            fixtures.push(Fixture {
                name,
                program,
                frame,
                setup: no_setup(),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: Box::new(move |ebpf, before| {
                    let after = ClassStats::read(ebpf).expect("read stats");
                    assert_eq!(
                        after.increase_since(&before.class_stats),
                        vec![(direction, class, 1)],
                        "counter increases"
                    );
                }),
            });
        }
    }
    run_table(&fixtures);
}

#[test]
fn mac_swap_sends_the_frame_back_with_macs_exchanged() {
    if skip_unless_root("mac_swap_sends_the_frame_back_with_macs_exchanged") {
        return;
    }
    let a = [0x02, 0, 0, 0, 0, 0xaa];
    let b = [0x02, 0, 0, 0, 0, 0xbb];
    let udp = Frame::udp(sock(HOST), sock("203.0.113.10:7")).payload(b"reflect");
    run_table(&[Fixture {
        name: "udp_reflected",
        program: names::PROG_MAC_SWAP,
        frame: udp.clone().macs(a, b).build(),
        setup: no_setup(),
        verdict: verdict::TX,
        output: Output::Bytes(udp.macs(b, a).build()),
        check: no_check(),
    }]);
}

/// Running the same frame many times counts every run: the counter is really per packet.
#[test]
fn counters_add_up_over_repeats() {
    if skip_unless_root("counters_add_up_over_repeats") {
        return;
    }
    let mut ebpf = crate::harness::fresh_dataplane();
    let frame = Frame::udp(sock(HOST), sock("203.0.113.10:7")).build();
    for _ in 0..5 {
        crate::harness::run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
    }
    let stats = ClassStats::read(&ebpf).expect("read stats");
    assert_eq!(stats.get(Direction::Lan, PacketClass::Udp), 5);
    assert_eq!(stats.get(Direction::Uplink, PacketClass::Udp), 0);
}
