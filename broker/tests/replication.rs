//! Master/slave replication with real `saturn-broker` processes on loopback: a slave follows
//! its master over the HA port, has every byte, serves pulls, registers with the same
//! brokerName and brokerId 1, refuses sends; SYNC_MASTER answers after the slave has a send's
//! bytes and answers SLAVE_NOT_AVAILABLE / FLUSH_SLAVE_TIMEOUT when it cannot.

mod common;

use std::time::{Duration, Instant};

use common::repl::*;
use common::*;
use protocol::ResponseCode;

#[test]
fn async_master_slave_has_every_byte_and_serves_reads() {
    let master = Broker::start("repl-async-master", &[]);
    // The slave learns the master's HA address from the name server's answer.
    let mut slave = Slave::start(
        "repl-async-slave",
        &slave_conf(&master.namesrv, &["brokerClusterName=DefaultCluster"]),
    );
    let mut m: Vec<_> = master.shards.iter().map(|a| master.client(a)).collect();
    create_topic(&mut m[0], "Rep", 4);
    let mut bodies = Vec::new();
    for i in 0..400usize {
        let body = vec![b'a' + (i % 26) as u8; 50 + (i * 131) % 20_000];
        let props = [("KEYS", "k"), ("TAGS", "t")];
        send_ok(&mut m[i % 2], "Rep", (i / 2 % 4) as i32, &body, &props);
        bodies.push(body);
    }
    let mut s: Vec<_> = slave.shards.iter().map(|a| connect(a)).collect();
    for shard in 0..2 {
        for q in 0..4 {
            wait_max_offset(&mut s[shard], "Rep", q, 50);
            // Same records, byte for byte (the pull body is the stored records).
            let a = pull_body(&mut m[shard], "Rep", q, 64);
            let b = pull_body(&mut s[shard], "Rep", q, 64);
            assert_eq!(a.len(), b.len());
            assert!(a == b, "shard {shard} queue {q}: slave's records differ");
        }
    }
    // Routes list the slave under the same brokerName with brokerId 1.
    let route = master.wait_route("Rep", 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut route = route;
    while route.broker_datas.iter().any(|b| b.broker_addrs.len() < 2) {
        assert!(Instant::now() < deadline, "slave never in the route");
        std::thread::sleep(Duration::from_millis(200));
        route = master.wait_route("Rep", 2);
    }
    for b in &route.broker_datas {
        assert_eq!(
            b.broker_addrs.keys().copied().collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
    // The slave refuses sends with RocketMQ's answer.
    let resp = send(&mut s[0], "Rep", 0, b"no", &[]);
    assert_eq!(resp.code, ResponseCode::SERVICE_NOT_AVAILABLE.num());
    assert!(resp.remark.unwrap().contains("slave"));

    // The slave is killed, more is sent, the slave restarts and catches up from its own end.
    slave.kill();
    for i in 0..100usize {
        send_ok(&mut m[i % 2], "Rep", 0, format!("late-{i}").as_bytes(), &[]);
    }
    slave.launch();
    let mut s: Vec<_> = slave.shards.iter().map(|a| connect(a)).collect();
    for shard in 0..2 {
        wait_max_offset(&mut s[shard], "Rep", 0, 100);
        let a = pull_body(&mut m[shard], "Rep", 0, 200);
        let b = pull_body(&mut s[shard], "Rep", 0, 200);
        assert!(a == b, "shard {shard}: slave did not catch up exactly");
    }
}

#[test]
fn sync_master_waits_for_the_slave() {
    let conf = "brokerRole=SYNC_MASTER\nslaveTimeout=800\n";
    let master = Broker::start_conf("repl-sync-master", conf, &[]);
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Sync", 2);
    // No slave yet: SLAVE_NOT_AVAILABLE. The message is stored, but no consumer sees it
    // until a slave has it.
    let resp = send(&mut m, "Sync", 0, b"alone", &[]);
    assert_eq!(resp.code, ResponseCode::SLAVE_NOT_AVAILABLE.num());
    assert_eq!(max_offset(&mut m, "Sync", 0), 0);

    let ha = format!("haMasterAddress=127.0.0.1:{}", master.base_port + 1);
    let mut slave = Slave::start(
        "repl-sync-slave",
        &slave_conf(&master.namesrv, &["flushDiskType=SYNC_FLUSH", &ha]),
    );
    let mut s = slave.client(0);
    wait_max_offset(&mut s, "Sync", 0, 1);
    wait_max_offset(&mut m, "Sync", 0, 1);
    // Each acknowledged send is already on the slave (and durable there: SYNC_FLUSH slave).
    for i in 0..50 {
        let r = send(&mut m, "Sync", 1, format!("m{i}").as_bytes(), &[]);
        assert_eq!(r.code, 0, "{:?}", r.remark);
        assert_eq!(
            max_offset(&mut s, "Sync", 1),
            i + 1,
            "acked send {i} not on the slave"
        );
    }
    // The slave dies: sends get 11 or 12, never a silent success.
    slave.kill();
    for i in 0..5 {
        let r = send(&mut m, "Sync", 1, format!("x{i}").as_bytes(), &[]);
        assert!(
            r.code == ResponseCode::SLAVE_NOT_AVAILABLE.num()
                || r.code == ResponseCode::FLUSH_SLAVE_TIMEOUT.num(),
            "send {i} without a slave: {}",
            r.code
        );
    }
    assert_eq!(
        max_offset(&mut m, "Sync", 1),
        50,
        "unreplicated records are invisible"
    );
    // It returns, catches up, and sends succeed again.
    slave.launch();
    let mut s = slave.client(0);
    wait_max_offset(&mut s, "Sync", 1, 55);
    let r = send(&mut m, "Sync", 1, b"back", &[]);
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(max_offset(&mut s, "Sync", 1), 56);
}

#[test]
fn sync_master_killed_every_acknowledged_message_is_on_the_slave() {
    let conf = "brokerRole=SYNC_MASTER\nflushDiskType=SYNC_FLUSH\n";
    let mut master = Broker::start_conf("repl-kill-master", conf, &[]);
    let mut slave = Slave::start(
        "repl-kill-slave",
        &slave_conf(&master.namesrv, &["flushDiskType=SYNC_FLUSH"]),
    );
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Kill", 4);
    // Wait for the slave: a send answered 0 proves it follows.
    wait_following(&mut m, "Kill");
    let producers = Producers::start(&master.shards[0], "Kill", 3);
    std::thread::sleep(Duration::from_millis(1500));
    master.signal(libc::SIGKILL);
    let answers = producers.finish();
    for q in 0..3 {
        let acked = answers.iter().filter(|a| a.queue == q && a.code == 0);
        assert!(acked.count() > 0, "queue {q}: nothing acknowledged");
    }
    let mut s = slave.client(0);
    let total = assert_acked_on_slave(&mut s, "Kill", &answers, 3);
    assert!(total > 50, "only {total} sends acknowledged");
    eprintln!("{total} acknowledged sends (SYNC_MASTER + SYNC_FLUSH), every one on the slave");
    slave.kill();
}

#[test]
fn diverged_slave_is_refused_and_keeps_one_history() {
    let mut master = Broker::start("repl-div-master", &[]);
    let ha = format!("haMasterAddress=127.0.0.1:{}", master.base_port + 1);
    let slave = Slave::start("repl-div-slave", &slave_conf(&master.namesrv, &[&ha]));
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Div", 1);
    for i in 0..20 {
        send_ok(&mut m, "Div", 0, format!("old-{i}").as_bytes(), &[]);
    }
    let mut s = slave.client(0);
    wait_max_offset(&mut s, "Div", 0, 20);
    // The master comes back from an older state (here: empty) and takes new messages.
    master.signal(libc::SIGKILL);
    std::fs::remove_dir_all(&master.data_dir).unwrap();
    std::fs::create_dir_all(&master.data_dir).unwrap();
    master.launch();
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Div", 1);
    for i in 0..30 {
        send_ok(&mut m, "Div", 0, format!("new-{i}").as_bytes(), &[]);
    }
    std::thread::sleep(Duration::from_secs(2));
    // The slave serves its own history only: 20 old messages, none of the new.
    let mut s = slave.client(0);
    assert_eq!(max_offset(&mut s, "Div", 0), 20);
    let body = pull_body(&mut s, "Div", 0, 100);
    let msgs = protocol::message::decode_all(body).unwrap();
    assert_eq!(msgs.len(), 20);
    assert!(msgs.iter().all(|m| m.body.starts_with(b"old-")));
}
