//! Replication helpers: a slave `saturn-broker` from a broker.conf (on loopback or inside a
//! network namespace), producer threads that record every answer, and the checks that a
//! slave holds the master's records byte for byte or every acknowledged message.

use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use namesrv::client::BlockingClient;

use super::{
    broker_command, connect, pick_ports, pull_all, pull_request, test_dir, try_max_offset,
    try_send, wait_ready,
};

/// A broker process without an embedded name server (2 shards), configured by a broker.conf.
pub struct Slave {
    pub child: Option<Child>,
    pub shards: Vec<String>,
    pub data_dir: PathBuf,
    conf: PathBuf,
    netns: Option<String>,
}

/// The lines of a slave of brokerName `saturn` registering with `namesrv`, then `extra`.
pub fn slave_conf(namesrv: &str, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        "brokerName=saturn".to_string(),
        "brokerId=1".into(),
        "brokerRole=SLAVE".into(),
        format!("namesrvAddr={namesrv}"),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    lines
}

impl Slave {
    /// A slave on loopback (a free listenPort, brokerIP1 127.0.0.1) with `conf_lines`.
    pub fn start(name: &str, conf_lines: &[String]) -> Slave {
        let (port, _) = pick_ports();
        let mut lines = conf_lines.to_vec();
        lines.push(format!("listenPort={port}"));
        lines.push("brokerIP1=127.0.0.1".into());
        Slave::start_in(name, &lines, None)
    }

    /// A slave with `conf_lines` (and its store in its test directory), inside network
    /// namespace `netns` when given.
    pub fn start_in(name: &str, conf_lines: &[String], netns: Option<&str>) -> Slave {
        let data_dir = test_dir(name);
        let conf = data_dir.join("broker.conf");
        let mut text = conf_lines.join("\n");
        let store = data_dir.join("data");
        text.push_str(&format!("\nstorePathRootDir={}\n", store.display()));
        std::fs::write(&conf, text).unwrap();
        let mut s = Slave {
            child: None,
            shards: Vec::new(),
            data_dir,
            conf,
            netns: netns.map(str::to_owned),
        };
        s.launch();
        s
    }

    pub fn launch(&mut self) {
        let mut child = broker_command(self.netns.as_deref(), &[])
            .arg("-c")
            .arg(&self.conf)
            .spawn()
            .expect("start saturn-broker (slave)");
        self.shards = wait_ready(&mut child);
        self.child = Some(child);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client(&self, shard: usize) -> BlockingClient {
        connect(&self.shards[shard])
    }
}

impl Drop for Slave {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The stored records a pull of up to `n` from offset 0 returns (its body: the records
/// themselves); asserts it is answered 0.
pub fn pull_body(c: &mut BlockingClient, topic: &str, queue: i32, n: i32) -> bytes::Bytes {
    let resp = c
        .invoke(pull_request("cg", topic, queue, 0, n, "*", 0))
        .unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    resp.body
}

/// Every stored record of a queue, as the raw bytes pulls return (the records themselves).
pub fn records(c: &mut BlockingClient, topic: &str, queue: i32, n: i64) -> Vec<u8> {
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
pub fn assert_caught_up(
    m: &mut BlockingClient,
    s: &mut BlockingClient,
    topic: &str,
    stored: &[i64],
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for (q, &n) in stored.iter().enumerate() {
        let q = q as i32;
        loop {
            let (a, b) = (try_max_offset(m, topic, q), try_max_offset(s, topic, q));
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

/// Sends to queue 3 until one is answered 0 (under SYNC_MASTER: the slave follows).
pub fn wait_following(m: &mut BlockingClient, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while try_send(m, topic, 3, b"warm").unwrap().0 != 0 {
        assert!(Instant::now() < deadline, "the slave never followed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One answered (or failed: code -1) send.
pub struct Answer {
    pub queue: i32,
    pub started: Instant,
    pub took: Duration,
    pub code: i32,
    pub offset: i64,
    pub body: String,
}

/// Records stored per queue: every answered send is stored (11 and 12 too).
pub fn stored_per_queue(answers: &[Answer], queues: i32) -> Vec<i64> {
    (0..queues)
        .map(|q| {
            answers
                .iter()
                .filter(|a| a.queue == q && a.code >= 0)
                .count() as i64
        })
        .collect()
}

/// Checks that every send of `answers` answered 0 is on the slave `s` at its queue offset with
/// its body; the number of those sends.
pub fn assert_acked_on_slave(
    s: &mut BlockingClient,
    topic: &str,
    answers: &[Answer],
    queues: i32,
) -> usize {
    let acked: Vec<_> = answers.iter().filter(|a| a.code == 0).collect();
    for q in 0..queues {
        let mine: Vec<_> = acked.iter().filter(|a| a.queue == q).collect();
        let need = mine.iter().map(|a| a.offset).max().unwrap_or(-1) + 1;
        let msgs = pull_all(s, topic, q, need);
        for a in mine {
            let got = msgs.get(a.offset as usize).unwrap_or_else(|| {
                panic!("acknowledged q{q} offset {} not on the slave", a.offset)
            });
            assert_eq!(got.body, a.body.as_bytes());
        }
    }
    acked.len()
}

/// Producers sending 1 KiB-ish messages to queues 0..n of `topic` until stopped.
pub struct Producers {
    stop: Arc<AtomicBool>,
    /// Milliseconds since `epoch` of the latest send answered 0.
    last_ok_ms: Arc<AtomicU64>,
    epoch: Instant,
    threads: Vec<std::thread::JoinHandle<Vec<Answer>>>,
}

impl Producers {
    pub fn start(addr: &str, topic: &str, n: i32) -> Producers {
        let stop = Arc::new(AtomicBool::new(false));
        let last_ok_ms = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let threads = (0..n)
            .map(|q| {
                let (addr, topic) = (addr.to_string(), topic.to_string());
                let (stop, last_ok) = (stop.clone(), last_ok_ms.clone());
                std::thread::spawn(move || produce(&addr, &topic, q, &stop, &last_ok, epoch))
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
    pub fn wait_success_after(&self, t: Instant, limit: Duration) {
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

    pub fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

/// One producer thread's loop: sends to `queue` until `stop` or the connection fails.
fn produce(
    addr: &str,
    topic: &str,
    q: i32,
    stop: &AtomicBool,
    last_ok: &AtomicU64,
    epoch: Instant,
) -> Vec<Answer> {
    let mut c = connect(addr);
    let mut out = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let body = format!("q{q}-{i}-{}", "x".repeat(1000 + (i * 37) % 500));
        let started = Instant::now();
        let r = try_send(&mut c, topic, q, body.as_bytes());
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
}
