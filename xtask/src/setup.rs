//! `cargo xtask setup`: checks for what the build and the tests need and installs what is
//! missing, saying what and why. Idempotent; when everything is present it only runs a few
//! quick queries (`dpkg-query`, `bpf-linker --version`, `rustc -vV`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

/// How much to say when nothing needs installing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print every check (for `cargo xtask setup`).
    Report,
    /// Print only what gets installed (before tests and the demo).
    Quiet,
}

/// Debian packages and why the project needs each one.
const PACKAGES: &[(&str, &str)] = &[
    (
        "rustc-web",
        "Rust 1.96 whose compiler matches rust-web-src: builds the eBPF crate's core",
    ),
    (
        "cargo-web",
        "cargo of the same Rust 1.96 release, run by aya-build for the eBPF crate",
    ),
    (
        "rust-web-src",
        "the core library sources that the eBPF build compiles (-Z build-std=core)",
    ),
    (
        "rust-web-clippy",
        "lints the eBPF crate with the same Rust 1.96",
    ),
    (
        "llvm-22-dev",
        "LLVM 22, the LLVM of Debian's rustc, which bpf-linker links against",
    ),
    (
        "bpftool",
        "inspects the data plane's maps; the verifier-budget test loads programs with it",
    ),
    (
        "iproute2",
        "ip: network namespaces, veth links and routes of the lab",
    ),
    (
        "iputils-ping",
        "ping: ICMP reachability checks in the lab tests",
    ),
    (
        "nftables",
        "nft: lab faults (silent gateway, loss) and the kernel masquerade baseline",
    ),
    (
        "ethtool",
        "enables GRO on veth peers so XDP-redirected frames are delivered",
    ),
    ("nginx-light", "the lab internet host's HTTP server"),
    ("socat", "the lab internet host's UDP echo service"),
    (
        "dnsmasq-base",
        "the lab internet host's DNS server (the binary only: `dnsmasq` would also start a system resolver)",
    ),
    (
        "knot",
        "the lab internet host's authoritative DNS server, which takes the RFC 2136 updates of `[dns]`",
    ),
    (
        "knot-dnsutils",
        "kdig: the lab internet client's DNS queries for the updated records",
    ),
    ("curl", "HTTP downloads from LAN hosts in the lab tests"),
    (
        "tcpdump",
        "packet captures at the lab ISPs: the proof that no LAN source leaks",
    ),
    (
        "traceroute",
        "traceroute through the router in the lab tests",
    ),
    (
        "wireguard-go",
        "the lab's WireGuard uplink (this kernel may have no WireGuard module)",
    ),
    (
        "wireguard-tools",
        "`wg`: keys and peers of the lab's WireGuard uplink",
    ),
];

/// Oldest Debian Rust that builds aya-ebpf 0.2.1 (its rust-version).
const MIN_EBPF_RUST: (u32, u32) = (1, 87);
/// LLVM major version shared by Debian's rustc-web and bpf-linker.
const LLVM_MAJOR: u32 = 22;
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_FS: &str = "/sys/fs/bpf";

pub fn ensure(mode: Mode) -> anyhow::Result<()> {
    let root = failover_tests::privilege::is_root();
    ensure_packages(mode, root)?;
    ensure_ebpf_rust(mode, root)?;
    ensure_bpf_linker(mode)?;
    if root {
        ensure_bpffs(mode)?;
    }
    if mode == Mode::Report {
        println!("setup: everything the build and the tests need is present");
    }
    Ok(())
}

fn ensure_packages(mode: Mode, root: bool) -> anyhow::Result<()> {
    let missing = missing_packages()?;
    if missing.is_empty() {
        if mode == Mode::Report {
            println!(
                "setup: Debian packages present ({} checked)",
                PACKAGES.len()
            );
        }
        return Ok(());
    }
    for (name, why) in PACKAGES.iter().filter(|(name, _)| missing.contains(name)) {
        println!("setup: installing {name}: {why}");
    }
    if !root {
        bail!(
            "missing Debian packages: {}. Run as root: apt-get install --no-install-recommends {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    apt_install(&missing, false)
}

/// Packages of [`PACKAGES`] that dpkg does not report as installed.
fn missing_packages() -> anyhow::Result<Vec<&'static str>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${db:Status-Status}\n"])
        .args(PACKAGES.iter().map(|(name, _)| name))
        .output()
        .context("running dpkg-query (is this a Debian system?)")?;
    // dpkg-query exits 1 when a package is unknown; its stdout still lists the known ones.
    let listing = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.strip_suffix(" installed"))
        .collect();
    Ok(PACKAGES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !installed.contains(name))
        .collect())
}

