//! The commit log's in-memory side: segment bookkeeping, the append buffer and the hot-tail
//! cache of recently appended bytes, and the planning of aligned flush writes.
//!
//! Appended records are encoded into the append [`Arena`] and frozen into immutable pieces, one
//! per append call; readers get `Bytes` slices of the pieces. A piece is dropped once it is durable,
//! beyond the hot-cache budget, and not part of the block the next flush rewrites.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::arena::Arena;
use protocol::message::{RecordInput, BLANK_MAGIC};

use crate::error::Result;
use crate::io::{AlignedBuf, File};
use crate::offsets::LogOffset;
use crate::readcache::ReadCache;
use crate::seg_index::{index_keys, SegIndex};
use crate::writer::Source;

/// Size of the end-of-segment blank marker; a record is placed in a segment only if this much
/// room stays after it.
pub const BLANK_LEN: u64 = 8;

pub fn segment_name(base: LogOffset) -> String {
    format!("{:020}", base.get())
}

pub struct Piece {
    pub start: LogOffset,
    pub data: Bytes,
}

impl Piece {
    pub fn end(&self) -> LogOffset {
        self.start.add(self.data.len() as u64)
    }
}

/// Copies bytes `[from, to)` of the pieces into `out`, whose first byte is offset `a`; what no
/// piece covers is zeroed.
fn image_of(
    pieces: &VecDeque<Piece>,
    a: LogOffset,
    from: LogOffset,
    to: LogOffset,
    out: &mut [u8],
) {
    debug_assert!(a <= from && a.distance_to(to) <= out.len() as u64);
    // Index in `out` of offset `o`.
    let at = |o: LogOffset| a.distance_to(o) as usize;
    let i = pieces.partition_point(|p| p.end() <= from);
    let mut cursor = from;
    for p in pieces.iter().skip(i) {
        if p.start >= to {
            break;
        }
        let lo = p.start.max(from);
        let hi = p.end().min(to);
        if lo < hi {
            out[at(cursor)..at(lo)].fill(0);
            let src = p.start.distance_to(lo) as usize..p.start.distance_to(hi) as usize;
            out[at(lo)..at(hi)].copy_from_slice(&p.data[src]);
            cursor = hi;
        }
    }
    out[at(cursor)..at(to)].fill(0);
}

/// What is known about a sealed segment without loading its index.
#[derive(Debug, Clone, Copy)]
pub struct SealedInfo {
    pub min_ts: i64,
    pub max_ts: i64,
    /// Whether `<base>.idx` is on disk (else it is being written, or must be rebuilt).
    pub idx_on_disk: bool,
}

/// The commit log's offsets (`min_offset <= write_pos`, `align_down(flushed) <= submitted <=
/// write_pos`, `flushed <= write_pos`), its segment table and its append memory are private:
/// they change only through the methods below, which keep the invariants
/// [`CommitLog::assert_invariants`] checks. The tables of files and indexes are the store's
/// caches, open to its modules.
pub struct CommitLog {
    dir: PathBuf,
    segment_size: u64,
    /// Open segment files by base offset (only those the flusher or readers touched).
    pub files: BTreeMap<LogOffset, Rc<File>>,
    /// Bases of all segments in use, oldest first; the last is active.
    segments: BTreeMap<LogOffset, Option<SealedInfo>>,
    /// Next append offset.
    write_pos: LogOffset,
    /// Everything below is durable.
    flushed: LogOffset,
    /// Every complete block below this was handed to the disk writer in its final form.
    submitted: LogOffset,
    /// Oldest offset still stored.
    min_offset: LogOffset,
    pieces: VecDeque<Piece>,
    cache_bytes: usize,
    arena: Arena,
    /// Index of the active segment.
    pub active: SegIndex,
    /// Indexes of sealed segments whose `.idx` file is not written yet.
    pub sealing: BTreeMap<LogOffset, std::sync::Arc<SegIndex>>,
    /// The tables of the last index written to its file, kept for the next segment's index
    /// (their memory is already faulted in; a fresh segment's would be tens of MB).
    pub spare_index: Option<SegIndex>,
    /// Recently loaded sealed indexes (tiny LRU, newest last).
    pub loaded: VecDeque<(LogOffset, Rc<SegIndex>)>,
    /// Sealed indexes being loaded, with the signal given when each is done.
    pub loading: Vec<(LogOffset, Rc<crate::notify::Notify>)>,
    /// Record-table entries of the active segment already in its `.sums` journal.
    sums_written: usize,
    /// Cold bytes read ahead for readers.
    pub ra: ReadCache,
}

