//! Per-shard store (see issue 3).
