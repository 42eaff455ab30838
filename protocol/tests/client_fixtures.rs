//! Frames captured from the real third-party clients (see
//! `tests/fixtures/clients/README.md`) decode to the expected typed requests.

use std::path::Path;

use bytes::BytesMut;
use protocol::body::{decode_json, ConsumeType, HeartbeatData, MessageModel};
use protocol::header::{
    CommandHeader, ConsumerGroupRequestHeader, GetRouteInfoRequestHeader, PullMessageRequestHeader,
    QueryConsumerOffsetRequestHeader, QueueRequestHeader, SendMessageRequestHeader,
    UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use protocol::message::{decode_batch, property_value, tag_hash};
use protocol::{FrameCodec, LanguageCode, RemotingCommand, RequestCode};

const CLIENTS: &[(&str, LanguageCode)] = &[
    ("rocketmq-0.4.4", LanguageCode::CPP),
    ("rocketmq-python-cvs-2.1.0.3", LanguageCode::CPP),
    ("ali-ons-3.12.0", LanguageCode::JAVA),
];

fn load(client: &str) -> Vec<(String, RemotingCommand)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients")
        .join(client);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{client}: only {} fixtures", names.len());
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            let mut buf = BytesMut::from(&bytes[..]);
            let frame = FrameCodec::default()
                .decode(&mut buf)
                .unwrap_or_else(|e| panic!("{client}/{name}: {e}"))
                .unwrap_or_else(|| panic!("{client}/{name}: incomplete frame"));
            assert!(buf.is_empty(), "{client}/{name}: trailing bytes");
            let cmd =
                RemotingCommand::decode(frame).unwrap_or_else(|e| panic!("{client}/{name}: {e}"));
            (name, cmd)
        })
        .collect()
}

