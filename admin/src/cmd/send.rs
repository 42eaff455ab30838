//! sendMessage: one real send (SEND_MESSAGE_V2, 310), as a producer would make it.

use std::net::{IpAddr, Ipv4Addr};

use protocol::body::perm;
use protocol::message::{encode_properties, UniqIdGenerator};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::json;

use crate::client::{refused, Admin, AdminError, Result};
use crate::cmd::cluster::now_ms;
use crate::out::{record, Output};

/// The producer group of the tools' sends.
pub const TOOLS_PRODUCER: &str = "SATURN_ADMIN_PRODUCER";

pub struct SendArgs<'a> {
    pub topic: &'a str,
    pub body: &'a str,
    pub keys: Option<&'a str>,
    pub tags: Option<&'a str>,
    pub broker_name: Option<&'a str>,
    pub queue_id: Option<i32>,
}

/// The queue to send to: the one named, or a writable one chosen by the clock.
pub fn pick_queue(admin: &mut Admin, a: &SendArgs<'_>) -> Result<(String, String, i32)> {
    let route = admin.route(a.topic)?;
    let mut queues = Vec::new();
    for (qd, addr) in route.master_queue_datas() {
        if !perm::is_writeable(qd.perm) || a.broker_name.is_some_and(|b| b != qd.broker_name) {
            continue;
        }
        for q in 0..qd.write_queue_nums {
            if a.queue_id.is_none_or(|want| want == q) {
                queues.push((qd.broker_name.clone(), addr.clone(), q));
            }
        }
    }
    if queues.is_empty() {
        return Err(AdminError::Usage(format!(
            "no writable queue of {} matches",
            a.topic
        )));
    }
    let i = now_ms().unsigned_abs() as usize % queues.len();
    Ok(queues.swap_remove(i))
}

/// A SEND_MESSAGE_V2 request of saturn-admin's producer group to one queue of `broker_name`
/// (the header fields of SendMessageRequestHeaderV2: a producer group .. n broker name).
pub fn send_request(
    topic: &str,
    qid: i32,
    born_ms: i64,
    props: &[(&str, &str)],
    broker_name: &str,
    body: Vec<u8>,
) -> RemotingCommand {
    RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, 0)
        .with_ext("a", TOOLS_PRODUCER)
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", qid)
        .with_ext("f", 0)
        .with_ext("g", born_ms)
        .with_ext("h", 0)
        .with_ext("i", encode_properties(props))
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_ext("m", false)
        .with_ext("n", broker_name)
        .with_body(body)
}

pub fn send_message(admin: &mut Admin, a: &SendArgs<'_>) -> Result<Output> {
    let (broker_name, addr, qid) = pick_queue(admin, a)?;
    let now = now_ms();
    let uniq =
        UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), std::process::id(), 0).next_id(now);
    let mut props: Vec<(&str, &str)> = vec![("UNIQ_KEY", &uniq), ("WAIT", "true")];
    if let Some(k) = a.keys {
        props.push(("KEYS", k));
    }
    if let Some(t) = a.tags {
        props.push(("TAGS", t));
    }
    let req = send_request(
        a.topic,
        qid,
        now,
        &props,
        &broker_name,
        a.body.as_bytes().to_vec(),
    );
    let resp = admin.call_raw(&addr, req)?;
    let status = match ResponseCode::from_num(resp.code) {
        ResponseCode::SUCCESS => "SEND_OK",
        ResponseCode::FLUSH_DISK_TIMEOUT => "FLUSH_DISK_TIMEOUT",
        ResponseCode::FLUSH_SLAVE_TIMEOUT => "FLUSH_SLAVE_TIMEOUT",
        ResponseCode::SLAVE_NOT_AVAILABLE => "SLAVE_NOT_AVAILABLE",
        _ => return Err(refused(&addr, &resp)),
    };
    let offset: Option<i64> = resp.ext("queueOffset").and_then(|v| v.parse().ok());
    Ok(record([
        ("Broker Name", json!(broker_name)),
        ("Queue ID", json!(qid)),
        ("Queue Offset", json!(offset)),
        ("Send Result", json!(status)),
        ("MsgId", json!(uniq)),
        ("OffsetID", json!(resp.ext("msgId"))),
    ]))
}
