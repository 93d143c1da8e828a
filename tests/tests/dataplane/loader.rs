//! A start of the data plane that fails leaves nothing behind: a misspelt interface is found
//! before any map is pinned, and a failure after pinning (an interface whose XDP hook is
//! taken) removes the pins and the programs attached so far. Runs in the scratch namespace.

use std::path::PathBuf;

use aya::programs::XdpMode;
use failover_tests::{lab::Cmd, privilege::skip_unless_root};
use failover_user::{
    config::DataplaneLog,
    dataplane::{self, TableSizes},
    loader::{self, LoaderError, LoaderSpec, Running, UplinkSpec},
};

use crate::nat::in_scratch;
use crate::scratch_netns::{LAN_IF, NS};

/// The other end of the scratch namespace's LAN veth (`ScratchNetns::peer_ifindex`), used
/// here as an uplink.
const UPLINK_IF: &str = "lanpeer";

/// Small tables: these tests never forward a packet.
const TABLES: TableSizes = TableSizes {
    flows: 1024,
    bindings: 1024,
};

/// A pin directory of this test's own on the host's BPF filesystem, removed on creation (a
/// crashed run's) and on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new(name: &str) -> Self {
        let dir = Self(PathBuf::from(format!(
            "/sys/fs/bpf/failover-test-{name}-{}",
            std::process::id()
        )));
        dir.remove();
        dir
    }

    fn remove(&self) {
        let _ = failover_user::pins::Pins::new(&self.0).remove_all();
        let _ = std::fs::remove_dir_all(&self.0);
    }

    /// Nothing pinned: the directory is gone or empty.
    fn is_clean(&self) -> bool {
        std::fs::read_dir(&self.0).map_or(true, |mut entries| entries.next().is_none())
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        self.remove();
    }
}

fn spec(pins: &PinDir, uplink_interface: &str) -> LoaderSpec {
    LoaderSpec {
        dataplane_log: DataplaneLog::Off,
        pins: Some(pins.0.clone()),
        lan: LAN_IF.to_owned(),
        uplinks: vec![UplinkSpec {
            name: "wan".to_owned(),
            interface: uplink_interface.to_owned(),
            gateway: Some("192.0.2.1".parse().expect("address")),
            ports: (1024, 32767),
            mss: 0,
            datapath: failover_user::datapath::Mode::Auto,
        }],
        active: "wan".to_owned(),
        skb_mode: false,
        lan_datapath: failover_user::datapath::Mode::Auto,
        tables: TABLES,
    }
}

/// `loader::start` on the calling thread, which is in the scratch namespace.
fn start(spec: &LoaderSpec) -> Result<Running, LoaderError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(loader::start(spec))
}

fn has_xdp(interface: &str) -> bool {
    let shown = Cmd::ip(NS)
        .args(["link", "show", "dev", interface])
        .run()
        .expect("ip link show");
    shown.contains("xdp")
}

/// The leak guard's table in the scratch namespace, as `nft` lists it; `None` when absent.
fn guard_table() -> Option<String> {
    Cmd::in_ns(NS, "nft")
        .args(["list", "table", "ip", failover_common::names::NFT_TABLE])
        .run()
        .ok()
}

/// A start installs the leak guard (the kernel masquerades and drops nothing yet) for each
/// uplink; detaching removes it with the pins.
#[test]
fn a_start_installs_the_leak_guard_and_detach_removes_it() {
    if skip_unless_root("a_start_installs_the_leak_guard_and_detach_removes_it") {
        return;
    }
    let pins = PinDir::new("guard");
    in_scratch(|_| {
        let running = start(&spec(&pins, UPLINK_IF)).expect("starting the data plane");
        let table = guard_table().expect("the guard's table is installed");
        for rule in [
            format!("oifname \"{UPLINK_IF}\" ip saddr"),
            "masquerade to :61000-65535".to_owned(),
            "drop comment".to_owned(),
        ] {
            assert!(table.contains(&rule), "no `{rule}` in:\n{table}");
        }
        let counters = running
            .guard_counters()
            .expect("reading the guard's counters");
        assert_eq!(counters.len(), 2, "{counters:?}");
        assert!(
            counters
                .iter()
                .all(|c| c.interface == UPLINK_IF && c.packets == 0)
        );
        // A second start (a restart adopting the data plane) replaces the table, not adds.
        let again = start(&spec(&pins, UPLINK_IF)).expect("adopting the data plane");
        assert!(again.adopted);
        assert_eq!(again.guard_counters().expect("counters").len(), 2);
        drop(again);
        drop(running);
        assert!(
            guard_table().is_some(),
            "a pinned data plane keeps its guard"
        );
        loader::remove_dataplane(&failover_user::pins::Pins::new(&pins.0)).expect("detaching");
        assert_eq!(guard_table(), None, "detach removes the guard");
    });
}

#[test]
fn a_missing_interface_is_refused_before_anything_is_pinned() {
    if skip_unless_root("a_missing_interface_is_refused_before_anything_is_pinned") {
        return;
    }
    let pins = PinDir::new("missing");
    in_scratch(|_| {
        let error = start(&spec(&pins, "nope1"))
            .err()
            .expect("a missing uplink interface fails the start");
        assert!(error.to_string().contains("nope1"), "{error}");
        assert!(!pins.0.exists(), "nothing pinned at {}", pins.0.display());
        assert!(!has_xdp(LAN_IF), "no program attached to the LAN");
    });
}

#[test]
fn a_failed_attach_removes_the_pins_and_programs_of_the_start() {
    if skip_unless_root("a_failed_attach_removes_the_pins_and_programs_of_the_start") {
        return;
    }
    let pins = PinDir::new("taken");
    in_scratch(|scratch| {
        // Another program holds the uplink's XDP hook through a BPF link: ours cannot attach.
        let mut other = dataplane::open(TABLES).expect("opening a second data plane");
        dataplane::xdp_program(&mut other, failover_common::names::PROG_MAC_SWAP)
            .expect("loading the other program")
            .attach_to_if_index(scratch.peer_ifindex, XdpMode::Default)
            .expect("attaching the other program");
        assert!(has_xdp(UPLINK_IF));

        let error = start(&spec(&pins, UPLINK_IF))
            .err()
            .expect("attaching to a taken hook fails the start");
        assert!(
            matches!(error, LoaderError::Attach { .. }),
            "an attach error: {error}"
        );
        assert!(
            pins.is_clean(),
            "the failed start removed its pins: {:?}",
            std::fs::read_dir(&pins.0)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        assert!(
            !has_xdp(LAN_IF),
            "the program the failed start attached to the LAN is gone"
        );
        assert_eq!(
            guard_table(),
            None,
            "the failed start removed its leak guard"
        );
        drop(other);
        assert!(!has_xdp(UPLINK_IF));
    });
}
