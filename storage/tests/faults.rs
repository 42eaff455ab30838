//! The store under injected disk faults (storage::fault::FaultDisk): power cuts at every sync
//! point of a scripted append / flush / seal / checkpoint / retention sequence, the directory
//! fsyncs each durable rename or creation needs, a failed fdatasync, a full disk.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use protocol::message::StoredMessage;
use storage::fault::{FaultDisk, FaultOp};
use storage::{FlushMode, Store, StoreConfig, StoreError};

/// An acknowledged record: where it is and its bytes as the store returned them after the ack.
#[derive(Debug, Clone)]
struct Ack {
    phys: i64,
    queue: i32,
    queue_offset: i64,
    uniq: String,
    bytes: Option<Bytes>,
}

fn fault_disk(dir: &Path, seed: u64) -> FaultDisk {
    FaultDisk::new(seed, &dir.with_extension("attic")).unwrap()
}

/// Cuts the power under a store, lets what it left running stop, boots again.
async fn reboot(disk: &FaultDisk, store: Option<Store>) {
    disk.power_cut().unwrap();
    drop(store);
    glommio::timer::sleep(Duration::from_millis(5)).await;
    disk.power_on();
}

fn config(dir: PathBuf, disk: &FaultDisk) -> StoreConfig {
    let mut c = small_config(dir, FlushMode::Sync);
    c.segment_size = 64 * 1024;
    c.recycle_segments = 1;
    // Checkpoints only when the script asks: sync points stay where the script puts them.
    c.checkpoint_interval = Duration::from_secs(3600);
    c.disk = disk.disk();
    c
}

fn body(round: usize, k: usize) -> Vec<u8> {
    let n = 1500 + (round * 977 + k * 331) % 4000;
    (0..n).map(|i| (i * 7 + round + k) as u8).collect()
}

/// Appends a batch and waits until it is durable; records the acknowledgements.
async fn append_acked(store: &Store, round: usize, acks: &mut Vec<Ack>) -> Result<(), StoreError> {
    let n = 1 + round % 3;
    let batch: Vec<_> = (0..n)
        .map(|k| {
            let uniq = format!("U{round}-{k}");
            let keys = format!("K{round} shared");
            msg("PC", (round % 3) as i32, &body(round, k), "A", &keys, &uniq)
        })
        .collect();
    let r = store.append(&batch)?;
    store.wait_durable(r.end_offset).await?;
    for (k, rec) in r.records.iter().enumerate() {
        let bytes = store.read_record(rec.phys_offset).await.ok();
        acks.push(Ack {
            phys: rec.phys_offset,
            queue: (round % 3) as i32,
            queue_offset: rec.queue_offset,
            uniq: format!("U{round}-{k}"),
            bytes,
        });
    }
    Ok(())
}

/// The scripted sequence: appends across three segments, flushes (each append waits for its
/// fdatasync), seals, checkpoints, retention. Stops at the first error (the power cut).
/// Returns the commit-log offset from which retention may not delete (u64::MAX before it ran).
async fn script(store: &Store, acks: &mut Vec<Ack>, kept_from: &mut u64) -> Result<(), StoreError> {
    for round in 0..24 {
        append_acked(store, round, acks).await?;
        if round % 5 == 4 {
            store.checkpoint().await?;
        }
    }
    // Retention may delete every sealed segment from here on.
    *kept_from = (store.commit_log_max_offset() as u64) / (64 * 1024) * (64 * 1024);
    store.run_retention(i64::MAX / 2).await?;
    for round in 24..28 {
        append_acked(store, round, acks).await?;
    }
    store.checkpoint().await?;
    Ok(())
}

