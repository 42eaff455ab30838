//! Producers and the live tail of a topic.
//!
//! * `GET /api/producers`: every producer group the masters know from their clients'
//!   heartbeats, found without typing a name: GET_ALL_PRODUCER_INFO (328) on each master, the
//!   connections merged by client id (a client heartbeats to every broker it sends to).
//! * `GET /api/tail?topic=T[&cursor=C]`: without a cursor, one at each queue's max offset (and
//!   no messages); with one, the messages stored since (at most [`TAIL_MAX`] per call) and the
//!   cursor after them. The dashboard reads with its own pulls (group TOOLS_CONSUMER, no commit
//!   flag, no heartbeat): nothing is committed and no group is joined. The cursor is
//!   `broker/queue/offset,...`; queues it does not name start at their max offset. A queue more
//!   than [`TAIL_MAX`] messages behind jumps ahead to its last [`TAIL_MAX`] (`skipped` counts
//!   what it jumped over): the tail stays live rather than replaying a backlog.

use std::collections::BTreeMap;

use protocol::{RemotingCommand, RequestCode};
use serde_json::{json, Value};

use super::api::{answer, body_bytes, need};
use super::http::Response;
use super::DashConfig;
use crate::client::{fast_body, Admin, AdminError, Result};
use crate::cmd::message;

/// Messages per tail call; the page keeps the last 200.
pub const TAIL_MAX: usize = 200;
/// Messages per pull of one queue in a tail call.
const PULL_BATCH: i32 = 32;

type Query = BTreeMap<String, String>;

pub fn get(path: &str, q: &Query, cfg: &DashConfig) -> Response {
    let mut admin = super::admin_of(cfg);
    let a = &mut admin;
    answer(match path {
        "/api/producers" => producers(a),
        _ => need(q, "topic").and_then(|t| tail(a, t, q.get("cursor").map(String::as_str))),
    })
}

/// Producer groups with their connections, from every master.
fn producers(a: &mut Admin) -> Result<Value> {
    // group -> client id -> connection (with the brokers that know it)
    let mut groups: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (bname, addr) in a.masters(None)? {
        let req = RemotingCommand::request(RequestCode::GET_ALL_PRODUCER_INFO, 0);
        let body = match a.call(&addr, req).and_then(|r| fast_body(&addr, &r)) {
            Ok(b) => b,
            Err(e) => {
                errors.push(format!("{bname} ({addr}): {e}"));
                continue;
            }
        };
        for (g, list) in body["data"].as_object().into_iter().flatten() {
            let per = groups.entry(g.clone()).or_default();
            for p in list.as_array().into_iter().flatten() {
                let id = p["clientId"].as_str().unwrap_or_default().to_owned();
                let c = per.entry(id.clone()).or_insert_with(|| {
                    json!({
                        "clientId": id, "clientAddr": p["remoteIP"], "language": p["language"],
                        "version": p["version"], "lastUpdateTimestamp": p["lastUpdateTimestamp"],
                        "brokers": [],
                    })
                });
                if p["lastUpdateTimestamp"].as_i64() > c["lastUpdateTimestamp"].as_i64() {
                    c["lastUpdateTimestamp"] = p["lastUpdateTimestamp"].clone();
                }
                if let Some(b) = c["brokers"].as_array_mut() {
                    b.push(json!(bname));
                }
            }
        }
    }
    let list: Vec<Value> = groups
        .into_iter()
        .map(|(g, conns)| {
            let conns: Vec<Value> = conns.into_values().collect();
            json!({ "group": g, "connections": conns })
        })
        .collect();
    Ok(json!({ "groups": list, "errors": errors }))
}

pub(super) fn parse_cursor(c: &str) -> Result<BTreeMap<(String, i32), i64>> {
    let bad = || AdminError::Usage(format!("bad cursor {c}: broker/queue/offset,..."));
    let mut out = BTreeMap::new();
    for part in c.split(',').filter(|p| !p.is_empty()) {
        let mut it = part.rsplitn(3, '/');
        let (off, qid, b) = (it.next(), it.next(), it.next());
        let (Some(off), Some(qid), Some(b)) = (off, qid, b) else {
            return Err(bad());
        };
        let off: i64 = off.parse().map_err(|_| bad())?;
        let qid: i32 = qid.parse().map_err(|_| bad())?;
        out.insert((b.to_owned(), qid), off);
    }
    Ok(out)
}