#[test]
fn every_fixture_decodes_to_its_typed_request() {
    for (client, language) in CLIENTS {
        let mut seen_codes = std::collections::BTreeSet::new();
        for (name, cmd) in load(client) {
            let what = format!("{client}/{name}");
            let code: i32 = name.split('-').nth(1).unwrap().parse().unwrap();
            assert_eq!(cmd.code, code, "{what}");
            assert_eq!(cmd.language, *language, "{what}");
            assert!(!cmd.is_response(), "{what}");
            seen_codes.insert(code);
            let ext = &cmd.ext_fields;
            match cmd.request_code() {
                RequestCode::GET_ROUTEINFO_BY_TOPIC => {
                    let h = GetRouteInfoRequestHeader::decode(ext).unwrap();
                    let expected = if name.contains("RETRY") {
                        "%RETRY%CG_saturn_probe"
                    } else if name.contains("TBW102") {
                        "TBW102"
                    } else {
                        "TopicTest"
                    };
                    assert_eq!(h.topic, expected, "{what}");
                }
                RequestCode::HEART_BEAT => {
                    let hb: HeartbeatData =
                        decode_json(&cmd.body).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(!hb.client_id.is_empty(), "{what}");
                    let consumer = &hb.consumer_data_set[0];
                    assert!(consumer.group_name.starts_with("CG_saturn_probe"), "{what}");
                    assert_eq!(
                        consumer.consume_type,
                        ConsumeType::CONSUME_PASSIVELY,
                        "{what}"
                    );
                    assert_eq!(consumer.message_model, MessageModel::CLUSTERING, "{what}");
                    if let Some(sub) = consumer
                        .subscription_data_set
                        .iter()
                        .find(|s| s.topic == "TopicTest")
                    {
                        // Whatever codeSet the client sent, the tags filter right.
                        assert!(sub.matches_tag_code(tag_hash("TagA")), "{what}");
                        assert!(sub.matches_tag_code(tag_hash("TagB")), "{what}");
                        // The consumer-only capture subscribes to everything.
                        assert_eq!(
                            sub.matches_tag_code(tag_hash("TagC")),
                            sub.is_all(),
                            "{what}"
                        );
                        assert_eq!(sub.is_all(), consumer.group_name.ends_with("_C"), "{what}");
                        assert!(sub.sub_version > 0, "{what}");
                    }
                }
                RequestCode::GET_CONSUMER_LIST_BY_GROUP => {
                    let h = ConsumerGroupRequestHeader::decode(ext).unwrap();
                    assert_eq!(h.consumer_group, "CG_saturn_probe", "{what}");
                }
                RequestCode::QUERY_CONSUMER_OFFSET => {
                    let h = QueryConsumerOffsetRequestHeader::decode(ext).unwrap();
                    assert_eq!(h.topic, "TopicTest", "{what}");
                    assert!((0..4).contains(&h.queue_id), "{what}");
                }
                RequestCode::GET_MAX_OFFSET => {
                    let h = QueueRequestHeader::decode(ext).unwrap();
                    assert!(!h.topic.is_empty(), "{what}");
                }
                RequestCode::PULL_MESSAGE => {
                    let h = PullMessageRequestHeader::decode(ext)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(h.consumer_group, "CG_saturn_probe", "{what}");
                    assert!(h.suspend_timeout_millis > 0, "{what}");
                    assert!(h.max_msg_nums > 0, "{what}");
                }
                RequestCode::SEND_MESSAGE | RequestCode::SEND_MESSAGE_V2 => {
                    let h = SendMessageRequestHeader::decode_any(ext)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(h.topic, "TopicTest", "{what}");
                    assert!(h.born_timestamp > 1_600_000_000_000, "{what}");
                    if name.contains("batch") {
                        assert_eq!(h.batch, Some(true), "{what}");
                        let entries =
                            decode_batch(&cmd.body).unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(entries.len(), 2, "{what}");
                        for e in &entries {
                            assert_eq!(
                                property_value(&e.properties, "TAGS"),
                                Some("TagB"),
                                "{what}"
                            );
                        }
                    } else {
                        assert!(!h.batch.unwrap_or(false), "{what}");
                        let props = h.properties.unwrap();
                        assert_eq!(property_value(&props, "TAGS"), Some("TagA"), "{what}");
                        assert_eq!(
                            property_value(&props, "KEYS"),
                            Some("probe-key-0"),
                            "{what}"
                        );
                        assert_eq!(property_value(&props, "probeProp"), Some("v1"), "{what}");
                        assert_eq!(&cmd.body[..], b"probe body 0", "{what}");
                    }
                }
                RequestCode::UNREGISTER_CLIENT => {
                    let h = UnregisterClientRequestHeader::decode(ext).unwrap();
                    assert!(!h.client_id.is_empty(), "{what}");
                    let groups = [h.producer_group, h.consumer_group];
                    assert!(
                        groups
                            .iter()
                            .flatten()
                            .any(|g| g.starts_with("CG_saturn_probe")),
                        "{what}"
                    );
                }
                RequestCode::UPDATE_CONSUMER_OFFSET => {
                    let h = UpdateConsumerOffsetRequestHeader::decode(ext).unwrap();
                    assert_eq!(h.consumer_group, "CG_saturn_probe", "{what}");
                }
                other => panic!("{what}: unexpected request {other}"),
            }
        }
        for code in [105, 34, 11, 14] {
            assert!(
                seen_codes.contains(&code),
                "{client}: no fixture for code {code}"
            );
        }
    }
}

#[test]
fn cpp_clients_send_acl_fields_and_no_serialize_type() {
    for client in ["rocketmq-0.4.4", "rocketmq-python-cvs-2.1.0.3"] {
        let (_, route) = load(client).into_iter().next().unwrap();
        assert_eq!(route.ext("AccessKey"), Some(""), "{client}");
        assert_eq!(route.ext("OnsChannel"), Some("ALIYUN"), "{client}");
        assert!(route.ext_fields.contains_key("OnsChannel"), "{client}");
        assert!(route.ext_fields.contains_key("Signature"), "{client}");
    }
}
