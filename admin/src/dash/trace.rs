//! The dashboard's trace timeline (`GET /api/trace`): a message's records from the trace topic
//! (RMQ_SYS_TRACE_TOPIC), written there by clients with tracing on, as one event per step:
//! `Pub` (the send), and per delivery its `SubBefore` and `SubAfter` joined by their request id.
//!
//! Record layout (RocketMQ's TraceDataEncoder; fields split by U+0001, records ended by U+0002):
//! * Pub: type, time, region, producer group, topic, msgId, tags, keys, store host, body length,
//!   cost, message type, offsetMsgId, success
//! * SubBefore: type, time, region, consumer group, request id, msgId, retry times, keys
//! * SubAfter: type, request id, msgId, cost, success, keys, context code[, time, consumer group]
//!
//! The trace messages carry the traced message's id (and its keys) as their keys, so the index
//! finds them; no record names its client's host: it is the trace message's born host (the trace
//! producer runs in the traced client's process). Layout checked against the Java client's
//! encoder in 4.9.8 and 5.3.3.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::api::need;
use crate::client::{Admin, AdminError, Result};
use crate::cmd::message::{body_text, query};
use crate::cmd::{cluster, trace::DEFAULT_TRACE_TOPIC};

type Query = BTreeMap<String, String>;

/// How many messages a key look-up traces at most.
const MAX_BY_KEY: usize = 16;

/// `id` (message id, UNIQ_KEY) or `topic` + `key`; `traceTopic` defaults to RMQ_SYS_TRACE_TOPIC.
/// Answers per message its events in time order and `traced` (false: tracing is off for it).
pub fn trace_view(a: &mut Admin, q: &Query) -> Result<Value> {
    let trace_topic = q
        .get("traceTopic")
        .filter(|t| !t.is_empty())
        .map_or(DEFAULT_TRACE_TOPIC, String::as_str);
    let targets: Vec<(String, Value)> = match q.get("id").filter(|v| !v.is_empty()) {
        Some(id) => vec![(id.clone(), json!({ "msgId": id }))],
        None => by_key(a, need(q, "topic")?, need(q, "key")?)?,
    };
    let mut out = Vec::new();
    for (id, mut head) in targets {
        let events = events_of(a, trace_topic, &id)?;
        head["traced"] = json!(!events.is_empty());
        head["events"] = Value::Array(events);
        out.push(head);
    }
    Ok(json!({ "traceTopic": trace_topic, "messages": out }))
}

/// The message ids (UNIQ_KEY) of `topic`'s messages with `key`, newest first.
fn by_key(a: &mut Admin, topic: &str, key: &str) -> Result<Vec<(String, Value)>> {
    let until = cluster::now_ms() + 3_600_000;
    let mut found = query(a, topic, key, 64, (0, until), false)?;
    found.retain(|m| {
        m.property("KEYS")
            .is_some_and(|k| k.split(' ').any(|k| k == key))
    });
    if found.is_empty() {
        return Err(AdminError::Usage(format!(
            "no message of {topic} has key {key}"
        )));
    }
    found.sort_by_key(|m| std::cmp::Reverse(m.store_timestamp));
    let mut out: Vec<(String, Value)> = Vec::new();
    for m in &found {
        let Some(id) = m.property("UNIQ_KEY") else {
            continue;
        };
        if out.len() < MAX_BY_KEY && !out.iter().any(|(x, _)| x == id) {
            let head = json!({ "msgId": id, "offsetMsgId": m.offset_msg_id(), "topic": m.topic,
                               "keys": m.property("KEYS"), "stored": m.store_timestamp });
            out.push((id.to_owned(), head));
        }
    }
    Ok(out)
}

