//! The dashboard's changes, each a `POST /api/...` with a JSON body; each answers what it did
//! (the same rows saturn-admin prints) or `{"error": ...}`.

use std::net::{IpAddr, Ipv4Addr};

use protocol::message::{properties::iter_pairs, UniqIdGenerator};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::{json, Value};

use super::api::{answer, body_bytes, by_offset_id};
use super::http::Response;
use super::DashConfig;
use crate::client::{refused, Admin, AdminError, Result};
use crate::cmd::{cluster, group, offset, send, topic};

pub fn post(path: &str, body: &[u8], cfg: &DashConfig) -> Response {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Response::error(400, "the body must be a JSON object"),
    };
    let mut admin = super::admin_of(cfg);
    let a = &mut admin;
    let out = match path {
        "/api/topic/update" => update_topic(a, &v),
        "/api/topic/delete" => {
            str_field(&v, "topic").and_then(|t| Ok(topic::delete_topic(a, None, t)?.to_json()))
        }
        "/api/group/reset" => reset(a, &v),
        "/api/group/delete" => str_field(&v, "group")
            .and_then(|g| Ok(group::delete_sub_group(a, None, None, g, true)?.to_json())),
        "/api/message/resend" => resend(a, &v),
        _ => return Response::error(404, &format!("no action at {path}")),
    };
    answer(out)
}

pub(super) fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v[name]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AdminError::Usage(format!("missing field {name}")))
}

pub(super) fn int_field(v: &Value, name: &str, default: i64) -> Result<i64> {
    match &v[name] {
        Value::Null => Ok(default),
        x => x
            .as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| AdminError::Usage(format!("field {name} is not a number"))),
    }
}

/// Creates or changes a topic on every master: `topic`, `readQueues`, `writeQueues` (default 8
/// each), `perm` (default 6, read and write).
fn update_topic(a: &mut Admin, v: &Value) -> Result<Value> {
    let name = str_field(v, "topic")?;
    let read = int_field(v, "readQueues", 8)?;
    let write = int_field(v, "writeQueues", read)?;
    let perm = int_field(v, "perm", 6)?;
    if !(1..=1024).contains(&read) || !(1..=1024).contains(&write) {
        return Err(AdminError::Usage("queue counts must be 1 to 1024".into()));
    }
    if ![2, 4, 6].contains(&perm) {
        return Err(AdminError::Usage(
            "perm must be 2 (write), 4 (read) or 6 (both)".into(),
        ));
    }
    let s = topic::TopicSettings {
        read: read as i32,
        write: write as i32,
        perm: perm as i32,
        order: false,
        attributes: None,
    };
    Ok(topic::update_topic(a, None, None, name, &s)?.to_json())
}

/// The timestamp a reset goes to: `to` = earliest (0), latest (-1) or time (`time`, in ms or
/// mqadmin's `yyyy-MM-dd#HH:mm:ss:SSS`); `to` = offset is [`super::queue_reset`].
fn reset_ts(v: &Value) -> Result<i64> {
    match str_field(v, "to")? {
        "earliest" => Ok(0),
        "latest" => Ok(-1),
        "time" => {
            let t = match &v["time"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(AdminError::Usage("to=time needs a time".into())),
            };
            offset::parse_time(&t, cluster::now_ms())
        }
        other => Err(AdminError::Usage(format!(
            "to must be earliest, latest, time or offset, not {other}"
        ))),
    }
}

/// Resets `group` on `topic`; with `"preview": true` only tells what would move.
fn reset(a: &mut Admin, v: &Value) -> Result<Value> {
    let (g, t) = (str_field(v, "group")?, str_field(v, "topic")?);
    if v["to"] == "offset" {
        return super::queue_reset::reset(a, v, g, t);
    }
    let ts = reset_ts(v)?;
    let rows = preview(a, g, t, ts)?;
    let moves: i64 = rows.iter().filter_map(|r| r["moves"].as_i64()).sum();
    if v["preview"].as_bool().unwrap_or(false) {
        return Ok(json!({ "preview": true, "queues": rows, "totalMoves": moves }));
    }
    let done = offset::reset_offset(a, g, t, ts, true)?.to_json();
    Ok(json!({ "preview": false, "queues": rows, "totalMoves": moves, "result": done }))
}

