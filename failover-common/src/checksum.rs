//! Incremental Internet checksum updates (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`).
//! The data plane rewrites addresses and ports in place and patches each checksum with these,
//! instead of summing whole packets; the tests check the result against a full recomputation.

/// Folds a 32-bit one's-complement accumulator to 16 bits.
#[must_use]
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "two folds leave at most 16 bits"
)]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Checksum `check` after a 16-bit word of the covered data changed from `old` to `new`.
/// All values in the same byte order (the identity holds in either order).
#[must_use]
#[inline(always)]
pub const fn replace_u16(check: u16, old: u16, new: u16) -> u16 {
    !fold(!check as u32 + !old as u32 + new as u32)
}

/// Checksum `check` after a 32-bit field (an address) changed from `old` to `new`, both as the
/// bytes on the wire.
#[must_use]
#[inline(always)]
pub const fn replace_addr(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let check = replace_u16(
        check,
        u16::from_ne_bytes([old[0], old[1]]),
        u16::from_ne_bytes([new[0], new[1]]),
    );
    replace_u16(
        check,
        u16::from_ne_bytes([old[2], old[3]]),
        u16::from_ne_bytes([new[2], new[3]]),
    )
}

/// UDP over IPv4: a zero checksum means "none" and must stay zero; a computed zero is sent
/// as 0xffff (RFC 768).
#[must_use]
#[inline(always)]
pub const fn udp_replace_addr(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    if check == 0 {
        return 0;
    }
    nonzero(replace_addr(check, old, new))
}

/// See [`udp_replace_addr`].
#[must_use]
#[inline(always)]
pub const fn udp_replace_u16(check: u16, old: u16, new: u16) -> u16 {
    if check == 0 {
        return 0;
    }
    nonzero(replace_u16(check, old, new))
}

#[inline(always)]
const fn nonzero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full RFC 1071 checksum of big-endian 16-bit words, for comparison.
    fn full(words: &[u16]) -> u16 {
        let sum: u32 = words.iter().map(|w| u32::from(*w)).sum();
        !fold(sum)
    }

    #[test]
    fn incremental_update_matches_full_recomputation() {
        let mut words = [
            0x4500, 0x0054, 0x1c46, 0x4000, 0x4001, 0x0000, 0x0a0a, 0x000b, 0xcb00, 0x710a,
        ];
        let check = full(&words);
        for (i, new) in [(6, 0xc000u16), (7, 0x0202), (2, 0xffff), (4, 0x3f01)] {
            let before = full(&words);
            let old = words[i];
            words[i] = new;
            let want = full(&words);
            assert_eq!(replace_u16(before, old, new), want, "word {i}");
        }
        let _ = check;
    }

    #[test]
    fn address_update_matches_full_recomputation() {
        let old = [10, 10, 0, 11];
        let new = [192, 0, 2, 2];
        let words = |a: [u8; 4]| {
            [
                0x4500,
                0x0054,
                u16::from_be_bytes([a[0], a[1]]),
                u16::from_be_bytes([a[2], a[3]]),
            ]
        };
        let before = full(&words(old));
        let after = full(&words(new));
        // The data plane works on the checksum as stored (big-endian bytes read natively).
        let stored = u16::from_ne_bytes(before.to_be_bytes());
        let updated = replace_addr(stored, old, new);
        assert_eq!(updated.to_ne_bytes(), after.to_be_bytes());
    }

    #[test]
    fn udp_zero_checksum_stays_zero_and_computed_zero_becomes_ffff() {
        assert_eq!(udp_replace_addr(0, [1, 2, 3, 4], [5, 6, 7, 8]), 0);
        assert_eq!(udp_replace_u16(0, 1, 2), 0);
        // Choose a change that makes the plain result zero.
        let check = 0xfffe;
        assert_eq!(replace_u16(check, 0x0000, 0xfffe), 0x0000);
        assert_eq!(udp_replace_u16(check, 0x0000, 0xfffe), 0xffff);
    }
}
