//! Outbound steering with per-uplink NAT, and reverse NAT with ICMP errors: fixture tables
//! through `BPF_PROG_TEST_RUN`, in a scratch namespace where the FIB can resolve the LAN host.
//! Every translated frame is also checked against checksums recomputed from scratch.

use std::net::{Ipv4Addr, SocketAddrV4};

use aya::Ebpf;
use failover_common::{
    limits::HostLimits,
    names,
    nat::{Lan, NO_UPLINK, Policy, TOO_BIG_MARK, Uplink, path, tcp_state},
    verdict::Reason,
};
use failover_tests::{
    frame::{
        Frame, IP_DF, IP_MF, Mac, ROUTER_MAC, hex_dump, set_icmp_type, tcp_flags, verify_checksums,
    },
    netns,
    privilege::skip_unless_root,
};
use failover_user::dataplane;

use crate::{
    harness::{
        Fixture, MapCheck, MapSetup, Output, fresh_dataplane, no_check, run_once, run_table,
        run_tc_marked, tc_verdict, verdict,
    },
    scratch_netns::{NS, ScratchNetns},
};

pub const FIBER: u32 = 0;
pub const LTE: u32 = 1;
pub const FIBER_ADDR: [u8; 4] = [192, 0, 2, 2];
pub const LTE_ADDR: [u8; 4] = [100, 64, 0, 2];
pub const FIBER_MAC: Mac = [0x02, 0, 0, 0, 0xf1, 0x02];
pub const FIBER_GW_MAC: Mac = [0x02, 0, 0, 0, 0xf1, 0x01];
pub const LTE_MAC: Mac = [0x02, 0, 0, 0, 0xe1, 0x02];
pub const LTE_GW_MAC: Mac = [0x02, 0, 0, 0, 0xe1, 0x01];
/// MAC of the resolved LAN host in the scratch namespace.
pub const HOST_MAC: Mac = [0x02, 0, 0, 0, 0, 0x11];
pub const LTE_MSS: u16 = 1360;

pub const HOST: &str = "10.10.0.11:40000";
pub const HOST2: &str = "10.10.0.12:40000";
pub const ECHO_SERVER: &str = "203.0.113.10:7";
pub const WEB_SERVER: &str = "203.0.113.10:80";

pub fn sock(s: &str) -> SocketAddrV4 {
    s.parse().expect("socket address")
}

pub fn with_addr(addr: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(addr), port)
}

/// How the maps are set for a fixture.
#[derive(Clone, Copy)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one switch per dimension the tests vary"
)]
pub struct Net {
    pub lan_ifindex: u32,
    pub other_ifindex: u32,
    pub active: u32,
    pub fiber_usable: bool,
    pub lte_usable: bool,
    /// The uplink that `BPF_PROG_TEST_RUN` frames arrive on (its ifindex is loopback's).
    pub ingress: u32,
    pub fiber_ports: (u16, u16),
    pub fiber_gateway_known: bool,
    /// New flows spread 3:1 over fiber and lte (weighted balancing) instead of all taking
    /// `active`.
    pub balanced: bool,
    /// Per-host limits in force (flows, ports per uplink; 0: none), with a lease that never
    /// runs out; `None`: no limits (as a fresh data plane).
    pub host_limits: Option<(u32, u32)>,
    /// `path` flags of fiber and of the LAN (0: Ethernet, on the XDP path).
    pub fiber_path: u8,
    pub lan_path: u8,
}

impl Net {
    pub fn new(scratch: &ScratchNetns) -> Self {
        Net {
            lan_ifindex: scratch.lan_ifindex,
            other_ifindex: scratch.peer_ifindex,
            active: FIBER,
            fiber_usable: true,
            lte_usable: true,
            ingress: FIBER,
            fiber_ports: (1024, 65535),
            fiber_gateway_known: true,
            balanced: false,
            host_limits: None,
            fiber_path: 0,
            lan_path: 0,
        }
    }

    pub fn apply(&self, ebpf: &mut Ebpf) {
        const LOOPBACK: u32 = 1;
        dataplane::set_lan(
            ebpf,
            Lan {
                ifindex: self.lan_ifindex,
                net: [10, 10, 0, 0],
                prefix_len: 24,
                path: self.lan_path,
                _pad: [0; 2],
            },
        )
        .expect("set lan");
        let ifindex = |slot| {
            if self.ingress == slot {
                LOOPBACK
            } else {
                self.other_ifindex
            }
        };
        let fiber = Uplink {
            ifindex: ifindex(FIBER),
            addr: FIBER_ADDR,
            mac: FIBER_MAC,
            gateway_mac: if self.fiber_gateway_known {
                FIBER_GW_MAC
            } else {
                [0; 6]
            },
            port_min: self.fiber_ports.0,
            port_max: self.fiber_ports.1,
            mss: 0,
            usable: u8::from(self.fiber_usable),
            path: self.fiber_path,
        };
        let lte = Uplink {
            ifindex: ifindex(LTE),
            addr: LTE_ADDR,
            mac: LTE_MAC,
            gateway_mac: LTE_GW_MAC,
            port_min: 1024,
            port_max: 65535,
            mss: LTE_MSS,
            usable: u8::from(self.lte_usable),
            path: 0,
        };
        dataplane::set_uplink(ebpf, FIBER, fiber).expect("set fiber");
        dataplane::set_uplink(ebpf, LTE, lte).expect("set lte");
        let policy = if self.balanced {
            Policy::balanced(self.active, &[(FIBER, 3), (LTE, 1)])
        } else {
            Policy::single(self.active)
        };
        dataplane::set_policy(ebpf, policy).expect("set policy");
        let limits = self
            .host_limits
            .map_or_else(HostLimits::default, |(flows, ports)| HostLimits {
                flows,
                ports,
                until_ns: u64::MAX,
            });
        dataplane::set_host_limits(ebpf, limits).expect("set host limits");
    }

    pub fn setup(self) -> MapSetup {
        Box::new(move |ebpf| self.apply(ebpf))
    }

