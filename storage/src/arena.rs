//! Append memory: records are encoded straight into large chunks of memory that are reused
//! once every piece of them was dropped, so that appends do not fault in fresh pages (a fresh
//! 4 MiB allocation costs a thousand page faults and is zero-filled by the kernel).
//!
//! A chunk is written only beyond its frozen prefix, by the one [`Arena`] that owns it; frozen
//! ranges are handed out as immutable [`Bytes`] (the hot-tail cache and readers) and as write
//! sources for the disk writer ([`Arena::write_src`]), which keep the chunk alive. When the last
//! of them is dropped the chunk goes back to the arena's pool.
//!
//! Chunks are laid out like the file: a chunk started for commit-log position `pos` holds it at
//! offset `pos % 4096` (chunks are page-aligned), preceded by a copy of the bytes
//! `[align_down(pos), pos)` (the head, frozen at once). So every block of the log has one
//! chunk holding it whole at an O_DIRECT-aligned address, and the flusher writes from there.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Size of a pooled chunk.
pub const CHUNK: usize = 4 << 20;

/// An anonymous memory mapping (zero-filled when created).
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory owned by this value; who may read or write which part of it
// is governed by `Chunk` (see there).
unsafe impl Send for Mapping {}
// SAFETY: as above; `Mapping` itself hands out no references.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes; `None` when the mapping fails. Small pages on purpose: with
    /// MADV_HUGEPAGE (defrag=madvise) the first fill stalled in huge-page clearing and
    /// compaction, and async-append was ~25 % slower than with small pages.
    fn new(len: usize) -> Option<Mapping> {
        // SAFETY: an anonymous private mapping of `len` bytes at an address of the kernel's
        // choosing; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping {
            ptr: NonNull::new(p as *mut u8)?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is a mapping this value owns and nothing refers to any more.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}

/// Free chunks, and how many may be kept.
struct PoolInner {
    free: Vec<Mapping>,
    max: usize,
}

type Pool = Arc<Mutex<PoolInner>>;

/// One chunk: a mapping that goes back to the pool when the last reference is dropped.
struct Chunk {
    map: Option<Mapping>,
    pool: Option<Pool>,
}

impl Chunk {
    fn ptr(&self) -> *mut u8 {
        self.map
            .as_ref()
            .map_or(NonNull::dangling(), |m| m.ptr)
            .as_ptr()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let (Some(map), Some(pool)) = (self.map.take(), &self.pool) {
            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
            if p.free.len() < p.max {
                p.free.push(map);
            }
        }
    }
}

/// A frozen range of a chunk: the owner behind a piece's [`Bytes`], and a disk writer's source.
pub struct Frozen {
    chunk: Arc<Chunk>,
    lo: usize,
    hi: usize,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `lo..hi` lies within the chunk's mapping (checked when frozen) and is below the
        // arena's frozen mark, so it was fully written before and is never written again while
        // the chunk is alive; the `Arc` keeps the mapping alive for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.chunk.ptr().add(self.lo), self.hi - self.lo) }
    }
}

/// A chunk the arena wrote, as the flusher needs it: which commit-log position its offset 0
/// stands for, and how much of it is frozen.
struct Span {
    base_pos: u64,
    chunk: Arc<Chunk>,
    frozen: usize,
}

/// The writer side: the current chunk, its frozen mark and its written length.
pub struct Arena {
    chunk: Option<Arc<Chunk>>,
    cap: usize,
    frozen: usize,
    len: usize,
    pool: Pool,
    /// Chunks whose frozen bytes may still have to be written to disk, oldest first; the last
    /// is the current chunk.
    spans: VecDeque<Span>,
}

impl Arena {
    /// An arena keeping up to `keep_bytes` of free chunks for reuse: as much as the store may
    /// hold in appended memory (hot cache plus unflushed bytes), so that the steady state maps
    /// no fresh memory.
    pub fn new(keep_bytes: usize) -> Self {
        Arena {
            chunk: None,
            cap: 0,
            frozen: 0,
            len: 0,
            pool: Arc::new(Mutex::new(PoolInner {
                free: Vec::new(),
                max: keep_bytes.div_ceil(CHUNK) + 1,
            })),
            spans: VecDeque::new(),
        }
    }

