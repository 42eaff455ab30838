//! The store: appends, the flusher (group commit), checkpoints, reads, retention.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use glommio::Task;
use protocol::message::{sysflag, RecordInput, BLANK_MAGIC};

use crate::checkpoint::Checkpoint;
use crate::commitlog::{CommitLog, SealedInfo};
use crate::config::{FlushMode, SegmentInit, StoreConfig};
use crate::cq::{ConsumeQueue, CqEntry, CQ_ENTRY, CQ_READ_AHEAD};
use crate::error::{Result, StoreError};
use crate::io::{self, align_down, align_up, Disk, File, BLOCK};
use crate::notify::{Notified, Notify};
use crate::seg_index::{index_keys, RecEntry, SegIndex};
use crate::writer::{Op, Source, WriteJob, Writer};

/// Size of the end-of-segment blank marker; a record is placed in a segment only if this much
/// room stays after it.
const BLANK_LEN: u64 = 8;

/// One message to append.
#[derive(Debug, Clone)]
pub struct MessageToStore {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// Consume-queue tags code: `tag_hash(TAGS)`, 0 without a tag (a delivery time for
    /// SCHEDULE_TOPIC_XXXX).
    pub tags_code: i64,
    /// Business keys to index (the KEYS property: space-separated).
    pub keys: String,
    /// The UNIQ_KEY to index.
    pub uniq_key: Option<String>,
}

/// Where one appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRecord {
    pub phys_offset: i64,
    pub size: i32,
    /// Consume-queue offset (0 for PREPARED / ROLLBACK records, which are not queued).
    pub queue_offset: i64,
    pub store_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub records: Vec<AppendedRecord>,
    /// Commit-log offset just past the batch: pass it to [`Store::wait_durable`].
    pub end_offset: u64,
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    /// Stored records, byte-identical to the commit log: write them to the socket as they are.
    pub records: Vec<Bytes>,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
}

impl GetResult {
    pub fn total_bytes(&self) -> usize {
        self.records.iter().map(|r| r.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub topic: String,
    pub queue_id: i32,
    pub min_offset: i64,
    pub max_offset: i64,
}

/// What `open` found and did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub checkpoint: Option<u64>,
    pub scanned_from: u64,
    pub scanned_bytes: u64,
    pub records: u64,
    pub end_offset: u64,
    pub truncated_at: Option<u64>,
    /// Commit-log ranges holding corrupt records, skipped.
    pub corrupt: Vec<(u64, u64)>,
    pub rebuilt_queues: usize,
    pub elapsed: Duration,
}

type QueueKey = (String, i32);

/// A queue key that may borrow its topic: queues are looked up with `&(topic, id)` as
/// `&dyn QueueKeyRef`, without allocating a `String` per appended record.
pub(crate) trait QueueKeyRef {
    fn parts(&self) -> (&str, i32);
}

impl QueueKeyRef for QueueKey {
    fn parts(&self) -> (&str, i32) {
        (&self.0, self.1)
    }
}

impl QueueKeyRef for (&str, i32) {
    fn parts(&self) -> (&str, i32) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn QueueKeyRef + 'a> for QueueKey {
    fn borrow(&self) -> &(dyn QueueKeyRef + 'a) {
        self
    }
}

/// Hashes as `(String, i32)` does (the same field hashes in the same order), as `Borrow`
/// requires.
impl std::hash::Hash for dyn QueueKeyRef + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (topic, id) = self.parts();
        topic.hash(h);
        id.hash(h);
    }
}

