use thiserror::Error;

/// What was wrong with a stored message, a batch body, a properties string or a message id.
/// Offsets are byte offsets from the start of the buffer given to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("truncated {field} at byte {offset}: need {needed} bytes, {available} available")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("bad magic {magic:#010x} at byte {offset}")]
    BadMagic { offset: usize, magic: u32 },
    #[error("blank (end-of-segment) marker at byte {offset}, covering {total_size} bytes")]
    Blank { offset: usize, total_size: u32 },
    #[error("bad {field} {value} at byte {offset}")]
    BadLength {
        field: &'static str,
        offset: usize,
        value: i64,
    },
    #[error(
        "total size {declared} at byte {offset} disagrees with the fields, which take {actual}"
    )]
    SizeMismatch {
        offset: usize,
        declared: u32,
        actual: usize,
    },
    #[error("body crc at byte {offset}: stored {stored:#x}, computed {computed:#x}")]
    BodyCrc {
        offset: usize,
        stored: i32,
        computed: i32,
    },
    #[error("{field} at byte {offset} is not valid UTF-8")]
    Utf8 { field: &'static str, offset: usize },
    #[error("{field} too long: {len} bytes, at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("bad message id {id:?}: {reason}")]
    BadMessageId { id: String, reason: &'static str },
}