fn max_offset(a: &mut Admin, addr: &str, t: &str, qid: i32) -> Result<i64> {
    let req = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", t)
        .with_ext("queueId", qid);
    let resp = a.call(addr, req)?;
    Ok(resp.ext("offset").and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// The tail of `t` after `cursor` (see the module's doc).
fn tail(a: &mut Admin, t: &str, cursor: Option<&str>) -> Result<Value> {
    let mut at = cursor.map(parse_cursor).transpose()?.unwrap_or_default();
    let route = a.route(t)?;
    let masters = a.route_masters(t)?;
    let (mut msgs, mut next, mut skipped) = (Vec::new(), Vec::new(), 0i64);
    for qd in &route.queue_datas {
        let Some(addr) = masters.get(&qd.broker_name) else {
            continue;
        };
        for qid in 0..qd.read_queue_nums {
            let key = (qd.broker_name.clone(), qid);
            let from = match (cursor, at.remove(&key)) {
                (Some(_), Some(o)) => o,
                _ => max_offset(a, addr, t, qid)?,
            };
            let mut to = from;
            if cursor.is_some() && msgs.len() < TAIL_MAX {
                let got = message::pull(a, addr, (t, qid), from, PULL_BATCH, message::TOOLS_GROUP)?;
                if let Some((batch, n)) = got {
                    let full = batch.len() >= PULL_BATCH as usize;
                    let room = TAIL_MAX - msgs.len();
                    let taken: Vec<_> = batch.into_iter().take(room).collect();
                    to = taken.last().map_or(n, |m| m.queue_offset + 1).max(from);
                    msgs.extend(taken.iter().map(|m| summary(m, &qd.broker_name)));
                    if full {
                        skipped += keep_up(a, addr, (t, qid), &mut to)?;
                    }
                }
            }
            next.push(format!("{}/{qid}/{to}", qd.broker_name));
        }
    }
    msgs.sort_by_key(|m| m["storeTimestamp"].as_i64());
    Ok(json!({ "topic": t, "cursor": next.join(","), "messages": msgs, "skipped": skipped }))
}

/// A queue more than [`TAIL_MAX`] messages ahead of the cursor: the cursor jumps to the last
/// [`TAIL_MAX`] (a live tail shows what arrives now); the messages jumped over.
fn keep_up(a: &mut Admin, addr: &str, q: (&str, i32), to: &mut i64) -> Result<i64> {
    let max = max_offset(a, addr, q.0, q.1)?;
    let behind = max - *to;
    if behind <= TAIL_MAX as i64 {
        return Ok(0);
    }
    let skip = behind - TAIL_MAX as i64;
    *to += skip;
    Ok(skip)
}

fn summary(m: &protocol::message::StoredMessage, broker: &str) -> Value {
    let body = body_bytes(m);
    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
    json!({
        "broker": broker, "queue": m.queue_id, "offset": m.queue_offset,
        "msgId": m.property("UNIQ_KEY"), "offsetMsgId": m.offset_msg_id(),
        "keys": m.property("KEYS"), "tags": m.property("TAGS"),
        "bornHost": m.born_host.to_string(), "storeTimestamp": m.store_timestamp,
        "size": body.len(), "body": text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors() {
        let c = parse_cursor("saturn-0/0/5,my/broker-1/3/12").unwrap();
        assert_eq!(c[&("saturn-0".to_owned(), 0)], 5);
        assert_eq!(c[&("my/broker-1".to_owned(), 3)], 12);
        assert!(parse_cursor("saturn-0/x/5").is_err());
        assert!(parse_cursor("5").is_err());
        assert!(parse_cursor("").unwrap().is_empty());
    }
}
