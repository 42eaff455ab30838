//! Reads from the slave, with real `saturn-broker` processes on loopback: consumer offsets,
//! topics and groups travel to the slave in the master's log (state records); a slave serves
//! pulls and offset queries; offsets committed on the slave while the master is down reach the
//! master when it returns (the larger value wins) and are never moved backwards on the slave;
//! `suggestWhichBrokerId` follows RocketMQ's rule with `slaveReadEnable`.

mod common;

use std::time::Duration;

use common::repl::{slave_conf, Slave};
use common::*;
use namesrv::client::BlockingClient;
use protocol::body::{decode_json, encode_json, SubscriptionGroupConfig, SubscriptionGroupWrapper};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

/// A slave reading enabled (slaveReadEnable) of the master registered with `namesrv`.
fn start_slave(name: &str, namesrv: &str) -> Slave {
    Slave::start(name, &slave_conf(namesrv, &["slaveReadEnable=true"]))
}

fn wait_offset(
    c: &mut BlockingClient,
    group: &str,
    topic: &str,
    queue: i32,
    want: i64,
) -> Duration {
    let what = format!("{group} {topic}:{queue} at {want}");
    wait_for(&what, || query_offset(c, group, topic, queue) == want)
}

fn topic_queues(c: &mut BlockingClient, topic: &str) -> Option<i32> {
    let req = RemotingCommand::request(RequestCode::GET_TOPIC_CONFIG, 0).with_ext("topic", topic);
    let resp = c.invoke(req).unwrap();
    if resp.code != 0 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    v["topicConfig"]["readQueueNums"].as_i64().map(|n| n as i32)
}

fn group_retries(c: &mut BlockingClient, group: &str) -> Option<i32> {
    let resp = c
        .invoke(RemotingCommand::request(
            RequestCode::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
            0,
        ))
        .unwrap();
    let w: SubscriptionGroupWrapper = decode_json(&resp.body).unwrap();
    w.subscription_group_table
        .get(group)
        .map(|g| g.retry_max_times)
}

/// (code, suggestWhichBrokerId) of a pull.
fn pull_suggest(c: &mut BlockingClient, topic: &str, queue: i32, offset: i64) -> (i32, i64) {
    let resp = c
        .invoke(pull_request("cg", topic, queue, offset, 1, "*", 0))
        .unwrap();
    let s = resp.ext("suggestWhichBrokerId").unwrap().parse().unwrap();
    (resp.code, s)
}

/// Topics, groups and offsets reach the slave with the log; configs made before the slave
/// existed too.
fn configs_travel(m: &mut BlockingClient, s: &mut BlockingClient) {
    wait_for("topic Early on the slave", || {
        topic_queues(s, "Early") == Some(8)
    });
    create_topic(m, "Late", 3);
    wait_for("topic Late on the slave", || {
        topic_queues(s, "Late") == Some(3)
    });
    let g = SubscriptionGroupConfig {
        retry_max_times: 7,
        ..SubscriptionGroupConfig::new("g7")
    };
    let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
        .with_body(encode_json(&g));
    assert_eq!(m.invoke(req).unwrap().code, 0);
    wait_for("group g7 on the slave", || {
        group_retries(s, "g7") == Some(7)
    });
    let req =
        RemotingCommand::request(RequestCode::DELETE_TOPIC_IN_BROKER, 0).with_ext("topic", "Late");
    assert_eq!(m.invoke(req).unwrap().code, 0);
    wait_for("topic Late deleted on the slave", || {
        topic_queues(s, "Late").is_none()
    });
}

