//! A type for byte positions within one segment ([`SegPos`]), as the segment indexes, the
//! `.sums` journals and the record verifier hold them, so that a position in a segment is not
//! taken for a commit-log offset (a `u64` from the start of the log) or the reverse: the two
//! convert only through [`SegPos::of`] and [`SegPos::at`]. Commit-log offsets and queue
//! offsets are still plain `u64` (see the crate docs).

use std::fmt;

/// A byte position within one segment (segments are at most 4 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegPos(pub u32);

impl SegPos {
    /// The position of commit-log offset `offset` in the segment starting at `base`.
    #[inline]
    pub fn of(offset: u64, base: u64) -> SegPos {
        debug_assert!(offset >= base && offset - base <= u64::from(u32::MAX));
        SegPos((offset - base) as u32)
    }

    /// The commit-log offset of this position in the segment starting at `base`.
    #[inline]
    pub fn at(self, base: u64) -> u64 {
        base + u64::from(self.0)
    }
}

impl fmt::Display for SegPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
