//! The typed error a handler may return: each kind maps to one RocketMQ response code and a
//! remark. `dispatch` takes either a [`Reply`] or a `Result<Reply, HandlerError>` from a
//! handler ([`IntoReply`]).

use protocol::header::HeaderError;
use protocol::{RemotingCommand, ResponseCode};
use storage::StoreError;

use super::Reply;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A custom header is missing a field or holds a bad value.
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("topic[{0}] not exist, apply first please!")]
    TopicNotExist(String),
    #[error("subscription group not exist, {0}")]
    GroupNotExist(String),
    #[error("{0}")]
    NoPermission(String),
    #[error("{0}")]
    MessageIllegal(String),
    /// Bad input that RocketMQ answers with SYSTEM_ERROR (topic names, queue ids, ...).
    #[error("{0}")]
    Invalid(String),
    /// A refusal with a code of its own and RocketMQ's remark for it.
    #[error("{1}")]
    Refused(ResponseCode, String),
    /// The control thread is gone: the broker is stopping.
    #[error("broker is shutting down")]
    ShuttingDown,
    /// Unflushed data is over its bound.
    #[error("[REJECTREQUEST]system busy, start flow control for a while: {0}")]
    Busy(String),
    /// The disk is full (ENOSPC, or free space below the floor): nothing is lost, sends are
    /// refused until space is freed.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// The store cannot write (a failed disk made it read-only, or it is closed); the remark
    /// names the cause.
    #[error("store is not writable: {0}")]
    StoreUnavailable(String),
}

impl HandlerError {
    pub fn code(&self) -> ResponseCode {
        use HandlerError as E;
        match self {
            E::Header(_) | E::Invalid(_) | E::ShuttingDown => ResponseCode::SYSTEM_ERROR,
            E::TopicNotExist(_) => ResponseCode::TOPIC_NOT_EXIST,
            E::GroupNotExist(_) => ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            E::NoPermission(_) => ResponseCode::NO_PERMISSION,
            E::MessageIllegal(_) => ResponseCode::MESSAGE_ILLEGAL,
            E::Busy(_) => ResponseCode::SYSTEM_BUSY,
            E::Refused(code, _) => *code,
            E::DiskFull(_) | E::StoreUnavailable(_) => ResponseCode::SERVICE_NOT_AVAILABLE,
        }
    }

    /// The answer to `req`: the kind's code, the error's text as remark.
    pub fn reply(&self, req: &RemotingCommand) -> Reply {
        Reply::Cmd(req.reply(self.code(), Some(self.to_string())))
    }

    /// What a store error means to a client that tried to write. A flush timeout is not an
    /// error of the write (the record is stored): callers answer FLUSH_DISK_TIMEOUT with the
    /// send result instead; here it counts as unavailable only if it reaches this far.
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Busy { .. } => HandlerError::Busy(e.to_string()),
            StoreError::RecordTooLarge { .. } | StoreError::Message(_) => {
                HandlerError::MessageIllegal(e.to_string())
            }
            StoreError::DiskFull(cause) => HandlerError::DiskFull(cause),
            e if is_disk_full(&e) => {
                let text = e.to_string();
                let cause = text.strip_prefix("disk full: ").unwrap_or(&text);
                HandlerError::DiskFull(cause.to_owned())
            }
            e => HandlerError::StoreUnavailable(e.to_string()),
        }
    }
}

/// ENOSPC anywhere in the store error (a failed write, or the store failed on one earlier), or
/// the store's own "disk full" refusal (free space below its floor).
fn is_disk_full(e: &StoreError) -> bool {
    match e {
        StoreError::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::StorageFull
                || source.raw_os_error() == Some(libc::ENOSPC)
        }
        other => {
            let text = other.to_string();
            text.starts_with("disk full") || text.contains("No space left on device")
        }
    }
}

/// What a handler returns, turned into the answer to `req`.
pub trait IntoReply {
    fn into_reply(self, req: &RemotingCommand) -> Reply;
}

impl IntoReply for Reply {
    fn into_reply(self, _req: &RemotingCommand) -> Reply {
        self
    }
}

impl IntoReply for Result<Reply, HandlerError> {
    fn into_reply(self, req: &RemotingCommand) -> Reply {
        self.unwrap_or_else(|e| e.reply(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::RequestCode;

    fn io(errno: i32) -> StoreError {
        StoreError::Io {
            op: "fdatasync",
            path: "/data/00000000000000000000".into(),
            offset: None,
            source: std::io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn store_errors_map_by_kind() {
        let req = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, 7);
        let full = HandlerError::from_store(io(libc::ENOSPC));
        assert_eq!(full.code(), ResponseCode::SERVICE_NOT_AVAILABLE);
        let Reply::Cmd(cmd) = full.reply(&req) else {
            panic!("a command")
        };
        assert_eq!(cmd.code, 14);
        assert_eq!(cmd.opaque, 7);
        assert!(cmd.remark.unwrap().starts_with("disk full"));

        let failed = HandlerError::from_store(io(libc::EIO));
        assert_eq!(failed.code(), ResponseCode::SERVICE_NOT_AVAILABLE);
        let remark = failed.to_string();
        assert!(remark.contains("fdatasync"), "{remark}");
        assert!(remark.contains("Input/output error"), "{remark}");

        let full_later = HandlerError::from_store(StoreError::Failed(
            "write: No space left on device (os error 28)".into(),
        ));
        assert!(matches!(full_later, HandlerError::DiskFull(_)));
        assert!(!full_later.to_string().starts_with("disk full: disk full"));

        let read_only = HandlerError::from_store(StoreError::Failed("fdatasync: EIO".into()));
        assert_eq!(read_only.code(), ResponseCode::SERVICE_NOT_AVAILABLE);
        let remark = read_only.to_string();
        assert!(remark.starts_with("store is not writable"), "{remark}");
        assert!(remark.contains("fdatasync: EIO"), "{remark}");

        let busy = HandlerError::from_store(StoreError::Busy { dirty: 2, limit: 1 });
        assert_eq!(busy.code(), ResponseCode::SYSTEM_BUSY);
    }
}
