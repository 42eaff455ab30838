//! Crash test: a child appends with SYNC_FLUSH and prints every acknowledged record; it is
//! SIGKILLed at random moments; after each kill the store recovers and every acknowledged
//! record must be there, intact, and the consume queues must agree with the commit log.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use protocol::message::StoredMessage;
use storage::{FlushMode, Store};

#[derive(Debug, Clone)]
struct Ack {
    phys: i64,
    size: i32,
    queue: i32,
    queue_offset: i64,
    uniq: String,
    crc: u32,
}

fn parse(line: &str) -> Option<Ack> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 8 || f[0] != "ACK" {
        return None;
    }
    Some(Ack {
        phys: f[1].parse().ok()?,
        size: f[2].parse().ok()?,
        queue: f[4].parse().ok()?,
        queue_offset: f[5].parse().ok()?,
        uniq: f[6].to_string(),
        crc: f[7].parse().ok()?,
    })
}

fn config(dir: std::path::PathBuf) -> storage::StoreConfig {
    let mut c = small_config(dir, FlushMode::Sync);
    c.checkpoint_interval = Duration::from_millis(30);
    c.max_dirty_bytes = 2 << 20;
    c.hot_cache_bytes = 128 * 1024;
    c
}

/// Opens the store (running recovery) and checks it against every acknowledgement so far.
fn verify(dir: std::path::PathBuf, acks: Vec<Ack>, round: usize, seed: u64) -> usize {
    run(move || async move {
        let store = Store::open(config(dir)).await.expect("recovery");
        let report = store.recovery_report();
        assert!(report.corrupt.is_empty(), "round {round}: {report:?}");
        // Consume queues agree with the commit log: entry n is a whole record with queue offset
        // n, and nothing visible is half-written.
        let mut found: HashMap<i64, StoredMessage> = HashMap::new();
        for q in store.queues() {
            let mut off = q.min_offset;
            while off < q.max_offset {
                let g = store
                    .get_messages(&q.topic, q.queue_id, off, 32, 16 << 20, |_| true)
                    .await;
                assert!(
                    !g.records.is_empty(),
                    "round {round} (CRASH_SEED={seed}): queue {q:?} at {off}: {:?}",
                    g.status
                );
                for r in &g.records {
                    let m = StoredMessage::decode(r).expect("intact record").0;
                    assert_eq!(m.queue_offset, off, "round {round}");
                    assert_eq!(m.queue_id, q.queue_id);
                    assert_eq!(m.total_size as usize, r.len());
                    off += 1;
                    found.insert(m.phys_offset, m);
                }
            }
        }
        let seen = found.len();
        // Every acknowledged record is present and intact.
        for a in &acks {
            let m = found
                .get(&a.phys)
                .unwrap_or_else(|| panic!("round {round}: acked record {a:?} missing"));
            assert_eq!(m.total_size as i32, a.size);
            assert_eq!(
                crc32c::crc32c(&m.body),
                a.crc,
                "round {round}: body of {a:?}"
            );
            assert_eq!(m.property("UNIQ_KEY"), Some(a.uniq.as_str()));
            assert_eq!((m.queue_id, m.queue_offset), (a.queue, a.queue_offset));
        }
        // And by id (commit-log offset), for the newest ones.
        for a in acks.iter().rev().take(20) {
            let b = store.read_record(a.phys).await.expect("read by offset");
            assert_eq!(b.len() as i32, a.size);
        }
        // Acknowledged records are in their queues.
        let mut by_queue: HashMap<i32, i64> = HashMap::new();
        for a in &acks {
            let e = by_queue.entry(a.queue).or_default();
            *e = (*e).max(a.queue_offset + 1);
        }
        for (q, need) in by_queue {
            assert!(
                store.max_offset("Crash", q) >= need,
                "round {round}: queue {q}"
            );
        }
        store.close().await.unwrap();
        seen
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sigkill_never_loses_acknowledged_records() {
    let dir = test_dir("crash");
    let child = env!("CARGO_BIN_EXE_storage-crash-child");
    let mut acks: Vec<Ack> = Vec::new();
    let started = Instant::now();
    // CRASH_SEED repeats a run's kill schedule (printed at the end; timing still varies);
    // CRASH_ROUNDS runs that many rounds instead of 20 to 40 (as many as fit in 30 s).
    let seed = env_u64("CRASH_SEED").unwrap_or(std::process::id() as u64);
    let fixed_rounds = env_u64("CRASH_ROUNDS").map(|n| n as usize);
    let mut rng: u64 = seed | 1;
    let mut rounds = 0;
    let more = |rounds: usize| match fixed_rounds {
        Some(n) => rounds < n,
        None => rounds < 20 || (rounds < 40 && started.elapsed() < Duration::from_secs(30)),
    };
    while more(rounds) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut c = Command::new(child)
            .arg(&dir)
            .arg(format!("r{rounds}"))
            .arg(rng.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = c.stdout.take().unwrap();
        let got: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let ready = Arc::new(Mutex::new(false));
        let reader = {
            let got = got.clone();
            let ready = ready.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if line == "READY" {
                        *ready.lock().unwrap() = true;
                    } else if let Some(a) = parse(&line) {
                        got.lock().unwrap().push(a);
                    }
                }
            })
        };
        let t0 = Instant::now();
        while !*ready.lock().unwrap() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(*ready.lock().unwrap(), "child did not start");
        std::thread::sleep(Duration::from_millis(20 + rng % 400));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        reader.join().unwrap();
        let new = got.lock().unwrap().clone();
        assert!(
            !new.is_empty() || rounds > 0,
            "the child acknowledged nothing"
        );
        acks.extend(new);
        let seen = verify(dir.clone(), acks.clone(), rounds, seed);
        assert!(seen >= acks.len());
        rounds += 1;
    }
    eprintln!(
        "crash test (CRASH_SEED={seed}): {rounds} SIGKILLs, {} acknowledged records verified, {:?}",
        acks.len(),
        started.elapsed()
    );
}
