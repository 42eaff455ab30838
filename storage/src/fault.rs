//! A fault-injecting [`Device`] for tests: real files under a directory of the real disk,
//! with seeded faults and power cuts.
//!
//! * **Errors**: the Nth operation of a kind (or every one from the Nth on) fails with an
//!   errno (EIO, ENOSPC, ...): [`FaultDisk::fail`].
//! * **Short writes**: one write in N (chosen by the seeded generator) writes only a prefix.
//! * **Slow fsync**: every fdatasync and directory fsync sleeps first.
//! * **Free space**: a fake amount of free space that file growth consumes (ENOSPC when it is
//!   exhausted) and removals give back.
//! * **Power cut**: [`FaultDisk::cut_at_sync`] makes the Nth sync (fdatasync or directory
//!   fsync) never happen: from then on every operation fails with EIO (the machine is off).
//!   [`FaultDisk::power_cut`] then puts the files in the state a real power loss could leave:
//!   every write not covered by a later fdatasync of its file is undone (old bytes back, file
//!   length back to the last synced one), and every creation, rename and removal not followed
//!   by an fsync of its directory (the destination's, for a rename) is undone, newest first.
//!   [`FaultDisk::power_on`] boots again; files opened before the cut stay dead.
//!
//! Data is written through the page cache and never really fsynced (the model decides what a
//! power cut keeps), so tests run fast. Directory creation is taken as durable at once.

use std::collections::HashMap;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::io::{DevFile, Device, OsDevice, Space};

/// Kinds of operations faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    Write,
    Read,
    /// fdatasync of a file.
    Sync,
    /// fsync of a directory.
    SyncDir,
    Allocate,
    Create,
    Rename,
    Remove,
}

/// Size of the file system while its free space is faked.
const FAKE_TOTAL: u64 = 1 << 40;

struct Rule {
    op: FaultOp,
    nth: u64,
    errno: i32,
    sticky: bool,
}

/// One file as the device knows it (shared by every open of its path).
struct Node {
    file: std::fs::File,
    epoch: u64,
    undo: Mutex<Undo>,
}

#[derive(Default)]
struct Undo {
    /// Writes since the last fdatasync: position and the bytes they replaced.
    writes: Vec<(u64, Vec<u8>)>,
    synced_len: u64,
}

impl Node {
    fn undo(&self) -> MutexGuard<'_, Undo> {
        self.undo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the file back as of its last fdatasync.
    fn revert(&self) -> std::io::Result<()> {
        let mut u = self.undo();
        for (pos, old) in u.writes.drain(..).rev() {
            self.file.write_all_at(&old, pos)?;
        }
        if self.file.metadata()?.len() != u.synced_len {
            self.file.set_len(u.synced_len)?;
        }
        Ok(())
    }
}

/// A directory change not yet made durable by an fsync of `dir`.
struct DirOp {
    dir: PathBuf,
    kind: DirKind,
}

enum DirKind {
    Create(PathBuf),
    /// A rename; the file it replaced, kept aside.
    Rename {
        from: PathBuf,
        to: PathBuf,
        displaced: Option<PathBuf>,
    },
    /// A removal: the file (or directory tree), kept aside.
    Remove {
        path: PathBuf,
        kept: PathBuf,
    },
}

#[derive(Default)]
struct St {
    rng: u64,
    counts: HashMap<FaultOp, u64>,
    syncs: u64,
    rules: Vec<Rule>,
    short_write_one_in: u32,
    slow_sync: Duration,
    cut_at_sync: Option<u64>,
    dead: bool,
    epoch: u64,
    nodes: HashMap<PathBuf, Arc<Node>>,
    /// Every file opened since the last power cut (also those renamed or removed since).
    opened: Vec<Arc<Node>>,
    pending: Vec<DirOp>,
    free_bytes: Option<u64>,
    kept_seq: u64,
}

struct Inner {
    st: Mutex<St>,
    /// Where removed and replaced files are kept until their removal is durable.
    attic: PathBuf,
}

/// The fault-injecting device (cheap to clone; clones share everything).
#[derive(Clone)]
pub struct FaultDisk {
    sh: Arc<Inner>,
    /// The boot a store's handle belongs to ([`FaultDisk::disk`]): after a power cut, what the
    /// store of the earlier boot still does (its threads) fails, as if its process had died.
    boot: Option<u64>,
}

