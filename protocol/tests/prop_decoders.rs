//! Property tests over every decoder of untrusted bytes outside `message`: frames, both command
//! header serializations, typed headers, JSON bodies and `quote_bare_keys`. The same properties
//! as the fuzz targets in `fuzz/fuzz_targets/`, at unit-test speed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use protocol::body::*;
use protocol::command::{CommandError, SerializeType};
use protocol::frame::encode_frame;
use protocol::header::*;
use protocol::{ExtFields, FrameCodec, FrameError, LanguageCode, RawFrame, RemotingCommand};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

// ------------------------------------------------------------------ helpers

/// Feeds `stream` to `codec` in chunks ending at `cuts` (positions, any order, clamped), draining
/// after each chunk; stops at the first error, as a connection would.
fn decode_chunked(
    codec: &FrameCodec,
    stream: &[u8],
    cuts: &[usize],
) -> (Vec<RawFrame>, Result<(), FrameError>, BytesMut) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut start = 0;
    for cut in cuts {
        buf.put_slice(&stream[start..cut]);
        start = cut;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Err(e), buf),
            }
        }
    }
    (frames, Ok(()), buf)
}

fn raw(serialize_type: u8, header: &[u8]) -> RawFrame {
    RawFrame {
        serialize_type,
        header: Bytes::copy_from_slice(header),
        body: Bytes::new(),
    }
}

/// Every ext key header.rs names (`field: Type = "key"`), read from its source.
fn header_keys() -> Vec<&'static str> {
    let src: &'static str = include_str!("../src/header.rs");
    let mut keys: Vec<&'static str> = src
        .split("= \"")
        .skip(1)
        .filter_map(|rest| {
            let key = &rest[..rest.find('"')?];
            let ident =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            ident.then_some(key)
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The struct names a `header! { ... }` invocation in header.rs defines.
fn header_type_names() -> Vec<String> {
    let src = include_str!("../src/header.rs");
    src.split("header! {")
        .skip(1)
        .filter_map(|block| {
            block
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("///") && !l.starts_with("#["))
                .and_then(|l| l.strip_suffix(" {"))
                .map(str::to_owned)
        })
        .collect()
}

/// The body types in body.rs that derive or implement `Deserialize`.
fn body_type_names() -> Vec<String> {
    let src = include_str!("../src/body.rs");
    let mut names = Vec::new();
    let mut derives_deserialize = false;
    for line in src.lines().map(str::trim) {
        if line.starts_with("#[derive(") {
            derives_deserialize = line.contains("Deserialize");
        } else if let Some(rest) = line.strip_prefix("pub struct ") {
            if derives_deserialize {
                names.push(rest.trim_end_matches(" {").to_owned());
            }
            derives_deserialize = false;
        } else if let Some(rest) = line.strip_prefix("pub type ") {
            names.push(rest.split(' ').next().unwrap_or_default().to_owned());
        }
    }
    // wire_enum! types implement Deserialize by hand.
    for block in src.split("wire_enum! {").skip(1) {
        let decl = block
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("///"))
            .unwrap_or_default();
        names.push(decl.split(' ').next().unwrap_or_default().to_owned());
    }
    names
}

