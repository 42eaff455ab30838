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
    /// An internal failure reported to the first waiter (see [`StoreError::ReadOnly`] for what
    /// appends see afterwards).
    #[error("store failed: {0}")]
    Failed(String),
    /// A disk write or sync failed: the store no longer accepts appends (a failed fsync is
    /// never retried, as the kernel may have dropped the pages), durable data stays readable,
    /// and a restart recovers. The cause names the operation and file.
    #[error("store is read-only after a disk failure (restart to recover): {0}")]
    ReadOnly(String),
    /// The disk is full (ENOSPC, or free space below `disk_min_free_bytes`): appends are
    /// refused until space is freed (by retention or the operator); nothing stored is lost.
    #[error("disk full: {0}")]
    DiskFull(String),
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
    /// A replica's commit log and its master's disagree (offsets or bytes): see
    /// [`crate::Store::append_replica`].
    #[error("replica diverged from its master at commit-log offset {offset}: {reason}")]
    Diverged { offset: u64, reason: String },
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
    /// Whether the store cannot take writes now (disk failure, full disk, closed): the broker
    /// answers SERVICE_NOT_AVAILABLE (14) with this error as the remark.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::ReadOnly(_)
                | StoreError::DiskFull(_)
                | StoreError::Failed(_)
                | StoreError::Closed
                | StoreError::Io { .. }
        )
    }

    /// Whether this is a full disk met by a write or an allocation (not by a sync: a failed
    /// sync is fatal whatever its errno), which can be retried once space is freed.
    pub(crate) fn is_enospc(&self) -> bool {
        match self {
            StoreError::Io { op, source, .. } => {
                source.raw_os_error() == Some(libc::ENOSPC) && !op.contains("sync")
            }
            _ => false,
        }
    }

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
