//! `POST /api/group/reset` with `"to": "offset"`: one queue of a group to a given offset
//! (RocketMQ's resetOffsetByQueueId: topic, broker, queue, offset).
//!
//! The offset is clamped to the queue's [min, max] (the preview and the answer say so). An
//! online group is reset through the broker (INVOKE_BROKER_TO_RESET_OFFSET with 5.x's `queueId`
//! and `offset`), which tells the group's consumers; a broker answering CONSUMER_NOT_ONLINE
//! (RocketMQ 4.x with the group offline) gets the offset committed instead
//! (UPDATE_CONSUMER_OFFSET). A broker that answers with other queues or another offset did not
//! reset that queue alone (4.x ignores `queueId`): that is an error, never a silent other reset.
//! It is asked with `timestamp` -1 and `isForce` false, with which such a broker moves nothing.

use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::{json, Value};

use super::actions::{int_field, str_field};
use crate::client::{fast_body, refused, Admin, AdminError, Result};
use crate::fjson::mq_of_key;

/// The queue a reset names and where it would go.
struct Plan {
    addr: String,
    broker: String,
    queue: i32,
    requested: i64,
    target: i64,
    min: i64,
    max: i64,
    current: Option<i64>,
}

impl Plan {
    fn note(&self) -> Option<String> {
        (self.target != self.requested).then(|| {
            format!(
                "offset {} is outside queue {} of {} ([{}, {}]): clamped to {}",
                self.requested, self.queue, self.broker, self.min, self.max, self.target
            )
        })
    }

    fn row(&self) -> Value {
        json!({
            "broker": self.broker, "queue": self.queue, "current": self.current,
            "target": self.target, "moves": self.current.map(|c| self.target - c),
            "requested": self.requested, "min": self.min, "max": self.max,
            "clamped": self.target != self.requested,
        })
    }
}

/// Resets (or with `"preview": true` only tells) group `g` on topic `t`, one queue.
pub fn reset(a: &mut Admin, v: &Value, g: &str, t: &str) -> Result<Value> {
    let plan = plan(a, v, g, t)?;
    let moves = plan.current.map_or(0, |c| plan.target - c);
    let mut out = json!({
        "preview": true, "queues": [plan.row()], "totalMoves": moves,
        "clamped": plan.target != plan.requested, "note": plan.note(),
    });
    if v["preview"].as_bool().unwrap_or(false) {
        return Ok(out);
    }
    let path = apply(a, &plan, g, t)?;
    out["preview"] = json!(false);
    out["result"] =
        json!({ "broker": plan.broker, "queue": plan.queue, "offset": plan.target, "path": path });
    Ok(out)
}

fn plan(a: &mut Admin, v: &Value, g: &str, t: &str) -> Result<Plan> {
    let broker = str_field(v, "broker")?;
    let queue = int_field(v, "queue", -1)?;
    if v["offset"].is_null() || v["offset"] == "" {
        return Err(AdminError::Usage("to=offset needs an offset".into()));
    }
    let requested = int_field(v, "offset", 0)?;
    let route = a.route(t)?;
    let Some(qd) = route.queue_datas.iter().find(|q| q.broker_name == broker) else {
        return Err(AdminError::Usage(format!(
            "{t} has no queues on broker {broker}"
        )));
    };
    let queues = i64::from(qd.read_queue_nums.max(qd.write_queue_nums));
    if !(0..queues).contains(&queue) {
        return Err(AdminError::Usage(format!(
            "queue {queue} is not a queue of {t} on {broker} (0 to {})",
            queues - 1
        )));
    }
    let addr = route
        .master_of(broker)
        .cloned()
        .ok_or_else(|| AdminError::Usage(format!("broker {broker} has no master in the route")))?;
    let queue = queue as i32;
    let min = queue_offset(a, &addr, RequestCode::GET_MIN_OFFSET, t, queue)?;
    let max = queue_offset(a, &addr, RequestCode::GET_MAX_OFFSET, t, queue)?;
    let req = RemotingCommand::request(RequestCode::QUERY_CONSUMER_OFFSET, 0)
        .with_ext("consumerGroup", g)
        .with_ext("topic", t)
        .with_ext("queueId", queue);
    let resp = a.call_raw(&addr, req)?;
    let current = (resp.code == ResponseCode::SUCCESS.num())
        .then(|| resp.ext("offset").and_then(|o| o.parse().ok()))
        .flatten();
    Ok(Plan {
        addr,
        broker: broker.to_owned(),
        queue,
        requested,
        target: requested.clamp(min, max.max(min)),
        min,
        max,
        current,
    })
}

