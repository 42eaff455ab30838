//! Replication failures across a real TCP path: the master runs in the root network namespace,
//! the slave in a namespace of its own behind a veth pair (names `srn-t<pid>-<n>`, addresses in
//! 10.213.0.0/16), so replication crosses a link these tests can cut. Each test makes its
//! namespace and deletes it when done (a Drop guard, also on failure), and first deletes what a
//! killed earlier run left behind. Needs root (`ip netns`); without it every test says so and
//! passes without checking anything.
//!
//! * SYNC_MASTER, link cut while 3 producers send: every send is answered within slaveTimeout +
//!   3 s, with 0, SLAVE_NOT_AVAILABLE (11) or FLUSH_SLAVE_TIMEOUT (12); none started during
//!   the cut is answered 0; after the link returns sends succeed again and the slave has every
//!   record the master stored, byte for byte.
//! * ASYNC_MASTER, link cut: every send answered 0 within 3 s, some while the link is down; the
//!   slave catches up exactly.
//! * kill -9 of the slave mid-stream, restart: it catches up exactly; sends never fail.
//! * kill -9 of the master under SYNC_MASTER + SYNC_FLUSH: every acknowledged message is on the
//!   slave (across the veth) at its queue offset with its body.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use namesrv::client::BlockingClient;
use protocol::header::{CommandHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2};
use protocol::{RemotingCommand, RequestCode};

/// Runs `ip` with `args`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_out(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The pid in a name `srn-t<pid>-...` (None: not one of these tests' names).
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix("srn-t")?.split('-').next()?.parse().ok()
}