fn errno(e: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(e)
}

impl FaultDisk {
    /// A device over the real disk, seeded; removed files are kept under `attic` (created; it
    /// must be outside the store's directory, on the same file system).
    pub fn new(seed: u64, attic: &Path) -> std::io::Result<FaultDisk> {
        std::fs::create_dir_all(attic)?;
        let st = St {
            rng: seed.max(1),
            ..St::default()
        };
        Ok(FaultDisk {
            sh: Arc::new(Inner {
                st: Mutex::new(st),
                attic: attic.to_path_buf(),
            }),
            boot: None,
        })
    }

    /// This device as the store's [`crate::io::Disk`], for a store of the current boot.
    pub fn disk(&self) -> crate::io::Disk {
        let boot = Some(self.st().epoch);
        crate::io::Disk::new(Arc::new(FaultDisk {
            sh: self.sh.clone(),
            boot,
        }))
    }

    /// EIO while the power is off, or for a handle of an earlier boot.
    fn alive(&self, st: &St) -> std::io::Result<()> {
        if st.dead || self.boot.is_some_and(|b| b != st.epoch) {
            return Err(errno(libc::EIO));
        }
        Ok(())
    }

    fn st(&self) -> MutexGuard<'_, St> {
        self.sh.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `nth` next operation of kind `op` (1 = the next one) fails with `errno`; with
    /// `sticky`, every later one too.
    pub fn fail(&self, op: FaultOp, nth: u64, errno: i32, sticky: bool) {
        let mut st = self.st();
        let nth = st.counts.get(&op).copied().unwrap_or(0) + nth;
        st.rules.push(Rule {
            op,
            nth,
            errno,
            sticky,
        });
    }

    /// Removes every fault rule (power cuts included).
    pub fn clear_faults(&self) {
        let mut st = self.st();
        st.rules.clear();
        st.cut_at_sync = None;
    }

    /// One write in `n` (seeded choice) is short; 0 turns short writes off.
    pub fn short_writes(&self, one_in: u32) {
        self.st().short_write_one_in = one_in;
    }

    pub fn slow_sync(&self, d: Duration) {
        self.st().slow_sync = d;
    }

    /// Fakes the free space of the file system (None: the real one); the fake file system's
    /// size is 1 TiB.
    pub fn set_free_bytes(&self, free: Option<u64>) {
        self.st().free_bytes = free;
    }

    /// Syncs (fdatasyncs and directory fsyncs) done since the device was made.
    pub fn syncs(&self) -> u64 {
        self.st().syncs
    }

    /// The power goes off at the `n`th sync from now (1 = the next): that sync and everything
    /// after it fail with EIO.
    pub fn cut_at_sync(&self, n: u64) {
        let mut st = self.st();
        st.cut_at_sync = Some(st.syncs + n);
    }

    /// Whether the power is off (a cut happened and [`FaultDisk::power_cut`] was not run yet).
    pub fn is_dead(&self) -> bool {
        self.st().dead
    }

    /// Cuts the power now (if a cut did not happen already): undoes every write not
    /// fdatasynced and every directory change not fsynced, newest first. The device stays off
    /// (every operation fails with EIO) until [`FaultDisk::power_on`]; files opened before the
    /// cut stay dead after it too.
    pub fn power_cut(&self) -> std::io::Result<()> {
        let mut st = self.st();
        st.dead = true;
        for n in std::mem::take(&mut st.opened) {
            n.revert()?;
        }
        for op in std::mem::take(&mut st.pending).into_iter().rev() {
            undo_dir_op(op)?;
        }
        st.nodes.clear();
        st.rules.clear();
        st.cut_at_sync = None;
        st.epoch += 1;
        Ok(())
    }

    /// Turns the power back on after [`FaultDisk::power_cut`] (a new boot, no faults).
    pub fn power_on(&self) {
        self.st().dead = false;
    }

