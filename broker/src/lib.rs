//! `saturn-broker`: a thread-per-core broker that speaks RocketMQ's
//! remoting protocol.
//!
//! One glommio executor per core runs a shard ([`shard`]) that owns its
//! store, listeners, consumer offsets and client registry, and registers
//! with the name servers as a broker of its own. A control thread
//! ([`control`]) owns process-wide metadata (topics, subscription groups)
//! and fans changes out to the shards over channels.
//!
//! Modules, and which way they depend on each other (`scripts/modcycles
//! broker/src` prints this graph and fails on a cycle; there is none):
//!
//! ```text
//! server      ──► shard, control, config, metadata, metrics, handlers and ha_link (the
//!                 services a shard starts: the transaction check loop, replication)
//! shard       ──► conn, clients, control, outbound, stats, live_config, offsets, config,
//!                 metadata, fault_hook, metrics, transaction, timer, ha
//! ha_link     ──► shard, ha, config (the HA streams: master listener, slave follower)
//! shard_metrics ──► shard, metrics, histogram (what a shard answers a scrape with)
//! metrics     ──► config
//! handlers    ──► shard, conn, outbound, stats, storeext, config, metadata, transaction, timer,
//!                 ha_link (SYNC_MASTER's wait for a slave)
//! clients     ──► conn
//! outbound    ──► conn
//! control     ──► config, metadata, ha (the master HA address a registration answers)
//! offsets     ──► metadata
//! live_config ──► config
//! metadata    ──► config
//! config      ──► conn (the per-connection limits it hands out), transaction (its settings),
//!                 timer (delay levels)
//! stats       ──► histogram
//! conn, storeext, fault_hook, histogram, transaction, timer, ha ──► nothing of this crate
//! ```
//!
//! * [`conn`]: one client connection, served for any [`conn::Service`]
//!   through the peer handle [`conn::Conn`]; the per-shard connection table
//!   ([`conn::Connections`]: count bound, idle timeout) and the accept loop.
//!   It knows nothing of shards or handlers.
//! * [`handlers`]: the requests, one module per side of the protocol;
//!   `impl conn::Service for shard::Shard` routes each request to its
//!   handler ([`handlers::dispatch`]). A handler answers a [`handlers::Reply`]
//!   or a `Result<Reply, HandlerError>`; [`handlers::HandlerError`] maps each
//!   kind of failure to a response code and remark.
//! * [`shard`]: the per-core state, and the one place that asks the control
//!   thread for a topic or group and adopts the answer
//!   ([`shard::Shard::ensure_topic`], [`shard::Shard::ensure_group`]).
//! * [`transaction`]: transactional messages' records and per-shard book; END_TRANSACTION and
//!   the check loop are in `handlers::transaction`, started before the shard listens through
//!   [`shard::ShardSetup::services`].

pub mod clients;
pub mod config;
pub mod conn;
pub mod control;
pub mod fault_hook;
pub mod ha;
pub mod ha_link;
pub mod handlers;
pub mod histogram;
pub mod live_config;
pub mod metadata;
pub mod metrics;
pub mod offsets;
pub mod outbound;
pub mod replstate;
pub mod server;
pub mod shard;
pub mod shard_metrics;
pub mod slave_read;
pub mod stats;
pub mod storeext;
pub mod timer;
pub mod transaction;
