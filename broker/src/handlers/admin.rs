//! Admin and query requests.

use std::rc::Rc;

use protocol::body::{
    decode_json, encode_json, mq_keyed_map_json, Connection, ConsumerConnection,
    ConsumerOffsetSerializeWrapper, GroupList, MessageQueue, OffsetWrapper, ProducerConnection,
    SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicConfig, TopicConfigSerializeWrapper,
    TopicFilterType, TopicOffset,
};
use protocol::header::{
    CommandHeader, ConsumerGroupRequestHeader, CreateTopicRequestHeader,
    DeleteSubscriptionGroupRequestHeader, GetConsumeStatsRequestHeader,
    GetProducerConnectionListRequestHeader, QueryMessageRequestHeader, QueryMessageResponseHeader,
    TopicRequestHeader, ViewMessageRequestHeader,
};
use protocol::{RemotingCommand, ResponseCode};

use super::{error, header, Reply};
use crate::metadata::{now_ms, topic_name_error};
use crate::shard::Shard;

pub async fn create_topic(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(CreateTopicRequestHeader, req);
    if let Some(reason) = topic_name_error(&h.topic) {
        return error(req, ResponseCode::SYSTEM_ERROR, reason);
    }
    if h.topic == h.default_topic && h.topic != crate::metadata::TBW102 {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("the topic[{}] is conflict with system topic.", h.topic),
        );
    }
    if h.read_queue_nums <= 0
        || h.write_queue_nums <= 0
        || h.read_queue_nums > 1024
        || h.write_queue_nums > 1024
    {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            "queue numbers must be between 1 and 1024",
        );
    }
    let mut config = TopicConfig::new(&h.topic, h.read_queue_nums, h.write_queue_nums, h.perm);
    config.topic_filter_type = TopicFilterType::from_name(&h.topic_filter_type).unwrap_or_default();
    config.topic_sys_flag = h.topic_sys_flag.unwrap_or(0);
    config.order = h.order;
    if let Some(attrs) = &h.attributes {
        for pair in attrs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let pair = pair.trim_start_matches('+');
            if let Some((k, v)) = pair.split_once('=') {
                config.attributes.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    match shard.put_topic(config).await {
        Some(_) => Reply::Cmd(req.success()),
        None => error(req, ResponseCode::SYSTEM_ERROR, "broker is shutting down"),
    }
}

pub async fn delete_topic(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(TopicRequestHeader, req);
    match shard.control.delete_topic(h.topic).await {
        Some(_) => Reply::Cmd(req.success()),
        None => error(req, ResponseCode::SYSTEM_ERROR, "broker is shutting down"),
    }
}

fn topic_wrapper(shard: &Shard) -> TopicConfigSerializeWrapper {
    let mut wrapper = TopicConfigSerializeWrapper {
        topic_config_table: shard
            .topics
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), TopicConfig::clone(v)))
            .collect(),
        ..Default::default()
    };
    wrapper.data_version.timestamp = now_ms();
    wrapper
}

pub fn all_topic_config(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    Reply::Cmd(req.success().with_body(encode_json(&topic_wrapper(shard))))
}

pub fn topic_config(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(TopicRequestHeader, req);
    match shard.topic(&h.topic) {
        Some(c) => Reply::Cmd(
            req.success()
                .with_body(encode_json(&serde_json::json!({ "topicConfig": &*c }))),
        ),
        None => error(
            req,
            ResponseCode::TOPIC_NOT_EXIST,
            format!("No topic in this broker. topic: {}", h.topic),
        ),
    }
}

pub async fn view_message(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ViewMessageRequestHeader, req);
    match shard.store.read_record(h.offset).await {
        Ok(record) => Reply::Parts(req.success(), vec![record]),
        Err(e) => error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("can not find message by the offset, {}: {e}", h.offset),
        ),
    }
}

pub async fn query_message(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(QueryMessageRequestHeader, req);
    let max = if h.unique_key_query == Some(true) {
        32
    } else {
        h.max_num.clamp(1, 64 * 1024) as usize
    };
    let records = shard
        .store
        .query_by_key(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp)
        .await;
    if records.is_empty() {
        return error(
            req,
            ResponseCode::QUERY_NOT_FOUND,
            "can not find message, maybe time range not correct",
        );
    }
    let mut resp = req.success();
    QueryMessageResponseHeader {
        index_last_update_timestamp: now_ms(),
        index_last_update_phyoffset: shard.store.commit_log_max_offset(),
    }
    .encode(&mut resp.ext_fields);
    Reply::Parts(resp, records)
}

pub fn broker_config(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let c = &shard.config;
    let text = format!(
        "brokerClusterName={}\nbrokerName={}\nbrokerId={}\nbrokerIP1={}\nlistenPort={}\nnamesrvAddr={}\nflushDiskType={}\nautoCreateTopicEnable={}\nautoCreateSubscriptionGroup={}\ndefaultTopicQueueNums={}\nmaxMessageSize={}\nmappedFileSizeCommitLog={}\nfileReservedTime={}\n",
        c.cluster_name,
        shard.name,
        c.broker_id,
        c.broker_ip,
        shard.store_host.port(),
        c.namesrv_addrs.join(";"),
        c.flush.name(),
        c.auto_create_topic,
        shard.live.auto_create_subscription_group.get(),
        c.default_topic_queue_nums,
        shard.live.max_message_size.get(),
        c.segment_size,
        c.file_reserved_time.as_secs() / 3600,
    );
    let mut resp = req.success().with_body(text.into_bytes());
    resp.ext_fields.insert(
        "version",
        serde_json::json!({"counter": 0, "stateVersion": 0, "timestamp": shard.boot_ms})
            .to_string(),
    );
    Reply::Cmd(resp)
}

