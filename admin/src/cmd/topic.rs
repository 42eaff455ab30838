//! Topic commands.

use protocol::body::{GroupList, TopicList};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::{json, Value};

use crate::client::{fast_body, json_body, Admin, AdminError, Result};
use crate::fjson::mq_of_key;
use crate::out::{Output, Table};

pub fn topic_names(admin: &mut Admin) -> Result<Vec<String>> {
    let req = RemotingCommand::request(RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0);
    let resp = admin.call_namesrv(req)?;
    let list: TopicList = json_body("namesrv", &resp)?;
    Ok(list.topic_list.into_iter().collect())
}

/// topicList [-c]: every topic; with -c also its cluster and the groups that consume it.
pub fn topic_list(admin: &mut Admin, with_cluster: bool) -> Result<Output> {
    let names = topic_names(admin)?;
    if !with_cluster {
        let mut t = Table::new(&["Topic"]);
        for n in names {
            t.row(vec![json!(n)]);
        }
        return Ok(Output::Table(t));
    }
    let mut t = Table::new(&["Cluster Name", "Topic", "Consumer Groups"]);
    for topic in names {
        let Ok(route) = admin.route(&topic) else {
            continue;
        };
        let cluster = route.broker_datas.first().map(|b| b.cluster.clone());
        let groups = match route
            .broker_datas
            .first()
            .and_then(|b| b.broker_addrs.get(&0))
        {
            Some(addr) => consumed_by(admin, addr, &topic).unwrap_or_default(),
            None => Vec::new(),
        };
        t.row(vec![json!(cluster), json!(topic), json!(groups.join(","))]);
    }
    Ok(Output::Table(t))
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300) on one broker.
pub fn consumed_by(admin: &mut Admin, addr: &str, topic: &str) -> Result<Vec<String>> {
    let req = RemotingCommand::request(RequestCode::QUERY_TOPIC_CONSUME_BY_WHO, 0)
        .with_ext("topic", topic);
    let resp = admin.call(addr, req)?;
    let groups: GroupList = json_body(addr, &resp)?;
    Ok(groups.group_list.into_iter().collect())
}

/// topicRoute: the route the name server holds.
pub fn topic_route(admin: &mut Admin, topic: &str) -> Result<Output> {
    let route = admin.route(topic)?;
    let mut brokers = Table::new(&["Broker Name", "Cluster", "BID", "Addr"]);
    for b in &route.broker_datas {
        for (id, addr) in &b.broker_addrs {
            brokers.row(vec![
                json!(b.broker_name),
                json!(b.cluster),
                json!(id),
                json!(addr),
            ]);
        }
    }
    let mut queues = Table::new(&["Broker Name", "Read Queues", "Write Queues", "Perm"]);
    for q in &route.queue_datas {
        queues.row(vec![
            json!(q.broker_name),
            json!(q.read_queue_nums),
            json!(q.write_queue_nums),
            json!(q.perm),
        ]);
    }
    Ok(Output::Sections(vec![
        ("brokerDatas".into(), Output::Table(brokers)),
        ("queueDatas".into(), Output::Table(queues)),
    ]))
}

/// topicStatus: GET_TOPIC_STATS_INFO (202) per broker: min and max offset of each queue.
pub fn topic_status(admin: &mut Admin, topic: &str) -> Result<Output> {
    let mut t = Table::new(&[
        "Broker Name",
        "QID",
        "Min Offset",
        "Max Offset",
        "Last Updated",
    ]);
    let mut rows = Vec::new();
    for (_, addr) in admin.route_masters(topic)? {
        let req =
            RemotingCommand::request(RequestCode::GET_TOPIC_STATS_INFO, 0).with_ext("topic", topic);
        let resp = admin.call(&addr, req)?;
        let body = fast_body(&addr, &resp)?;
        for (k, v) in body["offsetTable"].as_object().into_iter().flatten() {
            if let Some((_, b, q)) = mq_of_key(k) {
                rows.push((b, q, v.clone()));
            }
        }
    }
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (b, q, v) in rows {
        t.row(vec![
            json!(b),
            json!(q),
            v["minOffset"].clone(),
            v["maxOffset"].clone(),
            v["lastUpdateTimestamp"].clone(),
        ]);
    }
    Ok(Output::Table(t))
}

