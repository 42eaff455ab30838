//! SEND_BATCH_MESSAGE body decoding: never panics; what decodes re-encodes and decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::message::{decode_batch, encode_batch};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode_batch(data) {
        let again = encode_batch(&entries).expect("decoded entries re-encode");
        assert_eq!(decode_batch(&again).expect("re-encoded batch decodes"), entries);
    }
});
