//! `saturn-namesrv`: a RocketMQ-compatible name server.
//!
//! Brokers register their topics here; clients ask for topic routes. The
//! state lives in memory and is rebuilt from registrations, so several name
//! servers run side by side with nothing shared.

pub mod client;
pub mod kv;
pub mod processor;
pub mod prom;
pub mod route;
pub mod server;

pub use processor::{NamesrvConfig, Processor};
pub use server::{NameServer, ServerConfig};
