//! Client registration: heartbeats, unregistration, group membership,
//! and the queue locks of orderly consumers.

use std::rc::Rc;
use std::time::Instant;

use protocol::body::{
    decode_json, encode_json, perm, CheckClientRequestBody, ConsumerData,
    GetConsumerListByGroupResponseBody, HeartbeatData, LockBatchRequestBody, LockBatchResponseBody,
    TopicConfig,
};
use protocol::header::{ConsumerGroupRequestHeader, UnregisterClientRequestHeader};
use protocol::{RemotingCommand, ResponseCode};

use super::{error, header, Reply};
use crate::conn::Conn;
use crate::metadata::RETRY_PREFIX;
use crate::shard::Shard;

/// Whether some orderly consumer of `group` holds a queue lock of this shard that has not
/// expired (RocketMQ's `isLockAllExpired`, negated): its messages sent back for a retry go
/// straight to the dead-letter queue, never to a retry topic that would break their order.
pub fn group_has_live_lock(shard: &Shard, group: &str) -> bool {
    let max_live = shard.config.rebalance_lock_max_live;
    let now = Instant::now();
    shard
        .locks
        .borrow()
        .iter()
        .any(|((g, _), (_, at))| g == group && now.saturating_duration_since(*at) <= max_live)
}

pub async fn heartbeat(shard: &Rc<Shard>, conn: &Rc<Conn>, req: &RemotingCommand) -> Reply {
    let data: HeartbeatData = match decode_json(&req.body) {
        Ok(d) => d,
        Err(e) => {
            return error(
                req,
                ResponseCode::SYSTEM_ERROR,
                format!("bad heartbeat body: {e}"),
            )
        }
    };
    let now = Instant::now();
    for consumer in &data.consumer_data_set {
        let Ok(group) = super::send::ensure_group(shard, &consumer.group_name).await else {
            continue; // unknown group and no auto-creation: ignored, as RocketMQ does
        };
        // Every consumer group has a retry topic, routable from the start.
        let retry = format!("{RETRY_PREFIX}{}", consumer.group_name);
        if shard.topic(&retry).is_none() {
            let queues = group.retry_queue_nums.max(1);
            let rw = perm::READ | perm::WRITE;
            let _ = shard
                .ensure_topic(TopicConfig::new(&retry, queues, queues, rw))
                .await;
        }
        warm_selectors(shard, consumer);
        let joined =
            shard
                .clients
                .borrow_mut()
                .register_consumer(conn, &data.client_id, consumer, now);
        if joined {
            tracing::info!(group = %consumer.group_name, client = %data.client_id, "consumer joined");
            if group.notify_consumer_ids_changed_enable {
                shard
                    .clients
                    .borrow()
                    .notify_consumer_ids_changed(&consumer.group_name);
            }
        }
    }
    for producer in &data.producer_data_set {
        shard.clients.borrow_mut().register_producer(
            conn,
            &data.client_id,
            &producer.group_name,
            now,
        );
    }
    Reply::Cmd(req.success())
}

/// Compiles a heartbeat's SQL92 subscriptions for the pulls to come; one that does not compile
/// is logged (its pulls are refused with the reason).
fn warm_selectors(shard: &Shard, consumer: &ConsumerData) {
    for sub in &consumer.subscription_data_set {
        if let Err(e) = super::filter::selector(sub, shard.config.enable_property_filter) {
            tracing::warn!(group = %consumer.group_name, topic = %sub.topic, expression = %sub.sub_string, error = %e, "subscription not served");
        }
    }
}

pub fn unregister_client(shard: &Rc<Shard>, conn: &Rc<Conn>, req: &RemotingCommand) -> Reply {
    let h = header!(UnregisterClientRequestHeader, req);
    let changed = shard.clients.borrow_mut().unregister(
        conn.id,
        h.producer_group.as_deref(),
        h.consumer_group.as_deref(),
    );
    if changed {
        if let Some(g) = &h.consumer_group {
            shard.clients.borrow().notify_consumer_ids_changed(g);
        }
    }
    Reply::Cmd(req.success())
}

pub fn consumer_list(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ConsumerGroupRequestHeader, req);
    let ids = shard
        .clients
        .borrow()
        .consumers
        .get(&h.consumer_group)
        .map(|g| g.client_ids())
        .unwrap_or_default();
    if ids.is_empty() {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("no consumer for this group, {}", h.consumer_group),
        );
    }
    Reply::Cmd(
        req.success()
            .with_body(encode_json(&GetConsumerListByGroupResponseBody {
                consumer_id_list: ids,
            })),
    )
}

/// CHECK_CLIENT_CONFIG: a consumer's `start()` asks whether its subscription is served; an SQL92
/// expression is compiled (and kept for the pulls) or refused with the parser's reason.
pub fn check_client_config(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let body: CheckClientRequestBody = match decode_json(&req.body) {
        Ok(b) => b,
        Err(e) => return error(req, ResponseCode::SYSTEM_ERROR, format!("bad body: {e}")),
    };
    let sub = &body.subscription_data;
    match super::filter::selector(sub, shard.config.enable_property_filter) {
        Ok(_) => Reply::Cmd(req.success()),
        Err(e) => {
            tracing::warn!(group = %body.group, client = %body.client_id, expression = %sub.sub_string, error = %e, "subscription refused");
            e.reply(req)
        }
    }
}

pub fn lock_batch(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let body: LockBatchRequestBody = match decode_json(&req.body) {
        Ok(b) => b,
        Err(e) => return error(req, ResponseCode::SYSTEM_ERROR, format!("bad body: {e}")),
    };
    let now = Instant::now();
    let mut locks = shard.locks.borrow_mut();
    let mut granted = Vec::new();
    for mq in body.mq_set {
        let key = (body.consumer_group.clone(), mq.clone());
        let free = match locks.get(&key) {
            None => true,
            Some((holder, at)) => {
                holder == &body.client_id
                    || now.saturating_duration_since(*at) > shard.config.rebalance_lock_max_live
            }
        };
        if free {
            locks.insert(key, (body.client_id.clone(), now));
            granted.push(mq);
        }
    }
    Reply::Cmd(req.success().with_body(encode_json(&LockBatchResponseBody {
        lock_ok_mq_set: granted,
    })))
}

pub fn unlock_batch(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let body: LockBatchRequestBody = match decode_json(&req.body) {
        Ok(b) => b,
        Err(e) => return error(req, ResponseCode::SYSTEM_ERROR, format!("bad body: {e}")),
    };
    let mut locks = shard.locks.borrow_mut();
    for mq in body.mq_set {
        let key = (body.consumer_group.clone(), mq);
        if locks
            .get(&key)
            .is_some_and(|(holder, _)| holder == &body.client_id)
        {
            locks.remove(&key);
        }
    }
    Reply::Cmd(req.success())
}