impl PartialEq for dyn QueueKeyRef + '_ {
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
    pub pending_visible: VecDeque<(u64, Rc<QueueKey>, u64)>,
    /// Set when a disk write or sync failed: the store is read-only until a restart.
    pub failed: Option<String>,
    /// Set while a write or allocation met ENOSPC (cleared by the next successful flush and
    /// checkpoint) ...
    pub full_enospc: Option<String>,
    /// ... and while free space is below `disk_min_free_bytes`: appends are refused.
    pub full_floor: Option<String>,
    /// Offset of the last checkpoint written: retention deletes only segments below it (the
    /// consume-queue entries of records beyond it can only be rebuilt from the commit log).
    pub checkpointed: u64,
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
            .flushed
            .min(self.pending_visible.front().map_or(u64::MAX, |p| p.0));
        for (end, _, _) in &self.pending_visible {
            assert!(
                *end >= prev && *end <= self.cl.write_pos,
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
    /// One checkpoint (or retention pass) at a time.
    pub cp_lock: glommio::sync::Semaphore,
    /// Writes commit-log blocks to disk (see [`crate::writer`]).
    pub writer: Writer,
    /// Reads cold commit-log spans (see [`crate::reader`]).
    pub reader: crate::reader::Reader,
    /// Retention keeps every segment holding data at or after this offset (a user of the store,
    /// such as the broker's timer engine, still needs it).
    pub retention_floor: std::cell::Cell<u64>,
}

/// One shard's store. Not `Send`: use it from the glommio executor that opened it.
pub struct Store {
    sh: Rc<Shared>,
    flusher: Option<Task<()>>,
    checkpointer: Option<Task<()>>,
}

impl Store {
    /// Opens (creating if needed) the store in `cfg.dir` and runs recovery.
    pub async fn open(cfg: StoreConfig) -> Result<Store> {
        cfg.validate().map_err(StoreError::Config)?;
        let st = crate::recovery::recover(cfg).await?;
        let sh = Rc::new(Shared {
            st: RefCell::new(st),
            flush_wake: Rc::new(Notify::default()),
            durable: Rc::new(Notify::default()),
            stop: Rc::new(Notify::default()),
            sealed: Rc::new(Notify::default()),
            cp_lock: glommio::sync::Semaphore::new(1),
            writer: Writer::start("saturn-store-writer")?,
            reader: crate::reader::Reader::start("saturn-store-reader")?,
            retention_floor: std::cell::Cell::new(u64::MAX),
        });
        // Persist what recovery rebuilt (consume-queue entries) and its end offset.
        checkpoint(&sh).await?;
        check_space(&sh).await;
        // The active segment is prepared now, while nothing waits on it.
        let active = sh.st.borrow().cl.active_base();
        ensure_segment_with(&sh, active, true).await?;
        let flusher = glommio::spawn_local(flusher_loop(sh.clone()));
        let checkpointer = glommio::spawn_local(checkpointer_loop(sh.clone()));
        glommio::spawn_local(durable_ticker(Rc::downgrade(&sh))).detach();
        Ok(Store {
            sh,
            flusher: Some(flusher),
            checkpointer: Some(checkpointer),
        })
    }

    /// What recovery did at open.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.sh.st.borrow().recovery.clone()
    }

    /// Appends a batch in memory: assigns commit-log offsets, consecutive queue offsets and the
    /// store time, and fills the consume queues and the index. Durability: [`Store::wait_durable`].
    pub fn append(&self, batch: &[MessageToStore]) -> Result<AppendResult> {
        let mut st = self.sh.st.borrow_mut();
        let st = &mut *st;
        self.admit(st, batch)?;
        let seg = st.cfg.segment_size;
        let store_host = st.cfg.store_host;
        let sync = st.cfg.flush == FlushMode::Sync;
        let now = st.cfg.clock.now_ms();
        let mut records = Vec::with_capacity(batch.len());
        let mut piece_start = st.cl.write_pos;
        // Entries of `pending_visible` before `pending_mark` belong to earlier appends.
        let pending_mark = st.pending_visible.len();
        let mut n_pending = pending_mark;
        for m in batch {
            let size = input_of(m, store_host, now, 0, 0).encoded_len()?;
            let pos = st.cl.write_pos;
            let seg_end = st.cl.base_of(pos) + seg;
            if pos + size as u64 + BLANK_LEN > seg_end {
                st.cl.seal_piece(piece_start);
                write_blank(&mut st.cl, pos, seg_end);
                st.cl.seal_piece(pos);
                roll(&mut st.cl, seg_end);
                piece_start = seg_end;
            }
            let pos = st.cl.write_pos;
            let dispatch = sysflag::is_dispatched(m.sys_flag);
            let lookup: &dyn QueueKeyRef = &(m.topic.as_str(), m.queue_id);
            if !st.queues.contains_key(lookup) {
                let q = ConsumeQueue::new(
                    &st.cfg.dir.join("consumequeue"),
                    &m.topic,
                    m.queue_id,
                    st.cfg.cq_file_entries,
                    0,
                );
                st.queues.insert((m.topic.clone(), m.queue_id), q);
            }
            let Some(cq) = st.queues.get_mut(lookup) else {
                unreachable!("queue inserted above");
            };
            let queue_offset = if dispatch { cq.max as i64 } else { 0 };
            let input = input_of(m, store_host, now, queue_offset, pos as i64);
            let out = st.cl.space(&mut piece_start, pos, size);
            input.encode_into(out)?;
            let crc = crc32c::crc32c(out);
            let seg_pos = (pos - st.cl.base_of(pos)) as u32;
            st.cl.active.add_record(seg_pos, size as u32, crc, now);
            let uniq = m.uniq_key.as_deref();
            index_keys(&mut st.cl.active, &m.topic, uniq, &m.keys, seg_pos);
            st.cl.write_pos = pos + size as u64;
            if dispatch {
                cq.push(CqEntry {
                    phys: pos as i64,
                    size: size as i32,
                    tags: m.tags_code,
                });
                if sync {
                    // Merged only within this batch: a flush covers a batch whole, so merging
                    // never delays an earlier append's visibility.
                    let merge = pending_mark < n_pending;
                    let end = st.cl.write_pos;
                    n_pending += pend_visible(&mut st.pending_visible, merge, end, cq) as usize;
                } else {
                    cq.visible = cq.max;
                    cq.waiters.notify();
                }
            }
            records.push(AppendedRecord {
                phys_offset: pos as i64,
                size: size as i32,
                queue_offset,
                store_timestamp: now,
            });
        }
        st.cl.seal_piece(piece_start);
        let end_offset = st.cl.write_pos;
        // Whole blocks go to the disk writer as soon as a write's worth is ready, so the disk
        // is kept busy however rarely the flusher gets to run; the flusher writes the rest.
        let ready = align_down(end_offset);
        if ready - st.cl.submitted >= st.cfg.write_chunk_bytes as u64 {
            // An error here (the descriptor could not be duplicated) is the flusher's to report:
            // it submits the same blocks again.
            let _ = submit_blocks(st, &self.sh.writer, ready, true);
        }
        let dirty = end_offset - st.cl.flushed;
        if sync || dirty >= st.cfg.flush_dirty_bytes as u64 {
            self.sh.flush_wake.notify();
        }
        st.check();
        Ok(AppendResult {
            records,
            end_offset,
        })
    }

    /// Whether the store takes `batch` now: writable, not full, not too much unflushed, every
    /// record fitting a segment (a batch is appended whole or not at all).
    #[inline]
    fn admit(&self, st: &mut State, batch: &[MessageToStore]) -> Result<()> {
        if let Some(f) = &st.failed {
            return Err(StoreError::ReadOnly(f.clone()));
        }
        if st.closed {
            return Err(StoreError::Closed);
        }
        if let Some(f) = st.full_enospc.as_ref().or(st.full_floor.as_ref()) {
            return Err(StoreError::DiskFull(f.clone()));
        }
        // A flush whose writes and syncs the writer thread finished is published here when
        // the flusher has not run since (appends may keep the executor busy).
        let mark = self.sh.writer.mark();
        if mark > st.cl.flushed {
            publish_state(st, &self.sh.durable, mark);
        }
        let dirty = st.cl.write_pos - st.cl.flushed;
        if dirty > st.cfg.max_dirty_bytes as u64 {
            return Err(StoreError::Busy {
                dirty,
                limit: st.cfg.max_dirty_bytes as u64,
            });
        }
        let seg = st.cfg.segment_size;
        for m in batch {
            let size = input_of(m, st.cfg.store_host, 0, 0, 0).encoded_len()?;
            if size as u64 + BLANK_LEN > seg {
                return Err(StoreError::RecordTooLarge {
                    size,
                    segment_size: seg,
                });
            }
        }
        Ok(())
    }

    /// Resolves once every record below `end_offset` is durable; `FlushTimeout` after
    /// `flush_timeout` (the records stay stored and become durable when the flush completes).
    pub async fn wait_durable(&self, end_offset: u64) -> Result<()> {
        // No timer per call (arming and dropping one cost as much as the append): waiters are
        // woken by every flush, and by the durability ticker while no flush completes.
        let mut deadline = None;
        loop {
            let notified = {
                let st = self.sh.st.borrow();
                if st.cl.flushed >= end_offset {
                    return Ok(());
                }
                if let Some(f) = &st.failed {
                    return Err(StoreError::ReadOnly(f.clone()));
                }
                let now = Instant::now();
                let timeout = st.cfg.flush_timeout;
                if now >= *deadline.get_or_insert(now + timeout) {
                    return Err(StoreError::FlushTimeout {
                        offset: end_offset,
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
                self.sh.durable.notified()
            };
            self.sh.flush_wake.notify();
            notified.await;
        }
    }

    /// Waits until appends are accepted again (unflushed bytes below `max_dirty_bytes`).
    pub async fn writable(&self) {
        loop {
            let notified = {
                let st = self.sh.st.borrow();
                if st.failed.is_some()
                    || st.cl.write_pos - st.cl.flushed <= st.cfg.max_dirty_bytes as u64
                {
                    return;
                }
                self.sh.durable.notified()
            };
            self.sh.flush_wake.notify();
            notified.await;
        }
    }

    /// Flushes everything appended so far.
    pub async fn flush(&self) -> Result<()> {
        let end = self.sh.st.borrow().cl.write_pos;
        loop {
            match self.wait_durable(end).await {
                Err(StoreError::FlushTimeout { .. }) => continue,
                r => return r,
            }
        }
    }

    /// Flushes, writes a checkpoint and stops the background work.
    pub async fn close(mut self) -> Result<()> {
        let r = self.flush().await;
        self.sh.st.borrow_mut().closed = true;
        self.sh.flush_wake.notify();
        self.sh.stop.notify();
        if let Some(t) = self.flusher.take() {
            t.await;
        }
        if let Some(t) = self.checkpointer.take() {
            t.await;
        }
        r?;
        seal_indexes(&self.sh).await?;
        let failed = self.sh.st.borrow().failed.clone();
        if let Some(f) = failed {
            return Err(StoreError::ReadOnly(f));
        }
        checkpoint(&self.sh).await?;
        let files: Vec<Rc<File>> = {
            let mut st = self.sh.st.borrow_mut();
            let mut v: Vec<Rc<File>> = std::mem::take(&mut st.cl.files).into_values().collect();
            for q in st.queues.values_mut() {
                v.extend(std::mem::take(&mut q.files).into_values());
            }
            v
        };
        for f in files {
            if let Ok(f) = Rc::try_unwrap(f) {
                f.close().await?;
            }
        }
        Ok(())
    }

    /// Next offset of the queue as readers see it (0 for an unknown queue).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        let st = self.sh.st.borrow();
        st.queues
            .get(&(topic.to_string(), queue_id))
            .map_or(0, |q| q.visible as i64)
    }

    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        let st = self.sh.st.borrow();
        st.queues
            .get(&(topic.to_string(), queue_id))
            .map_or(0, |q| q.min.min(q.visible) as i64)
    }

    pub fn queues(&self) -> Vec<QueueInfo> {
        let st = self.sh.st.borrow();
        let mut v: Vec<QueueInfo> = st
            .queues
            .values()
            .map(|q| QueueInfo {
                topic: q.topic.clone(),
                queue_id: q.queue_id,
                min_offset: q.min.min(q.visible) as i64,
                max_offset: q.visible as i64,
            })
            .collect();
        v.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        v
    }

    pub fn commit_log_min_offset(&self) -> i64 {
        self.sh.st.borrow().cl.min_offset as i64
    }

    /// End of what readers may see: the durable end under SYNC_FLUSH, the append end otherwise.
    pub fn commit_log_max_offset(&self) -> i64 {
        visible_end(&self.sh.st.borrow()) as i64
    }

    /// Unflushed bytes.
    pub fn dirty_bytes(&self) -> u64 {
        let st = self.sh.st.borrow();
        st.cl.write_pos - st.cl.flushed
    }

    /// Resolves at the next append to the queue that readers can see (for long polling).
    pub fn wait_for_append(&self, topic: &str, queue_id: i32) -> Notified {
        let mut st = self.sh.st.borrow_mut();
        let st = &mut *st;
        let root = st.cfg.dir.join("consumequeue");
        let fe = st.cfg.cq_file_entries;
        st.queues
            .entry((topic.to_string(), queue_id))
            .or_insert_with(|| ConsumeQueue::new(&root, topic, queue_id, fe, 0))
            .waiters
            .notified()
    }

    /// Forgets a topic: its queues and their files. Its records stay in the commit log until
    /// retention removes them.
    pub fn delete_topic(&self, topic: &str) {
        let mut st = self.sh.st.borrow_mut();
        let keys: Vec<QueueKey> = st.queues.keys().filter(|k| k.0 == topic).cloned().collect();
        for k in keys {
            if let Some(q) = st.queues.remove(&k) {
                q.waiters.notify();
            }
        }
        st.pending_visible.retain(|p| p.1 .0 != topic);
        let root = st.cfg.dir.join("consumequeue");
        let dir = root.join(topic);
        let disk = &st.cfg.disk;
        if let Err(e) = disk
            .remove_dir_all(&dir)
            .and_then(|()| disk.sync_dir(&root))
        {
            tracing::warn!(error = %e, "delete_topic: removing consume queue files");
        }
    }

    /// Reads up to `max_count` records (and about `max_bytes`) of a queue from `offset`, keeping
    /// those whose tags code passes `filter`.
    pub async fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: impl Fn(i64) -> bool,
    ) -> GetResult {
        crate::read::get_messages(
            &self.sh, topic, queue_id, offset, max_count, max_bytes, &filter,
        )
        .await
    }

    /// The record at a commit-log offset (VIEW_MESSAGE_BY_ID), verified.
    pub async fn read_record(&self, phys_offset: i64) -> Result<Bytes> {
        crate::read::read_record(&self.sh, phys_offset).await
    }

    /// The queue offset of the first record stored at or after `ts_ms` (`upper == false`), or of
    /// the last record stored at or before it (`upper == true`).
    pub async fn offset_by_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        ts_ms: i64,
        upper: bool,
    ) -> i64 {
        crate::read::offset_by_timestamp(&self.sh, topic, queue_id, ts_ms, upper).await
    }

    /// Store time of the oldest record of the queue, -1 when it has none.
    pub async fn earliest_store_time(&self, topic: &str, queue_id: i32) -> i64 {
        crate::read::earliest_store_time(&self.sh, topic, queue_id).await
    }

    /// Records of `topic` whose KEYS contain `key` or whose UNIQ_KEY is `key`, stored within
    /// `[begin_ts, end_ts]`, newest first, at most `max`.
    pub async fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ts: i64,
        end_ts: i64,
    ) -> Vec<Bytes> {
        crate::read::query_by_key(&self.sh, topic, key, max, begin_ts, end_ts).await
    }

    /// Deletes expired segments now (also runs every `retention_interval`). Returns how many.
    pub async fn run_retention(&self, now_ms: i64) -> Result<usize> {
        let _permit = self.sh.cp_lock.acquire_permit(1).await;
        crate::retention::run(&self.sh, now_ms).await
    }

    /// Retention keeps every segment that holds data at or after `offset` from now on
    /// (`u64::MAX`: no floor).
    pub fn set_retention_floor(&self, offset: u64) {
        self.sh.retention_floor.set(offset);
    }

    /// Flushes consume queues and writes a checkpoint now (also runs every
    /// `checkpoint_interval`).
    pub async fn checkpoint(&self) -> Result<()> {
        checkpoint(&self.sh).await
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // A store dropped without `close` stops its flusher; unflushed appends are lost as in a
        // crash, and recovery handles them.
        self.sh.st.borrow_mut().closed = true;
        self.sh.flush_wake.notify();
        self.sh.stop.notify();
        if let Some(t) = self.flusher.take() {
            t.detach();
        }
        if let Some(t) = self.checkpointer.take() {
            t.detach();
        }
    }
}

