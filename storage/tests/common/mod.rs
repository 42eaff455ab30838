#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Once;

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use protocol::message::{encode_properties, properties, tag_hash};
use storage::{FlushMode, MessageToStore, SegmentInit, StoreConfig};

static LOG: Once = Once::new();

pub fn init_log() {
    LOG.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// A fresh directory on the ext4 disk (never tmpfs: glommio drops O_DIRECT there silently).
pub fn test_dir(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/storage-tests");
    let d = root.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    init_log();
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move { f().await })
        .unwrap()
        .join()
        .unwrap()
}

pub fn host() -> SocketAddr {
    "192.168.0.1:10911".parse().unwrap()
}

pub fn small_config(dir: PathBuf, flush: FlushMode) -> StoreConfig {
    let mut c = StoreConfig::new(dir, host());
    c.segment_size = 256 * 1024;
    c.segment_init = SegmentInit::Prewrite;
    c.flush = flush;
    c.flush_interval = std::time::Duration::from_millis(20);
    c.cq_file_entries = 1024;
    c.cq_cache_entries = 64;
    c.hot_cache_bytes = 64 * 1024;
    c.max_dirty_bytes = 4 << 20;
    c.write_chunk_bytes = 64 * 1024;
    c.checkpoint_interval = std::time::Duration::from_millis(100);
    // CI machines can be slow: a test is about correctness, not flush latency.
    c.flush_timeout = std::time::Duration::from_secs(60);
    c
}

pub fn msg(
    topic: &str,
    queue_id: i32,
    body: &[u8],
    tag: &str,
    keys: &str,
    uniq: &str,
) -> MessageToStore {
    let mut props = vec![(properties::UNIQ_KEY, uniq)];
    if !tag.is_empty() {
        props.push((properties::TAGS, tag));
    }
    if !keys.is_empty() {
        props.push((properties::KEYS, keys));
    }
    MessageToStore {
        topic: topic.to_string(),
        queue_id,
        flag: 0,
        body: Bytes::copy_from_slice(body),
        properties: encode_properties(&props),
        sys_flag: 0,
        born_timestamp: 1,
        born_host: "10.0.0.1:5000".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code: if tag.is_empty() { 0 } else { tag_hash(tag) },
        keys: keys.to_string(),
        uniq_key: Some(uniq.to_string()),
    }
}
