//! Cold commit-log reads without a copy: `pread(2)` on the segments' O_DIRECT descriptors, run by
//! the store's reader threads, into block-aligned buffers that become the records' `Bytes`
//! (glommio's DMA reads return its own buffers, which cannot be handed out as `Bytes` since
//! they are not `Send`, so they would have to be copied).
//!
//! Buffers are recycled: when the last `Bytes` of a read is dropped (on whatever thread), its
//! buffer goes back to a small pool (64 buffers, 32 MiB at most), so steady reading neither
//! allocates nor faults in fresh pages. Reads are submitted from the shard's thread; the future
//! resolves when a reader thread has finished it. Several threads serve the queue, so the disk sees several reads at once.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::io::{read_full_at, AlignedBuf, DevFile};

/// Reader threads per store.
const THREADS: usize = 2;
/// Buffers are allocated in multiples of this.
const BUF_UNIT: usize = 64 << 10;
/// Buffers kept for reuse at most ...
const POOL_MAX: usize = 64;
/// ... and bytes of them at most.
const POOL_MAX_BYTES: usize = 32 << 20;

type Pool = Arc<Mutex<Vec<AlignedBuf>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Slot {
    result: Option<Result<Bytes>>,
    waker: Option<Waker>,
}

struct Job {
    file: Arc<dyn DevFile>,
    path: Arc<PathBuf>,
    pos: u64,
    len: usize,
    slot: Arc<Mutex<Slot>>,
}

/// The first `len` bytes of a pooled buffer; returns the buffer to the pool when dropped.
struct Pooled {
    buf: Option<AlignedBuf>,
    len: usize,
    pool: Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        match &self.buf {
            Some(b) => &b.as_ref()[..self.len],
            None => &[],
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            let mut p = lock(&self.pool);
            let pooled: usize = p.iter().map(|x| x.as_ref().len()).sum();
            if p.len() < POOL_MAX && pooled + b.as_ref().len() <= POOL_MAX_BYTES {
                p.push(b);
            }
        }
    }
}

pub struct Reader {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    #[cfg_attr(not(test), allow(dead_code))] // inspected by the tests
    pool: Pool,
}

impl Reader {
    pub fn start(name: &str) -> Result<Reader> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let pool: Pool = Arc::default();
        for i in 0..THREADS {
            let rx = rx.clone();
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    let job = match lock(&rx).recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    };
                    let r = read(&job, &pool);
                    let mut s = lock(&job.slot);
                    s.result = Some(r);
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                })
                .map_err(|e| StoreError::io("spawn reader thread", name, None, e))?;
        }
        Ok(Reader {
            tx: Mutex::new(Some(tx)),
            pool,
        })
    }

    /// Reads exactly `len` bytes at `pos` (both block-aligned) of `file`.
    pub async fn read(
        &self,
        file: Arc<dyn DevFile>,
        path: Arc<PathBuf>,
        pos: u64,
        len: usize,
    ) -> Result<Bytes> {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let job = Job {
            file,
            path: path.clone(),
            pos,
            len,
            slot: slot.clone(),
        };
        let sent = match &*lock(&self.tx) {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StoreError::Closed);
        }
        std::future::poll_fn(|cx| {
            let mut s = lock(&slot);
            match s.result.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    #[cfg(test)]
    fn pooled(&self) -> usize {
        lock(&self.pool).len()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Closing the channel ends the threads once the reads queued are done.
        lock(&self.tx).take();
    }
}

fn read(job: &Job, pool: &Pool) -> Result<Bytes> {
    let buf = {
        let mut p = lock(pool);
        match p.iter().position(|b| {
            b.as_ref().len() >= job.len && b.as_ref().len() <= 2 * job.len.max(BUF_UNIT)
        }) {
            Some(i) => p.swap_remove(i),
            None => {
                drop(p);
                AlignedBuf::zeroed(job.len.div_ceil(BUF_UNIT).max(1) * BUF_UNIT)
            }
        }
    };
    let mut owner = Pooled {
        buf: Some(buf),
        len: job.len,
        pool: pool.clone(),
    };
    let err = |e: std::io::Error| StoreError::io("read", job.path.as_path(), Some(job.pos), e);
    if let Some(b) = owner.buf.as_mut() {
        let dst = &mut b.as_mut_slice()[..job.len];
        let done = read_full_at(&*job.file, &job.path, job.pos, dst)?;
        if done < job.len {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("short read: {done} of {} bytes", job.len),
            )));
        }
    }
    Ok(Bytes::from_owner(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_and_recycles() {
        let dir = std::env::temp_dir().join(format!("saturn-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let f: Arc<dyn DevFile> = Arc::new(crate::io::OsFile(std::fs::File::open(&path).unwrap()));
        let r = Reader::start("test-reader").unwrap();
        let b =
            futures_lite::future::block_on(r.read(f.clone(), Arc::new(path.clone()), 4096, 8192))
                .unwrap();
        assert_eq!(&b[..], &data[4096..]);
        drop(b);
        assert_eq!(r.pooled(), 1);
        let e = futures_lite::future::block_on(r.read(f, Arc::new(path), 8192, 8192));
        assert!(e.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