macro_rules! header_types {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*;
            GetRouteInfoRequestHeader,
            RegisterBrokerRequestHeader,
            RegisterBrokerResponseHeader,
            UnregisterBrokerRequestHeader,
            BrokerHeartbeatRequestHeader,
            QueryDataVersionRequestHeader,
            QueryDataVersionResponseHeader,
            GetTopicsByClusterRequestHeader,
            DeleteTopicFromNamesrvRequestHeader,
            BrokerPermRequestHeader,
            WipeWritePermResponseHeader,
            AddWritePermResponseHeader,
            PutKvConfigRequestHeader,
            KvConfigKeyRequestHeader,
            GetKvConfigResponseHeader,
            GetKvListByNamespaceRequestHeader,
            GetBrokerMemberGroupRequestHeader,
            SendMessageRequestHeader,
            SendMessageRequestHeaderV2,
            SendMessageResponseHeader,
            EndTransactionRequestHeader,
            CheckTransactionStateRequestHeader,
            UnregisterClientRequestHeader,
            NotifyConsumerIdsChangedRequestHeader,
            PullMessageRequestHeader,
            PullMessageResponseHeader,
            QueryConsumerOffsetRequestHeader,
            OffsetResponseHeader,
            UpdateConsumerOffsetRequestHeader,
            ConsumerGroupRequestHeader,
            ConsumerSendMsgBackRequestHeader,
            QueueRequestHeader,
            SearchOffsetRequestHeader,
            EarliestMsgStoretimeResponseHeader,
            QueryMessageRequestHeader,
            QueryMessageResponseHeader,
            ViewMessageRequestHeader,
            CreateTopicRequestHeader,
            TopicRequestHeader,
            GetConsumeStatsRequestHeader,
            GetProducerConnectionListRequestHeader,
            DeleteSubscriptionGroupRequestHeader,
            ResetOffsetRequestHeader,
            QueryConsumeTimeSpanRequestHeader,
            GetConsumerRunningInfoRequestHeader,
            CloneGroupOffsetRequestHeader,
        )
    };
}

macro_rules! body_types {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*;
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
        )
    };
}

macro_rules! names {
    (; $($t:ident),* $(,)?) => { vec![$(stringify!($t)),*] };
}

fn check_header<H: CommandHeader + PartialEq + std::fmt::Debug>(ext: &ExtFields) {
    if let Ok(header) = H::decode(ext) {
        let encoded = header.to_ext();
        assert_eq!(H::decode(&encoded).as_ref(), Ok(&header));
        let mut merged = ext.clone();
        merged.extend(encoded);
        assert_eq!(H::decode(&merged), Ok(header));
    }
}

macro_rules! check_headers {
    ($ext:expr; $($t:ident),* $(,)?) => { $(check_header::<$t>($ext);)* };
}

/// Decodes `data` as `T`; what decodes re-encodes and decodes the same. Returns whether it decoded.
fn body_round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> bool {
    match decode_json::<T>(data) {
        Ok(value) => {
            let back: T = decode_json(&encode_json(&value)).expect("encoded JSON decodes");
            assert_eq!(back, value);
            true
        }
        Err(_) => false,
    }
}

macro_rules! body_round_trips {
    ($data:expr; $($t:ty),* $(,)?) => { 0 $(+ usize::from(body_round_trip::<$t>($data)))* };
}

fn check_quote_bare_keys(data: &[u8]) {
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
}

fn check_register_body(data: &[u8], compressed: bool) {
    if let Ok(body) = RegisterBrokerBody::decode(data, compressed) {
        let again = RegisterBrokerBody::decode(&body.encode_compressed(), true);
        if compressed {
            assert_eq!(again.expect("re-compressed body decodes"), body);
        }
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

// --------------------------------------------------------------- strategies

/// Field names of the body types, for JSON that gets past the first level.
const BODY_KEYS: &[&str] = &[
    "topic",
    "brokerName",
    "queueId",
    "stateVersion",
    "timestamp",
    "counter",
    "topicName",
    "readQueueNums",
    "writeQueueNums",
    "perm",
    "topicFilterType",
    "topicSysFlag",
    "order",
    "attributes",
    "topicConfigTable",
    "dataVersion",
    "topicConfigSerializeWrapper",
    "filterServerList",
    "table",
    "brokerAddrs",
    "cluster",
    "enableActingMaster",
    "zoneName",
    "orderTopicConf",
    "queueDatas",
    "brokerDatas",
    "filterServerTable",
    "brokerAddrTable",
    "clusterAddrTable",
    "topicList",
    "brokerAddr",
    "brokerMemberGroup",
    "classFilterMode",
    "subString",
    "tagsSet",
    "codeSet",
    "subVersion",
    "expressionType",
    "groupName",
    "consumeType",
    "messageModel",
    "consumeFromWhere",
    "subscriptionDataSet",
    "unitMode",
    "clientID",
    "producerDataSet",
    "consumerDataSet",
    "heartbeatFingerprint",
    "withoutSub",
    "consumerGroup",
    "clientId",
    "onlyThisBroker",
    "mqSet",
    "lockOKMQSet",
    "consumerIdList",
    "group",
    "subscriptionData",
    "consumeEnable",
    "retryQueueNums",
    "brokerId",
    "subscriptionGroupTable",
    "clientAddr",
    "language",
    "version",
    "connectionSet",
    "subscriptionTable",
    "groupList",
    "offsetTable",
    "minOffset",
    "maxOffset",
    "lastUpdateTimestamp",
    "brokerOffset",
    "consumerOffset",
    "pullOffset",
    "lastTimestamp",
    "0",
    "-1",
    "7",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-4i64..20).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(
            &[
                "CLUSTERING",
                "BROADCASTING",
                "MULTI_TAG",
                "CONSUME_POP",
                "TRUE",
                " 12 ",
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(BODY_KEYS), inner), 0..6).prop_map(
                |pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }
            ),
        ]
    })
}