/// updateTopic's settings.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub read: i32,
    pub write: i32,
    pub perm: i32,
    pub order: bool,
    pub attributes: Option<String>,
}

/// updateTopic: UPDATE_AND_CREATE_TOPIC (17) on each target broker; with -o the order
/// configuration (brokerName:queues) goes to the name servers' ORDER_TOPIC_CONFIG namespace.
pub fn update_topic(
    admin: &mut Admin,
    broker: Option<&str>,
    cluster: Option<&str>,
    topic: &str,
    s: &TopicSettings,
) -> Result<Output> {
    let mut t = Table::new(&["Broker", "Topic", "Read", "Write", "Perm", "Result"]);
    let targets = match broker {
        Some(b) => vec![(String::new(), b.to_owned())],
        None => admin.masters(cluster)?.into_iter().collect(),
    };
    if targets.is_empty() {
        return Err(crate::cmd::cluster::no_masters(cluster));
    }
    for (_, addr) in &targets {
        let mut req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC, 0)
            .with_ext("topic", topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", s.read)
            .with_ext("writeQueueNums", s.write)
            .with_ext("perm", s.perm)
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("topicSysFlag", 0)
            .with_ext("order", s.order);
        if let Some(a) = &s.attributes {
            req = req.with_ext("attributes", a);
        }
        admin.call(addr, req)?;
        t.row(vec![
            json!(addr),
            json!(topic),
            json!(s.read),
            json!(s.write),
            json!(s.perm),
            json!("OK"),
        ]);
    }
    if s.order {
        let names: Vec<String> = targets
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(AdminError::Usage(
                "-o true needs -c (the order configuration names brokers)".into(),
            ));
        }
        let conf: Vec<String> = names.iter().map(|n| format!("{n}:{}", s.write)).collect();
        for ns in admin.namesrv_addrs().to_vec() {
            let req = RemotingCommand::request(RequestCode::PUT_KV_CONFIG, 0)
                .with_ext("namespace", "ORDER_TOPIC_CONFIG")
                .with_ext("key", topic)
                .with_ext("value", conf.join(";"));
            admin.call(&ns, req)?;
        }
    }
    Ok(Output::Table(t))
}

/// deleteTopic: DELETE_TOPIC_IN_BROKER (215) on the cluster's masters, then
/// DELETE_TOPIC_IN_NAMESRV (216) on every name server.
pub fn delete_topic(admin: &mut Admin, cluster: Option<&str>, topic: &str) -> Result<Output> {
    let mut t = Table::new(&["Where", "Topic", "Result"]);
    for addr in admin.targets(None, cluster)? {
        let req = RemotingCommand::request(RequestCode::DELETE_TOPIC_IN_BROKER, 0)
            .with_ext("topic", topic);
        admin.call(&addr, req)?;
        t.row(vec![json!(addr), json!(topic), json!("OK")]);
    }
    for ns in admin.namesrv_addrs().to_vec() {
        let mut req = RemotingCommand::request(RequestCode::DELETE_TOPIC_IN_NAMESRV, 0)
            .with_ext("topic", topic);
        if let Some(c) = cluster {
            req = req.with_ext("clusterName", c);
        }
        admin.call(&ns, req)?;
        t.row(vec![json!(ns), json!(topic), json!("OK")]);
    }
    Ok(Output::Table(t))
}

/// topicClusterList: the clusters a topic's brokers belong to.
pub fn topic_cluster_list(admin: &mut Admin, topic: &str) -> Result<Output> {
    let route = admin.route(topic)?;
    let mut clusters: Vec<String> = route
        .broker_datas
        .iter()
        .map(|b| b.cluster.clone())
        .collect();
    clusters.sort();
    clusters.dedup();
    let mut t = Table::new(&["Cluster Name"]);
    for c in clusters {
        t.row(vec![json!(c)]);
    }
    Ok(Output::Table(t))
}

