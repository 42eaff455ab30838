//! The commands, grouped as mqadmin groups them.

pub mod cluster;
pub mod group;
pub mod message;
pub mod offset;
pub mod send;
pub mod topic;
pub mod trace;
