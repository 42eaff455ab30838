//! The one seam between the store and the disk.
//!
//! Every file operation of the store goes through a [`Disk`]: a [`Device`] (the file system,
//! [`OsDevice`] or a test's [`crate::fault::FaultDisk`]) driven by the I/O engines: glommio's
//! DMA engine for the shard's own reads and writes of the real disk ([`File`]), the writer
//! thread ([`crate::writer`]) and the reader threads ([`crate::reader`]), which call the
//! device's [`DevFile`] operations from their threads. On any other device than the real disk
//! a [`File`] calls the device inline. Renames and removals that must survive a power cut go
//! through [`Disk::rename_durable`] and [`Disk::remove_durable`], which fsync the directory.
//! Errors name the operation, file and offset.

mod device;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

pub use device::{DevFile, Device, OsDevice, OsFile, Space};

use crate::error::{Result, StoreError};

/// O_DIRECT block size the store aligns every write to.
pub const BLOCK: u64 = 4096;

pub fn align_down(x: u64) -> u64 {
    x & !(BLOCK - 1)
}

pub fn align_up(x: u64) -> u64 {
    (x + BLOCK - 1) & !(BLOCK - 1)
}

/// A buffer suitable for O_DIRECT writes (block-aligned memory).
pub type IoBuf = DmaBuffer;

/// A device shared by everything of one store (cheap to clone).
#[derive(Clone)]
pub struct Disk(Arc<dyn Device>);

impl Default for Disk {
    fn default() -> Self {
        Disk(Arc::new(OsDevice))
    }
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_os() {
            "Disk(os)"
        } else {
            "Disk(test)"
        })
    }
}

impl Disk {
    pub fn new(dev: Arc<dyn Device>) -> Disk {
        Disk(dev)
    }

    pub fn device(&self) -> &dyn Device {
        &*self.0
    }

    pub fn is_os(&self) -> bool {
        self.0.is_os()
    }

    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.0
            .create_dir_all(dir)
            .map_err(|e| StoreError::io("mkdir", dir, None, e))
    }

    /// Names of the entries of `dir`, sorted (empty when `dir` does not exist).
    pub fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        match self.0.list_dir(dir) {
            Ok(mut v) => {
                v.sort();
                Ok(v)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io("readdir", dir, None, e)),
        }
    }

    /// A rename that is not durable by itself (a later [`Disk::sync_dir`] makes it so).
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.0
            .rename(from, to)
            .map_err(|e| StoreError::io("rename", from, None, e))
    }

    /// Renames, then fsyncs the directories involved: the new name survives a power cut.
    pub fn rename_durable(&self, from: &Path, to: &Path) -> Result<()> {
        self.rename(from, to)?;
        let (a, b) = (parent(from), parent(to));
        self.sync_dir(b)?;
        if a != b {
            self.sync_dir(a)?;
        }
        Ok(())
    }

    /// Removes a file (nothing to do when it is missing); not durable by itself.
    pub fn remove_file(&self, path: &Path) -> Result<()> {
        match self.0.remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("unlink", path, None, e)),
        }
    }

    /// Removes a file and fsyncs its directory: it cannot come back after a power cut.
    pub fn remove_durable(&self, path: &Path) -> Result<()> {
        self.remove_file(path)?;
        self.sync_dir(parent(path))
    }

    pub fn remove_dir_all(&self, path: &Path) -> Result<()> {
        match self.0.remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("rmdir", path, None, e)),
        }
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.0.exists(path)
    }

    /// Makes directory entries (creations, renames, removals) durable.
    pub fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.0
            .sync_dir(dir)
            .map_err(|e| StoreError::io("fsync dir", dir, None, e))
    }

    pub fn space(&self, dir: &Path) -> Result<Space> {
        self.0
            .space(dir)
            .map_err(|e| StoreError::io("statvfs", dir, None, e))
    }

    /// Fraction of the file system holding `dir` that is in use (0.0 ..= 1.0).
    pub fn used_ratio(&self, dir: &Path) -> Result<f64> {
        let s = self.space(dir)?;
        if s.total == 0 {
            return Ok(0.0);
        }
        Ok((s.total - s.avail.min(s.total)) as f64 / s.total as f64)
    }

    /// Modification time of `path` in ms since the epoch.
    pub fn mtime_ms(&self, path: &Path) -> Result<i64> {
        self.0
            .mtime_ms(path)
            .map_err(|e| StoreError::io("stat", path, None, e))
    }

    /// Opens a file for blocking use (outside the shard's executor: the blocking pool).
    pub fn open_blocking(&self, path: &Path, create: bool) -> Result<Arc<dyn DevFile>> {
        self.0
            .open(path, create)
            .map_err(|e| StoreError::io("open", path, None, e))
    }

    /// Writes `bytes` to `path` so that after a power cut `path` holds either its old content
    /// or `bytes`, never a mix: a temporary file written and fdatasynced, renamed over `path`,
    /// the directory fsynced. Blocking.
    pub fn write_file_durable(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = tmp_path(path);
        self.remove_file(&tmp)?;
        let f = self.open_buffered(&tmp)?;
        write_all_at(&*f, &tmp, 0, &[bytes])?;
        f.sync_data()
            .map_err(|e| StoreError::io("fdatasync", &tmp, None, e))?;
        drop(f);
        self.rename_durable(&tmp, path)
    }

    fn open_buffered(&self, path: &Path) -> Result<Arc<dyn DevFile>> {
        if !self.is_os() {
            return self.open_blocking(path, true);
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| StoreError::io("create", path, None, e))?;
        Ok(Arc::new(OsFile(f)))
    }
}

