//! Consumer group, connection and offset commands.

use std::collections::{BTreeMap, BTreeSet};

use protocol::body::{
    encode_json, ConsumerConnection, ProducerConnection, SubscriptionGroupConfig,
};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::{json, Value};

use crate::client::{fast_body, json_body, Admin, AdminError, Result};
use crate::fjson::mq_of_key;
use crate::out::{Output, Table};

/// The settings updateSubGroup takes (mqadmin's flags); unset ones keep RocketMQ's defaults.
#[derive(Debug, Default, Clone)]
pub struct GroupSettings {
    pub consume_enable: Option<bool>,
    pub consume_from_min_enable: Option<bool>,
    pub consume_broadcast_enable: Option<bool>,
    pub consume_message_orderly: Option<bool>,
    pub retry_queue_nums: Option<i32>,
    pub retry_max_times: Option<i32>,
    pub broker_id: Option<i64>,
    pub which_broker_when_consume_slowly: Option<i64>,
    pub notify_consumer_ids_changed_enable: Option<bool>,
}

impl GroupSettings {
    fn config(&self, group: &str) -> SubscriptionGroupConfig {
        let mut c = SubscriptionGroupConfig::new(group);
        let s = self;
        c.consume_enable = s.consume_enable.unwrap_or(c.consume_enable);
        c.consume_from_min_enable = s
            .consume_from_min_enable
            .unwrap_or(c.consume_from_min_enable);
        c.consume_broadcast_enable = s
            .consume_broadcast_enable
            .unwrap_or(c.consume_broadcast_enable);
        c.consume_message_orderly = s
            .consume_message_orderly
            .unwrap_or(c.consume_message_orderly);
        c.retry_queue_nums = s.retry_queue_nums.unwrap_or(c.retry_queue_nums);
        c.retry_max_times = s.retry_max_times.unwrap_or(c.retry_max_times);
        c.broker_id = s.broker_id.unwrap_or(c.broker_id);
        c.which_broker_when_consume_slowly = s
            .which_broker_when_consume_slowly
            .unwrap_or(c.which_broker_when_consume_slowly);
        c.notify_consumer_ids_changed_enable = s
            .notify_consumer_ids_changed_enable
            .unwrap_or(c.notify_consumer_ids_changed_enable);
        c
    }
}

/// updateSubGroup: UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) on each target broker.
pub fn update_sub_group(
    admin: &mut Admin,
    broker: Option<&str>,
    cluster: Option<&str>,
    group: &str,
    settings: &GroupSettings,
) -> Result<Output> {
    let config = settings.config(group);
    let body = encode_json(&config);
    let mut t = Table::new(&["Broker", "Group", "Result"]);
    for addr in admin.targets(broker, cluster)? {
        let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
            .with_body(body.clone());
        admin.call(&addr, req)?;
        t.row(vec![json!(addr), json!(group), json!("OK")]);
    }
    Ok(Output::Table(t))
}

/// deleteSubGroup: DELETE_SUBSCRIPTIONGROUP (207) on each target broker.
pub fn delete_sub_group(
    admin: &mut Admin,
    broker: Option<&str>,
    cluster: Option<&str>,
    group: &str,
    remove_offset: bool,
) -> Result<Output> {
    let mut t = Table::new(&["Broker", "Group", "Result"]);
    for addr in admin.targets(broker, cluster)? {
        let req = RemotingCommand::request(RequestCode::DELETE_SUBSCRIPTIONGROUP, 0)
            .with_ext("groupName", group)
            .with_ext("cleanOffset", remove_offset);
        admin.call(&addr, req)?;
        t.row(vec![json!(addr), json!(group), json!("OK")]);
    }
    Ok(Output::Table(t))
}

/// Adds one row per queue of a ConsumeStats body.
pub fn offset_rows(t: &mut Table, group: Option<&str>, stats: &Value) {
    let Some(table) = stats["offsetTable"].as_object() else {
        return;
    };
    let mut rows: Vec<(String, String, i64, &Value)> = table
        .iter()
        .filter_map(|(k, v)| mq_of_key(k).map(|(t, b, q)| (t, b, q, v)))
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    for (topic, broker, qid, v) in rows {
        let bo = v["brokerOffset"].as_i64().unwrap_or(0);
        let co = v["consumerOffset"].as_i64().unwrap_or(0);
        t.row(vec![
            json!(topic),
            json!(group.unwrap_or("")),
            json!(broker),
            json!(qid),
            json!(bo),
            json!(co),
            json!((bo - co).max(0)),
            v["lastTimestamp"].clone(),
        ]);
    }
}

/// GET_CONSUME_STATS (208) of a group on every master that answers.
fn consume_stats(admin: &mut Admin, group: &str, topic: Option<&str>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let masters = admin.masters(None)?;
    for addr in masters.values() {
        let mut req = RemotingCommand::request(RequestCode::GET_CONSUME_STATS, 0)
            .with_ext("consumerGroup", group);
        if let Some(t) = topic {
            req = req.with_ext("topic", t);
        }
        let resp = admin.call_raw(addr, req)?;
        if resp.code == ResponseCode::SUCCESS.num() {
            out.push(fast_body(addr, &resp)?);
        }
    }
    Ok(out)
}