/// VIEW_BROKER_STATS_DATA (315): (minute tps, day sum) of a statistic, 0 when the broker has none.
fn stat(admin: &mut Admin, addr: &str, name: &str, key: &str) -> Result<(f64, i64)> {
    let req = RemotingCommand::request(RequestCode::VIEW_BROKER_STATS_DATA, 0)
        .with_ext("statsName", name)
        .with_ext("statsKey", key);
    let resp = admin.call_raw(addr, req)?;
    if resp.code != ResponseCode::SUCCESS.num() {
        return Ok((0.0, 0));
    }
    let v: Value = fast_body(addr, &resp)?;
    Ok((
        v["statsMinute"]["tps"].as_f64().unwrap_or(0.0),
        v["statsDay"]["sum"].as_i64().unwrap_or(0),
    ))
}

/// statsAll [-t topic]: per topic and consuming group, the backlog and in/out rates.
pub fn stats_all(admin: &mut Admin, only: Option<&str>) -> Result<Output> {
    let topics = match only {
        Some(t) => vec![t.to_owned()],
        None => {
            // Cluster and broker names are topics too (RocketMQ's habit); they carry no traffic.
            let info = admin.cluster_info()?;
            let mut names = topic_names(admin)?;
            names.retain(|t| {
                !info.cluster_addr_table.contains_key(t) && !info.broker_addr_table.contains_key(t)
            });
            names
        }
    };
    let mut t = Table::new(&[
        "Topic",
        "Consumer Group",
        "Accumulation",
        "InTPS",
        "OutTPS",
        "InMsg24Hour",
        "OutMsg24Hour",
    ]);
    for topic in topics.iter().filter(|t| !is_system(t)) {
        let masters = admin.route_masters(topic)?;
        let (mut in_tps, mut in_day, mut groups) = (0.0, 0, Vec::new());
        for addr in masters.values() {
            let (tps, day) = stat(admin, addr, "TOPIC_PUT_NUMS", topic)?;
            in_tps += tps;
            in_day += day;
            groups.extend(consumed_by(admin, addr, topic)?);
        }
        groups.sort();
        groups.dedup();
        if groups.is_empty() {
            t.row(vec![
                json!(topic),
                Value::Null,
                Value::Null,
                rate(in_tps),
                Value::Null,
                json!(in_day),
                Value::Null,
            ]);
        }
        for g in groups {
            let (mut out_tps, mut out_day, mut diff) = (0.0, 0, 0);
            for addr in masters.values() {
                let (tps, day) = stat(admin, addr, "GROUP_GET_NUMS", &format!("{topic}@{g}"))?;
                out_tps += tps;
                out_day += day;
                diff += backlog(admin, addr, &g, topic)?;
            }
            t.row(vec![
                json!(topic),
                json!(g),
                json!(diff),
                rate(in_tps),
                rate(out_tps),
                json!(in_day),
                json!(out_day),
            ]);
        }
    }
    Ok(Output::Table(t))
}

fn rate(tps: f64) -> Value {
    json!((tps * 100.0).round() / 100.0)
}

fn backlog(admin: &mut Admin, addr: &str, group: &str, topic: &str) -> Result<i64> {
    let req = RemotingCommand::request(RequestCode::GET_CONSUME_STATS, 0)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic);
    let resp = admin.call_raw(addr, req)?;
    if resp.code != ResponseCode::SUCCESS.num() {
        return Ok(0);
    }
    let v = fast_body(addr, &resp)?;
    Ok(v["offsetTable"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .map(|o| {
            (o["brokerOffset"].as_i64().unwrap_or(0) - o["consumerOffset"].as_i64().unwrap_or(0))
                .max(0)
        })
        .sum())
}

pub fn is_system(topic: &str) -> bool {
    topic.starts_with("%RETRY%")
        || topic.starts_with("%DLQ%")
        || topic.starts_with("rmq_sys_")
        || topic.starts_with("RMQ_SYS_")
        || matches!(
            topic,
            "TBW102"
                | "SCHEDULE_TOPIC_XXXX"
                | "BenchmarkTest"
                | "OFFSET_MOVED_EVENT"
                | "SELF_TEST_TOPIC"
        )
        || topic.contains("_REPLY_TOPIC")
}
