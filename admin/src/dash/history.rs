//! The dashboard's history: one sample of the cluster per interval (taken by the sampler thread
//! of [`super::watch`], never per page view), kept in a bounded ring, served as series by
//! `GET /api/history`.
//!
//! A sample holds totals (messages put and got per broker, stored per topic, consumed per group
//! and per topic, lag per group) and gauges (disk use, online); rates are the differences of
//! two consecutive samples divided by the time between them. A total that went down (a broker
//! restarted, a day rolled over, an offset was reset backwards) gives no rate (`null`) for that
//! interval rather than a negative or invented one.
//!
//! One round of requests per sample: CLUSTER_INFO from the name server; per broker
//! GET_BROKER_RUNTIME_INFO (28); per master GET_BROKER_CONSUME_STATS (317, every group's
//! offsets at once), GET_ALL_TOPIC_CONFIG (21) and GET_TOPIC_STATS_INFO (202) for each of its
//! user topics (at most [`MAX_TOPICS`]).

use std::collections::{BTreeMap, VecDeque};

use protocol::{RemotingCommand, RequestCode};
use serde_json::{json, Value};

use crate::client::{fast_body, Admin, Result};
use crate::cmd::{cluster, topic};
use crate::fjson::mq_of_key;

/// Topics per broker whose stored totals a sample reads.
pub const MAX_TOPICS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerPoint {
    pub cluster: String,
    pub broker: String,
    pub id: i64,
    pub addr: String,
    pub online: bool,
    pub put_total: Option<i64>,
    pub get_total: Option<i64>,
    /// Disk use of the commit log's file system, 0..1.
    pub disk: Option<f64>,
}

