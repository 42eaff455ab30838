//! The checkpointer: background work that must not delay commits. Writes sealed segments'
//! `.idx` files, the consume queues' new entries and the `.sums` journal, then the checkpoint;
//! checks free space; runs retention.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use futures_lite::future;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::io::{align_down, align_up, File};
use crate::offsets::LogOffset;
use crate::seg_index::write_index_file;
use crate::state::{cq_file, disk_full, fail, Shared};

/// Background work that must not delay commits: sealed-segment index files, consume-queue
/// flushes with checkpoints, the free-space check, retention. Stops when the store closes or
/// becomes read-only.
pub(crate) async fn checkpointer_loop(sh: Rc<Shared>) {
    let mut last_retention = Instant::now();
    let mut last_checkpoint = Instant::now();
    let stopped = |sh: &Shared| {
        let st = sh.st.borrow();
        st.closed || st.failed.is_some()
    };
    loop {
        let (cp_interval, ret_interval) = {
            let st = sh.st.borrow();
            (st.cfg.checkpoint_interval, st.cfg.retention_interval)
        };
        if stopped(&sh) {
            return;
        }
        // Woken at the checkpoint interval, at close, and when a sealed segment is durable (its
        // index is written at once: until then recovery would have to rescan that segment).
        let left = cp_interval.saturating_sub(last_checkpoint.elapsed());
        let stop = sh.stop.notified();
        let sealed = sh.sealed.notified();
        future::or(future::or(stop, sealed), glommio::timer::sleep(left)).await;
        if stopped(&sh) || !background_ok(&sh, seal_indexes(&sh).await) {
            return;
        }
        if last_checkpoint.elapsed() < cp_interval {
            continue;
        }
        last_checkpoint = Instant::now();
        check_space(&sh).await;
        match checkpoint(&sh).await {
            Ok(()) => sh.st.borrow_mut().full_enospc = None,
            r => {
                if !background_ok(&sh, r) {
                    return;
                }
            }
        }
        let low = sh.st.borrow().full_floor.is_some();
        if low || last_retention.elapsed() >= ret_interval {
            last_retention = Instant::now();
            let _permit = sh.cp_lock.acquire_permit(1).await;
            let now = sh.st.borrow().cfg.clock.now_ms();
            if let Err(e) = crate::retention::run(&sh, now).await {
                tracing::error!(error = %e, "retention failed");
            }
            if low {
                check_space(&sh).await;
            }
        }
    }
}

/// Whether background work may go on after `r`: yes after success or a full disk (retried at
/// the next round); any other error makes the store read-only.
fn background_ok(sh: &Shared, r: Result<()>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) if e.is_enospc() => {
            disk_full(sh, &e);
            true
        }
        Err(e) => {
            fail(sh, &e);
            false
        }
    }
}

/// Compares free space with `disk_min_free_bytes`: appends are refused below it (and retention
/// runs at once), accepted again above it.
pub(crate) async fn check_space(sh: &Shared) {
    let (disk, dir, floor) = {
        let st = sh.st.borrow();
        (
            st.cfg.disk.clone(),
            st.cfg.dir.clone(),
            st.cfg.disk_min_free_bytes,
        )
    };
    if floor == 0 {
        return;
    }
    let avail = match disk.space(&dir) {
        Ok(s) => s.avail,
        Err(e) => {
            tracing::warn!(error = %e, "free space unknown");
            return;
        }
    };
    let low = avail < floor;
    let was = sh.st.borrow().full_floor.is_some();
    if low {
        let cause = format!("{avail} bytes free, below diskMinFreeBytes {floor}");
        if !was {
            tracing::error!(%cause, "disk full; appends are refused until space is freed");
        }
        sh.st.borrow_mut().full_floor = Some(cause);
    } else if was {
        tracing::info!(
            avail,
            "free space back above diskMinFreeBytes; appends accepted"
        );
        sh.st.borrow_mut().full_floor = None;
    }
}

/// Writes `<base>.idx` for sealed segments that are fully durable.
pub(crate) async fn seal_indexes(sh: &Shared) -> Result<()> {
    loop {
        let (base, idx, path) = {
            let st = sh.st.borrow();
            let Some((&base, idx)) = st.cl.sealing.iter().next() else {
                return Ok(());
            };
            if base.add(st.cfg.segment_size) > st.cl.flushed() {
                return Ok(());
            }
            (base, idx.clone(), st.cl.idx_path(base))
        };
        let disk = sh.st.borrow().cfg.disk.clone();
        // A segment's index holds a million entries or more: sorting, encoding
        // and writing it takes tens of milliseconds, which would stall every
        // request of the shard. It is done on the blocking pool.
        glommio::executor()
            .spawn_blocking(move || write_index_file(&disk, &path, &idx))
            .await?;
        let mut st = sh.st.borrow_mut();
        let sums = st.cl.sums_path(base);
        st.cfg.disk.remove_file(&sums)?;
        if let Some(idx) = st.cl.sealing.remove(&base) {
            // Unless a reader still holds it (it is then dropped when the reader is done).
            if let Ok(idx) = std::sync::Arc::try_unwrap(idx) {
                st.cl.spare_index = Some(idx);
            }
        }
        st.cl.mark_idx_on_disk(base);
    }
}

