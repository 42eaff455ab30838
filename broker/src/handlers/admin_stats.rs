//! Statistics and inspection requests of mqadmin: GET_BROKER_RUNTIME_INFO (28),
//! VIEW_BROKER_STATS_DATA (315), GET_BROKER_CONSUME_STATS (317), QUERY_CONSUME_QUEUE (321),
//! GET_ALL_PRODUCER_INFO (328). Rates come from the shard's counters ([`crate::stats`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Instant;

use protocol::body::{encode_json, mq_keyed_map_json, KvTable, OffsetWrapper};
use protocol::header::{
    GetConsumeStatsInBrokerHeader, QueryConsumeQueueRequestHeader, ViewBrokerStatsDataRequestHeader,
};
use protocol::message::StoredMessage;
use protocol::{RemotingCommand, ResponseCode};
use serde_json::json;

use super::admin::mq;
use super::{error, header, Reply};
use crate::metadata::now_ms;
use crate::shard::Shard;

/// Entries one QUERY_CONSUME_QUEUE may list.
const MAX_CQ_ENTRIES: usize = 1024;

/// RocketMQ's "10 s, 60 s, 600 s" rate triple of a counter.
fn tps_triple(c: &crate::stats::Counter, now: i64) -> String {
    format!(
        "{:.2} {:.2} {:.2}",
        c.rate_over(10_000, now),
        c.rate_over(60_000, now),
        c.rate_over(600_000, now)
    )
}

/// Used share of the file system holding `path`, 0.0..1.0.
fn disk_ratio(path: &std::path::Path) -> Option<f64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path; `st` is written by the call only.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 || st.f_blocks == 0 {
        return None;
    }
    Some(1.0 - st.f_bavail as f64 / st.f_blocks as f64)
}

/// The timer engine's figures: RocketMQ's `scheduleMessageOffset_<level>` ("delivered up to,
/// stored up to") and timer keys, and Saturn's pending count and due backlog.
fn timer_figures(shard: &Shard, put: &mut impl FnMut(&str, String)) {
    let t = &shard.timers;
    for (q, off) in t.level_offsets.borrow().iter().enumerate() {
        let max = shard
            .store
            .max_offset(crate::timer::SCHEDULE_TOPIC, q as i32);
        put(
            &format!("scheduleMessageOffset_{}", q + 1),
            format!("{off},{max}"),
        );
    }
    put("timerPendingCount", t.pending.get().to_string());
    put("timerDueBacklog", t.due_backlog.get().to_string());
    put("timerOffsetBehind", t.unindexed.get().to_string());
    put("timerDeliveredTotal", t.delivered.get().to_string());
    put("timerIndexInMemory", t.in_memory.get().to_string());
}

pub async fn runtime_info(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let now = now_ms();
    let s = &shard.stats;
    let mut t: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.to_owned(), v);
    };
    put("brokerVersionDesc", "V4_9_8".into());
    put(
        "brokerVersion",
        protocol::code::SATURN_REMOTING_VERSION.to_string(),
    );
    put("brokerName", shard.name.clone());
    put("brokerActive", "true".into());
    put("bootTimestamp", shard.boot_ms.to_string());
    put("runtime", format!("[ {} ms ]", now - shard.boot_ms));
    let (cl_min, cl_max) = (
        shard.store.commit_log_min_offset(),
        shard.store.commit_log_max_offset(),
    );
    put("commitLogMinOffset", cl_min.to_string());
    put("commitLogMaxOffset", cl_max.to_string());
    put("flushDiskType", shard.config.flush.name().into());
    timer_figures(shard, &mut put);
    put("putTps", tps_triple(&s.put, now));
    let got = tps_triple(&s.got, now);
    put("getTransferedTps", got.clone());
    put("getTransferredTps", got.clone());
    put("getTotalTps", got);
    let (put_total, put_bytes) = (s.put.total_msgs(), s.put.total_bytes());
    put("putMessageTimesTotal", put_total.to_string());
    put("putMessageSizeTotal", put_bytes.to_string());
    put(
        "putMessageAverageSize",
        format!("{:.2}", put_bytes as f64 / put_total.max(1) as f64),
    );
    let day = s.day_marks();
    put("msgPutTotalTodayNow", put_total.to_string());
    put("msgPutTotalTodayMorning", day.put_morning.to_string());
    put("msgPutTotalYesterdayMorning", day.put_yesterday.to_string());
    put("msgGetTotalTodayNow", s.got.total_msgs().to_string());
    put("msgGetTotalTodayMorning", day.get_morning.to_string());
    put("msgGetTotalYesterdayMorning", day.get_yesterday.to_string());
    // No thread pools or page-cache lock: requests run on the shard's core, queued nowhere.
    for k in [
        "sendThreadPoolQueueSize",
        "pullThreadPoolQueueSize",
        "sendThreadPoolQueueHeadWaitTimeMills",
        "pullThreadPoolQueueHeadWaitTimeMills",
        "pageCacheLockTimeMills",
    ] {
        put(k, "0".into());
    }
    put("dispatchBehindBytes", "0".into());
    put(
        "remainHowManyDataToFlush",
        format!("{} B", shard.store.dirty_bytes()),
    );
    if let Some(r) = disk_ratio(&shard.config.shard_dir(shard.id)) {
        put("commitLogDiskRatio", format!("{r:.4}"));
        put("consumeQueueDiskRatio", format!("{r:.4}"));
    }
    if let Some(ts) = crate::storeext::earliest_store_time(&shard.store).await {
        t.insert("earliestMessageTimeStamp".into(), ts.to_string());
    }
    Reply::Cmd(req.success().with_body(encode_json(&KvTable { table: t })))
}

