//! Helpers for tests that run the real `saturn-broker` binary on loopback: a standalone broker
//! ([`Broker`]), free ports, test directories, and the requests tests send (sends, pulls,
//! offsets, heartbeats). [`repl`]: slaves and what replication tests check on them.
#![allow(dead_code)]

pub mod repl;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use namesrv::client::BlockingClient;
use protocol::body::{decode_json, encode_json, HeartbeatData, ProducerData, TopicRouteData};
use protocol::header::{
    CommandHeader, PullMessageRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use protocol::message::{encode_properties, pullflag, StoredMessage};
use protocol::{RemotingCommand, RequestCode};

pub struct Broker {
    pub child: Option<Child>,
    pub namesrv: String,
    pub shards: Vec<String>,
    pub data_dir: PathBuf,
    pub base_port: u16,
    pub namesrv_port: u16,
    pub extra: Vec<String>,
    /// The directory of the broker.conf [`Broker::start_conf`] wrote (removed on drop).
    pub conf_dir: Option<PathBuf>,
}

/// A directory on the real disk (storage needs O_DIRECT: not tmpfs).
pub fn test_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("SATURN_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data"));
    let dir = root.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

fn free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// Blocks of 16 ports from 20,000 to 31,999: below Linux's ephemeral range (32,768 and up), so
/// that no client socket of this or another process takes a broker's port (its HA port, say)
/// between the check and the broker's bind.
const PORT_LOW: u32 = 20_000;
const PORT_SLOTS: u32 = 750;

/// A broker's port (shards at +4 each, HA ports at +1) and its name server's (+10), from a
/// block no other test of this process takes.
pub fn pick_ports() -> (u16, u16) {
    let seed = std::process::id() % PORT_SLOTS;
    loop {
        let slot = (seed + NEXT_SLOT.fetch_add(1, Ordering::Relaxed)) % PORT_SLOTS;
        let base = (PORT_LOW + slot * 16) as u16;
        if (base - 2..=base + 10).all(free) {
            return (base, base + 10);
        }
    }
}

/// One free port (for a metrics exporter, say), from a block of its own like [`pick_ports`]'s.
pub fn free_port() -> u16 {
    pick_ports().0
}

