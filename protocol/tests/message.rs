//! Stored-message codec: golden vectors, round trips and property tests over hostile input.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use protocol::message::{
    self, body_crc, decode_all, decode_batch, decode_offset_msg_id, decode_properties,
    encode_batch, encode_properties, offset_msg_id, properties, property_value, tag_hash,
    BatchEntry, MessageError, RecordInput, RecordView, StoredMessage, MESSAGE_MAGIC_V1,
    MESSAGE_MAGIC_V2,
};

fn input<'a>(topic: &'a str, body: &'a [u8], props: &'a str) -> RecordInput<'a> {
    RecordInput {
        topic,
        queue_id: 1,
        flag: 0,
        body,
        properties: props,
        sys_flag: 0,
        born_timestamp: 1_600_000_000_000,
        born_host: "127.0.0.1:40000".parse().unwrap(),
        store_timestamp: 1_600_000_000_001,
        store_host: "192.168.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        queue_offset: 0,
        phys_offset: 0,
    }
}

/// A record laid out by hand, field by field, as RocketMQ's `CommitLog.DefaultAppendMessageCallback`
/// writes it, compared byte for byte with the encoder.
#[test]
fn golden_record_bytes() {
    let props = encode_properties(&[(properties::TAGS, "TagA"), (properties::UNIQ_KEY, "U1")]);
    let mut i = input("TopicTest", b"Hello RocketMQ", &props);
    i.queue_id = 2;
    i.flag = 5;
    i.queue_offset = 7;
    i.phys_offset = 0x1234;
    i.reconsume_times = 1;
    let got = i.to_bytes().unwrap();

    let mut want: Vec<u8> = Vec::new();
    let total = 91 + 14 + 9 + props.len();
    want.extend_from_slice(&(total as i32).to_be_bytes());
    want.extend_from_slice(&(-626843481i32).to_be_bytes());
    want.extend_from_slice(&1774740973i32.to_be_bytes()); // CRC32("Hello RocketMQ") & 0x7FFFFFFF
    want.extend_from_slice(&2i32.to_be_bytes());
    want.extend_from_slice(&5i32.to_be_bytes());
    want.extend_from_slice(&7i64.to_be_bytes());
    want.extend_from_slice(&0x1234i64.to_be_bytes());
    want.extend_from_slice(&0i32.to_be_bytes());
    want.extend_from_slice(&1_600_000_000_000i64.to_be_bytes());
    want.extend_from_slice(&[127, 0, 0, 1, 0, 0, 0x9C, 0x40]);
    want.extend_from_slice(&1_600_000_000_001i64.to_be_bytes());
    want.extend_from_slice(&[192, 168, 0, 1, 0, 0, 0x2A, 0x9F]);
    want.extend_from_slice(&1i32.to_be_bytes());
    want.extend_from_slice(&0i64.to_be_bytes());
    want.extend_from_slice(&14i32.to_be_bytes());
    want.extend_from_slice(b"Hello RocketMQ");
    want.push(9);
    want.extend_from_slice(b"TopicTest");
    want.extend_from_slice(&(props.len() as i16).to_be_bytes());
    want.extend_from_slice(props.as_bytes());
    assert_eq!(&got[..], &want[..]);

    let (m, n) = StoredMessage::decode(&got).unwrap();
    assert_eq!(n, total);
    assert_eq!(m.magic, MESSAGE_MAGIC_V1);
    assert_eq!(m.offset_msg_id(), "C0A8000100002A9F0000000000001234");
    assert_eq!(tag_hash(m.property(properties::TAGS).unwrap()), 2598919);
}

#[test]
fn golden_values() {
    assert_eq!(tag_hash("TagA"), 2598919);
    assert_eq!(body_crc(b"123456789"), 0x4BF4_3926);
    let host: SocketAddr = "192.168.0.1:10911".parse().unwrap();
    assert_eq!(
        offset_msg_id(host, 0x1234),
        "C0A8000100002A9F0000000000001234"
    );
    assert_eq!(
        decode_offset_msg_id("C0A8000100002A9F0000000000001234").unwrap(),
        (host, 0x1234)
    );
}

#[test]
fn v2_magic_for_long_topics() {
    let t127 = "a".repeat(127);
    let t128 = "a".repeat(128);
    let b1 = input(&t127, b"", "").to_bytes().unwrap();
    let b2 = input(&t128, b"", "").to_bytes().unwrap();
    assert_eq!(&b1[4..8], &MESSAGE_MAGIC_V1.to_be_bytes());
    assert_eq!(&b2[4..8], &MESSAGE_MAGIC_V2.to_be_bytes());
    assert_eq!(b2.len(), b1.len() + 2);
    assert_eq!(StoredMessage::decode(&b2).unwrap().0.topic, t128);
}