impl CommitLog {
    /// `keep_bytes`: append memory kept for reuse (see [`Arena::new`]).
    pub fn new(dir: &Path, segment_size: u64, keep_bytes: usize) -> Self {
        CommitLog {
            dir: dir.to_path_buf(),
            segment_size,
            files: BTreeMap::new(),
            segments: BTreeMap::new(),
            write_pos: LogOffset::ZERO,
            flushed: LogOffset::ZERO,
            submitted: LogOffset::ZERO,
            min_offset: LogOffset::ZERO,
            pieces: VecDeque::new(),
            cache_bytes: 0,
            arena: Arena::new(keep_bytes),
            // The first segment's guess: 1 KiB records, one key each.
            active: SegIndex::with_capacity(
                (segment_size / 1024) as usize,
                (segment_size / 1024) as usize,
            ),
            sealing: BTreeMap::new(),
            spare_index: None,
            loaded: VecDeque::new(),
            loading: Vec::new(),
            sums_written: 0,
            ra: ReadCache::new(0),
        }
    }

    /// Next append offset.
    #[inline]
    pub fn write_pos(&self) -> LogOffset {
        self.write_pos
    }

    /// Everything below is durable.
    #[inline]
    pub fn flushed(&self) -> LogOffset {
        self.flushed
    }

    /// Every complete block below this was handed to the disk writer in its final form.
    #[inline]
    pub fn submitted(&self) -> LogOffset {
        self.submitted
    }

    /// Oldest offset still stored.
    #[inline]
    pub fn min_offset(&self) -> LogOffset {
        self.min_offset
    }

    #[inline]
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bases of all segments in use, oldest first (the last is active), with what is known of
    /// the sealed ones.
    pub fn segments(&self) -> &BTreeMap<LogOffset, Option<SealedInfo>> {
        &self.segments
    }

    /// Record-table entries of the active segment already in its `.sums` journal.
    pub fn sums_written(&self) -> usize {
        self.sums_written
    }

    /// `n` record-table entries of the active segment are journaled (from a checkpoint).
    pub fn set_sums_written(&mut self, n: usize) {
        self.sums_written = n;
    }

    /// A sealed segment's `.idx` file is on disk.
    pub fn mark_idx_on_disk(&mut self, base: LogOffset) {
        if let Some(Some(info)) = self.segments.get_mut(&base) {
            info.idx_on_disk = true;
        }
    }

    /// Everything below `to` is durable (the durable offset never goes back); drops durable
    /// pieces beyond the hot-cache `budget`.
    pub fn mark_durable(&mut self, to: LogOffset, budget: usize) {
        self.flushed = self.flushed.max(to);
        self.evict(budget);
    }

    /// The blocks up to `p` were handed to the disk writer; append memory below them can go.
    pub fn set_submitted(&mut self, p: LogOffset) {
        debug_assert!(p >= self.submitted && p <= self.write_pos);
        self.submitted = p;
        self.arena.release_below(p.get());
    }

    /// After a failed write: every block not durable is to be submitted again.
    pub fn resubmit_unflushed(&mut self) {
        self.submitted = self.flushed.align_down();
    }

    /// The write source for the blocks `[p, limit)` (`p` block-aligned, `limit` within `p`'s
    /// segment), with the end of the run it covers: the append memory itself when one chunk
    /// holds the run, else a copy from the pieces (zeros where none covers, after a blank marker).
    pub fn write_source(&self, p: LogOffset, limit: LogOffset) -> (Source, LogOffset) {
        match self.arena.write_run(p.get(), limit.get()) {
            Some((f, end)) => (Box::new(f), LogOffset::new(end)),
            None => {
                let mut b = AlignedBuf::zeroed(p.distance_to(limit) as usize);
                self.image_into(p, p, limit, b.as_mut_slice());
                (Box::new(b), limit)
            }
        }
    }

