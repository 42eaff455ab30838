//! `GET /api/messages?topic=T[&begin=ms][&end=ms][&max=N][&cursor=C]`: a topic's messages stored
//! between `begin` and `end` (ms; default: all), at most `max` a page (default 50, at most 500),
//! queue by queue in the route's order.
//!
//! Each answer carries a `cursor`: every queue's next offset (`broker/queue/offset,...`, as the
//! live tail's). Given back with the same range, the next page starts where this one stopped:
//! pages concatenated are the range's messages, each once. The cursor is null when every queue
//! has been read to the range's end. A queue the cursor does not name starts at `begin`.

use std::collections::BTreeMap;

use protocol::message::StoredMessage;
use protocol::RequestCode;
use serde_json::{json, Value};

use super::api::{message_json, number};
use super::live::parse_cursor;
use crate::client::{Admin, AdminError, Result};
use crate::cmd::message;

type Query = BTreeMap<String, String>;

/// Messages asked of a broker at once.
const BATCH: i32 = 32;

pub fn browse(a: &mut Admin, t: &str, q: &Query) -> Result<Value> {
    let opt = |name: &str| -> Result<Option<i64>> {
        match q.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(_) => number(q, name).map(Some),
        }
    };
    let (begin, end) = (opt("begin")?, opt("end")?);
    let max: usize = match q.get("max").filter(|v| !v.is_empty()) {
        None => 50,
        Some(_) => number::<usize>(q, "max")?.clamp(1, 500),
    };
    let mut at = match q.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => parse_cursor(c)?,
        None => BTreeMap::new(),
    };
    let route = a.route(t)?;
    let (mut msgs, mut cursor, mut more) = (Vec::new(), Vec::new(), false);
    for (qd, addr) in route.master_queue_datas() {
        for qid in 0..qd.read_queue_nums {
            let qq = (t, qid);
            let from = match at.remove(&(qd.broker_name.clone(), qid)) {
                Some(o) => o,
                None => start(a, addr, qq, begin)?,
            };
            let to = match end {
                Some(e) => crate::cmd::message::offset_of(
                    a,
                    addr,
                    RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
                    qq,
                    Some(e),
                )?,
                None => {
                    crate::cmd::message::offset_of(a, addr, RequestCode::GET_MAX_OFFSET, qq, None)?
                }
            };
            let from = read_queue(a, addr, qq, (from, to), max, &mut msgs)?;
            more |= from < to;
            cursor.push(format!("{}/{qid}/{from}", qd.broker_name));
        }
    }
    if let Some(((b, qid), _)) = at.into_iter().next() {
        return Err(AdminError::Usage(format!(
            "the cursor names queue {qid} of {b}, not a queue of {t}"
        )));
    }
    let list: Vec<Value> = msgs.iter().map(message_json).collect();
    Ok(json!({ "topic": t, "messages": list, "cursor": more.then(|| cursor.join(",")) }))
}

fn start(a: &mut Admin, addr: &str, q: (&str, i32), begin: Option<i64>) -> Result<i64> {
    match begin {
        Some(b) => crate::cmd::message::offset_of(
            a,
            addr,
            RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
            q,
            Some(b),
        ),
        None => crate::cmd::message::offset_of(a, addr, RequestCode::GET_MIN_OFFSET, q, None),
    }
}

/// Appends the queue's messages in [from, to) until `out` holds `max`; answers the offset of
/// the first message not taken (`to` once the queue is read to the end of the range; also when
/// the broker has nothing at an offset before `to`, so that paging ends).
fn read_queue(
    a: &mut Admin,
    addr: &str,
    q: (&str, i32),
    (mut from, to): (i64, i64),
    max: usize,
    out: &mut Vec<StoredMessage>,
) -> Result<i64> {
    while from < to && out.len() < max {
        let Some((batch, next)) = message::pull(a, addr, q, from, BATCH, message::TOOLS_GROUP)?
        else {
            return Ok(to);
        };
        for m in batch {
            if m.queue_offset >= to {
                return Ok(to);
            }
            if out.len() >= max {
                return Ok(m.queue_offset);
            }
            out.push(m);
        }
        if next <= from {
            return Ok(to);
        }
        from = next;
    }
    Ok(from)
}
