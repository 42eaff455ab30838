//! The flusher: group commit. Hands complete blocks to the writer thread, writes the partial
//! last block from a copy, has the segments fdatasynced, publishes the durable offset; opens
//! and prepares segment files (and a spare one ahead of the next roll).

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;

use crate::config::{FlushMode, SegmentInit};
use crate::error::{Result, StoreError};
use crate::io::{File, BLOCK};
use crate::offsets::LogOffset;
use crate::state::{disk_full, fail, publish_state, Shared, State};
use crate::writer::{Op, WriteJob, Writer};

pub(crate) async fn flusher_loop(sh: Rc<Shared>) {
    loop {
        let (mode, interval, cp_interval, ret_interval, idle, over, closed) = {
            let st = sh.st.borrow();
            let dirty = st.cl.flushed().distance_to(st.cl.write_pos());
            (
                st.cfg.flush,
                st.cfg.flush_interval,
                st.cfg.checkpoint_interval,
                st.cfg.retention_interval,
                dirty == 0,
                dirty >= st.cfg.flush_dirty_bytes as u64,
                st.closed,
            )
        };
        if closed && idle {
            return;
        }
        // SYNC_FLUSH flushes whenever anything is dirty (group commit: what arrives meanwhile
        // goes into the next flush); ASYNC_FLUSH when over the threshold or at the interval.
        let wait = match mode {
            FlushMode::Sync => idle,
            FlushMode::Async => !over && !closed,
        };
        if wait {
            let wake = sh.flush_wake.notified();
            let dur = if mode == FlushMode::Async {
                interval
            } else {
                cp_interval
            };
            future::or(wake, glommio::timer::sleep(dur)).await;
        }
        let _ = ret_interval;
        match flush_once(&sh).await {
            Ok(()) => {
                sh.st.borrow_mut().full_enospc = None;
            }
            Err(e) if e.is_enospc() => {
                // Nothing was lost: the records stay in memory and the flush is retried (the
                // writes that did not happen are submitted again) once space is freed.
                disk_full(&sh, &e);
                glommio::timer::sleep(Duration::from_millis(50)).await;
                // The writer skipped what followed the failed write: once it is idle, its
                // error is cleared and every block not durable is submitted again.
                while !sh.writer.reset_after_error() {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                let mut st = sh.st.borrow_mut();
                st.cl.resubmit_unflushed();
            }
            Err(e) => {
                fail(&sh, &e);
                return;
            }
        }
    }
}

/// Wakes `wait_durable` callers now and then so that they notice their `flush_timeout` even
/// when no flush completes (a stuck disk); ends with the store.
pub(crate) async fn durable_ticker(sh: std::rc::Weak<Shared>) {
    loop {
        let tick = match sh.upgrade() {
            Some(sh) if !sh.st.borrow().closed => {
                sh.durable.notify();
                let t = sh.st.borrow().cfg.flush_timeout / 10;
                t.clamp(Duration::from_millis(1), Duration::from_millis(100))
            }
            _ => return,
        };
        glommio::timer::sleep(tick).await;
    }
}

/// Opens the segment file for `base`, taking a recycled one or creating and preparing it.
pub(crate) async fn ensure_segment(sh: &Shared, base: LogOffset) -> Result<Rc<File>> {
    ensure_segment_with(sh, base, false).await
}

/// As [`ensure_segment`]; `full_init` prepares a new segment as configured even though that
/// takes long (at open, before any append waits).
pub(crate) async fn ensure_segment_with(
    sh: &Shared,
    base: LogOffset,
    full_init: bool,
) -> Result<Rc<File>> {
    let disk = sh.st.borrow().cfg.disk.clone();
    let (path, free, size, init, chunk, depth) = {
        let mut st = sh.st.borrow_mut();
        if let Some(f) = st.cl.files.get(&base) {
            return Ok(f.clone());
        }
        let path = st.cl.segment_path(base);
        let free = if st.cfg.disk.exists(&path) {
            None
        } else {
            st.free_segments.pop()
        };
        (
            path,
            free,
            st.cfg.segment_size,
            st.cfg.segment_init.resolve(st.cfg.flush),
            st.cfg.write_chunk_bytes,
            st.cfg.write_depth,
        )
    };
    // The rename of a spare and the creation of a new file are made durable below, before the
    // segment is written to: a power cut must not take the name of acknowledged data away.
    if let Some(free) = free {
        disk.rename(&free, &path)?;
    }
    let existed = disk.exists(&path);
    let f = Rc::new(File::open(&disk, &path, true).await?);
    if !existed {
        // No spare was ready: commits are waiting, so only allocate (pre-writing a whole
        // segment would stall them for seconds); spares prepared in the background get `init`.
        let init = if full_init {
            init
        } else {
            SegmentInit::Fallocate
        };
        prepare_segment(&f, size, init, chunk, depth).await?;
    }
    if let Some(dir) = path.parent() {
        disk.sync_dir(dir)?;
    }
    sh.st.borrow_mut().cl.files.insert(base, f.clone());
    Ok(f)
}

pub(crate) async fn prepare_segment(
    f: &Rc<File>,
    size: u64,
    init: SegmentInit,
    chunk: usize,
    depth: usize,
) -> Result<()> {
    f.pre_allocate(size).await?;
    if init == SegmentInit::Prewrite {
        f.zero_range(0, size, chunk, depth).await?;
    }
    f.fdatasync().await
}

/// Prepares a spare segment in the background (pre-written under SYNC_FLUSH) once the active
/// one is half full, so that a roll does not wait for it. The pre-write goes one 1 MiB write at
/// a time, so that it does not crowd out commits.
fn maybe_prepare_spare(sh: &Rc<Shared>) {
    let disk = sh.st.borrow().cfg.disk.clone();
    let (path, size, init, chunk, depth) = {
        let mut st = sh.st.borrow_mut();
        let half = st.cl.active_base().distance_to(st.cl.write_pos()) > st.cfg.segment_size / 2;
        if !half || st.preparing || !st.free_segments.is_empty() || st.closed {
            return;
        }
        let next = st.cl.active_base().add(st.cfg.segment_size);
        if st.cl.files.contains_key(&next) {
            return;
        }
        st.preparing = true;
        (
            st.cl
                .dir()
                .join("free")
                .join(format!("prep-{:020}", next.get())),
            st.cfg.segment_size,
            st.cfg.segment_init.resolve(st.cfg.flush),
            st.cfg.write_chunk_bytes,
            st.cfg.write_depth,
        )
    };
    let sh = sh.clone();
    glommio::spawn_local(async move {
        let r = async {
            disk.remove_file(&path)?;
            let f = Rc::new(File::open(&disk, &path, true).await?);
            let _ = (chunk, depth);
            prepare_segment(&f, size, init, 1 << 20, 1).await?;
            if let Ok(f) = Rc::try_unwrap(f) {
                f.close().await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let mut st = sh.st.borrow_mut();
        st.preparing = false;
        match r {
            Ok(()) => st.free_segments.push(path),
            Err(e) => tracing::warn!(error = %e, "preparing a spare segment failed"),
        }
    })
    .detach();
}

/// Hands the complete blocks of `[cl.submitted(), upto)` to the disk writer, in runs of at most
/// `write_chunk_bytes` within one segment: from the append memory when one chunk holds the
/// run, else copied from the pieces (what none covers, after a blank marker, is zeros).
/// `eager` (from an append): only full `write_chunk_bytes` runs, and only into segment files
/// already open.
pub(crate) fn submit_blocks(
    st: &mut State,
    writer: &Writer,
    upto: LogOffset,
    eager: bool,
) -> Result<()> {
    let chunk = st.cfg.write_chunk_bytes as u64;
    let seg = st.cfg.segment_size;
    let mut p = st.cl.submitted();
    while p < upto {
        let base = st.cl.base_of(p);
        let Some(file) = st.cl.files.get(&base) else {
            break;
        };
        let limit = upto.min(base.add(seg)).min(p.add(chunk));
        let (src, end) = st.cl.write_source(p, limit);
        if eager && p.distance_to(end) < chunk {
            break;
        }
        let (fd, path) = file.writer_handle()?;
        writer.submit(WriteJob {
            file: fd,
            path,
            op: Op::Write {
                pos: p.pos_in(base).file_pos(),
                src,
            },
        });
        p = end;
        st.cl.set_submitted(p);
    }
    Ok(())
}

/// One group commit: writes every unflushed byte (block-aligned, the partial last block
/// written from a copy and again once complete), fdatasyncs, then publishes the new durable
/// offset.
pub(crate) async fn flush_once(sh: &Rc<Shared>) -> Result<()> {
    let (from, to, bases, records) = {
        let st = sh.st.borrow();
        let (from, to) = (st.cl.flushed(), st.cl.write_pos());
        let records = sh.stats.appended_records.get();
        if from == to {
            return Ok(());
        }
        let mut bases = Vec::new();
        let mut b = st.cl.base_of(from);
        while b < to {
            bases.push(b);
            b = b.add(st.cfg.segment_size);
        }
        (from, to, bases, records)
    };
    let t_start = Instant::now();
    let mut files = Vec::with_capacity(bases.len());
    for &base in &bases {
        files.push((base, ensure_segment(sh, base).await?));
    }
    let seq = {
        // The writer thread sees the flush's jobs together: the whole blocks and the partial
        // last block go out as one vectored write.
        let _hold = sh.writer.hold();
        submit_flush(&mut sh.st.borrow_mut(), &sh.writer, &files, to)?
    };
    sh.writer.wait(seq).await?;
    let took = t_start.elapsed();
    sh.stats.committed(took, from.distance_to(to), records);
    tracing::trace!(bytes = from.distance_to(to), total = ?took, "flushed");
    publish_durable(sh, to);
    let sealed_durable = {
        let st = sh.st.borrow();
        st.cl
            .sealing
            .keys()
            .next()
            .is_some_and(|&b| b.add(st.cfg.segment_size) <= st.cl.flushed())
    };
    if sealed_durable {
        sh.sealed.notify();
    }
    maybe_prepare_spare(sh);
    Ok(())
}

/// Submits a flush up to `to` to the writer: the complete blocks, the partial last block from
/// a copy (its memory is still being appended to), a sync of each of `files` (by segment
/// base), and the mark the flush waits for (returned).
fn submit_flush(
    st: &mut State,
    writer: &Writer,
    files: &[(LogOffset, Rc<File>)],
    to: LogOffset,
) -> Result<u64> {
    let a = to.align_down();
    submit_blocks(st, writer, a, false)?;
    if st.cl.submitted() < a {
        return Err(StoreError::Failed(format!(
            "flush: blocks from commit-log offset {} could not be submitted",
            st.cl.submitted()
        )));
    }
    if a < to && st.cl.submitted() == a {
        let base = st.cl.base_of(a);
        let file = &files[files.iter().position(|f| f.0 == base).unwrap_or(0)].1;
        let mut b = crate::io::AlignedBuf::zeroed(BLOCK as usize);
        st.cl.image_into(a, a, to, b.as_mut_slice());
        let (fd, path) = file.writer_handle()?;
        writer.submit(WriteJob {
            file: fd,
            path,
            op: Op::Write {
                pos: a.pos_in(base).file_pos(),
                src: Box::new(b),
            },
        });
    }
    // The syncs run on the writer thread too, right after the writes, so the flush completes
    // with a single wake-up of the flusher (and appends see the new durable offset through the
    // mark even before that).
    for (_, f) in files {
        let (fd, path) = f.writer_handle()?;
        writer.submit(WriteJob {
            file: fd,
            path,
            op: Op::Sync,
        });
    }
    Ok(writer.submit_mark(to.get()))
}

fn publish_durable(sh: &Shared, to: LogOffset) {
    let mut st = sh.st.borrow_mut();
    publish_state(&mut st, &sh.durable, to);
}
