//! The broker's histograms: the store's fixed-bucket [`Histogram`] (plain `Cell` counters; the
//! shard's thread is the only writer and reader, a metrics scrape reads them) with the bounds
//! of the families the broker serves.

pub use storage::stats::{Histogram, LATENCY_NS};

/// RocketMQ's `rocketmq_message_size` buckets, in bytes: 1 KiB, 4 KiB, 512 KiB, 1, 2, 4 MiB.
pub const MESSAGE_SIZE: &[u64] = &[1 << 10, 4 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20];

/// RocketMQ's `rocketmq_rpc_latency` buckets (1, 3, 5, 7, 10, 100 ms, 1, 2, 3 s), in nanoseconds.
pub const RPC_LATENCY_NS: &[u64] = &[
    1_000_000,
    3_000_000,
    5_000_000,
    7_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    2_000_000_000,
    3_000_000_000,
];

/// Distinct (request code, response code, one-way) series [`RpcLatency`] keeps; later ones
/// are counted under request code -1 (a client sending made-up codes cannot grow the table).
const MAX_RPC_SERIES: usize = 128;

/// `rocketmq_rpc_latency`: time from a request's dispatch to its answer, per request code,
/// response code and whether it was one-way. A short table searched from the last hit: a
/// connection's requests mostly repeat the same pair.
#[derive(Debug, Default)]
pub struct RpcLatency {
    table: std::cell::RefCell<Vec<(RpcKey, Histogram)>>,
    last: std::cell::Cell<usize>,
}

/// Request code, response code, one-way.
pub type RpcKey = (i32, i32, bool);

impl RpcLatency {
    #[inline]
    pub fn record(&self, key: RpcKey, took: std::time::Duration) {
        let table = self.table.borrow();
        let last = self.last.get();
        if let Some((k, h)) = table.get(last) {
            if *k == key {
                h.record_duration(took);
                return;
            }
        }
        if let Some(i) = table.iter().position(|(k, _)| *k == key) {
            self.last.set(i);
            table[i].1.record_duration(took);
            return;
        }
        drop(table);
        self.record_new(key, took);
    }

    #[cold]
    fn record_new(&self, key: RpcKey, took: std::time::Duration) {
        let mut table = self.table.borrow_mut();
        let key = if table.len() >= MAX_RPC_SERIES {
            (-1, key.1, key.2)
        } else {
            key
        };
        let i = match table.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                table.push((key, Histogram::new(RPC_LATENCY_NS)));
                table.len() - 1
            }
        };
        table[i].1.record_duration(took);
    }

    /// Every series kept.
    pub fn each(&self, mut f: impl FnMut(RpcKey, &Histogram)) {
        for (k, h) in self.table.borrow().iter() {
            f(*k, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rpc_latency_keeps_a_bounded_table() {
        let r = RpcLatency::default();
        r.record((10, 0, false), Duration::from_millis(2));
        r.record((10, 0, false), Duration::from_millis(20));
        r.record((11, 1, true), Duration::from_micros(10));
        for code in 0..1000 {
            r.record((1000 + code, 0, false), Duration::from_micros(1));
        }
        let mut seen = Vec::new();
        r.each(|k, h| seen.push((k, h.count())));
        assert_eq!(seen.len(), MAX_RPC_SERIES + 1);
        assert_eq!(seen[0], ((10, 0, false), 2));
        let (buckets, _) = r.table.borrow()[0].1.cumulative();
        assert_eq!(&buckets[..6], &[0, 1, 1, 1, 1, 2]); // 2 ms ≤ 3 ms; 20 ms ≤ 100 ms
        let other: u64 = seen.iter().filter(|(k, _)| k.0 == -1).map(|s| s.1).sum();
        assert_eq!(other, 1000 - (MAX_RPC_SERIES as u64 - 2));
    }
}