#[test]
fn errors_name_offsets_in_concatenations() {
    let mut buf = BytesMut::new();
    input("t", b"a", "").encode(&mut buf).unwrap();
    let first = buf.len();
    input("t", b"b", "").encode(&mut buf).unwrap();
    let body_at = buf.len() - 1 - 1 - 2 - 1; // body 'b', topic len, topic, prop len
    buf[body_at] = b'c';
    match decode_all(buf.freeze()) {
        Err(MessageError::BodyCrc { offset, .. }) => assert_eq!(offset, first + 8),
        other => panic!("{other:?}"),
    }
}

fn arb_host() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn record_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = RecordView::parse(&bytes);
        let _ = StoredMessage::decode_slice(&bytes);
        let _ = decode_all(Bytes::from(bytes.clone()));
    }

    #[test]
    fn record_decoder_never_panics_on_mutated_records(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        pos in 0usize..200, val in any::<u8>(), cut in 0usize..300,
    ) {
        let mut b = input("topic", &body, "A\u{1}B\u{2}").to_bytes().unwrap().to_vec();
        let p = pos % b.len();
        b[p] = val;
        b.truncate(cut.min(b.len()));
        let _ = StoredMessage::decode_slice(&b);
    }

    #[test]
    fn record_round_trip(
        topic in "[A-Za-z0-9_%|-]{0,200}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
        props in proptest::collection::vec(("[A-Z_]{1,12}", "[ -~]{1,20}"), 0..5),
        born in arb_host(), store in arb_host(),
        sys_flag in any::<i32>(), queue_id in any::<i32>(), flag in any::<i32>(),
        ts in any::<i64>(), qo in any::<i64>(), po in any::<i64>(), rt in any::<i32>(), pto in any::<i64>(),
    ) {
        let props = encode_properties(&props);
        let i = RecordInput {
            topic: &topic, queue_id, flag, body: &body, properties: &props, sys_flag,
            born_timestamp: ts, born_host: born, store_timestamp: ts.wrapping_add(1), store_host: store,
            reconsume_times: rt, prepared_transaction_offset: pto, queue_offset: qo, phys_offset: po,
        };
        let bytes = i.to_bytes().unwrap();
        prop_assert_eq!(bytes.len(), message::encoded_len(topic.len(), body.len(), props.len(), i.effective_sys_flag()));
        let (m, n) = StoredMessage::decode(&bytes).unwrap();
        prop_assert_eq!(n, bytes.len());
        let mut expect = i;
        expect.sys_flag = i.effective_sys_flag();
        prop_assert_eq!(m.as_input(), expect);
    }

    #[test]
    fn properties_never_panic_and_round_trip(s in "[\\x00-\\x05a-c\u{e9}\u{1F600}]{0,40}") {
        let p = decode_properties(&s);
        // Re-encoding what was accepted decodes to the same pairs.
        prop_assert_eq!(decode_properties(&p.encode()), p.clone());
        for (k, v) in p.iter() {
            let ok = !k.is_empty()
                && !v.is_empty()
                && !k.contains(properties::PROPERTY_SEPARATOR)
                && !k.contains(properties::NAME_VALUE_SEPARATOR)
                && !v.contains(properties::PROPERTY_SEPARATOR);
            prop_assert!(ok);
            prop_assert_eq!(property_value(&s, k), Some(v));
        }
    }

    #[test]
    fn properties_encode_decode(pairs in proptest::collection::btree_map("[A-Za-z_]{1,10}", "[ -~]{1,30}", 0..8)) {
        let v: Vec<(String, String)> = pairs.into_iter().collect();
        let decoded = decode_properties(&encode_properties(&v)).into_vec();
        prop_assert_eq!(decoded, v);
    }

    #[test]
    fn batch_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_batch(&bytes);
    }

    #[test]
    fn batch_round_trip(entries in proptest::collection::vec(
        (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..100), "[ -~]{0,40}"), 0..6)
    ) {
        let entries: Vec<BatchEntry> = entries.into_iter()
            .map(|(flag, body, properties)| BatchEntry { flag, body: body.into(), properties })
            .collect();
        let buf = encode_batch(&entries).unwrap();
        prop_assert_eq!(decode_batch(&buf).unwrap(), entries);
    }

    #[test]
    fn msg_id_decoder_never_panics(s in "\\PC{0,60}") {
        let _ = decode_offset_msg_id(&s);
    }

    #[test]
    fn msg_id_round_trip(host in arb_host(), off in any::<i64>()) {
        prop_assert_eq!(decode_offset_msg_id(&offset_msg_id(host, off)).unwrap(), (host, off));
    }
}