#[test]
fn offsets_and_configs_travel_and_slave_commits_reach_the_master() {
    let conf = "slaveReadEnable=true\nsaturnHotCacheBytes=1048576\n";
    let mut master = Broker::start_conf("slave-read-master", conf, &[]);
    let mut m: Vec<_> = master.shards.iter().map(|a| connect(a)).collect();
    create_topic(&mut m[0], "Early", 8);
    create_topic(&mut m[0], "St", 4);
    for i in 0..40usize {
        send_ok(&mut m[i % 2], "St", (i / 2 % 4) as i32, &[b'x'; 100], &[]);
    }
    commit_offset(&mut m[0], "g", "St", 0, 3);
    commit_offset(&mut m[0], "g", "St", 2, 5);

    let mut slave = start_slave("slave-read-slave", &master.namesrv);
    let mut s: Vec<_> = slave.shards.iter().map(|a| connect(a)).collect();
    // Offsets committed before the slave existed arrive with the snapshot written when it
    // connects; later ones within a second of their commit.
    wait_offset(&mut s[0], "g", "St", 0, 3);
    commit_offset(&mut m[1], "g", "St", 1, 4);
    let lag = wait_offset(&mut s[1], "g", "St", 1, 4);
    eprintln!("offset committed on the master seen on the slave after {lag:?}");
    assert!(lag < Duration::from_secs(3), "lag {lag:?}");
    configs_travel(&mut m[0], &mut s[0]);

    // Pulls: the slave serves them; a caught-up consumer is sent to brokerId 0 (the group's
    // brokerId), one reading below the master's hot tail to brokerId 1.
    assert_eq!(pull_suggest(&mut s[0], "St", 0, 0), (0, 0));
    assert_eq!(pull_suggest(&mut m[0], "St", 0, 2), (0, 0));
    for i in 0..40 {
        send_ok(&mut m[0], "Cold", 0, &vec![b'c'; 100_000], &[]);
        let _ = i;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (code, suggest) = pull_suggest(&mut m[0], "Cold", 0, 0);
    assert_eq!(
        (code, suggest),
        (0, 1),
        "a pull of cold data goes to the slave"
    );
    // Beyond what the slave holds: retry (at the master), the offset is not moved.
    assert_eq!(
        pull_suggest(&mut s[0], "St", 0, 1000).0,
        ResponseCode::PULL_RETRY_IMMEDIATELY.num()
    );

    master_down_and_back(&mut master, &mut m, &mut slave);
    // A slave that restarts has the state from its own log.
    slave.kill();
    slave.launch();
    let mut s0 = slave.client(0);
    wait_offset(&mut s0, "g", "St", 0, 15);
    assert_eq!(topic_queues(&mut s0, "Early"), Some(8));
}

/// The master is killed; offsets committed on the slave meanwhile reach the master when it
/// returns (the larger value wins there) and never move backwards on the slave.
fn master_down_and_back(master: &mut Broker, m: &mut Vec<BlockingClient>, slave: &mut Slave) {
    std::thread::sleep(Duration::from_millis(1500)); // the master's offsets file is written
    master.signal(9);
    let mut s0 = slave.client(0);
    commit_offset(&mut s0, "g", "St", 0, 15); // master had 3: the slave's wins
    commit_offset(&mut s0, "g", "St", 2, 4); // master had 5: the master's wins
    assert_eq!(query_offset(&mut s0, "g", "St", 0), 15);
    // The slave restarts while the master is down: it keeps its own offsets (and their mark).
    std::thread::sleep(Duration::from_millis(1500));
    slave.kill();
    slave.launch();
    let mut s: Vec<_> = slave.shards.iter().map(|a| connect(a)).collect();
    std::thread::sleep(Duration::from_millis(1500)); // its replay of the state records is done
    assert_eq!(query_offset(&mut s[0], "g", "St", 0), 15);
    // Its replay met the master's 5 (≥ its own 4): the larger value, as the master will keep.
    assert_eq!(query_offset(&mut s[0], "g", "St", 2), 5);
    master.launch();
    *m = master.shards.iter().map(|a| connect(a)).collect();
    let took = wait_offset(&mut m[0], "g", "St", 0, 15);
    eprintln!("offset committed on the slave reached the restarted master after {took:?}");
    wait_offset(&mut s[0], "g", "St", 2, 5);
    assert_eq!(query_offset(&mut m[0], "g", "St", 2), 5);
    // The restarted master's snapshot (with its old 3) never moved the slave's 15 back.
    assert_eq!(query_offset(&mut s[0], "g", "St", 0), 15);
    commit_offset(&mut m[0], "g", "St", 0, 20);
    wait_offset(&mut s[0], "g", "St", 0, 20);
    commit_offset(&mut m[0], "g", "St", 0, 15);
    wait_offset(&mut s[0], "g", "St", 0, 15);
}
