//! The device: what the store's files and directories are made of. [`Device`] and [`DevFile`]
//! are plain, blocking file-system operations; the I/O engines (glommio's DMA for the shard's
//! own reads and writes, the writer thread's vectored writes, the reader threads' reads) drive
//! a device and never touch the file system themselves. [`OsDevice`] is the real disk;
//! [`crate::fault::FaultDisk`] wraps it with injected faults and power cuts for tests.

use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

/// Free and total bytes of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub avail: u64,
    pub total: u64,
}

/// One open file of a device. Positions and lengths are whatever the caller gives (the store
/// keeps them block-aligned for direct I/O).
pub trait DevFile: Send + Sync {
    /// Writes the buffers one after the other at `pos`; returns how many bytes were written
    /// (possibly fewer than all: a short write).
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> std::io::Result<usize>;
    /// Reads into `buf` at `pos`; returns how many bytes were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize>;
    fn sync_data(&self) -> std::io::Result<()>;
    /// Allocates blocks up to `size` (the file grows to `size` if smaller).
    fn allocate(&self, size: u64) -> std::io::Result<()>;
    fn set_len(&self, size: u64) -> std::io::Result<()>;
    fn len(&self) -> std::io::Result<u64>;
    fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The file system operations of the store.
pub trait Device: Send + Sync {
    /// Opens `path` for reading and writing (direct I/O where the device has it), creating it
    /// when `create`.
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn DevFile>>;
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()>;
    /// Names of the entries of `dir`.
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    fn space(&self, dir: &Path) -> std::io::Result<Space>;
    fn mtime_ms(&self, path: &Path) -> std::io::Result<i64>;
    /// Whether this is the real disk, which glommio's DMA engine may drive directly.
    fn is_os(&self) -> bool {
        false
    }
}

/// The real disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsDevice;

/// A file of the real disk.
pub struct OsFile(pub std::fs::File);

impl DevFile for OsFile {
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> std::io::Result<usize> {
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: every iovec points into a live buffer borrowed for the whole call, with its
        // exact length; pwritev only reads them. `iov` outlives the call and the descriptor is
        // owned by `self.0`, open for the call.
        let n = unsafe {
            libc::pwritev(
                self.0.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                pos as libc::off_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, pos)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }

    fn allocate(&self, size: u64) -> std::io::Result<()> {
        // SAFETY: fallocate takes a descriptor open for the call and plain integers.
        let rc = unsafe { libc::fallocate(self.0.as_raw_fd(), 0, 0, size as libc::off_t) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn set_len(&self, size: u64) -> std::io::Result<()> {
        self.0.set_len(size)
    }

    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Device for OsDevice {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn DevFile>> {
        let open = |flags: i32| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .custom_flags(flags)
                .open(path)
        };
        // Direct I/O where the file system has it (not on tmpfs, for one).
        let f = match open(libc::O_DIRECT) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0),
            r => r,
        }?;
        Ok(Arc::new(OsFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn space(&self, dir: &Path) -> std::io::Result<Space> {
        statvfs(dir)
    }

    fn mtime_ms(&self, path: &Path) -> std::io::Result<i64> {
        let t = std::fs::metadata(path)?.modified()?;
        Ok(t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    fn is_os(&self) -> bool {
        true
    }
}

fn statvfs(dir: &Path) -> std::io::Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `statvfs` is plain old data, so the all-zero value is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `st` is a valid,
    // exclusive pointer for the call's duration.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok(Space {
        avail: st.f_bavail as u64 * unit,
        total: st.f_blocks as u64 * unit,
    })
}