pub(crate) fn visible_end(st: &State) -> u64 {
    match st.cfg.flush {
        FlushMode::Sync => st.cl.flushed,
        FlushMode::Async => st.cl.write_pos,
    }
}

fn input_of<'a>(
    m: &'a MessageToStore,
    store_host: SocketAddr,
    now: i64,
    queue_offset: i64,
    phys: i64,
) -> RecordInput<'a> {
    RecordInput {
        topic: &m.topic,
        queue_id: m.queue_id,
        flag: m.flag,
        body: &m.body,
        properties: &m.properties,
        sys_flag: m.sys_flag,
        born_timestamp: m.born_timestamp,
        born_host: m.born_host,
        store_timestamp: now,
        store_host,
        reconsume_times: m.reconsume_times,
        prepared_transaction_offset: m.prepared_transaction_offset,
        queue_offset,
        phys_offset: phys,
    }
}

/// SYNC_FLUSH: the queue's entries up to `cq.max` become visible once `end` is durable. With
/// `merge`, a last entry of the same queue is extended instead of a new one added (returns
/// whether one was added).
#[inline]
fn pend_visible(
    pending: &mut VecDeque<(u64, Rc<QueueKey>, u64)>,
    merge: bool,
    end: u64,
    cq: &ConsumeQueue,
) -> bool {
    match pending.back_mut() {
        Some(p) if merge && Rc::ptr_eq(&p.1, &cq.key) => {
            p.0 = end;
            p.2 = cq.max;
            false
        }
        _ => {
            pending.push_back((end, cq.key.clone(), cq.max));
            true
        }
    }
}