/// Writes `bytes` to `path` durably on the real disk (see [`Disk::write_file_durable`]): for
/// metadata files such as the broker's JSON files.
pub fn write_file_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    Disk::default().write_file_durable(path, bytes)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `bufs`, one after the other, at `pos`: vectored writes until all is written (short
/// writes continue where they stopped; EINTR is retried).
pub fn write_all_at(f: &dyn DevFile, path: &Path, pos: u64, bufs: &[&[u8]]) -> Result<()> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    // Position in `bufs`: buffer index and offset within it.
    let (mut bi, mut off, mut done) = (0usize, 0usize, 0usize);
    let mut iov: Vec<&[u8]> = Vec::with_capacity(bufs.len());
    while done < total {
        iov.clear();
        iov.push(&bufs[bi][off..]);
        iov.extend_from_slice(&bufs[bi + 1..]);
        let at = pos + done as u64;
        let mut n = match f.write_vectored_at(&iov, at) {
            Ok(0) => {
                return Err(StoreError::io(
                    "write",
                    path,
                    Some(at),
                    std::io::Error::new(std::io::ErrorKind::WriteZero, "write wrote nothing"),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io("write", path, Some(at), e)),
        };
        done += n;
        while n > 0 && bi < bufs.len() {
            let left = bufs[bi].len() - off;
            if n >= left {
                n -= left;
                bi += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `pos` (fewer only at end of file); returns how many.
pub fn read_full_at(f: &dyn DevFile, path: &Path, pos: u64, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::io("read", path, Some(pos + done as u64), e)),
        }
    }
    Ok(done)
}

/// Zero-filled, block-aligned heap memory that can be sent to the disk writer thread.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is plain heap memory exclusively owned by this value.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes (`len` > 0) at a [`BLOCK`]-aligned address.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len.max(1), BLOCK as usize)
            .unwrap_or_else(|_| std::alloc::Layout::new::<[u8; 4096]>());
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, layout }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `layout.size()` initialized (zeroed) bytes owned by `self`,
        // borrowed mutably for the lifetime of `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`, shared for the lifetime of `&self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this very layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fn gio<T>(r: glommio::Result<T, ()>) -> std::io::Result<T> {
    r.map_err(std::io::Error::from)
}

/// How a [`File`] reaches its device.
enum Engine {
    /// glommio's DMA engine on the real disk.
    Dma(DmaFile),
    /// The device's own blocking calls, inline (test devices).
    Dev(Arc<dyn DevFile>),
}

/// A file opened for direct I/O, read and write, used from the shard's executor.
pub struct File {
    engine: Engine,
    path: PathBuf,
    /// The file for the writer and reader threads (for the DMA engine a duplicate of its
    /// descriptor, made on first use).
    handle: std::cell::OnceCell<(Arc<dyn DevFile>, Arc<PathBuf>)>,
}

impl File {
    /// Opens `path` read+write with O_DIRECT, creating it when `create`.
    pub async fn open(disk: &Disk, path: &Path, create: bool) -> Result<File> {
        let engine = if disk.is_os() {
            let f = gio(OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .dma_open(path)
                .await)
            .map_err(|e| StoreError::io("open", path, None, e))?;
            Engine::Dma(f)
        } else {
            Engine::Dev(disk.open_blocking(path, create)?)
        };
        Ok(File {
            engine,
            path: path.to_path_buf(),
            handle: std::cell::OnceCell::new(),
        })
    }

    /// The file (for the DMA engine a duplicate descriptor, O_DIRECT like this one) and its
    /// path, for the writer and reader threads.
    pub fn writer_handle(&self) -> Result<(Arc<dyn DevFile>, Arc<PathBuf>)> {
        use std::os::unix::io::{AsRawFd, FromRawFd};
        if let Some(h) = self.handle.get() {
            return Ok(h.clone());
        }
        let dev: Arc<dyn DevFile> = match &self.engine {
            Engine::Dev(d) => d.clone(),
            Engine::Dma(inner) => {
                // SAFETY: fcntl takes any descriptor number; this one is open while `self` is.
                let fd = unsafe { libc::fcntl(inner.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
                if fd < 0 {
                    let e = std::io::Error::last_os_error();
                    return Err(StoreError::io("dup", &self.path, None, e));
                }
                // SAFETY: `fd` was just returned by fcntl(F_DUPFD_CLOEXEC): open, and owned by
                // nothing else, so the `File` may own (and eventually close) it.
                Arc::new(OsFile(unsafe { std::fs::File::from_raw_fd(fd) }))
            }
        };
        let h = (dev, Arc::new(self.path.clone()));
        Ok(self.handle.get_or_init(|| h).clone())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An aligned buffer of `size` bytes (a multiple of [`BLOCK`]), zero-filled.
    pub fn alloc(&self, size: usize) -> IoBuf {
        debug_assert_eq!(size as u64 % BLOCK, 0);
        let mut b = match &self.engine {
            Engine::Dma(inner) => inner.alloc_dma_buffer(size),
            Engine::Dev(_) => glommio::allocate_dma_buffer(size),
        };
        b.as_bytes_mut().fill(0);
        b
    }

    /// Writes the whole buffer at `pos` (both block-aligned).
    pub async fn write_at(&self, buf: IoBuf, pos: u64) -> Result<()> {
        debug_assert_eq!(pos % BLOCK, 0);
        let len = buf.len();
        let n = match &self.engine {
            Engine::Dma(inner) => gio(inner.write_at(buf, pos).await)
                .map_err(|e| StoreError::io("write", &self.path, Some(pos), e))?,
            Engine::Dev(d) => {
                write_all_at(&**d, &self.path, pos, &[buf.as_bytes()])?;
                len
            }
        };
        self.check_len(n, len, pos)
    }

    /// Writes the whole shared buffer at `pos`; the caller gets the buffer back for reuse.
    pub async fn write_rc_at(&self, buf: Rc<IoBuf>, pos: u64) -> Result<()> {
        debug_assert_eq!(pos % BLOCK, 0);
        let len = buf.len();
        let n = match &self.engine {
            Engine::Dma(inner) => gio(inner.write_rc_at(buf, pos).await)
                .map_err(|e| StoreError::io("write", &self.path, Some(pos), e))?,
            Engine::Dev(d) => {
                write_all_at(&**d, &self.path, pos, &[buf.as_bytes()])?;
                len
            }
        };
        self.check_len(n, len, pos)
    }

    fn check_len(&self, n: usize, len: usize, pos: u64) -> Result<()> {
        if n == len {
            return Ok(());
        }
        Err(StoreError::io(
            "write",
            &self.path,
            Some(pos),
            std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {n} of {len} bytes"),
            ),
        ))
    }

    /// Reads up to `len` bytes at `pos` (any alignment; fewer at end of file) into fresh memory.
    pub async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes> {
        match &self.engine {
            Engine::Dma(inner) => {
                let r = gio(inner.read_at(pos, len).await)
                    .map_err(|e| StoreError::io("read", &self.path, Some(pos), e))?;
                Ok(Bytes::copy_from_slice(&r))
            }
            Engine::Dev(d) => {
                let mut v = vec![0u8; len];
                let n = read_full_at(&**d, &self.path, pos, &mut v)?;
                v.truncate(n);
                Ok(Bytes::from(v))
            }
        }
    }

    /// Reads exactly `len` bytes at `pos`, failing on a short read.
    pub async fn read_exact_at(&self, pos: u64, len: usize) -> Result<Bytes> {
        let b = self.read_at(pos, len).await?;
        if b.len() != len {
            return Err(StoreError::io(
                "read",
                &self.path,
                Some(pos),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("short read: {} of {len} bytes", b.len()),
                ),
            ));
        }
        Ok(b)
    }

    pub async fn fdatasync(&self) -> Result<()> {
        match &self.engine {
            Engine::Dma(inner) => gio(inner.fdatasync().await),
            Engine::Dev(d) => d.sync_data(),
        }
        .map_err(|e| StoreError::io("fdatasync", &self.path, None, e))
    }

    /// Allocates blocks up to `size` (the file size becomes `size`).
    pub async fn pre_allocate(&self, size: u64) -> Result<()> {
        match &self.engine {
            Engine::Dma(inner) => gio(inner.pre_allocate(size, false).await),
            Engine::Dev(d) => d.allocate(size),
        }
        .map_err(|e| StoreError::io("fallocate", &self.path, Some(size), e))
    }

    pub async fn truncate(&self, size: u64) -> Result<()> {
        match &self.engine {
            Engine::Dma(inner) => gio(inner.truncate(size).await),
            Engine::Dev(d) => d.set_len(size),
        }
        .map_err(|e| StoreError::io("truncate", &self.path, Some(size), e))
    }

    pub async fn size(&self) -> Result<u64> {
        match &self.engine {
            Engine::Dma(inner) => gio(inner.file_size().await),
            Engine::Dev(d) => d.len(),
        }
        .map_err(|e| StoreError::io("stat", &self.path, None, e))
    }

    pub async fn close(self) -> Result<()> {
        let path = self.path;
        match self.engine {
            Engine::Dma(inner) => {
                gio(inner.close().await).map_err(|e| StoreError::io("close", &path, None, e))
            }
            Engine::Dev(_) => Ok(()),
        }
    }
    /// Writes zeros over `[from, to)` (block-aligned) in chunks of at most `chunk` bytes, with up
    /// to `depth` writes in flight.
    pub async fn zero_range(
        self: &Rc<Self>,
        from: u64,
        to: u64,
        chunk: usize,
        depth: usize,
    ) -> Result<()> {
        debug_assert!(from.is_multiple_of(BLOCK) && to.is_multiple_of(BLOCK));
        let zeros = Rc::new(self.alloc(chunk));
        let mut pos = from;
        let mut inflight = std::collections::VecDeque::new();
        while pos < to {
            let n = (to - pos).min(chunk as u64);
            let f = self.clone();
            let task = if n as usize == chunk {
                let z = zeros.clone();
                glommio::spawn_local(async move { f.write_rc_at(z, pos).await })
            } else {
                let buf = self.alloc(n as usize);
                glommio::spawn_local(async move { f.write_at(buf, pos).await })
            };
            inflight.push_back(task);
            pos += n;
            if inflight.len() >= depth {
                if let Some(t) = inflight.pop_front() {
                    t.await?;
                }
            }
        }
        while let Some(t) = inflight.pop_front() {
            t.await?;
        }
        Ok(())
    }
}

/// Makes glommio decide correctly whether the disk under `dir` supports polled I/O.
///
/// glommio probes a device once per process, on the first direct-I/O file opened on it, by
/// reading its first block; an empty file makes that read succeed trivially and the device is
/// then wrongly taken as pollable (every later read fails with EOPNOTSUPP on disks without
/// poll queues, as here). So the store opens a non-empty file first. Nothing to do on a device
/// glommio does not drive.
pub async fn probe_device(disk: &Disk, dir: &Path) -> Result<()> {
    if !disk.is_os() {
        return Ok(());
    }
    let path = dir.join(".io-probe");
    std::fs::write(&path, vec![0u8; BLOCK as usize])
        .map_err(|e| StoreError::io("write", &path, None, e))?;
    let f = File::open(disk, &path, false).await?;
    let r = f.read_exact_at(0, BLOCK as usize).await;
    f.close().await?;
    disk.remove_file(&path)?;
    r.map(|_| ())
}
