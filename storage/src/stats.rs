//! Figures the store counts for a metrics scrape: the group commits (how long each took, how
//! many bytes and records it made durable) and where pulled records came from (the hot tail,
//! the read-ahead cache, the disk).
//!
//! Every counter is a plain `Cell` owned by the store's shard (its only writer and reader), so
//! counting is an integer add on the shard's own core: no atomics, no locks, no allocation.

use std::cell::Cell;
use std::time::Duration;

/// Most upper bounds a [`Histogram`] takes (one more bucket holds the rest).
pub const MAX_BOUNDS: usize = 15;

/// Latency bounds in nanoseconds: 10 µs … 1 s.
pub const LATENCY_NS: &[u64] = &[
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Bytes per group commit: 4 KiB … 64 MiB.
pub const COMMIT_BYTES: &[u64] = &[
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
];

/// Records per group commit: 1 … 16384.
pub const COMMIT_RECORDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384];

/// A fixed-bucket histogram of integer observations (nanoseconds, bytes, counts).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    buckets: [Cell<u64>; MAX_BOUNDS + 1],
    sum: Cell<u64>,
}

impl Histogram {
    /// `bounds` ascending, at most [`MAX_BOUNDS`] of them.
    pub fn new(bounds: &'static [u64]) -> Self {
        assert!(bounds.len() <= MAX_BOUNDS && bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            buckets: Default::default(),
            sum: Cell::new(0),
        }
    }

    #[inline]
    pub fn record(&self, v: u64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].set(self.buckets[i].get() + 1);
        self.sum.set(self.sum.get().saturating_add(v));
    }

    /// Records a duration in nanoseconds.
    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Cumulative counts, one per bound and a last one for +Inf (the total), and the sum.
    pub fn cumulative(&self) -> (Vec<u64>, u64) {
        let mut acc = 0;
        let counts = self.buckets[..=self.bounds.len()]
            .iter()
            .map(|b| {
                acc += b.get();
                acc
            })
            .collect();
        (counts, self.sum.get())
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Cell::get).sum()
    }
}

/// The store's own counters (see the module's documentation).
#[derive(Debug)]
pub struct StoreStats {
    /// Time of each group commit: its writes and the fdatasync of every segment it touched.
    pub flush_latency: Histogram,
    /// Bytes each group commit made durable.
    pub commit_bytes: Histogram,
    /// Records each group commit made durable (a master's store; a slave's takes raw bytes).
    pub commit_records: Histogram,
    /// Records read (pulls and lookups) from the hot tail (memory, not yet evicted).
    pub hot_reads: Cell<u64>,
    /// Records read from the read-ahead cache of cold spans.
    pub read_ahead_reads: Cell<u64>,
    /// Records read from disk.
    pub disk_reads: Cell<u64>,
    /// Records appended since open, and as of the last group commit.
    pub(crate) appended_records: Cell<u64>,
    pub(crate) committed_records: Cell<u64>,
}

impl Default for StoreStats {
    fn default() -> Self {
        Self {
            flush_latency: Histogram::new(LATENCY_NS),
            commit_bytes: Histogram::new(COMMIT_BYTES),
            commit_records: Histogram::new(COMMIT_RECORDS),
            hot_reads: Cell::new(0),
            read_ahead_reads: Cell::new(0),
            disk_reads: Cell::new(0),
            appended_records: Cell::new(0),
            committed_records: Cell::new(0),
        }
    }
}

#[inline]
pub(crate) fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

impl StoreStats {
    /// A group commit of `bytes` that took `took`; the records appended before it began,
    /// `records_then`, are durable with it.
    pub(crate) fn committed(&self, took: Duration, bytes: u64, records_then: u64) {
        self.flush_latency.record_duration(took);
        self.commit_bytes.record(bytes);
        let records = records_then - self.committed_records.get();
        if records > 0 {
            self.commit_records.record(records);
        }
        self.committed_records.set(records_then);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_sum_what_was_recorded() {
        let h = Histogram::new(LATENCY_NS);
        h.record_duration(Duration::from_micros(5));
        h.record_duration(Duration::from_micros(700));
        h.record_duration(Duration::from_secs(3));
        let (c, sum) = h.cumulative();
        assert_eq!(c.len(), LATENCY_NS.len() + 1);
        assert_eq!(c[0], 1); // <= 10 µs
        assert_eq!(c[4], 1); // <= 500 µs
        assert_eq!(c[5], 2); // <= 1 ms
        assert_eq!(c[13], 2); // <= 1 s
        assert_eq!(c[14], 3); // +Inf
        assert_eq!(sum, 3_000_705_000);
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn a_commit_counts_the_records_since_the_last() {
        let s = StoreStats::default();
        s.committed(Duration::from_micros(300), 4096, 3);
        s.committed(Duration::from_micros(300), 100 << 10, 10);
        s.committed(Duration::from_micros(300), 512, 10);
        let (records, sum) = s.commit_records.cumulative();
        assert_eq!(sum, 10);
        assert_eq!(records[1], 0); // <= 2
        assert_eq!(records[2], 1); // <= 4: the first commit's 3
        assert_eq!(records[3], 2); // <= 8: the second's 7
        let (bytes, _) = s.commit_bytes.cumulative();
        assert_eq!(bytes[0], 2); // <= 4 KiB
        assert_eq!(*bytes.last().unwrap(), 3);
        assert_eq!(s.flush_latency.count(), 3);
    }
}
