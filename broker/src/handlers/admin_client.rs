//! mqadmin requests the broker answers by acting on its clients or its settings:
//! GET_CONSUMER_RUNNING_INFO (307) and CONSUME_MESSAGE_DIRECTLY (309) forwarded to the named
//! consumer and its answer relayed; INVOKE_BROKER_TO_RESET_OFFSET (222), which computes the
//! offsets and pushes RESET_CONSUMER_CLIENT_OFFSET (220) to the group's online consumers;
//! UPDATE_BROKER_CONFIG (25) for the keys that can change at run time.

use std::rc::Rc;
use std::time::Duration;

use protocol::body::{mq_keyed_map_json, MessageQueue};
use protocol::header::{
    CommandHeader, ConsumeMessageDirectlyResultRequestHeader, GetConsumerRunningInfoRequestHeader,
    ResetOffsetRequestHeader,
};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

use super::{error, header, Reply};
use crate::conn::Conn;
use crate::shard::Shard;

/// How long the broker waits for a client's answer (RocketMQ's Broker2Client waits 10 s).
pub const CLIENT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn find_consumer(shard: &Shard, group: &str, client_id: &str) -> Option<Rc<Conn>> {
    let clients = shard.clients.borrow();
    let g = clients.consumers.get(group)?;
    g.channels
        .values()
        .find(|c| c.client_id == client_id && !c.conn.is_closed())
        .map(|c| c.conn.clone())
}

/// Sends `code` with `req`'s header fields and `body` to the consumer `client_id` of `group`
/// and relays its answer as the answer to `req`.
async fn call_consumer(
    shard: &Rc<Shard>,
    req: &RemotingCommand,
    code: RequestCode,
    group: &str,
    client_id: &str,
    body: bytes::Bytes,
) -> Reply {
    let Some(conn) = find_consumer(shard, group, client_id) else {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("The Consumer <{group}> <{client_id}> not online"),
        );
    };
    let mut call = RemotingCommand::request(code, 0);
    call.ext_fields = req.ext_fields.clone();
    call.body = body;
    match shard.outbound.call(&conn, call, CLIENT_CALL_TIMEOUT).await {
        Ok(answer) => {
            let mut resp = req.reply(ResponseCode::from_num(answer.code), answer.remark);
            resp.code = answer.code;
            resp.ext_fields = answer.ext_fields;
            Reply::Cmd(resp.with_body(answer.body))
        }
        Err(crate::outbound::CallError::Timeout(ms)) => error(
            req,
            ResponseCode::CONSUME_MSG_TIMEOUT,
            format!("consumer <{group}> <{client_id}> Timeout: no answer in {ms} ms"),
        ),
        Err(e) => error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("invoke consumer <{group}> <{client_id}> Exception: {e}"),
        ),
    }
}

pub async fn consumer_running_info(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(GetConsumerRunningInfoRequestHeader, req);
    let body = req.body.clone();
    let code = RequestCode::GET_CONSUMER_RUNNING_INFO;
    call_consumer(shard, req, code, &h.consumer_group, &h.client_id, body).await
}

pub async fn consume_message_directly(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ConsumeMessageDirectlyResultRequestHeader, req);
    let client_id = h.client_id.clone().unwrap_or_default();
    let msg_id = h.msg_id.clone().unwrap_or_default();
    let Ok((_, offset)) = protocol::message::decode_offset_msg_id(&msg_id) else {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("the msgId <{msg_id}> is not a message id of this broker (an offset id)"),
        );
    };
    let record = match shard.store.read_record(offset).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                req,
                ResponseCode::SYSTEM_ERROR,
                format!("can not find message by the offset, {offset}: {e}"),
            )
        }
    };
    // The client is told which broker the message is on, and the topic's and group's flags.
    let mut fwd = req.clone();
    fwd.ext_fields.insert("brokerName", &shard.name);
    if let Some(t) = h.topic.as_deref().and_then(|t| shard.topic(t)) {
        fwd.ext_fields
            .insert("topicSysFlag", t.topic_sys_flag.to_string());
    }
    if let Some(g) = shard.group(&h.consumer_group) {
        fwd.ext_fields
            .insert("groupSysFlag", g.group_sys_flag.to_string());
    }
    let code = RequestCode::CONSUME_MESSAGE_DIRECTLY;
    call_consumer(shard, &fwd, code, &h.consumer_group, &client_id, record).await
}

