//! The state every part of the store shares: the commit log, the consume queues, the
//! durability and failure flags, and the handles of the I/O engines ([`Shared`]), with the
//! helpers the reading and background parts use on it (consume-queue files and entries,
//! publishing the durable offset, marking the store failed or full).
//!
//! Below the store's parts (`store`, `flusher`, `checkpointer`, `read`, `recovery`,
//! `retention`) and above the data structures (`commitlog`, `cq`, `seg_index`, `io`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::commitlog::CommitLog;
use crate::config::{FlushMode, StoreConfig};
use crate::cq::{ConsumeQueue, CqEntry, CQ_ENTRY, CQ_READ_AHEAD};
use crate::error::{Result, StoreError};
use crate::io::File;
use crate::notify::Notify;
use crate::offsets::{LogOffset, QueueOffset};
use crate::types::RecoveryReport;
use crate::writer::Writer;

pub(crate) type QueueKey = (String, i32);

/// A queue key that may borrow its topic: queues are looked up with `&(topic, id)` as
/// `&dyn QueueKeyRef`, without allocating a `String` per appended record.
pub(crate) trait QueueKeyRef {
    fn parts(&self) -> (&str, i32);
}

impl QueueKeyRef for QueueKey {
    #[inline]
    fn parts(&self) -> (&str, i32) {
        (&self.0, self.1)
    }
}

impl QueueKeyRef for (&str, i32) {
    #[inline]
    fn parts(&self) -> (&str, i32) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn QueueKeyRef + 'a> for QueueKey {
    #[inline]
    fn borrow(&self) -> &(dyn QueueKeyRef + 'a) {
        self
    }
}

/// Hashes as `(String, i32)` does (the same field hashes in the same order), as `Borrow`
/// requires.
impl std::hash::Hash for dyn QueueKeyRef + '_ {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (topic, id) = self.parts();
        topic.hash(h);
        id.hash(h);
    }
}

impl PartialEq for dyn QueueKeyRef + '_ {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn QueueKeyRef + '_ {}

pub(crate) struct State {
    pub cfg: StoreConfig,
    pub cl: CommitLog,
    pub queues: HashMap<QueueKey, ConsumeQueue>,
    /// SYNC_FLUSH: (commit-log end, queue, entries) made visible once `end` is durable.
    /// Consecutive records of one queue share an entry.
    pub pending_visible: VecDeque<(LogOffset, Rc<QueueKey>, QueueOffset)>,
    /// Replication gate (a SYNC_MASTER's): records are visible only below this offset (what a
    /// slave has), in addition to the flush mode's bound. `None`: no gate.
    pub replica_gate: Option<LogOffset>,
    /// A slave's store: takes only its master's log ([`crate::Store::append_replica`]).
    pub replica_only: bool,
    /// Set when a disk write or sync failed: the store is read-only until a restart.
    pub failed: Option<String>,
    /// Set while a write or allocation met ENOSPC (cleared by the next successful flush and
    /// checkpoint) ...
    pub full_enospc: Option<String>,
    /// ... and while free space is below `disk_min_free_bytes`: appends are refused.
    pub full_floor: Option<String>,
    /// Offset of the last checkpoint written: retention deletes only segments below it (the
    /// consume-queue entries of records beyond it can only be rebuilt from the commit log).
    pub checkpointed: LogOffset,
    pub closed: bool,
    pub free_segments: Vec<std::path::PathBuf>,
    pub preparing: bool,
    pub recovery: RecoveryReport,
}

impl State {
    /// Checks the commit log's and every consume queue's invariants, and that entries waiting
    /// for durability lie below the append position in order. Debug builds only (the test
    /// profile has them); a no-op otherwise.
    pub(crate) fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        self.cl.assert_invariants();
        for q in self.queues.values() {
            q.assert_invariants();
        }
        let mut prev = self
            .cl
            .flushed()
            .min(self.pending_visible.front().map_or(LogOffset::MAX, |p| p.0));
        for (end, _, _) in &self.pending_visible {
            assert!(
                *end >= prev && *end <= self.cl.write_pos(),
                "pending visibility out of order"
            );
            prev = *end;
        }
    }
}

pub(crate) struct Shared {
    pub st: RefCell<State>,
    pub flush_wake: Rc<Notify>,
    pub durable: Rc<Notify>,
    /// Wakes the checkpointer to stop.
    pub stop: Rc<Notify>,
    /// Wakes the checkpointer: a sealed segment is durable, its index can be written.
    pub sealed: Rc<Notify>,
    /// Woken by every append (the replication sender waits on it).
    pub appended: Rc<Notify>,
    /// One checkpoint (or retention pass) at a time.
    pub cp_lock: glommio::sync::Semaphore,
    /// Writes commit-log blocks to disk (see [`crate::writer`]).
    pub writer: Writer,
    /// Reads cold commit-log spans (see [`crate::reader`]).
    pub reader: crate::reader::Reader,
    /// Retention keeps every segment holding data at or after this offset (a user of the store,
    /// such as the broker's timer engine, still needs it).
    pub retention_floor: std::cell::Cell<LogOffset>,
    /// Counters for a metrics scrape (see [`crate::stats`]).
    pub stats: crate::stats::StoreStats,
}