impl BrokerPoint {
    /// `broker/id`: what identifies a broker across samples.
    pub fn key(&self) -> String {
        format!("{}/{}", self.broker, self.id)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupPoint {
    /// Messages stored but not yet consumed, summed over the group's queues (never negative).
    pub lag: i64,
    /// The group's committed offsets, summed.
    pub consumed: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// When it was taken (ms since the epoch).
    pub t: i64,
    pub brokers: Vec<BrokerPoint>,
    pub groups: BTreeMap<String, GroupPoint>,
    /// Per topic: its queues' max offsets summed (messages stored so far).
    pub topics: BTreeMap<String, i64>,
    /// Per topic and group: the group's committed offsets on the topic, summed.
    pub topic_consumed: BTreeMap<String, BTreeMap<String, i64>>,
    /// What could not be read this round (a broker down, a refused request).
    pub errors: Vec<String>,
    /// How long the round of requests took (ms).
    pub took_ms: u64,
}

/// Takes one sample of the cluster behind `a`'s name servers.
pub fn collect(a: &mut Admin) -> Sample {
    let began = std::time::Instant::now();
    let mut s = collect_round(a);
    s.took_ms = began.elapsed().as_millis() as u64;
    s
}

fn collect_round(a: &mut Admin) -> Sample {
    let mut s = Sample {
        t: cluster::now_ms(),
        ..Sample::default()
    };
    let info = match a.cluster_info() {
        Ok(i) => i,
        Err(e) => {
            s.errors.push(format!("name server: {e}"));
            return s;
        }
    };
    for (cname, names) in &info.cluster_addr_table {
        for bname in names {
            let Some(bd) = info.broker_addr_table.get(bname) else {
                continue;
            };
            for (id, addr) in &bd.broker_addrs {
                let p = broker_point(a, cname, bname, *id, addr, &mut s.errors);
                let online = p.online;
                s.brokers.push(p);
                if *id == 0 && online {
                    if let Err(e) = master_figures(a, addr, &mut s) {
                        s.errors.push(format!("{bname} ({addr}): {e}"));
                    }
                }
            }
        }
    }
    s
}

fn broker_point(
    a: &mut Admin,
    cname: &str,
    bname: &str,
    id: i64,
    addr: &str,
    errors: &mut Vec<String>,
) -> BrokerPoint {
    let rt = cluster::runtime_info(a, addr).map_err(|e| errors.push(format!("{bname}: {e}")));
    let rt = rt.as_ref().ok();
    let int = |k: &str| {
        rt.and_then(|m| m.get(k))
            .and_then(|v| v.parse::<i64>().ok())
    };
    BrokerPoint {
        cluster: cname.to_owned(),
        broker: bname.to_owned(),
        id,
        addr: addr.to_owned(),
        online: rt.is_some(),
        put_total: int("msgPutTotalTodayNow"),
        get_total: int("msgGetTotalTodayNow"),
        disk: rt
            .and_then(|m| m.get("commitLogDiskRatio"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok()),
    }
}

/// A master's groups (lag and committed offsets) and topics (stored totals), added to `s`.
fn master_figures(a: &mut Admin, addr: &str, s: &mut Sample) -> Result<()> {
    let req = RemotingCommand::request(RequestCode::GET_BROKER_CONSUME_STATS, 0)
        .with_ext("isOrder", false)
        .with_ext("timeoutMillis", 10_000);
    let body = fast_body(addr, &a.call(addr, req)?)?;
    for per_group in body["consumeStatsList"].as_array().into_iter().flatten() {
        for (group, stats) in per_group.as_object().into_iter().flatten() {
            let g = s.groups.entry(group.clone()).or_default();
            for cs in stats.as_array().into_iter().flatten() {
                for (k, v) in cs["offsetTable"].as_object().into_iter().flatten() {
                    let bo = v["brokerOffset"].as_i64().unwrap_or(0);
                    let co = v["consumerOffset"].as_i64().unwrap_or(0).max(0);
                    g.lag += (bo - co).max(0);
                    g.consumed += co;
                    if let Some((t, _, _)) = mq_of_key(k) {
                        let per = s.topic_consumed.entry(t).or_default();
                        *per.entry(group.clone()).or_default() += co;
                    }
                }
            }
        }
    }
    let req = RemotingCommand::request(RequestCode::GET_ALL_TOPIC_CONFIG, 0);
    let cfg = fast_body(addr, &a.call(addr, req)?)?;
    let names: Vec<String> = cfg["topicConfigTable"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|t| !topic::is_system(t))
        .take(MAX_TOPICS)
        .cloned()
        .collect();
    for t in names {
        let req = RemotingCommand::request(RequestCode::GET_TOPIC_STATS_INFO, 0)
            .with_ext("topic", t.as_str());
        let resp = a.call_raw(addr, req)?;
        if resp.code != 0 {
            continue; // deleted since the config was read
        }
        let stats = fast_body(addr, &resp)?;
        let stored: i64 = stats["offsetTable"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| v["maxOffset"].as_i64())
            .sum();
        *s.topics.entry(t).or_default() += stored;
    }
    Ok(())
}

/// The bounded ring of samples.
#[derive(Debug, Default)]
pub struct Ring {
    pub samples: VecDeque<Sample>,
    pub capacity: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(2),
        }
    }

    pub fn push(&mut self, s: Sample) {
        while self.samples.len() >= self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }
}

/// A difference of two totals (both known, not going down) and its rate per second.
fn delta(now: Option<i64>, before: Option<i64>, dt: f64) -> (Value, Value) {
    match (now, before) {
        (Some(n), Some(b)) if n >= b && dt > 0.0 => {
            let d = n - b;
            (json!(d), json!(((d as f64 / dt) * 1000.0).round() / 1000.0))
        }
        _ => (Value::Null, Value::Null),
    }
}

/// `GET /api/history`: with `group=G` that group's lag and consume rate; with `topic=T` the
/// topic's in and out rates; else every broker's put/get rates and disk use. `since` (ms)
/// keeps the samples taken after it.
pub fn view(
    ring: &Ring,
    q: &BTreeMap<String, String>,
    interval_ms: u64,
) -> std::result::Result<Value, String> {
    let since: i64 = match q.get("since").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v
            .parse()
            .map_err(|_| format!("parameter since is not a number (ms): {v}"))?,
    };
    let mut out = Vec::new();
    let mut prev: Option<&Sample> = None;
    for s in &ring.samples {
        if s.t > since {
            let dt = prev.map_or(0.0, |p| (s.t - p.t) as f64 / 1000.0);
            let point = if let Some(g) = q.get("group") {
                group_point(s, prev, g, dt)
            } else if let Some(t) = q.get("topic") {
                topic_point(s, prev, t, dt)
            } else {
                cluster_point(s, prev, dt)
            };
            out.push(point);
        }
        prev = Some(s);
    }
    Ok(json!({ "intervalMs": interval_ms, "capacity": ring.capacity, "samples": out }))
}

fn group_point(s: &Sample, prev: Option<&Sample>, g: &str, dt: f64) -> Value {
    let now = s.groups.get(g);
    let before = prev.and_then(|p| p.groups.get(g));
    let (consumed, rate) = delta(now.map(|x| x.consumed), before.map(|x| x.consumed), dt);
    json!({ "t": s.t, "dt": dt, "lag": now.map(|x| x.lag), "consumed": consumed, "consumeRate": rate })
}

/// Messages the groups committed on `t` between two samples: the groups in both samples whose
/// offsets did not go back (a group that appears, or is reset, says nothing of the rate).
fn committed(s: &Sample, prev: Option<&Sample>, t: &str) -> Option<i64> {
    let (now, before) = (s.topic_consumed.get(t)?, prev?.topic_consumed.get(t)?);
    let d = now
        .iter()
        .filter_map(|(g, n)| Some(n - before.get(g)?))
        .filter(|d| *d >= 0)
        .sum();
    Some(d)
}

