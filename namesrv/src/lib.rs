//! `saturn-namesrv`: a RocketMQ-compatible name server.
//!
//! Brokers register their topics here; clients ask for topic routes. The
//! state lives in memory and is rebuilt from registrations, so several name
//! servers run side by side with nothing shared.

/// The blocking remoting client, now the `saturn-client` crate; kept under
/// this name for the code and tests that import `namesrv::client`.
pub use saturn_client as client;
pub mod kv;
pub mod processor;
pub mod prom;
pub mod route;
pub mod server;

pub use processor::{NamesrvConfig, Processor};
pub use server::{NameServer, ServerConfig};
