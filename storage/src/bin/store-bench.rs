//! Storage benchmarks. Each prints one JSON line; `scripts/bench-storage` runs them beside fio.
//!
//! ```text
//! store-bench async-append <dir> <total MiB>      1 KiB records, ASYNC_FLUSH: MB/s
//! store-bench sync-append <dir> <seconds> <appenders>   1 KiB records, SYNC_FLUSH: rec/s, latency
//! store-bench fill <dir> <total MiB>              child for `recovery`: fills, prints FILLED, keeps appending
//! store-bench recovery <dir> <total MiB>          fills in a child, SIGKILLs it, times Store::open
//! store-bench hot-read <dir> <records>            reads records back from the hot-tail cache: rec/s
//! ```

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use hdrhistogram::Histogram;
use protocol::message::{encode_properties, properties};
use storage::{FlushMode, MessageToStore, Store, StoreConfig, StoreError};

thread_local! {
    static BLOCKED: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

fn config(dir: &str, flush: FlushMode) -> StoreConfig {
    let mut c = StoreConfig::new(dir, "127.0.0.1:10911".parse().unwrap());
    c.flush = flush;
    match std::env::var("STORE_BENCH_INIT").as_deref() {
        Ok("fallocate") => c.segment_init = storage::SegmentInit::Fallocate,
        Ok("prewrite") => c.segment_init = storage::SegmentInit::Prewrite,
        _ => {}
    }
    if let Some(v) = std::env::var("STORE_BENCH_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.write_chunk_bytes = v;
    }
    if let Some(v) = std::env::var("STORE_BENCH_DIRTY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.flush_dirty_bytes = v;
    }
    if let Some(v) = std::env::var("STORE_BENCH_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.write_depth = v;
    }
    c
}

/// `{i:032X}` without the formatting machinery.
fn uniq_hex(i: u64, out: &mut [u8; 32]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let v = u128::from(i);
    for (k, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (4 * (31 - k))) & 0xF) as usize];
    }
}

/// The properties string of every message with a placeholder UNIQ_KEY, and where that key's 32
/// characters sit in it: each message copies it and writes its own key in place.
struct Template {
    properties: String,
    at: usize,
    born_host: std::net::SocketAddr,
    tags_code: i64,
}

thread_local! {
    static TEMPLATE: Template = {
        let placeholder = "0".repeat(32);
        let properties = encode_properties(&[
            (properties::UNIQ_KEY, placeholder.as_str()),
            (properties::TAGS, "TagA"),
        ]);
        let at = properties.find(&placeholder).expect("placeholder");
        Template {
            properties,
            at,
            born_host: "127.0.0.1:40000".parse().unwrap(),
            tags_code: protocol::message::tag_hash("TagA"),
        }
    };
}

/// The benchmark's message `i` (the harness keeps its own cost low, so that the figures are
/// the store's: the fields are those `encode_properties` and `format!` would give, checked in
/// debug builds).
fn message(i: u64, body: &Bytes) -> MessageToStore {
    let mut hex = [0u8; 32];
    uniq_hex(i, &mut hex);
    let uniq = std::str::from_utf8(&hex).expect("hex").to_string();
    TEMPLATE.with(|t| {
        let mut props = t.properties.clone().into_bytes();
        props[t.at..t.at + 32].copy_from_slice(&hex);
        let properties = String::from_utf8(props).expect("utf8");
        debug_assert_eq!(uniq, format!("{i:032X}"));
        debug_assert_eq!(
            properties,
            encode_properties(&[
                (properties::UNIQ_KEY, uniq.as_str()),
                (properties::TAGS, "TagA"),
            ])
        );
        MessageToStore {
            topic: "BenchTopic".into(),
            queue_id: (i % 8) as i32,
            flag: 0,
            body: body.clone(),
            properties,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: t.born_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            tags_code: t.tags_code,
            keys: String::new(),
            uniq_key: Some(uniq),
        }
    })
}

fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("join")
}

/// Appends until `total` bytes of records are stored, waiting when the store is busy.
async fn append_bytes(store: &Store, total: u64, start: u64) -> (u64, u64) {
    let body = Bytes::from(vec![0xA5u8; 1024]);
    let mut bytes = 0u64;
    let mut i = start;
    while bytes < total {
        match store.append(&[message(i, &body)]) {
            Ok(r) => {
                bytes += r.records[0].size as u64;
                i += 1;
            }
            Err(StoreError::Busy { .. }) => {
                let t = Instant::now();
                store.writable().await;
                BLOCKED.with(|b| b.set(b.get() + t.elapsed()));
            }
            Err(e) => panic!("append: {e}"),
        }
        // A broker's appends come from many connection tasks; let the flusher run between them.
        if i.is_multiple_of(64) {
            futures_lite::future::yield_now().await;
        }
    }
    (bytes, i - start)
}

fn async_append(dir: String, mib: u64) {
    let _ = std::fs::remove_dir_all(&dir);
    let (bytes, n, secs) = run(move || async move {
        let store = Store::open(config(&dir, FlushMode::Async)).await.unwrap();
        let t0 = Instant::now();
        let (bytes, n) = append_bytes(&store, mib << 20, 0).await;
        store.flush().await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "blocked on unflushed bytes: {:?}",
            BLOCKED.with(|b| b.get())
        );
        store.close().await.unwrap();
        (bytes, n, secs)
    });
    println!(
        "{{\"bench\":\"async_append\",\"records\":{n},\"bytes\":{bytes},\"seconds\":{secs:.3},\"mb_per_s\":{:.1}}}",
        bytes as f64 / secs / 1e6
    );
}