    /// Bytes written since the last [`Arena::freeze`].
    pub fn pending(&self) -> usize {
        self.len - self.frozen
    }

    /// Room left in the current chunk.
    pub fn room(&self) -> usize {
        self.cap - self.len
    }

    /// Commit-log position of the next byte of the current chunk.
    pub fn next_pos(&self) -> Option<u64> {
        self.spans.back().map(|s| s.base_pos + self.len as u64)
    }

    /// Starts a new chunk for position `pos` with room for at least `n` bytes after the head
    /// (`pos % 4096` bytes, filled by `head` and frozen at once). Bytes not frozen yet are
    /// abandoned: freeze first.
    pub fn new_chunk(&mut self, pos: u64, n: usize, head: impl FnOnce(&mut [u8])) {
        debug_assert_eq!(self.pending(), 0);
        let off = (pos % 4096) as usize;
        let need = off + n;
        let pooled = need <= CHUNK;
        let map = if pooled {
            let reused = self
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .free
                .pop();
            reused.or_else(|| Mapping::new(CHUNK))
        } else {
            Mapping::new(need.div_ceil(4096) * 4096)
        };
        // Out of memory, as a failed heap allocation would be.
        let map = map.unwrap_or_else(|| {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(need.max(CHUNK), 4096)
                    .unwrap_or(std::alloc::Layout::new::<u8>()),
            )
        });
        let pool = pooled.then(|| self.pool.clone());
        let cap = map.len;
        let chunk = Arc::new(Chunk {
            map: Some(map),
            pool,
        });
        self.chunk = Some(chunk.clone());
        self.cap = cap;
        self.len = 0;
        self.frozen = 0;
        head(self.extend(off));
        self.frozen = off;
        self.spans.push_back(Span {
            base_pos: pos - off as u64,
            chunk,
            frozen: off,
        });
    }

    /// The next `n` bytes of the current chunk (`n <= room()`), to be written whole by the
    /// caller: they hold stale data from an earlier use of the chunk.
    pub fn extend(&mut self, n: usize) -> &mut [u8] {
        assert!(
            n <= self.room(),
            "arena: {n} bytes requested, {} left",
            self.room()
        );
        let chunk = self.chunk.as_ref().expect("arena: no chunk");
        let lo = self.len;
        self.len += n;
        // SAFETY: `lo..lo+n` lies within the mapping (checked above), beyond the frozen mark, so
        // no `Bytes` or write source covers it; `&mut self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(chunk.ptr().add(lo), n) }
    }

    /// Freezes what was written since the last call.
    pub fn freeze(&mut self) -> Bytes {
        if self.pending() == 0 {
            return Bytes::new();
        }
        let chunk = self.chunk.clone().expect("arena: no chunk");
        let (lo, hi) = (self.frozen, self.len);
        self.frozen = hi;
        if let Some(s) = self.spans.back_mut() {
            s.frozen = hi;
        }
        Bytes::from_owner(Frozen { chunk, lo, hi })
    }

    /// The longest run of whole blocks from `pos` (block-aligned) up to `limit` that one chunk
    /// holds frozen, as a write source, with the run's end; None when no chunk holds `pos`'s
    /// block whole (after a blank marker, or bytes that came from recovery).
    pub fn write_run(&self, pos: u64, limit: u64) -> Option<(Frozen, u64)> {
        let i = self.spans.partition_point(|s| s.base_pos <= pos);
        let s = self.spans.get(i.checked_sub(1)?)?;
        let mut end = limit.min((s.base_pos + s.frozen as u64) & !4095);
        if let Some(n) = self.spans.get(i) {
            end = end.min(n.base_pos);
        }
        if end <= pos {
            return None;
        }
        Some((
            Frozen {
                chunk: s.chunk.clone(),
                lo: (pos - s.base_pos) as usize,
                hi: (end - s.base_pos) as usize,
            },
            end,
        ))
    }

    /// Forgets chunks (other than the current one) whose bytes all lie below `pos`.
    pub fn release_below(&mut self, pos: u64) {
        while self.spans.len() > 1 && self.spans[0].base_pos + self.spans[0].frozen as u64 <= pos {
            self.spans.pop_front();
        }
    }
}