pub fn all_consumer_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let snapshot: ConsumerOffsetSerializeWrapper = shard.offsets.borrow().snapshot();
    Reply::Cmd(req.success().with_body(encode_json(&snapshot)))
}

pub async fn create_group(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let config: SubscriptionGroupConfig = match decode_json(&req.body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                req,
                ResponseCode::SYSTEM_ERROR,
                format!("bad subscription group body: {e}"),
            )
        }
    };
    if config.group_name.is_empty() {
        return error(req, ResponseCode::SYSTEM_ERROR, "the group name is empty");
    }
    match shard.put_group(config).await {
        Some(()) => Reply::Cmd(req.success()),
        None => error(req, ResponseCode::SYSTEM_ERROR, "broker is shutting down"),
    }
}

pub fn all_groups(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let wrapper = SubscriptionGroupWrapper {
        subscription_group_table: shard
            .groups
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    };
    Reply::Cmd(req.success().with_body(encode_json(&wrapper)))
}

pub async fn delete_group(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(DeleteSubscriptionGroupRequestHeader, req);
    if h.clean_offset == Some(true) || h.remove_offset == Some(true) {
        shard.offsets.borrow_mut().remove_group(&h.group_name);
    }
    match shard.control.delete_group(h.group_name).await {
        Some(_) => Reply::Cmd(req.success()),
        None => error(req, ResponseCode::SYSTEM_ERROR, "broker is shutting down"),
    }
}

fn connection(conn: &crate::conn::Conn, client_id: &str) -> Connection {
    Connection {
        client_id: client_id.to_owned(),
        client_addr: conn.addr_string(),
        language: conn.language.get().name().to_owned(),
        version: conn.version.get(),
    }
}

pub fn consumer_connections(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ConsumerGroupRequestHeader, req);
    let clients = shard.clients.borrow();
    let Some(group) = clients.consumers.get(&h.consumer_group) else {
        return error(
            req,
            ResponseCode::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{}] not online", h.consumer_group),
        );
    };
    let body = ConsumerConnection {
        connection_set: group
            .channels
            .values()
            .map(|c| connection(&c.conn, &c.client_id))
            .collect(),
        subscription_table: group
            .subscriptions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        consume_type: group.consume_type,
        message_model: group.message_model,
        consume_from_where: group.consume_from_where,
    };
    Reply::Cmd(req.success().with_body(encode_json(&body)))
}

pub fn producer_connections(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(GetProducerConnectionListRequestHeader, req);
    let clients = shard.clients.borrow();
    let Some(group) = clients.producers.get(&h.producer_group) else {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("the producer group[{}] not exist", h.producer_group),
        );
    };
    let body = ProducerConnection {
        connection_set: group
            .values()
            .map(|c| connection(&c.conn, &c.client_id))
            .collect(),
    };
    Reply::Cmd(req.success().with_body(encode_json(&body)))
}

/// A queue of this shard, as admin bodies name it.
pub(super) fn mq(shard: &Shard, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue {
        topic: topic.to_owned(),
        broker_name: shard.name.clone(),
        queue_id,
    }
}

pub async fn topic_stats(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(TopicRequestHeader, req);
    let Some(topic) = shard.topic(&h.topic) else {
        return error(
            req,
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist", h.topic),
        );
    };
    let mut entries = Vec::new();
    for q in 0..topic.write_queue_nums {
        let max = shard.store.max_offset(&h.topic, q);
        let last = if max > 0 {
            crate::storeext::store_time_at(&shard.store, &h.topic, q, max - 1).await
        } else {
            0
        };
        entries.push((
            mq(shard, &h.topic, q),
            TopicOffset {
                min_offset: shard.store.min_offset(&h.topic, q),
                max_offset: max,
                last_update_timestamp: last,
            },
        ));
    }
    let body = format!("{{\"offsetTable\":{}}}", mq_keyed_map_json(&entries));
    Reply::Cmd(req.success().with_body(body.into_bytes()))
}

pub async fn consume_stats(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(GetConsumeStatsRequestHeader, req);
    let committed = shard.offsets.borrow().of_group(&h.consumer_group);
    let mut entries = Vec::new();
    for (topic, queue, offset) in committed {
        if h.topic
            .as_deref()
            .is_some_and(|t| !t.is_empty() && t != topic)
        {
            continue;
        }
        let last = if offset > 0 {
            crate::storeext::store_time_at(&shard.store, &topic, queue, offset - 1).await
        } else {
            0
        };
        entries.push((
            mq(shard, &topic, queue),
            OffsetWrapper {
                broker_offset: shard.store.max_offset(&topic, queue),
                consumer_offset: offset,
                pull_offset: offset,
                last_timestamp: last,
            },
        ));
    }
    let tps = match h.topic.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => shard.stats.group_get_tps(t, &h.consumer_group, now_ms()),
        None => {
            let mut topics: Vec<&str> = entries.iter().map(|(m, _)| m.topic.as_str()).collect();
            topics.dedup();
            topics
                .iter()
                .map(|t| shard.stats.group_get_tps(t, &h.consumer_group, now_ms()))
                .sum()
        }
    };
    let body = format!(
        "{{\"consumeTps\":{tps},\"offsetTable\":{}}}",
        mq_keyed_map_json(&entries)
    );
    Reply::Cmd(req.success().with_body(body.into_bytes()))
}

pub fn consumed_by_who(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(TopicRequestHeader, req);
    let mut groups = GroupList::default();
    for (name, group) in &shard.clients.borrow().consumers {
        if group.subscriptions.contains_key(&h.topic) {
            groups.group_list.insert(name.clone());
        }
    }
    groups
        .group_list
        .extend(shard.offsets.borrow().groups_of_topic(&h.topic));
    Reply::Cmd(req.success().with_body(encode_json(&groups)))
}
