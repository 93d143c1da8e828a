//! Per-LAN-host limits in the data plane: past its flow or port limit a host's new flows are
//! dropped and counted for it, while its existing flows and other hosts' new flows go on;
//! without limits in force (a fresh map, or a lease that ran out) nothing is limited.

use failover_common::{
    limits::{HostKey, HostLimits, HostUsage},
    names,
    verdict::Reason,
};
use failover_tests::{frame::Frame, privilege::skip_unless_root};
use failover_user::{clock, dataplane};

use crate::{
    harness::{fresh_dataplane, run_once, verdict},
    nat::{ECHO_SERVER, HOST, HOST2, Net, in_scratch, sock},
};

/// A UDP packet from `from` to the echo server's address, port `remote_port`.
fn udp(from: &str, remote_port: u16) -> Vec<u8> {
    let mut to = sock(ECHO_SERVER);
    to.set_port(remote_port);
    Frame::udp(sock(from), to).payload(b"flood").build()
}

fn usage(ebpf: &aya::Ebpf, host: &str) -> HostUsage {
    let addr = sock(host).ip().octets();
    dataplane::hosts(ebpf)
        .expect("reading fo_hosts")
        .into_iter()
        .find(|(key, _)| *key == HostKey { addr })
        .map_or_else(
            || panic!("no fo_hosts entry for {host}"),
            |(_, usage)| usage,
        )
}

fn with_port(host: &str, port: u16) -> String {
    let mut addr = sock(host);
    addr.set_port(port);
    addr.to_string()
}

#[test]
fn a_host_past_its_limits_is_refused_and_the_others_are_not() {
    if skip_unless_root("a_host_past_its_limits_is_refused_and_the_others_are_not") {
        return;
    }
    in_scratch(|scratch| {
        let mut ebpf = fresh_dataplane();
        Net::new(scratch).apply(&mut ebpf);
        let run =
            |ebpf: &mut aya::Ebpf, frame: &[u8]| run_once(ebpf, names::PROG_LAN_INGRESS, frame).0;

        // A fresh map limits nothing and counts nothing.
        assert_eq!(run(&mut ebpf, &udp(HOST, 7)), verdict::REDIRECT);
        assert!(dataplane::hosts(&ebpf).expect("fo_hosts").is_empty());

        let now = clock::now_ns().expect("the data plane's clock");
        let lease = |until_ns| HostLimits {
            flows: 4,
            ports: 2,
            until_ns,
        };
        dataplane::set_host_limits(&mut ebpf, lease(now + 60_000_000_000)).expect("limits");
        // HOST's first flow (port 7) was opened before the limits: the count starts from
        // here (the controller's recount would include it).
        for port in [8, 9, 10, 11] {
            assert_eq!(
                run(&mut ebpf, &udp(HOST, port)),
                verdict::REDIRECT,
                "port {port}"
            );
        }
        let refused = udp(HOST, 12);
        assert_eq!(run(&mut ebpf, &refused), verdict::DROP, "a fifth new flow");
        assert_eq!(
            run(&mut ebpf, &udp(HOST, 9)),
            verdict::REDIRECT,
            "an existing flow"
        );
        assert_eq!(
            run(&mut ebpf, &udp(HOST, 7)),
            verdict::REDIRECT,
            "the older flow"
        );
        let host = usage(&ebpf, HOST);
        assert_eq!((host.flows, host.refused_flows, host.ports[0]), (4, 1, 0));

        // HOST2: one port is free, a second new local port is one too many.
        assert_eq!(run(&mut ebpf, &udp(HOST2, 7)), verdict::REDIRECT);
        let second = with_port(HOST2, 40001);
        assert_eq!(run(&mut ebpf, &udp(&second, 7)), verdict::REDIRECT);
        let third = with_port(HOST2, 40002);
        assert_eq!(
            run(&mut ebpf, &udp(&third, 7)),
            verdict::DROP,
            "a third port"
        );
        let host2 = usage(&ebpf, HOST2);
        assert_eq!(
            (host2.flows, host2.ports[0], host2.refused_ports),
            (2, 2, 1)
        );
        assert_eq!(host2.refused_flows, 0);

        let reasons = dataplane::reason_counts(&ebpf).expect("reasons");
        assert_eq!(reasons[Reason::HostFlowLimit as usize], 1, "{reasons:?}");
        assert_eq!(reasons[Reason::HostPortLimit as usize], 1, "{reasons:?}");

        // A lease that ran out (no controller renewed it) limits nothing.
        dataplane::set_host_limits(&mut ebpf, lease(now)).expect("limits");
        assert_eq!(run(&mut ebpf, &refused), verdict::REDIRECT, "limits lapsed");
        assert_eq!(run(&mut ebpf, &udp(&third, 7)), verdict::REDIRECT);
    });
}
