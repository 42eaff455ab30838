//! Request-reply (`DefaultMQProducer.request()`): SEND_REPLY_MESSAGE and SEND_REPLY_MESSAGE_V2.
//!
//! A request is an ordinary message carrying CORRELATION_ID and REPLY_TO_CLIENT (the requester's
//! client id); it is stored and delivered like any other. The replying consumer sends its reply
//! (`MessageUtil.createReplyMessage`) to `<cluster>_REPLY_TOPIC`, which exists from the start.
//! The broker pushes the reply with PUSH_REPLY_MESSAGE_TO_CLIENT on the connection of the
//! producer whose client id is REPLY_TO_CLIENT, then stores it in the reply topic (RocketMQ's
//! `storeReplyMessageEnable`, on by default there and here).
//!
//! As in RocketMQ the answer to the replier is SUCCESS (msgId "0", queueOffset 0) when the push
//! was acknowledged, SYSTEM_ERROR with the reason otherwise (requester unknown on this broker,
//! gone, or not answering within [`PUSH_TIMEOUT`]). The requester is looked up among the
//! producers that heartbeat to the shard receiving the reply: Java producers heartbeat to every
//! broker of their routes, so a requester that sent to a topic on every shard is found on each.

use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use protocol::header::{CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader};
use protocol::message::{properties as prop, property_value};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

use super::{HandlerError, IntoReply, Reply};
use crate::conn::Conn;
use crate::shard::Shard;

/// How long the requester's client has to acknowledge a pushed reply (RocketMQ's callClient).
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// SEND_REPLY_MESSAGE (324) and SEND_REPLY_MESSAGE_V2 (325).
pub async fn send_reply(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    req: &RemotingCommand,
) -> Result<Reply, HandlerError> {
    let h = SendMessageRequestHeader::decode_any(&req.ext_fields)?;
    let properties = h.properties.clone().unwrap_or_default();
    let pushed = push(shard, conn, req, &h, &properties).await;
    // Stored whether or not the push worked, as RocketMQ does: the reply is in the reply topic
    // for whoever looks for it. A store failure is the answer when the push failed too.
    let stored = super::send::send(shard, conn, req).await;
    if let Err(remark) = pushed {
        tracing::warn!(topic = %h.topic, remark = %remark, "reply not pushed");
        stored
            .map_err(|e| tracing::warn!(error = %e, "reply not stored either"))
            .ok();
        return Err(HandlerError::Refused(ResponseCode::SYSTEM_ERROR, remark));
    }
    if let Err(e) = &stored {
        tracing::warn!(topic = %h.topic, error = %e, "reply pushed but not stored");
    }
    let mut resp = req.success();
    SendMessageResponseHeader {
        msg_id: "0".into(),
        queue_id: h.queue_id.max(0),
        queue_offset: 0,
        transaction_id: None,
        batch_uniq_id: None,
        msg_region: Some(shard.config.region_id.clone()),
        trace_on: Some(shard.config.trace_on.to_string()),
    }
    .encode(&mut resp.ext_fields);
    Ok(Reply::Cmd(resp))
}

/// Pushes the reply to the requester; the reason when it could not.
async fn push(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
    properties: &str,
) -> Result<(), String> {
    let Some(requester) = property_value(properties, prop::REPLY_TO_CLIENT) else {
        return Err(format!(
            "reply message properties[{}] is null",
            prop::REPLY_TO_CLIENT
        ));
    };
    let Some(channel) = find_producer(shard, requester) else {
        return Err(format!(
            "push reply message fail, channel of <{requester}> not found."
        ));
    };
    let cmd = push_command(shard, conn, req, h, properties);
    match shard.outbound.call(&channel, cmd, PUSH_TIMEOUT).await {
        Ok(answer) if answer.code == ResponseCode::SUCCESS.num() => Ok(()),
        Ok(answer) => Err(format!(
            "push reply message to {requester} fail: code {} {}",
            answer.code,
            answer.remark.unwrap_or_default()
        )),
        Err(e) => Err(format!("push reply message to {requester} fail: {e}")),
    }
}

/// The connection of a live producer with this client id.
fn find_producer(shard: &Shard, client_id: &str) -> Option<Rc<Conn>> {
    let clients = shard.clients.borrow();
    clients
        .producers
        .values()
        .flat_map(|group| group.values())
        .find(|c| c.client_id == client_id && !c.conn.is_closed())
        .map(|c| c.conn.clone())
}

/// PUSH_REPLY_MESSAGE_TO_CLIENT: the send header's fields, the hosts and store time, the
/// properties with PUSH_REPLY_TIME, the body as sent.
fn push_command(
    shard: &Shard,
    conn: &Conn,
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
    properties: &str,
) -> RemotingCommand {
    let now = crate::metadata::now_ms();
    let mut cmd = RemotingCommand::request(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT, 0);
    let ext = &mut cmd.ext_fields;
    ext.insert("producerGroup", &h.producer_group);
    ext.insert("topic", &h.topic);
    ext.insert("defaultTopic", &h.default_topic);
    ext.insert(
        "defaultTopicQueueNums",
        h.default_topic_queue_nums.to_string(),
    );
    ext.insert("queueId", h.queue_id.to_string());
    ext.insert("sysFlag", h.sys_flag.to_string());
    ext.insert("bornTimestamp", h.born_timestamp.to_string());
    ext.insert("flag", h.flag.to_string());
    let mut props = properties.to_owned();
    if !props.is_empty() && !props.ends_with('\u{2}') {
        props.push('\u{2}');
    }
    let _ = write!(props, "{}\u{1}{now}\u{2}", prop::PUSH_REPLY_TIME);
    ext.insert("properties", props);
    ext.insert("reconsumeTimes", h.reconsume_times.unwrap_or(0).to_string());
    ext.insert("unitMode", h.unit_mode.unwrap_or(false).to_string());
    ext.insert("bornHost", conn.peer.to_string());
    ext.insert("storeHost", shard.store_host.to_string());
    ext.insert("storeTimestamp", now.to_string());
    cmd.body = req.body.clone();
    cmd
}

/// The dispatch entry: the handler's result as the answer.
pub async fn serve(shard: &Rc<Shard>, conn: &Rc<Conn>, req: &RemotingCommand) -> Reply {
    send_reply(shard, conn, req).await.into_reply(req)
}
