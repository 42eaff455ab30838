//! Typed custom headers: the flat objects RocketMQ carries in `extFields`
//! (reference §1.8 and §2).
//!
//! Decoding follows the Java rules: strings as they are, integers parsed in
//! decimal, booleans `true` when the text is `true` in any case or `1`
//! (anything else is false). A required field that is missing, or a number that does not
//! parse, is a [`HeaderError`] naming the field, which a server turns into a
//! response with a remark.

use crate::command::ExtFields;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the custom field <{0}> is null")]
    Missing(&'static str),
    #[error("the custom field <{field}> has the malformed value {value:?}")]
    Malformed { field: &'static str, value: String },
}

/// A header that can be read from and written to `extFields`.
pub trait CommandHeader: Sized {
    fn decode(ext: &ExtFields) -> Result<Self, HeaderError>;
    fn encode(&self, ext: &mut ExtFields);

    fn to_ext(&self) -> ExtFields {
        let mut ext = ExtFields::new();
        self.encode(&mut ext);
        ext
    }
}

/// One header field's type: how it is read from and written to text.
pub trait HeaderValue: Sized {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError>;
    fn write(&self, ext: &mut ExtFields, key: &'static str);
}

/// Scalar field types.
pub trait Scalar: Sized {
    fn parse(text: &str) -> Option<Self>;
    /// Appends the text form to `out` (no allocation).
    fn render_into(&self, out: &mut String);
}

impl Scalar for String {
    fn parse(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
    fn render_into(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Scalar for bool {
    /// Java's `Boolean.parseBoolean`, plus `1`: the C++ client sends
    /// booleans as `"0"`/`"1"`.
    fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        Some(t.eq_ignore_ascii_case("true") || t == "1")
    }
    fn render_into(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! int_scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            fn parse(text: &str) -> Option<Self> {
                text.trim().parse::<$t>().ok()
            }
            fn render_into(&self, out: &mut String) {
                use std::fmt::Write as _;
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
int_scalar!(i32, i64);

impl<T: Scalar> HeaderValue for T {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        let text = ext.get(key).ok_or(HeaderError::Missing(key))?;
        T::parse(text).ok_or_else(|| HeaderError::Malformed {
            field: key,
            value: text.to_owned(),
        })
    }
    fn write(&self, ext: &mut ExtFields, key: &'static str) {
        ext.insert_with(key, |out| self.render_into(out));
    }
}

impl<T: Scalar> HeaderValue for Option<T> {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        match ext.get(key) {
            None => Ok(None),
            Some(text) => T::parse(text)
                .map(Some)
                .ok_or_else(|| HeaderError::Malformed {
                    field: key,
                    value: text.to_owned(),
                }),
        }
    }
    fn write(&self, ext: &mut ExtFields, key: &'static str) {
        if let Some(value) = self {
            ext.insert_with(key, |out| value.render_into(out));
        }
    }
}

/// Defines a header struct whose fields map to the given ext keys.
/// `Option<T>` fields are optional; all others are required.
macro_rules! header {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl CommandHeader for $name {
            fn decode(ext: &ExtFields) -> Result<Self, HeaderError> {
                Ok(Self {
                    $($field: <$ty as HeaderValue>::read(ext, $key)?,)*
                })
            }
            fn encode(&self, ext: &mut ExtFields) {
                $(<$ty as HeaderValue>::write(&self.$field, ext, $key);)*
            }
        }
    };
}

mod admin;
pub use admin::*;

// ------------------------------------------------------------- name server

header! {
    /// 105 GET_ROUTEINFO_BY_TOPIC
    GetRouteInfoRequestHeader {
        topic: String = "topic",
        accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
    }
}

header! {
    /// 103 REGISTER_BROKER
    RegisterBrokerRequestHeader {
        broker_name: String = "brokerName",
        broker_addr: String = "brokerAddr",
        cluster_name: String = "clusterName",
        ha_server_addr: String = "haServerAddr",
        broker_id: i64 = "brokerId",
        heartbeat_timeout_millis: Option<i64> = "heartbeatTimeoutMillis",
        enable_acting_master: Option<bool> = "enableActingMaster",
        compressed: Option<bool> = "compressed",
        body_crc32: Option<i32> = "bodyCrc32",
    }
}

header! {
    /// Response to 103 REGISTER_BROKER.
    RegisterBrokerResponseHeader {
        ha_server_addr: Option<String> = "haServerAddr",
        master_addr: Option<String> = "masterAddr",
    }
}

header! {
    /// 104 UNREGISTER_BROKER
    UnregisterBrokerRequestHeader {
        broker_name: String = "brokerName",
        broker_addr: String = "brokerAddr",
        cluster_name: String = "clusterName",
        broker_id: i64 = "brokerId",
    }
}

header! {
    /// 904 BROKER_HEARTBEAT
    BrokerHeartbeatRequestHeader {
        cluster_name: String = "clusterName",
        broker_addr: String = "brokerAddr",
        broker_name: String = "brokerName",
        broker_id: Option<i64> = "brokerId",
        heartbeat_timeout_mills: Option<i64> = "heartbeatTimeoutMills",
    }
}

header! {
    /// 322 QUERY_DATA_VERSION
    QueryDataVersionRequestHeader {
        broker_name: String = "brokerName",
        broker_addr: String = "brokerAddr",
        cluster_name: String = "clusterName",
        broker_id: i64 = "brokerId",
    }
}

header! {
    /// Response to 322 QUERY_DATA_VERSION.
    QueryDataVersionResponseHeader {
        changed: bool = "changed",
    }
}

header! {
    /// 224 GET_TOPICS_BY_CLUSTER
    GetTopicsByClusterRequestHeader {
        cluster: String = "cluster",
    }
}

header! {
    /// 216 DELETE_TOPIC_IN_NAMESRV
    DeleteTopicFromNamesrvRequestHeader {
        topic: String = "topic",
        cluster_name: Option<String> = "clusterName",
    }
}

header! {
    /// 205 WIPE_WRITE_PERM_OF_BROKER and 327 ADD_WRITE_PERM_OF_BROKER
    BrokerPermRequestHeader {
        broker_name: String = "brokerName",
    }
}

header! {
    /// Response to 205 WIPE_WRITE_PERM_OF_BROKER.
    WipeWritePermResponseHeader {
        wipe_topic_count: i32 = "wipeTopicCount",
    }
}

header! {
    /// Response to 327 ADD_WRITE_PERM_OF_BROKER.
    AddWritePermResponseHeader {
        add_topic_count: i32 = "addTopicCount",
    }
}

header! {
    /// 100 PUT_KV_CONFIG
    PutKvConfigRequestHeader {
        namespace: String = "namespace",
        key: String = "key",
        value: String = "value",
    }
}

header! {
    /// 101 GET_KV_CONFIG and 102 DELETE_KV_CONFIG
    KvConfigKeyRequestHeader {
        namespace: String = "namespace",
        key: String = "key",
    }
}

header! {
    /// Response to 101 GET_KV_CONFIG.
    GetKvConfigResponseHeader {
        value: Option<String> = "value",
    }
}

header! {
    /// 219 GET_KVLIST_BY_NAMESPACE
    GetKvListByNamespaceRequestHeader {
        namespace: String = "namespace",
    }
}

header! {
    /// 901 GET_BROKER_MEMBER_GROUP
    GetBrokerMemberGroupRequestHeader {
        cluster_name: String = "clusterName",
        broker_name: String = "brokerName",
    }
}

// ---------------------------------------------------------------- producer

header! {
    /// 10 SEND_MESSAGE and 320 SEND_BATCH_MESSAGE (long names). SEND_MESSAGE_V2
    /// carries the same fields under one-letter keys: see [`SendMessageRequestHeaderV2`].
    SendMessageRequestHeader {
        producer_group: String = "producerGroup",
        topic: String = "topic",
        default_topic: String = "defaultTopic",
        default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        queue_id: i32 = "queueId",
        sys_flag: i32 = "sysFlag",
        born_timestamp: i64 = "bornTimestamp",
        flag: i32 = "flag",
        properties: Option<String> = "properties",
        reconsume_times: Option<i32> = "reconsumeTimes",
        unit_mode: Option<bool> = "unitMode",
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
        batch: Option<bool> = "batch",
        broker_name: Option<String> = "bname",
    }
}

header! {
    /// 310 SEND_MESSAGE_V2 (and 320 from clients that use the short form).
    SendMessageRequestHeaderV2 {
        a: String = "a",
        b: String = "b",
        c: String = "c",
        d: i32 = "d",
        e: i32 = "e",
        f: i32 = "f",
        g: i64 = "g",
        h: i32 = "h",
        i: Option<String> = "i",
        j: Option<i32> = "j",
        k: Option<bool> = "k",
        l: Option<i32> = "l",
        m: Option<bool> = "m",
        n: Option<String> = "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        Self {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            broker_name: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        Self {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

impl SendMessageRequestHeader {
    /// Reads either form: the one-letter keys when `b` (topic) is present,
    /// the long names otherwise. Some clients send SEND_MESSAGE with V2 keys
    /// and the reverse, so the code alone does not decide.
    pub fn decode_any(ext: &ExtFields) -> Result<Self, HeaderError> {
        if ext.contains_key("b") && !ext.contains_key("topic") {
            SendMessageRequestHeaderV2::decode(ext).map(Into::into)
        } else {
            Self::decode(ext)
        }
    }
}

header! {
    /// Response to the send requests.
    SendMessageResponseHeader {
        msg_id: String = "msgId",
        queue_id: i32 = "queueId",
        queue_offset: i64 = "queueOffset",
        transaction_id: Option<String> = "transactionId",
        batch_uniq_id: Option<String> = "batchUniqId",
        msg_region: Option<String> = "MSG_REGION",
        trace_on: Option<String> = "TRACE_ON",
    }
}

header! {
    /// 37 END_TRANSACTION
    EndTransactionRequestHeader {
        topic: Option<String> = "topic",
        producer_group: String = "producerGroup",
        tran_state_table_offset: i64 = "tranStateTableOffset",
        commit_log_offset: i64 = "commitLogOffset",
        commit_or_rollback: i32 = "commitOrRollback",
        from_transaction_check: Option<bool> = "fromTransactionCheck",
        msg_id: String = "msgId",
        transaction_id: Option<String> = "transactionId",
    }
}

header! {
    /// 39 CHECK_TRANSACTION_STATE (broker → producer)
    CheckTransactionStateRequestHeader {
        topic: Option<String> = "topic",
        tran_state_table_offset: i64 = "tranStateTableOffset",
        commit_log_offset: i64 = "commitLogOffset",
        msg_id: Option<String> = "msgId",
        transaction_id: Option<String> = "transactionId",
        offset_msg_id: Option<String> = "offsetMsgId",
        broker_name: Option<String> = "bname",
    }
}

header! {
    /// 35 UNREGISTER_CLIENT
    UnregisterClientRequestHeader {
        client_id: String = "clientID",
        producer_group: Option<String> = "producerGroup",
        consumer_group: Option<String> = "consumerGroup",
    }
}

header! {
    /// 40 NOTIFY_CONSUMER_IDS_CHANGED (broker → consumer)
    NotifyConsumerIdsChangedRequestHeader {
        consumer_group: String = "consumerGroup",
    }
}

// ---------------------------------------------------------------- consumer

header! {
    /// 11 PULL_MESSAGE and 361 LITE_PULL_MESSAGE
    PullMessageRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: String = "topic",
        queue_id: i32 = "queueId",
        queue_offset: i64 = "queueOffset",
        max_msg_nums: i32 = "maxMsgNums",
        sys_flag: i32 = "sysFlag",
        commit_offset: i64 = "commitOffset",
        suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        subscription: Option<String> = "subscription",
        sub_version: i64 = "subVersion",
        expression_type: Option<String> = "expressionType",
        max_msg_bytes: Option<i32> = "maxMsgBytes",
    }
}

header! {
    /// Response to 11 PULL_MESSAGE.
    PullMessageResponseHeader {
        suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        next_begin_offset: i64 = "nextBeginOffset",
        min_offset: i64 = "minOffset",
        max_offset: i64 = "maxOffset",
    }
}

header! {
    /// 14 QUERY_CONSUMER_OFFSET
    QueryConsumerOffsetRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: String = "topic",
        queue_id: i32 = "queueId",
        set_zero_if_not_found: Option<bool> = "setZeroIfNotFound",
    }
}

header! {
    /// The `offset` response of 14, 29, 30 and 31.
    OffsetResponseHeader {
        offset: i64 = "offset",
    }
}

header! {
    /// 15 UPDATE_CONSUMER_OFFSET
    UpdateConsumerOffsetRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: String = "topic",
        queue_id: i32 = "queueId",
        commit_offset: i64 = "commitOffset",
    }
}

header! {
    /// 38 GET_CONSUMER_LIST_BY_GROUP, 203 GET_CONSUMER_CONNECTION_LIST
    ConsumerGroupRequestHeader {
        consumer_group: String = "consumerGroup",
    }
}

header! {
    /// 36 CONSUMER_SEND_MSG_BACK
    ConsumerSendMsgBackRequestHeader {
        offset: i64 = "offset",
        group: String = "group",
        delay_level: i32 = "delayLevel",
        origin_msg_id: Option<String> = "originMsgId",
        origin_topic: Option<String> = "originTopic",
        unit_mode: Option<bool> = "unitMode",
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
    }
}

header! {
    /// 30 GET_MAX_OFFSET, 31 GET_MIN_OFFSET, 32 GET_EARLIEST_MSG_STORETIME
    QueueRequestHeader {
        topic: String = "topic",
        queue_id: i32 = "queueId",
        committed: Option<bool> = "committed",
    }
}

header! {
    /// 29 SEARCH_OFFSET_BY_TIMESTAMP
    SearchOffsetRequestHeader {
        topic: String = "topic",
        queue_id: i32 = "queueId",
        timestamp: i64 = "timestamp",
        boundary_type: Option<String> = "boundaryType",
    }
}

header! {
    /// Response to 32 GET_EARLIEST_MSG_STORETIME.
    EarliestMsgStoretimeResponseHeader {
        timestamp: i64 = "timestamp",
    }
}

// ------------------------------------------------------------- admin/query

header! {
    /// 12 QUERY_MESSAGE
    QueryMessageRequestHeader {
        topic: String = "topic",
        key: String = "key",
        max_num: i32 = "maxNum",
        begin_timestamp: i64 = "beginTimestamp",
        end_timestamp: i64 = "endTimestamp",
        unique_key_query: Option<bool> = "_UNIQUE_KEY_QUERY",
    }
}

header! {
    /// Response to 12 QUERY_MESSAGE.
    QueryMessageResponseHeader {
        index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

header! {
    /// 33 VIEW_MESSAGE_BY_ID
    ViewMessageRequestHeader {
        offset: i64 = "offset",
        topic: Option<String> = "topic",
    }
}

header! {
    /// 17 UPDATE_AND_CREATE_TOPIC
    CreateTopicRequestHeader {
        topic: String = "topic",
        default_topic: String = "defaultTopic",
        read_queue_nums: i32 = "readQueueNums",
        write_queue_nums: i32 = "writeQueueNums",
        perm: i32 = "perm",
        topic_filter_type: String = "topicFilterType",
        topic_sys_flag: Option<i32> = "topicSysFlag",
        order: bool = "order",
        attributes: Option<String> = "attributes",
        force: Option<bool> = "force",
    }
}

header! {
    /// 215 DELETE_TOPIC_IN_BROKER, 202 GET_TOPIC_STATS_INFO, 300
    /// QUERY_TOPIC_CONSUME_BY_WHO, 351 GET_TOPIC_CONFIG
    TopicRequestHeader {
        topic: String = "topic",
    }
}

header! {
    /// 208 GET_CONSUME_STATS
    GetConsumeStatsRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: Option<String> = "topic",
    }
}

header! {
    /// 204 GET_PRODUCER_CONNECTION_LIST
    GetProducerConnectionListRequestHeader {
        producer_group: String = "producerGroup",
    }
}

header! {
    /// 207 DELETE_SUBSCRIPTIONGROUP
    DeleteSubscriptionGroupRequestHeader {
        group_name: String = "groupName",
        clean_offset: Option<bool> = "cleanOffset",
        remove_offset: Option<bool> = "removeOffset",
    }
}

header! {
    /// 222 INVOKE_BROKER_TO_RESET_OFFSET and 220 RESET_CONSUMER_CLIENT_OFFSET
    ResetOffsetRequestHeader {
        topic: String = "topic",
        group: String = "group",
        timestamp: i64 = "timestamp",
        is_force: bool = "isForce",
        queue_id: Option<i32> = "queueId",
        offset: Option<i64> = "offset",
    }
}

header! {
    /// 303 QUERY_CONSUME_TIME_SPAN
    QueryConsumeTimeSpanRequestHeader {
        topic: String = "topic",
        group: String = "group",
    }
}

header! {
    /// 307 GET_CONSUMER_RUNNING_INFO
    GetConsumerRunningInfoRequestHeader {
        consumer_group: String = "consumerGroup",
        client_id: String = "clientId",
        jstack_enable: Option<bool> = "jstackEnable",
    }
}

header! {
    /// 314 CLONE_GROUP_OFFSET
    CloneGroupOffsetRequestHeader {
        src_group: String = "srcGroup",
        dest_group: Option<String> = "destGroup",
        topic: Option<String> = "topic",
        offline: Option<bool> = "offline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> ExtFields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn send_v2_decodes_and_converts() {
        let e = ext(&[
            ("a", "pg"),
            ("b", "TopicTest"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "1"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "0"),
            ("i", "TAGS\u{1}TagA\u{2}"),
            ("k", "false"),
            ("m", "false"),
        ]);
        let v1 = SendMessageRequestHeader::decode_any(&e).unwrap();
        assert_eq!(v1.topic, "TopicTest");
        assert_eq!(v1.queue_id, 1);
        assert_eq!(v1.born_timestamp, 1_700_000_000_000);
        assert_eq!(v1.reconsume_times, None);
        assert_eq!(v1.batch, Some(false));
        let back: SendMessageRequestHeaderV2 = v1.clone().into();
        assert_eq!(
            SendMessageRequestHeader::decode_any(&back.to_ext()).unwrap(),
            v1
        );
        assert_eq!(
            SendMessageRequestHeader::decode_any(&v1.to_ext()).unwrap(),
            v1
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = ext(&[("topic", "T"), ("queueId", "x")]);
        assert_eq!(
            QueueRequestHeader::decode(&e),
            Err(HeaderError::Malformed {
                field: "queueId",
                value: "x".into()
            })
        );
        let e = ext(&[("topic", "T")]);
        assert_eq!(
            QueueRequestHeader::decode(&e),
            Err(HeaderError::Missing("queueId"))
        );
        let e = ext(&[("topic", "T"), ("queueId", "2"), ("committed", "yes")]);
        assert_eq!(
            QueueRequestHeader::decode(&e).unwrap().committed,
            Some(false)
        );
    }
}
