//! The store's public value types: what goes in ([`MessageToStore`]) and what comes out
//! (append, pull, queue and recovery results).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

/// One message to append.
#[derive(Debug, Clone)]
pub struct MessageToStore {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// Consume-queue tags code: `tag_hash(TAGS)`, 0 without a tag (a delivery time for
    /// SCHEDULE_TOPIC_XXXX).
    pub tags_code: i64,
    /// Business keys to index (the KEYS property: space-separated).
    pub keys: String,
    /// The UNIQ_KEY to index.
    pub uniq_key: Option<String>,
}

/// Where one appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRecord {
    pub phys_offset: i64,
    pub size: i32,
    /// Consume-queue offset (0 for PREPARED / ROLLBACK records, which are not queued).
    pub queue_offset: i64,
    pub store_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub records: Vec<AppendedRecord>,
    /// Commit-log offset just past the batch: pass it to [`Store::wait_durable`].
    pub end_offset: u64,
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    /// Stored records, byte-identical to the commit log: write them to the socket as they are.
    pub records: Vec<Bytes>,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
}

impl GetResult {
    pub fn total_bytes(&self) -> usize {
        self.records.iter().map(|r| r.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub topic: String,
    pub queue_id: i32,
    pub min_offset: i64,
    pub max_offset: i64,
}

/// What `open` found and did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub checkpoint: Option<u64>,
    pub scanned_from: u64,
    pub scanned_bytes: u64,
    pub records: u64,
    pub end_offset: u64,
    pub truncated_at: Option<u64>,
    /// Commit-log ranges holding corrupt records, skipped.
    pub corrupt: Vec<(u64, u64)>,
    pub rebuilt_queues: usize,
    pub elapsed: Duration,
}
