//! mqadmin requests the broker answers by acting on its clients or its settings:
//! GET_CONSUMER_RUNNING_INFO (307) and CONSUME_MESSAGE_DIRECTLY (309) forwarded to the named
//! consumer and its answer relayed; UPDATE_BROKER_CONFIG (25) for the keys that can change at
//! run time. INVOKE_BROKER_TO_RESET_OFFSET (222) is in [`super::reset`].

use std::rc::Rc;
use std::time::Duration;

use protocol::header::{
    ConsumeMessageDirectlyResultRequestHeader, GetConsumerRunningInfoRequestHeader,
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
