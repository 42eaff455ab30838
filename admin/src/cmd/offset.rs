//! resetOffsetByTime and skipAccumulatedMessage.

use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::json;

use crate::client::{fast_body, refused, Admin, AdminError, Result};
use crate::fjson::mq_of_key;
use crate::out::{Output, Table};

/// mqadmin's `-s`: `now`, milliseconds since the epoch, or `yyyy-MM-dd#HH:mm:ss:SSS` (read as UTC).
pub fn parse_time(text: &str, now: i64) -> Result<i64> {
    if text == "now" {
        return Ok(now);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        AdminError::Usage(format!(
            "bad time {text}: want now, ms, or yyyy-MM-dd#HH:mm:ss:SSS"
        ))
    };
    let (date, time) = text.split_once('#').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() != 4 {
        return Err(bad());
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + t[3])
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// resetOffsetByTime (and skipAccumulatedMessage with timestamp -1): asks each broker of the
/// topic to reset the group (INVOKE_BROKER_TO_RESET_OFFSET, 222), which pushes the new offsets
/// to the online consumers. A broker that answers CONSUMER_NOT_ONLINE gets the offline path:
/// the offset for the time per queue (29, or 30 for -1), committed with UPDATE_CONSUMER_OFFSET.
pub fn reset_offset(
    admin: &mut Admin,
    group: &str,
    topic: &str,
    ts: i64,
    force: bool,
) -> Result<Output> {
    let route = admin.route(topic)?;
    let mut t = Table::new(&["Broker Name", "QID", "Offset", "Path"]);
    for bd in &route.broker_datas {
        let Some(addr) = bd.broker_addrs.get(&0) else {
            continue;
        };
        let req = RemotingCommand::request(RequestCode::INVOKE_BROKER_TO_RESET_OFFSET, 0)
            .with_ext("topic", topic)
            .with_ext("group", group)
            .with_ext("timestamp", ts)
            .with_ext("isForce", force);
        let resp = admin.call_raw(addr, req)?;
        if resp.code == ResponseCode::CONSUMER_NOT_ONLINE.num() {
            let queues = route
                .queue_datas
                .iter()
                .filter(|q| q.broker_name == bd.broker_name)
                .map(|q| q.read_queue_nums)
                .max()
                .unwrap_or(0);
            offline_reset(
                admin,
                addr,
                &bd.broker_name,
                queues,
                (group, topic),
                ts,
                force,
                &mut t,
            )?;
            continue;
        }
        if resp.code != ResponseCode::SUCCESS.num() {
            return Err(refused(addr, &resp));
        }
        let body = fast_body(addr, &resp)?;
        let mut rows: Vec<_> = body["offsetTable"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| mq_of_key(k).map(|(_, b, q)| (b, q, v.as_i64().unwrap_or(-1))))
            .collect();
        rows.sort();
        for (b, q, off) in rows {
            t.row(vec![json!(b), json!(q), json!(off), json!("broker")]);
        }
    }
    Ok(Output::Table(t))
}

fn offset_call(admin: &mut Admin, addr: &str, req: RemotingCommand) -> Result<i64> {
    let resp = admin.call(addr, req)?;
    Ok(resp.ext("offset").and_then(|v| v.parse().ok()).unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
fn offline_reset(
    admin: &mut Admin,
    addr: &str,
    broker: &str,
    queues: i32,
    (group, topic): (&str, &str),
    ts: i64,
    force: bool,
    t: &mut Table,
) -> Result<()> {
    for qid in 0..queues {
        let target = if ts < 0 {
            let req = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
                .with_ext("topic", topic)
                .with_ext("queueId", qid);
            offset_call(admin, addr, req)?
        } else {
            let req = RemotingCommand::request(RequestCode::SEARCH_OFFSET_BY_TIMESTAMP, 0)
                .with_ext("topic", topic)
                .with_ext("queueId", qid)
                .with_ext("timestamp", ts);
            offset_call(admin, addr, req)?
        };
        let req = RemotingCommand::request(RequestCode::QUERY_CONSUMER_OFFSET, 0)
            .with_ext("consumerGroup", group)
            .with_ext("topic", topic)
            .with_ext("queueId", qid);
        let current = admin.call_raw(addr, req)?;
        let current: Option<i64> = (current.code == 0)
            .then(|| current.ext("offset").and_then(|v| v.parse().ok()))
            .flatten();
        if !force && current.is_some_and(|c| c <= target) {
            t.row(vec![
                json!(broker),
                json!(qid),
                json!(current),
                json!("offline (kept)"),
            ]);
            continue;
        }
        let req = RemotingCommand::request(RequestCode::UPDATE_CONSUMER_OFFSET, 0)
            .with_ext("consumerGroup", group)
            .with_ext("topic", topic)
            .with_ext("queueId", qid)
            .with_ext("commitOffset", target);
        admin.call(addr, req)?;
        t.row(vec![
            json!(broker),
            json!(qid),
            json!(target),
            json!("offline"),
        ]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mqadmin_times() {
        assert_eq!(parse_time("now", 42).unwrap(), 42);
        assert_eq!(parse_time("1700000000000", 0).unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2023-11-14#22:13:20:000", 0).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_time("1970-01-01#00:00:00:005", 0).unwrap(), 5);
        assert!(parse_time("yesterday", 0).is_err());
        assert!(parse_time("2023-11-14#22:13", 0).is_err());
    }
}