    /// Maps set, then `frames` sent from the LAN first (to open flows).
    pub fn setup_after(self, frames: Vec<Vec<u8>>) -> MapSetup {
        Box::new(move |ebpf| {
            self.apply(ebpf);
            for frame in &frames {
                let (v, _) = run_once(ebpf, names::PROG_LAN_INGRESS, frame);
                assert_eq!(
                    v,
                    verdict::REDIRECT,
                    "priming frame was not translated:\n{}",
                    hex_dump(frame)
                );
            }
        })
    }
}

fn udp_out(src: &str) -> Frame {
    Frame::udp(sock(src), sock(ECHO_SERVER)).payload(b"sequenced 0001")
}

/// The frame as it must leave through `uplink`: translated source, TTL - 1, uplink MACs.
pub fn leaving(frame: Frame, uplink: u32) -> Frame {
    let (mac, gw) = if uplink == FIBER {
        (FIBER_MAC, FIBER_GW_MAC)
    } else {
        (LTE_MAC, LTE_GW_MAC)
    };
    frame.ttl(63).macs(mac, gw)
}

pub fn reason_counted(reason: Reason) -> MapCheck {
    Box::new(move |ebpf, _| {
        let counts = dataplane::reason_counts(ebpf).expect("read reasons");
        assert_eq!(
            counts[reason as usize],
            1,
            "reason {} counted once: {counts:?}",
            reason.name()
        );
    })
}

/// The LTE uplink's MSS clamp as it appears in a TCP option.
const LTE_MSS_BYTES: [u8; 2] = LTE_MSS.to_be_bytes();

/// A SYN from the LAN with `options`, through LTE: it must leave translated with
/// `clamped_options`.
fn syn_on_lte(name: &'static str, net: Net, options: &[u8], clamped_options: &[u8]) -> Fixture {
    Fixture {
        name,
        program: names::PROG_LAN_INGRESS,
        frame: Frame::tcp(sock(HOST), sock(WEB_SERVER), tcp_flags::SYN)
            .tcp_options(options)
            .build(),
        setup: Net { active: LTE, ..net }.setup(),
        verdict: verdict::REDIRECT,
        output: Output::Bytes(
            leaving(
                Frame::tcp(with_addr(LTE_ADDR, 40000), sock(WEB_SERVER), tcp_flags::SYN)
                    .tcp_options(clamped_options),
                LTE,
            )
            .build(),
        ),
        check: no_check(),
    }
}