pub fn view_stats(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(ViewBrokerStatsDataRequestHeader, req);
    let Some(windows) = shard.stats.item(&h.stats_name, &h.stats_key, now_ms()) else {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("The stats <{}> <{}> not exist", h.stats_name, h.stats_key),
        );
    };
    let item = |w: &crate::stats::Snapshot| json!({"sum": w.sum, "tps": w.tps, "avgpt": w.avgpt});
    let body = json!({
        "statsMinute": item(&windows[0]),
        "statsHour": item(&windows[1]),
        "statsDay": item(&windows[2]),
    });
    Reply::Cmd(req.success().with_body(encode_json(&body)))
}

/// One group's ConsumeStats of one topic as JSON, and its total lag.
async fn topic_consume_stats(
    shard: &Shard,
    group: &str,
    topic: &str,
    queues: i32,
    committed: &HashMap<i32, i64>,
) -> (String, i64) {
    let mut entries = Vec::new();
    let mut diff = 0;
    for q in 0..queues {
        let broker_offset = shard.store.max_offset(topic, q).max(0);
        let consumer_offset = committed.get(&q).copied().unwrap_or(0).max(0);
        let last = if consumer_offset > 0 {
            crate::storeext::store_time_at(&shard.store, topic, q, consumer_offset - 1).await
        } else {
            0
        };
        diff += broker_offset - consumer_offset;
        entries.push((
            mq(shard, topic, q),
            OffsetWrapper {
                broker_offset,
                consumer_offset,
                pull_offset: consumer_offset,
                last_timestamp: last,
            },
        ));
    }
    let tps = shard.stats.group_get_tps(topic, group, now_ms());
    let json = format!(
        "{{\"consumeTps\":{tps},\"offsetTable\":{}}}",
        mq_keyed_map_json(&entries)
    );
    (json, diff)
}

/// Topics `group` has offsets for that GET_BROKER_CONSUME_STATS reports, with their queue
/// counts: an online group only for topics it subscribes; `order_only` skips unordered topics.
fn consumed_topics(shard: &Shard, group: &str, order_only: bool) -> Vec<(String, i32)> {
    let mut topics: Vec<String> = shard
        .offsets
        .borrow()
        .of_group(group)
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    topics.sort();
    topics.dedup();
    let clients = shard.clients.borrow();
    let online = clients.consumers.get(group);
    topics
        .into_iter()
        .filter_map(|t| {
            let config = shard.topic(&t)?;
            if order_only && !config.order {
                return None;
            }
            if online
                .is_some_and(|g| !g.subscriptions.is_empty() && !g.subscriptions.contains_key(&t))
            {
                return None;
            }
            Some((t, config.write_queue_nums))
        })
        .collect()
}

