//! Types for the store's three kinds of offsets, so that one is never taken for another:
//!
//! * [`LogOffset`]: a byte offset in the shard's commit log (from the start of the log; what
//!   RocketMQ calls a physical offset). Segment bases, the append position, the durable offset
//!   and the records' PHYSICALOFFSET are log offsets.
//! * [`SegPos`]: a byte position within one segment, as the segment indexes, the `.sums`
//!   journals and the record verifier hold them. A log offset and a segment position convert
//!   only through [`LogOffset::pos_in`] and [`SegPos::at`], given the segment's base.
//! * [`QueueOffset`]: an entry number in one consume queue (RocketMQ's queue offset).
//!
//! They are `#[repr(transparent)]` over their integer and every method is `#[inline]`: the
//! types cost nothing at run time. A bare integer becomes one only through `new` (numbers read
//! from disk, file names) or `from_i64` (the wire, a record's fields; `None` when negative),
//! and back through `get` or `as_i64`; there is no arithmetic mixing two kinds: adding a queue
//! offset to a log offset, or a segment position to a log offset, does not compile.

use std::fmt;

use crate::io::{align_down, align_up};

/// A byte offset in the shard's commit log.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogOffset(u64);

/// The integer boundary both offset kinds share: `ZERO`, `new`, `from_i64` (the wire or a
/// record's field; `None` when negative), `get`, `as_i64` (what RocketMQ's wire carries;
/// offsets stay far below 2^63) and `Display` as the bare number.
macro_rules! integer_boundary {
    ($t:ident) => {
        impl $t {
            pub const ZERO: $t = $t(0);

            #[inline]
            pub const fn new(n: u64) -> $t {
                $t(n)
            }

            /// From the wire or a record's field; `None` when negative.
            #[inline]
            pub fn from_i64(n: i64) -> Option<$t> {
                u64::try_from(n).ok().map($t)
            }

            /// As a number (for file names, the disk engines and reports).
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }

            /// As RocketMQ's wire carries it.
            #[inline]
            pub fn as_i64(self) -> i64 {
                debug_assert!(self.0 <= i64::MAX as u64);
                self.0 as i64
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

integer_boundary!(LogOffset);
integer_boundary!(QueueOffset);

impl LogOffset {
    /// Above every offset (an absent bound).
    pub const MAX: LogOffset = LogOffset(u64::MAX);

    /// The offset `bytes` further on.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, bytes: u64) -> LogOffset {
        LogOffset(self.0 + bytes)
    }

    /// The offset `bytes` before this one.
    #[inline]
    pub fn back(self, bytes: u64) -> LogOffset {
        debug_assert!(bytes <= self.0);
        LogOffset(self.0 - bytes)
    }

    /// Bytes from here to `later` (which is not before this offset).
    #[inline]
    pub fn distance_to(self, later: LogOffset) -> u64 {
        debug_assert!(later.0 >= self.0, "{later:?} before {self:?}");
        later.0 - self.0
    }

    /// The base of the segment of `segment_size` bytes that holds this offset.
    #[inline]
    pub fn segment_base(self, segment_size: u64) -> LogOffset {
        LogOffset(self.0 - self.0 % segment_size)
    }

    /// Whether this offset starts a segment of `segment_size` bytes.
    #[inline]
    pub fn is_segment_base(self, segment_size: u64) -> bool {
        self.0.is_multiple_of(segment_size)
    }

    /// The position of this offset in the segment starting at `base`.
    #[inline]
    pub fn pos_in(self, base: LogOffset) -> SegPos {
        debug_assert!(self.0 >= base.0 && self.0 - base.0 <= u64::from(u32::MAX));
        SegPos((self.0 - base.0) as u32)
    }

    /// The start of the disk block holding this offset.
    #[inline]
    pub fn align_down(self) -> LogOffset {
        LogOffset(align_down(self.0))
    }

    /// This offset rounded up to a disk block boundary.
    #[inline]
    pub fn align_up(self) -> LogOffset {
        LogOffset(align_up(self.0))
    }
}

/// A byte position within one segment (segments are at most 4 GiB).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegPos(pub u32);

impl SegPos {
    /// The byte position in the segment's file.
    #[inline]
    pub fn file_pos(self) -> u64 {
        u64::from(self.0)
    }

    /// The commit-log offset of this position in the segment starting at `base`.
    #[inline]
    pub fn at(self, base: LogOffset) -> LogOffset {
        base.add(u64::from(self.0))
    }
}

impl fmt::Display for SegPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An entry number in one consume queue.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QueueOffset(u64);

impl QueueOffset {
    /// The entry after this one.
    #[inline]
    pub fn next(self) -> QueueOffset {
        QueueOffset(self.0 + 1)
    }

    /// The entry before this one (which is not the first).
    #[inline]
    pub fn prev(self) -> QueueOffset {
        debug_assert!(self.0 > 0);
        QueueOffset(self.0 - 1)
    }

    /// The entry halfway from this one to `end` (rounded down), for binary searches.
    #[inline]
    pub fn midpoint(self, end: QueueOffset) -> QueueOffset {
        QueueOffset(self.0 + self.distance_to(end) / 2)
    }

    /// The entry `n` entries further on.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, n: u64) -> QueueOffset {
        QueueOffset(self.0 + n)
    }

    /// The entry `n` entries before this one, or 0.
    #[inline]
    pub fn saturating_back(self, n: u64) -> QueueOffset {
        QueueOffset(self.0.saturating_sub(n))
    }

    /// The entries from this one up to `end` (excluded).
    #[inline]
    pub fn until(self, end: QueueOffset) -> impl Iterator<Item = QueueOffset> {
        (self.0..end.0).map(QueueOffset)
    }

    /// Entries from here to `later`, 0 when `later` is not after this one.
    #[inline]
    pub fn saturating_distance_to(self, later: QueueOffset) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// Entries from here to `later` (which is not before this one).
    #[inline]
    pub fn distance_to(self, later: QueueOffset) -> u64 {
        debug_assert!(later.0 >= self.0, "{later:?} before {self:?}");
        later.0 - self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_offsets_and_segment_positions() {
        let seg = 1 << 20;
        let o = LogOffset::new(3 * seg + 4100);
        let base = o.segment_base(seg);
        assert_eq!(base, LogOffset::new(3 * seg));
        assert!(base.is_segment_base(seg) && !o.is_segment_base(seg));
        let p = o.pos_in(base);
        assert_eq!(p, SegPos(4100));
        assert_eq!(p.at(base), o);
        assert_eq!(base.distance_to(o), 4100);
        assert_eq!(o.align_down(), base.add(4096));
        assert_eq!(o.align_up(), base.add(8192));
        assert_eq!(o.add(10).back(10), o);
        assert_eq!(LogOffset::from_i64(-1), None);
        assert_eq!(LogOffset::from_i64(o.as_i64()), Some(o));
    }

    #[test]
    fn queue_offsets() {
        let q = QueueOffset::new(7);
        assert_eq!(q.next(), QueueOffset::new(8));
        assert_eq!(q.next().prev(), q);
        assert_eq!(q.midpoint(q.add(5)), q.add(2));
        assert_eq!(q.add(3).get(), 10);
        assert_eq!(q.distance_to(q.add(5)), 5);
        assert_eq!(q.saturating_back(9), QueueOffset::ZERO);
        assert_eq!(QueueOffset::from_i64(-3), None);
        assert_eq!(QueueOffset::from_i64(q.as_i64()), Some(q));
        let v: Vec<u64> = q.until(q.add(3)).map(QueueOffset::get).collect();
        assert_eq!(v, [7, 8, 9]);
    }
}
