//! `cargo xtask bench failover`: builds the `failover` binary, then runs the bench runner
//! (example `bench_failover` of the tests crate, release) with it in `FAILOVER_BIN`.

use std::process::Command;

pub fn run(json: bool, trials: Option<u32>) -> anyhow::Result<()> {
    eprintln!("bench: building the failover binary (cargo build -p failover-user)");
    let bin = crate::failover_bin::build()?;
    let mut args: Vec<String> = Vec::new();
    if json {
        args.push("--json".to_owned());
    }
    if let Some(trials) = trials {
        args.extend(["--trials".to_owned(), trials.to_string()]);
    }
    eprintln!(
        "bench: building and starting the runner (cargo run --release, example bench_failover)"
    );
    let mut command = Command::new(env!("CARGO"));
    command
        .env(crate::failover_bin::ENV, bin)
        .args(["run", "--quiet", "--release", "-p", "failover-tests"])
        .args(["--example", "bench_failover", "--"])
        .args(&args);
    crate::bench::exec(&mut command)
}
