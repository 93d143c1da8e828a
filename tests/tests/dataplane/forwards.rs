//! Port forwards: a new inbound connection to an uplink's forwarded port is translated to the
//! LAN host and bound to that uplink; its replies leave through the same uplink whatever the
//! active one is (reply affinity); ICMP errors about it are translated; a forward on a down
//! uplink answers nothing; a reply whose uplink failed is reset (TCP) or dropped; a LAN
//! host's connection to an uplink's forwarded port is left to the kernel's hairpin NAT.

use std::net::SocketAddrV4;

use aya::Ebpf;
use failover_common::{
    classify::ip_proto,
    names,
    nat::{ForwardTarget, ReverseKey, flow_origin, tcp_state},
    verdict::Reason,
};
use failover_tests::{
    frame::{Frame, ROUTER_MAC, tcp_flags},
    privilege::skip_unless_root,
};
use failover_user::dataplane;

use crate::{
    harness::{Fixture, MapCheck, MapSetup, Output, no_check, run_once, run_table, verdict},
    nat::{
        FIBER, FIBER_ADDR, FIBER_GW_MAC, FIBER_MAC, HOST_MAC, LTE, LTE_ADDR, LTE_GW_MAC, LTE_MAC,
        LTE_MSS, Net, arriving, icmp_error, in_scratch, leaving, reason_counted, sock, with_addr,
    },
};

/// The LAN's web server, and the remote client that reaches it from the internet.
const SERVER: &str = "10.10.0.11:8080";
const CLIENT: &str = "198.51.100.9:5555";
/// The forwarded port on the uplinks' addresses.
const PUBLIC_PORT: u16 = 80;
const GAME_PORT: u16 = 7000;

/// tcp 80 to the web server on both uplinks; udp 7000 to the same host on lte only.
fn forwards() -> Vec<(ReverseKey, ForwardTarget)> {
    let forward = |uplink: u32, proto, port: u16, to: SocketAddrV4| {
        (
            ReverseKey {
                ext_port: port.to_be_bytes(),
                proto,
                uplink: u8::try_from(uplink).unwrap(),
            },
            ForwardTarget {
                lan_addr: to.ip().octets(),
                lan_port: to.port().to_be_bytes(),
                _pad: [0; 2],
            },
        )
    };
    vec![
        forward(FIBER, ip_proto::TCP, PUBLIC_PORT, sock(SERVER)),
        forward(LTE, ip_proto::TCP, PUBLIC_PORT, sock(SERVER)),
        forward(LTE, ip_proto::UDP, GAME_PORT, sock("10.10.0.11:7000")),
    ]
}

/// The maps of `net` with the forwards, then `inbound` frames run through the uplink program
/// (to open forwarded connections), then `net` changed by `then`.
fn setup(net: Net, inbound: Vec<Vec<u8>>, then: Option<Net>) -> MapSetup {
    Box::new(move |ebpf: &mut Ebpf| {
        net.apply(ebpf);
        dataplane::set_forwards(ebpf, &forwards()).expect("set forwards");
        for frame in &inbound {
            let (v, _) = run_once(ebpf, names::PROG_UPLINK_INGRESS, frame);
            assert_eq!(v, verdict::REDIRECT, "the priming frame was not forwarded");
        }
        if let Some(then) = then {
            then.apply(ebpf);
        }
    })
}

/// The client's segment to `uplink_addr`'s public port, as it arrives from `gateway`.
fn to_public(uplink_addr: [u8; 4], flags: u8, macs: ([u8; 6], [u8; 6])) -> Frame {
    Frame::tcp(sock(CLIENT), with_addr(uplink_addr, PUBLIC_PORT), flags).macs(macs.0, macs.1)
}

fn on_fiber(flags: u8) -> Frame {
    to_public(FIBER_ADDR, flags, (FIBER_GW_MAC, FIBER_MAC))
}

/// The client's segment as the server must receive it.
fn at_server(flags: u8) -> Frame {
    arriving(Frame::tcp(sock(CLIENT), sock(SERVER), flags))
}