    /// Counts an operation and applies the rules: the error it fails with, if any.
    fn check(&self, st: &mut St, op: FaultOp) -> std::io::Result<()> {
        self.alive(st)?;
        let n = {
            let c = st.counts.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        if matches!(op, FaultOp::Sync | FaultOp::SyncDir) {
            st.syncs += 1;
            if st.cut_at_sync == Some(st.syncs) {
                st.dead = true;
                return Err(errno(libc::EIO));
            }
        }
        let hit = st
            .rules
            .iter()
            .find(|r| r.op == op && (r.nth == n || (r.sticky && n >= r.nth)));
        match hit {
            Some(r) => Err(errno(r.errno)),
            None => Ok(()),
        }
    }

    fn next_rand(st: &mut St) -> u64 {
        // xorshift64*
        let mut x = st.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        st.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn keep_aside(&self, st: &mut St, path: &Path) -> std::io::Result<PathBuf> {
        st.kept_seq += 1;
        let kept = self
            .sh
            .attic
            .join(format!("kept-{}-{}", st.epoch, st.kept_seq));
        std::fs::rename(path, &kept)?;
        Ok(kept)
    }

    fn consume_space(st: &mut St, grow: u64) -> std::io::Result<()> {
        if let Some(free) = st.free_bytes.as_mut() {
            if *free < grow {
                return Err(errno(libc::ENOSPC));
            }
            *free -= grow;
        }
        Ok(())
    }
}

fn undo_dir_op(op: DirOp) -> std::io::Result<()> {
    match op.kind {
        DirKind::Create(path) => {
            if path.exists() {
                std::fs::remove_file(&path)?;
            }
        }
        DirKind::Rename {
            from,
            to,
            displaced,
        } => {
            if to.exists() && !from.exists() {
                std::fs::rename(&to, &from)?;
            }
            if let Some(d) = displaced {
                if d.exists() && !to.exists() {
                    std::fs::rename(&d, &to)?;
                }
            }
        }
        DirKind::Remove { path, kept } => {
            if kept.exists() && !path.exists() {
                std::fs::rename(&kept, &path)?;
            }
        }
    }
    Ok(())
}

fn dir_of(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A file opened through a [`FaultDisk`].
struct FaultFile {
    disk: FaultDisk,
    node: Arc<Node>,
}

impl FaultFile {
    fn check(&self, op: FaultOp) -> std::io::Result<MutexGuard<'_, St>> {
        let mut st = self.disk.st();
        if self.node.epoch != st.epoch {
            return Err(errno(libc::EIO));
        }
        self.disk.check(&mut st, op)?;
        Ok(st)
    }
}

impl DevFile for FaultFile {
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> std::io::Result<usize> {
        let mut st = self.check(FaultOp::Write)?;
        let mut data: Vec<u8> = bufs.concat();
        if st.short_write_one_in > 0 && data.len() > 1 {
            let r = FaultDisk::next_rand(&mut st);
            if r.is_multiple_of(st.short_write_one_in as u64) {
                data.truncate(1 + (r >> 32) as usize % (data.len() - 1));
            }
        }
        let len = self.node.file.metadata()?.len();
        let end = pos + data.len() as u64;
        FaultDisk::consume_space(&mut st, end.saturating_sub(len))?;
        let mut old = vec![0u8; len.saturating_sub(pos).min(data.len() as u64) as usize];
        self.node.file.read_exact_at(&mut old, pos)?;
        self.node.undo().writes.push((pos, old));
        self.node.file.write_all_at(&data, pos)?;
        Ok(data.len())
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        let _st = self.check(FaultOp::Read)?;
        self.node.file.read_at(buf, pos)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let slow = self.disk.st().slow_sync;
        if !slow.is_zero() {
            std::thread::sleep(slow);
        }
        let _st = self.check(FaultOp::Sync)?;
        let len = self.node.file.metadata()?.len();
        let mut u = self.node.undo();
        u.writes.clear();
        u.synced_len = len;
        Ok(())
    }

    fn allocate(&self, size: u64) -> std::io::Result<()> {
        let mut st = self.check(FaultOp::Allocate)?;
        let len = self.node.file.metadata()?.len();
        if size > len {
            FaultDisk::consume_space(&mut st, size - len)?;
            self.node.file.set_len(size)?;
        }
        Ok(())
    }

    fn set_len(&self, size: u64) -> std::io::Result<()> {
        let _st = self.check(FaultOp::Write)?;
        let len = self.node.file.metadata()?.len();
        if size < len {
            // The cut-off bytes come back if the truncation is not synced.
            let mut old = vec![0u8; (len - size) as usize];
            self.node.file.read_exact_at(&mut old, size)?;
            self.node.undo().writes.push((size, old));
        }
        self.node.file.set_len(size)
    }

    fn len(&self) -> std::io::Result<u64> {
        let _st = self.check(FaultOp::Read)?;
        Ok(self.node.file.metadata()?.len())
    }
}

impl Device for FaultDisk {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn DevFile>> {
        let mut st = self.st();
        self.alive(&st)?;
        let node = match st.nodes.get(path) {
            Some(n) => n.clone(),
            None => {
                let exists = path.exists();
                if !exists && create {
                    self.check(&mut st, FaultOp::Create)?;
                    st.pending.push(DirOp {
                        dir: dir_of(path),
                        kind: DirKind::Create(path.to_path_buf()),
                    });
                }
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(create)
                    .open(path)?;
                let synced_len = file.metadata()?.len();
                let node = Arc::new(Node {
                    file,
                    epoch: st.epoch,
                    undo: Mutex::new(Undo {
                        writes: Vec::new(),
                        synced_len,
                    }),
                });
                st.nodes.insert(path.to_path_buf(), node.clone());
                st.opened.push(node.clone());
                node
            }
        };
        Ok(Arc::new(FaultFile {
            disk: self.clone(),
            node,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut st = self.st();
        self.check(&mut st, FaultOp::Rename)?;
        if !from.exists() {
            return Err(errno(libc::ENOENT));
        }
        let displaced = if to.exists() {
            st.nodes.remove(to);
            Some(self.keep_aside(&mut st, to)?)
        } else {
            None
        };
        std::fs::rename(from, to)?;
        if let Some(n) = st.nodes.remove(from) {
            st.nodes.insert(to.to_path_buf(), n);
        }
        st.pending.push(DirOp {
            dir: dir_of(to),
            kind: DirKind::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                displaced,
            },
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut st = self.st();
        self.check(&mut st, FaultOp::Remove)?;
        let len = std::fs::metadata(path)?.len();
        let kept = self.keep_aside(&mut st, path)?;
        st.nodes.remove(path);
        if let Some(f) = st.free_bytes.as_mut() {
            *f += len;
        }
        st.pending.push(DirOp {
            dir: dir_of(path),
            kind: DirKind::Remove {
                path: path.to_path_buf(),
                kept,
            },
        });
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        let mut st = self.st();
        self.check(&mut st, FaultOp::Remove)?;
        if !path.exists() {
            return Err(errno(libc::ENOENT));
        }
        let kept = self.keep_aside(&mut st, path)?;
        st.nodes.retain(|p, _| !p.starts_with(path));
        st.pending.push(DirOp {
            dir: dir_of(path),
            kind: DirKind::Remove {
                path: path.to_path_buf(),
                kept,
            },
        });
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.alive(&self.st())?;
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.alive(&self.st())?;
        OsDevice.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let slow = self.st().slow_sync;
        if !slow.is_zero() {
            std::thread::sleep(slow);
        }
        let mut st = self.st();
        self.check(&mut st, FaultOp::SyncDir)?;
        let (done, keep): (Vec<DirOp>, Vec<DirOp>) = std::mem::take(&mut st.pending)
            .into_iter()
            .partition(|o| o.dir == dir);
        st.pending = keep;
        drop(st);
        // Removals are final now: what was kept aside goes.
        for op in done {
            let kept = match op.kind {
                DirKind::Remove { kept, .. } => Some(kept),
                DirKind::Rename { displaced, .. } => displaced,
                DirKind::Create(_) => None,
            };
            if let Some(k) = kept {
                let _ = std::fs::remove_file(&k).or_else(|_| std::fs::remove_dir_all(&k));
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn space(&self, dir: &Path) -> std::io::Result<Space> {
        match self.st().free_bytes {
            Some(avail) => Ok(Space {
                avail,
                total: avail.max(FAKE_TOTAL),
            }),
            None => OsDevice.space(dir),
        }
    }

    fn mtime_ms(&self, path: &Path) -> std::io::Result<i64> {
        OsDevice.mtime_ms(path)
    }
}
