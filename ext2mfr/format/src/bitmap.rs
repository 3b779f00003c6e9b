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
    let scan = |from: usize, to: usize| -> Option<usize> {
        let mut i = from;
        while i < to {
            // Skip whole full bytes quickly.
            if i % 8 == 0 && i + 8 <= to && bits[i / 8] == 0xff {
                i += 8;
                continue;
            }
            if !test(bits, i) {
                return Some(i);
            }
            i += 1;
        }
        None
    };
    let start = start.min(end);
    scan(start, end).or_else(|| scan(0, start))
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
}