/// consumerProgress -g: lag per queue; without -g: one line per group.
pub fn consumer_progress(
    admin: &mut Admin,
    group: Option<&str>,
    topic: Option<&str>,
) -> Result<Output> {
    let Some(group) = group else {
        return groups_summary(admin);
    };
    let stats = consume_stats(admin, group, topic)?;
    if stats.is_empty() {
        return Err(AdminError::Usage(format!(
            "no broker has consume stats for group {group}"
        )));
    }
    let mut t = progress_table();
    for s in &stats {
        offset_rows(&mut t, Some(group), s);
    }
    Ok(Output::Table(t))
}

pub fn progress_table() -> Table {
    Table::new(&[
        "Topic",
        "Group",
        "Broker Name",
        "QID",
        "Broker Offset",
        "Consumer Offset",
        "Diff",
        "LastTime",
    ])
}

/// Every subscription group the masters know.
pub fn all_groups(admin: &mut Admin) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for addr in admin.masters(None)?.into_values() {
        let req = RemotingCommand::request(RequestCode::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, 0);
        let resp = admin.call(&addr, req)?;
        let body = fast_body(&addr, &resp)?;
        if let Some(map) = body["subscriptionGroupTable"].as_object() {
            out.extend(map.keys().cloned());
        }
    }
    Ok(out)
}

fn groups_summary(admin: &mut Admin) -> Result<Output> {
    let mut t = Table::new(&["Group", "Count", "Type", "Model", "TPS", "Diff Total"]);
    for group in all_groups(admin)? {
        let stats = consume_stats(admin, &group, None)?;
        let mut diff = 0i64;
        let mut tps = 0f64;
        for s in &stats {
            tps += s["consumeTps"].as_f64().unwrap_or(0.0);
            for v in s["offsetTable"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                let d = v["brokerOffset"].as_i64().unwrap_or(0)
                    - v["consumerOffset"].as_i64().unwrap_or(0);
                diff += d.max(0);
            }
        }
        let conn = connections(admin, &group).ok();
        let (count, ty, model) = match &conn {
            Some(c) => (
                json!(c.connection_set.len()),
                json!(c.consume_type.name()),
                json!(c.message_model.name()),
            ),
            None => (json!(0), Value::Null, Value::Null),
        };
        t.row(vec![
            json!(group),
            count,
            ty,
            model,
            json!(tps),
            json!(diff),
        ]);
    }
    Ok(Output::Table(t))
}

/// GET_CONSUMER_CONNECTION_LIST (203) from the first master that knows the group online.
pub fn connections(admin: &mut Admin, group: &str) -> Result<ConsumerConnection> {
    let mut last = AdminError::Usage(format!("the consumer group {group} is not online"));
    for addr in admin.masters(None)?.into_values() {
        let req = RemotingCommand::request(RequestCode::GET_CONSUMER_CONNECTION_LIST, 0)
            .with_ext("consumerGroup", group);
        match admin.call(&addr, req) {
            Ok(resp) => {
                let c: ConsumerConnection = json_body(&addr, &resp)?;
                if !c.connection_set.is_empty() {
                    return Ok(c);
                }
            }
            Err(e @ AdminError::Refused { .. }) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// consumerConnection: the group's clients and subscriptions.
pub fn consumer_connection(admin: &mut Admin, group: &str) -> Result<Output> {
    let c = connections(admin, group)?;
    let mut clients = Table::new(&["ClientId", "ClientAddr", "Language", "Version"]);
    for conn in &c.connection_set {
        clients.row(vec![
            json!(conn.client_id),
            json!(conn.client_addr),
            json!(conn.language),
            json!(conn.version),
        ]);
    }
    let mut subs = Table::new(&["Topic", "SubExpression"]);
    for (topic, sd) in &c.subscription_table {
        subs.row(vec![json!(topic), json!(sd.sub_string)]);
    }
    let mut meta = BTreeMap::new();
    meta.insert("ConsumeType".to_owned(), json!(c.consume_type.name()));
    meta.insert("MessageModel".to_owned(), json!(c.message_model.name()));
    meta.insert(
        "ConsumeFromWhere".to_owned(),
        json!(c.consume_from_where.name()),
    );
    Ok(Output::Sections(vec![
        ("connections".into(), Output::Table(clients)),
        ("subscriptions".into(), Output::Table(subs)),
        (
            "settings".into(),
            Output::Record(meta.into_iter().collect()),
        ),
    ]))
}

/// producerConnection: GET_PRODUCER_CONNECTION_LIST (204) on the topic's brokers.
pub fn producer_connection(admin: &mut Admin, group: &str, topic: &str) -> Result<Output> {
    let mut t = Table::new(&["Broker", "ClientId", "ClientAddr", "Language", "Version"]);
    for (_, addr) in admin.route_masters(topic)? {
        let req = RemotingCommand::request(RequestCode::GET_PRODUCER_CONNECTION_LIST, 0)
            .with_ext("producerGroup", group);
        let resp = admin.call_raw(&addr, req)?;
        if resp.code != ResponseCode::SUCCESS.num() {
            continue;
        }
        let p: ProducerConnection = json_body(&addr, &resp)?;
        for c in p.connection_set {
            t.row(vec![
                json!(addr),
                json!(c.client_id),
                json!(c.client_addr),
                json!(c.language),
                json!(c.version),
            ]);
        }
    }
    if t.rows.is_empty() {
        return Err(AdminError::Usage(format!(
            "no producer of group {group} is connected to the brokers of {topic}"
        )));
    }
    Ok(Output::Table(t))
}
