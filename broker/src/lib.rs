//! `saturn-broker`: a thread-per-core broker that speaks RocketMQ's
//! remoting protocol.
//!
//! One glommio executor per core runs a shard ([`shard`]) that owns its
//! store, listeners, consumer offsets and client registry, and registers
//! with the name servers as a broker of its own. A control thread
//! ([`control`]) owns process-wide metadata (topics, subscription groups)
//! and fans changes out to the shards over channels.

pub mod clients;
pub mod config;
pub mod conn;
pub mod control;
pub mod handlers;
pub mod live_config;
pub mod metadata;
pub mod offsets;
pub mod outbound;
pub mod server;
pub mod shard;
pub mod stats;
pub mod storeext;
