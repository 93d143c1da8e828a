//! `cargo xtask bench failover`: builds the `failover` binary, then runs the bench runner
//! (example `bench_failover` of the tests crate, release) with it in `FAILOVER_BIN`.

pub fn run(json: bool, trials: Option<u32>) -> anyhow::Result<()> {
    let mut args: Vec<String> = Vec::new();
    if json {
        args.push("--json".to_owned());
    }
    if let Some(trials) = trials {
        args.extend(["--trials".to_owned(), trials.to_string()]);
    }
    crate::failover_bin::exec_example("bench_failover", &args)
}
