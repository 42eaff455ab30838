//! Message commands: look-ups by id, key and offset, dumps, and test sends.

use std::io::Read;

use bytes::Bytes;
use protocol::message::{decode_all, decode_offset_msg_id, StoredMessage};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::{json, Map, Value};

use crate::client::{refused, Admin, AdminError, Result};
use crate::out::{Output, Table};

/// The tools' own consumer group (RocketMQ's MixAll.TOOLS_CONSUMER_GROUP).
pub const TOOLS_GROUP: &str = "TOOLS_CONSUMER";

pub fn body_text(m: &StoredMessage) -> String {
    if m.sys_flag & 0x1 != 0 {
        let mut out = Vec::new();
        if flate2::read::ZlibDecoder::new(&m.body[..])
            .read_to_end(&mut out)
            .is_ok()
        {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    String::from_utf8_lossy(&m.body).into_owned()
}

/// Every field of a stored message, as mqadmin's queryMsgById prints them.
pub fn detail(m: &StoredMessage) -> Map<String, Value> {
    let props: Map<String, Value> = protocol::message::properties::iter_pairs(&m.properties)
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    let mut r = Map::new();
    r.insert("OffsetID".into(), json!(m.offset_msg_id()));
    r.insert("Msg ID".into(), json!(m.property("UNIQ_KEY")));
    r.insert("Topic".into(), json!(m.topic));
    r.insert("Tags".into(), json!(m.property("TAGS")));
    r.insert("Keys".into(), json!(m.property("KEYS")));
    r.insert("Queue ID".into(), json!(m.queue_id));
    r.insert("Queue Offset".into(), json!(m.queue_offset));
    r.insert("CommitLog Offset".into(), json!(m.phys_offset));
    r.insert("Reconsume Times".into(), json!(m.reconsume_times));
    r.insert("Born Timestamp".into(), json!(m.born_timestamp));
    r.insert("Store Timestamp".into(), json!(m.store_timestamp));
    r.insert("Born Host".into(), json!(m.born_host.to_string()));
    r.insert("Store Host".into(), json!(m.store_host.to_string()));
    r.insert("System Flag".into(), json!(m.sys_flag));
    r.insert("Properties".into(), Value::Object(props));
    r.insert("Message Body".into(), json!(body_text(m)));
    r
}

fn decode(addr: &str, body: &[u8]) -> Result<Vec<StoredMessage>> {
    decode_all(Bytes::copy_from_slice(body)).map_err(|e| AdminError::Body {
        addr: addr.to_owned(),
        what: e.to_string(),
    })
}

/// queryMsgById: VIEW_MESSAGE_BY_ID (33) at the store host the offsetMsgId names.
pub fn query_by_id(admin: &mut Admin, ids: &str) -> Result<Output> {
    let mut sections = Vec::new();
    for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, offset) = decode_offset_msg_id(id)
            .map_err(|e| AdminError::Usage(format!("{id} is not an offsetMsgId: {e}")))?;
        let addr = host.to_string();
        let req =
            RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID, 0).with_ext("offset", offset);
        let resp = admin.call(&addr, req)?;
        let msgs = decode(&addr, &resp.body)?;
        let m = msgs.first().ok_or_else(|| AdminError::Body {
            addr: addr.clone(),
            what: "an empty message".into(),
        })?;
        sections.push((id.to_owned(), Output::Record(detail(m))));
    }
    Ok(one_or_sections(sections))
}

fn one_or_sections(mut s: Vec<(String, Output)>) -> Output {
    if s.len() == 1 {
        s.pop().expect("one").1
    } else {
        Output::Sections(s)
    }
}

