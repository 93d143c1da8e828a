//! The operator's override, kept across restarts: `<state_dir>/override.json`, holding
//! `{"uplink": "lte", "until": ...}`. Written to a temporary file and renamed over the old
//! one, so a crash leaves the old override or the new one, never half a file. `until` is wall
//! clock time (it must mean the same after a restart); [`until_instant`] and
//! [`until_system_time`] convert to and from the policy's monotonic clock.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::UplinkConfig;

const FILE: &str = "override.json";

/// The saved form of a [`crate::policy::Override`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOverride {
    pub uplink: String,
    pub until: Option<SystemTime>,
}

/// What [`OverrideStore::load`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    None,
    Restored(SavedOverride),
    /// Found but not usable (expired, unknown uplink, unreadable); the file is deleted.
    Dropped {
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct OverrideStore {
    path: PathBuf,
}

impl OverrideStore {
    #[must_use]
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn save(&self, saved: &SavedOverride) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let temp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(saved).map_err(io::Error::other)?;
        {
            let file = fs::File::create(&temp)?;
            io::Write::write_all(&mut &file, &json)?;
            file.sync_all()?;
        }
        fs::rename(&temp, &self.path)
    }

    /// Forgets the override (`auto`); no file is fine.
    pub fn clear(&self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads the saved override at start-up; drops (and deletes) one that has expired by
    /// `wall_now` or names an uplink the config no longer has.
    pub fn load(&self, uplinks: &[UplinkConfig], wall_now: SystemTime) -> io::Result<Loaded> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::None),
            Err(e) => return Err(e),
        };
        let reason = match serde_json::from_slice::<SavedOverride>(&text) {
            Err(e) => format!("{} is unreadable: {e}", self.path.display()),
            Ok(saved) if !uplinks.iter().any(|u| u.name == saved.uplink) => {
                format!(
                    "override names uplink `{}`, which is not configured",
                    saved.uplink
                )
            }
            Ok(SavedOverride {
                uplink,
                until: Some(until),
            }) if until <= wall_now => format!("override of `{uplink}` expired while stopped"),
            Ok(saved) => return Ok(Loaded::Restored(saved)),
        };
        self.clear()?;
        Ok(Loaded::Dropped { reason })
    }
}

/// The monotonic instant of a wall-clock `until` (now, if it has passed).
#[must_use]
pub fn until_instant(until: SystemTime, wall_now: SystemTime, now: Instant) -> Instant {
    now + until.duration_since(wall_now).unwrap_or_default()
}

/// The wall-clock time of a monotonic `until`, for saving.
#[must_use]
pub fn until_system_time(until: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    wall_now + until.saturating_duration_since(now)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use tokio::time::Instant;

    use super::{Loaded, OverrideStore, SavedOverride, until_instant, until_system_time};
    use crate::{policy::Policy, sim::fiber_and_lte};

    /// A state dir of this test's own, removed at the end.
    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("failover-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn saved(uplink: &str, until: Option<SystemTime>) -> SavedOverride {
        SavedOverride {
            uplink: uplink.to_owned(),
            until,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_override_survives_a_restart_and_auto_deletes_it() {
        let dir = Dir::new("restart");
        let config = fiber_and_lte();
        let store = OverrideStore::new(&dir.0);
        let wall = SystemTime::now();
        assert_eq!(store.load(&config.uplinks, wall).unwrap(), Loaded::None);

        let until = wall + Duration::from_mins(10);
        store.save(&saved("lte", Some(until))).unwrap();
        store.save(&saved("lte", Some(until))).unwrap();
        assert!(!store.path().with_extension("json.tmp").exists());

        // "Restart": a new policy restores it from the file, 100 s later.
        let wall = wall + Duration::from_secs(100);
        let Loaded::Restored(restored) = store.load(&config.uplinks, wall).unwrap() else {
            panic!("restored");
        };
        assert_eq!(restored, saved("lte", Some(until)));
        let now = Instant::now();
        let deadline = until_instant(until, wall, now);
        assert_eq!(deadline, now + Duration::from_secs(500));
        assert_eq!(until_system_time(deadline, now, wall), until);
        let mut policy = Policy::new(&config.health, &config.uplinks, now);
        policy.switch(&restored.uplink, Some(deadline)).unwrap();
        let decision = policy.decide(&[crate::health::State::Up; 2], now);
        assert_eq!((decision.active, decision.forced), (1, true));

        store.clear().unwrap();
        store.clear().unwrap();
        assert_eq!(store.load(&config.uplinks, wall).unwrap(), Loaded::None);
    }

    #[test]
    fn expired_unknown_or_garbled_overrides_are_dropped_with_a_reason() {
        let dir = Dir::new("dropped");
        let config = fiber_and_lte();
        let store = OverrideStore::new(&dir.0);
        let wall = SystemTime::now();
        let cases = [
            (saved("lte", Some(wall - Duration::from_secs(1))), "expired"),
            (saved("dsl", None), "`dsl`, which is not configured"),
        ];
        for (override_, reason) in cases {
            store.save(&override_).unwrap();
            match store.load(&config.uplinks, wall).unwrap() {
                Loaded::Dropped { reason: why } => assert!(why.contains(reason), "{why}"),
                other => panic!("{other:?}"),
            }
            assert!(!store.path().exists(), "dropped and deleted");
        }
        std::fs::write(store.path(), "{").unwrap();
        assert!(matches!(
            store.load(&config.uplinks, wall).unwrap(),
            Loaded::Dropped { reason } if reason.contains("unreadable")
        ));
        store.save(&saved("fiber", None)).unwrap();
        assert_eq!(
            store.load(&config.uplinks, wall).unwrap(),
            Loaded::Restored(saved("fiber", None))
        );
    }
}
