//! ROCKETMQ binary headers (serialize type 1): arbitrary header bytes never panic the decoder; a
//! header that decodes re-encodes into one that decodes to the same command.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::{RawFrame, RemotingCommand};

fn decode(header: Vec<u8>, body: Bytes) -> Option<RemotingCommand> {
    RemotingCommand::decode(RawFrame {
        serialize_type: 1,
        header: Bytes::from(header),
        body,
    })
    .ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(cmd) = decode(data.to_vec(), Bytes::from_static(b"body")) else {
        return;
    };
    assert_eq!(&cmd.body[..], b"body");
    assert!(cmd.remark.as_ref().map_or(true, |r| !r.is_empty()));
    assert!(cmd
        .ext_fields
        .iter()
        .all(|(k, v)| !k.is_empty() && !v.is_empty()));
    let header = cmd.encode_header();
    // Fixed fields and remark come back byte for byte. The ext fields may shrink (entries with an
    // empty key or value and repeated keys are dropped, the rest sorted) and the decoder ignores
    // bytes after them, so the whole header is never longer than the input.
    assert!(header.len() <= data.len());
    let fixed = 17 + cmd.remark.as_ref().map_or(0, String::len);
    assert_eq!(&header[..fixed], &data[..fixed]);
    let back = decode(header.clone(), Bytes::from_static(b"body"))
        .expect("a re-encoded binary header decodes");
    assert_eq!(back.code, cmd.code);
    assert_eq!(back.opaque, cmd.opaque);
    assert_eq!(back.flag, cmd.flag);
    assert_eq!(back.ext_fields, cmd.ext_fields);
    assert_eq!(back, cmd);
    assert_eq!(back.encode_header(), header);
});