/// QUERY_MESSAGE (12) on every master of the topic; QUERY_NOT_FOUND counts as none.
pub fn query(
    admin: &mut Admin,
    topic: &str,
    key: &str,
    max: i32,
    range: (i64, i64),
    unique: bool,
) -> Result<Vec<StoredMessage>> {
    let mut out = Vec::new();
    for (_, addr) in admin.route_masters(topic)? {
        let mut req = RemotingCommand::request(RequestCode::QUERY_MESSAGE, 0)
            .with_ext("topic", topic)
            .with_ext("key", key)
            .with_ext("maxNum", max)
            .with_ext("beginTimestamp", range.0)
            .with_ext("endTimestamp", range.1);
        if unique {
            req = req.with_ext("_UNIQUE_KEY_QUERY", true);
        }
        let resp = admin.call_raw(&addr, req)?;
        match ResponseCode::from_num(resp.code) {
            ResponseCode::SUCCESS => out.extend(decode(&addr, &resp.body)?),
            ResponseCode::QUERY_NOT_FOUND => {}
            _ => return Err(refused(&addr, &resp)),
        }
    }
    Ok(out)
}

/// queryMsgByKey: messages whose KEYS contain the key.
pub fn query_by_key(
    admin: &mut Admin,
    topic: &str,
    key: &str,
    max: i32,
    range: (i64, i64),
) -> Result<Output> {
    let mut msgs = query(admin, topic, key, max, range, false)?;
    msgs.retain(|m| {
        m.property("KEYS")
            .is_some_and(|k| k.split(' ').any(|k| k == key))
    });
    msgs.sort_by_key(|m| (m.store_timestamp, m.queue_id, m.queue_offset));
    let mut t = Table::new(&["Message ID", "QID", "Offset", "OffsetID", "Store Timestamp"]);
    for m in &msgs {
        t.row(vec![
            json!(m.property("UNIQ_KEY")),
            json!(m.queue_id),
            json!(m.queue_offset),
            json!(m.offset_msg_id()),
            json!(m.store_timestamp),
        ]);
    }
    Ok(Output::Table(t))
}

/// queryMsgByUniqueKey: the message(s) with a client message id (UNIQ_KEY).
pub fn query_by_unique_key(admin: &mut Admin, topic: &str, id: &str) -> Result<Output> {
    let mut msgs = query(admin, topic, id, 32, (0, i64::MAX), true)?;
    msgs.retain(|m| m.property("UNIQ_KEY") == Some(id));
    if msgs.is_empty() {
        return Err(AdminError::Usage(format!(
            "no message with id {id} in topic {topic}"
        )));
    }
    let sections = msgs
        .iter()
        .map(|m| (m.offset_msg_id(), Output::Record(detail(m))))
        .collect();
    Ok(one_or_sections(sections))
}

/// The master address of a broker name, from the topic's route.
fn broker_addr(admin: &mut Admin, topic: &str, broker_name: &str) -> Result<String> {
    admin
        .route_masters(topic)?
        .remove(broker_name)
        .ok_or_else(|| {
            AdminError::Usage(format!("broker {broker_name} serves no queue of {topic}"))
        })
}

/// One PULL_MESSAGE (11): the messages from `offset` (at most `max`) and the next offset;
/// `None` when there is nothing at or after `offset`.
pub fn pull(
    admin: &mut Admin,
    addr: &str,
    q: (&str, i32),
    offset: i64,
    max: i32,
    group: &str,
) -> Result<Option<(Vec<StoredMessage>, i64)>> {
    let req = RemotingCommand::request(RequestCode::PULL_MESSAGE, 0)
        .with_ext("consumerGroup", group)
        .with_ext("topic", q.0)
        .with_ext("queueId", q.1)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", max)
        .with_ext("sysFlag", protocol::message::pullflag::FLAG_SUBSCRIPTION)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 0)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
        .with_ext("expressionType", "TAG");
    let resp = admin.call_raw(addr, req)?;
    let next: i64 = resp
        .ext("nextBeginOffset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(offset);
    match ResponseCode::from_num(resp.code) {
        ResponseCode::SUCCESS => Ok(Some((decode(addr, &resp.body)?, next))),
        ResponseCode::PULL_NOT_FOUND | ResponseCode::PULL_OFFSET_MOVED => Ok(None),
        ResponseCode::PULL_RETRY_IMMEDIATELY if next > offset => Ok(Some((Vec::new(), next))),
        ResponseCode::PULL_RETRY_IMMEDIATELY => Ok(None),
        _ => Err(refused(addr, &resp)),
    }
}

