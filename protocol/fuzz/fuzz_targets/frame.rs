//! Incremental frame decoding: arbitrary bytes, fed in arbitrary chunks to a `FrameCodec` with a
//! small maximum frame size, never panic; the frames (and the error, if any) do not depend on how
//! the stream was split; every frame respects the maximum; each frame goes through
//! `RemotingCommand::decode`, and a command that decodes re-encodes into a frame that decodes to
//! the same command.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{FrameCodec, FrameError, RawFrame, RemotingCommand};

/// Decodes everything `buf` holds; stops at the first error.
fn drain(
    codec: &FrameCodec,
    buf: &mut BytesMut,
    frames: &mut Vec<RawFrame>,
) -> Result<(), FrameError> {
    while let Some(frame) = codec.decode(buf)? {
        frames.push(frame);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // 0..=1023: also below the 8-byte prefix, which must not confuse the codec.
    let max = usize::from(u16::arbitrary(&mut u).unwrap_or(0) & 0x3FF);
    let codec = FrameCodec::new(max);

    // Chunked: a length byte, then up to that many bytes, repeatedly.
    let mut stream = Vec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut chunked_result = Ok(());
    while !u.is_empty() {
        let len = usize::from(u8::arbitrary(&mut u).unwrap_or(0));
        let chunk = u.bytes(len.min(u.len())).unwrap_or(&[]);
        stream.extend_from_slice(chunk);
        buf.put_slice(chunk);
        chunked_result = drain(&codec, &mut buf, &mut frames);
        if chunked_result.is_err() {
            break;
        }
    }
    // `peek_size` agrees with `decode` on whatever is left.
    let _ = codec.peek_size(&buf);

    // All at once: the same frames and the same outcome, as long as the chunked run saw all of the
    // stream (it stops feeding at its first error, as a connection would).
    let mut whole = BytesMut::from(&stream[..]);
    let mut whole_frames = Vec::new();
    let whole_result = drain(&codec, &mut whole, &mut whole_frames);
    assert_eq!(whole_frames, frames);
    assert_eq!(whole_result, chunked_result);
    if whole_result.is_ok() {
        assert_eq!(whole, buf);
    }

    for frame in frames {
        let size = 8 + frame.header.len() + frame.body.len();
        assert!(
            size <= max,
            "frame of {size} bytes passed a maximum of {max}"
        );
        let Ok(cmd) = RemotingCommand::decode(frame) else {
            continue;
        };
        let mut encoded = BytesMut::new();
        cmd.encode(&mut encoded);
        let again = FrameCodec::default()
            .decode(&mut encoded)
            .expect("an encoded command frames")
            .expect("an encoded command is a whole frame");
        assert!(encoded.is_empty());
        let back = RemotingCommand::decode(again).expect("an encoded command decodes");
        assert_eq!(back.code, cmd.code);
        assert_eq!(back.opaque, cmd.opaque);
        assert_eq!(back.flag, cmd.flag);
        assert_eq!(back.ext_fields, cmd.ext_fields);
        assert_eq!(back.body, cmd.body);
    }
});
