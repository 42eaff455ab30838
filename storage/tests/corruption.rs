//! Corrupted bytes in the commit log: at the tail (torn write: truncated), in the middle below
//! the checkpoint (reported, skipped, never served), in a sealed segment (caught by the
//! record table's CRC32C when read).

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use common::*;
use protocol::message::StoredMessage;
use storage::{FlushMode, GetStatus, Store, StoreConfig};

fn flip(path: &Path, at: u64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x5A;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

/// Offset of the topic's single byte in a record made by `msg("T", .., uniq)` without tags/keys:
/// the record ends with TOPICLEN(1) TOPIC(1) PROPLEN(2) PROPERTIES.
fn topic_byte(phys: i64, size: i32, uniq: &str) -> u64 {
    let props = "UNIQ_KEY".len() + 2 + uniq.len();
    phys as u64 + size as u64 - props as u64 - 2 - 1
}

fn config(dir: std::path::PathBuf) -> StoreConfig {
    let mut c = small_config(dir, FlushMode::Sync);
    // Checkpoints only when asked, so the tests decide what lies beyond the last one.
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

fn seg0(dir: &Path) -> std::path::PathBuf {
    dir.join("commitlog").join(format!("{:020}", 0))
}

/// Appends `n` records to queue 0 and returns (phys, size) of each.
async fn fill(store: &Store, n: usize, tag: &str) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = store
            .append(&[msg(
                "T",
                0,
                format!("{tag}-{i}").repeat(100).as_bytes(),
                "",
                "",
                &format!("{tag}{i}"),
            )])
            .unwrap();
        store.wait_durable(r.end_offset).await.unwrap();
        out.push((r.records[0].phys_offset, r.records[0].size));
    }
    out
}

#[test]
fn torn_tail_is_truncated() {
    let dir = test_dir("corrupt-tail");
    let d = dir.clone();
    let recs = run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        let recs = fill(&store, 30, "a").await;
        drop(store); // crash: the checkpoint still says 0
        recs
    });
    // Damage the body of the last record, as a torn write would.
    let (phys, size) = recs[29];
    flip(&seg0(&dir), phys as u64 + size as u64 - 30);
    let d = dir.clone();
    run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        let rep = store.recovery_report();
        assert_eq!(rep.truncated_at, Some(phys as u64), "{rep:?}");
        assert!(rep.corrupt.is_empty());
        assert_eq!(store.max_offset("T", 0), 29);
        let g = store.get_messages("T", 0, 0, 100, 1 << 20, |_| true).await;
        assert_eq!(g.records.len(), 29);
        // The log continues where it was cut, and the old bytes never come back.
        let more = fill(&store, 3, "b").await;
        assert_eq!(more[0].0, phys);
        store.close().await.unwrap();
        let store = Store::open(config(dir)).await.unwrap();
        assert_eq!(store.max_offset("T", 0), 32);
        let g = store.get_messages("T", 0, 29, 100, 1 << 20, |_| true).await;
        let m = StoredMessage::decode(&g.records[0]).unwrap().0;
        assert_eq!(m.property("UNIQ_KEY"), Some("b0"));
        store.close().await.unwrap();
    });
}

#[test]
fn corruption_in_the_middle_is_reported_and_skipped() {
    let dir = test_dir("corrupt-middle");
    let d = dir.clone();
    let recs = run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        let recs = fill(&store, 30, "a").await;
        store.checkpoint().await.unwrap();
        drop(store);
        recs
    });
    // Damage record 10's topic (outside the body CRC) and record 20's body.
    let (p10, s10) = recs[10];
    let (p20, _) = recs[20];
    let topic_at = topic_byte(p10, s10, "a10");
    flip(&seg0(&dir), topic_at);
    flip(&seg0(&dir), p20 as u64 + 100);
    let d = dir.clone();
    run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        let rep = store.recovery_report();
        assert_eq!(rep.truncated_at, None, "{rep:?}");
        assert_eq!(rep.corrupt.len(), 2, "{rep:?}");
        assert_eq!(rep.corrupt[0].0, p10 as u64);
        assert_eq!(rep.corrupt[1].0, p20 as u64);
        // The queue keeps its offsets; the damaged records are never served.
        assert_eq!(store.max_offset("T", 0), 30);
        let g = store.get_messages("T", 0, 0, 100, 1 << 20, |_| true).await;
        assert_eq!(g.status, GetStatus::Found);
        assert_eq!(g.next_begin_offset, 30);
        let offsets: Vec<i64> = g
            .records
            .iter()
            .map(|r| StoredMessage::decode(r).unwrap().0.queue_offset)
            .collect();
        assert_eq!(offsets.len(), 28);
        assert!(!offsets.contains(&10) && !offsets.contains(&20));
        assert!(store.read_record(p10).await.is_err());
        assert!(store.read_record(p20).await.is_err());
        assert!(store.read_record(recs[21].0).await.is_ok());
        // Appends go on after the intact end.
        fill(&store, 2, "b").await;
        assert_eq!(store.max_offset("T", 0), 32);
        store.close().await.unwrap();
    });
}

#[test]
fn corruption_in_a_sealed_segment_is_caught_on_read() {
    let dir = test_dir("corrupt-sealed");
    let d = dir.clone();
    let recs = run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        // Enough to seal the first segment (256 KiB).
        let recs = fill(&store, 700, "a").await;
        store.checkpoint().await.unwrap();
        store.close().await.unwrap();
        recs
    });
    assert!(recs[699].0 >= 256 * 1024);
    // The sealed segment's index was written (direct writes, header last) and is whole.
    let idx = std::fs::read(seg0(&dir).with_extension("idx")).unwrap();
    assert_eq!(idx.len() % 4096, 0);
    assert_eq!(&idx[..8], b"SATIDX01");
    // A topic byte of record 5: its body CRC still matches, only the CRC32C catches it.
    let (p, s) = recs[5];
    flip(&seg0(&dir), topic_byte(p, s, "a5"));
    run(move || async move {
        let store = Store::open(config(dir)).await.unwrap();
        // Recovery does not rescan sealed segments that have an index.
        assert!(store.recovery_report().corrupt.is_empty());
        let g = store.get_messages("T", 0, 0, 10, 1 << 20, |_| true).await;
        let offsets: Vec<i64> = g
            .records
            .iter()
            .map(|r| StoredMessage::decode(r).unwrap().0.queue_offset)
            .collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
        let e = store.read_record(p).await.unwrap_err();
        assert!(e.to_string().contains("crc32c"), "{e}");
        store.close().await.unwrap();
    });
}
