//! The commit log's disk writer: one thread per store that writes block-aligned ranges of
//! segments with `pwrite(2)` on the segments' O_DIRECT descriptors, straight from the append
//! memory (no copy into I/O buffers).
//!
//! Jobs are submitted from the shard's thread, by appends as soon as a `write_chunk_bytes` run of
//! complete blocks exists (so the disk is fed while the shard keeps appending, whatever the
//! executor's scheduling), and by the flusher for the rest before it fdatasyncs. The thread runs
//! jobs in submission order, so a later write of a block (the completed version of a partial
//! block written by an earlier flush) always lands after the earlier one. Completion is tracked
//! by sequence number; the flusher waits for the last job it needs, then fdatasyncs on the
//! executor.
//!
//! Glommio's DMA writes only take its own `DmaBuffer`s, which cannot borrow other memory: this
//! thread is what lets the flusher write without copying. A single thread writes one chunk at a
//! time; large chunks are split by the block layer into several requests in flight.

use std::collections::VecDeque;
use std::fs::File as StdFile;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Result, StoreError};

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
    pub file: Arc<StdFile>,
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
    closed: bool,
    /// The last mark reached with every job before it successful.
    mark: u64,
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
        Poll::Pending
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.sh.lock().closed = true;
        self.sh.work.notify_one();
    }
}

fn run(sh: &Shared) {
    loop {
        let job = {
            let mut g = sh.lock();
            loop {
                if let Some(j) = g.queue.pop_front() {
                    break j;
                }
                if g.closed {
                    return;
                }
                g = sh.work.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        };
        let failed = sh.lock().error.is_some();
        // After a failure the store is failing: later jobs are skipped, not run.
        let r = match &job {
            _ if failed => Ok(()),
            Job::File(j) => run_op(j),
            Job::Mark(_) => Ok(()),
        };
        let waker = {
            let mut g = sh.lock();
            g.done += 1;
            match (r, &job) {
                (Err(e), _) if g.error.is_none() => g.error = Some(e),
                (Ok(()), Job::Mark(v)) if g.error.is_none() => g.mark = g.mark.max(*v),
                _ => {}
            }
            g.waker.take()
        };
        // The job's memory goes back (to the arena's pool) before the waiter runs.
        drop(job);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

fn run_op(job: &WriteJob) -> Result<()> {
    match &job.op {
        Op::Write { pos, src } => write_all(job, *pos, (**src).as_ref()),
        Op::Sync => job
            .file
            .sync_data()
            .map_err(|e| StoreError::io("fdatasync", &**job.path, None, e)),
    }
}

fn write_all(job: &WriteJob, pos: u64, buf: &[u8]) -> Result<()> {
    let fd = job.file.as_raw_fd();
    let mut done = 0usize;
    while done < buf.len() {
        let at = pos + done as u64;
        let rest = &buf[done..];
        // SAFETY: `rest` is a live, initialized slice borrowed from the job's source for the
        // duration of the call (the job owns it and outlives the call), and nothing writes to
        // that memory meanwhile (frozen arena memory, or a buffer the job owns); pwrite only
        // reads it. `fd` is owned by `job.file`, which is alive for the call.
        let n = unsafe {
            libc::pwrite(
                fd,
                rest.as_ptr() as *const libc::c_void,
                rest.len(),
                at as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(StoreError::io("write", &**job.path, Some(at), e));
        }
        if n == 0 {
            return Err(StoreError::io(
                "write",
                &**job.path,
                Some(at),
                std::io::Error::new(std::io::ErrorKind::WriteZero, "pwrite wrote nothing"),
            ));
        }
        done += n as usize;
    }
    Ok(())
}
