//! Properties decoding: never panics; accepted pairs survive a re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::message::{decode_properties, property_value};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let p = decode_properties(&s);
    assert_eq!(decode_properties(&p.encode()), p);
    for (k, v) in p.iter() {
        assert_eq!(property_value(&s, k), Some(v));
    }
});