/// Runs `body` with a fresh scratch namespace, inside it. One at a time: the namespace has a
/// fixed name so that a run can remove what a crashed run left.
pub fn in_scratch(body: impl FnOnce(&ScratchNetns) + Send) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let scratch = ScratchNetns::create();
    netns::in_netns(NS, || body(&scratch)).expect("enter the scratch namespace");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a fixture table reads best as one list"
)]
fn outbound_translation() {
    if skip_unless_root("outbound_translation") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let syn = Frame::tcp(sock(HOST), sock(WEB_SERVER), tcp_flags::SYN)
            .tcp_options(&[2, 4, 0x05, 0xb4]);
        let mut fixtures = vec![
            Fixture {
                name: "snat_udp_to_fiber_keeps_port",
                program: names::PROG_LAN_INGRESS,
                frame: udp_out(HOST).build(),
                setup: net.setup(),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::udp(with_addr(FIBER_ADDR, 40000), sock(ECHO_SERVER))
                            .payload(b"sequenced 0001"),
                        FIBER,
                    )
                    .build(),
                ),
                check: reason_counted(Reason::TranslatedOut),
            },
            Fixture {
                name: "snat_udp_zero_checksum_stays_zero",
                program: names::PROG_LAN_INGRESS,
                frame: udp_out(HOST).udp_without_checksum().build(),
                setup: net.setup(),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::udp(with_addr(FIBER_ADDR, 40000), sock(ECHO_SERVER))
                            .payload(b"sequenced 0001"),
                        FIBER,
                    )
                    .udp_without_checksum()
                    .build(),
                ),
                check: no_check(),
            },
            Fixture {
                name: "snat_tcp_syn_to_fiber_no_clamp",
                program: names::PROG_LAN_INGRESS,
                frame: syn.clone().build(),
                setup: net.setup(),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::tcp(
                            with_addr(FIBER_ADDR, 40000),
                            sock(WEB_SERVER),
                            tcp_flags::SYN,
                        )
                        .tcp_options(&[2, 4, 0x05, 0xb4]),
                        FIBER,
                    )
                    .build(),
                ),
                check: no_check(),
            },
            // Through LTE (MSS clamp 1360); the MSS value's place in the options varies.
            syn_on_lte(
                "snat_tcp_syn_to_lte_clamps_mss",
                net,
                &[1, 1, 4, 2, 2, 4, 0x05, 0xb4],
                &[1, 1, 4, 2, 2, 4, LTE_MSS_BYTES[0], LTE_MSS_BYTES[1]],
            ),
            // Window scale first puts the MSS value at an odd offset, across two checksum words.
            syn_on_lte(
                "snat_tcp_syn_clamps_mss_at_odd_offset",
                net,
                &[3, 3, 7, 2, 4, 0x05, 0xb4, 0],
                &[3, 3, 7, 2, 4, LTE_MSS_BYTES[0], LTE_MSS_BYTES[1], 0],
            ),
            syn_on_lte(
                "snat_tcp_syn_small_mss_untouched",
                net,
                &[2, 4, 0x04, 0x00],
                &[2, 4, 0x04, 0x00],
            ),
            Fixture {
                name: "snat_icmp_echo_keeps_id",
                program: names::PROG_LAN_INGRESS,
                frame: Frame::icmp_echo(*sock(HOST).ip(), *sock(ECHO_SERVER).ip(), 4242, 1)
                    .payload(b"ping")
                    .build(),
                setup: net.setup(),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::icmp_echo(FIBER_ADDR.into(), *sock(ECHO_SERVER).ip(), 4242, 1)
                            .payload(b"ping"),
                        FIBER,
                    )
                    .build(),
                ),
                check: no_check(),
            },
            Fixture {
                name: "snat_udp_to_lte_when_fiber_down",
                program: names::PROG_LAN_INGRESS,
                frame: udp_out(HOST).build(),
                setup: Net {
                    active: LTE,
                    fiber_usable: false,
                    ..net
                }
                .setup(),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    leaving(
                        Frame::udp(with_addr(LTE_ADDR, 40000), sock(ECHO_SERVER))
                            .payload(b"sequenced 0001"),
                        LTE,
                    )
                    .build(),
                ),
                check: no_check(),
            },
            Fixture {
                name: "ttl_1_goes_to_kernel_for_time_exceeded",
                program: names::PROG_LAN_INGRESS,
                frame: udp_out(HOST).ttl(1).build(),
                setup: net.setup(),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::TtlExpiring),
            },
        ];
        // Everything the data plane must leave to the kernel, untouched, with its reason.
        let passed: Vec<(&'static str, Vec<u8>, Net, Reason)> = vec![
            (
                "to_router_uplink_address",
                Frame::udp(sock(HOST), with_addr(FIBER_ADDR, 53)).build(),
                net,
                Reason::NotForwarded,
            ),
            (
                "to_other_lan_host",
                Frame::udp(sock(HOST), sock("10.10.0.12:7")).build(),
                net,
                Reason::NotForwarded,
            ),
            (
                "to_router_lan_address",
                Frame::udp(sock(HOST), sock("10.10.0.1:53")).build(),
                net,
                Reason::NotForwarded,
            ),
            (
                "limited_broadcast",
                Frame::udp(sock("10.10.0.11:68"), sock("255.255.255.255:67")).build(),
                net,
                Reason::NotForwarded,
            ),
            (
                "multicast",
                Frame::udp(sock("10.10.0.11:5353"), sock("224.0.0.251:5353")).build(),
                net,
                Reason::NotForwarded,
            ),
            (
                "source_outside_lan",
                Frame::udp(sock("172.16.0.5:40000"), sock(ECHO_SERVER)).build(),
                net,
                Reason::NotForwarded,
            ),
            (
                "first_fragment",
                udp_out(HOST).flags_fragment(IP_MF).build(),
                net,
                Reason::Fragment,
            ),
            (
                "later_fragment",
                udp_out(HOST).flags_fragment(0x0020).build(),
                net,
                Reason::Fragment,
            ),
            (
                "ip_options",
                udp_out(HOST).ip_options(&[0x94, 4, 0, 0]).build(),
                net,
                Reason::IpOptions,
            ),
            (
                "vlan_tagged",
                udp_out(HOST).vlan(7).build(),
                net,
                Reason::Vlan,
            ),
            (
                "gre",
                Frame::ip_other(*sock(HOST).ip(), *sock(ECHO_SERVER).ip(), 47).build(),
                net,
                Reason::UnsupportedProtocol,
            ),
            (
                "ethernet_header_only",
                Frame::raw(0x0800, &[]).build(),
                net,
                Reason::Malformed,
            ),
            (
                "arp",
                Frame::arp_request(*sock(HOST).ip(), Ipv4Addr::new(10, 10, 0, 1)).build(),
                net,
                Reason::NotIpv4,
            ),
            (
                "total_length_beyond_frame",
                udp_out(HOST).claimed_total_len(1000).build(),
                net,
                Reason::Malformed,
            ),
            (
                "udp_header_cut",
                {
                    let mut f = udp_out(HOST).build();
                    f.truncate(14 + 20 + 4);
                    f
                },
                net,
                Reason::Malformed,
            ),
        ];
        // What should leave translated but cannot: dropped, since the kernel would route it
        // out untranslated.
        let dropped: Vec<(&'static str, Vec<u8>, Net, Reason)> = vec![
            (
                "no_usable_uplink",
                udp_out(HOST).build(),
                Net {
                    fiber_usable: false,
                    lte_usable: false,
                    ..net
                },
                Reason::NoUplink,
            ),
            (
                "no_active_uplink",
                udp_out(HOST).build(),
                Net {
                    active: NO_UPLINK,
                    ..net
                },
                Reason::NoUplink,
            ),
            (
                "gateway_mac_unknown",
                udp_out(HOST).build(),
                Net {
                    fiber_gateway_known: false,
                    ..net
                },
                Reason::NoGatewayMac,
            ),
        ];
        for (name, frame, net, reason) in dropped {
            fixtures.push(Fixture {
                name,
                program: names::PROG_LAN_INGRESS,
                frame,
                setup: net.setup(),
                verdict: verdict::DROP,
                output: Output::Unchanged,
                check: reason_counted(reason),
            });
        }
        for (name, frame, net, reason) in passed {
            fixtures.push(Fixture {
                name,
                program: names::PROG_LAN_INGRESS,
                frame,
                setup: net.setup(),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(reason),
            });
        }
        let unreachable = {
            // An ICMP error a LAN host sends: the data plane translates only echo requests.
            let mut f = Frame::icmp_echo(*sock(HOST).ip(), *sock(ECHO_SERVER).ip(), 1, 1).build();
            f[14 + 20] = 3;
            f
        };
        fixtures.push(Fixture {
            name: "icmp_unreachable_from_lan",
            program: names::PROG_LAN_INGRESS,
            frame: unreachable,
            setup: net.setup(),
            verdict: verdict::PASS,
            output: Output::Unchanged,
            check: reason_counted(Reason::UnsupportedProtocol),
        });
        run_table(&fixtures);
    });
}

/// All translated frames of the table above carry checksums that a full recomputation accepts.
#[test]
fn translated_frames_have_valid_checksums() {
    if skip_unless_root("translated_frames_have_valid_checksums") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let frames = [
            udp_out(HOST).build(),
            Frame::tcp(sock(HOST), sock(WEB_SERVER), tcp_flags::SYN)
                .tcp_options(&[2, 4, 0x05, 0xb4])
                .payload(b"x")
                .build(),
            Frame::icmp_echo(*sock(HOST).ip(), *sock(ECHO_SERVER).ip(), 9, 9)
                .payload(b"odd")
                .build(),
        ];
        for active in [FIBER, LTE] {
            for frame in &frames {
                let mut ebpf = fresh_dataplane();
                Net { active, ..net }.apply(&mut ebpf);
                let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, frame);
                assert_eq!(v, verdict::REDIRECT);
                verify_checksums(&out).unwrap_or_else(|e| panic!("{e}\n{}", hex_dump(&out)));
            }
        }
    });
}

