//! Cluster, broker and name server commands.

use std::collections::BTreeMap;

use protocol::body::KvTable;
use protocol::{RemotingCommand, RequestCode};
use serde_json::{json, Value};

use crate::client::{fast_body, json_body, properties_body, Admin, AdminError, Result};
use crate::out::{record, Output, Table};

/// GET_BROKER_RUNTIME_INFO (28): the broker's runtime key/values.
pub fn runtime_info(admin: &mut Admin, addr: &str) -> Result<BTreeMap<String, String>> {
    let resp = admin.call(
        addr,
        RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO, 0),
    )?;
    let kv: KvTable = json_body(addr, &resp)?;
    Ok(kv.table)
}

fn first_number(text: Option<&String>) -> Value {
    text.and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|n| json!((n * 100.0).round() / 100.0))
        .unwrap_or(Value::Null)
}

/// clusterList: every broker of every cluster with its version, rates and disk use.
pub fn cluster_list(admin: &mut Admin, cluster: Option<&str>) -> Result<Output> {
    let info = admin.cluster_info()?;
    let now = now_ms();
    let mut t = Table::new(&[
        "Cluster Name",
        "Broker Name",
        "BID",
        "Addr",
        "Version",
        "InTPS",
        "OutTPS",
        "Hour",
        "SPACE",
    ]);
    for (cname, brokers) in &info.cluster_addr_table {
        if cluster.is_some_and(|c| c != cname) {
            continue;
        }
        for bname in brokers {
            let Some(bd) = info.broker_addr_table.get(bname) else {
                continue;
            };
            for (id, addr) in &bd.broker_addrs {
                let rt = runtime_info(admin, addr).unwrap_or_default();
                let hours = rt
                    .get("earliestMessageTimeStamp")
                    .and_then(|t| t.parse::<i64>().ok())
                    .filter(|t| *t > 0)
                    .map(|t| json!(format!("{:.2}", (now - t) as f64 / 3_600_000.0)))
                    .unwrap_or(Value::Null);
                t.row(vec![
                    json!(cname),
                    json!(bname),
                    json!(id),
                    json!(addr),
                    rt.get("brokerVersionDesc")
                        .map_or(Value::Null, |v| json!(v)),
                    first_number(rt.get("putTps")),
                    first_number(rt.get("getTransferredTps")),
                    hours,
                    rt.get("commitLogDiskRatio")
                        .map_or(Value::Null, |v| json!(v)),
                ]);
            }
        }
    }
    Ok(Output::Table(t))
}

/// brokerStatus: the runtime key/values of one broker (-b) or of a cluster's masters (-c).
pub fn broker_status(
    admin: &mut Admin,
    broker: Option<&str>,
    cluster: Option<&str>,
) -> Result<Output> {
    let targets = admin.targets(broker, cluster)?;
    let mut sections = Vec::new();
    for addr in targets {
        let kv = runtime_info(admin, &addr)?;
        sections.push((addr, record(kv.into_iter().map(|(k, v)| (k, json!(v))))));
    }
    Ok(single_or_sections(sections))
}

fn single_or_sections(mut sections: Vec<(String, Output)>) -> Output {
    if sections.len() == 1 {
        sections.pop().expect("one").1
    } else {
        Output::Sections(sections)
    }
}

/// getBrokerConfig: GET_BROKER_CONFIG (26) of one broker or of a cluster's masters.
pub fn get_broker_config(
    admin: &mut Admin,
    broker: Option<&str>,
    cluster: Option<&str>,
) -> Result<Output> {
    let targets = admin.targets(broker, cluster)?;
    config_sections(admin, targets, RequestCode::GET_BROKER_CONFIG)
}

/// The `key=value` configuration each of `addrs` answers to `code`, a section per address.
fn config_sections(admin: &mut Admin, addrs: Vec<String>, code: RequestCode) -> Result<Output> {
    let mut sections = Vec::new();
    for addr in addrs {
        let resp = admin.call(&addr, RemotingCommand::request(code, 0))?;
        let kv = properties_body(&resp);
        sections.push((addr, record(kv.into_iter().map(|(k, v)| (k, json!(v))))));
    }
    Ok(single_or_sections(sections))
}

/// updateBrokerConfig: UPDATE_BROKER_CONFIG (25) with `key=value` on each target.
pub fn update_broker_config(
    admin: &mut Admin,
    broker: Option<&str>,
    cluster: Option<&str>,
    key: &str,
    value: &str,
) -> Result<Output> {
    let targets = admin.targets(broker, cluster)?;
    let mut t = Table::new(&["Broker", "Key", "Value", "Result"]);
    for addr in targets {
        let req = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG, 0)
            .with_body(format!("{key}={value}\n").into_bytes());
        admin.call(&addr, req)?;
        t.row(vec![json!(addr), json!(key), json!(value), json!("OK")]);
    }
    Ok(Output::Table(t))
}

/// getNamesrvConfig: GET_NAMESRV_CONFIG (319) of each name server.
pub fn get_namesrv_config(admin: &mut Admin) -> Result<Output> {
    let addrs = admin.namesrv_addrs().to_vec();
    config_sections(admin, addrs, RequestCode::GET_NAMESRV_CONFIG)
}

/// wipeWritePerm / addWritePerm: 205 / 327 on every name server.
pub fn write_perm(admin: &mut Admin, broker_name: &str, add: bool) -> Result<Output> {
    let (code, field) = if add {
        (RequestCode::ADD_WRITE_PERM_OF_BROKER, "addTopicCount")
    } else {
        (RequestCode::WIPE_WRITE_PERM_OF_BROKER, "wipeTopicCount")
    };
    let addrs = admin.namesrv_addrs().to_vec();
    let mut t = Table::new(&["Namesrv", "Broker Name", "Topics"]);
    for addr in addrs {
        let req = RemotingCommand::request(code, 0).with_ext("brokerName", broker_name);
        let resp = admin.call(&addr, req)?;
        let count: i64 = resp.ext(field).and_then(|v| v.parse().ok()).unwrap_or(0);
        t.row(vec![json!(addr), json!(broker_name), json!(count)]);
    }
    Ok(Output::Table(t))
}

/// brokerConsumeStats: GET_BROKER_CONSUME_STATS (317): lag per group and queue on one broker.
pub fn broker_consume_stats(admin: &mut Admin, addr: &str, order: bool) -> Result<Output> {
    let req = RemotingCommand::request(RequestCode::GET_BROKER_CONSUME_STATS, 0)
        .with_ext("isOrder", order)
        .with_ext("timeoutMillis", 50_000);
    let resp = admin.call(addr, req)?;
    let body = fast_body(addr, &resp)?;
    let mut t = super::group::progress_table();
    let lists = body["consumeStatsList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for per_group in &lists {
        let Some(map) = per_group.as_object() else {
            continue;
        };
        for (group, stats) in map {
            for cs in stats.as_array().into_iter().flatten() {
                crate::cmd::group::offset_rows(&mut t, Some(group), cs);
            }
        }
    }
    Ok(Output::Table(t))
}

/// The name servers' view of an error from a whole-cluster command, for messages.
pub fn no_masters(cluster: Option<&str>) -> AdminError {
    AdminError::Usage(match cluster {
        Some(c) => format!("cluster {c} has no master broker"),
        None => "no broker is registered with the name server".into(),
    })
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