/// The server's reply as it leaves the LAN host.
fn from_server(flags: u8) -> Frame {
    Frame::tcp(sock(SERVER), sock(CLIENT), flags)
}

/// The one tracked flow is the forward's, on `uplink`, in `state`.
fn forwarded_flow(uplink: u32, state: u8) -> MapCheck {
    Box::new(move |ebpf, _| {
        let flows = dataplane::flows(ebpf).expect("flows");
        assert_eq!(flows.len(), 1, "{flows:?}");
        let (key, flow) = flows[0];
        assert_eq!(
            (key.lan_addr, u16::from_be_bytes(key.lan_port)),
            (sock(SERVER).ip().octets(), sock(SERVER).port())
        );
        assert_eq!(key.remote_addr, sock(CLIENT).ip().octets());
        assert_eq!(flow.origin, flow_origin::FORWARDED);
        assert_eq!(flow.uplink, uplink);
        assert_eq!(u16::from_be_bytes(flow.ext_port), PUBLIC_PORT);
        assert_eq!(flow.state, state);
        let counts = dataplane::reason_counts(ebpf).expect("reasons");
        assert_eq!(counts[Reason::ForwardOpened as usize], 1, "{counts:?}");
    })
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a fixture table reads best as one list"
)]
fn forwarded_connections_keep_the_uplink_they_arrived_on() {
    if skip_unless_root("forwarded_connections_keep_the_uplink_they_arrived_on") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        // lte carries the LAN's new flows; the client reaches the server through fiber.
        let lte_active = Net { active: LTE, ..net };
        let opened = vec![on_fiber(tcp_flags::SYN).build()];
        let fixtures = vec![
            Fixture {
                name: "forward_syn_opens_a_flow_to_the_lan_host",
                program: names::PROG_UPLINK_INGRESS,
                frame: on_fiber(tcp_flags::SYN).build(),
                setup: setup(lte_active, vec![], None),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(at_server(tcp_flags::SYN).build()),
                check: forwarded_flow(FIBER, tcp_state::OPENING),
            },
            Fixture {
                name: "forward_syn_on_lte_is_clamped_to_its_mss",
                program: names::PROG_UPLINK_INGRESS,
                frame: to_public(LTE_ADDR, tcp_flags::SYN, (LTE_GW_MAC, LTE_MAC))
                    .tcp_options(&[2, 4, 0x05, 0xb4])
                    .build(),
                setup: setup(
                    Net {
                        ingress: LTE,
                        ..lte_active
                    },
                    vec![],
                    None,
                ),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    at_server(tcp_flags::SYN)
                        .tcp_options(&[2, 4, LTE_MSS.to_be_bytes()[0], LTE_MSS.to_be_bytes()[1]])
                        .build(),
                ),
                check: forwarded_flow(LTE, tcp_state::OPENING),
            },
            Fixture {
                name: "reply_leaves_through_the_uplink_the_connection_came_in_on",
                program: names::PROG_LAN_INGRESS,
                frame: from_server(tcp_flags::SYN | tcp_flags::ACK).build(),
                setup: setup(lte_active, opened.clone(), None),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::tcp(
                            with_addr(FIBER_ADDR, PUBLIC_PORT),
                            sock(CLIENT),
                            tcp_flags::SYN | tcp_flags::ACK,
                        ),
                        FIBER,
                    )
                    .build(),
                ),
                // The client's ACK of the handshake establishes it.
                check: forwarded_flow(FIBER, tcp_state::OPENING),
            },
            Fixture {
                name: "later_segments_of_a_forwarded_connection_translate_in",
                program: names::PROG_UPLINK_INGRESS,
                frame: on_fiber(tcp_flags::ACK).payload(b"GET / HTTP/1.1").build(),
                setup: setup(lte_active, opened.clone(), None),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(at_server(tcp_flags::ACK).payload(b"GET / HTTP/1.1").build()),
                check: reason_counted(Reason::TranslatedIn),
            },
            Fixture {
                name: "a_port_without_a_forward_goes_to_the_kernel",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::tcp(
                    sock(CLIENT),
                    with_addr(FIBER_ADDR, PUBLIC_PORT + 1),
                    tcp_flags::SYN,
                )
                .macs(FIBER_GW_MAC, FIBER_MAC)
                .build(),
                setup: setup(lte_active, vec![], None),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NoMapping),
            },
            Fixture {
                // Hairpin: the kernel's hairpin table reflects it to the server.
                name: "a_lan_host_to_an_uplinks_forwarded_port_goes_to_the_kernel",
                program: names::PROG_LAN_INGRESS,
                frame: Frame::tcp(
                    sock("10.10.0.12:40000"),
                    with_addr(FIBER_ADDR, PUBLIC_PORT),
                    tcp_flags::SYN,
                )
                .build(),
                setup: setup(net, vec![], None),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NotForwarded),
            },
            Fixture {
                name: "a_forward_of_another_uplink_goes_to_the_kernel",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::udp(sock(CLIENT), with_addr(FIBER_ADDR, GAME_PORT))
                    .payload(b"hello")
                    .macs(FIBER_GW_MAC, FIBER_MAC)
                    .build(),
                setup: setup(net, vec![], None),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NoMapping),
            },
            Fixture {
                name: "a_stray_segment_opens_nothing",
                program: names::PROG_UPLINK_INGRESS,
                frame: on_fiber(tcp_flags::ACK).build(),
                setup: setup(net, vec![], None),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: Box::new(|ebpf, _| {
                    assert!(dataplane::flows(ebpf).unwrap().is_empty());
                    let counts = dataplane::reason_counts(ebpf).unwrap();
                    assert_eq!(counts[Reason::NoFlow as usize], 1, "{counts:?}");
                }),
            },
            Fixture {
                name: "a_forward_on_a_down_uplink_answers_nothing",
                program: names::PROG_UPLINK_INGRESS,
                frame: on_fiber(tcp_flags::SYN).build(),
                setup: setup(
                    Net {
                        fiber_usable: false,
                        ..lte_active
                    },
                    vec![],
                    None,
                ),
                verdict: verdict::DROP,
                output: Output::Unchanged,
                check: Box::new(|ebpf, _| {
                    assert!(dataplane::flows(ebpf).unwrap().is_empty());
                    let counts = dataplane::reason_counts(ebpf).unwrap();
                    assert_eq!(counts[Reason::ForwardDown as usize], 1, "{counts:?}");
                }),
            },
            Fixture {
                name: "udp_forward_opens_and_translates",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::udp(sock(CLIENT), with_addr(LTE_ADDR, GAME_PORT))
                    .payload(b"hello")
                    .macs(LTE_GW_MAC, LTE_MAC)
                    .build(),
                setup: setup(
                    Net {
                        ingress: LTE,
                        ..net
                    },
                    vec![],
                    None,
                ),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    arriving(Frame::udp(sock(CLIENT), sock("10.10.0.11:7000")).payload(b"hello"))
                        .build(),
                ),
                check: reason_counted(Reason::ForwardOpened),
            },
            Fixture {
                name: "a_reply_whose_uplink_failed_is_reset",
                program: names::PROG_LAN_INGRESS,
                frame: from_server(tcp_flags::ACK | tcp_flags::PSH)
                    .tcp_numbers(5000, 7000, 512)
                    .payload(b"0123456789")
                    .build(),
                setup: setup(
                    lte_active,
                    opened.clone(),
                    Some(Net {
                        fiber_usable: false,
                        ..lte_active
                    }),
                ),
                verdict: verdict::TX,
                output: Output::Bytes(
                    Frame::tcp(sock(CLIENT), sock(SERVER), tcp_flags::RST)
                        .tcp_numbers(7000, 0, 0)
                        .ip_id(0)
                        .macs(ROUTER_MAC, HOST_MAC)
                        .build(),
                ),
                check: Box::new(|ebpf, _| {
                    assert!(dataplane::flows(ebpf).unwrap().is_empty(), "forgotten");
                }),
            },
        ];
        run_table(&fixtures);
    });
}

