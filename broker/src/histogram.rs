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