/// queryMsgByOffset: the message at one queue offset.
pub fn query_by_offset(
    admin: &mut Admin,
    topic: &str,
    broker_name: &str,
    qid: i32,
    offset: i64,
) -> Result<Output> {
    let addr = broker_addr(admin, topic, broker_name)?;
    let got = pull(admin, &addr, (topic, qid), offset, 1, TOOLS_GROUP)?;
    let m = got
        .and_then(|(msgs, _)| msgs.into_iter().find(|m| m.queue_offset == offset))
        .ok_or_else(|| {
            AdminError::Usage(format!(
                "no message at {broker_name} queue {qid} offset {offset}"
            ))
        })?;
    Ok(Output::Record(detail(&m)))
}

/// A queue's offset from its broker: GET_MIN_OFFSET, GET_MAX_OFFSET, or
/// SEARCH_OFFSET_BY_TIMESTAMP with `ts` (0 when the broker answers none).
pub(crate) fn offset_of(
    admin: &mut Admin,
    addr: &str,
    code: RequestCode,
    q: (&str, i32),
    ts: Option<i64>,
) -> Result<i64> {
    let mut req = RemotingCommand::request(code, 0)
        .with_ext("topic", q.0)
        .with_ext("queueId", q.1);
    if let Some(ts) = ts {
        req = req.with_ext("timestamp", ts);
    }
    let resp = admin.call(addr, req)?;
    Ok(resp.ext("offset").and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// What to read in printMsg / consumeMessage.
pub struct Range<'a> {
    pub topic: &'a str,
    pub broker_name: Option<&'a str>,
    pub queue_id: Option<i32>,
    pub offset: Option<i64>,
    pub begin: Option<i64>,
    pub end: Option<i64>,
    pub max: usize,
    pub group: &'a str,
}

/// Reads the queues a range names, each from its start to its end (or to `max` messages).
pub fn read_range(admin: &mut Admin, r: &Range<'_>) -> Result<Vec<StoredMessage>> {
    let route = admin.route(r.topic)?;
    let mut out = Vec::new();
    for qd in &route.queue_datas {
        if r.broker_name.is_some_and(|b| b != qd.broker_name) {
            continue;
        }
        let addr = broker_addr(admin, r.topic, &qd.broker_name)?;
        for qid in 0..qd.read_queue_nums {
            if r.queue_id.is_some_and(|q| q != qid) || out.len() >= r.max {
                continue;
            }
            let q = (r.topic, qid);
            let mut from = match (r.offset, r.begin) {
                (Some(o), _) => o,
                (None, Some(b)) => offset_of(
                    admin,
                    &addr,
                    RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
                    q,
                    Some(b),
                )?,
                (None, None) => offset_of(admin, &addr, RequestCode::GET_MIN_OFFSET, q, None)?,
            };
            let to = match r.end {
                Some(e) => offset_of(
                    admin,
                    &addr,
                    RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
                    q,
                    Some(e),
                )?,
                None => offset_of(admin, &addr, RequestCode::GET_MAX_OFFSET, q, None)?,
            };
            while from < to && out.len() < r.max {
                let Some((msgs, next)) = pull(admin, &addr, q, from, 32, r.group)? else {
                    break;
                };
                let keep = msgs.into_iter().filter(|m| m.queue_offset < to);
                out.extend(keep.take(r.max - out.len()));
                if next <= from {
                    break;
                }
                from = next;
            }
        }
    }
    Ok(out)
}

/// printMsg / consumeMessage's listing.
pub fn listing(msgs: &[StoredMessage], with_body: bool) -> Output {
    let mut cols = vec![
        "Broker",
        "QID",
        "Offset",
        "Message ID",
        "Tags",
        "Keys",
        "Store Timestamp",
    ];
    if with_body {
        cols.push("Body");
    }
    let mut t = Table::new(&cols);
    for m in msgs {
        let mut row = vec![
            json!(m.store_host.to_string()),
            json!(m.queue_id),
            json!(m.queue_offset),
            json!(m.property("UNIQ_KEY")),
            json!(m.property("TAGS")),
            json!(m.property("KEYS")),
            json!(m.store_timestamp),
        ];
        if with_body {
            row.push(json!(body_text(m)));
        }
        t.row(row);
    }
    Output::Table(t)
}
