//! Block and inode bitmaps: one block per group, bit i set = item i in use.

/// Is bit `i` set? Out-of-range bits read as set (in use), so a scan can never
/// hand out something beyond the bitmap.
pub fn test(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_none_or(|b| b & (1 << (i % 8)) != 0)
}

pub fn set(bits: &mut [u8], i: usize) {
    bits[i / 8] |= 1 << (i % 8);
}

pub fn clear(bits: &mut [u8], i: usize) {
    bits[i / 8] &= !(1 << (i % 8));
}

/// First clear bit in `start..end`, then wrapping around to `0..start`.
pub fn find_clear(bits: &[u8], start: usize, end: usize) -> Option<usize> {
    let end = end.min(bits.len() * 8);
    let start = start.min(end);
    first_clear(bits, start, end).or_else(|| first_clear(bits, 0, start))
}

/// First clear bit in `from..to`. Whole 64-bit words are tested at once:
/// an allocator scans past every used item of its group on each call (the
/// kernel's find_next_zero_bit does the same), and a group of a full
/// directory has tens of thousands of them.
fn first_clear(bits: &[u8], from: usize, to: usize) -> Option<usize> {
    let mut i = from;
    while i < to {
        if i.is_multiple_of(64) && i + 64 <= to {
            let word: [u8; 8] = bits[i / 8..i / 8 + 8].try_into().expect("8 bytes");
            // Bit k of the little-endian word is bit k % 8 of byte k / 8.
            let word = u64::from_le_bytes(word);
            if word == u64::MAX {
                i += 64;
                continue;
            }
            return Some(i + word.trailing_ones() as usize);
        }
        if !test(bits, i) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Number of set bits among the first `n`.
pub fn count_set(bits: &[u8], n: usize) -> usize {
    let full = n / 8;
    let mut c: usize = bits[..full].iter().map(|b| b.count_ones() as usize).sum();
    for i in full * 8..n {
        if test(bits, i) {
            c += 1;
        }
    }
    c
}

/// Set bits `from..` to the end of the bitmap block: e2fsck expects the bits
/// past the last real item to be set ("padding").
pub fn set_padding(bits: &mut [u8], from: usize) {
    for i in from..bits.len() * 8 {
        set(bits, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_count() {
        let mut b = vec![0u8; 4];
        for i in 0..20 {
            set(&mut b, i);
        }
        assert_eq!(find_clear(&b, 0, 32), Some(20));
        assert_eq!(find_clear(&b, 25, 32), Some(25));
        set_padding(&mut b, 21);
        assert_eq!(find_clear(&b, 22, 32), Some(20));
        clear(&mut b, 3);
        assert_eq!(find_clear(&b, 0, 32), Some(3));
        assert_eq!(count_set(&b, 21), 19);
        assert!(test(&b, 1000));
    }

    /// The word-at-a-time scan finds what a bit-by-bit one finds, at any
    /// alignment of start and end.
    #[test]
    fn find_clear_matches_a_bit_by_bit_scan() {
        let naive = |b: &[u8], start: usize, end: usize| {
            let end = end.min(b.len() * 8);
            let start = start.min(end);
            (start..end).chain(0..start).find(|&i| !test(b, i))
        };
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = 1 + (next() % 40) as usize;
            // Mostly full bitmaps, as an allocator meets them.
            let b: Vec<u8> = (0..len)
                .map(|_| if next() % 4 == 0 { next() as u8 } else { 0xff })
                .collect();
            let end = (next() % (len as u64 * 8 + 16)) as usize;
            let start = (next() % (end as u64 + 1)) as usize;
            assert_eq!(
                find_clear(&b, start, end),
                naive(&b, start, end),
                "{b:?} {start} {end}"
            );
        }
    }
}
