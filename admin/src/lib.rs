//! saturn-admin: RocketMQ's mqadmin commands operators use most, as a small
//! blocking remoting client. It speaks only the remoting protocol, so it works
//! against Apache RocketMQ as well as Saturn.
//!
//! * [`client`]: connections, calls, and errors that carry the broker's
//!   response code and remark.
//! * [`fjson`]: reading fastjson's bodies (maps keyed by message queues).
//! * [`out`]: tables and records, printed for people or as `--json`.
//! * [`cmd`]: the commands, one module per area.

pub mod client;
pub mod cmd;
pub mod dash;
pub mod fjson;
pub mod out;