    /// Recovery found segments from `first` on.
    pub fn set_min_offset(&mut self, first: LogOffset) {
        self.min_offset = first;
    }

    /// Recovery adds a segment to the table (sealed ones with their `info`).
    pub fn insert_segment(&mut self, base: LogOffset, info: Option<SealedInfo>) {
        self.segments.insert(base, info);
    }

    /// Recovery's end: everything below `end` is durable; the partial block's bytes (`tail`)
    /// are kept for the next flush, which rewrites that block.
    pub fn set_recovered_end(&mut self, end: LogOffset, tail: Option<Piece>) {
        self.sums_written = 0;
        self.write_pos = end;
        self.flushed = end;
        self.submitted = end.align_down();
        if let Some(t) = tail {
            self.cache_bytes += t.data.len();
            self.pieces.push_back(t);
        }
    }

    /// Retention: forgets the oldest segment (`base`) and what is cached of it; the log now
    /// starts at the next one. Returns its open file, if any.
    pub fn remove_oldest(&mut self, base: LogOffset) -> Option<Rc<File>> {
        debug_assert_eq!(self.segments.keys().next(), Some(&base));
        self.segments.remove(&base);
        let file = self.files.remove(&base);
        self.loaded.retain(|(b, _)| *b != base);
        self.sealing.remove(&base);
        let next = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.write_pos);
        self.min_offset = next;
        self.ra.retain(next, LogOffset::MAX);
        file
    }

    pub fn segment_path(&self, base: LogOffset) -> PathBuf {
        self.dir.join(segment_name(base))
    }

    pub fn idx_path(&self, base: LogOffset) -> PathBuf {
        self.dir.join(format!("{}.idx", segment_name(base)))
    }

    /// Journal of the active segment's record table (position, size, CRC32C per record),
    /// appended at each checkpoint so recovery can check records below the checkpoint.
    pub fn sums_path(&self, base: LogOffset) -> PathBuf {
        self.dir.join(format!("{}.sums", segment_name(base)))
    }

    pub fn base_of(&self, offset: LogOffset) -> LogOffset {
        offset.segment_base(self.segment_size)
    }

    pub fn active_base(&self) -> LogOffset {
        self.base_of(self.write_pos)
    }

    /// Freezes what was encoded since the last call into a piece.
    pub fn seal_piece(&mut self, start: LogOffset) {
        if self.arena.pending() == 0 {
            return;
        }
        let data = self.arena.freeze();
        self.cache_bytes += data.len();
        debug_assert!(self.pieces.back().is_none_or(|p| p.end() <= start));
        self.pieces.push_back(Piece { start, data });
    }

    /// `[offset, offset+len)` from the hot cache, if one piece holds it all.
    pub fn cached(&self, offset: LogOffset, len: usize) -> Option<Bytes> {
        let end = offset.add(len as u64);
        let first = self.pieces.front()?;
        if offset < first.start {
            return None;
        }
        let i = self.pieces.partition_point(|p| p.start <= offset);
        let p = self.pieces.get(i.checked_sub(1)?)?;
        if end > p.end() {
            return None;
        }
        let lo = p.start.distance_to(offset) as usize;
        Some(p.data.slice(lo..lo + len))
    }

    /// Copies bytes `[from, to)` into `out`, whose first byte is offset `a` (block-aligned,
    /// `a <= from`); what no piece covers (after a blank marker) is zeroed. Pieces cover
    /// everything from `align_down(flushed)` on.
    pub fn image_into(&self, a: LogOffset, from: LogOffset, to: LogOffset, out: &mut [u8]) {
        image_of(&self.pieces, a, from, to, out)
    }

    /// `n` bytes for the record at `pos`, to be written whole; `piece_start` is where the
    /// bytes not frozen yet begin (moved to `pos` when they are frozen for a new chunk). A new
    /// chunk is started when the current one lacks room or does not end at `pos` (after a
    /// segment roll), with the bytes of `pos`'s block before it copied in front.
    pub fn space(&mut self, piece_start: &mut LogOffset, pos: LogOffset, n: usize) -> &mut [u8] {
        if self.arena.room() < n || self.arena.next_pos() != Some(pos.get()) {
            self.seal_piece(*piece_start);
            let a = pos.align_down();
            let pieces = &self.pieces;
            self.arena
                .new_chunk(pos.get(), n, |head| image_of(pieces, a, a, pos, head));
            *piece_start = pos;
        }
        self.arena.extend(n)
    }

    /// Checks the ordering of the commit log's offsets and its segment table (debug builds call
    /// it after every change; it panics on a violation):
    /// `min_offset <= write_pos`, `align_down(flushed) <= submitted <= write_pos`,
    /// `flushed <= write_pos`, the segments are contiguous and the last one holds `write_pos`,
    /// sealing indexes belong to sealed segments, the hot pieces are ordered and end by
    /// `write_pos`.
    pub fn assert_invariants(&self) {
        let (w, f, s) = (self.write_pos, self.flushed, self.submitted);
        assert!(f <= w, "flushed {f} > write_pos {w}");
        assert!(s <= w, "submitted {s} > write_pos {w}");
        assert!(
            f.align_down() <= s,
            "submitted {s} < align_down(flushed {f})"
        );
        assert!(
            self.min_offset <= w,
            "min_offset {} > write_pos {w}",
            self.min_offset
        );
        let active = self.active_base();
        assert_eq!(
            self.segments.keys().next_back(),
            Some(&active),
            "the last segment is not the active one"
        );
        assert_eq!(
            self.segments.keys().next(),
            Some(&self.min_offset.min(active))
        );
        let mut prev: Option<LogOffset> = None;
        for &b in self.segments.keys() {
            assert!(
                b.is_segment_base(self.segment_size),
                "segment base {b} not aligned"
            );
            if let Some(p) = prev {
                assert_eq!(
                    b,
                    p.add(self.segment_size),
                    "segments not contiguous at {b}"
                );
            }
            prev = Some(b);
        }
        if let Some((&b, _)) = self.sealing.iter().next_back() {
            assert!(b < active, "sealing index of the active segment {b}");
        }
        assert!(self.sums_written <= self.active.records.len());
        if let (Some(first), Some(last)) = (self.pieces.front(), self.pieces.back()) {
            assert!(first.start <= last.start, "pieces out of order");
            assert!(
                last.end() <= w,
                "piece ends at {} > write_pos {w}",
                last.end()
            );
        }
    }

    /// Drops durable pieces beyond the cache budget, keeping the block the next flush rewrites.
    fn evict(&mut self, budget: usize) {
        let keep = self.flushed.align_down();
        while self.cache_bytes > budget {
            match self.pieces.front() {
                Some(p) if p.end() <= keep => {
                    self.cache_bytes -= p.data.len();
                    self.pieces.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Ends the active segment (blank marker, roll to the next) when a record of `size` bytes
    /// would not leave [`BLANK_LEN`] bytes free in it. `piece_start` as for [`Self::space`].
    #[inline]
    pub fn make_room(&mut self, piece_start: &mut LogOffset, size: u64) {
        let pos = self.write_pos;
        let seg_end = self.base_of(pos).add(self.segment_size);
        if pos.add(size + BLANK_LEN) > seg_end {
            self.close_segment(piece_start);
        }
    }

    /// Ends the active segment at the append position with the blank marker and rolls to the
    /// next one. `piece_start` as for [`Self::space`].
    pub fn close_segment(&mut self, piece_start: &mut LogOffset) {
        let pos = self.write_pos;
        let seg_end = self.base_of(pos).add(self.segment_size);
        self.seal_piece(*piece_start);
        self.write_blank(pos, seg_end);
        self.seal_piece(pos);
        self.roll(seg_end);
        *piece_start = seg_end;
    }

    /// Places a record's bytes verbatim at the append position (a replica's append), with its
    /// CRC32C, store time and keys as [`Self::append_record`] does.
    pub fn append_verbatim(
        &mut self,
        piece_start: &mut LogOffset,
        rec: &[u8],
        store_ts: i64,
        keys: (&str, Option<&str>, &str),
    ) {
        let pos = self.write_pos;
        self.space(piece_start, pos, rec.len()).copy_from_slice(rec);
        let seg_pos = pos.pos_in(self.base_of(pos));
        let crc = crc32c::crc32c(rec);
        self.active
            .add_record(seg_pos, rec.len() as u32, crc, store_ts);
        index_keys(&mut self.active, keys.0, keys.1, keys.2, seg_pos);
        self.write_pos = pos.add(rec.len() as u64);
    }

    /// `[from, end)` cut to the hot-tail piece that holds `from`, if one does.
    pub fn hot_slice(&self, from: LogOffset, end: LogOffset) -> Option<Bytes> {
        let i = self
            .pieces
            .partition_point(|p| p.start <= from)
            .checked_sub(1)?;
        let p = self.pieces.get(i)?;
        if from >= p.end() {
            return None;
        }
        let lo = p.start.distance_to(from) as usize;
        let hi = p.start.distance_to(end.min(p.end())) as usize;
        Some(p.data.slice(lo..hi))
    }

    /// Where the hot tail starts (everything before it is durable, on disk).
    pub fn hot_start(&self) -> Option<LogOffset> {
        self.pieces.front().map(|p| p.start)
    }

    /// `from`, or the next segment's start when `from` lies in the zeros after the blank
    /// marker of a segment that is no longer the active one (in the hot tail, no piece holds
    /// them).
    pub fn skip_blank_gap(&self, from: LogOffset) -> LogOffset {
        let base = self.base_of(from);
        if base == self.active_base() || from == base {
            return from;
        }
        let covered = self
            .pieces
            .iter()
            .any(|p| p.start <= from && from < p.end());
        let in_tail = self.pieces.front().is_some_and(|p| p.start <= from);
        if !covered && in_tail {
            base.add(self.segment_size)
        } else {
            from
        }
    }

    /// Encodes a record of `size` bytes at the append position, records its CRC32C and store
    /// time in the active segment's table, indexes its keys (`(topic, UNIQ_KEY, KEYS)`) and
    /// moves the append position past it.
    #[inline]
    pub fn append_record(
        &mut self,
        piece_start: &mut LogOffset,
        input: &RecordInput<'_>,
        size: usize,
        now: i64,
        keys: (&str, Option<&str>, &str),
    ) -> Result<()> {
        let pos = self.write_pos;
        let out = self.space(piece_start, pos, size);
        input.encode_into(out)?;
        let crc = crc32c::crc32c(out);
        let seg_pos = pos.pos_in(self.base_of(pos));
        self.active.add_record(seg_pos, size as u32, crc, now);
        index_keys(&mut self.active, keys.0, keys.1, keys.2, seg_pos);
        self.write_pos = pos.add(size as u64);
        Ok(())
    }

    /// Ends a segment with the blank marker, followed by zeros up to the end of its block (so that
    /// block is written whole from the append memory; the segment's remaining blocks are zeroed by
    /// the flusher).
    pub fn write_blank(&mut self, pos: LogOffset, seg_end: LogOffset) {
        let mut start = pos;
        let n = pos.distance_to(pos.add(BLANK_LEN).align_up().min(seg_end)) as usize;
        let out = self.space(&mut start, pos, n);
        out[..4].copy_from_slice(&(pos.distance_to(seg_end) as u32).to_be_bytes());
        out[4..8].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
        out[8..].fill(0);
    }

    /// Makes the segment starting at `next_base` the active one.
    pub fn roll(&mut self, next_base: LogOffset) {
        let old_base = self.active_base();
        let (records, keys) = self.active.next_capacity();
        let next = match self.spare_index.take() {
            Some(mut spare) => {
                spare.reset(records, keys);
                spare
            }
            None => SegIndex::with_capacity(records, keys),
        };
        let idx = std::mem::replace(&mut self.active, next);
        self.segments.insert(
            old_base,
            Some(SealedInfo {
                min_ts: idx.min_ts,
                max_ts: idx.max_ts,
                idx_on_disk: false,
            }),
        );
        self.sealing.insert(old_base, std::sync::Arc::new(idx));
        self.sums_written = 0;
        self.segments.insert(next_base, None);
        self.write_pos = next_base;
    }
}
