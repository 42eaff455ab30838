//! Consume queues: per (topic, queue id), 20-byte entries (commit-log offset 8, size 4, tags
//! code 8). A queue starts at entry `start` (0, or wherever it was rebuilt from); entry n lives
//! at byte (n - start)*20 of the queue's stream, split over files of `cq_file_entries` entries
//! named by their first entry index (20 digits). Retention deletes whole files from the front,
//! so the oldest file's name is a valid `start` after a restart.
//!
//! Entries are appended in memory as records are appended and written to disk by the
//! checkpointer (aligned writes; the partial last block is rewritten). They are derived data:
//! recovery rebuilds whatever the commit log holds beyond them.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::io::{align_down, align_up, File, BLOCK};
use crate::notify::Notify;
use crate::offsets::{LogOffset, QueueOffset};

pub const CQ_ENTRY: u64 = 20;
/// Entries read from disk at once (and kept per queue) when a reader reaches below memory.
pub const CQ_READ_AHEAD: u64 = 1600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    pub phys: LogOffset,
    pub size: i32,
    pub tags: i64,
}

impl CqEntry {
    pub fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.phys.get().to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out[12..20].copy_from_slice(&self.tags.to_be_bytes());
    }

    pub fn decode(b: &[u8]) -> CqEntry {
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        CqEntry {
            phys: LogOffset::new(u64::from_be_bytes(p)),
            size: i32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            tags: i64::from_be_bytes(t),
        }
    }

    /// An all-zero slot marks the end of the written entries.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

pub fn file_name(first_entry: QueueOffset) -> String {
    format!("{:020}", first_entry.get())
}

/// A queue's offsets (`start <= mem_start <= flushed <= max`, `min, visible <= max`) and its
/// entries in memory (exactly `[mem_start, max)`) are private: they change only through the
/// methods below, which keep the invariants [`ConsumeQueue::assert_invariants`] checks. Its
/// identity, files and waiters are open to the store's modules.
pub struct ConsumeQueue {
    /// `(topic, queue_id)`, shared with the store's records of entries not yet visible.
    pub key: Rc<(String, i32)>,
    pub topic: String,
    pub queue_id: i32,
    pub dir: PathBuf,
    pub file_entries: u64,
    /// Open files by file number (first entry / file_entries).
    pub files: BTreeMap<u64, Rc<File>>,
    /// First entry whose record still exists.
    min: QueueOffset,
    /// Next entry index to append.
    max: QueueOffset,
    /// Entries readers may see (lags `max` under SYNC_FLUSH until the records are durable).
    visible: QueueOffset,
    /// Entries `[mem_start, max)` are in memory.
    mem: VecDeque<CqEntry>,
    mem_start: QueueOffset,
    /// Entries `[0, flushed)` are durable on disk.
    flushed: QueueOffset,
    /// First entry index this queue ever had on disk (entries before it are zeros).
    start: QueueOffset,
    pub waiters: Rc<Notify>,
    /// Read-ahead window of durable entries read from disk: the raw entries from index `.0` on
    /// (at most [`CQ_READ_AHEAD`] of them).
    ra: Option<(QueueOffset, bytes::Bytes)>,
}

/// A block-aligned write of one queue file.
pub struct CqWrite {
    pub file_no: u64,
    pub pos: u64,
    pub data: Vec<u8>,
}

impl ConsumeQueue {
    pub fn new(
        root: &Path,
        topic: &str,
        queue_id: i32,
        file_entries: u64,
        start: QueueOffset,
    ) -> Self {
        ConsumeQueue {
            key: Rc::new((topic.to_string(), queue_id)),
            topic: topic.to_string(),
            queue_id,
            dir: root.join(topic).join(queue_id.to_string()),
            file_entries,
            files: BTreeMap::new(),
            min: start,
            max: start,
            visible: start,
            mem: VecDeque::new(),
            mem_start: start,
            flushed: start,
            start,
            waiters: Rc::new(Notify::default()),
            ra: None,
        }
    }

    /// First entry whose record still exists.
    #[inline]
    pub fn min(&self) -> QueueOffset {
        self.min
    }

    /// Next entry index to append.
    #[inline]
    pub fn max(&self) -> QueueOffset {
        self.max
    }

