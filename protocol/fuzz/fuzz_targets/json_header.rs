//! JSON headers (serialize type 0): arbitrary header bytes never panic the decoder; a header that
//! decodes re-encodes into one that decodes to the same code, opaque, flag, version, remark and
//! ext fields, and from then on encoding and decoding are exact inverses; the cheap
//! `peek_code_and_opaque` scan agrees with the decoder wherever both answer.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::{RawFrame, RemotingCommand};

fn decode(header: Vec<u8>) -> Option<RemotingCommand> {
    RemotingCommand::decode(RawFrame {
        serialize_type: 0,
        header: Bytes::from(header),
        body: Bytes::new(),
    })
    .ok()
}

fuzz_target!(|data: &[u8]| {
    let peeked = RemotingCommand::peek_code_and_opaque(&RawFrame {
        serialize_type: 0,
        header: Bytes::copy_from_slice(data),
        body: Bytes::new(),
    });
    let Some(cmd) = decode(data.to_vec()) else {
        return;
    };
    // Where the cheap status scan answers for a header that decodes, it agrees.
    if let Some((code, opaque)) = peeked {
        assert_eq!((code, opaque), (cmd.code, cmd.opaque));
    }
    let header = cmd.encode_header();
    assert!(
        std::str::from_utf8(&header).is_ok(),
        "the JSON header is UTF-8"
    );
    let back = decode(header).expect("a re-encoded JSON header decodes");
    assert_eq!(back.code, cmd.code);
    assert_eq!(back.opaque, cmd.opaque);
    assert_eq!(back.flag, cmd.flag);
    assert_eq!(back.version, cmd.version);
    assert_eq!(back.remark, cmd.remark);
    assert_eq!(back.ext_fields, cmd.ext_fields);
    // The language may be normalized once (a number Saturn does not name is written as
    // "UNKNOWN" and read back as OTHER); after that the round trip is exact.
    let header = back.encode_header();
    let again = decode(header.clone()).expect("a re-encoded JSON header decodes");
    assert_eq!(again, back);
    assert_eq!(again.encode_header(), header);
});