/// The offsets a reset to `h.timestamp` moves `h.group` to, per queue of `h.topic` on this
/// shard; `Err` is the reply when there is nothing to reset.
async fn reset_targets(
    shard: &Shard,
    req: &RemotingCommand,
    h: &ResetOffsetRequestHeader,
) -> Result<Vec<(i32, i64)>, Reply> {
    let Some(topic) = shard.topic(&h.topic) else {
        return Err(error(
            req,
            ResponseCode::TOPIC_NOT_EXIST,
            format!(
                "[reset-offset] reset offset failed, no topic in this broker. topic={}",
                h.topic
            ),
        ));
    };
    let committed = shard.offsets.borrow().of_group(&h.group);
    if !committed.iter().any(|(t, _, _)| *t == h.topic) {
        return Err(error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("THe consumer group <{}> not exist", h.group),
        ));
    }
    let one_queue = h.queue_id.filter(|q| *q >= 0);
    let mut targets = Vec::new();
    for q in 0..topic.write_queue_nums {
        if one_queue.is_some_and(|only| only != q) {
            continue;
        }
        let current = committed
            .iter()
            .find(|(t, qq, _)| *t == h.topic && *qq == q)
            .map(|(_, _, o)| *o)
            .unwrap_or(0);
        let wanted = match (one_queue, h.offset.filter(|o| *o >= 0)) {
            (Some(_), Some(offset)) => offset,
            _ if h.timestamp == -1 => shard.store.max_offset(&h.topic, q),
            _ => {
                shard
                    .store
                    .offset_by_timestamp(&h.topic, q, h.timestamp, false)
                    .await
            }
        }
        .max(0);
        targets.push((
            q,
            if h.is_force || wanted < current {
                wanted
            } else {
                current
            },
        ));
    }
    Ok(targets)
}

pub async fn reset_offset(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ResetOffsetRequestHeader, req);
    let targets = match reset_targets(shard, req, &h).await {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let members: Vec<Rc<Conn>> = shard
        .clients
        .borrow()
        .consumers
        .get(&h.group)
        .map(|g| g.channels.values().map(|c| c.conn.clone()).collect())
        .unwrap_or_default();
    if members.is_empty() {
        return error(
            req,
            ResponseCode::CONSUMER_NOT_ONLINE,
            format!(
                "Consumer not online, so can not reset offset, Group: {} Topic: {} Timestamp: {}",
                h.group, h.topic, h.timestamp
            ),
        );
    }
    let entries: Vec<(MessageQueue, i64)> = targets
        .iter()
        .map(|&(q, offset)| {
            let mq = MessageQueue {
                topic: h.topic.clone(),
                broker_name: shard.name.clone(),
                queue_id: q,
            };
            (mq, offset)
        })
        .collect();
    let body = format!("{{\"offsetTable\":{}}}", mq_keyed_map_json(&entries));
    {
        let mut offsets = shard.offsets.borrow_mut();
        for &(q, offset) in &targets {
            offsets.commit(&h.topic, &h.group, q, offset);
        }
    }
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
    tracing::info!(group = %h.group, topic = %h.topic, timestamp = h.timestamp, consumers = members.len(), "offsets reset");
    Reply::Cmd(req.success().with_body(body.into_bytes()))
}

pub fn update_broker_config(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let text = match std::str::from_utf8(&req.body) {
        Ok(t) => t,
        Err(_) => {
            return error(
                req,
                ResponseCode::SYSTEM_ERROR,
                "string2Properties error: the body is not UTF-8",
            )
        }
    };
    let pairs = namesrv::processor::parse_properties(text);
    match shard.live.update(&pairs) {
        Ok(()) => {
            tracing::info!(shard = shard.id, ?pairs, "broker config updated");
            Reply::Cmd(req.success())
        }
        Err(reason) => error(req, ResponseCode::NO_PERMISSION, reason),
    }
}