/// A flow keeps its uplink while that uplink is usable, even when the policy changes; once
/// its uplink is marked down, its next packet is re-steered to the active uplink.
#[test]
fn flows_stay_pinned_until_their_uplink_is_down() {
    if skip_unless_root("flows_stay_pinned_until_their_uplink_is_down") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let mut ebpf = fresh_dataplane();
        net.apply(&mut ebpf);
        let frame = udp_out(HOST).build();
        let (_, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!(
            &out[26..30],
            &FIBER_ADDR,
            "first packet leaves through fiber"
        );
        Net { active: LTE, ..net }.apply(&mut ebpf);
        let (_, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!(
            &out[26..30],
            &FIBER_ADDR,
            "the flow stays on fiber after the policy moved"
        );
        let (_, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &udp_out(HOST2).build());
        assert_eq!(
            &out[26..30],
            &LTE_ADDR,
            "a new flow takes the active uplink"
        );
        Net {
            active: LTE,
            fiber_usable: false,
            ..net
        }
        .apply(&mut ebpf);
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!(v, verdict::REDIRECT);
        assert_eq!(&out[26..30], &LTE_ADDR, "the flow moves once fiber is down");
        assert_eq!(&out[0..6], &LTE_GW_MAC);
        let flows = dataplane::flows(&ebpf).expect("read flows");
        let host_flow = flows
            .iter()
            .find(|(k, _)| k.lan_addr == [10, 10, 0, 11])
            .expect("flow of host 1");
        assert_eq!(host_flow.1.uplink, LTE);
    });
}

/// Flows the XDP path cannot carry are handed, untouched, to the TC program behind the XDP
/// one, which translates them with the same tables: to an uplink that cannot take XDP frames;
/// to an uplink without an Ethernet header (its frame keeps the MACs it came with, which the
/// kernel drops on the redirect, and no gateway MAC is needed); and replies through a LAN
/// that cannot take XDP frames.
/// A LAN packet larger than its uplink's MTU (a tunnel's) and marked "don't fragment" goes
/// to the kernel untranslated, with the uplink's mark, so the kernel answers "fragmentation
/// needed"; one that may be fragmented, or that fits, leaves translated.
#[test]
fn too_big_for_its_uplink_goes_to_the_kernel_with_the_uplink_mark() {
    const MTU: usize = 1280;
    if skip_unless_root("too_big_for_its_uplink_goes_to_the_kernel_with_the_uplink_mark") {
        return;
    }
    in_scratch(|scratch| {
        // Fiber leaves through the scratch veth (frames arrive on lte), MTU lowered.
        failover_tests::lab::Cmd::ip(NS)
            .args(["link", "set", "dev", "lanpeer", "mtu", &MTU.to_string()])
            .run()
            .expect("lowering the MTU");
        let mut ebpf = fresh_dataplane();
        Net {
            fiber_path: path::L3,
            ingress: LTE,
            ..Net::new(scratch)
        }
        .apply(&mut ebpf);
        let sized = |len: usize, flags: u16| {
            Frame::udp(sock(HOST), sock(ECHO_SERVER))
                .flags_fragment(flags)
                .payload(&vec![0x5a; len - 28])
                .build()
        };
        let too_big = |ebpf: &Ebpf| {
            dataplane::reason_counts(ebpf).expect("read reasons")[Reason::TooBig as usize]
        };

        let frame = sized(MTU + 1, IP_DF);
        let (v, out, mark) = run_tc_marked(&mut ebpf, names::PROG_LAN_TC, &frame);
        assert_eq!(v, tc_verdict::OK, "to the kernel");
        assert_eq!(out, frame, "untranslated");
        assert_eq!(mark, TOO_BIG_MARK | FIBER, "with fiber's mark");
        assert_eq!(too_big(&ebpf), 1);

        for (frame, what) in [
            (sized(MTU, IP_DF), "a packet that fits"),
            (sized(MTU + 1, 0), "a packet that may be fragmented"),
        ] {
            let (v, out, mark) = run_tc_marked(&mut ebpf, names::PROG_LAN_TC, &frame);
            assert_eq!((v, mark), (tc_verdict::REDIRECT, 0), "{what} is sent");
            assert_eq!(&out[26..30], &FIBER_ADDR, "{what} is translated");
        }
        assert_eq!(too_big(&ebpf), 1);

        // On the XDP path (a jumbo-frame LAN, a 1500 uplink) the XDP program, which cannot
        // mark, hands the packet to TC instead of redirecting it into a drop.
        let mut ebpf = fresh_dataplane();
        Net {
            ingress: LTE,
            ..Net::new(scratch)
        }
        .apply(&mut ebpf);
        let frame = sized(MTU + 1, IP_DF);
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!((v, &out), (verdict::PASS, &frame), "XDP hands it over");
        let counts = dataplane::reason_counts(&ebpf).expect("read reasons");
        assert_eq!(counts[Reason::TcPath as usize], 1);
        let (v, _, mark) = run_tc_marked(&mut ebpf, names::PROG_LAN_TC, &frame);
        assert_eq!((v, mark), (tc_verdict::OK, TOO_BIG_MARK | FIBER));
        let (v, _) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &sized(MTU, IP_DF));
        assert_eq!(v, verdict::REDIRECT, "one that fits is redirected");
    });
}

