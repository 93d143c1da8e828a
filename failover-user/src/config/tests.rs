use std::time::Duration;

use super::{
    ConfigError, DataplaneLog, FailbackMode, HealthConfig, Problem, Target, defaults, load, parse,
    parse_port_range,
};

const EXAMPLE: &str = include_str!("../../../docs/failover.example.toml");
/// The settings whose default is computed or absent, so the example shows a sample value.
const SAMPLE_VALUED: [&str; 9] = [
    "priority",
    "gateway",
    "targets",
    "mss",
    "quorum",
    "hook",
    "listen",
    "public_address",
    "uplinks",
];

/// The example with each `# key = value` line uncommented when `pick(key)` says so.
fn uncomment(pick: impl Fn(&str) -> bool) -> String {
    EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting)
                if setting.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && pick(key)
                }) =>
            {
                setting
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "test.toml") {
        Ok(config) => panic!("accepted:\n{text}\n{config:#?}"),
        Err(ConfigError::Invalid { origin, problems }) => {
            assert_eq!(origin, "test.toml");
            problems
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn example_parses_and_validates() {
    let config = parse(EXAMPLE, "example").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.uplinks.len(), 2);
    assert!(config.uplinks[1].metered);
    assert_eq!(config.uplinks[1].failback, FailbackMode::Move);
}

#[test]
fn example_shows_the_real_defaults() {
    let uncommented = uncomment(|key| !SAMPLE_VALUED.contains(&key));
    assert_ne!(uncommented, EXAMPLE, "nothing was uncommented");
    let shown = parse(&uncommented, "uncommented example").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shown, parse(EXAMPLE, "example").unwrap());
}

