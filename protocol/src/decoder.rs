//! Commands out of a byte stream: the one read-side framing every connection uses (broker,
//! name server, clients, bench).
//!
//! A [`CommandDecoder`] owns the receive buffer of one connection. Bytes go in (copied with
//! [`CommandDecoder::extend`], or received straight into [`CommandDecoder::recv_buf`]), whole
//! frames or commands come out ([`CommandDecoder::next_frame`], [`CommandDecoder::next_command`]).
//! A frame over the size bound, a malformed prefix or an undecodable header is a [`StreamError`]:
//! the stream is unusable after it and the caller closes the connection.
//!
//! The buffer is allocated when bytes arrive and given back by
//! [`CommandDecoder::release_if_empty`] once every frame has been taken, so an idle connection
//! holds no receive memory. Frames share the buffer they were received in (no copy): a frame
//! kept alive keeps its allocation alive, not the decoder's.

use bytes::BytesMut;

use crate::command::{CommandError, RemotingCommand};
use crate::frame::{FrameCodec, FrameError, RawFrame};

/// Spare room offered to a direct receive, at least: a 64-message batch of 1 KiB (66 KB) and
/// the start of the next. At 64 KiB every such frame took two receives (W2: 21,000 `recvfrom`
/// calls per 1.28 M messages, 11,000 at 112 KiB). 256 KiB was tried too and W1 fell behind.
pub const RECV_CHUNK: usize = 112 * 1024;
/// Less spare room than this is not worth a receive: the buffer grows first.
const MIN_SPARE: usize = 4096;

