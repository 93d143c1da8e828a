//! `cargo xtask demo`: the product in one command (for now: the lab and its faults).
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("demo: not written yet")
}
