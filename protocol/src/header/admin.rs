//! Headers of the operator requests mqadmin sends to a broker (statistics, consume queues,
//! calls forwarded to a consumer). Field names as in RocketMQ's `remoting/protocol/header`.

use super::{CommandHeader, ExtFields, HeaderError, HeaderValue};

header! {
    /// 315 VIEW_BROKER_STATS_DATA
    ViewBrokerStatsDataRequestHeader {
        stats_name: String = "statsName",
        stats_key: String = "statsKey",
    }
}

header! {
    /// 317 GET_BROKER_CONSUME_STATS
    GetConsumeStatsInBrokerHeader {
        is_order: Option<bool> = "isOrder",
    }
}

header! {
    /// 321 QUERY_CONSUME_QUEUE
    QueryConsumeQueueRequestHeader {
        topic: String = "topic",
        queue_id: i32 = "queueId",
        index: i64 = "index",
        count: i32 = "count",
        consumer_group: Option<String> = "consumerGroup",
    }
}

header! {
    /// 309 CONSUME_MESSAGE_DIRECTLY (mqadmin → broker → the named client)
    ConsumeMessageDirectlyResultRequestHeader {
        consumer_group: String = "consumerGroup",
        client_id: Option<String> = "clientId",
        msg_id: Option<String> = "msgId",
        broker_name: Option<String> = "brokerName",
        topic: Option<String> = "topic",
        topic_sys_flag: Option<i32> = "topicSysFlag",
        group_sys_flag: Option<i32> = "groupSysFlag",
    }
}