#[test]
fn flows_the_xdp_path_cannot_carry_are_handed_to_tc() {
    if skip_unless_root("flows_the_xdp_path_cannot_carry_are_handed_to_tc") {
        return;
    }
    in_scratch(|scratch| {
        let base = Net::new(scratch);
        let mut ebpf = fresh_dataplane();
        Net {
            fiber_path: path::TC,
            ..base
        }
        .apply(&mut ebpf);
        let frame = udp_out(HOST).build();
        let tc_path = |ebpf: &Ebpf| {
            dataplane::reason_counts(ebpf).expect("read reasons")[Reason::TcPath as usize]
        };
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!(
            (v, &out),
            (verdict::PASS, &frame),
            "XDP hands it over untouched"
        );
        assert_eq!(tc_path(&ebpf), 1);
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_TC, &frame);
        assert_eq!(v, tc_verdict::REDIRECT, "TC sends it");
        assert_eq!(&out[26..30], &FIBER_ADDR, "translated for fiber");
        assert_eq!(
            &out[0..12],
            &[FIBER_GW_MAC, FIBER_MAC].concat(),
            "fiber's MACs"
        );
        verify_checksums(&out).expect("valid checksums");
        assert_eq!(dataplane::flows(&ebpf).expect("read flows").len(), 1);
        let host_port = u16::from_be_bytes([out[34], out[35]]);

        Net {
            fiber_path: path::L3,
            fiber_gateway_known: false,
            ..base
        }
        .apply(&mut ebpf);
        let frame = udp_out(HOST2).build();
        let (v, _) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!(v, verdict::PASS, "XDP cannot reach a headerless uplink");
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_TC, &frame);
        assert_eq!(v, tc_verdict::REDIRECT, "TC sends it without a gateway MAC");
        assert_eq!(&out[26..30], &FIBER_ADDR);
        assert_eq!(
            &out[0..12],
            &frame[0..12],
            "MACs left for the kernel to drop"
        );
        verify_checksums(&out).expect("valid checksums");

        Net {
            lan_path: path::TC,
            ..base
        }
        .apply(&mut ebpf);
        // To the first host: the scratch namespace resolves its MAC.
        let reply = reply_to(FIBER_ADDR, host_port).build();
        let handed = tc_path(&ebpf);
        let (v, out) = run_once(&mut ebpf, names::PROG_UPLINK_INGRESS, &reply);
        assert_eq!(
            (v, &out),
            (verdict::PASS, &reply),
            "XDP hands the reply over"
        );
        assert_eq!(tc_path(&ebpf), handed + 1);
        let (v, out) = run_once(&mut ebpf, names::PROG_UPLINK_TC, &reply);
        assert_eq!(v, tc_verdict::REDIRECT, "TC sends the reply to the LAN");
        assert_eq!(&out[30..34], &[10, 10, 0, 11], "to the LAN host");
        assert_eq!(
            &out[0..12],
            &[HOST_MAC, ROUTER_MAC].concat(),
            "LAN MACs from the FIB"
        );
        verify_checksums(&out).expect("valid checksums");
    });
}

/// The TC program answers a segment of a flow leaving its uplink with the same reset, sent
/// back out of the LAN (`bpf_redirect`, `TC_ACT_REDIRECT`) after cutting the frame to it.
#[test]
fn the_tc_program_resets_a_leaving_flow_alike() {
    if skip_unless_root("the_tc_program_resets_a_leaving_flow_alike") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let mut ebpf = fresh_dataplane();
        resets_a_flow_leaving_fiber(&mut ebpf, net, names::PROG_LAN_TC, tc_verdict::REDIRECT);
    });
}

/// Opens a TCP flow on fiber through `program`, takes fiber out, and checks that the flow's
/// next segment is answered with the RST the host accepts (verdict `sent_back`) and the flow
/// forgotten. Returns the SYN that opened it.
fn resets_a_flow_leaving_fiber(
    ebpf: &mut Ebpf,
    net: Net,
    program: &'static str,
    sent_back: u32,
) -> Vec<u8> {
    net.apply(ebpf);
    let syn = Frame::tcp(sock(HOST), sock(WEB_SERVER), tcp_flags::SYN).build();
    let (_, out) = run_once(ebpf, program, &syn);
    assert_eq!(&out[26..30], &FIBER_ADDR, "the connection opens on fiber");
    Net {
        active: LTE,
        fiber_usable: false,
        ..net
    }
    .apply(ebpf);
    let data = Frame::tcp(
        sock(HOST),
        sock(WEB_SERVER),
        tcp_flags::ACK | tcp_flags::PSH,
    )
    .tcp_numbers(5000, 7000, 512)
    .payload(b"0123456789")
    .build();
    let (v, out) = run_once(ebpf, program, &data);
    let expected = Frame::tcp(sock(WEB_SERVER), sock(HOST), tcp_flags::RST)
        .tcp_numbers(7000, 0, 0)
        .ip_id(0)
        .macs(ROUTER_MAC, HOST_MAC)
        .build();
    assert_eq!(v, sent_back, "{}", hex_dump(&out));
    assert_eq!(
        out,
        expected,
        "\n{}\nexpected\n{}",
        hex_dump(&out),
        hex_dump(&expected)
    );
    verify_checksums(&out).expect("the reset's checksums");
    assert!(
        dataplane::flows(ebpf).unwrap().is_empty(),
        "the reset flow is forgotten"
    );
    syn
}

