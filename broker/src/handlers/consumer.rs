//! Offsets: consumer offsets and queue offsets.

use std::rc::Rc;

use protocol::header::{
    CommandHeader, EarliestMsgStoretimeResponseHeader, OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader, QueueRequestHeader, SearchOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader,
};
use protocol::{RemotingCommand, ResponseCode};

use super::{header, Reply};
use crate::shard::Shard;

fn offset_reply(req: &RemotingCommand, offset: i64) -> Reply {
    let mut resp = req.success();
    OffsetResponseHeader { offset }.encode(&mut resp.ext_fields);
    Reply::Cmd(resp)
}

pub fn query_consumer_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(QueryConsumerOffsetRequestHeader, req);
    if let Some(offset) = shard
        .offsets
        .borrow()
        .get(&h.topic, &h.consumer_group, h.queue_id)
    {
        return offset_reply(req, offset);
    }
    // A new group on a queue whose messages are all still stored starts at
    // the beginning, as RocketMQ does while the queue's head is in memory;
    // otherwise the client applies its consume-from-where policy.
    let min = shard.store.min_offset(&h.topic, h.queue_id);
    if h.set_zero_if_not_found != Some(false)
        && min <= 0
        && crate::storeext::head_is_hot(&shard.store)
    {
        return offset_reply(req, 0);
    }
    Reply::Cmd(req.reply(
        ResponseCode::QUERY_NOT_FOUND,
        Some("Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".into()),
    ))
}

pub fn update_consumer_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(UpdateConsumerOffsetRequestHeader, req);
    if h.commit_offset < 0 {
        // ali-ons commits -1 for queues it has not consumed from.
        return Reply::Cmd(req.success());
    }
    let from_slave = req.ext_fields.get(crate::replstate::FROM_SLAVE).is_some();
    crate::replstate::commit(
        shard,
        &h.topic,
        &h.consumer_group,
        h.queue_id,
        h.commit_offset,
        from_slave,
    );
    Reply::Cmd(req.success())
}

pub fn max_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(QueueRequestHeader, req);
    offset_reply(req, shard.store.max_offset(&h.topic, h.queue_id))
}

pub fn min_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(QueueRequestHeader, req);
    offset_reply(req, shard.store.min_offset(&h.topic, h.queue_id))
}

pub async fn search_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(SearchOffsetRequestHeader, req);
    let upper = h
        .boundary_type
        .as_deref()
        .is_some_and(|b| b.eq_ignore_ascii_case("upper"));
    let offset = shard
        .store
        .offset_by_timestamp(&h.topic, h.queue_id, h.timestamp, upper)
        .await;
    offset_reply(req, offset)
}

pub async fn earliest_store_time(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(QueueRequestHeader, req);
    let timestamp = shard.store.earliest_store_time(&h.topic, h.queue_id).await;
    let mut resp = req.success();
    EarliestMsgStoretimeResponseHeader { timestamp }.encode(&mut resp.ext_fields);
    Reply::Cmd(resp)
}