/// A JSON header: each field `RemotingCommand` reads present or not, mostly with a value of a kind
/// it accepts (numbers as numbers, numeric strings or integral floats; ext values as scalars of
/// any type), plus up to two fields with values of any shape, repeated keys included.
fn json_header_text() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::Value;
    let numberish = || {
        prop_oneof![
            3 => any::<i32>().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            2 => "-?[0-9]{1,6}".prop_map(Value::from),
            1 => (-9i32..9).prop_map(|v| Value::from(f64::from(v))),
            1 => Just(Value::Null),
        ]
    };
    let scalar = || {
        prop_oneof![
            numberish(),
            any::<bool>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ]
    };
    let field = |name: &'static str, value: BoxedStrategy<Value>| {
        prop::option::weighted(0.8, value.prop_map(move |v| (name, v)))
    };
    let language = prop_oneof![
        numberish(),
        prop::sample::select(&["JAVA", "CPP", "RUST", "OTHER", "200", "x"][..])
            .prop_map(Value::from),
    ];
    let ext = prop::collection::btree_map(any::<String>(), scalar(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    let key = prop::sample::select(&["code", "extFields", "flag", "remark", "other"][..]);
    (
        (
            prop::option::weighted(0.95, any::<i32>().prop_map(|v| ("code", Value::from(v)))),
            field("opaque", numberish().boxed()),
            field("flag", numberish().boxed()),
            field("version", numberish().boxed()),
        ),
        (
            field("language", language.boxed()),
            field("remark", scalar().boxed()),
            field("extFields", prop_oneof![ext, Just(Value::Null)].boxed()),
            field("serializeTypeCurrentRPC", Just(Value::from("JSON")).boxed()),
        ),
        prop::option::weighted(0.2, (key, json_value())),
    )
        .prop_map(|((a, b, c, d), (e, f, g, h), chaos)| {
            let mut text = String::from("{");
            let fields = [a, b, c, d, e, f, g, h].into_iter().flatten().chain(chaos);
            for (i, (k, v)) in fields.enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&format!("{k:?}:{v}"));
            }
            text.push('}');
            text.into_bytes()
        })
}

/// JSON text for a value, with integer keys sometimes left bare the way fastjson writes them.
fn json_text() -> impl Strategy<Value = Vec<u8>> {
    (json_value(), any::<bool>()).prop_map(|(value, bare)| {
        let text = value.to_string();
        if bare {
            text.replace("\"0\":", "0:").replace("\"-1\":", " -1 :")
        } else {
            text
        }
        .into_bytes()
    })
}