/// Writes the consume queues' new entries, then a checkpoint at the durable offset they cover.
pub(crate) async fn checkpoint(sh: &Shared) -> Result<()> {
    let _permit = sh.cp_lock.acquire_permit(1).await;
    let (c, min, manifest, writes) = {
        let st = sh.st.borrow();
        let c = st.cl.flushed();
        let mut manifest = Vec::with_capacity(st.queues.len());
        let mut writes = Vec::new();
        for (key, q) in &st.queues {
            // Entries of records below the checkpoint offset.
            let mut n = q.max();
            while n > q.mem_start() {
                match q.mem_entry(n.prev()) {
                    Some(e) if e.phys >= c => n = n.prev(),
                    _ => break,
                }
            }
            manifest.push((key.0.clone(), key.1, n));
            let w = q.pending_writes();
            if !w.is_empty() {
                writes.push((key.clone(), q.max(), w));
            }
        }
        (c, st.cl.min_offset(), manifest, writes)
    };
    for (key, max, ws) in writes {
        let mut touched: BTreeMap<u64, Rc<File>> = BTreeMap::new();
        for w in ws {
            let f = cq_file(sh, &key, w.file_no, true).await?;
            let Some(f) = f else { break };
            let mut buf = f.alloc(w.data.len());
            buf.as_bytes_mut().copy_from_slice(&w.data);
            f.write_at(buf, w.pos).await?;
            touched.insert(w.file_no, f);
        }
        for f in touched.values() {
            f.fdatasync().await?;
        }
        let mut st = sh.st.borrow_mut();
        let cache = st.cfg.cq_cache_entries;
        if let Some(q) = st.queues.get_mut(&key) {
            q.flushed_to(max, cache);
        }
        st.check();
    }
    write_sums(sh, c).await?;
    let (disk, dir) = {
        let st = sh.st.borrow();
        (st.cfg.disk.clone(), st.cfg.dir.clone())
    };
    Checkpoint {
        offset: c,
        min_offset: min,
        queues: manifest,
    }
    .store(&disk, &dir)
    .await?;
    let mut st = sh.st.borrow_mut();
    st.checkpointed = st.checkpointed.max(c);
    Ok(())
}

/// Appends the active segment's record-table entries of records below `c` to its journal.
async fn write_sums(sh: &Shared, c: LogOffset) -> Result<()> {
    const E: u64 = 12;
    let (base, path, disk, to, data, pos) = {
        let st = sh.st.borrow();
        let base = st.cl.active_base();
        let recs = &st.cl.active.records;
        let to = recs.partition_point(|r| r.pos.at(base) < c);
        if st.cl.sums_written().min(to) == to {
            return Ok(());
        }
        let a = align_down(st.cl.sums_written().min(to) as u64 * E);
        let first = (a / E) as usize;
        let mut data = Vec::with_capacity((to - first + 1) * E as usize);
        for r in &recs[first..to] {
            data.extend_from_slice(&r.encode());
        }
        let skip = (a - first as u64 * E) as usize;
        let disk = st.cfg.disk.clone();
        (
            base,
            st.cl.sums_path(base),
            disk,
            to,
            data[skip..].to_vec(),
            a,
        )
    };
    let created = !disk.exists(&path);
    let f = File::open(&disk, &path, true).await?;
    let mut buf = f.alloc(align_up(data.len() as u64) as usize);
    buf.as_bytes_mut()[..data.len()].copy_from_slice(&data);
    f.write_at(buf, pos).await?;
    f.fdatasync().await?;
    f.close().await?;
    if created {
        // The journal's name must outlive a power cut as its entries do.
        disk.sync_dir(sh.st.borrow().cl.dir())?;
    }
    let mut st = sh.st.borrow_mut();
    if st.cl.active_base() == base {
        st.cl.set_sums_written(to);
    } else if !matches!(st.cl.segments().get(&base), Some(Some(i)) if !i.idx_on_disk) {
        // The segment was sealed during the write and its `.idx` is already on disk (or the
        // segment is gone): the journal just written is not needed and nothing else removes it.
        st.cfg.disk.remove_file(&path)?;
    }
    Ok(())
}
