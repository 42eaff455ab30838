//! JSON bodies: arbitrary bytes never panic `quote_bare_keys`, `decode_json` into any body type,
//! `TopicConfig::decode_text` or `RegisterBrokerBody::decode` (plain JSON, compressed, and the
//! input deflated so that the compressed layout itself gets fuzzed). What decodes re-encodes and
//! decodes to the same value.
#![no_main]

use std::borrow::Cow;
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use protocol::body::*;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = decode_json::<T>(data) {
        let encoded = encode_json(&value);
        let back: T = decode_json(&encoded).expect("encoded JSON decodes");
        assert_eq!(back, value);
    }
}

macro_rules! round_trip_all {
    ($data:expr; $($t:ty),* $(,)?) => { $(round_trip::<$t>($data);)* };
}

fn check_register_body(data: &[u8], compressed: bool) {
    let Ok(body) = RegisterBrokerBody::decode(data, compressed) else {
        return;
    };
    let again = RegisterBrokerBody::decode(&body.encode_compressed(), true);
    if compressed {
        // The compressed layout keeps what it read (the text form drops sys flag and order, which
        // it never carried).
        assert_eq!(again.expect("re-compressed body decodes"), body);
    }
}

fuzz_target!(|data: &[u8]| {
    // quote_bare_keys: borrowed means unchanged; idempotent; valid JSON is never rewritten;
    // UTF-8 stays UTF-8.
    let quoted = quote_bare_keys(data);
    if let Cow::Borrowed(b) = quoted {
        assert_eq!(b, data);
    }
    assert_eq!(&quote_bare_keys(&quoted)[..], &quoted[..]);
    if serde_json::from_slice::<IgnoredAny>(data).is_ok() {
        assert!(
            matches!(quoted, Cow::Borrowed(_)),
            "valid JSON was rewritten"
        );
    }
    if std::str::from_utf8(data).is_ok() {
        assert!(std::str::from_utf8(&quoted).is_ok());
    }

    round_trip_all!(data;
        MessageQueue,
        DataVersion,
        TopicConfig,
        TopicConfigSerializeWrapper,
        RegisterBrokerBody,
        KvTable,
        QueueData,
        BrokerData,
        TopicRouteData,
        ClusterInfo,
        TopicList,
        BrokerMemberGroup,
        GetBrokerMemberGroupResponseBody,
        SubscriptionData,
        ConsumerData,
        ProducerData,
        HeartbeatData,
        LockBatchRequestBody,
        UnlockBatchRequestBody,
        LockBatchResponseBody,
        GetConsumerListByGroupResponseBody,
        CheckClientRequestBody,
        SubscriptionGroupConfig,
        SubscriptionGroupWrapper,
        Connection,
        ConsumerConnection,
        ProducerConnection,
        GroupList,
        ConsumerOffsetSerializeWrapper,
        TopicOffset,
        OffsetWrapper,
        ConsumeType,
        MessageModel,
        ConsumeFromWhere,
        TopicFilterType,
    );

    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(config) = TopicConfig::decode_text(text) {
            assert_eq!(
                TopicConfig::decode_text(&config.encode_text()),
                Some(config)
            );
        }
    }

    check_register_body(data, false);
    check_register_body(data, true);
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("deflate to memory");
    check_register_body(&enc.finish().expect("deflate to memory"), true);
});