/// Opens the store after a power cut and checks every acknowledged record (those retention was
/// allowed to delete excepted): present, byte-identical, in its queue at its offset, found by
/// its key; queue offsets dense; no corruption reported.
async fn verify(cfg: StoreConfig, acks: &[Ack], kept_from: u64, what: &str) {
    let store = Store::open(cfg)
        .await
        .unwrap_or_else(|e| panic!("{what}: recovery: {e}"));
    let report = store.recovery_report();
    assert!(report.corrupt.is_empty(), "{what}: {report:?}");
    let min = store.commit_log_min_offset() as u64;
    assert!(
        min <= kept_from,
        "{what}: min offset {min} beyond {kept_from}"
    );
    let mut in_queues: BTreeMap<i64, (i32, i64)> = BTreeMap::new();
    for q in store.queues() {
        let mut off = q.min_offset;
        while off < q.max_offset {
            let g = store
                .get_messages(&q.topic, q.queue_id, off, 16, 1 << 20, |_| true)
                .await;
            assert!(
                !g.records.is_empty(),
                "{what}: {q:?} at {off}: {:?}",
                g.status
            );
            for r in &g.records {
                let m = StoredMessage::decode(r).expect("intact record").0;
                assert_eq!(m.queue_offset, off, "{what}: queue offsets not dense");
                in_queues.insert(m.phys_offset, (m.queue_id, m.queue_offset));
                off += 1;
            }
        }
    }
    for a in acks.iter().filter(|a| a.phys as u64 >= min) {
        let b = store.read_record(a.phys).await.unwrap_or_else(|e| {
            panic!("{what}: acked record {} at {} missing: {e}", a.uniq, a.phys)
        });
        if let Some(want) = &a.bytes {
            assert_eq!(&b, want, "{what}: record at {} differs", a.phys);
        }
        assert_eq!(
            in_queues.get(&a.phys),
            Some(&(a.queue, a.queue_offset)),
            "{what}: {a:?} not in its queue"
        );
        let found = store.query_by_key("PC", &a.uniq, 4, 0, i64::MAX).await;
        assert!(
            found.iter().any(|r| r.len() == b.len() && r[..] == b[..]),
            "{what}: {a:?} not found by key"
        );
    }
    store.close().await.unwrap();
}