/// A UDP reply of a forwarded flow whose uplink failed never takes another uplink (the
/// remote knows the server by the failed one's address): dropped.
#[test]
fn a_forwarded_udp_reply_never_takes_another_uplink() {
    if skip_unless_root("a_forwarded_udp_reply_never_takes_another_uplink") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net {
            ingress: LTE,
            ..Net::new(scratch)
        };
        let hello = Frame::udp(sock(CLIENT), with_addr(LTE_ADDR, GAME_PORT))
            .payload(b"hello")
            .macs(LTE_GW_MAC, LTE_MAC)
            .build();
        let reply = Frame::udp(sock("10.10.0.11:7000"), sock(CLIENT))
            .payload(b"world")
            .build();
        run_table(&[
            Fixture {
                name: "udp_reply_leaves_through_lte_while_fiber_is_active",
                program: names::PROG_LAN_INGRESS,
                frame: reply.clone(),
                setup: setup(net, vec![hello.clone()], None),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::udp(with_addr(LTE_ADDR, GAME_PORT), sock(CLIENT)).payload(b"world"),
                        LTE,
                    )
                    .build(),
                ),
                check: no_check(),
            },
            Fixture {
                name: "udp_reply_of_a_failed_uplink_is_dropped",
                program: names::PROG_LAN_INGRESS,
                frame: reply,
                setup: setup(
                    net,
                    vec![hello],
                    Some(Net {
                        lte_usable: false,
                        ..net
                    }),
                ),
                verdict: verdict::DROP,
                output: Output::Unchanged,
                check: reason_counted(Reason::NoUplink),
            },
        ]);
    });
}

