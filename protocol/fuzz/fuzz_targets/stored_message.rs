//! Stored-message decoding: never panics; what decodes re-encodes and decodes the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::message::{decode_all, RecordView, StoredMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok((view, len)) = RecordView::parse(data) {
        assert!(len <= data.len());
        let _ = view.verify_body_crc(0);
    }
    if let Ok((msg, len)) = StoredMessage::decode_slice(data) {
        assert!(len <= data.len());
        // What decodes re-encodes, and the re-encoded record decodes to the same fields. (Not
        // always to the same bytes: a V1 topic of 128..=255 bytes is re-encoded as V2, and a port
        // beyond 16 bits is kept modulo 2^16.)
        let input = msg.as_input();
        let again = input.to_bytes().expect("a decoded record re-encodes");
        let (back, n) = StoredMessage::decode(&again).expect("a re-encoded record decodes");
        assert_eq!(n, again.len());
        assert_eq!(back.as_input(), input);
    }
    let _ = decode_all(Bytes::copy_from_slice(data));
});
