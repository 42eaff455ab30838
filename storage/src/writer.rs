//! The commit log's disk writer: one thread per store (an I/O engine of [`crate::io`]) that
//! writes block-aligned ranges of segments through the device's vectored write (`pwritev(2)`
//! on the segments' O_DIRECT descriptors for the real disk), straight from the append
//! memory (no copy into I/O buffers).
//!
//! Jobs are submitted from the shard's thread, by appends as soon as a `write_chunk_bytes` run of
//! complete blocks exists (so the disk is fed while the shard keeps appending, whatever the
//! executor's scheduling), and by the flusher for the rest before it fdatasyncs. The thread runs
//! jobs in submission order, so a later write of a block (the completed version of a partial
//! block written by an earlier flush) always lands after the earlier one. Completion is tracked
//! by sequence number. A flush queues its writes, an fdatasync of each segment it touched and a
//! mark, held back until all are queued; its task is woken once, when the mark is reached.
//!
//! Glommio's DMA writes only take its own `DmaBuffer`s, which cannot borrow other memory: this
//! thread is what lets the flusher write without copying. A single thread writes one chunk at a
//! time; large chunks are split by the block layer into several requests in flight. Writes
//! queued back to back that continue each other in one file go out as one `pwritev(2)`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Result, StoreError};
use crate::io::{write_all_at, DevFile};

/// Bytes of one write; kept alive, and unchanged, until the write finished.
pub type Source = Box<dyn AsRef<[u8]> + Send>;

pub enum Op {
    /// Writes the source at `pos` of the file (block-aligned, as are the source's address and
    /// length).
    Write { pos: u64, src: Source },
    /// fdatasync.
    Sync,
}

pub struct WriteJob {
    pub file: Arc<dyn DevFile>,
    pub path: Arc<PathBuf>,
    pub op: Op,
}

/// A job: a file operation, or a mark recording that everything before it succeeded.
enum Job {
    File(WriteJob),
    Mark(u64),
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Job>,
    /// Jobs submitted so far (the last job's sequence number).
    submitted: u64,
    /// Jobs finished (in order).
    done: u64,
    error: Option<StoreError>,
    waker: Option<Waker>,
    /// The job the waker waits for: it is woken once, when that job is done (or on an error).
    wake_at: u64,
    closed: bool,
    /// The last mark reached with every job before it successful.
    mark: u64,
    /// Jobs are being queued as one group (see [`Writer::hold`]): the thread waits for all.
    held: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The shard's handle; dropping it stops the thread once the queued jobs are done.
pub struct Writer {
    sh: Arc<Shared>,
}

impl Writer {
    pub fn start(name: &str) -> Result<Writer> {
        let sh = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            work: Condvar::new(),
        });
        let t = sh.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&t))
            .map_err(|e| StoreError::io("spawn writer thread", name, None, e))?;
        Ok(Writer { sh })
    }

    /// Queues a file operation; returns its sequence number.
    pub fn submit(&self, job: WriteJob) -> u64 {
        self.push(Job::File(job))
    }

    /// Queues a mark: once every job before it succeeded, [`Writer::mark`] returns `value`
    /// (commit-log offsets made durable by the syncs before it). Returns its sequence number.
    pub fn submit_mark(&self, value: u64) -> u64 {
        self.push(Job::Mark(value))
    }

    /// Holds the thread back until the guard drops, so that the jobs queued meanwhile (a
    /// flush's writes, syncs and mark) are seen together and contiguous writes are merged.
    pub fn hold(&self) -> Hold<'_> {
        self.sh.lock().held = true;
        Hold { w: self }
    }

    /// After an error that may be retried (a write that met ENOSPC): once every job queued is
    /// done (skipped), forgets the error so that jobs run again; false while jobs are queued.
    /// The caller submits again whatever was not made durable.
    pub fn reset_after_error(&self) -> bool {
        let mut g = self.sh.lock();
        if g.done < g.submitted {
            return false;
        }
        g.error = None;
        true
    }

    /// The last mark reached (0 before any).
    pub fn mark(&self) -> u64 {
        self.sh.lock().mark
    }

    fn push(&self, job: Job) -> u64 {
        let mut g = self.sh.lock();
        g.queue.push_back(job);
        g.submitted += 1;
        let seq = g.submitted;
        drop(g);
        self.sh.work.notify_one();
        seq
    }

    /// Resolves once every job up to `seq` finished; the first write error, if any.
    pub async fn wait(&self, seq: u64) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_done(seq, cx)).await
    }

    fn poll_done(&self, seq: u64, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut g = self.sh.lock();
        if let Some(e) = g.error.take() {
            // Kept for later waiters as a plain message; the first gets the typed error.
            g.error = Some(StoreError::Failed(e.to_string()));
            return Poll::Ready(Err(e));
        }
        if g.done >= seq {
            return Poll::Ready(Ok(()));
        }
        g.waker = Some(cx.waker().clone());
        g.wake_at = seq;
        Poll::Pending
    }
}

