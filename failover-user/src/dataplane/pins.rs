//! The data plane's pins under the BPF filesystem: every map by name, and one link per
//! attached program (`link_<program>_<interface>`), so the data plane keeps forwarding with its
//! NAT table when the controller stops, and a restarted controller adopts it.
//!
//! A directory `object-<hash>` records which build of the data plane made the pins: a
//! controller built with another data plane refuses to adopt them (their layout may differ)
//! and says how to start afresh.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::programs::links::{FdLink, PinnedLink};
use sha2::{Digest as _, Sha256};

use crate::dataplane::EBPF_OBJECT;

/// Errors handling the pins.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "{dir} holds a data plane built by another version of failover (its maps may be laid out \
         differently); run `failover detach` to remove it (this drops the NAT table), then start again"
    )]
    OtherBuild { dir: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{dir} is not on a BPF filesystem, so nothing can be pinned there; mount one \
         (`mount -t bpf bpf /sys/fs/bpf`) or set `pin_dir` (note that `ip netns exec` hides \
         /sys/fs/bpf)"
    )]
    NotBpfFs { dir: PathBuf },
    #[error("pinning the link of {program} on {interface}: {message}")]
    Link {
        program: &'static str,
        interface: String,
        message: String,
    },
}

/// The pin directory of one data plane.
#[derive(Clone, Debug)]
pub struct Pins {
    dir: PathBuf,
}

impl Pins {
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    #[must_use]
    pub fn link(&self, program: &str, interface: &str) -> PathBuf {
        self.dir.join(format!("link_{program}_{interface}"))
    }

    fn marker(&self) -> PathBuf {
        self.dir.join(format!("object-{}", object_hash()))
    }

    /// Whether a data plane of this build is pinned here with all of `links` (program,
    /// interface) attached; an error when another build's pins are in the way.
    pub fn adoptable(&self, links: &[(&'static str, String)]) -> Result<bool, PinError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(PinError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut any = false;
        for entry in entries.flatten() {
            any = true;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("object-") && entry.path() != self.marker() {
                return Err(PinError::OtherBuild {
                    dir: self.dir.clone(),
                });
            }
        }
        if !any {
            return Ok(false);
        }
        if !self.marker().exists() {
            return Err(PinError::OtherBuild {
                dir: self.dir.clone(),
            });
        }
        Ok(links
            .iter()
            .all(|(program, interface)| self.link(program, interface).exists()))
    }

    /// Creates the directory and the build marker (the maps pin themselves as they are
    /// created).
    pub fn prepare(&self) -> Result<(), PinError> {
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        if !on_bpf_fs(parent) {
            return Err(PinError::NotBpfFs {
                dir: self.dir.clone(),
            });
        }
        let marker = self.marker();
        std::fs::create_dir_all(&marker).map_err(|source| PinError::Io {
            path: marker,
            source,
        })
    }

    /// Pins an attached program's link, so it stays attached after the controller exits.
    pub fn pin_link(
        &self,
        link: FdLink,
        program: &'static str,
        interface: &str,
    ) -> Result<(), PinError> {
        let path = self.link(program, interface);
        let _ = std::fs::remove_file(&path);
        link.pin(&path).map_err(|e| PinError::Link {
            program,
            interface: interface.to_owned(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// Removes every pin: links first (their programs detach once no one holds them), then
    /// maps (freed with the last program using them), then the directory.
    pub fn remove_all(&self) -> Result<(), PinError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(PinError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        // Links before maps.
        paths.sort_by_key(|p| !is_link(p));
        for path in paths {
            let result = if is_link(&path) {
                // Unpinning through the link drops the last reference to it at once; a pin
                // that is no link any more is just removed.
                match PinnedLink::from_pin(&path) {
                    Ok(link) => link.unpin().map(drop),
                    Err(_) => std::fs::remove_file(&path),
                }
            } else if path.is_dir() {
                std::fs::remove_dir(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|source| PinError::Io {
                path: path.clone(),
                source,
            })?;
        }
        std::fs::remove_dir(&self.dir).map_err(|source| PinError::Io {
            path: self.dir.clone(),
            source,
        })
    }
}

/// Whether `path` is on a BPF filesystem (`BPF_FS_MAGIC`).
fn on_bpf_fs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer of the right type for the kernel to fill.
    if unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: statfs returned 0, so it filled the buffer.
    let stat = unsafe { stat.assume_init() };
    #[allow(
        clippy::useless_conversion,
        reason = "f_type is an i64 on 64-bit Linux, narrower elsewhere"
    )]
    let kind = i64::from(stat.f_type);
    kind == BPF_FS_MAGIC
}

fn is_link(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
}

/// The first 16 hex digits of the data plane object's SHA-256.
fn object_hash() -> String {
    use std::fmt::Write as _;
    Sha256::digest(EBPF_OBJECT)
        .iter()
        .take(8)
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pins' bookkeeping on an ordinary directory (bpffs is only needed for real pins).
    fn scratch(name: &str) -> Pins {
        let dir = std::env::temp_dir().join(format!("fo-pins-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Pins::new(&dir)
    }

    fn touch(path: &Path) {
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn adopts_only_a_whole_data_plane_of_this_build() {
        let pins = scratch("adopt");
        let wanted = [
            ("fo_lan_ingress", "lan0".to_owned()),
            ("fo_wan_ingress", "eth1".to_owned()),
        ];
        assert!(!pins.adoptable(&wanted).unwrap(), "nothing pinned");
        let refused = pins.prepare().unwrap_err();
        assert!(matches!(refused, PinError::NotBpfFs { .. }), "{refused}");
        std::fs::create_dir_all(pins.marker()).unwrap();
        touch(&pins.map("fo_flows"));
        touch(&pins.link("fo_lan_ingress", "lan0"));
        assert!(!pins.adoptable(&wanted).unwrap(), "a link is missing");
        touch(&pins.link("fo_wan_ingress", "eth1"));
        assert!(pins.adoptable(&wanted).unwrap());
        pins.remove_all().unwrap();
        assert!(!pins.dir().exists(), "everything removed");
    }

    #[test]
    fn refuses_pins_of_another_build() {
        let pins = scratch("other");
        std::fs::create_dir_all(pins.dir().join("object-0000000000000000")).unwrap();
        touch(&pins.map("fo_flows"));
        let error = pins.adoptable(&[]).unwrap_err();
        assert!(matches!(error, PinError::OtherBuild { .. }), "{error}");
        assert!(error.to_string().contains("failover detach"));
        pins.remove_all().unwrap();
    }
}