/// `saturn-broker` with `first` (a subcommand), 2 unpinned shards, 16 MiB segments, warn logs,
/// stdout piped; inside network namespace `netns` when given (`ip netns exec` execs the broker
/// itself, no fork: the child's pid is the broker's).
pub fn broker_command(netns: Option<&str>, first: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_saturn-broker");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(first)
        .args(["--shards", "2", "--no-pin"])
        .args(["--segment-size", &(16u64 << 20).to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Reads `child`'s stdout until its `saturn-broker ready: <shard addresses>` line (60 s at
/// most), then keeps draining it on a thread so the broker never blocks on it; the shards.
pub fn wait_ready(child: &mut Child) -> Vec<String> {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let shards = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("saturn-broker exited before it was ready");
        }
        if let Some(rest) = line.trim().strip_prefix("saturn-broker ready: ") {
            break rest.split(' ').map(str::to_owned).collect();
        }
        assert!(Instant::now() < deadline, "broker not ready in time");
    };
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    shards
}

/// A client of `addr` with a 10 s timeout.
pub fn connect(addr: &str) -> BlockingClient {
    BlockingClient::connect(addr, Duration::from_secs(10)).unwrap()
}

/// Waits until `check` holds (20 s at most); how long it took.
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

impl Broker {
    pub fn start(name: &str, extra: &[&str]) -> Broker {
        let (base_port, namesrv_port) = pick_ports();
        let mut b = Broker {
            child: None,
            namesrv: format!("127.0.0.1:{namesrv_port}"),
            shards: Vec::new(),
            data_dir: test_dir(name),
            base_port,
            namesrv_port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            conf_dir: None,
        };
        b.launch();
        b
    }

    /// [`Broker::start`] with a broker.conf of `conf` (in a directory of its own, removed on
    /// drop) given as `-c` before `extra`.
    pub fn start_conf(name: &str, conf: &str, extra: &[&str]) -> Broker {
        let conf_dir = test_dir(&format!("{name}-conf"));
        let path = conf_dir.join("broker.conf");
        std::fs::write(&path, conf).unwrap();
        let mut args = vec!["-c", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut b = Broker::start(name, &args);
        b.conf_dir = Some(conf_dir);
        b
    }

    pub fn launch(&mut self) {
        let mut child = broker_command(None, &["standalone"])
            .args(["--namesrv-port", &self.namesrv_port.to_string()])
            .args(["--port", &self.base_port.to_string()])
            .args(["--broker-ip", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .spawn()
            .expect("start saturn-broker");
        self.shards = wait_ready(&mut child);
        self.child = Some(child);
    }

    pub fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        child.wait().unwrap()
    }

    pub fn client(&self, addr: &str) -> BlockingClient {
        connect(addr)
    }

    /// Waits until the name server routes `topic` to both shards.
    pub fn wait_route(&self, topic: &str, brokers: usize) -> TopicRouteData {
        let mut ns = self.client(&self.namesrv);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let resp = ns
                .invoke(
                    RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, 0)
                        .with_ext("topic", topic),
                )
                .unwrap();
            if resp.code == 0 {
                let route: TopicRouteData = decode_json(&resp.body).unwrap();
                if route.broker_datas.len() >= brokers {
                    return route;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no route to {topic} on {brokers} brokers"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(dir) = &self.conf_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn create_topic(client: &mut BlockingClient, topic: &str, queues: i32) {
    let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC, 0)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", queues)
        .with_ext("writeQueueNums", queues)
        .with_ext("perm", 6)
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("order", false);
    let resp = client.invoke(req).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
}

pub struct Sent {
    pub msg_id: String,
    pub queue_id: i32,
    pub queue_offset: i64,
}

pub fn send(
    client: &mut BlockingClient,
    topic: &str,
    queue: i32,
    body: &[u8],
    props: &[(&str, &str)],
) -> RemotingCommand {
    client
        .invoke(send_request(topic, queue, body, Some(props)))
        .unwrap()
}

/// A SEND_MESSAGE_V2 of producer group `pg` (properties absent when `props` is None).
pub fn send_request(
    topic: &str,
    queue: i32,
    body: &[u8],
    props: Option<&[(&str, &str)]>,
) -> RemotingCommand {
    let header = send_header(topic, queue, props);
    send_command(RequestCode::SEND_MESSAGE_V2, header, body)
}

/// The header of [`send_request`], for a test to change before [`send_command`].
pub fn send_header(
    topic: &str,
    queue: i32,
    props: Option<&[(&str, &str)]>,
) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: queue,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: props.map(encode_properties),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        max_reconsume_times: None,
        batch: Some(false),
        broker_name: None,
    }
}

/// A send request `code` (SEND_MESSAGE_V2, SEND_REPLY_MESSAGE_V2) with `header`'s short
/// (V2) fields and `body`.
pub fn send_command(
    code: RequestCode,
    header: SendMessageRequestHeader,
    body: &[u8],
) -> RemotingCommand {
    let mut req = RemotingCommand::request(code, 0);
    SendMessageRequestHeaderV2::from(header).encode(&mut req.ext_fields);
    req.body = bytes::Bytes::copy_from_slice(body);
    req
}

/// One send without properties, as a producer thread makes it; (code, queue offset) or the
/// connection's error (the broker was killed, say).
pub fn try_send(
    c: &mut BlockingClient,
    topic: &str,
    queue: i32,
    body: &[u8],
) -> Result<(i32, i64), String> {
    let req = send_request(topic, queue, body, None);
    let r = c.invoke(req).map_err(|e| e.to_string())?;
    let off = r
        .ext("queueOffset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    Ok((r.code, off))
}

pub fn send_ok(
    client: &mut BlockingClient,
    topic: &str,
    queue: i32,
    body: &[u8],
    props: &[(&str, &str)],
) -> Sent {
    let resp = send(client, topic, queue, body, props);
    assert_eq!(resp.code, 0, "send: {:?}", resp.remark);
    Sent {
        msg_id: resp.ext("msgId").unwrap().to_owned(),
        queue_id: resp.ext("queueId").unwrap().parse().unwrap(),
        queue_offset: resp.ext("queueOffset").unwrap().parse().unwrap(),
    }
}

pub fn heartbeat(
    client: &mut BlockingClient,
    client_id: &str,
    group: &str,
    topic: &str,
    expr: &str,
) {
    let mut hb = HeartbeatData {
        client_id: client_id.into(),
        ..Default::default()
    };
    hb.consumer_data_set.push(protocol::body::ConsumerData {
        group_name: group.into(),
        subscription_data_set: vec![protocol::body::SubscriptionData::build(topic, expr, 1)],
        ..Default::default()
    });
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, 0);
    req.body = encode_json(&hb).into();
    let resp = client.invoke(req).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
}

/// A PULL_MESSAGE with the subscription in the request, long-polling for `suspend_ms` when
/// not 0.
pub fn pull_request(
    group: &str,
    topic: &str,
    queue: i32,
    offset: i64,
    max: i32,
    expr: &str,
    suspend_ms: i64,
) -> RemotingCommand {
    let header = pull_header(group, topic, queue, offset, max, expr, suspend_ms);
    pull_command(&header)
}

/// The header of [`pull_request`] (a TAG expression), for a test to change before
/// [`pull_command`].
pub fn pull_header(
    group: &str,
    topic: &str,
    queue: i32,
    offset: i64,
    max: i32,
    expr: &str,
    suspend_ms: i64,
) -> PullMessageRequestHeader {
    let mut flags = pullflag::FLAG_SUBSCRIPTION;
    if suspend_ms > 0 {
        flags |= pullflag::FLAG_SUSPEND;
    }
    PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: queue,
        queue_offset: offset,
        max_msg_nums: max,
        sys_flag: flags,
        commit_offset: 0,
        suspend_timeout_millis: suspend_ms,
        subscription: Some(expr.into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
    }
}

/// A PULL_MESSAGE with `header`.
pub fn pull_command(header: &PullMessageRequestHeader) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::PULL_MESSAGE, 0);
    header.encode(&mut req.ext_fields);
    req
}

