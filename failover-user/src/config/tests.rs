use std::time::Duration;

use super::{
    ConfigError, DataplaneLog, FailbackMode, HealthConfig, Problem, Target, defaults, load, parse,
    parse_port_range,
};

const EXAMPLE: &str = include_str!("../../../docs/failover.example.toml");
/// The settings whose default is computed or absent, so the example shows a sample value.
const SAMPLE_VALUED: [&str; 7] = [
    "priority", "gateway", "targets", "mss", "quorum", "hook", "listen",
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
    let mut wrong = Vec::new();
    for (name, text, needle, at) in cases {
        let found = problems(&text);
        match &found[..] {
            [problem]
                if problem.message.contains(needle)
                    && !problem.hint.is_empty()
                    && (problem.line, problem.column) == at => {}
            _ => wrong.push(format!(
                "{name}: expected `{needle}` at {at:?}, got {found:#?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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
             ports 1024-32767, weight 1, failback keep, datapath auto"
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
