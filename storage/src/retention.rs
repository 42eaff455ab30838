//! Retention: sealed segments are deleted oldest first while their newest record is older than
//! `retention`, the disk is fuller than `disk_max_used_ratio` or has less free space than
//! `disk_min_free_bytes`; never the active segment, nor one beyond the last checkpoint.
//! Deleted segments are kept (up to `recycle_segments`) as spares for the next roll. Consume
//! queues follow: their minimum moves past deleted records and whole files below it go.

use std::path::PathBuf;
use std::rc::Rc;

use crate::config::StoreConfig;
use crate::error::Result;
use crate::offsets::LogOffset;
use crate::state::{cq_entries, Shared};

pub(crate) async fn run(sh: &Shared, now_ms: i64) -> Result<usize> {
    let mut deleted = 0;
    while let Some(d) = next_expired(sh, now_ms) {
        let file = sh.st.borrow_mut().cl.remove_oldest(d.base);
        drop(file);
        let disk = sh.st.borrow().cfg.disk.clone();
        match &d.recycle_to {
            Some(to) => {
                disk.rename_durable(&d.seg_path, to)?;
                sh.st.borrow_mut().free_segments.push(to.clone());
            }
            None => disk.remove_durable(&d.seg_path)?,
        }
        disk.remove_durable(&d.idx_path)?;
        tracing::info!(
            segment = d.base.get(),
            recycled = d.recycle_to.is_some(),
            "retention deleted a segment"
        );
        deleted += 1;
    }
    if deleted > 0 {
        trim_queues(sh).await?;
    }
    sh.st.borrow().check();
    Ok(deleted)
}

/// The oldest segment, to delete, and where its file goes.
struct Expired {
    base: LogOffset,
    seg_path: PathBuf,
    idx_path: PathBuf,
    /// The spare it becomes, if one more spare is kept.
    recycle_to: Option<PathBuf>,
}

/// The oldest segment if it is to go: expired, or the disk is too full; never the active
/// segment, nor one the last checkpoint does not cover (recovery rebuilds the consume-queue
/// entries beyond the checkpoint from the commit log).
fn next_expired(sh: &Shared, now_ms: i64) -> Option<Expired> {
    let st = sh.st.borrow();
    let active = st.cl.active_base();
    let (&base, info) = st.cl.segments().iter().next()?;
    if base >= active || base.add(st.cfg.segment_size) > st.checkpointed {
        return None;
    }
    // Nor one holding data a user of the store still needs.
    if base.add(st.cfg.segment_size) > sh.retention_floor.get() {
        return None;
    }
    let seg_path = st.cl.segment_path(base);
    let newest = match info {
        Some(i) if i.max_ts != i64::MIN => i.max_ts,
        _ => st.cfg.disk.mtime_ms(&seg_path).unwrap_or(now_ms),
    };
    let expired = newest < now_ms - st.cfg.retention.as_millis() as i64;
    if !expired && !disk_too_full(&st.cfg) {
        return None;
    }
    let recycle_to = (st.free_segments.len() < st.cfg.recycle_segments).then(|| {
        st.cl
            .dir()
            .join("free")
            .join(format!("recycled-{:020}", base.get()))
    });
    Some(Expired {
        base,
        seg_path,
        idx_path: st.cl.idx_path(base),
        recycle_to,
    })
}

/// Whether the disk is fuller than `disk_max_used_ratio` or has less free space than
/// `disk_min_free_bytes`.
fn disk_too_full(cfg: &StoreConfig) -> bool {
    let disk = &cfg.disk;
    (cfg.disk_max_used_ratio < 1.0
        && disk.used_ratio(&cfg.dir).unwrap_or(0.0) > cfg.disk_max_used_ratio)
        || (cfg.disk_min_free_bytes > 0
            && disk
                .space(&cfg.dir)
                .is_ok_and(|s| s.avail < cfg.disk_min_free_bytes))
}

/// Moves each queue's minimum past records no longer in the commit log and deletes consume
/// queue files wholly below it.
pub(crate) async fn trim_queues(sh: &Shared) -> Result<()> {
    let keys: Vec<(String, i32)> = sh.st.borrow().queues.keys().cloned().collect();
    let disk = sh.st.borrow().cfg.disk.clone();
    let cl_min = sh.st.borrow().cl.min_offset();
    for key in keys {
        let (lo0, hi0) = match sh.st.borrow().queues.get(&key) {
            Some(q) => (q.min(), q.max()),
            None => continue,
        };
        // First entry whose record still exists (entries are in commit-log order).
        let (mut lo, mut hi) = (lo0, hi0);
        while lo < hi {
            let mid = lo.midpoint(hi);
            let e = cq_entries(sh, &key, mid, 1).await?;
            match e.first() {
                Some(e) if !e.is_empty() && e.phys >= cl_min => hi = mid,
                _ => lo = mid.next(),
            }
        }
        let doomed: Vec<(u64, Rc<crate::io::File>, std::path::PathBuf)> = {
            let mut st = sh.st.borrow_mut();
            let Some(q) = st.queues.get_mut(&key) else {
                continue;
            };
            q.set_min(lo.max(q.min()));
            // The file holding the newest entry stays, so a restart still knows the queue's end.
            if q.max() == q.start() {
                continue;
            }
            let (first_live_file, _) = q.locate(q.min().min(q.max().prev()).max(q.start()));
            let dead: Vec<u64> = q.files.range(..first_live_file).map(|(k, _)| *k).collect();
            let mut v = Vec::new();
            for n in dead {
                if let Some(f) = q.files.remove(&n) {
                    v.push((n, f, q.file_path(n)));
                }
            }
            // Files never opened in this run.
            let live_name = crate::cq::file_name(q.start().add(first_live_file * q.file_entries));
            for name in disk.list_dir(&q.dir)? {
                if name.len() == 20 && name.as_str() < live_name.as_str() {
                    let p = q.dir.join(&name);
                    if !v.iter().any(|(_, _, vp)| *vp == p) {
                        disk.remove_file(&p)?;
                    }
                }
            }
            v
        };
        for (_, f, path) in doomed {
            drop(f);
            disk.remove_file(&path)?;
        }
    }
    Ok(())
}
