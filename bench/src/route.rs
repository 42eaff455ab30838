//! Finding a topic's queues through a name server, and creating topics.

use std::time::Duration;

use protocol::body::{decode_json, perm, TopicRouteData};
use protocol::{RemotingCommand, RequestCode};
use saturn_client::BlockingClient;

/// One queue to send to or pull from.
#[derive(Debug, Clone)]
pub struct Queue {
    pub broker_name: String,
    pub addr: String,
    pub queue_id: i32,
}

pub fn fetch_route(namesrv: &str, topic: &str) -> Result<TopicRouteData, String> {
    let mut client =
        BlockingClient::connect(namesrv, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let resp = client
        .invoke(
            RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, 0)
                .with_ext("topic", topic),
        )
        .map_err(|e| e.to_string())?;
    if resp.code != 0 {
        return Err(format!(
            "no route for {topic} at {namesrv}: code {} {}",
            resp.code,
            resp.remark.unwrap_or_default()
        ));
    }
    decode_json(&resp.body).map_err(|e| e.to_string())
}

/// Write (or read) queues of every master in the route, brokers interleaved.
pub fn queues(route: &TopicRouteData, write: bool) -> Vec<Queue> {
    let mut per_broker: Vec<Vec<Queue>> = Vec::new();
    for (qd, addr) in route.master_queue_datas() {
        let ok = if write {
            perm::is_writeable(qd.perm)
        } else {
            perm::is_readable(qd.perm)
        };
        if !ok {
            continue;
        }
        let n = if write {
            qd.write_queue_nums
        } else {
            qd.read_queue_nums
        };
        per_broker.push(
            (0..n)
                .map(|q| Queue {
                    broker_name: qd.broker_name.clone(),
                    addr: addr.clone(),
                    queue_id: q,
                })
                .collect(),
        );
    }
    let mut out = Vec::new();
    let longest = per_broker.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for b in &per_broker {
            if let Some(q) = b.get(i) {
                out.push(q.clone());
            }
        }
    }
    out
}

/// Creates the topic on every broker of the cluster the name server knows.
pub fn create_topic(namesrv: &str, topic: &str, queues: i32) -> Result<(), String> {
    let mut ns =
        BlockingClient::connect(namesrv, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let resp = ns
        .invoke(RemotingCommand::request(
            RequestCode::GET_BROKER_CLUSTER_INFO,
            0,
        ))
        .map_err(|e| e.to_string())?;
    let info: protocol::body::ClusterInfo = decode_json(&resp.body).map_err(|e| e.to_string())?;
    let masters: Vec<String> = info
        .broker_addr_table
        .values()
        .filter_map(|b| b.broker_addrs.get(&0).cloned())
        .collect();
    if masters.is_empty() {
        return Err(format!("no broker registered at {namesrv}"));
    }
    for addr in masters {
        let mut c =
            BlockingClient::connect(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC, 0)
            .with_ext("topic", topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", queues)
            .with_ext("writeQueueNums", queues)
            .with_ext("perm", 6)
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("topicSysFlag", 0)
            .with_ext("order", false);
        let resp = c.invoke(req).map_err(|e| e.to_string())?;
        if resp.code != 0 {
            return Err(format!("create {topic} on {addr}: {:?}", resp.remark));
        }
    }
    // Wait until the route shows up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fetch_route(namesrv, topic).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(format!("{topic} has no route after creation"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