/// Ends a segment with the blank marker, followed by zeros up to the end of its block (so that
/// block is written whole from the append memory; the segment's remaining blocks are zeroed by
/// the flusher).
fn write_blank(cl: &mut CommitLog, pos: u64, seg_end: u64) {
    let mut start = pos;
    let n = (align_up(pos + BLANK_LEN).min(seg_end) - pos) as usize;
    let out = cl.space(&mut start, pos, n);
    out[..4].copy_from_slice(&((seg_end - pos) as u32).to_be_bytes());
    out[4..8].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    out[8..].fill(0);
}

/// Makes the segment starting at `next_base` the active one.
pub(crate) fn roll(cl: &mut CommitLog, next_base: u64) {
    let old_base = cl.active_base();
    let (records, keys) = cl.active.next_capacity();
    let next = match cl.spare_index.take() {
        Some(mut spare) => {
            spare.reset(records, keys);
            spare
        }
        None => SegIndex::with_capacity(records, keys),
    };
    let idx = std::mem::replace(&mut cl.active, next);
    cl.segments.insert(
        old_base,
        Some(SealedInfo {
            min_ts: idx.min_ts,
            max_ts: idx.max_ts,
            idx_on_disk: false,
        }),
    );
    cl.sealing.insert(old_base, std::sync::Arc::new(idx));
    cl.sums_written = 0;
    cl.segments.insert(next_base, None);
    cl.write_pos = next_base;
}

