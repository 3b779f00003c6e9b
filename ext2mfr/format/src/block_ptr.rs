//! Block pointers: how a file's logical block number maps onto `i_block`
//! (12 direct, then single, double and triple indirect trees).

use super::inode::{DIND_BLOCK, IND_BLOCK, N_DIRECT, TIND_BLOCK};

/// The path from the inode to a logical block: the `i_block` slot, then one
/// index per indirect level. `depth` is the number of indirect blocks on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPath {
    pub slot: usize,
    pub depth: usize,
    pub idx: [usize; 3],
}

/// Map logical block `lblk` to its path, or `None` past the triple indirect range.
pub fn block_path(lblk: u64, ptrs: u64) -> Option<BlockPath> {
    let mut l = lblk;
    if l < N_DIRECT as u64 {
        return Some(BlockPath {
            slot: l as usize,
            depth: 0,
            idx: [0; 3],
        });
    }
    l -= N_DIRECT as u64;
    if l < ptrs {
        return Some(BlockPath {
            slot: IND_BLOCK,
            depth: 1,
            idx: [l as usize, 0, 0],
        });
    }
    l -= ptrs;
    if l < ptrs * ptrs {
        return Some(BlockPath {
            slot: DIND_BLOCK,
            depth: 2,
            idx: [(l / ptrs) as usize, (l % ptrs) as usize, 0],
        });
    }
    l -= ptrs * ptrs;
    if l < ptrs * ptrs * ptrs {
        return Some(BlockPath {
            slot: TIND_BLOCK,
            depth: 3,
            idx: [
                (l / (ptrs * ptrs)) as usize,
                ((l / ptrs) % ptrs) as usize,
                (l % ptrs) as usize,
            ],
        });
    }
    None
}

/// First logical block covered by `i_block[slot]`, and how many logical blocks
/// one pointer at each indirect level of that slot covers.
pub fn slot_span(slot: usize, ptrs: u64) -> (u64, u64) {
    match slot {
        s if s < N_DIRECT => (s as u64, 1),
        IND_BLOCK => (N_DIRECT as u64, ptrs),
        DIND_BLOCK => (N_DIRECT as u64 + ptrs, ptrs * ptrs),
        TIND_BLOCK => (N_DIRECT as u64 + ptrs + ptrs * ptrs, ptrs * ptrs * ptrs),
        _ => unreachable!("i_block has 15 slots"),
    }
}

pub fn read_ptr(block: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(block[i * 4..i * 4 + 4].try_into().unwrap())
}

pub fn write_ptr(block: &mut [u8], i: usize, v: u32) {
    block[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = 256;
        assert_eq!(block_path(0, p).unwrap().depth, 0);
        assert_eq!(block_path(11, p).unwrap().slot, 11);
        assert_eq!(
            block_path(12, p).unwrap(),
            BlockPath {
                slot: 12,
                depth: 1,
                idx: [0, 0, 0]
            }
        );
        assert_eq!(
            block_path(12 + 256, p).unwrap(),
            BlockPath {
                slot: 13,
                depth: 2,
                idx: [0, 0, 0]
            }
        );
        assert_eq!(
            block_path(12 + 256 + 65536 + 65536 + 257, p).unwrap(),
            BlockPath {
                slot: 14,
                depth: 3,
                idx: [1, 1, 1]
            }
        );
        assert!(block_path(12 + 256 + 65536 + 256 * 65536, p).is_none());
        assert_eq!(slot_span(14, p).0, 12 + 256 + 65536);
    }
}
