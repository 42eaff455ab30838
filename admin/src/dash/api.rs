//! The dashboard's read-only JSON views. Each answers an object; a failed admin call answers
//! `{"error": ...}` with 400 (bad or missing parameter, unknown name) or 502 (a broker or name
//! server refused or could not be reached).

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use protocol::message::{decode_all, decode_offset_msg_id, StoredMessage};
use protocol::{RemotingCommand, RequestCode};
use serde_json::{json, Map, Value};

use super::http::Response;
use super::DashConfig;
use crate::client::{Admin, AdminError, Result};
use crate::cmd::{cluster, group, message, topic};

type Query = BTreeMap<String, String>;

pub fn get(path: &str, q: &Query, cfg: &DashConfig) -> Response {
    let mut admin = super::admin_of(cfg);
    let a = &mut admin;
    let out = match path {
        "/api/cluster" => cluster_view(a),
        "/api/topics" => topic::topic_list(a, true).map(|o| o.to_json()),
        "/api/topic" => need(q, "topic").and_then(|t| topic_view(a, t)),
        "/api/groups" => group::consumer_progress(a, None, None).map(|o| o.to_json()),
        "/api/group" => need(q, "group").and_then(|g| group_view(a, g)),
        "/api/message" => message_view(a, q),
        "/api/messages" => need(q, "topic").and_then(|t| super::browse::browse(a, t, q)),
        "/api/dlq" => need(q, "group").and_then(|g| dlq_view(a, g, q)),
        "/api/trace" => super::trace::trace_view(a, q),
        _ => return Response::error(404, &format!("no API at {path}")),
    };
    answer(out)
}

/// An admin result as a response.
pub fn answer(out: Result<Value>) -> Response {
    match out {
        Ok(v) => Response::json(200, &v),
        Err(e @ AdminError::Usage(_)) => Response::error(400, &e.to_string()),
        // TOPIC_NOT_EXIST, SUBSCRIPTION_GROUP_NOT_EXIST, QUERY_NOT_FOUND
        Err(
            e @ AdminError::Refused {
                code: 17 | 22 | 26, ..
            },
        ) => Response::error(404, &e.to_string()),
        Err(e) => Response::error(502, &e.to_string()),
    }
}

pub fn need<'a>(q: &'a Query, name: &str) -> Result<&'a str> {
    q.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AdminError::Usage(format!("missing parameter {name}")))
}

pub(super) fn number<T: std::str::FromStr>(q: &Query, name: &str) -> Result<T> {
    need(q, name)?
        .parse()
        .map_err(|_| AdminError::Usage(format!("parameter {name} is not a number")))
}

fn first_number(v: Option<&String>) -> Value {
    v.and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(Value::Null, |n| json!(n))
}

fn int(rt: &BTreeMap<String, String>, key: &str) -> Value {
    rt.get(key)
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(Value::Null, |n| json!(n))
}

/// Every broker (each shard of a Saturn broker is one) with its role and runtime figures.
fn cluster_view(a: &mut Admin) -> Result<Value> {
    let info = a.cluster_info()?;
    let now = cluster::now_ms();
    let mut brokers = Vec::new();
    for (cname, names) in &info.cluster_addr_table {
        for bname in names {
            let Some(bd) = info.broker_addr_table.get(bname) else {
                continue;
            };
            for (id, addr) in &bd.broker_addrs {
                let (online, rt) = match cluster::runtime_info(a, addr) {
                    Ok(rt) => (true, rt),
                    Err(_) => (false, BTreeMap::new()),
                };
                let boot = rt.get("bootTimestamp").and_then(|v| v.parse::<i64>().ok());
                brokers.push(json!({
                    "cluster": cname, "broker": bname, "brokerId": id, "addr": addr,
                    "role": if *id == 0 { "MASTER" } else { "SLAVE" },
                    "online": online,
                    "version": rt.get("brokerVersionDesc"),
                    "putTotal": int(&rt, "msgPutTotalTodayNow"),
                    "getTotal": int(&rt, "msgGetTotalTodayNow"),
                    "putTps": first_number(rt.get("putTps")),
                    "getTps": first_number(rt.get("getTransferredTps")),
                    "diskRatio": first_number(rt.get("commitLogDiskRatio")),
                    "bootTimestamp": boot,
                    "uptimeMs": boot.map(|b| now - b),
                }));
            }
        }
    }
    Ok(json!({ "namesrv": a.namesrv_addrs(), "brokers": brokers }))
}

fn topic_view(a: &mut Admin, t: &str) -> Result<Value> {
    let route = topic::topic_route(a, t)?.to_json();
    let status = topic::topic_status(a, t)?.to_json();
    let groups = match a.route_masters(t)?.into_values().next() {
        Some(addr) => topic::consumed_by(a, &addr, t).unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(json!({ "topic": t, "route": route, "queues": status, "consumerGroups": groups }))
}

fn group_view(a: &mut Admin, g: &str) -> Result<Value> {
    let progress = group::consumer_progress(a, Some(g), None)
        .map(|o| o.to_json())
        .unwrap_or_else(|_| json!([]));
    let total: i64 = progress
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["Diff"].as_i64())
        .sum();
    let members = match group::consumer_connection(a, g) {
        Ok(o) => o.to_json(),
        Err(e) => json!({ "offline": e.to_string() }),
    };
    Ok(json!({ "group": g, "lag": progress, "totalLag": total, "members": members }))
}

/// The body as stored, inflated when the compressed flag is set.
pub fn body_bytes(m: &StoredMessage) -> Vec<u8> {
    if m.sys_flag & 0x1 != 0 {
        let mut out = Vec::new();
        if flate2::read::ZlibDecoder::new(&m.body[..])
            .read_to_end(&mut out)
            .is_ok()
        {
            return out;
        }
    }
    m.body.to_vec()
}