fn queue_offset(a: &mut Admin, addr: &str, code: RequestCode, t: &str, q: i32) -> Result<i64> {
    let req = RemotingCommand::request(code, 0)
        .with_ext("topic", t)
        .with_ext("queueId", q);
    let resp = a.call(addr, req)?;
    resp.ext("offset")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| AdminError::Body {
            addr: addr.to_owned(),
            what: format!("{code:?} without an offset"),
        })
}

/// Moves the queue: through the broker, or by a commit when the broker says the group is
/// offline. Answers the path taken.
fn apply(a: &mut Admin, p: &Plan, g: &str, t: &str) -> Result<&'static str> {
    let req = RemotingCommand::request(RequestCode::INVOKE_BROKER_TO_RESET_OFFSET, 0)
        .with_ext("topic", t)
        .with_ext("group", g)
        .with_ext("timestamp", -1)
        .with_ext("isForce", false)
        .with_ext("queueId", p.queue)
        .with_ext("offset", p.target);
    let resp = a.call_raw(&p.addr, req)?;
    if resp.code == ResponseCode::CONSUMER_NOT_ONLINE.num() {
        let req = RemotingCommand::request(RequestCode::UPDATE_CONSUMER_OFFSET, 0)
            .with_ext("consumerGroup", g)
            .with_ext("topic", t)
            .with_ext("queueId", p.queue)
            .with_ext("commitOffset", p.target);
        a.call(&p.addr, req)?;
        return Ok("offline (committed)");
    }
    if resp.code != ResponseCode::SUCCESS.num() {
        return Err(refused(&p.addr, &resp));
    }
    let body = fast_body(&p.addr, &resp)?;
    let set: Vec<(i64, i64)> = body["offsetTable"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| mq_of_key(k).map(|(_, _, q)| (q, v.as_i64().unwrap_or(-1))))
        .collect();
    if set != [(i64::from(p.queue), p.target)] {
        return Err(AdminError::Body {
            addr: p.addr.clone(),
            what: format!(
                "asked to reset queue {} alone to {}, it answered {set:?}: this broker has no \
                 per-queue reset (RocketMQ 4.x); stop the group's consumers and reset again",
                p.queue, p.target
            ),
        });
    }
    Ok("broker")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(requested: i64, current: Option<i64>) -> Plan {
        Plan {
            addr: "127.0.0.1:1".into(),
            broker: "saturn-0".into(),
            queue: 3,
            requested,
            target: requested.clamp(5, 20),
            min: 5,
            max: 20,
            current,
        }
    }

    #[test]
    fn clamping_is_said() {
        assert_eq!(plan(7, Some(20)).note(), None);
        let row = plan(7, Some(20)).row();
        assert_eq!(
            (row["target"].as_i64(), row["moves"].as_i64()),
            (Some(7), Some(-13))
        );
        assert_eq!(row["clamped"], json!(false));
        let high = plan(99, None);
        assert_eq!(
            high.note().as_deref(),
            Some("offset 99 is outside queue 3 of saturn-0 ([5, 20]): clamped to 20")
        );
        assert_eq!(high.row()["moves"], Value::Null);
        assert_eq!(plan(-1, Some(9)).row()["target"].as_i64(), Some(5));
    }
}