/// Why a stream of frames cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("broken framing: {0}")]
    Frame(#[from] FrameError),
    #[error("undecodable header: {0}")]
    Command(#[from] CommandError),
}

/// The receive side of one connection: buffered bytes and the frame bound.
#[derive(Debug)]
pub struct CommandDecoder {
    codec: FrameCodec,
    buf: BytesMut,
}

impl CommandDecoder {
    /// A decoder for frames of at most `max_frame_size` bytes (length prefix included). It
    /// allocates nothing until bytes arrive.
    pub fn new(max_frame_size: usize) -> Self {
        Self {
            codec: FrameCodec::new(max_frame_size),
            buf: BytesMut::new(),
        }
    }

    pub fn max_frame_size(&self) -> usize {
        self.codec.max_frame_size()
    }

    /// Bytes received and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the buffer holds room for (0 once released).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends received bytes. The first bytes after a release allocate only what the frame at
    /// the front needs, when its length is known (at most the frame bound).
    pub fn extend(&mut self, data: &[u8]) {
        if self.buf.capacity() == 0 {
            let mut want = data.len();
            if let Ok(Some(size)) = self.codec.peek_size(data) {
                want = want.max(size);
            }
            self.buf = BytesMut::with_capacity(want);
        }
        self.buf.extend_from_slice(data);
    }

    /// Appends the bytes of a read that filled what it was given, so more is on its way: the
    /// buffer first gets the room [`Self::recv_buf`] offers (a whole chunk when it holds none),
    /// and the direct receive that follows takes the rest of a large frame and the frames behind
    /// it in one call (with [`Self::extend`], a buffer sized for one frame needs a second receive
    /// for the next frame's start).
    pub fn extend_streaming(&mut self, data: &[u8]) {
        self.recv_buf();
        self.buf.extend_from_slice(data);
    }

    /// The buffer to receive into directly, with at least [`RECV_CHUNK`] bytes spare, or what
    /// the partial frame at the front still lacks when that is more (up to the frame bound).
    /// The receiver appends to it (`BytesMut::spare_capacity_mut` and `set_len`).
    pub fn recv_buf(&mut self) -> &mut BytesMut {
        let missing = match self.codec.peek_size(&self.buf) {
            Ok(Some(size)) => size.saturating_sub(self.buf.len()),
            _ => 0,
        };
        // Less room than a small read or than the frame still lacks: make room for a whole
        // chunk (or the rest of the frame).
        if self.buf.capacity() - self.buf.len() < missing.max(MIN_SPARE) {
            self.buf.reserve(missing.max(RECV_CHUNK));
        }
        &mut self.buf
    }

    /// Size of the frame at the front once its length prefix has arrived (it may still be
    /// incomplete), or the framing error it already shows.
    pub fn next_frame_size(&self) -> Result<Option<usize>, FrameError> {
        self.codec.peek_size(&self.buf)
    }

    /// Takes the next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameError> {
        self.codec.decode(&mut self.buf)
    }

    /// Takes and decodes the next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_command(&mut self) -> Result<Option<RemotingCommand>, StreamError> {
        match self.next_frame()? {
            Some(frame) => Ok(Some(RemotingCommand::decode(frame)?)),
            None => Ok(None),
        }
    }

    /// Gives the buffer back when it holds nothing: an idle connection keeps no receive memory.
    pub fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::RequestCode;
    use crate::frame::{encode_frame, FRAME_PREFIX_LEN};
    use bytes::BufMut;
    use proptest::prelude::*;

    fn commands(n: usize, body: usize) -> (Vec<RemotingCommand>, Vec<u8>) {
        let mut cmds = Vec::new();
        let mut stream = BytesMut::new();
        for i in 0..n {
            let mut cmd = RemotingCommand::request(RequestCode::HEART_BEAT, i as i32)
                .with_ext("k", format!("v{i}"));
            cmd.body = vec![i as u8; body + i].into();
            cmd.encode(&mut stream);
            cmds.push(cmd);
        }
        (cmds, stream.to_vec())
    }

    /// Receives `chunk` into the decoder the way a connection does straight from a socket.
    fn recv_into(d: &mut CommandDecoder, chunk: &[u8]) -> usize {
        let buf = d.recv_buf();
        let room = buf.capacity() - buf.len();
        let n = chunk.len().min(room);
        buf.put_slice(&chunk[..n]);
        n
    }

    proptest! {
        /// However the stream is cut, and whichever way the pieces arrive (received in place,
        /// copied, or copied with room for more), the same commands come out in order, and the buffer is given back when
        /// everything was taken.
        #[test]
        fn any_split_gives_the_same_commands(
            n in 0usize..6,
            body in 0usize..300,
            cuts in proptest::collection::vec((1usize..200, 0u8..3), 1..40),
        ) {
            let (cmds, stream) = commands(n, body);
            let mut d = CommandDecoder::new(1 << 20);
            let mut out = Vec::new();
            let (mut pos, mut i) = (0, 0);
            while pos < stream.len() {
                let (len, how) = cuts[i % cuts.len()];
                i += 1;
                let end = (pos + len).min(stream.len());
                let piece = &stream[pos..end];
                pos += match how {
                    0 => recv_into(&mut d, piece),
                    1 => { d.extend(piece); piece.len() }
                    _ => { d.extend_streaming(piece); piece.len() }
                };
                while let Some(cmd) = d.next_command().unwrap() {
                    out.push(cmd);
                }
                d.release_if_empty();
                if d.buffered() == 0 {
                    prop_assert_eq!(d.capacity(), 0);
                }
            }
            prop_assert_eq!(out.len(), cmds.len());
            for (a, b) in out.iter().zip(&cmds) {
                prop_assert_eq!(a.opaque, b.opaque);
                prop_assert_eq!(&a.ext_fields, &b.ext_fields);
                prop_assert_eq!(&a.body, &b.body);
            }
        }

        /// Arbitrary bytes never panic; an error is final and nothing larger than the bound
        /// comes out.
        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            max in 0usize..300,
        ) {
            let mut d = CommandDecoder::new(max);
            d.extend(&data);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(FRAME_PREFIX_LEN + f.header.len() + f.body.len() <= max);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        prop_assert!(d.next_frame_size().is_err());
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn errors_name_the_cause() {
        let mut d = CommandDecoder::new(64);
        d.extend(&[0, 0, 1, 0]);
        let e = d.next_command().unwrap_err();
        assert!(matches!(e, StreamError::Frame(FrameError::TooLarge { .. })));
        assert!(
            e.to_string().contains("exceeds the maximum of 64 bytes"),
            "{e}"
        );

        let mut d = CommandDecoder::new(64);
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, 0, b"{not json", b"");
        d.extend(&frame);
        let e = d.next_command().unwrap_err();
        assert!(matches!(e, StreamError::Command(_)), "{e}");
        assert!(e.to_string().starts_with("undecodable header"), "{e}");
    }

    #[test]
    fn first_bytes_allocate_what_the_frame_needs() {
        let (_, stream) = commands(1, 5000);
        let mut d = CommandDecoder::new(1 << 20);
        assert_eq!(d.capacity(), 0);
        d.extend(&stream[..100]);
        assert!(d.capacity() >= stream.len());
        assert!(d.capacity() < 2 * stream.len() + 64);
        d.extend(&stream[100..]);
        assert!(d.next_command().unwrap().is_some());
        d.release_if_empty();
        assert_eq!(d.capacity(), 0);
        // A receive into a partial large frame offers room for the whole rest of it.
        let (_, big) = commands(1, 200_000);
        d.extend(&big[..10]);
        let buf = d.recv_buf();
        assert!(buf.capacity() - buf.len() >= big.len() - 10);
    }

    #[test]
    fn streaming_bytes_leave_room_for_what_follows() {
        let (_, stream) = commands(2, 70_000);
        let mut d = CommandDecoder::new(1 << 20);
        d.extend_streaming(&stream[..4096]);
        assert!(d.capacity() >= RECV_CHUNK);
        // The rest of the first frame and the start of the second arrive in one receive.
        let first = d.next_frame_size().unwrap().unwrap();
        let n = recv_into(&mut d, &stream[4096..]);
        assert!(
            n > first - 4096,
            "received {n}, the first frame lacked {}",
            first - 4096
        );
        assert!(d.next_command().unwrap().is_some());
    }
}