fn sync_append(dir: String, seconds: u64, appenders: usize) {
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(move || async move {
        let store = Rc::new(Store::open(config(&dir, FlushMode::Sync)).await.unwrap());
        let hist = Rc::new(RefCell::new(
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
        ));
        let count = Rc::new(RefCell::new(0u64));
        let body = Bytes::from(vec![0x5Au8; 1024]);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let warmup = Instant::now() + Duration::from_millis(500);
        let mut tasks = Vec::new();
        for t in 0..appenders {
            let (store, hist, count, body) =
                (store.clone(), hist.clone(), count.clone(), body.clone());
            tasks.push(glommio::spawn_local(async move {
                let mut i = t as u64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let r = match store.append(&[message(i, &body)]) {
                        Ok(r) => r,
                        Err(StoreError::Busy { .. }) => {
                            store.writable().await;
                            continue;
                        }
                        Err(e) => panic!("append: {e}"),
                    };
                    store.wait_durable(r.end_offset).await.unwrap();
                    if t0 > warmup {
                        hist.borrow_mut()
                            .record(t0.elapsed().as_micros().max(1) as u64)
                            .unwrap();
                        *count.borrow_mut() += 1;
                    }
                    i += appenders as u64;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        eprintln!("appenders done");
        let secs = (seconds as f64) - 0.5;
        let n = *count.borrow();
        let line = {
            let h = hist.borrow();
            format!(
            "{{\"bench\":\"sync_append\",\"appenders\":{appenders},\"records\":{n},\"records_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
            n as f64 / secs,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
            )
        };
        Rc::try_unwrap(store).ok().unwrap().close().await.unwrap();
        line
    });
    println!("{out}");
}

fn fill(dir: String, mib: u64) {
    run(move || async move {
        let store = Store::open(config(&dir, FlushMode::Async)).await.unwrap();
        let (_, n) = append_bytes(&store, mib << 20, 0).await;
        store.flush().await.unwrap();
        println!("FILLED");
        std::io::stdout().flush().unwrap();
        // Keep appending (flushed by the interval) until killed.
        let mut i = n;
        loop {
            let (_, k) = append_bytes(&store, 1 << 20, i).await;
            i += k;
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    });
}

fn recovery(dir: String, mib: u64) {
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["fill", &dir, &mib.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l == "FILLED" => break,
            Some(Ok(_)) => {}
            _ => panic!("fill child ended early"),
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Drop the page cache so the measurement reads from the disk, as after a machine restart.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let (secs, report) = run(move || async move {
        let t0 = Instant::now();
        let store = Store::open(config(&dir, FlushMode::Async)).await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let r = store.recovery_report();
        store.close().await.unwrap();
        (secs, r)
    });
    println!(
        "{{\"bench\":\"recovery\",\"store_mib\":{mib},\"seconds\":{secs:.3},\"end_offset\":{},\"scanned_bytes\":{},\"scanned_records\":{}}}",
        report.end_offset, report.scanned_bytes, report.records
    );
}

fn hot_read(dir: String, records: u64) {
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(move || async move {
        let mut cfg = config(&dir, FlushMode::Async);
        cfg.hot_cache_bytes = 512 << 20;
        let store = Store::open(cfg).await.unwrap();
        let body = Bytes::from(vec![1u8; 1024]);
        for i in 0..records {
            if let Err(StoreError::Busy { .. }) = store.append(&[message(i, &body)]) {
                store.writable().await;
                store.append(&[message(i, &body)]).unwrap();
            }
        }
        store.flush().await.unwrap();
        let t0 = Instant::now();
        let mut n = 0u64;
        for q in 0..8 {
            let mut off = 0;
            loop {
                let g = store
                    .get_messages("BenchTopic", q, off, 32, 256 << 10, |_| true)
                    .await;
                if g.records.is_empty() {
                    break;
                }
                n += g.records.len() as u64;
                off = g.next_begin_offset;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        store.close().await.unwrap();
        format!(
            "{{\"bench\":\"hot_read\",\"records\":{n},\"seconds\":{secs:.3},\"records_per_s\":{:.0}}}",
            n as f64 / secs
        )
    });
    println!("{out}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let dir = arg(1, "target/tmp/store-bench");
    match arg(0, "").as_str() {
        "async-append" => async_append(dir, arg(2, "4096").parse().unwrap()),
        "sync-append" => sync_append(
            dir,
            arg(2, "10").parse().unwrap(),
            arg(3, "256").parse().unwrap(),
        ),
        "fill" => fill(dir, arg(2, "4096").parse().unwrap()),
        "recovery" => recovery(dir, arg(2, "4096").parse().unwrap()),
        "hot-read" => hot_read(dir, arg(2, "200000").parse().unwrap()),
        _ => {
            eprintln!("usage: store-bench async-append|sync-append|recovery|hot-read <dir> [args]");
            std::process::exit(2);
        }
    }
}