/// Refreshes the package lists first: a stale list offers an old rustc-web (bookworm main has
/// 1.85), while bookworm-security carries the release the eBPF build needs.
fn apt_install(packages: &[&str], only_upgrade: bool) -> anyhow::Result<()> {
    println!("setup: apt-get update");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    let mut install = Command::new("apt-get");
    install.env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
    ]);
    if only_upgrade {
        install.arg("--only-upgrade");
    }
    run(install.args(packages))
}

/// Debian's rustc must be new enough for aya-ebpf and built on the LLVM bpf-linker uses.
fn ensure_ebpf_rust(mode: Mode, root: bool) -> anyhow::Result<()> {
    let (version, llvm) = debian_rustc_versions()?;
    if version < MIN_EBPF_RUST {
        println!(
            "setup: upgrading rustc-web, cargo-web, rust-web-src: /usr/bin/rustc is {}.{}, the eBPF build needs >= {}.{}",
            version.0, version.1, MIN_EBPF_RUST.0, MIN_EBPF_RUST.1
        );
        ensure!(
            root,
            "run `cargo xtask setup` as root to upgrade Debian's rustc-web"
        );
        apt_install(
            &["rustc-web", "cargo-web", "rust-web-src", "rust-web-clippy"],
            true,
        )?;
        return ensure_ebpf_rust(mode, false);
    }
    ensure!(
        llvm == LLVM_MAJOR,
        "/usr/bin/rustc uses LLVM {llvm}, but bpf-linker is built for LLVM {LLVM_MAJOR}: \
         update LLVM_MAJOR and the llvm-NN-dev package in xtask/src/setup.rs"
    );
    if mode == Mode::Report {
        println!(
            "setup: eBPF Rust /usr/bin/rustc {}.{} on LLVM {llvm}",
            version.0, version.1
        );
    }
    Ok(())
}

/// ((major, minor), LLVM major) of `/usr/bin/rustc`.
fn debian_rustc_versions() -> anyhow::Result<((u32, u32), u32)> {
    let out = Command::new("/usr/bin/rustc")
        .arg("-vV")
        .output()
        .context("running /usr/bin/rustc -vV")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .with_context(|| format!("no `{name}` in /usr/bin/rustc -vV output"))
    };
    let numbers =
        |s: &str| -> Vec<u32> { s.split(['.', '-']).map_while(|p| p.parse().ok()).collect() };
    let release = numbers(field("release:")?);
    let llvm = numbers(field("LLVM version:")?);
    match (release.as_slice(), llvm.first()) {
        ([major, minor, ..], Some(llvm)) => Ok(((*major, *minor), *llvm)),
        _ => bail!("cannot read versions from /usr/bin/rustc -vV:\n{text}"),
    }
}

fn ensure_bpf_linker(mode: Mode) -> anyhow::Result<()> {
    let found = bpf_linker_version();
    if found.as_deref() == Some(BPF_LINKER_VERSION) {
        if mode == Mode::Report {
            println!("setup: bpf-linker {BPF_LINKER_VERSION} present");
        }
        return Ok(());
    }
    println!(
        "setup: installing bpf-linker {BPF_LINKER_VERSION} (found: {}): links the eBPF crate; \
         built against Debian's LLVM {LLVM_MAJOR}, about a minute",
        found.as_deref().unwrap_or("none")
    );
    run(Command::new("cargo")
        .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM_MAJOR}"))
        .args(["install", "--locked", "--force", "--no-default-features"])
        .args(["--features", &format!("llvm-{LLVM_MAJOR}")])
        .arg(format!("bpf-linker@{BPF_LINKER_VERSION}")))?;
    ensure!(
        bpf_linker_version().as_deref() == Some(BPF_LINKER_VERSION),
        "bpf-linker {BPF_LINKER_VERSION} was installed but is not the one on PATH: put {} first in PATH",
        cargo_bin_dir().display()
    );
    Ok(())
}

/// Version printed by the `bpf-linker` that rustc will find on PATH.
fn bpf_linker_version() -> Option<String> {
    let out = Command::new("bpf-linker").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}

/// The data plane pins its maps under the BPF filesystem.
fn ensure_bpffs(mode: Mode) -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPF_FS) && fields.get(2) == Some(&"bpf")
    });
    if mounted {
        if mode == Mode::Report {
            println!("setup: BPF filesystem mounted at {BPF_FS}");
        }
        return Ok(());
    }
    println!("setup: mounting the BPF filesystem at {BPF_FS}: the data plane pins its maps there");
    run(Command::new("mount").args(["-t", "bpf", "bpf", BPF_FS]))
}

/// Runs a command, streaming its output, and fails with the command line if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let line = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    ensure!(status.success(), "{line} failed ({status})");
    Ok(())
}
