//! End-to-end tests of the health probes (`failover_user::probe`) in the network lab, run
//! from inside the router: every kind answers through both uplinks, faults fail exactly the
//! probes they should, and the per-uplink routing table lets the standby uplink be probed
//! whatever the main table says. Root only; run with `--test-threads=1`.

use std::net::SocketAddrV4;
use std::time::Duration;

use failover_tests::lab::{self, Cmd, Fault, Isp, LabGuard, Plan};
use failover_tests::{netns, privilege::skip_unless_root};
use failover_user::config::{HealthConfig, Target};
use failover_user::netlink::Netlink;
use failover_user::probe::{
    PathEnd, ProbeError, ProbeKind, ProbePath, routing::UplinkRoutes, run_probe,
};

/// Generous for a lab whose round trips take well under a millisecond, short enough that the
/// tests of dead paths stay quick.
const TIMEOUT: Duration = Duration::from_millis(500);

fn health() -> HealthConfig {
    HealthConfig {
        timeout: TIMEOUT,
        dns_name: Plan::DNS_NAME.to_owned(),
        ..HealthConfig::default()
    }
}

/// One target of each far kind, all in the lab's internet namespace.
fn far_probes() -> Vec<ProbeKind> {
    let web = SocketAddrV4::new(Plan::SERVER, Plan::HTTP_PORT);
    [
        Target::Icmp(Plan::SERVER),
        Target::Icmp(Plan::FAR_TARGETS[0]),
        Target::Tcp(web),
        Target::Dns(Plan::SERVER),
        Target::Http {
            addr: web,
            path: Plan::WHOAMI_PATH.to_owned(),
        },
    ]
    .into_iter()
    .map(ProbeKind::Far)
    .collect()
}

fn gateway_probes() -> [ProbeKind; 2] {
    [ProbeKind::GatewayArp, ProbeKind::GatewayIcmp]
}

/// Runs `body` on a current-thread runtime on a thread inside the router's namespace, where
/// probe sockets and the netlink connection must be opened.
fn in_router<T: Send, F: Future<Output = T>>(body: impl FnOnce() -> F + Send) -> T {
    netns::in_netns(Plan::NS_ROUTER, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(body())
    })
    .expect("entering the router's namespace")
}

/// The probe path of `isp`'s uplink as the kernel describes it, checked against the plan.
async fn path_of(netlink: &Netlink, isp: Isp) -> ProbePath {
    let up = isp.uplink();
    // The gateway is given: one test removes lte's route from the main table.
    let path = ProbePath::discover(netlink, isp.name(), up.router.name, Some(up.gateway.ip()))
        .await
        .expect("discovering the uplink");
    assert_eq!((path.source, path.mac), (up.router.ip(), up.router.mac.0));
    path
}

async fn probe(path: &ProbePath, kind: &ProbeKind) -> Result<Duration, ProbeError> {
    run_probe(path, kind, &health()).await
}

async fn assert_answers(path: &ProbePath, kinds: &[ProbeKind]) {
    for kind in kinds {
        match probe(path, kind).await {
            Ok(rtt) => assert!(
                rtt > Duration::ZERO && rtt < TIMEOUT,
                "{kind:?} via {}: implausible RTT {rtt:?}",
                path.uplink
            ),
            Err(e) => panic!("{kind:?} via {}: {e}", path.uplink),
        }
    }
}

async fn assert_times_out(path: &ProbePath, kinds: &[ProbeKind]) {
    for kind in kinds {
        let result = probe(path, kind).await;
        assert!(
            matches!(result, Err(ProbeError::Timeout(t)) if t == TIMEOUT),
            "{kind:?} via {}: expected a timeout, got {result:?}",
            path.uplink
        );
    }
}

async fn assert_fails(path: &ProbePath, kinds: &[ProbeKind]) {
    for kind in kinds {
        let result = probe(path, kind).await;
        assert!(
            result.is_err(),
            "{kind:?} via {}: expected a failure, got {result:?}",
            path.uplink
        );
    }
}

#[test]
fn every_probe_answers_through_both_uplinks() {
    if skip_unless_root("every_probe_answers_through_both_uplinks") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    in_router(async || {
        let netlink = Netlink::connect().expect("netlink");
        for isp in Isp::ALL {
            let discovered =
                ProbePath::discover(&netlink, isp.name(), isp.uplink().router.name, None)
                    .await
                    .expect("discovering the uplink with its gateway");
            let path = path_of(&netlink, isp).await;
            assert_eq!(discovered, path, "the gateway learned from the routes");
            assert_answers(&path, &gateway_probes()).await;
            assert_answers(&path, &far_probes()).await;
        }
    });
}

#[test]
fn icmp_reply_on_another_interface_than_expected_is_the_wrong_path() {
    if skip_unless_root("icmp_reply_on_another_interface_than_expected_is_the_wrong_path") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    in_router(async || {
        let netlink = Netlink::connect().expect("netlink");
        let fiber = path_of(&netlink, Isp::Fiber).await;
        let lte = path_of(&netlink, Isp::Lte).await;
        // Sent through lte, but expected back on fiber: the arrival check must object.
        let confused = ProbePath {
            ifindex: fiber.ifindex,
            ..lte.clone()
        };
        let result = probe(&confused, &ProbeKind::GatewayIcmp).await;
        assert!(
            matches!(
                result,
                Err(ProbeError::WrongPath {
                    expected: PathEnd::Interface(e),
                    got: PathEnd::Interface(g),
                }) if e == fiber.ifindex && g == lte.ifindex
            ),
            "{result:?}"
        );
    });
}