// ---------------------------------------------------------------------------------------------
// Flusher

async fn flusher_loop(sh: Rc<Shared>) {
    loop {
        let (mode, interval, cp_interval, ret_interval, idle, over, closed) = {
            let st = sh.st.borrow();
            let dirty = st.cl.write_pos - st.cl.flushed;
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
                st.cl.submitted = align_down(st.cl.flushed);
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
async fn durable_ticker(sh: std::rc::Weak<Shared>) {
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

/// Background work that must not delay commits: sealed-segment index files, consume-queue
/// flushes with checkpoints, the free-space check, retention. Stops when the store closes or
/// becomes read-only.
async fn checkpointer_loop(sh: Rc<Shared>) {
    let mut last_retention = Instant::now();
    let mut last_checkpoint = Instant::now();
    let stopped = |sh: &Shared| {
        let st = sh.st.borrow();
        st.closed || st.failed.is_some()
    };
    loop {
        let (cp_interval, ret_interval) = {
            let st = sh.st.borrow();
            (st.cfg.checkpoint_interval, st.cfg.retention_interval)
        };
        if stopped(&sh) {
            return;
        }
        // Woken at the checkpoint interval, at close, and when a sealed segment is durable (its
        // index is written at once: until then recovery would have to rescan that segment).
        let left = cp_interval.saturating_sub(last_checkpoint.elapsed());
        let stop = sh.stop.notified();
        let sealed = sh.sealed.notified();
        future::or(future::or(stop, sealed), glommio::timer::sleep(left)).await;
        if stopped(&sh) || !background_ok(&sh, seal_indexes(&sh).await) {
            return;
        }
        if last_checkpoint.elapsed() < cp_interval {
            continue;
        }
        last_checkpoint = Instant::now();
        check_space(&sh).await;
        match checkpoint(&sh).await {
            Ok(()) => sh.st.borrow_mut().full_enospc = None,
            r => {
                if !background_ok(&sh, r) {
                    return;
                }
            }
        }
        let low = sh.st.borrow().full_floor.is_some();
        if low || last_retention.elapsed() >= ret_interval {
            last_retention = Instant::now();
            let _permit = sh.cp_lock.acquire_permit(1).await;
            let now = sh.st.borrow().cfg.clock.now_ms();
            if let Err(e) = crate::retention::run(&sh, now).await {
                tracing::error!(error = %e, "retention failed");
            }
            if low {
                check_space(&sh).await;
            }
        }
    }
}

/// Whether background work may go on after `r`: yes after success or a full disk (retried at
/// the next round); any other error makes the store read-only.
fn background_ok(sh: &Shared, r: Result<()>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) if e.is_enospc() => {
            disk_full(sh, &e);
            true
        }
        Err(e) => {
            fail(sh, &e);
            false
        }
    }
}

/// A write met ENOSPC: appends are refused until a flush and a checkpoint succeed again.
fn disk_full(sh: &Shared, e: &StoreError) {
    let mut st = sh.st.borrow_mut();
    if st.full_enospc.is_none() {
        tracing::error!(error = %e, "disk full; appends are refused until space is freed");
    }
    st.full_enospc = Some(e.to_string());
}

/// Compares free space with `disk_min_free_bytes`: appends are refused below it (and retention
/// runs at once), accepted again above it.
async fn check_space(sh: &Shared) {
    let (disk, dir, floor) = {
        let st = sh.st.borrow();
        (
            st.cfg.disk.clone(),
            st.cfg.dir.clone(),
            st.cfg.disk_min_free_bytes,
        )
    };
    if floor == 0 {
        return;
    }
    let avail = match disk.space(&dir) {
        Ok(s) => s.avail,
        Err(e) => {
            tracing::warn!(error = %e, "free space unknown");
            return;
        }
    };
    let low = avail < floor;
    let was = sh.st.borrow().full_floor.is_some();
    if low {
        let cause = format!("{avail} bytes free, below diskMinFreeBytes {floor}");
        if !was {
            tracing::error!(%cause, "disk full; appends are refused until space is freed");
        }
        sh.st.borrow_mut().full_floor = Some(cause);
    } else if was {
        tracing::info!(
            avail,
            "free space back above diskMinFreeBytes; appends accepted"
        );
        sh.st.borrow_mut().full_floor = None;
    }
}

fn fail(sh: &Shared, e: &StoreError) {
    tracing::error!(error = %e, "store flush failed; the store is now read-only");
    let mut st = sh.st.borrow_mut();
    st.failed = Some(e.to_string());
    for q in st.queues.values() {
        q.waiters.notify();
    }
    drop(st);
    sh.durable.notify();
}

/// Opens the segment file for `base`, taking a recycled one or creating and preparing it.
pub(crate) async fn ensure_segment(sh: &Shared, base: u64) -> Result<Rc<File>> {
    ensure_segment_with(sh, base, false).await
}

/// As [`ensure_segment`]; `full_init` prepares a new segment as configured even though that
/// takes long (at open, before any append waits).
async fn ensure_segment_with(sh: &Shared, base: u64, full_init: bool) -> Result<Rc<File>> {
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
        let half = st.cl.write_pos - st.cl.active_base() > st.cfg.segment_size / 2;
        if !half || st.preparing || !st.free_segments.is_empty() || st.closed {
            return;
        }
        let next = st.cl.active_base() + st.cfg.segment_size;
        if st.cl.files.contains_key(&next) {
            return;
        }
        st.preparing = true;
        (
            st.cl.dir.join("free").join(format!("prep-{next:020}")),
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

/// Hands the complete blocks of `[cl.submitted, upto)` to the disk writer, in runs of at most
/// `write_chunk_bytes` within one segment: from the append memory when one chunk holds the
/// run, else copied from the pieces (what none covers, after a blank marker, is zeros).
/// `eager` (from an append): only full `write_chunk_bytes` runs, and only into segment files
/// already open.
fn submit_blocks(st: &mut State, writer: &Writer, upto: u64, eager: bool) -> Result<()> {
    let chunk = st.cfg.write_chunk_bytes as u64;
    let seg = st.cfg.segment_size;
    let mut p = st.cl.submitted;
    while p < upto {
        let base = st.cl.base_of(p);
        let Some(file) = st.cl.files.get(&base) else {
            break;
        };
        let limit = upto.min(base + seg).min(p + chunk);
        let (src, end): (Source, u64) = match st.cl.arena.write_run(p, limit) {
            Some((f, end)) => (Box::new(f), end),
            None => {
                let mut b = crate::io::AlignedBuf::zeroed((limit - p) as usize);
                st.cl.image_into(p, p, limit, b.as_mut_slice());
                (Box::new(b), limit)
            }
        };
        if eager && end - p < chunk {
            break;
        }
        let (fd, path) = file.writer_handle()?;
        writer.submit(WriteJob {
            file: fd,
            path,
            op: Op::Write { pos: p - base, src },
        });
        p = end;
        st.cl.submitted = p;
    }
    st.cl.arena.release_below(st.cl.submitted);
    Ok(())
}

/// One group commit: writes every unflushed byte (block-aligned, the partial last block
/// written from a copy and again once complete), fdatasyncs, then publishes the new durable
/// offset.
pub(crate) async fn flush_once(sh: &Rc<Shared>) -> Result<()> {
    let (from, to, bases) = {
        let st = sh.st.borrow();
        let (from, to) = (st.cl.flushed, st.cl.write_pos);
        if from == to {
            return Ok(());
        }
        let mut bases = Vec::new();
        let mut b = st.cl.base_of(from);
        while b < to {
            bases.push(b);
            b += st.cfg.segment_size;
        }
        (from, to, bases)
    };
    let t_start = Instant::now();
    let mut files = Vec::with_capacity(bases.len());
    for &base in &bases {
        files.push(ensure_segment(sh, base).await?);
    }
    let seq = {
        // The writer thread sees the flush's jobs together: the whole blocks and the partial
        // last block go out as one vectored write.
        let _hold = sh.writer.hold();
        let mut st = sh.st.borrow_mut();
        let st = &mut *st;
        let a = align_down(to);
        submit_blocks(st, &sh.writer, a, false)?;
        if st.cl.submitted < a {
            return Err(StoreError::Failed(format!(
                "flush: blocks from commit-log offset {} could not be submitted",
                st.cl.submitted
            )));
        }
        if a < to && st.cl.submitted == a {
            // The partial last block, from a copy (its memory is still being appended to).
            let base = st.cl.base_of(a);
            let file = &files[bases.iter().position(|&b| b == base).unwrap_or(0)];
            let mut b = crate::io::AlignedBuf::zeroed(BLOCK as usize);
            st.cl.image_into(a, a, to, b.as_mut_slice());
            let (fd, path) = file.writer_handle()?;
            sh.writer.submit(WriteJob {
                file: fd,
                path,
                op: Op::Write {
                    pos: a - base,
                    src: Box::new(b),
                },
            });
        }
        // The syncs run on the writer thread too, right after the writes, so the flush
        // completes with a single wake-up of this task (and appends see the new durable
        // offset through the mark even before that).
        for f in &files {
            let (fd, path) = f.writer_handle()?;
            sh.writer.submit(WriteJob {
                file: fd,
                path,
                op: Op::Sync,
            });
        }
        sh.writer.submit_mark(to)
    };
    sh.writer.wait(seq).await?;
    tracing::trace!(bytes = to - from, total = ?t_start.elapsed(), "flushed");
    publish_durable(sh, to);
    let sealed_durable = {
        let st = sh.st.borrow();
        st.cl
            .sealing
            .keys()
            .next()
            .is_some_and(|&b| b + st.cfg.segment_size <= st.cl.flushed)
    };
    if sealed_durable {
        sh.sealed.notify();
    }
    maybe_prepare_spare(sh);
    Ok(())
}

fn publish_durable(sh: &Shared, to: u64) {
    let mut st = sh.st.borrow_mut();
    publish_state(&mut st, &sh.durable, to);
}

/// Everything below `to` is durable: readers may see it (SYNC_FLUSH), waiters are woken.
fn publish_state(st: &mut State, durable: &Notify, to: u64) {
    st.cl.flushed = st.cl.flushed.max(to);
    while let Some((end, _, _)) = st.pending_visible.front() {
        if *end > to {
            break;
        }
        if let Some((_, key, max)) = st.pending_visible.pop_front() {
            if let Some(q) = st.queues.get_mut(&*key) {
                if max > q.visible {
                    q.visible = max;
                    q.waiters.notify();
                }
            }
        }
    }
    let budget = st.cfg.hot_cache_bytes;
    st.cl.evict(budget);
    st.check();
    durable.notify();
}

/// Writes `<base>.idx` for sealed segments that are fully durable.
async fn seal_indexes(sh: &Shared) -> Result<()> {
    loop {
        let (base, idx, path) = {
            let st = sh.st.borrow();
            let Some((&base, idx)) = st.cl.sealing.iter().next() else {
                return Ok(());
            };
            if base + st.cfg.segment_size > st.cl.flushed {
                return Ok(());
            }
            (base, idx.clone(), st.cl.idx_path(base))
        };
        let disk = sh.st.borrow().cfg.disk.clone();
        // A segment's index holds a million entries or more: sorting, encoding
        // and writing it takes tens of milliseconds, which would stall every
        // request of the shard. It is done on the blocking pool.
        glommio::executor()
            .spawn_blocking(move || write_index_file(&disk, &path, &idx))
            .await?;
        let mut st = sh.st.borrow_mut();
        let sums = st.cl.sums_path(base);
        st.cfg.disk.remove_file(&sums)?;
        if let Some(idx) = st.cl.sealing.remove(&base) {
            // Unless a reader still holds it (it is then dropped when the reader is done).
            if let Ok(idx) = std::sync::Arc::try_unwrap(idx) {
                st.cl.spare_index = Some(idx);
            }
        }
        if let Some(Some(info)) = st.cl.segments.get_mut(&base) {
            info.idx_on_disk = true;
        }
    }
}

/// Writes `<base>.idx` (through a temporary file, fdatasynced, renamed, the directory fsynced)
/// with blocking I/O: on the blocking pool when a segment is sealed, inline during recovery.
/// The image goes out in 1 MiB direct writes from one buffer: a segment's tables are tens of
/// MB, and neither a copy of them in memory nor in the page cache would be read again (indexes
/// are loaded with direct reads).
pub(crate) fn write_index_file(disk: &Disk, path: &std::path::Path, idx: &SegIndex) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let tmp = path.with_extension("idx.tmp");
    disk.remove_file(&tmp)?;
    let f = disk.open_blocking(&tmp, true)?;
    let mut buf = io::AlignedBuf::zeroed(CHUNK.min(idx.image_len().max(8192)));
    // Every run comes from `buf`, whose memory is block-aligned.
    idx.write_image(buf.as_mut_slice(), |at, bytes| {
        io::write_all_at(&*f, &tmp, at, &[bytes])
    })?;
    f.sync_data()
        .map_err(|e| StoreError::io("fdatasync", &tmp, None, e))?;
    drop(f);
    disk.rename_durable(&tmp, path)
}

/// Writes the consume queues' new entries, then a checkpoint at the durable offset they cover.
pub(crate) async fn checkpoint(sh: &Shared) -> Result<()> {
    let _permit = sh.cp_lock.acquire_permit(1).await;
    let (c, min, manifest, writes) = {
        let st = sh.st.borrow();
        let c = st.cl.flushed;
        let mut manifest = Vec::with_capacity(st.queues.len());
        let mut writes = Vec::new();
        for (key, q) in &st.queues {
            // Entries of records below the checkpoint offset.
            let mut n = q.max;
            while n > q.mem_start {
                match q.mem_entry(n - 1) {
                    Some(e) if e.phys as u64 >= c => n -= 1,
                    _ => break,
                }
            }
            manifest.push((key.0.clone(), key.1, n));
            let w = q.pending_writes();
            if !w.is_empty() {
                writes.push((key.clone(), q.max, w));
            }
        }
        (c, st.cl.min_offset, manifest, writes)
    };
    for (key, max, ws) in writes {
        let mut touched: BTreeMap<u64, Rc<File>> = BTreeMap::new();
        for w in ws {
            let f = cq_file(sh, &key, w.file_no, true).await?;
            let Some(f) = f else { break };
            let mut buf = f.alloc(w.data.len());
            buf.as_bytes_mut().copy_from_slice(&w.data);
            f.write_at(buf, w.pos).await?;
            touched.insert(w.file_no, f);
        }
        for f in touched.values() {
            f.fdatasync().await?;
        }
        let mut st = sh.st.borrow_mut();
        let cache = st.cfg.cq_cache_entries;
        if let Some(q) = st.queues.get_mut(&key) {
            q.flushed_to(max, cache);
        }
        st.check();
    }
    write_sums(sh, c).await?;
    let (disk, dir) = {
        let st = sh.st.borrow();
        (st.cfg.disk.clone(), st.cfg.dir.clone())
    };
    Checkpoint {
        offset: c,
        min_offset: min,
        queues: manifest,
    }
    .store(&disk, &dir)
    .await?;
    let mut st = sh.st.borrow_mut();
    st.checkpointed = st.checkpointed.max(c);
    Ok(())
}

/// Appends the active segment's record-table entries of records below `c` to its journal.
async fn write_sums(sh: &Shared, c: u64) -> Result<()> {
    const E: u64 = 12;
    let (path, disk, to, data, pos) = {
        let st = sh.st.borrow();
        let base = st.cl.active_base();
        let recs = &st.cl.active.records;
        let to = recs.partition_point(|r| base + (r.pos as u64) < c);
        if st.cl.sums_written.min(to) == to {
            return Ok(());
        }
        let a = align_down(st.cl.sums_written.min(to) as u64 * E);
        let first = (a / E) as usize;
        let mut data = Vec::with_capacity((to - first + 1) * E as usize);
        for r in &recs[first..to] {
            data.extend_from_slice(&r.encode());
        }
        let skip = (a - first as u64 * E) as usize;
        let disk = st.cfg.disk.clone();
        (st.cl.sums_path(base), disk, to, data[skip..].to_vec(), a)
    };
    let created = !disk.exists(&path);
    let f = File::open(&disk, &path, true).await?;
    let mut buf = f.alloc(align_up(data.len() as u64) as usize);
    buf.as_bytes_mut()[..data.len()].copy_from_slice(&data);
    f.write_at(buf, pos).await?;
    f.fdatasync().await?;
    f.close().await?;
    if created {
        // The journal's name must outlive a power cut as its entries do.
        disk.sync_dir(&sh.st.borrow().cl.dir)?;
    }
    let mut st = sh.st.borrow_mut();
    if st.cl.sums_path(st.cl.active_base()) == path {
        st.cl.sums_written = to;
    }
    Ok(())
}

/// Reads a `.sums` journal: position → (size, CRC32C).
pub(crate) async fn read_sums(
    disk: &Disk,
    path: &std::path::Path,
) -> Result<HashMap<u32, (u32, u32)>> {
    let mut out = HashMap::new();
    if !disk.exists(path) {
        return Ok(out);
    }
    let f = File::open(disk, path, false).await?;
    let size = f.size().await?;
    let b = f.read_at(0, size as usize).await?;
    f.close().await?;
    for c in b.chunks_exact(12) {
        let e = RecEntry::decode(c);
        if e.size == 0 {
            break;
        }
        out.insert(e.pos, (e.size, e.crc));
    }
    Ok(out)
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
    from: u64,
    n: u64,
) -> Result<Vec<CqEntry>> {
    let mut out = Vec::with_capacity(n as usize);
    let mut idx = from;
    let end = from + n;
    while idx < end {
        let (mem, fe, max, locate) = {
            let st = sh.st.borrow();
            let Some(q) = st.queues.get(key) else {
                return Ok(out);
            };
            if idx >= q.max {
                return Ok(out);
            }
            let mem = if idx >= q.mem_start {
                let hi = end.min(q.max);
                Some((idx..hi).filter_map(|i| q.mem_entry(i)).collect::<Vec<_>>())
            } else {
                None
            };
            let durable = q.max.min(q.mem_start);
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
        let file_end = idx + fe - pos / CQ_ENTRY;
        let hi = file_end.min(max).min(idx + CQ_READ_AHEAD.max(end - idx));
        let Some(f) = cq_file(sh, key, file_no, false).await? else {
            return Ok(out);
        };
        let b = f.read_at(pos, ((hi - idx) * CQ_ENTRY) as usize).await?;
        let got = b.len() as u64 / CQ_ENTRY;
        let b = b.slice(..(got * CQ_ENTRY) as usize);
        let upto = end.min(idx + got);
        out.extend(
            b[..((upto - idx) * CQ_ENTRY) as usize]
                .chunks_exact(CQ_ENTRY as usize)
                .map(CqEntry::decode),
        );
        if let Some(q) = sh.st.borrow_mut().queues.get_mut(key) {
            q.ra = Some((idx, b));
        }
        if got < hi - idx {
            return Ok(out);
        }
        idx = upto;
    }
    Ok(out)
}
