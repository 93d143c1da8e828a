//! One controller per router: `failover run` holds an exclusive lock on a file in its state
//! directory for its whole life, so a second one (a manual `cargo xtask run` beside the
//! systemd service) refuses to start instead of taking over the first one's socket and data
//! plane. The kernel drops the lock with the process, even after `kill -9`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};

/// The lock file's name in the state directory; it holds the owner's pid.
pub const LOCK_FILE: &str = "run.lock";

/// Takes the lock, or says who holds it. Keep the file open for as long as the lock is needed.
pub fn acquire(state_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let path = state_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            bail!(
                "another `failover run` is running ({}; it holds {}): stop it first \
                 (`systemctl stop failover`), or give this one another state_dir, pin_dir and socket",
                if owner.is_empty() {
                    "pid unknown".to_owned()
                } else {
                    format!("pid {owner}")
                },
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = std::env::temp_dir().join(format!("failover-lock-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = acquire(&dir).expect("the first controller takes the lock");
        let error = acquire(&dir).expect_err("a second one is refused");
        let message = format!("{error:#}");
        assert!(
            message.contains("another `failover run` is running"),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        let again = acquire(&dir).expect("free again once the first one is gone");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
