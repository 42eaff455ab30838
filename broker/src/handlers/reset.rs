//! INVOKE_BROKER_TO_RESET_OFFSET (222): mqadmin's `resetOffsetByTime` moves a consumer group's
//! offsets on a topic while the group runs.
//!
//! Per queue of the topic on this shard the new offset is the first message stored at or after
//! the timestamp (-1: the queue's end), or, with 5.x's `queueId` and `offset`, that offset for
//! that queue (refused outside the queue's range). Without `isForce` a queue only moves back,
//! never forward (RocketMQ's rule); an explicit offset always applies. The broker stores the new
//! offsets and pushes RESET_CONSUMER_CLIENT_OFFSET (220, body ResetOffsetBody) to the group's
//! consumers connected to this shard, which drop what they hold for those queues and pull from
//! there. A group with no consumer online only has its stored offsets updated (RocketMQ 4.x
//! answered CONSUMER_NOT_ONLINE and left mqadmin to fall back to per-queue updates; 5.x resets
//! on the broker, as here); the answer is the same table either way.

use std::rc::Rc;

use protocol::body::{mq_keyed_map_json, MessageQueue};
use protocol::header::{CommandHeader, ResetOffsetRequestHeader};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

use super::{error, header, Reply};
use crate::conn::Conn;
use crate::shard::Shard;

pub async fn reset_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ResetOffsetRequestHeader, req);
    let targets = match targets(shard, &h).await {
        Ok(t) => t,
        Err((code, remark)) => return error(req, code, remark),
    };
    {
        let mut offsets = shard.offsets.borrow_mut();
        for &(q, offset) in &targets {
            offsets.commit(&h.topic, &h.group, q, offset);
        }
    }
    let entries: Vec<(MessageQueue, i64)> = targets
        .iter()
        .map(|&(queue_id, offset)| {
            let mq = MessageQueue {
                topic: h.topic.clone(),
                broker_name: shard.name.clone(),
                queue_id,
            };
            (mq, offset)
        })
        .collect();
    let body = format!("{{\"offsetTable\":{}}}", mq_keyed_map_json(&entries));
    let members = live_consumers(shard, &h.group);
    if !members.is_empty() {
        let mut push = RemotingCommand::request(RequestCode::RESET_CONSUMER_CLIENT_OFFSET, 0);
        ResetOffsetRequestHeader {
            queue_id: None,
            offset: None,
            ..h.clone()
        }
        .encode(&mut push.ext_fields);
        push.body = body.clone().into_bytes().into();
        for conn in &members {
            conn.try_send_oneway(push.clone());
        }
    }
    tracing::info!(group = %h.group, topic = %h.topic, timestamp = h.timestamp, queue = ?h.queue_id,
        offset = ?h.offset, force = h.is_force, consumers = members.len(), "offsets reset");
    Reply::Cmd(req.success().with_body(body.into_bytes()))
}

fn live_consumers(shard: &Shard, group: &str) -> Vec<Rc<Conn>> {
    shard
        .clients
        .borrow()
        .consumers
        .get(group)
        .map(|g| {
            g.channels
                .values()
                .filter(|c| !c.conn.is_closed())
                .map(|c| c.conn.clone())
                .collect()
        })
        .unwrap_or_default()
}

type Refusal = (ResponseCode, String);

/// The (queue, new offset) pairs of the reset on this shard.
async fn targets(shard: &Shard, h: &ResetOffsetRequestHeader) -> Result<Vec<(i32, i64)>, Refusal> {
    let Some(topic) = shard.topic(&h.topic) else {
        return Err((
            ResponseCode::TOPIC_NOT_EXIST,
            format!(
                "[reset-offset] reset offset failed, no topic in this broker. topic={}",
                h.topic
            ),
        ));
    };
    let one_queue = h.queue_id.filter(|q| *q >= 0);
    if let (Some(q), Some(offset)) = (one_queue, h.offset.filter(|o| *o >= 0)) {
        return explicit(
            shard,
            h,
            q,
            offset,
            topic.read_queue_nums.max(topic.write_queue_nums),
        );
    }
    let committed = shard.offsets.borrow().of_group(&h.group);
    if !committed.iter().any(|(t, _, _)| *t == h.topic) {
        return Err((
            ResponseCode::SYSTEM_ERROR,
            format!("THe consumer group <{}> not exist", h.group),
        ));
    }
    let mut targets = Vec::new();
    for q in 0..topic.write_queue_nums {
        if one_queue.is_some_and(|only| only != q) {
            continue;
        }
        let current = committed
            .iter()
            .find(|(t, qq, _)| *t == h.topic && *qq == q)
            .map(|(_, _, o)| *o);
        let wanted = if h.timestamp == -1 {
            shard.store.max_offset(&h.topic, q)
        } else {
            shard
                .store
                .offset_by_timestamp(&h.topic, q, h.timestamp, false)
                .await
        }
        .max(0);
        let offset = match current {
            Some(current) if !h.is_force && wanted >= current => current,
            _ => wanted,
        };
        targets.push((q, offset));
    }
    Ok(targets)
}

/// 5.x's reset of one queue to an offset, which must lie within the queue.
fn explicit(
    shard: &Shard,
    h: &ResetOffsetRequestHeader,
    queue_id: i32,
    offset: i64,
    queues: i32,
) -> Result<Vec<(i32, i64)>, Refusal> {
    if queue_id >= queues {
        return Err((
            ResponseCode::SYSTEM_ERROR,
            format!(
                "queueId {queue_id} is not a queue of {} ({queues} queues)",
                h.topic
            ),
        ));
    }
    let min = shard.store.min_offset(&h.topic, queue_id);
    let max = shard.store.max_offset(&h.topic, queue_id);
    if offset < min || offset > max {
        return Err((
            ResponseCode::SYSTEM_ERROR,
            format!("Target offset {offset} not in consume queue range [{min}-{max}]"),
        ));
    }
    Ok(vec![(queue_id, offset)])
}
