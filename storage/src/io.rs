//! The narrow seam between the store and the runtime's disk I/O.
//!
//! Everything the store does to files goes through [`File`] (O_DIRECT file: aligned reads and
//! writes, fdatasync, pre-allocation) and the few directory helpers below, so that glommio could
//! be replaced without touching the store's logic. Errors name the operation, file and offset.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

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

/// A file opened for direct I/O, read and write.
pub struct File {
    inner: DmaFile,
    path: PathBuf,
    /// A duplicate of the descriptor for the disk writer thread (made on first use).
    std: std::cell::OnceCell<(std::sync::Arc<std::fs::File>, std::sync::Arc<PathBuf>)>,
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

impl File {
    /// Opens `path` read+write with O_DIRECT, creating it when `create`.
    pub async fn open(path: &Path, create: bool) -> Result<File> {
        let inner = gio(OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await)
        .map_err(|e| StoreError::io("open", path, None, e))?;
        Ok(File {
            inner,
            path: path.to_path_buf(),
            std: std::cell::OnceCell::new(),
        })
    }

    /// The descriptor (a duplicate, O_DIRECT like this one) and path for the disk writer thread.
    pub fn writer_handle(
        &self,
    ) -> Result<(std::sync::Arc<std::fs::File>, std::sync::Arc<PathBuf>)> {
        use std::os::unix::io::{AsRawFd, FromRawFd};
        if let Some(h) = self.std.get() {
            return Ok(h.clone());
        }
        // SAFETY: `dup` takes any descriptor number; the one passed is open while `self` is.
        let fd = unsafe { libc::fcntl(self.inner.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(StoreError::io(
                "dup",
                &self.path,
                None,
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just returned by fcntl(F_DUPFD_CLOEXEC): open, and owned by nothing
        // else, so the `File` may own (and eventually close) it.
        let f = unsafe { std::fs::File::from_raw_fd(fd) };
        let h = (
            std::sync::Arc::new(f),
            std::sync::Arc::new(self.path.clone()),
        );
        Ok(self.std.get_or_init(|| h).clone())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An aligned buffer of `size` bytes (a multiple of [`BLOCK`]), zero-filled.
    pub fn alloc(&self, size: usize) -> IoBuf {
        debug_assert_eq!(size as u64 % BLOCK, 0);
        let mut b = self.inner.alloc_dma_buffer(size);
        b.as_bytes_mut().fill(0);
        b
    }

    /// Writes the whole buffer at `pos` (both block-aligned).
    pub async fn write_at(&self, buf: IoBuf, pos: u64) -> Result<()> {
        debug_assert_eq!(pos % BLOCK, 0);
        let len = buf.len();
        let n = gio(self.inner.write_at(buf, pos).await)
            .map_err(|e| StoreError::io("write", &self.path, Some(pos), e))?;
        if n != len {
            return Err(StoreError::io(
                "write",
                &self.path,
                Some(pos),
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short write: {n} of {len} bytes"),
                ),
            ));
        }
        Ok(())
    }

    /// Writes the whole shared buffer at `pos`; the caller gets the buffer back for reuse.
    pub async fn write_rc_at(&self, buf: Rc<IoBuf>, pos: u64) -> Result<()> {
        debug_assert_eq!(pos % BLOCK, 0);
        let len = buf.len();
        let n = gio(self.inner.write_rc_at(buf, pos).await)
            .map_err(|e| StoreError::io("write", &self.path, Some(pos), e))?;
        if n != len {
            return Err(StoreError::io(
                "write",
                &self.path,
                Some(pos),
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short write: {n} of {len} bytes"),
                ),
            ));
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `pos` (any alignment; fewer at end of file) into fresh memory.
    pub async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes> {
        let r = gio(self.inner.read_at(pos, len).await)
            .map_err(|e| StoreError::io("read", &self.path, Some(pos), e))?;
        Ok(Bytes::copy_from_slice(&r))
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
        gio(self.inner.fdatasync().await)
            .map_err(|e| StoreError::io("fdatasync", &self.path, None, e))
    }

    /// Allocates blocks up to `size` (the file size becomes `size`).
    pub async fn pre_allocate(&self, size: u64) -> Result<()> {
        gio(self.inner.pre_allocate(size, false).await)
            .map_err(|e| StoreError::io("fallocate", &self.path, Some(size), e))
    }

    pub async fn truncate(&self, size: u64) -> Result<()> {
        gio(self.inner.truncate(size).await)
            .map_err(|e| StoreError::io("truncate", &self.path, Some(size), e))
    }

    pub async fn size(&self) -> Result<u64> {
        gio(self.inner.file_size().await).map_err(|e| StoreError::io("stat", &self.path, None, e))
    }

    pub async fn close(self) -> Result<()> {
        let path = self.path;
        gio(self.inner.close().await).map_err(|e| StoreError::io("close", &path, None, e))
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
/// poll queues, as here). So the store opens a non-empty file first.
pub async fn probe_device(dir: &Path) -> Result<()> {
    let path = dir.join(".io-probe");
    std::fs::write(&path, vec![0u8; BLOCK as usize])
        .map_err(|e| StoreError::io("write", &path, None, e))?;
    let f = File::open(&path, false).await?;
    let r = f.read_exact_at(0, BLOCK as usize).await;
    f.close().await?;
    remove_file(&path)?;
    r.map(|_| ())
}

pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("mkdir", dir, None, e))
}

/// Names of the entries of `dir` (empty when `dir` does not exist).
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("readdir", dir, None, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io("readdir", dir, None, e))?;
        if let Some(name) = entry.file_name().to_str() {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| StoreError::io("rename", from, None, e))
}

pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("unlink", path, None, e)),
    }
}

pub fn remove_dir_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("rmdir", path, None, e)),
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Makes directory entries (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("fsync dir", dir, None, e))
}

/// Fraction of the file system holding `dir` that is in use (0.0 ..= 1.0).
pub fn disk_used_ratio(dir: &Path) -> Result<f64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| StoreError::io("statvfs", dir, None, std::io::Error::other(e)))?;
    // SAFETY: `statvfs` is plain old data, so the all-zero value is valid; `c` is a NUL-terminated
    // path that outlives the call, and `st` is a valid, exclusive pointer for the call's duration.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(StoreError::io(
            "statvfs",
            dir,
            None,
            std::io::Error::last_os_error(),
        ));
    }
    let total = st.f_blocks as f64;
    if total == 0.0 {
        return Ok(0.0);
    }
    Ok((total - st.f_bavail as f64) / total)
}

/// Modification time of `path` in ms since the epoch.
pub fn mtime_ms(path: &Path) -> Result<i64> {
    let m = std::fs::metadata(path).map_err(|e| StoreError::io("stat", path, None, e))?;
    let t = m
        .modified()
        .map_err(|e| StoreError::io("stat", path, None, e))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}