/// Per queue: the group's committed offset now, where the reset would put it, and the
/// difference (negative: messages consumed again; positive: messages skipped).
fn preview(a: &mut Admin, g: &str, t: &str, ts: i64) -> Result<Vec<Value>> {
    let route = a.route(t)?;
    let mut rows = Vec::new();
    for (qd, addr) in route.master_queue_datas() {
        for qid in 0..qd.read_queue_nums {
            let code = match ts {
                0 => RequestCode::GET_MIN_OFFSET,
                -1 => RequestCode::GET_MAX_OFFSET,
                _ => RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
            };
            let ts = (code == RequestCode::SEARCH_OFFSET_BY_TIMESTAMP).then_some(ts);
            let target = crate::cmd::message::offset_of(a, addr, code, (t, qid), ts)?;
            let req = RemotingCommand::request(RequestCode::QUERY_CONSUMER_OFFSET, 0)
                .with_ext("consumerGroup", g)
                .with_ext("topic", t)
                .with_ext("queueId", qid);
            let resp = a.call_raw(addr, req)?;
            let current: Option<i64> = (resp.code == ResponseCode::SUCCESS.num())
                .then(|| resp.ext("offset").and_then(|v| v.parse().ok()))
                .flatten();
            rows.push(json!({
                "broker": qd.broker_name, "queue": qid, "current": current,
                "target": target, "moves": current.map(|c| target - c),
            }));
        }
    }
    Ok(rows)
}

/// Properties a re-send does not carry over: the store's and the broker's own.
const DROPPED: &[&str] = &[
    "UNIQ_KEY",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "REAL_TOPIC",
    "REAL_QID",
    "RETRY_TOPIC",
    "DELAY",
    "CONSUME_START_TIME",
    "ORIGIN_MESSAGE_ID",
    "TRAN_MSG",
    "PGROUP",
    "WAIT",
    "__transactionId__",
    "TIMER_DELIVER_MS",
    "TIMER_DELAY_SEC",
    "TIMER_OUT_MS",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
    "CLUSTER",
    "TRACE_ON",
    "INNER_NUM",
    "INNER_BASE",
    "SATURN_RESENT_FROM",
];

/// Re-sends the message `id` (an offsetMsgId) as a new message to its topic; a dead letter goes
/// back to the topic it came from (its RETRY_TOPIC); `topic` overrides. A real SEND_MESSAGE_V2.
fn resend(a: &mut Admin, v: &Value) -> Result<Value> {
    let id = str_field(v, "id")?;
    let m = by_offset_id(a, id)?;
    let target = match v["topic"].as_str().filter(|s| !s.is_empty()) {
        Some(t) => t.to_owned(),
        None if m.topic.starts_with("%DLQ%") => m
            .property("RETRY_TOPIC")
            .or_else(|| m.property("DLQ_ORIGIN_TOPIC"))
            .map(str::to_owned)
            .ok_or_else(|| {
                AdminError::Usage(format!("{id} names no original topic: give topic"))
            })?,
        None => m.topic.to_string(),
    };
    let args = send::SendArgs {
        topic: &target,
        body: "",
        keys: None,
        tags: None,
        broker_name: None,
        queue_id: None,
    };
    let (broker_name, addr, qid) = send::pick_queue(a, &args)?;
    let now = cluster::now_ms();
    let uniq =
        UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), std::process::id(), 0).next_id(now);
    let mut props: Vec<(&str, &str)> = iter_pairs(&m.properties)
        .filter(|(k, _)| !DROPPED.contains(k))
        .collect();
    props.extend([
        ("UNIQ_KEY", uniq.as_str()),
        ("WAIT", "true"),
        ("SATURN_RESENT_FROM", id),
    ]);
    let req = send::send_request(&target, qid, now, &props, &broker_name, body_bytes(&m));
    let resp = a.call_raw(&addr, req)?;
    if resp.code != ResponseCode::SUCCESS.num() {
        return Err(refused(&addr, &resp));
    }
    Ok(json!({
        "from": id, "topic": target, "broker": broker_name, "queue": qid,
        "queueOffset": resp.ext("queueOffset").and_then(|v| v.parse::<i64>().ok()),
        "msgId": uniq, "offsetMsgId": resp.ext("msgId"),
    }))
}
