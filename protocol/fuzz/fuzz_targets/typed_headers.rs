//! Typed headers: an `ExtFields` map built from arbitrary key/value pairs (keys mostly the ones
//! header.rs reads, values mostly near-numbers and near-booleans) never panics any header's
//! `decode`; a header that decodes re-encodes into ext fields that decode to the same header.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use protocol::header::*;
use protocol::ExtFields;

/// Every ext key header.rs names (`field: Type = "key"`), read from its source so the list
/// cannot fall behind.
fn known_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let src: &'static str = include_str!("../../src/header.rs");
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
        assert!(keys.len() > 50, "found only {} header keys", keys.len());
        keys
    })
}

const VALUES: &[&str] = &[
    "",
    " ",
    "0",
    "-0",
    "+1",
    " 1 ",
    "-1",
    "true",
    "TRUE",
    " True\t",
    "false",
    "yes",
    "1.0",
    "1e3",
    "0x10",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "\u{0}",
    "\u{1}\u{2}",
    "TopicTest",
    "\u{fffd}\u{10ffff}",
];

fn ext_from(u: &mut Unstructured) -> arbitrary::Result<ExtFields> {
    let mut ext = ExtFields::new();
    let keys = known_keys();
    while !u.is_empty() && ext.len() < 64 {
        let key = if u.ratio(7u8, 8u8)? {
            u.choose(keys)?.to_string()
        } else {
            String::arbitrary(u)?
        };
        let value = if u.ratio(1u8, 2u8)? {
            u.choose(VALUES)?.to_string()
        } else {
            String::arbitrary(u)?
        };
        ext.insert(key, value);
    }
    Ok(ext)
}

fn check<H: CommandHeader + PartialEq + std::fmt::Debug>(ext: &ExtFields) {
    if let Ok(header) = H::decode(ext) {
        let encoded = header.to_ext();
        assert_eq!(H::decode(&encoded).as_ref(), Ok(&header));
        // Ext fields the header does not name do not change it.
        let mut merged = ext.clone();
        merged.extend(encoded);
        assert_eq!(H::decode(&merged), Ok(header));
    }
}

macro_rules! check_all {
    ($ext:expr; $($t:ident),* $(,)?) => { $(check::<$t>($ext);)* };
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(ext) = ext_from(&mut u) else {
        return;
    };
    if let Ok(send) = SendMessageRequestHeader::decode_any(&ext) {
        let v2: SendMessageRequestHeaderV2 = send.clone().into();
        assert_eq!(SendMessageRequestHeader::from(v2.clone()), send);
        assert_eq!(
            SendMessageRequestHeader::decode_any(&v2.to_ext()).as_ref(),
            Ok(&send)
        );
        assert_eq!(
            SendMessageRequestHeader::decode_any(&send.to_ext()),
            Ok(send)
        );
    }
    check_all!(&ext;
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
    );
});
