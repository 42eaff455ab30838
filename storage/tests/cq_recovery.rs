//! A consume queue's tail across a crash, scripted: the checkpointer wrote a queue's entries
//! into its next file for records that never reached the commit log, then the process died
//! before the checkpoint. The recovery that follows cuts the queue back (zeroing those entries,
//! leaving the next file all zeros); the recovery after that must still find where the written
//! entries end, in the file before it, and never take the zeros as entries.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use protocol::message::StoredMessage;
use storage::{FlushMode, GetStatus, Store, StoreConfig};

fn config(dir: std::path::PathBuf) -> StoreConfig {
    let mut c = small_config(dir, FlushMode::Sync);
    // Checkpoints only when asked, so the test decides what they cover.
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

/// Appends records `from..to` to queue 0 of "T" and waits until they are durable; returns
/// (commit-log offset, queue offset) of each.
async fn append(store: &Store, from: usize, to: usize) -> Vec<(i64, i64)> {
    let batch: Vec<_> = (from..to)
        .map(|i| msg("T", 0, format!("b{i}").as_bytes(), "", "", &format!("u{i}")))
        .collect();
    let r = store.append(&batch).unwrap();
    store.wait_durable(r.end_offset).await.unwrap();
    r.records
        .iter()
        .map(|a| (a.phys_offset, a.queue_offset))
        .collect()
}

/// Reads the whole queue, 32 at a time, asserting every entry in `[min, max)` is a record
/// with its queue offset; returns how many were read.
async fn read_all(store: &Store, pass: &str) -> i64 {
    let (min, max) = (store.min_offset("T", 0), store.max_offset("T", 0));
    let mut off = min;
    while off < max {
        let g = store.get_messages("T", 0, off, 32, 1 << 20, |_| true).await;
        assert_eq!(
            g.status,
            GetStatus::Found,
            "{pass}: queue offset {off} of [{min}, {max}) reads nothing"
        );
        for r in &g.records {
            let m = StoredMessage::decode(r).unwrap().0;
            assert_eq!(m.queue_offset, off, "{pass}");
            off += 1;
        }
    }
    off - min
}

fn zero_from(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize..].fill(0);
    std::fs::write(path, b).unwrap();
}

/// Leaves `dir` as a process that died in a checkpoint would: 1000 records under the
/// checkpoint (queue file 0 holds entries 0..999 of its 1024 slots), then 100 more whose entries
/// the checkpointer wrote into file 0's tail and file 1 before the process died (before the
/// journal and the checkpoint), while only records up to 1009 had reached the log.
fn crashed_in_a_checkpoint(dir: &Path) {
    let d = dir.to_path_buf();
    let recs = run(move || async move {
        let store = Store::open(config(d.clone())).await.unwrap();
        let mut recs = append(&store, 0, 1000).await;
        store.checkpoint().await.unwrap();
        let cp = std::fs::read(d.join("checkpoint")).unwrap();
        let sums = d.join("commitlog").join(format!("{:020}.sums", 0));
        let journal = std::fs::read(&sums).unwrap();
        recs.extend(append(&store, 1000, 1100).await);
        store.checkpoint().await.unwrap();
        drop(store); // crash
        std::fs::write(d.join("checkpoint"), cp).unwrap();
        std::fs::write(&sums, journal).unwrap();
        recs
    });
    assert!(recs.iter().all(|&(p, _)| p < 256 * 1024), "one segment");
    assert_eq!(recs[1099].1, 1099);
    assert!(queue_file(dir, 1024).exists(), "queue file 1");
    zero_from(
        &dir.join("commitlog").join(format!("{:020}", 0)),
        recs[1010].0 as u64,
    );
}

fn queue_file(dir: &Path, first: u64) -> std::path::PathBuf {
    dir.join("consumequeue")
        .join("T")
        .join("0")
        .join(format!("{first:020}"))
}

#[test]
fn queue_cut_back_across_a_file_boundary_has_no_blank_entries() {
    let dir = test_dir("cq-cut-back");
    crashed_in_a_checkpoint(&dir);
    // Recovery 1 cuts the queue back to the checkpoint and re-queues the records the log has.
    let d = dir.clone();
    run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        assert_eq!(store.max_offset("T", 0), 1010);
        assert_eq!(read_all(&store, "after recovery 1").await, 1010);
        store.close().await.unwrap();
    });
    // Recovery 2: queue file 1 is all zeros; the entries end in file 0, at 1010.
    let d = dir.clone();
    run(move || async move {
        let store = Store::open(config(d)).await.unwrap();
        assert_eq!(store.max_offset("T", 0), 1010, "queue end after recovery 2");
        assert_eq!(read_all(&store, "after recovery 2").await, 1010);
        // The next record takes the next queue offset: none is skipped.
        let r = append(&store, 2000, 2001).await;
        assert_eq!(r[0].1, 1010);
        assert_eq!(read_all(&store, "after an append").await, 1011);
        store.close().await.unwrap();
    });
    // And once more, after a clean close.
    run(move || async move {
        let store = Store::open(config(dir)).await.unwrap();
        assert_eq!(store.max_offset("T", 0), 1011);
        assert_eq!(read_all(&store, "after recovery 3").await, 1011);
        store.close().await.unwrap();
    });
}

/// A recovery that died while zeroing the entries it cut: file 0's tail is zeroed, file 1 still
/// holds entries (of records beyond the checkpoint). The next recovery must end the queue at
/// the first blank slot, not past it.
#[test]
fn interrupted_cut_back_leaves_no_blank_entries() {
    let dir = test_dir("cq-cut-interrupted");
    crashed_in_a_checkpoint(&dir);
    let f0 = queue_file(&dir, 0);
    let mut b = std::fs::read(&f0).unwrap();
    b[1000 * 20..1024 * 20].fill(0);
    std::fs::write(&f0, b).unwrap();
    run(move || async move {
        let store = Store::open(config(dir)).await.unwrap();
        assert_eq!(store.max_offset("T", 0), 1010);
        assert_eq!(read_all(&store, "after the recovery").await, 1010);
        let r = append(&store, 2000, 2001).await;
        assert_eq!(r[0].1, 1010);
        store.close().await.unwrap();
    });
}