#[allow(clippy::too_many_arguments)]
/// Pulls with the subscription in the request; returns (code, messages, nextBeginOffset).
pub fn pull(
    client: &mut BlockingClient,
    group: &str,
    topic: &str,
    queue: i32,
    offset: i64,
    max: i32,
    expr: &str,
    suspend_ms: i64,
) -> (i32, Vec<StoredMessage>, i64) {
    let req = pull_request(group, topic, queue, offset, max, expr, suspend_ms);
    let resp = client.invoke(req).unwrap();
    let next = resp
        .ext("nextBeginOffset")
        .map(|v| v.parse().unwrap())
        .unwrap_or(-1);
    let msgs = if resp.code == 0 {
        protocol::message::decode_all(resp.body.clone()).unwrap()
    } else {
        Vec::new()
    };
    (resp.code, msgs, next)
}

/// Every message of a queue from offset 0 until `need` are read, in pulls of 32 (what a pull
/// returns at most); fewer when a pull fails or finds nothing.
pub fn pull_all(c: &mut BlockingClient, topic: &str, queue: i32, need: i64) -> Vec<StoredMessage> {
    let mut msgs = Vec::new();
    while (msgs.len() as i64) < need {
        let (code, batch, _) = pull(c, "cg", topic, queue, msgs.len() as i64, 32, "*", 0);
        if code != 0 || batch.is_empty() {
            break;
        }
        msgs.extend(batch);
    }
    msgs
}

/// GET_MAX_OFFSET of a queue; asserts it is answered 0.
pub fn max_offset(c: &mut BlockingClient, topic: &str, queue: i32) -> i64 {
    let req = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", topic)
        .with_ext("queueId", queue);
    let resp = c.invoke(req).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    resp.ext("offset").unwrap().parse().unwrap()
}

/// GET_MAX_OFFSET of a queue, -1 when it is not answered with one (no such topic yet, the
/// connection failed).
pub fn try_max_offset(c: &mut BlockingClient, topic: &str, queue: i32) -> i64 {
    let req = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", topic)
        .with_ext("queueId", queue);
    c.invoke(req)
        .ok()
        .and_then(|r| r.ext("offset").and_then(|v| v.parse().ok()))
        .unwrap_or(-1)
}

/// Waits until the queue holds `n` entries (20 s at most).
pub fn wait_max_offset(c: &mut BlockingClient, topic: &str, queue: i32, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while try_max_offset(c, topic, queue) < n {
        assert!(
            Instant::now() < deadline,
            "{topic}:{queue} never reached {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// QUERY_CONSUMER_OFFSET; -1 when none is committed (or the query is refused).
pub fn query_offset(c: &mut BlockingClient, group: &str, topic: &str, queue: i32) -> i64 {
    let req = RemotingCommand::request(RequestCode::QUERY_CONSUMER_OFFSET, 0)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue)
        .with_ext("setZeroIfNotFound", false);
    let resp = c.invoke(req).unwrap();
    if resp.code != 0 {
        return -1;
    }
    resp.ext("offset").unwrap().parse().unwrap()
}

/// UPDATE_CONSUMER_OFFSET; asserts it is answered 0.
pub fn commit_offset(c: &mut BlockingClient, group: &str, topic: &str, queue: i32, offset: i64) {
    let req = RemotingCommand::request(RequestCode::UPDATE_CONSUMER_OFFSET, 0)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue)
        .with_ext("commitOffset", offset);
    let resp = c.invoke(req).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
}

/// A producer's HEART_BEAT for `group`; asserts it is answered 0.
pub fn producer_heartbeat(c: &mut BlockingClient, client_id: &str, group: &str) {
    let hb = HeartbeatData {
        client_id: client_id.into(),
        producer_data_set: vec![ProducerData {
            group_name: group.into(),
        }],
        ..Default::default()
    };
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, 0);
    req.body = encode_json(&hb).into();
    assert_eq!(c.invoke(req).unwrap().code, 0);
}