#[test]
fn gateway_silent_on_fiber_times_out_its_gateway_probes_only() {
    if skip_unless_root("gateway_silent_on_fiber_times_out_its_gateway_probes_only") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    lab::fault(Isp::Fiber, Fault::GatewaySilent).expect("silencing the fiber gateway");
    in_router(async || {
        let netlink = Netlink::connect().expect("netlink");
        let fiber = path_of(&netlink, Isp::Fiber).await;
        assert_times_out(&fiber, &gateway_probes()).await;
        assert_fails(&fiber, &far_probes()).await;
        let lte = path_of(&netlink, Isp::Lte).await;
        assert_answers(&lte, &gateway_probes()).await;
        assert_answers(&lte, &far_probes()).await;
    });
}

#[test]
fn upstream_cut_on_fiber_fails_its_far_probes_only() {
    if skip_unless_root("upstream_cut_on_fiber_fails_its_far_probes_only") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    lab::fault(Isp::Fiber, Fault::UpstreamCut).expect("cutting fiber's upstream");
    in_router(async || {
        let netlink = Netlink::connect().expect("netlink");
        let fiber = path_of(&netlink, Isp::Fiber).await;
        assert_answers(&fiber, &gateway_probes()).await;
        // The gateway drops silently, so every far kind runs into its deadline.
        assert_times_out(&fiber, &far_probes()).await;
        let lte = path_of(&netlink, Isp::Lte).await;
        assert_answers(&lte, &far_probes()).await;
    });
}

/// `ip` output in the router, for checking what the routing code left in the kernel.
fn router_ip(args: &[&str]) -> String {
    Cmd::ip(Plan::NS_ROUTER)
        .args(args.iter().copied())
        .run()
        .expect("running ip")
}

#[test]
fn standby_uplink_is_probed_through_its_own_table() {
    if skip_unless_root("standby_uplink_is_probed_through_its_own_table") {
        return;
    }
    let _lab = LabGuard::up().expect("building the lab");
    let lte = Isp::Lte.uplink();
    let gateway = lte.gateway.ip().to_string();
    // The main table routes everything through fiber, whose upstream is cut: a probe that
    // leaked into fiber would fail, so success proves it went through lte.
    router_ip(&[
        "route",
        "del",
        "default",
        "via",
        &gateway,
        "dev",
        lte.router.name,
    ]);
    lab::fault(Isp::Fiber, Fault::UpstreamCut).expect("cutting fiber's upstream");
    // Leftovers of an earlier run in the slot's table and at its priority.
    router_ip(&[
        "rule",
        "add",
        "from",
        "192.0.2.99",
        "lookup",
        "1001",
        "pref",
        "1001",
    ]);
    router_ip(&[
        "route",
        "add",
        "10.99.0.0/16",
        "via",
        &gateway,
        "table",
        "1001",
    ]);

    in_router(async || {
        let netlink = Netlink::connect().expect("netlink");
        let path = path_of(&netlink, Isp::Lte).await;
        let mut routes = UplinkRoutes::new(1);

        // The main table has no route through lte: a bound probe has nowhere to go.
        assert_fails(&path, &far_probes()).await;

        routes
            .update(&netlink, &path)
            .await
            .expect("installing lte's routes");
        let source = lte.router.ip().to_string();
        assert_eq!(
            router_ip(&["-4", "rule", "show", "pref", "1001"]).trim(),
            format!(
                "1001:\tfrom {source} lookup 1001\n1001:\tfrom all fwmark {:#x} lookup 1001",
                routes.too_big_mark()
            ),
            "the stale rule is replaced by lte's, and too-big packets follow them"
        );
        let table = router_ip(&["-4", "route", "show", "table", "1001"]);
        assert_eq!(
            table.trim(),
            format!("default via {gateway} dev lte proto static src {source}"),
            "the stale route is gone"
        );
        assert_answers(&path, &far_probes()).await;
        assert_answers(&path, &gateway_probes()).await;

        // A new gateway replaces the route; going back restores it.
        let moved = ProbePath {
            gateway: Some("100.64.0.9".parse().unwrap()),
            ..path.clone()
        };
        routes.update(&netlink, &moved).await.expect("updating");
        let table = router_ip(&["-4", "route", "show", "table", "1001"]);
        assert!(
            table.starts_with("default via 100.64.0.9 dev lte"),
            "{table}"
        );
        routes.update(&netlink, &path).await.expect("updating back");
        assert_answers(&path, &far_probes()[..1]).await;

        routes.remove(&netlink).await.expect("removing");
        assert_eq!(
            router_ip(&["-4", "rule", "show", "pref", "1001"]).trim(),
            ""
        );
        assert_eq!(
            router_ip(&["-4", "route", "show", "table", "1001"]).trim(),
            ""
        );
        assert_fails(&path, &far_probes()[..1]).await;
    });
}