/// A TCP flow whose uplink fails cannot continue on another uplink: its next segment from the
/// LAN host is answered with a RST the host accepts (sequence number = the segment's ACK), and
/// the flow is forgotten; a SYN on the same ports opens a new flow on the active uplink. A flow
/// the controller marks `MOVED` is reset the same way, while its uplink stays usable.
#[test]
fn tcp_flows_leaving_their_uplink_are_reset() {
    if skip_unless_root("tcp_flows_leaving_their_uplink_are_reset") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let mut ebpf = fresh_dataplane();
        let syn = resets_a_flow_leaving_fiber(&mut ebpf, net, names::PROG_LAN_INGRESS, verdict::TX);
        let (_, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &syn);
        assert_eq!(
            &out[26..30],
            &LTE_ADDR,
            "a new SYN opens the flow again on lte"
        );
        Net {
            active: FIBER,
            ..net
        }
        .apply(&mut ebpf);
        let (key, mut flow) = dataplane::flows(&ebpf).unwrap()[0];
        flow.state = tcp_state::MOVED;
        dataplane::update_flow(&mut ebpf, &key, flow).expect("mark the flow moved");
        // Without ACK (a bare FIN with data), the reset acknowledges what the segment carried.
        let fin = Frame::tcp(sock(HOST), sock(WEB_SERVER), tcp_flags::FIN)
            .tcp_numbers(9000, 0, 512)
            .payload(b"abc")
            .build();
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &fin);
        let expected = Frame::tcp(
            sock(WEB_SERVER),
            sock(HOST),
            tcp_flags::RST | tcp_flags::ACK,
        )
        .tcp_numbers(0, 9004, 0)
        .ip_id(0)
        .macs(ROUTER_MAC, HOST_MAC)
        .build();
        assert_eq!(v, verdict::TX);
        assert_eq!(
            out,
            expected,
            "\n{}\nexpected\n{}",
            hex_dump(&out),
            hex_dump(&expected)
        );
        // UDP is not reset: its flow simply takes the active uplink.
        let udp = udp_out(HOST).build();
        let (_, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &udp);
        assert_eq!(&out[26..30], &FIBER_ADDR);
        Net {
            active: LTE,
            fiber_usable: false,
            ..net
        }
        .apply(&mut ebpf);
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &udp);
        assert_eq!(v, verdict::REDIRECT);
        assert_eq!(&out[26..30], &LTE_ADDR, "UDP is re-steered, not reset");
    });
}

/// With weighted balancing (3:1 over fiber and lte), new flows spread by their hash in that
/// proportion; a flow whose share is unusable takes the active uplink.
#[test]
fn new_flows_spread_by_weight() {
    if skip_unless_root("new_flows_spread_by_weight") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net {
            balanced: true,
            ..Net::new(scratch)
        };
        let mut ebpf = fresh_dataplane();
        net.apply(&mut ebpf);
        let mut on = [0usize; 2];
        for port in 0..400u16 {
            let frame = Frame::udp(
                sock(HOST),
                SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 1000 + port),
            )
            .build();
            let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
            assert_eq!(v, verdict::REDIRECT);
            on[usize::from(out[26..30] == LTE_ADDR)] += 1;
        }
        // 300 : 100 expected; the hash spreads well enough for a wide margin.
        assert!(
            (240..=360).contains(&on[0]),
            "fiber {} lte {}",
            on[0],
            on[1]
        );
        Net {
            lte_usable: false,
            ..net
        }
        .apply(&mut ebpf);
        let all_fiber = (0..40u16).all(|port| {
            let frame = Frame::udp(
                SocketAddrV4::new(Ipv4Addr::new(10, 10, 0, 12), 2000 + port),
                sock("198.51.100.8:53"),
            )
            .build();
            run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame).1[26..30] == FIBER_ADDR
        });
        assert!(
            all_fiber,
            "with lte unusable every new flow takes the active uplink"
        );
    });
}

/// Two LAN hosts with the same source port get distinct external ports; one host's port keeps
/// one external port whatever remote it talks to (endpoint-independent mapping).
#[test]
fn ports_are_collision_free_and_endpoint_independent() {
    if skip_unless_root("ports_are_collision_free_and_endpoint_independent") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let mut ebpf = fresh_dataplane();
        net.apply(&mut ebpf);
        let src_port = |out: &[u8]| u16::from_be_bytes([out[34], out[35]]);
        let (_, a) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &udp_out(HOST).build());
        let (_, b) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &udp_out(HOST2).build());
        let (_, a2) = run_once(
            &mut ebpf,
            names::PROG_LAN_INGRESS,
            &Frame::udp(sock(HOST), sock("198.51.100.7:9999")).build(),
        );
        assert_eq!(src_port(&a), 40000, "first host keeps its port");
        assert_ne!(src_port(&b), 40000, "second host gets another port");
        assert_eq!(
            src_port(&a2),
            40000,
            "same host port, other remote: same external port"
        );
        let bindings = dataplane::reverse_bindings(&ebpf).expect("read bindings");
        assert_eq!(bindings.len(), 2, "{bindings:?}");
        // TCP and UDP bindings are separate: the same port number for TCP is free.
        let (_, t) = run_once(
            &mut ebpf,
            names::PROG_LAN_INGRESS,
            &Frame::tcp(sock(HOST2), sock(WEB_SERVER), tcp_flags::SYN).build(),
        );
        assert_eq!(src_port(&t), 40000);
    });
}

/// With a one-port range, the second host finds no free port and is dropped, not handed to
/// the kernel (which would send it out untranslated).
#[test]
fn exhausted_port_range_drops() {
    if skip_unless_root("exhausted_port_range_drops") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net {
            fiber_ports: (50000, 50000),
            ..Net::new(scratch)
        };
        let mut ebpf = fresh_dataplane();
        net.apply(&mut ebpf);
        let (v, out) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &udp_out(HOST).build());
        assert_eq!(v, verdict::REDIRECT);
        assert_eq!(u16::from_be_bytes([out[34], out[35]]), 50000);
        let frame = udp_out(HOST2).build();
        let (v, _) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
        assert_eq!(v, verdict::DROP);
        let counts = dataplane::reason_counts(&ebpf).expect("reasons");
        assert_eq!(counts[Reason::PortsExhausted as usize], 1);
    });
}

fn reply_to(uplink_addr: [u8; 4], port: u16) -> Frame {
    Frame::udp(sock(ECHO_SERVER), with_addr(uplink_addr, port))
        .payload(b"sequenced 0001")
        .macs(FIBER_GW_MAC, FIBER_MAC)
}

