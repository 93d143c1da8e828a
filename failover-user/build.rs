//! Builds the eBPF data plane (`failover-ebpf`) with Debian's Rust toolchain under `/usr`, whose
//! compiler and `core` sources match exactly (see docs/toolchain.md). User space stays on
//! rustup stable.

use anyhow::{Context as _, anyhow};

/// Toolchain that builds `core` for bpfel-unknown-none: Debian's rustc-web/cargo-web/rust-web-src.
const EBPF_TOOLCHAIN: &str = "/usr";

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR unset")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("failover-user has no parent directory"))?
        .join("failover-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    if !std::path::Path::new(EBPF_TOOLCHAIN)
        .join("bin/rustc")
        .exists()
    {
        return Err(anyhow!(
            "the eBPF toolchain is missing ({EBPF_TOOLCHAIN}/bin/rustc): run `cargo xtask setup`"
        ));
    }
    // aya-build passes `-Z build-std=core` only on a nightly channel or with RUSTC_BOOTSTRAP=1;
    // set here, it reaches only aya-build's nested cargo, not the outer stable build.
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "failover-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )
}
