//! A fixed-bucket latency histogram for one shard: plain `Cell` counters (the shard's thread is
//! the only writer and reader), read by a metrics scrape.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus `le`); one more bucket holds the rest.
pub const BOUNDS: [f64; 14] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Cell<u64>; BOUNDS.len() + 1],
    sum_nanos: Cell<u64>,
}

impl Histogram {
    #[inline]
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].set(self.buckets[i].get() + 1);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos
            .set(self.sum_nanos.get().saturating_add(nanos));
    }

    /// Cumulative counts per bound (the last is +Inf, the total), and the sum in seconds.
    pub fn cumulative(&self) -> ([u64; BOUNDS.len() + 1], f64) {
        let mut out = [0u64; BOUNDS.len() + 1];
        let mut acc = 0;
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            acc += b.get();
            *o = acc;
        }
        (out, self.sum_nanos.get() as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        h.record(Duration::from_micros(5));
        h.record(Duration::from_micros(700));
        h.record(Duration::from_secs(3));
        let (c, sum) = h.cumulative();
        assert_eq!(c[0], 1); // <= 10 µs
        assert_eq!(c[4], 1); // <= 500 µs
        assert_eq!(c[5], 2); // <= 1 ms
        assert_eq!(c[13], 2); // <= 1 s
        assert_eq!(c[14], 3); // +Inf
        assert!((sum - 3.000705).abs() < 1e-9);
    }
}