/// A message with its properties and its body as text, JSON (when it parses) and hex.
pub fn message_json(m: &StoredMessage) -> Value {
    let mut d: Map<String, Value> = message::detail(m);
    let body = body_bytes(m);
    let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
    d.insert(
        "Body".into(),
        json!({
            "text": String::from_utf8_lossy(&body),
            "json": serde_json::from_slice::<Value>(&body).ok(),
            "hex": hex,
            "size": body.len(),
        }),
    );
    Value::Object(d)
}

/// VIEW_MESSAGE_BY_ID (33) at the store host an offsetMsgId names.
pub fn by_offset_id(a: &mut Admin, id: &str) -> Result<StoredMessage> {
    let (host, offset) = decode_offset_msg_id(id)
        .map_err(|e| AdminError::Usage(format!("{id} is not an offsetMsgId: {e}")))?;
    let addr = host.to_string();
    // Only brokers the name servers list are asked: an id is no way to reach other hosts.
    let info = a.cluster_info()?;
    let known = info
        .broker_addr_table
        .values()
        .flat_map(|b| b.broker_addrs.values())
        .any(|x| *x == addr);
    if !known {
        return Err(AdminError::Usage(format!(
            "{id} names store host {addr}, not a broker of this cluster \
             (a message id, UNIQ_KEY, needs its topic)"
        )));
    }
    let req =
        RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID, 0).with_ext("offset", offset);
    let resp = a.call(&addr, req)?;
    decode_all(Bytes::copy_from_slice(&resp.body))
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| AdminError::Body {
            addr,
            what: "no message in the answer".into(),
        })
}

fn find(a: &mut Admin, q: &Query) -> Result<Vec<StoredMessage>> {
    let until = cluster::now_ms() + 3_600_000;
    if let Some(id) = q.get("id").filter(|v| !v.is_empty()) {
        // With a topic: a message id (UNIQ_KEY) first; both are 32 hex digits.
        if let Some(t) = q.get("topic").filter(|v| !v.is_empty()) {
            let mut v = message::query(a, t, id, 32, (0, until), true)?;
            v.retain(|m| m.property("UNIQ_KEY") == Some(id.as_str()));
            if !v.is_empty() || decode_offset_msg_id(id).is_err() {
                return Ok(v);
            }
        }
        return Ok(vec![by_offset_id(a, id)?]);
    }
    let t = need(q, "topic")?;
    if let Some(key) = q.get("key").filter(|v| !v.is_empty()) {
        let mut v = message::query(a, t, key, 64, (0, until), false)?;
        v.retain(|m| {
            m.property("KEYS")
                .is_some_and(|k| k.split(' ').any(|k| k == key))
        });
        return Ok(v);
    }
    let (b, qid, off): (&str, i32, i64) = (
        need(q, "broker")?,
        number(q, "queue")?,
        number(q, "offset")?,
    );
    let addr = a
        .route_masters(t)?
        .remove(b)
        .ok_or_else(|| AdminError::Usage(format!("broker {b} serves no queue of {t}")))?;
    let got = message::pull(a, &addr, (t, qid), off, 1, message::TOOLS_GROUP)?;
    Ok(got
        .map(|(v, _)| v.into_iter().filter(|m| m.queue_offset == off).collect())
        .unwrap_or_default())
}

/// By `id` (offsetMsgId, or UNIQ_KEY with `topic`), by `topic`+`key`, or by
/// `topic`+`broker`+`queue`+`offset`.
fn message_view(a: &mut Admin, q: &Query) -> Result<Value> {
    let found = find(a, q)?;
    if found.is_empty() {
        return Err(AdminError::Usage("no message matches".into()));
    }
    Ok(json!({ "messages": found.iter().map(message_json).collect::<Vec<_>>() }))
}

/// A group's dead letters: %DLQ%group's queues on every master (asked directly: a new DLQ is on
/// the broker before the name server has its route) and its first messages (`max`, default 50).
fn dlq_view(a: &mut Admin, g: &str, q: &Query) -> Result<Value> {
    let dlq = format!("%DLQ%{g}");
    let max: usize = number(q, "max").unwrap_or(50).min(500);
    let (mut queues, mut msgs) = (Vec::new(), Vec::new());
    for (bname, addr) in a.masters(None)? {
        let req = RemotingCommand::request(RequestCode::GET_TOPIC_STATS_INFO, 0)
            .with_ext("topic", dlq.as_str());
        let resp = a.call_raw(&addr, req)?;
        if resp.code != 0 {
            continue; // TOPIC_NOT_EXIST on this broker: no dead letters here
        }
        let body = crate::client::fast_body(&addr, &resp)?;
        for (k, v) in body["offsetTable"].as_object().into_iter().flatten() {
            let Some((_, _, qid)) = crate::fjson::mq_of_key(k) else {
                continue;
            };
            let (min, top) = (
                v["minOffset"].as_i64().unwrap_or(0),
                v["maxOffset"].as_i64().unwrap_or(0),
            );
            queues.push(
                json!({ "Broker Name": bname, "QID": qid, "Min Offset": min, "Max Offset": top }),
            );
            let mut from = min;
            while from < top && msgs.len() < max {
                let got =
                    message::pull(a, &addr, (&dlq, qid as i32), from, 32, message::TOOLS_GROUP)?;
                let Some((batch, next)) = got else { break };
                msgs.extend(batch.into_iter().take(max - msgs.len()));
                if next <= from {
                    break;
                }
                from = next;
            }
        }
    }
    let list: Vec<Value> = msgs.iter().map(message_json).collect();
    Ok(json!({ "topic": dlq, "queues": queues, "messages": list }))
}