#[test]
fn example_sample_values_are_valid() {
    let config = parse(&uncomment(|_| true), "all uncommented").unwrap_or_else(|e| panic!("{e}"));
    let fiber = &config.uplinks[0];
    assert_eq!(fiber.gateway, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(fiber.targets_or_default(), defaults::targets());
    assert_eq!(fiber.priority_or_position(0), 1);
    assert_eq!(config.health.quorum, Some(2));
    assert_eq!(
        config.metrics.listen,
        Some("127.0.0.1:9469".parse().unwrap())
    );
}

/// The few lines the module documentation promises are enough.
#[test]
fn module_doc_example_parses_with_defaults() {
    let source = include_str!("../config.rs");
    let start = source.find("//! ```toml\n").expect("doc example") + "//! ```toml\n".len();
    let end = start + source[start..].find("//! ```\n").unwrap();
    let text: String = source[start..end]
        .lines()
        .map(|line| line.strip_prefix("//!").unwrap().trim_start().to_owned() + "\n")
        .collect();
    let config = parse(&text, "doc").unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(config.lan, ["lan0"]);
    assert_eq!(config.health, HealthConfig::default());
    assert!(!config.skb_mode);
    let [fiber, lte] = &config.uplinks[..] else {
        panic!("two uplinks")
    };
    assert_eq!(
        (fiber.name.as_str(), fiber.interface.as_str()),
        ("fiber", "eth1")
    );
    assert_eq!(fiber.priority_or_position(0), 1);
    assert_eq!(lte.priority_or_position(1), 2);
    assert_eq!(fiber.weight, 1);
    assert_eq!(fiber.gateway, None);
    assert_eq!(fiber.mss, None);
    assert!(!fiber.metered);
    assert_eq!(fiber.port_range(), (1024, 32767));
    assert_eq!(fiber.failback, FailbackMode::Keep);
    assert_eq!(fiber.drain, Duration::from_mins(1));
    assert_eq!(
        fiber.targets_or_default(),
        ["icmp:1.1.1.1", "icmp:8.8.8.8", "icmp:9.9.9.9"]
            .map(|t| t.parse::<Target>().unwrap())
            .to_vec()
    );
    assert_eq!(config.health.quorum_for(3), 2);
    assert!(lte.metered);
    assert_eq!(lte.mss, Some(1360));
}

const ONE: &str = "lan = [\"lan0\"]\n[[uplink]]\nname = \"fiber\"\ninterface = \"eth1\"\n";
const TWO: &str = "lan = [\"lan0\"]\n\
    [[uplink]]\nname = \"fiber\"\ninterface = \"eth1\"\n\
    [[uplink]]\nname = \"lte\"\ninterface = \"wwan0\"\n";

/// One broken rule per case: the message mentions `needle` and points at `line:column`.
#[test]
#[expect(clippy::too_many_lines, reason = "a table, one case per rule")]
fn each_problem_is_located_with_a_hint() {
    let uplinks_9: String = (0..9)
        .map(|i| format!("[[uplink]]\nname = \"u{i}\"\ninterface = \"eth{i}\"\n"))
        .collect::<Vec<_>>()
        .concat();
    let cases: Vec<(&str, String, &str, (usize, usize))> = vec![
        ("syntax", format!("{ONE}mss = \n"), "", (5, 7)),
        (
            "unknown key",
            format!("{ONE}mtu = 1400\n"),
            "unknown field `mtu`",
            (5, 1),
        ),
        (
            "unknown section key",
            format!("{ONE}[health]\nintervall = \"1s\"\n"),
            "unknown field `intervall`",
            (6, 1),
        ),
        (
            "missing interface",
            "lan = [\"lan0\"]\n[[uplink]]\nname = \"fiber\"\n".to_owned(),
            "missing field `interface`",
            (2, 1),
        ),
        (
            "bad target",
            format!("{ONE}targets = [\"icmp:1.1.1\"]\n"),
            "not an IPv4 address",
            (5, 11),
        ),
        (
            "duration without unit",
            format!("{ONE}[health]\ntimeout = \"500\"\n"),
            "",
            (6, 11),
        ),
        (
            "empty lan",
            ONE.replace("[\"lan0\"]", "[]"),
            "no interface",
            (1, 7),
        ),
        (
            "two lans",
            ONE.replace("[\"lan0\"]", "[\"lan0\", \"lan1\"]"),
            "this version steers one",
            (1, 16),
        ),
        (
            "lan name",
            ONE.replace("lan0", "lan 0"),
            "not a valid interface name",
            (1, 8),
        ),
        (
            "long interface",
            ONE.replace("eth1", "a_very_long_name0"),
            "longer than 15",
            (4, 13),
        ),
        (
            "no uplinks",
            "lan = [\"lan0\"]\nuplink = []\n".to_owned(),
            "no uplinks",
            (2, 10),
        ),
        (
            "nine uplinks",
            format!("lan = [\"lan0\"]\n{uplinks_9}"),
            "at most 8",
            (26, 1),
        ),
        (
            "uplink name",
            ONE.replace("fiber", "Fiber"),
            "`Fiber`",
            (3, 8),
        ),
        (
            "same name",
            TWO.replace("lte", "fiber"),
            "two uplinks are named",
            (6, 8),
        ),
        (
            "same interface",
            TWO.replace("wwan0", "eth1"),
            "used by two uplinks",
            (7, 13),
        ),
        (
            "LAN as uplink",
            ONE.replace("eth1", "lan0"),
            "LAN interface `lan0`",
            (4, 13),
        ),
        (
            "ports order",
            format!("{ONE}ports = \"2000-1000\"\n"),
            "1 <= MIN <= MAX",
            (5, 9),
        ),
        (
            "ports zero",
            format!("{ONE}ports = \"0-1000\"\n"),
            "1 <= MIN <= MAX",
            (5, 9),
        ),
        (
            "ports into the safety net's",
            format!("{ONE}ports = \"1024-61000\"\n"),
            "61000-65535",
            (5, 9),
        ),
        (
            "ports shape",
            format!("{ONE}ports = \"1024\"\n"),
            "not `MIN-MAX`",
            (5, 9),
        ),
        ("mss small", format!("{TWO}mss = 500\n"), "mss 500", (8, 7)),
        (
            "mss large",
            format!("{ONE}mss = 9001\n"),
            "mss 9001",
            (5, 7),
        ),
        ("weight", format!("{ONE}weight = 0\n"), "weight 0", (5, 10)),
        (
            "empty targets",
            format!("{ONE}targets = []\n"),
            "empty `targets`",
            (5, 11),
        ),
        (
            "twice a target",
            format!("{ONE}targets = [\"dns:1.1.1.1\", \"dns:1.1.1.1\"]\n"),
            "twice",
            (5, 11),
        ),
        (
            "quorum above targets",
            format!("{ONE}[health]\nquorum = 4\n"),
            "quorum 4 is more than the 3",
            (6, 10),
        ),
        (
            "quorum zero",
            format!("{ONE}[health]\nquorum = 0\n"),
            "quorum 0",
            (6, 10),
        ),
        (
            "zero duration",
            format!("{ONE}[health]\nup_after = \"0s\"\n"),
            "`up_after` is zero",
            (6, 12),
        ),
        // The rule involves the default timeout; the written value is pointed at.
        (
            "timeout vs gateway",
            format!("{ONE}[health]\ngateway_down_after = \"400ms\"\n"),
            "not shorter than gateway_down_after",
            (6, 22),
        ),
        (
            "timeout vs targets",
            format!("{ONE}[health]\ntimeout = \"2s\"\ngateway_down_after = \"3s\"\n"),
            "not shorter than targets_down_after",
            (6, 11),
        ),
        (
            "loss percent",
            format!("{ONE}[health]\ndegraded_loss_percent = 0\n"),
            "outside 1..=100",
            (6, 25),
        ),
        (
            "flap",
            format!("{ONE}[health]\nflap_reuse = 3000\n"),
            "flap_reuse (3000) is not below",
            (6, 14),
        ),
        (
            "window",
            format!("{ONE}[health]\nwindow = 0\n"),
            "window 0",
            (6, 10),
        ),
        (
            "dns name",
            format!("{ONE}[health]\ndns_name = \"\"\n"),
            "dns_name is empty",
            (6, 12),
        ),
        (
            "relative hook",
            format!("{ONE}[events]\nhook = \"hook.sh\"\n"),
            "not an absolute path",
            (6, 8),
        ),
    ];
    assert_each_located(&cases);
}

#[test]
fn every_problem_is_reported_in_the_file_line_column_format() {
    let text = format!("{TWO}mss = 100\nweight = 0\n");
    let error = parse(&text, "/etc/failover/failover.toml").unwrap_err();
    let shown = error.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 4, "{shown}");
    assert!(
        lines[0].starts_with("/etc/failover/failover.toml:8:7: mss 100"),
        "{shown}"
    );
    assert!(lines[1].starts_with("  hint: "), "{shown}");
    assert!(
        lines[2].starts_with("/etc/failover/failover.toml:9:10: weight 0"),
        "{shown}"
    );
    assert!(lines[3].starts_with("  hint: "), "{shown}");
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("failover-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    let bad = dir.join("bad.toml");
    std::fs::write(&good, ONE).unwrap();
    std::fs::write(&bad, format!("{ONE}mss = 1\n")).unwrap();

    let loaded = load(&good).unwrap();
    let missing = load(&dir.join("missing.toml")).unwrap_err();
    let invalid = load(&bad).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(loaded.uplinks[0].name, "fiber");
    assert!(matches!(missing, ConfigError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("hint: "), "{missing}");
    assert!(
        invalid.starts_with(&format!("{}:5:7: ", bad.display())),
        "{invalid}"
    );
}

#[test]
fn port_ranges() {
    assert_eq!(parse_port_range("1024-32767"), Ok((1024, 32767)));
    assert_eq!(parse_port_range("1-1"), Ok((1, 1)));
    assert_eq!(parse_port_range("1-65535"), Ok((1, 65535)));
    for bad in ["", "1024", "0-10", "10-9", "1-65536", "a-b", "-5"] {
        assert!(parse_port_range(bad).is_err(), "{bad}");
    }
}

#[test]
fn quorum_defaults_to_a_majority() {
    let health = HealthConfig::default();
    let majorities: Vec<usize> = (1..=5).map(|n| health.quorum_for(n)).collect();
    assert_eq!(majorities, [1, 2, 2, 3, 3]);
    let health = HealthConfig {
        quorum: Some(1),
        ..HealthConfig::default()
    };
    assert_eq!(health.quorum_for(5), 1);
}

#[test]
fn summary_resolves_defaults() {
    let config = parse(
        &format!("{TWO}priority = 1\nmss = 1360\nfailback = \"move\"\n"),
        "t",
    )
    .unwrap();
    let summary = config.summary();
    assert!(
        summary.contains(
            "uplink fiber: priority 1, interface eth1, gateway learned, \
             targets icmp:1.1.1.1 icmp:8.8.8.8 icmp:9.9.9.9 (quorum 2), unmetered, mss unclamped, \
             ports 1024-32767, weight 1, failback keep, datapath auto, public address the interface's"
        ),
        "{summary}"
    );
    assert!(summary.contains("uplink lte: priority 1,"), "{summary}");
    assert!(summary.contains("mss 1360"), "{summary}");
    assert!(summary.contains("failback move after 1m"), "{summary}");
    assert!(
        summary.contains("timeout 500ms, down after 600ms (gateway) or 1s (targets)"),
        "{summary}"
    );
}

#[test]
fn metrics_are_off_by_default_and_listen_on_a_socket_address() {
    let off = parse(ONE, "t").unwrap();
    assert_eq!(off.metrics.listen, None);
    assert!(off.summary().contains("metrics: off"), "{}", off.summary());

    let on = parse(&format!("{ONE}[metrics]\nlisten = \"[::1]:9469\"\n"), "t").unwrap();
    assert!(
        on.summary().contains("metrics: http://[::1]:9469/metrics"),
        "{}",
        on.summary()
    );

    let found = problems(&format!("{ONE}[metrics]\nlisten = \"localhost:9469\"\n"));
    let [problem] = &found[..] else {
        panic!("{found:#?}")
    };
    assert!(problem.message.contains("socket address"), "{problem:#?}");
    assert!(problem.hint.contains("127.0.0.1:9469"), "{problem:#?}");
    assert_eq!(problem.line, 6, "{problem:#?}");
}

#[test]
fn dataplane_log_is_off_by_default_and_takes_a_level() {
    let off = parse(ONE, "t").unwrap();
    assert_eq!(off.logging.dataplane, DataplaneLog::Off);
    assert_eq!(off.logging.dataplane.level(), 0);
    assert!(
        off.summary().contains("data-plane log: off"),
        "{}",
        off.summary()
    );

    let info = parse(&format!("{ONE}[logging]\ndataplane = \"info\"\n"), "t").unwrap();
    assert_eq!(info.logging.dataplane, DataplaneLog::Info);
    assert!(info.logging.dataplane.level() > DataplaneLog::Warn.level());
    assert!(
        info.summary().contains("data-plane log: info"),
        "{}",
        info.summary()
    );

    let found = problems(&format!("{ONE}[logging]\ndataplane = \"loud\"\n"));
    let [problem] = &found[..] else {
        panic!("{found:#?}")
    };
    assert!(problem.message.contains("loud"), "{problem:#?}");
    assert_eq!(problem.line, 6, "{problem:#?}");
}

#[test]
fn host_limits_default_to_what_a_household_never_hits_and_zero_turns_them_off() {
    let default = parse(ONE, "t").unwrap();
    assert_eq!(default.limits.flows_per_host, 8192);
    assert_eq!(default.limits.ports_per_host, 4096);
    assert!(
        default
            .summary()
            .contains("per-host limits: 8192 flows, 4096 ports per uplink"),
        "{}",
        default.summary()
    );

    let off = parse(
        &format!("{ONE}[limits]\nflows_per_host = 0\nports_per_host = 0\n"),
        "t",
    )
    .unwrap();
    assert_eq!(off.limits.flows_per_host, 0);
    assert_eq!(off.limits.ports_per_host, 0);

    for bad in [
        "flows_per_host = -1",
        "flows_per_host = \"many\"",
        "per_host = 3",
    ] {
        let found = problems(&format!("{ONE}[limits]\n{bad}\n"));
        let [problem] = &found[..] else {
            panic!("{bad}: {found:#?}")
        };
        assert_eq!(problem.line, 6, "{bad}: {problem:#?}");
    }
}

#[test]
fn a_forward_takes_a_port_or_a_range_to_a_lan_host_on_every_uplink_by_default() {
    let config = parse(
        &format!(
            "{TWO}[[forward]]\nname = \"web\"\nport = 80\nto = \"10.10.0.11:8080\"\n\
             [[forward]]\nname = \"rtp\"\nproto = \"udp\"\nport = \"10000-10002\"\nto = \"10.10.0.12\"\nuplinks = [\"lte\"]\n"
        ),
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let entries: Vec<_> = config
        .forward_entries()
        .iter()
        .map(|e| {
            (
                e.uplink,
                e.proto,
                e.port,
                e.lan_addr.to_string(),
                e.lan_port,
            )
        })
        .collect();
    let host = |n: u8| format!("10.10.0.{n}");
    assert_eq!(
        entries,
        [
            (0, 6, 80, host(11), 8080),
            (1, 6, 80, host(11), 8080),
            (1, 17, 10000, host(12), 10000),
            (1, 17, 10001, host(12), 10001),
            (1, 17, 10002, host(12), 10002),
        ]
    );
    assert!(
        config
            .summary()
            .contains("forward web: tcp port 80 -> 10.10.0.11:8080 on every uplink")
    );
    assert!(
        config
            .summary()
            .contains("forward rtp: udp port 10000-10002 -> 10.10.0.12 on lte")
    );
}

/// One broken forward per case: the message mentions `needle` and points at `line:column`
/// (the forward starts on line 8).
#[test]
#[expect(clippy::too_many_lines, reason = "a table, one case per rule")]
fn forward_problems_are_located_with_a_hint() {
    let forward = |body: &str| format!("{TWO}[[forward]]\nname = \"web\"\n{body}");
    let cases = [
        (
            "port 0",
            forward("port = 0\nto = \"10.10.0.11\"\n"),
            "not a port number",
            (10, 8),
        ),
        (
            "port too big",
            forward("port = 70000\nto = \"10.10.0.11\"\n"),
            "not a port number",
            (10, 8),
        ),
        (
            "backwards range",
            forward("port = \"90-80\"\nto = \"10.10.0.11\"\n"),
            "ends before it starts",
            (10, 8),
        ),
        (
            "port text",
            forward("port = \"http\"\nto = \"10.10.0.11\"\n"),
            "not a number or a range",
            (10, 8),
        ),
        (
            "bad host",
            forward("port = 80\nto = \"lan-server\"\n"),
            "not a LAN host's IPv4 address",
            (11, 6),
        ),
        (
            "bad host port",
            forward("port = 80\nto = \"10.10.0.11:0\"\n"),
            "not a LAN host's IPv4 address",
            (11, 6),
        ),
        (
            "broadcast host",
            forward("port = 80\nto = \"255.255.255.255\"\n"),
            "not a host's address",
            (11, 6),
        ),
        (
            "unknown uplink",
            forward("port = 80\nto = \"10.10.0.11\"\nuplinks = [\"dsl\"]\n"),
            "not configured",
            (12, 12),
        ),
        (
            "no uplink",
            forward("port = 80\nto = \"10.10.0.11\"\nuplinks = []\n"),
            "lists no uplink",
            (12, 11),
        ),
        (
            "uplink twice",
            forward("port = 80\nto = \"10.10.0.11\"\nuplinks = [\"lte\", \"lte\"]\n"),
            "twice",
            (12, 19),
        ),
        (
            "safety-net port",
            forward("port = 62000\nto = \"10.10.0.11\"\n"),
            "safety net",
            (10, 8),
        ),
        (
            "range past 65535",
            forward("port = \"100-200\"\nto = \"10.10.0.11:65500\"\n"),
            "run past 65535",
            (11, 6),
        ),
        (
            "bad name",
            forward("port = 80\nto = \"10.10.0.11\"\n").replace("\"web\"", "\"Web Site\""),
            "forward name",
            (9, 8),
        ),
        (
            "unknown proto",
            forward("proto = \"sctp\"\nport = 80\nto = \"10.10.0.11\"\n"),
            "unknown variant",
            (10, 9),
        ),
        (
            "same port twice",
            forward(
                "port = \"80-90\"\nto = \"10.10.0.11\"\n[[forward]]\nname = \"alt\"\nproto = \"both\"\nport = 85\nto = \"10.10.0.12\"\nuplinks = [\"lte\"]\n",
            ),
            "both take tcp+udp port 85 on uplink `lte`",
            (15, 8),
        ),
        (
            "same name twice",
            forward(
                "port = 80\nto = \"10.10.0.11\"\n[[forward]]\nname = \"web\"\nport = 443\nto = \"10.10.0.11\"\n",
            ),
            "two forwards are named",
            (13, 8),
        ),
    ];
    assert_each_located(&cases);
}

#[test]
fn an_overfull_forward_table_is_refused() {
    let text = format!(
        "{TWO}[[forward]]\nname = \"all\"\nproto = \"both\"\nport = \"1-5000\"\nto = \"10.10.0.11\"\n"
    );
    let found = problems(&text);
    assert!(
        found.len() == 1 && found[0].message.contains("20000") && found[0].message.contains("8192"),
        "{found:#?}"
    );
}

#[test]
fn cgnat_and_private_addresses_cannot_be_reached_from_the_internet() {
    use super::unreachable_from_internet as why;
    for (addr, expected) in [
        ("100.64.1.2", Some("carrier-grade NAT")),
        ("100.127.255.1", Some("carrier-grade NAT")),
        ("10.0.0.1", Some("private")),
        ("192.168.1.1", Some("private")),
        ("172.20.0.1", Some("private")),
        ("169.254.3.3", Some("link-local")),
        ("100.128.0.1", None),
        ("198.51.100.9", None),
    ] {
        let found = why(addr.parse().unwrap());
        assert_eq!(
            found.map(|w| expected.is_some_and(|e| w.contains(e))),
            expected.map(|_| true),
            "{addr}: {found:?}"
        );
    }
}

#[test]
fn check_config_warns_of_a_forward_behind_carrier_grade_nat_only() {
    use super::reachability_warning as warn;
    let cgnat =
        warn("forward `web`", "lte", "100.64.0.2".parse().unwrap(), false).expect("a warning");
    assert!(
        cgnat.contains("`web`") && cgnat.contains("`lte`") && cgnat.contains("carrier-grade NAT"),
        "{cgnat}"
    );
    assert!(
        cgnat.contains("public_address"),
        "it says the way out: {cgnat}"
    );
    assert_eq!(
        warn(
            "forward `web`",
            "fiber",
            "198.51.100.9".parse().unwrap(),
            false
        ),
        None
    );
    assert_eq!(
        warn("forward `web`", "vpn", "203.0.113.7".parse().unwrap(), true),
        None
    );
}

/// Each case `(name, config text, message part, (line, column))` gives exactly one problem,
/// with that message part, a hint, and that place; every wrong case is listed at once.
fn assert_each_located(cases: &[(&str, String, &str, (usize, usize))]) {
    let mut wrong = Vec::new();
    for (name, text, needle, at) in cases {
        let found = problems(text);
        match &found[..] {
            [problem]
                if problem.message.contains(needle)
                    && !problem.hint.is_empty()
                    && (problem.line, problem.column) == *at => {}
            _ => wrong.push(format!(
                "{name}: expected `{needle}` at {at:?}, got {found:#?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `[dns]` with `extra` after its required keys (lines 9-12; `extra` starts on line 13).
fn dns(zone: &str, records: &str, extra: &str) -> String {
    format!(
        "{TWO}[dns]\nserver = \"192.0.2.53\"\nzone = \"{zone}\"\nkey_file = \"/etc/failover/tsig.key\"\nrecords = {records}\n{extra}"
    )
}

#[test]
fn a_dns_section_has_defaults_and_its_rules_are_located() {
    let config = parse(&dns("example.com", "[\"www.example.com\"]", ""), "t").expect("valid");
    let section = config.dns.expect("[dns]");
    assert_eq!(section.server.0, "192.0.2.53:53".parse().expect("addr"));
    assert_eq!(section.ttl, Duration::from_secs(30));
    assert_eq!(section.timeout, Duration::from_secs(2));
    let with_port = parse(
        &dns("example.com", "[\"www.example.com\"]", "").replace("192.0.2.53", "192.0.2.53:5300"),
        "t",
    )
    .expect("valid");
    assert_eq!(with_port.dns.expect("[dns]").server.0.port(), 5300);
    let www = "[\"www.example.com\"]";
    let cases: Vec<(&str, String, &str, (usize, usize))> = vec![
        (
            "no records",
            dns("example.com", "[]", ""),
            "names no record",
            (12, 11),
        ),
        (
            "record outside the zone",
            dns("example.com", "[\"www.example.org\"]", ""),
            "not in zone",
            (12, 12),
        ),
        (
            "record twice",
            dns(
                "example.com",
                "[\"www.example.com\", \"WWW.example.com\"]",
                "",
            ),
            "listed twice",
            (12, 31),
        ),
        (
            "bad zone",
            dns("exa mple..com", www, ""),
            "not a domain name",
            (10, 8),
        ),
        (
            "zero ttl",
            dns("example.com", www, "ttl = \"0s\"\n"),
            "whole number",
            (13, 7),
        ),
        (
            "fractional ttl",
            dns("example.com", www, "ttl = \"1500ms\"\n"),
            "whole number",
            (13, 7),
        ),
        (
            "zero timeout",
            dns("example.com", www, "timeout = \"0s\"\n"),
            "zero",
            (13, 11),
        ),
        (
            "bad server",
            dns("example.com", www, "").replace("192.0.2.53", "dns.example.com"),
            "not an IPv4 address",
            (9, 10),
        ),
        (
            "unspecified server",
            dns("example.com", www, "").replace("192.0.2.53", "0.0.0.0"),
            "not a server's address",
            (9, 10),
        ),
        (
            "unknown key",
            dns("example.com", www, "tll = \"30s\"\n"),
            "unknown field",
            (13, 1),
        ),
    ];
    assert_each_located(&cases);
}