fn ext_map() -> impl Strategy<Value = ExtFields> {
    let keys = header_keys();
    let key = prop_oneof![
        6 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let value = prop_oneof![
        prop::sample::select(
            &[
                "",
                " ",
                "0",
                "+1",
                " 1 ",
                "-1",
                "true",
                "TRUE",
                " True\t",
                "false",
                "yes",
                "1.0",
                "2147483648",
                "-2147483649",
                "9223372036854775807",
                "9223372036854775808",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<String>(),
    ];
    prop::collection::btree_map(key, value, 0..24).prop_map(|m| m.into_iter().collect())
}

fn non_empty() -> impl Strategy<Value = String> {
    // Any chars, escapes and control characters included; 1..=16 chars keeps keys under u16.
    prop::collection::vec(any::<char>(), 1..16).prop_map(|c| c.into_iter().collect())
}

/// Mostly UTF-8 text (empty included), sometimes arbitrary bytes.
fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "\\PC{0,5}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ]
}

fn command(serialize_type: SerializeType) -> impl Strategy<Value = RemotingCommand> {
    let binary = serialize_type == SerializeType::RocketMq;
    let code = if binary {
        (i16::MIN as i32..=i16::MAX as i32).boxed()
    } else {
        any::<i32>().boxed()
    };
    let version = if binary {
        (i16::MIN as i32..=i16::MAX as i32).boxed()
    } else {
        any::<i32>().boxed()
    };
    // JSON carries languages by name, so only named ones survive; binary carries any number.
    let language = if binary {
        any::<u8>().prop_map(LanguageCode::from_num).boxed()
    } else {
        prop::sample::select(LanguageCode::ALL).boxed()
    };
    (
        code,
        language,
        version,
        any::<i32>(),
        any::<i32>(),
        prop::option::of(non_empty()),
        prop::collection::btree_map(non_empty(), non_empty(), 0..6),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            move |(code, language, version, opaque, flag, remark, ext_fields, body)| {
                RemotingCommand {
                    code,
                    language,
                    version,
                    opaque,
                    flag,
                    remark,
                    ext_fields: ext_fields.into_iter().collect(),
                    body: Bytes::from(body),
                    serialize_type,
                }
            },
        )
}

// ------------------------------------------------------------------- tests

#[test]
fn type_lists_cover_header_rs_and_body_rs() {
    let mut listed: Vec<&str> = header_types!(names!());
    let mut defined = header_type_names();
    listed.sort_unstable();
    defined.sort_unstable();
    assert_eq!(
        listed, defined,
        "header_types! must list every header in header.rs"
    );

    let mut listed: Vec<&str> = body_types!(names!());
    let mut defined = body_type_names();
    listed.sort_unstable();
    defined.sort_unstable();
    assert_eq!(
        listed, defined,
        "body_types! must list every body type in body.rs"
    );

    // The fuzz targets decode the same types.
    let typed = include_str!("../fuzz/fuzz_targets/typed_headers.rs");
    let bodies = include_str!("../fuzz/fuzz_targets/json_bodies.rs");
    for name in header_type_names() {
        assert!(
            typed.contains(&format!("{name},")),
            "typed_headers misses {name}"
        );
    }
    for name in body_type_names() {
        assert!(
            bodies.contains(&format!("{name},")),
            "json_bodies misses {name}"
        );
    }
    assert!(header_keys().len() > 50);
}

#[test]
fn bare_keys_decode_like_quoted_ones() {
    let quoted: ConsumerOffsetSerializeWrapper =
        decode_json(br#"{"offsetTable":{"T@g":{"0":12,"-1":7}}}"#).unwrap();
    let bare: ConsumerOffsetSerializeWrapper =
        decode_json(b"{\"offsetTable\":{\"T@g\":{0:12, -1 :7}}}").unwrap();
    assert_eq!(bare, quoted);
    assert_eq!(quoted.offset_table["T@g"][&-1], 7);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // ------------------------------------------------------------- frames

    #[test]
    fn frame_codec_never_panics_and_ignores_chunking(
        stream in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in 0usize..512,
    ) {
        let codec = FrameCodec::new(max);
        let (frames, result, rest) = decode_chunked(&codec, &stream, &cuts);
        let (whole_frames, whole_result, whole_rest) = decode_chunked(&codec, &stream, &[]);
        prop_assert_eq!(&frames, &whole_frames);
        prop_assert_eq!(&result, &whole_result);
        if result.is_ok() {
            // After an error the chunked run stopped feeding, so only then do the rests differ.
            prop_assert_eq!(rest, whole_rest);
        }
        for frame in frames {
            prop_assert!(8 + frame.header.len() + frame.body.len() <= max);
            let _ = RemotingCommand::decode(frame);
        }
    }

    /// Streams that start with a plausible prefix, so that the codec gets past the length checks.
    #[test]
    fn frame_codec_never_panics_on_plausible_prefixes(
        total in 0u32..64,
        word in any::<u32>(),
        rest in prop::collection::vec(any::<u8>(), 0..96),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = total.to_be_bytes().to_vec();
        stream.extend_from_slice(&(word & 0x0300_003F).to_be_bytes());
        stream.extend_from_slice(&rest);
        let codec = FrameCodec::new(128);
        let (frames, result, _) = decode_chunked(&codec, &stream, &cuts);
        let (whole_frames, whole_result, _) = decode_chunked(&codec, &stream, &[]);
        prop_assert_eq!(&frames, &whole_frames);
        prop_assert_eq!(result, whole_result);
    }

    #[test]
    fn frames_round_trip(
        frames in prop::collection::vec(
            (0u8..4, prop::collection::vec(any::<u8>(), 0..64), prop::collection::vec(any::<u8>(), 0..64)),
            0..6,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut stream = BytesMut::new();
        for (t, header, body) in &frames {
            encode_frame(&mut stream, *t, header, body);
        }
        let (decoded, result, rest) = decode_chunked(&FrameCodec::new(8 + 128), &stream, &cuts);
        prop_assert_eq!(result, Ok(()));
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decoded.len(), frames.len());
        for (frame, (t, header, body)) in decoded.iter().zip(&frames) {
            prop_assert_eq!(frame.serialize_type, *t);
            prop_assert_eq!(&frame.header[..], &header[..]);
            prop_assert_eq!(&frame.body[..], &body[..]);
        }
    }

    // ----------------------------------------------------------- commands

    #[test]
    fn command_decode_never_panics(
        serialize_type in 0u8..3,
        header in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let result = RemotingCommand::decode(raw(serialize_type, &header));
        if serialize_type == 2 {
            prop_assert_eq!(result, Err(CommandError::UnknownSerializeType(2)));
        }
    }

    #[test]
    fn json_header_never_panics_and_round_trips(header in prop_oneof![json_header_text(), json_text()]) {
        if let Ok(cmd) = RemotingCommand::decode(raw(0, &header)) {
            let back = RemotingCommand::decode(raw(0, &cmd.encode_header())).unwrap();
            prop_assert_eq!(back.code, cmd.code);
            prop_assert_eq!(back.opaque, cmd.opaque);
            prop_assert_eq!(back.flag, cmd.flag);
            prop_assert_eq!(back.version, cmd.version);
            prop_assert_eq!(&back.remark, &cmd.remark);
            prop_assert_eq!(&back.ext_fields, &cmd.ext_fields);
            // A language number without a name is normalized once; then the round trip is exact.
            let again = RemotingCommand::decode(raw(0, &back.encode_header())).unwrap();
            prop_assert_eq!(again, back);
        }
    }

    #[test]
    fn binary_header_never_panics_and_round_trips(
        fixed in prop::collection::vec(any::<u8>(), 13..=13),
        remark in text_bytes(),
        ext in prop::collection::vec((text_bytes(), text_bytes()), 0..5),
        lie in prop::option::of((0usize..3, any::<i32>())),
    ) {
        // A well-formed layout around arbitrary contents, with an optional lying length.
        let mut ext_bytes = Vec::new();
        for (k, v) in &ext {
            ext_bytes.put_u16(k.len() as u16);
            ext_bytes.put_slice(k);
            ext_bytes.put_u32(v.len() as u32);
            ext_bytes.put_slice(v);
        }
        let mut header = fixed;
        header.put_u32(remark.len() as u32);
        header.put_slice(&remark);
        header.put_u32(ext_bytes.len() as u32);
        header.put_slice(&ext_bytes);
        if let Some((which, value)) = lie {
            let at = [13, 17 + remark.len(), 21 + remark.len()][which];
            if at + 4 <= header.len() {
                header[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
        }
        if let Ok(cmd) = RemotingCommand::decode(raw(1, &header)) {
            let back = RemotingCommand::decode(raw(1, &cmd.encode_header())).unwrap();
            prop_assert_eq!(back, cmd);
        }
    }

    #[test]
    fn commands_round_trip_json(cmd in command(SerializeType::Json), cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let bytes = cmd.to_bytes();
        let (frames, result, rest) = decode_chunked(&FrameCodec::default(), &bytes, &cuts);
        prop_assert_eq!(result, Ok(()));
        prop_assert!(rest.is_empty());
        prop_assert_eq!(frames.len(), 1);
        let back = RemotingCommand::decode(frames.into_iter().next().unwrap()).unwrap();
        prop_assert_eq!(back, cmd);
    }

    #[test]
    fn commands_round_trip_binary(cmd in command(SerializeType::RocketMq), cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let bytes = cmd.to_bytes();
        let (frames, result, rest) = decode_chunked(&FrameCodec::default(), &bytes, &cuts);
        prop_assert_eq!(result, Ok(()));
        prop_assert!(rest.is_empty());
        prop_assert_eq!(frames.len(), 1);
        let back = RemotingCommand::decode(frames.into_iter().next().unwrap()).unwrap();
        prop_assert_eq!(back, cmd);
    }

    // ------------------------------------------------------------ headers

    #[test]
    fn typed_headers_never_panic_and_round_trip(ext in ext_map()) {
        if let Ok(send) = SendMessageRequestHeader::decode_any(&ext) {
            let v2: SendMessageRequestHeaderV2 = send.clone().into();
            prop_assert_eq!(SendMessageRequestHeader::decode_any(&v2.to_ext()), Ok(send.clone()));
            prop_assert_eq!(SendMessageRequestHeader::decode_any(&send.to_ext()), Ok(send));
        }
        header_types!(check_headers!(&ext));
    }

    // ------------------------------------------------------------- bodies

    #[test]
    fn bodies_never_panic_on_bytes(data in prop::collection::vec(any::<u8>(), 0..128)) {
        check_quote_bare_keys(&data);
        let _ = body_types!(body_round_trips!(&data));
        check_register_body(&data, false);
        check_register_body(&data, true);
    }

    #[test]
    fn bodies_decode_and_round_trip_json(data in json_text()) {
        check_quote_bare_keys(&data);
        let _ = body_types!(body_round_trips!(&data));
        check_register_body(&data, false);
    }

    #[test]
    fn compressed_register_body_never_panics(
        data_version in json_text(),
        count in -2i32..5,
        configs in prop::collection::vec(
            ("[ -~]{0,6}", -1i32..20, -1i32..20, 0i32..8, prop::sample::select(&["SINGLE_TAG", "MULTI_TAG", "1", "x"][..]), "\\{[ -~]{0,10}"),
            0..4,
        ),
        raw_configs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..2),
        filter_servers in prop::option::of(json_text()),
        lie in prop::option::of(any::<i32>()),
    ) {
        let put = |raw: &mut Vec<u8>, bytes: &[u8]| {
            raw.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            raw.extend_from_slice(bytes);
        };
        let mut raw = Vec::new();
        put(&mut raw, &data_version);
        raw.extend_from_slice(&count.to_be_bytes());
        for (name, r, w, p, filter, attrs) in &configs {
            put(&mut raw, format!("{name} {r} {w} {p} {filter} {attrs}").as_bytes());
        }
        for bytes in &raw_configs {
            put(&mut raw, bytes);
        }
        if let Some(list) = &filter_servers {
            put(&mut raw, list);
        }
        if let Some(len) = lie {
            raw.extend_from_slice(&len.to_be_bytes());
        }
        check_register_body(&deflate(&raw), true);
        for cut in [0, raw.len() / 2, raw.len().saturating_sub(1)] {
            check_register_body(&deflate(&raw[..cut]), true);
        }
    }

    #[test]
    fn topic_config_text_round_trips(text in "[ -~]{0,40}") {
        if let Some(config) = TopicConfig::decode_text(&text) {
            prop_assert_eq!(TopicConfig::decode_text(&config.encode_text()), Some(config));
        }
    }

    #[test]
    fn quote_bare_keys_never_panics(data in prop::collection::vec(
        prop::sample::select(&b"{}[],:\"\\- 0123abc"[..]), 0..64,
    )) {
        check_quote_bare_keys(&data);
        let _: Result<BTreeMap<String, serde_json::Value>, _> = decode_json(&data);
    }
}
