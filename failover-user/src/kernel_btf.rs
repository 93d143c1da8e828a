//! What the data plane's tracepoint programs need to know of the running kernel's structures,
//! read from its BTF (`/sys/kernel/btf/vmlinux`): aya's eBPF side has no CO-RE, so the offset
//! is found here and handed to the programs as a load-time constant.

use std::sync::OnceLock;

use btf_rs::{Btf, Type};

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Byte offset of `ifindex` in `struct net_device`. The kernel's BTF (megabytes) is parsed
/// once per process: the loader and the tracepoint attachment both ask.
pub fn net_device_ifindex_offset() -> Result<u32, String> {
    static OFFSET: OnceLock<Result<u32, String>> = OnceLock::new();
    OFFSET.get_or_init(read_ifindex_offset).clone()
}

fn read_ifindex_offset() -> Result<u32, String> {
    let btf = Btf::from_file(VMLINUX).map_err(|e| format!("reading {VMLINUX}: {e}"))?;
    let types = btf
        .resolve_types_by_name("net_device")
        .map_err(|e| format!("no struct net_device in {VMLINUX}: {e}"))?;
    types
        .iter()
        .find_map(|t| match t {
            Type::Struct(s) => member_offset(&btf, s, "ifindex"),
            _ => None,
        })
        .and_then(|bits| u32::try_from(bits / 8).ok())
        .ok_or_else(|| format!("struct net_device in {VMLINUX} has no ifindex"))
}

/// Bit offset of `name` in `s`, looking inside anonymous structs and unions (the kernel's
/// `struct_group`s) as C does.
fn member_offset(btf: &Btf, s: &btf_rs::Struct, name: &str) -> Option<u64> {
    s.members.iter().find_map(|m| {
        let member_name = btf.resolve_name(m).ok()?;
        if member_name == name {
            return Some(u64::from(m.bit_offset()));
        }
        if !member_name.is_empty() {
            return None;
        }
        match btf.resolve_chained_type(m).ok()? {
            Type::Struct(inner) | Type::Union(inner) => {
                member_offset(btf, &inner, name).map(|o| o + u64::from(m.bit_offset()))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a kernel with BTF (every test machine), the offset is found and is not 0 (a
    /// `net_device` starts with its name and lists, never with its index).
    #[test]
    fn finds_the_ifindex_of_net_device() {
        if !std::path::Path::new(VMLINUX).exists() {
            println!("SKIPPED finds_the_ifindex_of_net_device: this kernel has no {VMLINUX}");
            return;
        }
        let offset = net_device_ifindex_offset().expect("the offset");
        assert!(offset > 0 && offset < 4096, "{offset}");
        assert_eq!(offset % 4, 0, "ifindex is an aligned int");
    }
}
