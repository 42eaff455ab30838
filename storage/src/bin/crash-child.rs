//! Crash-test child: appends with SYNC_FLUSH from many tasks and prints one line per
//! acknowledged record, `ACK <phys> <size> <topic> <queue> <queue offset> <uniq> <crc32c of body>`,
//! until it is killed. Used by storage/tests/crash.rs.

use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use protocol::message::{encode_properties, properties};
use storage::{FlushMode, MessageToStore, Store, StoreConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("dir");
    let tag: String = args.next().unwrap_or_else(|| "x".into());
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move {
            let mut cfg = StoreConfig::new(&dir, "127.0.0.1:10911".parse().unwrap());
            cfg.flush = FlushMode::Sync;
            cfg.segment_size = 256 * 1024;
            cfg.cq_file_entries = 1024;
            cfg.checkpoint_interval = Duration::from_millis(30);
            cfg.max_dirty_bytes = 2 << 20;
            cfg.write_chunk_bytes = 64 * 1024;
            cfg.hot_cache_bytes = 128 * 1024;
            cfg.flush_timeout = Duration::from_secs(60);
            let store = Rc::new(Store::open(cfg).await.expect("open"));
            println!("READY");
            let mut tasks = Vec::new();
            for t in 0..16u64 {
                let store = store.clone();
                let tag = tag.clone();
                tasks.push(glommio::spawn_local(async move {
                    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (t + 1);
                    for n in 0u64.. {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let len = (rng % 3000) as usize + 1;
                        let body: Vec<u8> = (0..len).map(|i| (rng >> (i % 56)) as u8).collect();
                        let queue = (rng % 4) as i32;
                        let uniq = format!("{tag}-{t}-{n}");
                        let m = MessageToStore {
                            topic: "Crash".into(),
                            queue_id: queue,
                            flag: 0,
                            body: Bytes::from(body.clone()),
                            properties: encode_properties(&[(properties::UNIQ_KEY, uniq.as_str())]),
                            sys_flag: 0,
                            born_timestamp: 0,
                            born_host: "127.0.0.1:1".parse().unwrap(),
                            reconsume_times: 0,
                            prepared_transaction_offset: 0,
                            tags_code: 0,
                            keys: String::new(),
                            uniq_key: Some(uniq.clone()),
                        };
                        store.writable().await;
                        let r = match store.append(&[m]) {
                            Ok(r) => r,
                            Err(e) => {
                                eprintln!("append: {e}");
                                continue;
                            }
                        };
                        if let Err(e) = store.wait_durable(r.end_offset).await {
                            eprintln!("wait_durable: {e}");
                            continue;
                        }
                        let rec = r.records[0];
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(
                            out,
                            "ACK {} {} Crash {} {} {} {}",
                            rec.phys_offset,
                            rec.size,
                            queue,
                            rec.queue_offset,
                            uniq,
                            crc32c::crc32c(&body)
                        );
                        let _ = out.flush();
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
        })
        .expect("executor")
        .join()
        .expect("join");
}