pub(crate) fn visible_end(st: &State) -> LogOffset {
    let end = match st.cfg.flush {
        FlushMode::Sync => st.cl.flushed(),
        FlushMode::Async => st.cl.write_pos(),
    };
    end.min(st.replica_gate.unwrap_or(LogOffset::MAX))
}

/// Everything below `to` is durable: readers may see it (SYNC_FLUSH), waiters are woken.
pub(crate) fn publish_state(st: &mut State, durable: &Notify, to: LogOffset) {
    let limit = match st.cfg.flush {
        FlushMode::Sync => to,
        FlushMode::Async => LogOffset::MAX,
    };
    let limit = limit.min(st.replica_gate.unwrap_or(LogOffset::MAX));
    while let Some((end, _, _)) = st.pending_visible.front() {
        if *end > limit {
            break;
        }
        if let Some((_, key, max)) = st.pending_visible.pop_front() {
            if let Some(q) = st.queues.get_mut(&*key) {
                q.publish(max);
            }
        }
    }
    let budget = st.cfg.hot_cache_bytes;
    st.cl.mark_durable(to, budget);
    st.check();
    durable.notify();
}

/// A write met ENOSPC: appends are refused until a flush and a checkpoint succeed again.
pub(crate) fn disk_full(sh: &Shared, e: &StoreError) {
    let mut st = sh.st.borrow_mut();
    if st.full_enospc.is_none() {
        tracing::error!(error = %e, "disk full; appends are refused until space is freed");
    }
    st.full_enospc = Some(e.to_string());
}

pub(crate) fn fail(sh: &Shared, e: &StoreError) {
    tracing::error!(error = %e, "store flush failed; the store is now read-only");
    let mut st = sh.st.borrow_mut();
    st.failed = Some(e.to_string());
    for q in st.queues.values() {
        q.waiters.notify();
    }
    drop(st);
    sh.durable.notify();
}

/// The open file `file_no` of a queue (None if the queue was deleted meanwhile).
pub(crate) async fn cq_file(
    sh: &Shared,
    key: &QueueKey,
    file_no: u64,
    create: bool,
) -> Result<Option<Rc<File>>> {
    let path = {
        let st = sh.st.borrow();
        let Some(q) = st.queues.get(key) else {
            return Ok(None);
        };
        if let Some(f) = q.files.get(&file_no) {
            return Ok(Some(f.clone()));
        }
        if create {
            st.cfg.disk.create_dir_all(&q.dir)?;
        }
        (q.file_path(file_no), st.cfg.disk.clone())
    };
    let (path, disk) = path;
    let existed = disk.exists(&path);
    if !create && !existed {
        return Ok(None);
    }
    let f = Rc::new(File::open(&disk, &path, create).await?);
    if !existed {
        if let Some(dir) = path.parent() {
            disk.sync_dir(dir)?;
        }
    }
    let mut st = sh.st.borrow_mut();
    let Some(q) = st.queues.get_mut(key) else {
        return Ok(None);
    };
    Ok(Some(q.files.entry(file_no).or_insert(f).clone()))
}

/// Entries `[from, from+n)` of a queue (fewer at its end), from memory or disk.
pub(crate) async fn cq_entries(
    sh: &Shared,
    key: &QueueKey,
    from: QueueOffset,
    n: u64,
) -> Result<Vec<CqEntry>> {
    let mut out = Vec::with_capacity(n as usize);
    let mut idx = from;
    let end = from.add(n);
    while idx < end {
        let (mem, fe, max, locate) = {
            let st = sh.st.borrow();
            let Some(q) = st.queues.get(key) else {
                return Ok(out);
            };
            if idx >= q.max() {
                return Ok(out);
            }
            let mem = if idx >= q.mem_start() {
                let hi = end.min(q.max());
                Some(
                    idx.until(hi)
                        .filter_map(|i| q.mem_entry(i))
                        .collect::<Vec<_>>(),
                )
            } else {
                None
            };
            let durable = q.max().min(q.mem_start());
            let next = q.ra_entries(idx, end.min(durable), &mut out);
            if next != idx {
                idx = next;
                continue;
            }
            (mem, q.file_entries, durable, q.locate(idx))
        };
        if let Some(m) = mem {
            out.extend(m);
            return Ok(out);
        }
        // Below memory: read ahead a window of durable entries from this file, keep it for the
        // next pulls of the queue.
        let (file_no, pos) = locate;
        let file_end = idx.add(fe - pos / CQ_ENTRY);
        let hi = file_end
            .min(max)
            .min(idx.add(CQ_READ_AHEAD.max(idx.distance_to(end))));
        let Some(f) = cq_file(sh, key, file_no, false).await? else {
            return Ok(out);
        };
        let b = f
            .read_at(pos, (idx.distance_to(hi) * CQ_ENTRY) as usize)
            .await?;
        let got = b.len() as u64 / CQ_ENTRY;
        let b = b.slice(..(got * CQ_ENTRY) as usize);
        let upto = end.min(idx.add(got));
        out.extend(
            b[..(idx.distance_to(upto) * CQ_ENTRY) as usize]
                .chunks_exact(CQ_ENTRY as usize)
                .map(CqEntry::decode),
        );
        if let Some(q) = sh.st.borrow_mut().queues.get_mut(key) {
            q.keep_read_ahead(idx, b);
        }
        if got < idx.distance_to(hi) {
            return Ok(out);
        }
        idx = upto;
    }
    Ok(out)
}