    /// Entries readers may see (lags `max` under SYNC_FLUSH until the records are durable).
    #[inline]
    pub fn visible(&self) -> QueueOffset {
        self.visible
    }

    /// The first entry readers may see: `min`, or `visible` when that is lower.
    #[inline]
    pub fn readable_min(&self) -> QueueOffset {
        self.min.min(self.visible)
    }

    /// Entries from here on are in memory.
    #[inline]
    pub fn mem_start(&self) -> QueueOffset {
        self.mem_start
    }

    /// First entry index this queue ever had on disk.
    #[inline]
    pub fn start(&self) -> QueueOffset {
        self.start
    }

    /// Entries below `upto` become visible to readers (never fewer than before); waiters are
    /// woken when that is news.
    #[inline]
    pub fn publish(&mut self, upto: QueueOffset) {
        debug_assert!(upto <= self.max);
        if upto > self.visible {
            self.visible = upto;
            self.waiters.notify();
        }
    }

    /// No entry, no file, nothing in memory: a queue recovery may start over at another offset.
    pub fn is_blank(&self) -> bool {
        self.max == self.start && self.files.is_empty() && self.mem.is_empty()
    }

    /// The first entry of the block holding entry `n` (what recovery keeps in memory).
    pub fn block_start(&self, n: QueueOffset) -> QueueOffset {
        self.start
            .add(align_down(self.start.distance_to(n) * CQ_ENTRY) / CQ_ENTRY)
    }

    /// Recovery: the queue ends at `n`, all of it durable and visible; `mem` holds the entries
    /// `[block_start(n), n)`.
    pub fn restore(&mut self, n: QueueOffset, mem: VecDeque<CqEntry>) {
        self.mem_start = self.block_start(n);
        debug_assert_eq!(self.mem_start.add(mem.len() as u64), n);
        debug_assert!(
            mem.iter().all(|e| !e.is_empty()),
            "{:?}: blank entry below the recovered end {n}",
            self.key
        );
        self.mem = mem;
        self.max = n;
        self.visible = n;
        self.flushed = n;
        self.min = self.min.min(n);
    }

    /// The first entry whose record still exists is `min` (recovery), or later than before
    /// (retention).
    pub fn set_min(&mut self, min: QueueOffset) {
        debug_assert!(min <= self.max);
        self.min = min;
    }

    /// Keeps `b`, raw entries read from disk from index `first` on, as the read-ahead window.
    pub fn keep_read_ahead(&mut self, first: QueueOffset, b: bytes::Bytes) {
        self.ra = Some((first, b));
    }

    pub fn file_path(&self, file_no: u64) -> PathBuf {
        self.dir
            .join(file_name(self.start.add(file_no * self.file_entries)))
    }

    /// (file number, byte position in that file) of entry `idx`.
    pub fn locate(&self, idx: QueueOffset) -> (u64, u64) {
        let rel = self.start.distance_to(idx);
        let file_no = rel / self.file_entries;
        (file_no, (rel - file_no * self.file_entries) * CQ_ENTRY)
    }

    pub fn push(&mut self, e: CqEntry) {
        debug_assert!(!e.is_empty(), "{:?}: blank entry pushed", self.key);
        self.mem.push_back(e);
        self.max = self.max.next();
    }

    pub fn mem_entry(&self, idx: QueueOffset) -> Option<CqEntry> {
        if idx < self.mem_start || idx >= self.max {
            return None;
        }
        self.mem
            .get(self.mem_start.distance_to(idx) as usize)
            .copied()
    }

    /// Appends the entries `[idx, hi)` the read-ahead window holds from `idx` on; returns the
    /// index of the first entry not appended.
    pub fn ra_entries(
        &self,
        idx: QueueOffset,
        hi: QueueOffset,
        out: &mut Vec<CqEntry>,
    ) -> QueueOffset {
        let Some((first, b)) = &self.ra else {
            return idx;
        };
        let last = first.add(b.len() as u64 / CQ_ENTRY);
        if idx < *first || idx >= last || idx >= hi {
            return idx;
        }
        let end = hi.min(last);
        let lo = (first.distance_to(idx) * CQ_ENTRY) as usize;
        let hi_b = (first.distance_to(end) * CQ_ENTRY) as usize;
        out.extend(
            b[lo..hi_b]
                .chunks_exact(CQ_ENTRY as usize)
                .map(CqEntry::decode),
        );
        end
    }