fn topic_point(s: &Sample, prev: Option<&Sample>, t: &str, dt: f64) -> Value {
    let stored = |x: Option<&Sample>| x.and_then(|x| x.topics.get(t).copied());
    let (ins, in_rate) = delta(stored(Some(s)), stored(prev), dt);
    let (outs, out_rate) = match committed(s, prev, t) {
        Some(d) if dt > 0.0 => (json!(d), json!(((d as f64 / dt) * 1000.0).round() / 1000.0)),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "t": s.t, "dt": dt, "stored": s.topics.get(t), "in": ins, "inRate": in_rate,
        "out": outs, "outRate": out_rate,
    })
}

fn cluster_point(s: &Sample, prev: Option<&Sample>, dt: f64) -> Value {
    let mut brokers = serde_json::Map::new();
    for b in &s.brokers {
        let before = prev.and_then(|p| p.brokers.iter().find(|x| x.key() == b.key()));
        let (puts, put_rate) = delta(b.put_total, before.and_then(|x| x.put_total), dt);
        let (gets, get_rate) = delta(b.get_total, before.and_then(|x| x.get_total), dt);
        brokers.insert(
            b.key(),
            json!({
                "addr": b.addr, "online": b.online, "puts": puts, "putRate": put_rate,
                "gets": gets, "getRate": get_rate, "diskRatio": b.disk,
            }),
        );
    }
    json!({ "t": s.t, "dt": dt, "brokers": brokers, "errors": s.errors, "tookMs": s.took_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, put: i64, lag: i64, consumed: i64) -> Sample {
        let mut s = Sample {
            t,
            ..Sample::default()
        };
        s.brokers.push(BrokerPoint {
            cluster: "c".into(),
            broker: "b-0".into(),
            id: 0,
            addr: "127.0.0.1:1".into(),
            online: true,
            put_total: Some(put),
            get_total: Some(0),
            disk: Some(0.5),
        });
        s.groups.insert("G".into(), GroupPoint { lag, consumed });
        s.topics.insert("T".into(), put);
        s.topic_consumed
            .insert("T".into(), [("G".to_owned(), consumed)].into());
        s
    }

    #[test]
    fn rates_are_differences_and_never_negative() {
        let mut ring = Ring::new(3);
        for (i, put) in [10, 30, 70, 5].into_iter().enumerate() {
            ring.push(sample(1000 * (i as i64 + 1) * 2, put, put / 2, put / 4));
        }
        assert_eq!(ring.samples.len(), 3, "bounded");
        let q = BTreeMap::new();
        let v = view(&ring, &q, 2000).unwrap();
        let s = v["samples"].as_array().unwrap();
        assert_eq!(s.len(), 3);
        // The oldest kept sample has nothing before it in the ring.
        assert!(s[0]["brokers"]["b-0/0"]["putRate"].is_null());
        assert_eq!(s[1]["brokers"]["b-0/0"]["puts"], 40);
        assert_eq!(s[1]["brokers"]["b-0/0"]["putRate"], 20.0);
        // The total went down (a restart): no rate rather than a negative one.
        assert!(s[2]["brokers"]["b-0/0"]["putRate"].is_null());
        let q: BTreeMap<_, _> = [("group".to_owned(), "G".to_owned())].into();
        let g = view(&ring, &q, 2000).unwrap();
        assert_eq!(g["samples"][1]["lag"], 35);
        assert_eq!(g["samples"][1]["consumeRate"], 5.0);
        let q: BTreeMap<_, _> = [
            ("topic".to_owned(), "T".to_owned()),
            ("since".to_owned(), "6000".to_owned()),
        ]
        .into();
        let t = view(&ring, &q, 2000).unwrap();
        assert_eq!(t["samples"].as_array().unwrap().len(), 1, "since filters");
        assert!(t["samples"][0]["inRate"].is_null());
        let bad: BTreeMap<_, _> = [("since".to_owned(), "yesterday".to_owned())].into();
        assert!(view(&ring, &bad, 2000).unwrap_err().contains("since"));
        assert!(t["samples"][0]["outRate"].is_null() || t["samples"][0]["out"] == 0);
        let q: BTreeMap<_, _> = [("topic".to_owned(), "T".to_owned())].into();
        let t = view(&ring, &q, 2000).unwrap();
        assert_eq!(t["samples"][1]["out"], 10, "17 - 7 committed on T");
        assert_eq!(t["samples"][1]["outRate"], 5.0);
        // A group that appears says nothing of the rate.
        let mut s5 = sample(10_000, 5, 0, 1);
        s5.topic_consumed
            .get_mut("T")
            .unwrap()
            .insert("New".into(), 1000);
        ring.push(s5);
        let t = view(&ring, &q, 2000).unwrap();
        assert_eq!(t["samples"][2]["out"], 0, "1 - 1 for G; New is new");
    }
}