#[test]
fn power_cut_at_every_sync_point_loses_no_acknowledged_record() {
    let root = test_dir("power-cut");
    run(move || async move {
        // A clean run counts the sync points.
        let dir = root.join("clean");
        let disk = fault_disk(&dir, 1);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        let (mut acks, mut kept_from) = (Vec::new(), u64::MAX);
        script(&store, &mut acks, &mut kept_from).await.unwrap();
        let total = disk.syncs();
        store.close().await.unwrap();
        assert!(total > 20, "only {total} sync points");
        // CUT_AT=n runs that cut alone (with RUST_LOG=info to see what the store did).
        let only: Option<u64> = std::env::var("CUT_AT").ok().and_then(|v| v.parse().ok());
        for n in (1..=total).filter(|n| only.is_none_or(|o| o == *n)) {
            let dir = root.join(format!("cut-{n}"));
            let disk = fault_disk(&dir, n);
            // Short writes too: the store must finish every write it starts.
            disk.short_writes(3);
            disk.cut_at_sync(n);
            let (mut acks, mut kept_from) = (Vec::new(), u64::MAX);
            let store = Store::open(config(dir.clone(), &disk)).await.ok();
            if let Some(store) = &store {
                let r = script(store, &mut acks, &mut kept_from).await;
                assert!(
                    r.is_err() || !disk.is_dead(),
                    "cut {n}: the script did not notice"
                );
            }
            reboot(&disk, store).await;
            verify(
                config(dir.clone(), &disk),
                &acks,
                kept_from,
                &format!("cut at sync {n}"),
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        eprintln!("power cut at each of {total} sync points: no acknowledged record lost");
    });
}

/// Appends `n` records to queue 0 and waits until they are durable.
async fn fill(store: &Store, n: usize, tag: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = store
            .append(&[msg("T", 0, &[b'x'; 3000], "A", "", &format!("{tag}{i}"))])
            .unwrap();
        store.wait_durable(r.end_offset).await.unwrap();
        out.push(r.records[0].phys_offset);
    }
    out
}

#[test]
fn checkpoint_survives_a_power_cut() {
    let dir = test_dir("cut-checkpoint");
    run(move || async move {
        let disk = fault_disk(&dir, 7);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        fill(&store, 5, "c").await;
        store.checkpoint().await.unwrap();
        let end = store.commit_log_max_offset() as u64;
        reboot(&disk, Some(store)).await;
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        // Without the directory fsync after the rename, the checkpoint written at open (0)
        // comes back.
        assert_eq!(store.recovery_report().checkpoint, Some(end));
        store.close().await.unwrap();
    });
}

#[test]
fn sealed_index_survives_a_power_cut() {
    let dir = test_dir("cut-idx");
    run(move || async move {
        let disk = fault_disk(&dir, 8);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        // Over one 64 KiB segment: the first is sealed and its index written.
        fill(&store, 30, "i").await;
        let idx = dir.join("commitlog").join(format!("{:020}.idx", 0));
        for _ in 0..500 {
            if idx.exists() {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        assert!(idx.exists(), "index not written");
        // The name appears at the rename; the directory fsync follows at once.
        glommio::timer::sleep(Duration::from_millis(50)).await;
        reboot(&disk, Some(store)).await;
        // Without the directory fsync after its rename, the index is gone (recovery would
        // have to rescan the sealed segment to write it again).
        assert!(idx.exists(), "the index did not survive");
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        assert_eq!(store.max_offset("T", 0), 30);
        store.close().await.unwrap();
    });
}

#[test]
fn record_journal_survives_a_power_cut() {
    let dir = test_dir("cut-sums");
    run(move || async move {
        let disk = fault_disk(&dir, 9);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        fill(&store, 3, "s").await;
        store.checkpoint().await.unwrap();
        reboot(&disk, Some(store)).await;
        // Without the directory fsync after its creation, the journal is gone: records below
        // the checkpoint could then only be checked structurally.
        let sums = dir.join("commitlog").join(format!("{:020}.sums", 0));
        let len = std::fs::metadata(&sums).map(|m| m.len()).unwrap_or(0);
        assert!(len >= 3 * 12, "journal of {len} bytes after the power cut");
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        store.close().await.unwrap();
    });
}

#[test]
fn new_segment_survives_a_power_cut() {
    let dir = test_dir("cut-segment");
    run(move || async move {
        let disk = fault_disk(&dir, 10);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        // In the first segment, created at open: without the directory fsync after its
        // creation, it is gone after the power cut, with the acknowledged records in it.
        let phys = fill(&store, 3, "n").await;
        reboot(&disk, Some(store)).await;
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        for p in phys {
            store.read_record(p).await.unwrap();
        }
        assert_eq!(store.max_offset("T", 0), 3);
        // And across a roll into the next segment.
        let phys = fill(&store, 30, "m").await;
        assert!(*phys.last().unwrap() >= 64 * 1024, "no second segment");
        reboot(&disk, Some(store)).await;
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        for p in phys {
            store.read_record(p).await.unwrap();
        }
        assert_eq!(store.max_offset("T", 0), 33);
        store.close().await.unwrap();
    });
}

#[test]
fn failed_fdatasync_makes_the_store_read_only_until_restart() {
    let dir = test_dir("eio-sync");
    run(move || async move {
        let disk = fault_disk(&dir, 11);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        let durable = fill(&store, 4, "d").await;
        // One failure only: a store that retried the fsync would then see it succeed.
        disk.fail(FaultOp::Sync, 1, libc::EIO, false);
        let r = store.append(&[msg("T", 0, b"lost", "A", "", "L")]).unwrap();
        let e = store.wait_durable(r.end_offset).await.unwrap_err();
        assert!(matches!(e, StoreError::ReadOnly(_)), "{e}");
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("fdatasync"), "{e}");
        let e = store
            .append(&[msg("T", 0, b"x", "A", "", "X")])
            .unwrap_err();
        assert!(matches!(e, StoreError::ReadOnly(_)), "{e}");
        // Durable data stays readable; the record whose sync failed never became visible.
        let g = store.get_messages("T", 0, 0, 100, 1 << 20, |_| true).await;
        assert_eq!(g.records.len(), durable.len());
        assert_eq!(store.max_offset("T", 0), durable.len() as i64);
        assert!(store.close().await.is_err());
        // A restart recovers and takes appends again.
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        for p in &durable {
            store.read_record(*p).await.unwrap();
        }
        fill(&store, 2, "after").await;
        store.close().await.unwrap();
    });
}

#[test]
fn enospc_refuses_appends_and_recovers_when_space_is_freed() {
    let dir = test_dir("enospc");
    run(move || async move {
        let disk = fault_disk(&dir, 12);
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        let mut durable = fill(&store, 3, "a").await;
        disk.fail(FaultOp::Write, 1, libc::ENOSPC, true);
        let r = store
            .append(&[msg("T", 0, b"pending", "A", "", "P")])
            .unwrap();
        let pending = r.records[0].phys_offset;
        let mut refused = None;
        for _ in 0..1000 {
            match store.append(&[msg("T", 0, b"x", "A", "", "X")]) {
                Err(e) => {
                    refused = Some(e);
                    break;
                }
                Ok(_) => glommio::timer::sleep(Duration::from_millis(1)).await,
            }
        }
        let e = refused.expect("appends still accepted on a full disk");
        assert!(matches!(e, StoreError::DiskFull(_)), "{e}");
        assert!(
            e.is_unavailable() && e.to_string().contains("disk full"),
            "{e}"
        );
        // The operator frees space: the pending record becomes durable, appends resume.
        disk.clear_faults();
        store.wait_durable(r.end_offset).await.unwrap();
        durable.push(pending);
        durable.extend(fill(&store, 2, "b").await);
        store.close().await.unwrap();
        let store = Store::open(config(dir.clone(), &disk)).await.unwrap();
        for p in &durable {
            store.read_record(*p).await.unwrap();
        }
        store.close().await.unwrap();
    });
}

/// Appends until one is refused (or gives up); the error.
async fn until_refused(store: &Store) -> Option<StoreError> {
    for _ in 0..1000 {
        match store.append(&[msg("T", 0, b"x", "A", "", "X")]) {
            Err(e) => return Some(e),
            Ok(_) => glommio::timer::sleep(Duration::from_millis(2)).await,
        }
    }
    None
}

/// Appends until one is accepted (or gives up).
async fn until_accepted(store: &Store) -> bool {
    for _ in 0..1000 {
        if store.append(&[msg("T", 0, b"y", "A", "", "Y")]).is_ok() {
            return true;
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    false
}

fn floor_config(dir: PathBuf, disk: &FaultDisk) -> StoreConfig {
    let mut cfg = config(dir, disk);
    cfg.checkpoint_interval = Duration::from_millis(20);
    cfg.recycle_segments = 0;
    cfg.disk_min_free_bytes = 100_000;
    // The fake file system is 1 TiB: only the floor may trigger retention here.
    cfg.disk_max_used_ratio = 1.0;
    cfg
}

#[test]
fn free_space_floor_refuses_appends_until_the_operator_frees_space() {
    let dir = test_dir("floor");
    run(move || async move {
        let disk = fault_disk(&dir, 13);
        let store = Store::open(floor_config(dir.clone(), &disk)).await.unwrap();
        let durable = fill(&store, 5, "f").await;
        // Nothing sealed: retention cannot help.
        disk.set_free_bytes(Some(99_000));
        let e = until_refused(&store)
            .await
            .expect("appends accepted below the floor");
        assert!(matches!(e, StoreError::DiskFull(_)), "{e}");
        assert!(e.to_string().contains("diskMinFreeBytes"), "{e}");
        disk.set_free_bytes(Some(10 << 20));
        assert!(
            until_accepted(&store).await,
            "appends refused after space was freed"
        );
        for p in durable {
            store.read_record(p).await.unwrap();
        }
        store.close().await.unwrap();
    });
}

#[test]
fn free_space_floor_makes_retention_free_space() {
    let dir = test_dir("floor-retention");
    run(move || async move {
        let disk = fault_disk(&dir, 15);
        let store = Store::open(floor_config(dir.clone(), &disk)).await.unwrap();
        // Two sealed segments and the active one.
        let phys = fill(&store, 50, "f").await;
        assert!(store.commit_log_max_offset() > 2 * 64 * 1024);
        disk.set_free_bytes(Some(99_000));
        for _ in 0..500 {
            if store.commit_log_min_offset() > 0 {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        // The oldest segment went (64 KiB back, above the floor again); appends resume.
        let min = store.commit_log_min_offset();
        assert!(min >= 64 * 1024, "retention did not run below the floor");
        assert!(
            until_accepted(&store).await,
            "appends refused after retention"
        );
        for p in phys.iter().filter(|p| **p >= min) {
            store.read_record(*p).await.unwrap();
        }
        store.close().await.unwrap();
    });
}

#[test]
fn slow_fsync_times_out_then_becomes_durable() {
    let dir = test_dir("slow-sync");
    run(move || async move {
        let disk = fault_disk(&dir, 14);
        let mut cfg = config(dir.clone(), &disk);
        cfg.flush_timeout = Duration::from_millis(20);
        let store = Store::open(cfg).await.unwrap();
        disk.slow_sync(Duration::from_millis(200));
        let r = store.append(&[msg("T", 0, b"slow", "A", "", "S")]).unwrap();
        let e = store.wait_durable(r.end_offset).await.unwrap_err();
        assert!(matches!(e, StoreError::FlushTimeout { .. }), "{e}");
        disk.slow_sync(Duration::ZERO);
        store.flush().await.unwrap();
        assert_eq!(store.max_offset("T", 0), 1);
        store.close().await.unwrap();
    });
}