    /// The writes that make entries `[flushed, max)` durable (none when clean). The block holding
    /// `flushed` is rewritten whole, from memory.
    pub fn pending_writes(&self) -> Vec<CqWrite> {
        if self.flushed >= self.max {
            return Vec::new();
        }
        let mut out = Vec::new();
        let byte_start = align_down(self.start.distance_to(self.flushed) * CQ_ENTRY);
        let byte_end = self.start.distance_to(self.max) * CQ_ENTRY;
        let file_bytes = self.file_entries * CQ_ENTRY;
        let mut pos = byte_start;
        while pos < byte_end {
            let file_no = pos / file_bytes;
            let file_end = (file_no + 1) * file_bytes;
            let end = byte_end.min(file_end);
            let mut data = vec![0u8; (align_up(end) - pos) as usize];
            let mut slot = [0u8; CQ_ENTRY as usize];
            for i in pos / CQ_ENTRY..end.div_ceil(CQ_ENTRY) {
                let idx = self.start.add(i);
                // Entries before mem_start are only those that never existed (before `start`):
                // eviction keeps the block holding `flushed` in memory.
                let Some(e) = self.mem_entry(idx) else {
                    debug_assert!(idx < self.start || idx >= self.max);
                    continue;
                };
                e.encode(&mut slot);
                let ebyte = i * CQ_ENTRY;
                // Copy the part of [ebyte, ebyte+20) that falls in [pos, end).
                let lo = ebyte.max(pos);
                let hi = (ebyte + CQ_ENTRY).min(end);
                if lo < hi {
                    data[(lo - pos) as usize..(hi - pos) as usize]
                        .copy_from_slice(&slot[(lo - ebyte) as usize..(hi - ebyte) as usize]);
                }
            }
            out.push(CqWrite {
                file_no,
                pos: pos - file_no * file_bytes,
                data,
            });
            pos = end.min(file_end);
            debug_assert!(pos == byte_end || pos.is_multiple_of(BLOCK));
        }
        out
    }

    /// Checks the ordering of the queue's offsets (debug builds call it after every change; it
    /// panics on a violation): `start <= mem_start <= flushed <= max`, `min <= max`,
    /// `visible <= max`, `mem` holds exactly `[mem_start, max)`, and the last two entries in
    /// memory are in commit-log order.
    pub fn assert_invariants(&self) {
        let k = &self.key;
        assert!(self.start <= self.mem_start, "{k:?}: mem_start below start");
        assert!(
            self.mem_start <= self.flushed,
            "{k:?}: mem_start {} > flushed {}",
            self.mem_start,
            self.flushed
        );
        assert!(
            self.flushed <= self.max,
            "{k:?}: flushed {} > max {}",
            self.flushed,
            self.max
        );
        assert!(
            self.min <= self.max,
            "{k:?}: min {} > max {}",
            self.min,
            self.max
        );
        assert!(
            self.visible <= self.max,
            "{k:?}: visible {} > max {}",
            self.visible,
            self.max
        );
        assert!(
            self.start <= self.min.min(self.visible),
            "{k:?}: min/visible below start"
        );
        assert_eq!(
            self.mem_start.add(self.mem.len() as u64),
            self.max,
            "{k:?}: entries in memory do not end at max"
        );
        let n = self.mem.len();
        if n >= 2 {
            assert!(
                self.mem[n - 2].phys < self.mem[n - 1].phys,
                "{k:?}: entries out of order"
            );
        }
    }

    /// Records that entries below `upto` are durable, and trims memory to `cache` entries while
    /// keeping the block that the next flush rewrites.
    pub fn flushed_to(&mut self, upto: QueueOffset, cache: usize) {
        self.flushed = self.flushed.max(upto);
        let keep_from = self
            .block_start(self.flushed)
            .min(self.max.saturating_back(cache as u64))
            .max(self.mem_start);
        while self.mem_start < keep_from {
            self.mem.pop_front();
            self.mem_start = self.mem_start.next();
        }
    }
}
