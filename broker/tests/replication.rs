//! Master/slave replication with real `saturn-broker` processes on loopback: a slave follows
//! its master over the HA port, has every byte, serves pulls, registers with the same
//! brokerName and brokerId 1, refuses sends; SYNC_MASTER answers after the slave has a send's
//! bytes and answers SLAVE_NOT_AVAILABLE / FLUSH_SLAVE_TIMEOUT when it cannot.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use namesrv::client::BlockingClient;
use protocol::{RemotingCommand, RequestCode, ResponseCode};

/// A broker process without an embedded name server, configured by a broker.conf file.
struct Slave {
    child: Option<Child>,
    shards: Vec<String>,
    data_dir: PathBuf,
    conf: PathBuf,
}

impl Slave {
    fn start(name: &str, conf_lines: &[String]) -> Slave {
        let (port, _) = pick_ports();
        let data_dir = test_dir(name);
        let conf = data_dir.join("broker.conf");
        let mut text = conf_lines.join("\n");
        text.push_str(&format!(
            "\nlistenPort={port}\nstorePathRootDir={}\nbrokerIP1=127.0.0.1\n",
            data_dir.join("data").display()
        ));
        std::fs::write(&conf, text).unwrap();
        let mut s = Slave {
            child: None,
            shards: Vec::new(),
            data_dir,
            conf,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_saturn-broker"))
            .arg("-c")
            .arg(&self.conf)
            .args(["--shards", "2", "--no-pin"])
            .args(["--segment-size", &(16u64 << 20).to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start saturn-broker (slave)");
        self.shards = wait_ready(&mut child);
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Slave {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn wait_ready(child: &mut Child) -> Vec<String> {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "broker exited");
        if let Some(rest) = line.trim().strip_prefix("saturn-broker ready: ") {
            let shards = rest.split(' ').map(str::to_owned).collect();
            std::thread::spawn(move || {
                let mut sink = String::new();
                while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            });
            return shards;
        }
        assert!(Instant::now() < deadline, "broker not ready in time");
    }
}

fn conf_file(dir: &Path, lines: &[&str]) -> String {
    let p = dir.join("master.conf");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p.display().to_string()
}

fn max_offset(c: &mut BlockingClient, topic: &str, queue: i32) -> i64 {
    let req = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", topic)
        .with_ext("queueId", queue);
    let resp = c.invoke(req).unwrap();
    resp.ext("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Waits until `client`'s queue reaches `n` entries.
fn wait_offset(c: &mut BlockingClient, topic: &str, queue: i32, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while max_offset(c, topic, queue) < n {
        assert!(
            Instant::now() < deadline,
            "{topic}:{queue} never reached {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pull_body(c: &mut BlockingClient, topic: &str, queue: i32, n: i32) -> bytes::Bytes {
    let resp = c
        .invoke(pull_request("cg", topic, queue, 0, n, "*", 0))
        .unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    resp.body
}

#[test]
fn async_master_slave_has_every_byte_and_serves_reads() {
    let master = Broker::start("repl-async-master", &[]);
    // The slave learns the master's HA address from the name server's answer.
    let mut slave = Slave::start(
        "repl-async-slave",
        &[
            "brokerClusterName=DefaultCluster".into(),
            "brokerName=saturn".into(),
            "brokerId=1".into(),
            "brokerRole=SLAVE".into(),
            format!("namesrvAddr={}", master.namesrv),
        ],
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
    let mut s: Vec<_> = slave.shards.iter().map(|a| master.client(a)).collect();
    for shard in 0..2 {
        for q in 0..4 {
            wait_offset(&mut s[shard], "Rep", q, 50);
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
    let mut s: Vec<_> = slave.shards.iter().map(|a| master.client(a)).collect();
    for shard in 0..2 {
        wait_offset(&mut s[shard], "Rep", 0, 100);
        let a = pull_body(&mut m[shard], "Rep", 0, 200);
        let b = pull_body(&mut s[shard], "Rep", 0, 200);
        assert!(a == b, "shard {shard}: slave did not catch up exactly");
    }
}

#[test]
fn sync_master_waits_for_the_slave() {
    let dir = test_dir("repl-sync-conf");
    let conf = conf_file(&dir, &["brokerRole=SYNC_MASTER", "slaveTimeout=800"]);
    let master = Broker::start("repl-sync-master", &["-c", &conf]);
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Sync", 2);
    // No slave yet: SLAVE_NOT_AVAILABLE. The message is stored, but no consumer sees it
    // until a slave has it.
    let resp = send(&mut m, "Sync", 0, b"alone", &[]);
    assert_eq!(resp.code, ResponseCode::SLAVE_NOT_AVAILABLE.num());
    assert_eq!(max_offset(&mut m, "Sync", 0), 0);

    let mut slave = Slave::start(
        "repl-sync-slave",
        &[
            "brokerName=saturn".into(),
            "brokerId=1".into(),
            "brokerRole=SLAVE".into(),
            "flushDiskType=SYNC_FLUSH".into(),
            format!("namesrvAddr={}", master.namesrv),
            format!("haMasterAddress=127.0.0.1:{}", master.base_port + 1),
        ],
    );
    let mut s = master.client(&slave.shards[0]);
    wait_offset(&mut s, "Sync", 0, 1);
    wait_offset(&mut m, "Sync", 0, 1);
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
    let mut s = master.client(&slave.shards[0]);
    wait_offset(&mut s, "Sync", 1, 55);
    let r = send(&mut m, "Sync", 1, b"back", &[]);
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(max_offset(&mut s, "Sync", 1), 56);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sync_master_killed_every_acknowledged_message_is_on_the_slave() {
    let dir = test_dir("repl-kill-conf");
    let conf = conf_file(
        &dir,
        &["brokerRole=SYNC_MASTER", "flushDiskType=SYNC_FLUSH"],
    );
    let mut master = Broker::start("repl-kill-master", &["-c", &conf]);
    let mut slave = Slave::start(
        "repl-kill-slave",
        &[
            "brokerName=saturn".into(),
            "brokerId=1".into(),
            "brokerRole=SLAVE".into(),
            "flushDiskType=SYNC_FLUSH".into(),
            format!("namesrvAddr={}", master.namesrv),
        ],
    );
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Kill", 4);
    // Wait for the slave: a send answered 0 proves it follows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while send(&mut m, "Kill", 0, b"warm", &[]).code != 0 {
        assert!(Instant::now() < deadline, "slave never followed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producers: Vec<_> = (1..4)
        .map(|q| {
            let (addr, stop) = (master.shards[0].clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = BlockingClient::connect(&addr, Duration::from_secs(5)).unwrap();
                let mut acked = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let req_body = format!("q{q}-{i}");
                    let Ok(r) = try_send(&mut c, q, req_body.as_bytes()) else {
                        break; // the master is gone
                    };
                    if r.0 == 0 {
                        acked.push((r.1, req_body));
                    }
                }
                (q, acked)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    master.signal(libc::SIGKILL);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut s = master.client(&slave.shards[0]);
    let mut total = 0;
    for p in producers {
        let (q, acked) = p.join().unwrap();
        assert!(!acked.is_empty(), "queue {q}: nothing acknowledged");
        total += acked.len();
        // Every message of the queue on the slave, pulled in batches (a pull returns at most 32).
        let need = acked.iter().map(|a| a.0).max().unwrap_or(0) + 1;
        let mut msgs = Vec::new();
        while (msgs.len() as i64) < need {
            let (code, batch, _) = pull(&mut s, "cg", "Kill", q, msgs.len() as i64, 32, "*", 0);
            if code != 0 || batch.is_empty() {
                break;
            }
            msgs.extend(batch);
        }
        for (offset, body) in acked {
            let m = msgs.get(offset as usize).unwrap_or_else(|| {
                panic!("acknowledged {body} (offset {offset}) not on the slave")
            });
            assert_eq!(m.body, body.as_bytes());
        }
    }
    assert!(total > 50, "only {total} sends acknowledged");
    eprintln!("{total} acknowledged sends (SYNC_MASTER + SYNC_FLUSH), every one on the slave");
    slave.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One send; (code, queue offset) or the connection's error.
fn try_send(c: &mut BlockingClient, queue: i32, body: &[u8]) -> Result<(i32, i64), String> {
    use protocol::header::{CommandHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2};
    let header = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "Kill".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: queue,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: None,
        reconsume_times: Some(0),
        unit_mode: Some(false),
        max_reconsume_times: None,
        batch: Some(false),
        broker_name: None,
    };
    let mut req = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, 0);
    SendMessageRequestHeaderV2::from(header).encode(&mut req.ext_fields);
    req.body = bytes::Bytes::copy_from_slice(body);
    let r = c.invoke(req).map_err(|e| e.to_string())?;
    let off = r
        .ext("queueOffset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    Ok((r.code, off))
}

#[test]
fn diverged_slave_is_refused_and_keeps_one_history() {
    let mut master = Broker::start("repl-div-master", &[]);
    let slave = Slave::start(
        "repl-div-slave",
        &[
            "brokerName=saturn".into(),
            "brokerId=1".into(),
            "brokerRole=SLAVE".into(),
            format!("namesrvAddr={}", master.namesrv),
            format!("haMasterAddress=127.0.0.1:{}", master.base_port + 1),
        ],
    );
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Div", 1);
    for i in 0..20 {
        send_ok(&mut m, "Div", 0, format!("old-{i}").as_bytes(), &[]);
    }
    let mut s = master.client(&slave.shards[0]);
    wait_offset(&mut s, "Div", 0, 20);
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
    let mut s = master.client(&slave.shards[0]);
    assert_eq!(max_offset(&mut s, "Div", 0), 20);
    let body = pull_body(&mut s, "Div", 0, 100);
    let msgs = protocol::message::decode_all(body).unwrap();
    assert_eq!(msgs.len(), 20);
    assert!(msgs.iter().all(|m| m.body.starts_with(b"old-")));
}
