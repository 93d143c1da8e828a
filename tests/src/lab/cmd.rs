//! Running the real tools (ip, nft, ethtool, ping, curl) with bounded time and errors that
//! name the command, so a failed lab step says exactly what went wrong.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long any one command may run unless the caller says otherwise; no lab step takes
/// more than a fraction of this, so hitting it means something hangs.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A command line to run, optionally inside a namespace and with text on stdin.
#[derive(Clone, Debug)]
pub struct Cmd {
    argv: Vec<String>,
    stdin: Option<String>,
    timeout: Duration,
}

/// What a finished command printed, and how it exited.
#[derive(Clone, Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    #[must_use]
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout and stderr together, for matching messages that tools print on either.
    #[must_use]
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Cmd {
    #[must_use]
    pub fn new(program: &str) -> Self {
        Self {
            argv: vec![program.to_owned()],
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `ip -n NS ...`: iproute2 enters the namespace itself, cheaper than `ip netns exec`.
    #[must_use]
    pub fn ip(ns: &str) -> Self {
        Self::new("ip").args(["-n", ns])
    }

    /// `ip netns exec NS PROGRAM ...`
    #[must_use]
    pub fn in_ns(ns: &str, program: &str) -> Self {
        Self::new("ip").args(["netns", "exec", ns, program])
    }

    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.argv.push(arg.into());
        self
    }

    #[must_use]
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `std` command, for callers that spawn long-running processes themselves.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.argv[0]);
        command.args(&self.argv[1..]);
        command
    }

    /// Runs to completion and returns what it printed, whatever its exit status; fails only
    /// when it cannot start or outlives its timeout (then it is killed).
    pub fn output(&self) -> Result<Captured> {
        let mut child = self
            .command()
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{self}`"))?;
        if let (Some(text), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .with_context(|| format!("writing stdin of `{self}`"))?;
        }
        // Read both pipes on their own threads so a chatty command cannot block on a full pipe.
        let stdout = read_on_thread(child.stdout.take());
        let stderr = read_on_thread(child.stderr.take());
        let status = self.wait_bounded(&mut child)?;
        Ok(Captured {
            status,
            stdout: join_reader(stdout),
            stderr: join_reader(stderr),
        })
    }

    /// Runs to completion and returns stdout; a non-zero exit is an error that names the
    /// command and quotes its stderr.
    pub fn run(&self) -> Result<String> {
        let out = self.output()?;
        if !out.success() {
            let detail = out.stderr.trim();
            let detail = if detail.is_empty() {
                out.stdout.trim()
            } else {
                detail
            };
            bail!("`{self}` failed ({}): {detail}", out.status);
        }
        Ok(out.stdout)
    }

    /// Waits with a short, growing poll interval (fast commands cost ~1 ms extra) and kills
    /// the child at the deadline.
    fn wait_bounded(&self, child: &mut Child) -> Result<ExitStatus> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("waiting for `{self}`"))?
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                // Kill and reap; a failure here only means it exited in the meantime.
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`{self}` did not finish within {:?} and was killed",
                    self.timeout
                );
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl fmt::Display for Cmd {
    /// Shell-like, quoting arguments with spaces, so the command can be pasted to retry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.argv.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            if arg.is_empty() || arg.contains([' ', '"', '{', '}', ';']) {
                write!(f, "{sep}'{arg}'")?;
            } else {
                write!(f, "{sep}{arg}")?;
            }
        }
        if self.stdin.is_some() {
            f.write_str(" <<stdin")?;
        }
        Ok(())
    }
}

fn read_on_thread(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error leaves what was read so far; the exit status tells the rest.
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_reader(handle: thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_and_names_the_failed_command() {
        assert_eq!(Cmd::new("echo").arg("hi").run().unwrap(), "hi\n");
        assert_eq!(Cmd::new("cat").stdin("piped").run().unwrap(), "piped");
        let err = Cmd::new("sh")
            .args(["-c", "echo oops >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sh -c 'echo oops >&2; exit 3'") && msg.contains("oops"),
            "{msg}"
        );
    }

    #[test]
    fn a_hanging_command_is_killed_at_its_timeout() {
        let start = Instant::now();
        let err = Cmd::new("sleep")
            .arg("10")
            .timeout(Duration::from_millis(200))
            .output();
        assert!(err.is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
