//! Remoting frames (reference §1.1):
//!
//! ```text
//! totalLength: u32 BE   = 4 + headerLength + bodyLength (does not count itself)
//! headerWord:  u32 BE   = serializeType << 24 | headerLength
//! header, body
//! ```
//!
//! [`FrameCodec::decode`] works incrementally on a `BytesMut`: it returns
//! `Ok(None)` until a whole frame is buffered and never panics on short or
//! hostile input. A frame larger than the configured maximum is an error, so
//! the caller closes the connection instead of buffering it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// RocketMQ's default `frameMaxLength`: 16 MiB, counting the length prefix.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;
/// Length prefix plus header word.
pub const FRAME_PREFIX_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("frame total length {total} is shorter than the 4-byte header word")]
    TooShort { total: usize },
    #[error("header length {header_len} exceeds the frame's remaining {available} bytes")]
    HeaderTooLong { header_len: usize, available: usize },
}

/// One frame, split into its parts. Header and body share the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// 0 = JSON, 1 = ROCKETMQ binary; other values are passed on for the
    /// command decoder to reject.
    pub serialize_type: u8,
    pub header: Bytes,
    pub body: Bytes,
}

#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_size: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameCodec {
    pub fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Checks the length prefix at the front of `buf` without consuming
    /// anything. Returns the whole frame's size once the prefix is known.
    pub fn peek_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let total = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let size = total.saturating_add(4);
        if size > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        if total < 4 {
            return Err(FrameError::TooShort { total });
        }
        Ok(Some(size))
    }

    /// Takes one whole frame off the front of `buf`, or returns `Ok(None)`
    /// when more bytes are needed. After an error the stream is unusable.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RawFrame>, FrameError> {
        let Some(size) = self.peek_size(buf)? else {
            return Ok(None);
        };
        if buf.len() < size {
            // No reserve of the announced size: a peer could claim 16 MiB
            // per connection and send nothing. The reader grows the buffer as
            // bytes actually arrive.
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let serialize_type = (word >> 24) as u8;
        let header_len = (word & 0x00FF_FFFF) as usize;
        let available = size - FRAME_PREFIX_LEN;
        if header_len > available {
            return Err(FrameError::HeaderTooLong {
                header_len,
                available,
            });
        }
        let mut frame = buf.split_to(size).freeze();
        frame.advance(FRAME_PREFIX_LEN);
        let header = frame.split_to(header_len);
        Ok(Some(RawFrame {
            serialize_type,
            header,
            body: frame,
        }))
    }
}

/// Writes the 8-byte frame prefix for a header and body of the given sizes.
pub fn put_frame_prefix(
    dst: &mut impl BufMut,
    serialize_type: u8,
    header_len: usize,
    body_len: usize,
) {
    debug_assert!(header_len <= 0x00FF_FFFF, "header length fits 24 bits");
    let total = 4 + header_len + body_len;
    dst.put_u32(total as u32);
    dst.put_u32(((serialize_type as u32) << 24) | header_len as u32);
}

/// Encodes a whole frame.
pub fn encode_frame(dst: &mut BytesMut, serialize_type: u8, header: &[u8], body: &[u8]) {
    dst.reserve(FRAME_PREFIX_LEN + header.len() + body.len());
    put_frame_prefix(dst, serialize_type, header.len(), body.len());
    dst.put_slice(header);
    dst.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_incremental() {
        let mut encoded = BytesMut::new();
        encode_frame(&mut encoded, 0, b"{\"code\":1}", b"body");
        encode_frame(&mut encoded, 1, b"hdr", b"");
        let codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in encoded.iter() {
            buf.put_u8(*byte);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0].header[..], b"{\"code\":1}");
        assert_eq!(&frames[0].body[..], b"body");
        assert_eq!(frames[1].serialize_type, 1);
        assert_eq!(&frames[1].header[..], b"hdr");
        assert!(frames[1].body.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_oversized_short_and_bad_header_length() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0x00, 0x01, 0x00, 0x00][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooShort { total: 2 })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 6, 0, 0, 0, 9, 1, 2][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::HeaderTooLong { .. })
        ));
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(FrameCodec::new(usize::MAX)
            .decode(&mut buf)
            .unwrap()
            .is_none());
    }
}
