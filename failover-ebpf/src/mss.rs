//! TCP MSS clamping on SYN segments, for uplinks with a smaller path MTU (a 4G link).

use crate::{cursor::ptr_at, packet::word, program::Program, transport::Transport};

const TCP_HEADER_MIN: usize = 20;
/// Longest TCP options area (data offset 15 words).
const TCP_OPTIONS_MAX: usize = 40;
/// Options looked at before giving up on finding MSS.
const MAX_OPTIONS_SCANNED: usize = 8;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_MSS_LEN: u8 = 4;

/// Lowers the MSS option of a SYN (or SYN-ACK) to `mss` if it asks for more.
#[inline(always)]
pub fn clamp<P: Program>(ctx: &P, transport: &Transport, mss: u16, ip_end: usize) {
    let l4 = P::L4;
    let Ok(data_offset) = ptr_at::<u8, P>(ctx, l4 + 12) else {
        return;
    };
    // SAFETY: bounds checked by ptr_at.
    let header_len = usize::from(unsafe { *data_offset } >> 4) * 4;
    // Options end with the TCP header, and never run past the IPv4 packet (into a trailer).
    let end = (l4 + header_len).min(ip_end);
    let mut at = l4 + TCP_HEADER_MIN;
    // Real SYNs carry at most 6-7 options with MSS among the first (Linux, Windows, macOS
    // and BSD put it first); a few passes keep the verifier's work small.
    for _ in 0..MAX_OPTIONS_SCANNED {
        if at >= end || at >= l4 + TCP_HEADER_MIN + TCP_OPTIONS_MAX {
            return;
        }
        // Kind and length are read as one 2-byte window: a 1-byte read at a variable offset
        // compiles to a bounds check the verifier cannot follow. A NOP in the very last byte
        // of the frame ends the scan, which loses nothing: no MSS option can follow it.
        let Ok(option) = ptr_at::<[u8; 2], P>(ctx, at) else {
            return;
        };
        // SAFETY: bounds checked by ptr_at.
        let [kind, len] = unsafe { *option };
        if kind == OPT_END {
            return;
        }
        if kind == OPT_NOP {
            at += 1;
            continue;
        }
        if kind == OPT_MSS && len == OPT_MSS_LEN {
            // An option that runs past the header is not one.
            if at + usize::from(OPT_MSS_LEN) > end {
                return;
            }
            let Ok(value) = ptr_at::<[u8; 2], P>(ctx, at + 2) else {
                return;
            };
            // SAFETY: bounds checked by ptr_at.
            let value = unsafe { &mut *value };
            if u16::from_be_bytes(*value) > mss {
                let new = mss.to_be_bytes();
                let (mut old_word, mut new_word) = (word(*value), word(new));
                // At an odd offset the value straddles two checksum words, which sum its
                // bytes swapped (RFC 1071, 2(B)).
                if (at + 2 - l4) % 2 == 1 {
                    old_word = old_word.swap_bytes();
                    new_word = new_word.swap_bytes();
                }
                *value = new;
                ctx.patch_l4_word(
                    transport.check,
                    transport.check_at,
                    old_word,
                    new_word,
                    false,
                );
            }
            return;
        }
        if len < 2 {
            return;
        }
        at += usize::from(len);
    }
}