/// Deletes namespaces and links of earlier runs whose process is gone.
fn sweep_leftovers() {
    let dead =
        |n: &str| owner_pid(n).is_some_and(|p| !PathBuf::from(format!("/proc/{p}")).exists());
    for line in ip_out(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if dead(name) {
            eprintln!("deleting leftover network namespace {name}");
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip_out(&["-o", "link", "show"]).lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if dead(name) {
            eprintln!("deleting leftover link {name}");
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// A network namespace with a veth pair to the root namespace; deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

impl Netns {
    /// Namespace number `n` of this process; None when `ip netns` is not permitted.
    fn create(n: u32) -> Option<Netns> {
        sweep_leftovers();
        let pid = std::process::id();
        let name = format!("srn-t{pid}-{n}");
        let (a, b) = (third_octet(), 4 * n);
        let net = Netns {
            host_if: format!("{name}h"),
            host_ip: format!("10.213.{a}.{}", b + 1),
            ns_ip: format!("10.213.{a}.{}", b + 2),
            name,
        };
        if let Err(e) = ip(&["netns", "add", &net.name]) {
            eprintln!("SKIPPED: network namespaces are not permitted here ({e})");
            return None;
        }
        net.setup().unwrap_or_else(|e| panic!("veth set-up: {e}"));
        Some(net)
    }

    fn setup(&self) -> Result<(), String> {
        let peer = format!("{}s", self.name);
        ip(&[
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &self.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", self.host_ip),
            "dev",
            &self.host_if,
        ])?;
        ip(&["link", "set", &self.host_if, "up"])?;
        let ns = ["netns", "exec", self.name.as_str(), "ip"];
        let in_ns = |rest: &[&str]| ip(&[&ns[..], rest].concat());
        in_ns(&["addr", "add", &format!("{}/30", self.ns_ip), "dev", &peer])?;
        in_ns(&["link", "set", &peer, "up"])?;
        in_ns(&["link", "set", "lo", "up"])
    }

    /// Cuts the link (the root side of the veth pair goes down: no packet either way).
    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }

    fn restore(&self) {
        ip(&["link", "set", &self.host_if, "up"]).unwrap();
    }
}

/// This process's 10.213.<a>.0/24 (each test a /30 in it): the first from pid % 200 that no
/// interface uses yet, chosen once (test binaries of other checkouts may run at the same time).
fn third_octet() -> u32 {
    static A: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *A.get_or_init(|| {
        let pid = std::process::id();
        let used = ip_out(&["-o", "addr", "show"]);
        (0..200)
            .map(|k| 1 + (pid + k) % 200)
            .find(|a| !used.contains(&format!(" 10.213.{a}.")))
            .unwrap_or(1 + pid % 200)
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A slave `saturn-broker` (2 shards) inside `net`, following `master` over the veth pair.
struct NsSlave {
    child: Option<Child>,
    shards: Vec<String>,
    data_dir: PathBuf,
    conf: PathBuf,
    netns: String,
}

impl NsSlave {
    fn start(net: &Netns, name: &str, master: &Broker, extra: &[&str]) -> NsSlave {
        let data_dir = test_dir(name);
        let conf = data_dir.join("broker.conf");
        let mut lines = vec![
            "brokerName=saturn".to_string(),
            "brokerId=1".into(),
            "brokerRole=SLAVE".into(),
            format!("namesrvAddr={}:{}", net.host_ip, master.namesrv_port),
            format!("haMasterAddress={}:{}", net.host_ip, master.base_port + 1),
            format!("brokerIP1={}", net.ns_ip),
            "listenPort=10911".into(),
            format!("storePathRootDir={}", data_dir.join("data").display()),
        ];
        lines.extend(extra.iter().map(|s| s.to_string()));
        std::fs::write(&conf, lines.join("\n")).unwrap();
        let mut s = NsSlave {
            child: None,
            shards: Vec::new(),
            data_dir,
            conf,
            netns: net.name.clone(),
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        // `ip netns exec` execs the broker itself (no fork): the child's pid is the broker's.
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(env!("CARGO_BIN_EXE_saturn-broker"))
            .arg("-c")
            .arg(&self.conf)
            .args(["--shards", "2", "--no-pin"])
            .args(["--segment-size", &(16u64 << 20).to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start saturn-broker (slave) in its namespace");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "slave exited");
            if let Some(rest) = line.trim().strip_prefix("saturn-broker ready: ") {
                self.shards = rest.split(' ').map(str::to_owned).collect();
                break;
            }
            assert!(Instant::now() < deadline, "slave not ready in time");
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        self.child = Some(child);
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn client(&self, shard: usize) -> BlockingClient {
        BlockingClient::connect(&self.shards[shard], Duration::from_secs(10)).unwrap()
    }
}

impl Drop for NsSlave {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn master_conf(name: &str, lines: &[&str]) -> (PathBuf, String) {
    let dir = test_dir(name);
    let p = dir.join("master.conf");
    std::fs::write(&p, lines.join("\n")).unwrap();
    (dir, p.display().to_string())
}

/// One send as a producer makes it; (code, queue offset) or the connection's error.
fn try_send(
    c: &mut BlockingClient,
    topic: &str,
    queue: i32,
    body: &[u8],
) -> Result<(i32, i64), String> {
    let header = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
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

/// One answered (or failed: code -1) send.
struct Answer {
    queue: i32,
    started: Instant,
    took: Duration,
    code: i32,
    offset: i64,
    body: String,
}

/// Producers sending 1 KiB-ish messages to queues 0..n of `topic` until stopped.
struct Producers {
    stop: Arc<AtomicBool>,
    /// Milliseconds since `epoch` of the latest send answered 0.
    last_ok_ms: Arc<AtomicU64>,
    epoch: Instant,
    threads: Vec<std::thread::JoinHandle<Vec<Answer>>>,
}

impl Producers {
    fn start(addr: &str, topic: &str, n: i32) -> Producers {
        let stop = Arc::new(AtomicBool::new(false));
        let last_ok_ms = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let threads = (0..n)
            .map(|q| {
                let (addr, topic) = (addr.to_string(), topic.to_string());
                let (stop, last_ok) = (stop.clone(), last_ok_ms.clone());
                std::thread::spawn(move || {
                    let mut c = BlockingClient::connect(&addr, Duration::from_secs(10)).unwrap();
                    let mut out = Vec::new();
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let body = format!("q{q}-{i}-{}", "x".repeat(1000 + (i * 37) % 500));
                        let started = Instant::now();
                        let r = try_send(&mut c, &topic, q, body.as_bytes());
                        let (code, offset) = r.as_ref().map_or((-1, -1), |v| *v);
                        if code == 0 {
                            let ms = epoch.elapsed().as_millis() as u64;
                            last_ok.fetch_max(ms, Ordering::Relaxed);
                        }
                        let took = started.elapsed();
                        out.push(Answer {
                            queue: q,
                            started,
                            took,
                            code,
                            offset,
                            body,
                        });
                        if r.is_err() {
                            break; // the connection is gone (the master was killed)
                        }
                    }
                    out
                })
            })
            .collect();
        Producers {
            stop,
            last_ok_ms,
            epoch,
            threads,
        }
    }

    /// Waits until some send started after `t` is answered 0.
    fn wait_success_after(&self, t: Instant, limit: Duration) {
        let deadline = Instant::now() + limit;
        let after = t.duration_since(self.epoch).as_millis() as u64;
        while self.last_ok_ms.load(Ordering::Relaxed) <= after {
            assert!(
                Instant::now() < deadline,
                "no send succeeded within {limit:?} after {t:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

fn max_offset(c: &mut BlockingClient, topic: &str, queue: i32) -> i64 {
    let req = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", topic)
        .with_ext("queueId", queue);
    c.invoke(req)
        .ok()
        .and_then(|r| r.ext("offset").and_then(|v| v.parse().ok()))
        .unwrap_or(-1)
}

/// Every stored record of a queue, as the raw bytes pulls return (the records themselves).
fn records(c: &mut BlockingClient, topic: &str, queue: i32, n: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < n {
        let resp = c
            .invoke(pull_request("cg", topic, queue, at, 32, "*", 0))
            .unwrap();
        assert_eq!(resp.code, 0, "pull {topic}:{queue}@{at}: {:?}", resp.remark);
        let got = protocol::message::decode_all(resp.body.clone())
            .unwrap()
            .len() as i64;
        assert!(got > 0, "pull {topic}:{queue}@{at}: nothing");
        out.extend_from_slice(&resp.body);
        at += got;
    }
    out
}

/// Waits until master and slave both serve `stored[q]` records of every queue `q`, then checks
/// that the slave's records are the master's, byte for byte.
fn assert_caught_up(m: &mut BlockingClient, s: &mut BlockingClient, topic: &str, stored: &[i64]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for (q, &n) in stored.iter().enumerate() {
        let q = q as i32;
        loop {
            let (a, b) = (max_offset(m, topic, q), max_offset(s, topic, q));
            if a == n && b == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "queue {q}: master serves {a}, slave {b}, {n} stored"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (a, b) = (records(m, topic, q, n), records(s, topic, q, n));
        assert_eq!(a.len(), b.len(), "queue {q}: record bytes differ in length");
        assert!(
            a == b,
            "queue {q}: the slave's records differ from the master's"
        );
    }
}

/// Records stored per queue: every answered send is stored (11 and 12 too).
fn stored_per_queue(answers: &[Answer], queues: i32) -> Vec<i64> {
    (0..queues)
        .map(|q| {
            answers
                .iter()
                .filter(|a| a.queue == q && a.code >= 0)
                .count() as i64
        })
        .collect()
}

/// Sends until one is answered 0 (the slave follows).
fn wait_following(m: &mut BlockingClient, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while try_send(m, topic, 3, b"warm").unwrap().0 != 0 {
        assert!(Instant::now() < deadline, "the slave never followed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SLAVE_TIMEOUT_MS: u64 = 1000;
/// Above slaveTimeout, what an answer may take on a loaded 2-core machine (a send stalled 1.9 s
/// once with the load average at 20 and the disk busy).
const MARGIN: Duration = Duration::from_millis(3000);

#[test]
fn sync_master_link_cut_answers_11_or_12_and_the_slave_catches_up() {
    let Some(net) = Netns::create(0) else { return };
    let timeout = format!("slaveTimeout={SLAVE_TIMEOUT_MS}");
    let (dir, conf) = master_conf("srn-cut-sync-conf", &["brokerRole=SYNC_MASTER", &timeout]);
    let master = Broker::start("srn-cut-sync-master", &["-c", &conf]);
    let slave = NsSlave::start(&net, "srn-cut-sync-slave", &master, &[]);
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "Cut", 4);
    wait_following(&mut m, "Cut");

    let producers = Producers::start(&master.shards[0], "Cut", 3);
    std::thread::sleep(Duration::from_millis(1000));
    net.cut();
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_millis(3000));
    net.restore();
    let restored_at = Instant::now();
    producers.wait_success_after(restored_at, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let answers = producers.finish();
    eprintln!(
        "link restored; first success {:?} later",
        answers
            .iter()
            .filter(|a| a.code == 0 && a.started > restored_at)
            .map(|a| a.started + a.took - restored_at)
            .min()
    );

    let limit = Duration::from_millis(SLAVE_TIMEOUT_MS) + MARGIN;
    let mut during_cut = [0usize; 3];
    for a in &answers {
        assert!(a.code >= 0, "send q{} failed: no answer", a.queue);
        assert!(
            a.took <= limit,
            "a send took {:?} (limit {limit:?})",
            a.took
        );
        assert!(
            [0, 11, 12].contains(&a.code),
            "unexpected answer {}",
            a.code
        );
        let in_cut =
            a.started > cut_at + Duration::from_millis(50) && a.started + a.took < restored_at;
        if in_cut {
            assert_ne!(a.code, 0, "a send made during the cut was acknowledged");
            during_cut[(a.code - 10) as usize] += 1;
        }
    }
    let ok = answers.iter().filter(|a| a.code == 0).count();
    eprintln!(
        "{} sends: {ok} answered 0; during the cut {} answered 11, {} answered 12",
        answers.len(),
        during_cut[1],
        during_cut[2]
    );
    assert!(
        during_cut[1] + during_cut[2] > 0,
        "no send was refused during the cut"
    );
    assert!(answers.iter().any(|a| a.code == 0 && a.started < cut_at));

    let mut s = slave.client(0);
    assert_caught_up(&mut m, &mut s, "Cut", &stored_per_queue(&answers, 3));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn async_master_link_cut_sends_succeed_and_the_slave_catches_up() {
    let Some(net) = Netns::create(1) else { return };
    let master = Broker::start("srn-cut-async-master", &[]);
    let slave = NsSlave::start(&net, "srn-cut-async-slave", &master, &[]);
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "CutA", 4);
    let mut s = slave.client(0);
    send_ok(&mut m, "CutA", 3, b"warm", &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while max_offset(&mut s, "CutA", 3) < 1 {
        assert!(Instant::now() < deadline, "the slave never followed");
        std::thread::sleep(Duration::from_millis(50));
    }

    let producers = Producers::start(&master.shards[0], "CutA", 3);
    std::thread::sleep(Duration::from_millis(700));
    net.cut();
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    net.restore();
    let restored_at = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let answers = producers.finish();
    for a in &answers {
        assert_eq!(a.code, 0, "ASYNC_MASTER send answered {}", a.code);
        assert!(a.took <= MARGIN, "a send took {:?}", a.took);
    }
    // Sends kept succeeding while the slave was cut off.
    let during = answers
        .iter()
        .filter(|a| a.started > cut_at + Duration::from_millis(200))
        .filter(|a| a.started + a.took < restored_at)
        .count();
    assert!(during > 0, "no send was answered while the link was cut");
    eprintln!(
        "{} sends, every one answered 0, {during} while the link was cut",
        answers.len()
    );
    assert_caught_up(&mut m, &mut s, "CutA", &stored_per_queue(&answers, 3));
}

#[test]
fn slave_killed_mid_stream_restarts_and_catches_up() {
    let Some(net) = Netns::create(2) else { return };
    let master = Broker::start("srn-kill-slave-master", &[]);
    let mut slave = NsSlave::start(&net, "srn-kill-slave-slave", &master, &[]);
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "KillS", 4);
    let producers = Producers::start(&master.shards[0], "KillS", 3);
    std::thread::sleep(Duration::from_millis(1000));
    slave.kill();
    std::thread::sleep(Duration::from_millis(1000));
    slave.launch();
    std::thread::sleep(Duration::from_millis(1000));
    let answers = producers.finish();
    assert!(answers.iter().all(|a| a.code == 0), "a send failed");
    eprintln!(
        "{} sends across the slave's kill and restart",
        answers.len()
    );
    let mut s = slave.client(0);
    assert_caught_up(&mut m, &mut s, "KillS", &stored_per_queue(&answers, 3));
}

#[test]
fn sync_master_killed_every_acknowledged_message_is_on_the_slave_across_the_veth() {
    let Some(net) = Netns::create(3) else { return };
    let (dir, conf) = master_conf(
        "srn-kill-master-conf",
        &["brokerRole=SYNC_MASTER", "flushDiskType=SYNC_FLUSH"],
    );
    let mut master = Broker::start("srn-kill-master-master", &["-c", &conf]);
    let slave = NsSlave::start(
        &net,
        "srn-kill-master-slave",
        &master,
        &["flushDiskType=SYNC_FLUSH"],
    );
    let mut m = master.client(&master.shards[0]);
    create_topic(&mut m, "KillM", 4);
    wait_following(&mut m, "KillM");
    let producers = Producers::start(&master.shards[0], "KillM", 3);
    std::thread::sleep(Duration::from_millis(1500));
    master.signal(libc::SIGKILL);
    let answers = producers.finish();
    let acked: Vec<_> = answers.iter().filter(|a| a.code == 0).collect();
    assert!(acked.len() > 50, "only {} sends acknowledged", acked.len());
    let mut s = slave.client(0);
    for q in 0..3 {
        let mine: Vec<_> = acked.iter().filter(|a| a.queue == q).collect();
        let need = mine.iter().map(|a| a.offset).max().unwrap_or(-1) + 1;
        let mut msgs = Vec::new();
        while (msgs.len() as i64) < need {
            let (code, batch, _) = pull(&mut s, "cg", "KillM", q, msgs.len() as i64, 32, "*", 0);
            if code != 0 || batch.is_empty() {
                break;
            }
            msgs.extend(batch);
        }
        for a in mine {
            let got = msgs.get(a.offset as usize).unwrap_or_else(|| {
                panic!("acknowledged q{q} offset {} not on the slave", a.offset)
            });
            assert_eq!(got.body, a.body.as_bytes());
        }
    }
    eprintln!(
        "{} acknowledged sends, every one on the slave across the veth",
        acked.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