/// The frame as it must reach the LAN host: translated destination, TTL - 1, LAN MACs.
pub fn arriving(frame: Frame) -> Frame {
    frame.ttl(63).macs(ROUTER_MAC, HOST_MAC)
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a fixture table reads best as one list"
)]
fn inbound_translation() {
    if skip_unless_root("inbound_translation") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let udp_flow = vec![udp_out(HOST).build()];
        let syn = Frame::tcp(sock(HOST), sock(WEB_SERVER), tcp_flags::SYN).build();
        let ping = Frame::icmp_echo(*sock(HOST).ip(), *sock(ECHO_SERVER).ip(), 4242, 1).build();
        let fixtures = vec![
            Fixture {
                name: "reverse_nat_udp_reply_to_lan_host",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(FIBER_ADDR, 40000).build(),
                setup: net.setup_after(udp_flow.clone()),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    arriving(Frame::udp(sock(ECHO_SERVER), sock(HOST)).payload(b"sequenced 0001"))
                        .build(),
                ),
                check: reason_counted(Reason::TranslatedIn),
            },
            Fixture {
                name: "reverse_nat_udp_reply_on_lte",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(LTE_ADDR, 40000).build(),
                setup: Net {
                    active: LTE,
                    ingress: LTE,
                    ..net
                }
                .setup_after(udp_flow.clone()),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    arriving(Frame::udp(sock(ECHO_SERVER), sock(HOST)).payload(b"sequenced 0001"))
                        .build(),
                ),
                check: no_check(),
            },
            Fixture {
                name: "reverse_nat_tcp_syn_ack",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::tcp(
                    sock(WEB_SERVER),
                    with_addr(FIBER_ADDR, 40000),
                    tcp_flags::SYN | tcp_flags::ACK,
                )
                .macs(FIBER_GW_MAC, FIBER_MAC)
                .build(),
                setup: net.setup_after(vec![syn.clone()]),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    arriving(Frame::tcp(
                        sock(WEB_SERVER),
                        sock(HOST),
                        tcp_flags::SYN | tcp_flags::ACK,
                    ))
                    .build(),
                ),
                check: Box::new(|ebpf, _| {
                    let flows = dataplane::flows(ebpf).expect("flows");
                    assert_eq!(flows.len(), 1);
                    assert_eq!(
                        flows[0].1.state,
                        tcp_state::ESTABLISHED,
                        "SYN-ACK establishes the flow"
                    );
                }),
            },
            Fixture {
                name: "reverse_nat_syn_ack_clamped_on_lte",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::tcp(
                    sock(WEB_SERVER),
                    with_addr(LTE_ADDR, 40000),
                    tcp_flags::SYN | tcp_flags::ACK,
                )
                .tcp_options(&[2, 4, 0x05, 0xb4])
                .macs(LTE_GW_MAC, LTE_MAC)
                .build(),
                setup: Net {
                    active: LTE,
                    ingress: LTE,
                    ..net
                }
                .setup_after(vec![syn.clone()]),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    arriving(
                        Frame::tcp(
                            sock(WEB_SERVER),
                            sock(HOST),
                            tcp_flags::SYN | tcp_flags::ACK,
                        )
                        .tcp_options(&[
                            2,
                            4,
                            LTE_MSS_BYTES[0],
                            LTE_MSS_BYTES[1],
                        ]),
                    )
                    .build(),
                ),
                check: no_check(),
            },
            Fixture {
                name: "reverse_nat_tcp_rst_closes_flow",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::tcp(
                    sock(WEB_SERVER),
                    with_addr(FIBER_ADDR, 40000),
                    tcp_flags::RST,
                )
                .macs(FIBER_GW_MAC, FIBER_MAC)
                .build(),
                setup: net.setup_after(vec![syn.clone()]),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(
                    arriving(Frame::tcp(sock(WEB_SERVER), sock(HOST), tcp_flags::RST)).build(),
                ),
                check: Box::new(|ebpf, _| {
                    let flows = dataplane::flows(ebpf).expect("flows");
                    assert_eq!(flows[0].1.state, tcp_state::CLOSED);
                }),
            },
            Fixture {
                name: "reverse_nat_icmp_echo_reply",
                program: names::PROG_UPLINK_INGRESS,
                frame: {
                    let mut f =
                        Frame::icmp_echo(*sock(ECHO_SERVER).ip(), FIBER_ADDR.into(), 4242, 1)
                            .macs(FIBER_GW_MAC, FIBER_MAC)
                            .build();
                    set_icmp_type(&mut f, 0, 0);
                    f
                },
                setup: net.setup_after(vec![ping.clone()]),
                verdict: verdict::REDIRECT,
                output: Output::Bytes({
                    let mut f = arriving(Frame::icmp_echo(
                        *sock(ECHO_SERVER).ip(),
                        *sock(HOST).ip(),
                        4242,
                        1,
                    ))
                    .build();
                    set_icmp_type(&mut f, 0, 0);
                    f
                }),
                check: no_check(),
            },
            Fixture {
                name: "router_own_traffic_has_no_mapping",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(FIBER_ADDR, 33333).build(),
                setup: net.setup_after(udp_flow.clone()),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NoMapping),
            },
            Fixture {
                name: "unsolicited_remote_has_no_flow",
                program: names::PROG_UPLINK_INGRESS,
                frame: Frame::udp(sock("198.51.100.9:7"), with_addr(FIBER_ADDR, 40000))
                    .macs(FIBER_GW_MAC, FIBER_MAC)
                    .build(),
                setup: net.setup_after(udp_flow.clone()),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NoFlow),
            },
            Fixture {
                name: "reply_on_the_wrong_uplink_has_no_flow",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(LTE_ADDR, 40000).build(),
                setup: Net {
                    ingress: LTE,
                    ..net
                }
                .setup_after(udp_flow.clone()),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NoMapping),
            },
            Fixture {
                name: "not_for_the_uplink_address",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to([192, 0, 2, 99], 40000).build(),
                setup: net.setup_after(udp_flow.clone()),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::NotForwarded),
            },
            Fixture {
                name: "arrives_on_an_unknown_interface",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(FIBER_ADDR, 40000).build(),
                setup: Net { ingress: 99, ..net }.setup(),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::UnknownUplink),
            },
            Fixture {
                name: "unresolved_lan_neighbour_goes_translated_to_kernel",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(FIBER_ADDR, 40001).build(),
                setup: net.setup_after(vec![
                    Frame::udp(sock("10.10.0.13:40001"), sock(ECHO_SERVER))
                        .payload(b"sequenced 0001")
                        .build(),
                ]),
                verdict: verdict::PASS,
                // Translated, but TTL and MACs are the kernel's to set when it forwards.
                output: Output::Bytes(
                    Frame::udp(sock(ECHO_SERVER), sock("10.10.0.13:40001"))
                        .payload(b"sequenced 0001")
                        .macs(FIBER_GW_MAC, FIBER_MAC)
                        .build(),
                ),
                check: reason_counted(Reason::NeighbourUnresolved),
            },
            Fixture {
                name: "fragment_from_uplink_goes_to_kernel",
                program: names::PROG_UPLINK_INGRESS,
                frame: reply_to(FIBER_ADDR, 40000)
                    .flags_fragment(IP_MF | IP_DF)
                    .build(),
                setup: net.setup_after(udp_flow.clone()),
                verdict: verdict::PASS,
                output: Output::Unchanged,
                check: reason_counted(Reason::Fragment),
            },
        ];
        run_table(&fixtures);
    });
}