/// See [`Writer::hold`].
pub struct Hold<'a> {
    w: &'a Writer,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.w.sh.lock().held = false;
        self.w.sh.work.notify_one();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.sh.lock().closed = true;
        self.sh.work.notify_one();
    }
}

/// Most contiguous writes run as one `pwritev(2)`.
const MAX_MERGED: usize = 64;
/// Most bytes of one merged write.
const MAX_MERGED_BYTES: usize = 16 << 20;

fn run(sh: &Shared) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_MERGED);
    loop {
        {
            let mut g = sh.lock();
            loop {
                if !g.held {
                    if let Some(j) = g.queue.pop_front() {
                        jobs.push(j);
                        break;
                    }
                }
                if g.closed {
                    return;
                }
                g = sh.work.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            // Writes queued right behind this one that continue it in the same file go out
            // with it as one vectored write: a flush's whole blocks and its partial last block
            // (from a copy) cost one disk round trip instead of two.
            if let Some((file, mut end, mut bytes)) =
                write_span(&jobs[0]).map(|(f, pos, len)| (f.clone(), pos + len as u64, len))
            {
                while jobs.len() < MAX_MERGED {
                    let Some(next) = g.queue.front() else { break };
                    let Some((f, pos, len)) = write_span(next) else {
                        break;
                    };
                    if !Arc::ptr_eq(f, &file) || pos != end || bytes + len > MAX_MERGED_BYTES {
                        break;
                    }
                    end = pos + len as u64;
                    bytes += len;
                    if let Some(j) = g.queue.pop_front() {
                        jobs.push(j);
                    }
                }
            }
        }
        let failed = sh.lock().error.is_some();
        // After a failure the store is failing: later jobs are skipped, not run.
        let r = match &jobs[0] {
            _ if failed => Ok(()),
            Job::File(_) if jobs.len() > 1 => write_merged(&jobs),
            Job::File(j) => run_op(j),
            Job::Mark(_) => Ok(()),
        };
        let waker = {
            let mut g = sh.lock();
            g.done += jobs.len() as u64;
            match (r, &jobs[0]) {
                (Err(e), _) if g.error.is_none() => g.error = Some(e),
                (Ok(()), Job::Mark(v)) if g.error.is_none() => g.mark = g.mark.max(*v),
                _ => {}
            }
            // Waking the shard's thread costs a system call and, when it sleeps, an
            // interrupt: only when its wait is over.
            if g.done >= g.wake_at || g.error.is_some() {
                g.waker.take()
            } else {
                None
            }
        };
        // The jobs' memory goes back (to the arena's pool) before the waiter runs.
        jobs.clear();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A write job's file, position and length.
fn write_span(job: &Job) -> Option<(&Arc<dyn DevFile>, u64, usize)> {
    match job {
        Job::File(WriteJob {
            file,
            op: Op::Write { pos, src },
            ..
        }) => Some((file, *pos, (**src).as_ref().len())),
        _ => None,
    }
}

/// Runs contiguous writes of one file (as gathered by `run`) as one vectored write.
fn write_merged(jobs: &[Job]) -> Result<()> {
    let Some(Job::File(
        first @ WriteJob {
            op: Op::Write { pos, .. },
            ..
        },
    )) = jobs.first()
    else {
        return Ok(());
    };
    let bufs: Vec<&[u8]> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::File(WriteJob {
                op: Op::Write { src, .. },
                ..
            }) => Some((**src).as_ref()),
            _ => None,
        })
        .collect();
    write_all(first, *pos, &bufs)
}

fn run_op(job: &WriteJob) -> Result<()> {
    match &job.op {
        Op::Write { pos, src } => write_all(job, *pos, &[(**src).as_ref()]),
        Op::Sync => job
            .file
            .sync_data()
            .map_err(|e| StoreError::io("fdatasync", &**job.path, None, e)),
    }
}

/// Writes `bufs`, one after the other, at `pos` of the job's file.
fn write_all(job: &WriteJob, pos: u64, bufs: &[&[u8]]) -> Result<()> {
    write_all_at(&*job.file, &job.path, pos, bufs)
}