/// Every record about `id` in the trace topic, deliveries joined, sorted by time.
fn events_of(a: &mut Admin, trace_topic: &str, id: &str) -> Result<Vec<Value>> {
    let carriers = match query(a, trace_topic, id, 64, (0, i64::MAX), false) {
        Ok(c) => c,
        // No trace topic at all: nothing was traced.
        Err(AdminError::Refused { code: 17, .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    for m in &carriers {
        for r in body_text(m).split('\u{2}') {
            let f: Vec<String> = r
                .trim_matches('\n')
                .split('\u{1}')
                .map(str::to_owned)
                .collect();
            records.push((f, m.born_host.ip().to_string()));
        }
    }
    let mut events = events_from(&records, id);
    events.sort_by_key(|e| e["time"].as_i64().unwrap_or(i64::MAX));
    events.dedup();
    Ok(events)
}

fn s(f: &[String], i: usize) -> Value {
    f.get(i)
        .filter(|v| !v.is_empty())
        .map_or(Value::Null, |v| json!(v))
}

fn n(f: &[String], i: usize) -> Value {
    f.get(i)
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(Value::Null, |v| json!(v))
}

fn ok(f: &[String], i: usize) -> Value {
    f.get(i)
        .map_or(Value::Null, |v| json!(v.eq_ignore_ascii_case("true")))
}

/// Records (fields, carrier's host) about `id` as events: Pub as is; each SubAfter with its
/// SubBefore (same request id); a SubBefore with no SubAfter yet as a delivery in progress.
fn events_from(records: &[(Vec<String>, String)], id: &str) -> Vec<Value> {
    let is = |f: &Vec<String>, kind: &str, at: usize| {
        f.first().is_some_and(|t| t == kind) && f.get(at).is_some_and(|x| x == id)
    };
    let mut events = Vec::new();
    let mut befores: BTreeMap<String, (&Vec<String>, &String)> = BTreeMap::new();
    for (f, host) in records {
        if is(f, "Pub", 5) {
            events.push(json!({
                "type": "Pub", "time": n(f, 1), "group": s(f, 3), "topic": s(f, 4), "client": host,
                "storeHost": s(f, 8), "cost": n(f, 10), "success": ok(f, 13),
                "tags": s(f, 6), "keys": s(f, 7), "offsetMsgId": s(f, 12),
            }));
        } else if is(f, "SubBefore", 5) {
            befores.insert(f[4].clone(), (f, host));
        }
    }
    for (f, host) in records {
        if !is(f, "SubAfter", 2) {
            continue;
        }
        let before = befores.remove(&f[1]);
        let bf = before.map(|(b, _)| b.as_slice()).unwrap_or(&[]);
        let group = if bf.is_empty() { s(f, 8) } else { s(bf, 3) };
        let time = if bf.is_empty() { n(f, 7) } else { n(bf, 1) };
        events.push(json!({
            "type": "Sub", "time": time, "group": group, "client": host,
            "cost": n(f, 3), "success": ok(f, 4), "retries": n(bf, 6),
            "requestId": s(f, 1), "subAfterTime": n(f, 7),
        }));
    }
    for (rid, (b, host)) in befores {
        events.push(json!({
            "type": "SubBefore", "time": n(b, 1), "group": s(b, 3), "client": host,
            "cost": Value::Null, "success": Value::Null, "retries": n(b, 6), "requestId": rid,
        }));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &[&str]) -> (Vec<String>, String) {
        (
            fields.iter().map(|f| f.to_string()).collect(),
            "10.0.0.9".into(),
        )
    }

    #[test]
    fn joins_deliveries_and_keeps_only_the_message() {
        let id = "AC1100020000";
        let records = vec![
            rec(&["SubAfter", "r1", id, "7", "false", "k", "0", "300", "CG"]),
            rec(&[
                "Pub",
                "100",
                "DefaultRegion",
                "PG",
                "T",
                id,
                "tg",
                "k",
                "127.0.0.1:10911",
                "5",
                "3",
                "0",
                "OFF",
                "true",
            ]),
            rec(&[
                "SubBefore",
                "200",
                "DefaultRegion",
                "CG",
                "r1",
                id,
                "0",
                "k",
            ]),
            rec(&[
                "SubBefore",
                "400",
                "DefaultRegion",
                "CG",
                "r2",
                id,
                "1",
                "k",
            ]),
            rec(&[
                "Pub", "100", "R", "PG", "T", "OTHER", "", "", "", "", "1", "0", "", "true",
            ]),
        ];
        let mut ev = events_from(&records, id);
        ev.sort_by_key(|e| e["time"].as_i64().unwrap());
        let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Pub", "Sub", "SubBefore"]);
        assert_eq!(ev[0]["group"], "PG");
        assert_eq!(ev[0]["client"], "10.0.0.9");
        assert_eq!(ev[0]["success"], true);
        assert_eq!(ev[1]["group"], "CG");
        assert_eq!(ev[1]["time"], 200);
        assert_eq!(ev[1]["cost"], 7);
        assert_eq!(ev[1]["success"], false);
        assert_eq!(ev[1]["retries"], 0);
        assert_eq!(ev[2]["retries"], 1);
    }
}