pub async fn broker_consume_stats(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(GetConsumeStatsInBrokerHeader, req);
    let mut groups: Vec<String> = shard.groups.borrow().keys().cloned().collect();
    groups.sort();
    let mut total_diff = 0i64;
    let mut list = String::from("[");
    for (gi, group) in groups.iter().enumerate() {
        let committed_all = shard.offsets.borrow().of_group(group);
        let mut stats = Vec::new();
        for (topic, queues) in consumed_topics(shard, group, h.is_order == Some(true)) {
            let committed: HashMap<i32, i64> = committed_all
                .iter()
                .filter(|(t, _, _)| *t == topic)
                .map(|(_, q, o)| (*q, *o))
                .collect();
            let (json, diff) = topic_consume_stats(shard, group, &topic, queues, &committed).await;
            total_diff += diff;
            stats.push(json);
        }
        if gi > 0 {
            list.push(',');
        }
        let _ = write!(
            list,
            "{{{}:[{}]}}",
            serde_json::Value::from(group.as_str()),
            stats.join(",")
        );
    }
    list.push(']');
    let body = format!(
        "{{\"brokerAddr\":{},\"consumeStatsList\":{list},\"totalDiff\":{total_diff},\"totalInflightDiff\":0}}",
        serde_json::Value::from(shard.store_host.to_string()),
    );
    Reply::Cmd(req.success().with_body(body.into_bytes()))
}

pub async fn query_consume_queue(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(QueryConsumeQueueRequestHeader, req);
    let exists = shard
        .topic(&h.topic)
        .is_some_and(|t| h.queue_id >= 0 && h.queue_id < t.read_queue_nums.max(t.write_queue_nums));
    if !exists {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!("{}@{} is not exist!", h.queue_id, h.topic),
        );
    }
    let (min, max) = (
        shard.store.min_offset(&h.topic, h.queue_id),
        shard.store.max_offset(&h.topic, h.queue_id),
    );
    let mut body = serde_json::Map::new();
    body.insert("maxQueueIndex".into(), json!(max));
    body.insert("minQueueIndex".into(), json!(min));
    if let Some(group) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
        let clients = shard.clients.borrow();
        match clients
            .consumers
            .get(group)
            .and_then(|g| g.subscriptions.get(&h.topic))
        {
            Some(sub) => {
                body.insert("subscriptionData".into(), json!(sub));
            }
            None => {
                body.insert(
                    "filterData".into(),
                    json!(format!("{group}@{} is not online!", h.topic)),
                );
            }
        }
    }
    let mut resp = req.success();
    if h.index < min || h.index >= max {
        resp.remark = Some(format!(
            "Index {} of {}@{} is not exist!",
            h.index, h.queue_id, h.topic
        ));
        return Reply::Cmd(resp.with_body(encode_json(&body)));
    }
    let count = (h.count.max(1) as usize).min(MAX_CQ_ENTRIES);
    let result = shard
        .store
        .get_messages(&h.topic, h.queue_id, h.index, count, 64 << 20, |_| true)
        .await;
    let entries: Vec<serde_json::Value> = result
        .records
        .iter()
        .filter_map(|r| StoredMessage::decode(r).ok())
        .map(|(m, _)| {
            let props = protocol::message::Properties::decode(&m.properties);
            let tags_code = props
                .get("TAGS")
                .map(protocol::message::tag_hash)
                .unwrap_or(0);
            json!({"physicOffset": m.phys_offset, "physicSize": m.total_size,
                   "tagsCode": tags_code, "eval": false})
        })
        .collect();
    body.insert("queueData".into(), json!(entries));
    Reply::Cmd(resp.with_body(encode_json(&body)))
}

pub fn producer_info(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let now = now_ms();
    let at = Instant::now();
    let clients = shard.clients.borrow();
    let mut data = serde_json::Map::new();
    for (group, channels) in &clients.producers {
        let list: Vec<serde_json::Value> = channels
            .values()
            .map(|c| {
                let age = at.saturating_duration_since(c.last_update).as_millis() as i64;
                json!({
                    "clientId": c.client_id,
                    "remoteIP": c.conn.addr_string(),
                    "language": c.conn.language.get().name(),
                    "version": c.conn.version.get(),
                    "lastUpdateTimestamp": now - age,
                })
            })
            .collect();
        data.insert(group.clone(), json!(list));
    }
    Reply::Cmd(
        req.success()
            .with_body(encode_json(&json!({ "data": data }))),
    )
}
