//! A connection's receive side: arbitrary bytes arrive in arbitrary pieces, each copied in
//! (`CommandDecoder::extend`, or `extend_streaming` with room for more) or received straight
//! into the buffer (`recv_buf`), with the
//! buffer given back whenever it is empty. Never panics; the commands and the outcome (first
//! error, or what is left buffered) equal those of decoding the whole stream at once; no frame
//! exceeds the bound; an emptied buffer holds no memory.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::BufMut;
use libfuzzer_sys::fuzz_target;
use protocol::{CommandDecoder, RawFrame};

/// Takes every whole frame; `Err` carries the first error's text.
fn drain(d: &mut CommandDecoder, frames: &mut Vec<RawFrame>) -> Result<(), String> {
    while let Some(frame) = d.next_frame().map_err(|e| e.to_string())? {
        frames.push(frame);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let max = usize::from(u16::arbitrary(&mut u).unwrap_or(0) & 0x3FF);
    let mut d = CommandDecoder::new(max);
    let mut stream = Vec::new();
    let mut frames = Vec::new();
    let mut result = Ok(());
    while !u.is_empty() {
        let how = u8::arbitrary(&mut u).unwrap_or(0) % 3;
        let len = usize::from(u8::arbitrary(&mut u).unwrap_or(0));
        let chunk = u.bytes(len.min(u.len())).unwrap_or(&[]);
        match how {
            0 => {
                let buf = d.recv_buf();
                assert!(buf.capacity() - buf.len() >= 4096, "recv_buf offers room");
                buf.put_slice(chunk);
            }
            1 => d.extend(chunk),
            _ => {
                let fresh = d.capacity() == 0;
                d.extend_streaming(chunk);
                if fresh {
                    assert!(d.capacity() >= protocol::RECV_CHUNK, "room for what follows");
                }
            }
        }
        stream.extend_from_slice(chunk);
        result = drain(&mut d, &mut frames);
        if result.is_err() {
            break;
        }
        d.release_if_empty();
        if d.buffered() == 0 {
            assert_eq!(d.capacity(), 0, "an emptied buffer is given back");
        }
    }
    let mut whole = CommandDecoder::new(max);
    whole.extend(&stream);
    let mut whole_frames = Vec::new();
    let whole_result = drain(&mut whole, &mut whole_frames);
    assert_eq!(whole_frames, frames);
    assert_eq!(whole_result, result);
    if result.is_ok() {
        assert_eq!(whole.buffered(), d.buffered());
    }
    for frame in frames {
        assert!(8 + frame.header.len() + frame.body.len() <= max);
        let _ = protocol::RemotingCommand::decode(frame);
    }
});