/// An ICMP error about a forwarded connection's reply (a router on the way to the client
/// could not deliver it) reaches the server with the embedded header translated back.
#[test]
fn icmp_errors_about_forwarded_connections_reach_the_server() {
    if skip_unless_root("icmp_errors_about_forwarded_connections_reach_the_server") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let gateway = std::net::Ipv4Addr::new(198, 18, 1, 1);
        let quote = |f: &[u8]| f[..14 + 20 + 20].to_vec();
        // The server's SYN-ACK as it left through fiber, and as the server sent it.
        let sent_out = leaving(
            Frame::tcp(
                with_addr(FIBER_ADDR, PUBLIC_PORT),
                sock(CLIENT),
                tcp_flags::SYN | tcp_flags::ACK,
            ),
            FIBER,
        )
        .build();
        let sent_in = from_server(tcp_flags::SYN | tcp_flags::ACK).ttl(63).build();
        let mut expected = icmp_error(
            gateway,
            sock(SERVER).ip().octets(),
            3,
            1,
            [0; 4],
            &quote(&sent_in),
        );
        // It travels on with TTL - 1 and the LAN's MACs.
        expected[14 + 8] -= 1;
        let check = u16::from_be_bytes([expected[24], expected[25]]);
        let updated = failover_common::checksum::replace_u16(
            check,
            u16::from_be_bytes([64, 1]),
            u16::from_be_bytes([63, 1]),
        );
        expected[24..26].copy_from_slice(&updated.to_be_bytes());
        expected[0..6].copy_from_slice(&HOST_MAC);
        expected[6..12].copy_from_slice(&ROUTER_MAC);
        run_table(&[Fixture {
            name: "host_unreachable_about_a_forwarded_reply",
            program: names::PROG_UPLINK_INGRESS,
            frame: icmp_error(gateway, FIBER_ADDR, 3, 1, [0; 4], &quote(&sent_out)),
            setup: setup(net, vec![on_fiber(tcp_flags::SYN).build()], None),
            verdict: verdict::REDIRECT,
            output: Output::Bytes(expected),
            check: reason_counted(Reason::IcmpErrorTranslated),
        }]);
    });
}
