use std::path::PathBuf;

use thiserror::Error;

/// Everything the store can fail with. I/O errors name the operation, the file and the offset.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{op} {path}{at}: {source}", at = fmt_offset(*.offset))]
    Io {
        op: &'static str,
        path: PathBuf,
        offset: Option<u64>,
        #[source]
        source: std::io::Error,
    },
    /// The flush covering a record did not finish within `flush_timeout`. The record is stored
    /// (in memory, and on disk once the flush completes): RocketMQ's FLUSH_DISK_TIMEOUT.
    #[error("flush did not cover offset {offset} within {timeout_ms} ms")]
    FlushTimeout { offset: u64, timeout_ms: u64 },
    /// A flush failed; the store no longer accepts appends (a later restart recovers).
    #[error("store failed earlier and is read-only: {0}")]
    Failed(String),
    /// Unflushed bytes exceed the configured bound: wait with [`crate::Store::writable`].
    #[error("too many unflushed bytes ({dirty} > {limit})")]
    Busy { dirty: u64, limit: u64 },
    #[error("message rejected: {0}")]
    Message(#[from] protocol::message::MessageError),
    #[error("record larger than a segment: {size} bytes, segment {segment_size}")]
    RecordTooLarge { size: usize, segment_size: u64 },
    #[error("corrupt record at commit-log offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error("no record at commit-log offset {offset}: {reason}")]
    NotFound { offset: u64, reason: &'static str },
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("store is closed")]
    Closed,
}

fn fmt_offset(o: Option<u64>) -> String {
    match o {
        Some(o) => format!(" at offset {o}"),
        None => String::new(),
    }
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        offset: Option<u64>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            offset,
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
