//! The read-ahead cache of cold commit-log bytes.
//!
//! A pull that misses the hot-tail cache reads the commit-log span its records cover with one
//! aligned direct read, rounded out to `read_chunk_bytes` boundaries (within the segment, and
//! only below the flushed offset, where the file's bytes are final). The span is kept here as
//! one extent, so the pulls of the other queues whose records interleave with it (and the next
//! pull of the same queue) find their records in memory. Extents are evicted least recently
//! used first beyond `read_cache_bytes` (the two newest are always kept). Records are served as
//! `Bytes` slices of an extent, verified each time they are served, like any record that came
//! from disk; a served slice keeps its extent's memory alive until the response is written.
//!
//! Reads in flight are registered, so concurrent pulls that need the same span wait for the
//! read already under way instead of issuing their own.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use crate::notify::{Notified, Notify};
use crate::offsets::LogOffset;

struct Extent {
    start: LogOffset,
    data: Bytes,
}

impl Extent {
    fn end(&self) -> LogOffset {
        self.start.add(self.data.len() as u64)
    }
}

pub struct ReadCache {
    /// Most recently used last.
    extents: VecDeque<Extent>,
    bytes: usize,
    cap: usize,
    /// Reads under way: `[start, end)` and the signal given when each finishes.
    loading: Vec<(LogOffset, LogOffset, Rc<Notify>)>,
}

impl ReadCache {
    pub fn new(cap: usize) -> ReadCache {
        ReadCache {
            extents: VecDeque::new(),
            bytes: 0,
            cap,
            loading: Vec::new(),
        }
    }

    /// `[offset, offset+len)` if one extent holds it all, or two adjacent ones (then copied).
    pub fn get(&mut self, offset: LogOffset, len: usize) -> Option<Bytes> {
        let end = offset.add(len as u64);
        // Newest first: consecutive lookups mostly hit the same (recent) extent.
        let i = self
            .extents
            .iter()
            .rposition(|e| e.start <= offset && offset < e.end())?;
        let e = &self.extents[i];
        let lo = e.start.distance_to(offset) as usize;
        let b = if end <= e.end() {
            e.data.slice(lo..lo + len)
        } else {
            let mid = e.end();
            let n = self
                .extents
                .iter()
                .rfind(|x| x.start <= mid && end <= x.end())?;
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(&e.data[lo..]);
            let nlo = n.start.distance_to(mid) as usize;
            v.extend_from_slice(&n.data[nlo..nlo + mid.distance_to(end) as usize]);
            Bytes::from(v)
        };
        if i + 1 != self.extents.len() {
            if let Some(e) = self.extents.remove(i) {
                self.extents.push_back(e);
            }
        }
        Some(b)
    }

    /// The first offset from `offset` on that no extent holds, going forward through
    /// adjacent extents.
    pub fn cached_to(&self, offset: LogOffset) -> LogOffset {
        let mut at = offset;
        while let Some(e) = self.extents.iter().find(|e| e.start <= at && at < e.end()) {
            at = e.end();
        }
        at
    }

    /// The start of the first extent or read under way that begins in `(offset, end)`.
    pub fn next_start(&self, offset: LogOffset, end: LogOffset) -> Option<LogOffset> {
        self.extents
            .iter()
            .map(|e| e.start)
            .chain(self.loading.iter().map(|l| l.0))
            .filter(|s| *s > offset && *s < end)
            .min()
    }

    /// A signal for the read under way that covers `offset`, if any (once it is done, the
    /// bytes from `offset` on are in the cache at least up to where that read ended).
    pub fn loading(&self, offset: LogOffset) -> Option<Notified> {
        self.loading_at(offset).map(|(_, _, n)| n.notified())
    }

    /// Where the read under way that covers `offset` ends, if there is one.
    pub fn loading_end(&self, offset: LogOffset) -> Option<LogOffset> {
        self.loading_at(offset).map(|(_, e, _)| *e)
    }

    fn loading_at(&self, offset: LogOffset) -> Option<&(LogOffset, LogOffset, Rc<Notify>)> {
        self.loading
            .iter()
            .find(|(s, e, _)| *s <= offset && offset < *e)
    }

    /// Registers a read of `[start, end)`; [`ReadCache::loaded`] must follow.
    pub fn begin(&mut self, start: LogOffset, end: LogOffset) -> Rc<Notify> {
        let n = Rc::new(Notify::default());
        self.loading.push((start, end, n.clone()));
        n
    }

    /// Ends the read of `[start, ..)` registered by `begin`, keeping its bytes when given.
    pub fn loaded(&mut self, start: LogOffset, n: &Rc<Notify>, data: Option<Bytes>) {
        self.loading.retain(|(_, _, x)| !Rc::ptr_eq(x, n));
        if let Some(data) = data.filter(|d| !d.is_empty()) {
            self.bytes += data.len();
            self.extents.push_back(Extent { start, data });
            while self.bytes > self.cap && self.extents.len() > 2 {
                if let Some(e) = self.extents.pop_front() {
                    self.bytes -= e.data.len();
                }
            }
        }
        n.notify();
    }

    /// Forgets extents that reach below `offset` (deleted by retention) or beyond `end`
    /// (truncated).
    pub fn retain(&mut self, offset: LogOffset, end: LogOffset) {
        let mut bytes = 0;
        self.extents.retain(|e| {
            let keep = e.start >= offset && e.end() <= end;
            if keep {
                bytes += e.data.len();
            }
            keep
        });
        self.bytes = bytes;
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(n: u64) -> LogOffset {
        LogOffset::new(n)
    }

    #[test]
    fn lookup_and_eviction() {
        let mut c = ReadCache::new(8192);
        let n = c.begin(o(0), o(4096));
        assert!(c.loading(o(10)).is_some());
        assert_eq!(c.loading_end(o(4000)), Some(o(4096)));
        assert!(c.loading(o(4096)).is_none());
        assert_eq!(c.loading_end(o(4096)), None);
        c.loaded(o(0), &n, Some(Bytes::from(vec![1u8; 4096])));
        assert!(c.loading(o(10)).is_none());
        assert_eq!(c.get(o(10), 20).unwrap().len(), 20);
        assert!(c.get(o(4090), 10).is_none());
        let n = c.begin(o(4096), o(8192));
        c.loaded(o(4096), &n, Some(Bytes::from(vec![2u8; 4096])));
        assert_eq!(c.get(o(4096), 1).unwrap()[0], 2);
        // Touch the first, then add a third: the second is evicted.
        assert_eq!(c.get(o(0), 1).unwrap()[0], 1);
        let n = c.begin(o(8192), o(12288));
        c.loaded(o(8192), &n, Some(Bytes::from(vec![3u8; 4096])));
        assert!(c.get(o(4096), 1).is_none());
        assert_eq!(c.get(o(0), 1).unwrap()[0], 1);
        assert_eq!(c.bytes(), 8192);
        c.retain(o(4096), LogOffset::MAX);
        assert!(c.get(o(0), 1).is_none());
        assert_eq!(c.bytes(), 4096);
    }
}