/// An ICMP error quoting `inner` (the packet as it left the router), from `from`, to `to`.
pub fn icmp_error(
    from: Ipv4Addr,
    to: [u8; 4],
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    inner: &[u8],
) -> Vec<u8> {
    let quoted = &inner[14..];
    // Built as an echo request (type 8, "id/seq" = rest), then retyped.
    let id = u16::from_be_bytes([rest[0], rest[1]]);
    let seq = u16::from_be_bytes([rest[2], rest[3]]);
    let mut frame = Frame::icmp_echo(from, to.into(), id, seq)
        .payload(quoted)
        .macs(FIBER_GW_MAC, FIBER_MAC)
        .build();
    set_icmp_type(&mut frame, icmp_type, code);
    frame
}

/// ICMP errors about a translated flow come back with the embedded header translated too, and
/// every checksum (outer IP, ICMP, embedded IP, embedded UDP) right.
#[test]
fn icmp_errors_are_translated_with_their_embedded_header() {
    if skip_unless_root("icmp_errors_are_translated_with_their_embedded_header") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let big = Frame::udp(sock(HOST), sock(ECHO_SERVER)).payload(&[7u8; 1400]);
        let gateway = Ipv4Addr::new(198, 18, 1, 1);
        // The packet as it left the router, and as the LAN host sent it.
        let sent_out = leaving(
            Frame::udp(with_addr(FIBER_ADDR, 40000), sock(ECHO_SERVER)).payload(&[7u8; 1400]),
            FIBER,
        )
        .build();
        let sent_in = big.clone().ttl(63).build();
        // Routers quote the IP header and at least 8 bytes; quote 28 + 8 here.
        let quote = |f: &[u8]| f[..14 + 20 + 8 + 8].to_vec();
        let frag_needed = [0, 0, 0x05, 0x78]; // next-hop MTU 1400
        let cases = [
            ("fragmentation_needed", 3, 4, frag_needed),
            ("port_unreachable", 3, 3, [0; 4]),
            ("time_exceeded", 11, 0, [0; 4]),
        ];
        let mut fixtures = Vec::new();
        for (name, icmp_type, code, rest) in cases {
            let expected = {
                let mut f = icmp_error(
                    gateway,
                    sock(HOST).ip().octets(),
                    icmp_type,
                    code,
                    rest,
                    &quote(&sent_in),
                );
                // After translation it travels on with TTL - 1 and LAN MACs.
                f[14 + 8] -= 1;
                let check = u16::from_be_bytes([f[24], f[25]]);
                let updated = failover_common::checksum::replace_u16(
                    check,
                    u16::from_be_bytes([64, 1]),
                    u16::from_be_bytes([63, 1]),
                );
                f[24..26].copy_from_slice(&updated.to_be_bytes());
                f[0..6].copy_from_slice(&HOST_MAC);
                f[6..12].copy_from_slice(&ROUTER_MAC);
                f
            };
            fixtures.push(Fixture {
                name,
                program: names::PROG_UPLINK_INGRESS,
                frame: icmp_error(
                    gateway,
                    FIBER_ADDR,
                    icmp_type,
                    code,
                    rest,
                    &quote(&sent_out),
                ),
                setup: net.setup_after(vec![big.build()]),
                verdict: verdict::REDIRECT,
                output: Output::Bytes(expected),
                check: reason_counted(Reason::IcmpErrorTranslated),
            });
        }
        fixtures.push(Fixture {
            name: "icmp_error_about_unknown_flow",
            program: names::PROG_UPLINK_INGRESS,
            frame: icmp_error(gateway, FIBER_ADDR, 3, 4, frag_needed, &quote(&sent_out)),
            setup: net.setup(),
            verdict: verdict::PASS,
            output: Output::Unchanged,
            check: reason_counted(Reason::NoMapping),
        });
        run_table(&fixtures);
    });
}

/// The LRU tables never overflow: with room for 64 flows, 1000 flows all get translated (old
/// ones are evicted), and the newest flows still translate back.
#[test]
fn full_tables_evict_instead_of_failing() {
    if skip_unless_root("full_tables_evict_instead_of_failing") {
        return;
    }
    in_scratch(|scratch| {
        let net = Net::new(scratch);
        let mut ebpf = dataplane::open(dataplane::TableSizes {
            flows: 64,
            bindings: 64,
        })
        .expect("open");
        net.apply(&mut ebpf);
        for port in 0..1000u16 {
            let frame = Frame::udp(
                SocketAddrV4::new(Ipv4Addr::new(10, 10, 0, 11), 20000 + port),
                sock(ECHO_SERVER),
            )
            .build();
            let (v, _) = run_once(&mut ebpf, names::PROG_LAN_INGRESS, &frame);
            assert_eq!(v, verdict::REDIRECT, "flow {port} translated");
        }
        let flows = dataplane::flows(&ebpf).expect("flows");
        assert!(
            flows.len() <= 64 + 8,
            "table bounded: {} flows",
            flows.len()
        );
        let (v, out) = run_once(
            &mut ebpf,
            names::PROG_UPLINK_INGRESS,
            &reply_to(FIBER_ADDR, 20999).build(),
        );
        assert_eq!(
            v,
            verdict::REDIRECT,
            "the newest flow still translates back"
        );
        assert_eq!(u16::from_be_bytes([out[36], out[37]]), 20999);
    });
}
