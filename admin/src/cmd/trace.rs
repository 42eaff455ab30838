//! queryMsgTraceById: a message's trace records, written by clients with tracing on into the
//! trace topic (keyed by message id). Record layout: RocketMQ's TraceDataEncoder (fields split
//! by U+0001, records ended by U+0002).

use protocol::message::StoredMessage;
use serde_json::{json, Value};

use crate::client::{Admin, AdminError, Result};
use crate::cmd::message::{body_text, query};
use crate::out::{Output, Table};

pub const DEFAULT_TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

fn field(f: &[&str], i: usize) -> Value {
    f.get(i)
        .filter(|s| !s.is_empty())
        .map_or(Value::Null, |s| json!(s))
}

fn number(f: &[&str], i: usize) -> Value {
    f.get(i)
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(Value::Null, |n| json!(n))
}

/// One row per record about `msg_id`: type, time, group, topic, cost, status, retries, host.
fn rows_of(record: &str, msg_id: &str, carrier: &StoredMessage) -> Option<Vec<Value>> {
    let f: Vec<&str> = record.split('\u{1}').collect();
    let client = json!(carrier.born_host.ip().to_string());
    match f[0] {
        "Pub" if f.get(5) == Some(&msg_id) => Some(vec![
            json!("Pub"),
            number(&f, 1),
            field(&f, 3),
            field(&f, 4),
            number(&f, 10),
            field(&f, 13),
            Value::Null,
            field(&f, 8),
        ]),
        "SubBefore" if f.get(5) == Some(&msg_id) => Some(vec![
            json!("SubBefore"),
            number(&f, 1),
            field(&f, 3),
            Value::Null,
            Value::Null,
            Value::Null,
            number(&f, 6),
            client,
        ]),
        "SubAfter" if f.get(2) == Some(&msg_id) => Some(vec![
            json!("SubAfter"),
            number(&f, 7),
            field(&f, 8),
            Value::Null,
            number(&f, 3),
            field(&f, 4),
            Value::Null,
            client,
        ]),
        "EndTransaction" if f.get(5) == Some(&msg_id) => Some(vec![
            json!("EndTransaction"),
            number(&f, 1),
            field(&f, 3),
            field(&f, 4),
            Value::Null,
            field(&f, 11),
            Value::Null,
            field(&f, 8),
        ]),
        _ => None,
    }
}

pub fn query_trace(admin: &mut Admin, msg_id: &str, trace_topic: &str) -> Result<Output> {
    let carriers = query(admin, trace_topic, msg_id, 64, (0, i64::MAX), false)?;
    let mut rows = Vec::new();
    for m in &carriers {
        for record in body_text(m).split('\u{2}') {
            if let Some(r) = rows_of(record.trim_matches('\n'), msg_id, m) {
                rows.push(r);
            }
        }
    }
    if rows.is_empty() {
        return Err(AdminError::Usage(format!(
            "no trace of {msg_id} in {trace_topic}: tracing is off for this message (or its traces are not written yet)"
        )));
    }
    rows.sort_by_key(|r| r[1].as_i64().unwrap_or(i64::MAX));
    rows.dedup();
    let mut t = Table::new(&[
        "Type",
        "Timestamp",
        "Group",
        "Topic",
        "Cost(ms)",
        "Status",
        "Retry",
        "Host",
    ]);
    for r in rows {
        t.row(r);
    }
    Ok(Output::Table(t))
}
