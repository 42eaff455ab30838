//! The store's public API and its wiring: [`Store::open`] runs recovery and starts the
//! flusher and checkpointer; appends are encoded here; reads, retention and the background
//! work live in their own modules (see the crate docs' module diagram).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use glommio::Task;
use protocol::message::{sysflag, RecordInput};

use crate::checkpointer::{check_space, checkpoint, checkpointer_loop, seal_indexes};
use crate::commitlog::BLANK_LEN;
use crate::config::{FlushMode, StoreConfig};
use crate::cq::{ConsumeQueue, CqEntry};
use crate::error::{Result, StoreError};
use crate::flusher::{durable_ticker, ensure_segment_with, flusher_loop, submit_blocks};
use crate::io::File;
use crate::notify::{Notified, Notify};
use crate::offsets::{LogOffset, QueueOffset};
use crate::state::{publish_state, visible_end, QueueKey, QueueKeyRef, Shared, State};
use crate::types::{
    AppendResult, AppendedRecord, GetResult, MessageToStore, QueueInfo, RecoveryReport,
};
use crate::writer::Writer;

/// One shard's store. Not `Send`: use it from the glommio executor that opened it.
pub struct Store {
    pub(crate) sh: Rc<Shared>,
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
            appended: Rc::new(Notify::default()),
            cp_lock: glommio::sync::Semaphore::new(1),
            writer: Writer::start("saturn-store-writer")?,
            reader: crate::reader::Reader::start("saturn-store-reader")?,
            retention_floor: std::cell::Cell::new(LogOffset::MAX),
            stats: Default::default(),
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

    /// The store's counters (group commits, where pulled records came from).
    pub fn stats(&self) -> &crate::stats::StoreStats {
        &self.sh.stats
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
        let now = st.cfg.clock.now_ms();
        let mut records = Vec::with_capacity(batch.len());
        let mut piece_start = st.cl.write_pos();
        // Entries of `pending_visible` before the first belong to earlier appends; the second
        // counts them with this batch's.
        let n = st.pending_visible.len();
        let mut pending = (n, n);
        for m in batch {
            records.push(append_one(st, m, now, &mut piece_start, &mut pending)?);
        }
        st.cl.seal_piece(piece_start);
        crate::stats::add(&self.sh.stats.appended_records, batch.len() as u64);
        let end_offset = st.cl.write_pos();
        // Whole blocks go to the disk writer as soon as a write's worth is ready, so the disk
        // is kept busy however rarely the flusher gets to run; the flusher writes the rest.
        let ready = end_offset.align_down();
        if st.cl.submitted().distance_to(ready) >= st.cfg.write_chunk_bytes as u64 {
            // An error here (the descriptor could not be duplicated) is the flusher's to report:
            // it submits the same blocks again.
            let _ = submit_blocks(st, &self.sh.writer, ready, true);
        }
        let dirty = st.cl.flushed().distance_to(end_offset);
        if st.cfg.flush == FlushMode::Sync || dirty >= st.cfg.flush_dirty_bytes as u64 {
            self.sh.flush_wake.notify();
        }
        self.sh.appended.notify();
        st.check();
        Ok(AppendResult {
            records,
            end_offset: end_offset.get(),
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
        if st.replica_only {
            return Err(StoreError::ReadOnly(
                "this store is a slave's: it takes only its master's log".into(),
            ));
        }
        if let Some(f) = st.full_enospc.as_ref().or(st.full_floor.as_ref()) {
            return Err(StoreError::DiskFull(f.clone()));
        }
        // A flush whose writes and syncs the writer thread finished is published here when
        // the flusher has not run since (appends may keep the executor busy).
        let mark = LogOffset::new(self.sh.writer.mark());
        if mark > st.cl.flushed() {
            publish_state(st, &self.sh.durable, mark);
        }
        let dirty = st.cl.flushed().distance_to(st.cl.write_pos());
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
        let end = LogOffset::new(end_offset);
        // No timer per call (arming and dropping one cost as much as the append): waiters are
        // woken by every flush, and by the durability ticker while no flush completes.
        let mut deadline = None;
        loop {
            let notified = {
                let st = self.sh.st.borrow();
                if st.cl.flushed() >= end {
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
                    || st.cl.flushed().distance_to(st.cl.write_pos())
                        <= st.cfg.max_dirty_bytes as u64
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
        let end = self.sh.st.borrow().cl.write_pos();
        loop {
            match self.wait_durable(end.get()).await {
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
            .map_or(0, |q| q.visible().as_i64())
    }

    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        let st = self.sh.st.borrow();
        st.queues
            .get(&(topic.to_string(), queue_id))
            .map_or(0, |q| q.readable_min().as_i64())
    }

    pub fn queues(&self) -> Vec<QueueInfo> {
        let st = self.sh.st.borrow();
        let mut v: Vec<QueueInfo> = st
            .queues
            .values()
            .map(|q| QueueInfo {
                topic: q.topic.clone(),
                queue_id: q.queue_id,
                min_offset: q.readable_min().as_i64(),
                max_offset: q.visible().as_i64(),
            })
            .collect();
        v.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        v
    }

    pub fn commit_log_min_offset(&self) -> i64 {
        self.sh.st.borrow().cl.min_offset().as_i64()
    }

    /// End of what readers may see: the durable end under SYNC_FLUSH, the append end otherwise.
    pub fn commit_log_max_offset(&self) -> i64 {
        visible_end(&self.sh.st.borrow()).as_i64()
    }

    /// Unflushed bytes.
    pub fn dirty_bytes(&self) -> u64 {
        let st = self.sh.st.borrow();
        st.cl.flushed().distance_to(st.cl.write_pos())
    }

    /// Resolves at the next append of any record (local or replicated).
    pub fn wait_for_any_append(&self) -> Notified {
        self.sh.appended.notified()
    }

    /// Resolves at the next append to the queue that readers can see (for long polling).
    pub fn wait_for_append(&self, topic: &str, queue_id: i32) -> Notified {
        let mut st = self.sh.st.borrow_mut();
        let st = &mut *st;
        let root = st.cfg.dir.join("consumequeue");
        let fe = st.cfg.cq_file_entries;
        st.queues
            .entry((topic.to_string(), queue_id))
            .or_insert_with(|| ConsumeQueue::new(&root, topic, queue_id, fe, QueueOffset::ZERO))
            .waiters
            .notified()
    }

    /// As [`Store::wait_for_append`] for a queue that exists (`None` otherwise: nothing is
    /// created).
    pub fn wait_for_append_if_exists(&self, topic: &str, queue_id: i32) -> Option<Notified> {
        let st = self.sh.st.borrow();
        let lookup: &dyn QueueKeyRef = &(topic, queue_id);
        st.queues.get(lookup).map(|q| q.waiters.notified())
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

    /// Records at known commit-log offsets and sizes (an index of the caller's own, such as the
    /// timer engine's), verified, answered in the order asked (read in log order). Unlike
    /// [`Store::read_record`] one at a time, records that follow each other in the log are read
    /// a span per I/O, the later spans in the background meanwhile, and a sequential read-ahead
    /// keeps the disk busy past the last one. An offset below the log's start, past its visible
    /// end or whose size does not fit a segment is an error in its place.
    pub async fn read_records(&self, list: &[(i64, u32)]) -> Vec<Result<Bytes>> {
        let (min, end, seg) = {
            let st = self.sh.st.borrow();
            (st.cl.min_offset(), visible_end(&st), st.cl.segment_size())
        };
        let check = |&(p, s): &(i64, u32)| -> std::result::Result<(LogOffset, u32), &'static str> {
            let size = u64::from(s);
            match LogOffset::from_i64(p) {
                None => Err("negative offset"),
                Some(p) if p < min => Err("deleted by retention"),
                Some(p) if p.add(size) > end => Err("beyond the end of the commit log"),
                _ if s == 0 || size > seg => Err("no record of this size starts here"),
                Some(p) => Ok((p, s)),
            }
        };
        let checked: Vec<_> = list.iter().map(check).collect();
        // Read in log order (the reader's spans assume it), answered in the order asked.
        let mut order: Vec<usize> = (0..list.len()).filter(|&i| checked[i].is_ok()).collect();
        order.sort_by_key(|&i| checked[i].map_or(LogOffset::ZERO, |(p, _)| p));
        let sorted: Vec<(LogOffset, u32)> = order.iter().filter_map(|&i| checked[i].ok()).collect();
        let mut out: Vec<Result<Bytes>> = checked
            .iter()
            .zip(list)
            .map(|(c, &(p, _))| match c {
                Ok(_) => Err(StoreError::Closed),
                Err(reason) => Err(StoreError::NotFound {
                    offset: p.max(0) as u64,
                    reason,
                }),
            })
            .collect();
        let read = crate::read::fetch(&self.sh, &sorted).await;
        for (i, r) in order.into_iter().zip(read) {
            out[i] = r;
        }
        out
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
        self.sh.retention_floor.set(LogOffset::new(offset));
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

/// Appends one record of a batch (see [`Store::append`]): ends the segment first if it does
/// not fit, encodes it into the commit log, queues it.
#[inline(always)]
fn append_one(
    st: &mut State,
    m: &MessageToStore,
    now: i64,
    piece_start: &mut LogOffset,
    pending: &mut (usize, usize),
) -> Result<AppendedRecord> {
    let store_host = st.cfg.store_host;
    let size = input_of(m, store_host, now, 0, 0).encoded_len()?;
    st.cl.make_room(piece_start, size as u64);
    let pos = st.cl.write_pos();
    let dispatch = sysflag::is_dispatched(m.sys_flag);
    let cq = queue_of(&mut st.queues, &st.cfg, &m.topic, m.queue_id);
    let queue_offset = if dispatch { cq.max().as_i64() } else { 0 };
    let input = input_of(m, store_host, now, queue_offset, pos.as_i64());
    let keys = (m.topic.as_str(), m.uniq_key.as_deref(), m.keys.as_str());
    st.cl.append_record(piece_start, &input, size, now, keys)?;
    if dispatch {
        cq.push(CqEntry {
            phys: pos,
            size: size as i32,
            tags: m.tags_code,
        });
        // Visibility deferred: to the flush (SYNC_FLUSH) and/or to a slave (replication gate).
        if st.cfg.flush == FlushMode::Sync || st.replica_gate.is_some() {
            // Merged only within this batch: a flush covers a batch whole, so merging never
            // delays an earlier append's visibility.
            let merge = pending.0 < pending.1;
            let end = st.cl.write_pos();
            pending.1 += pend_visible(&mut st.pending_visible, merge, end, cq) as usize;
        } else {
            cq.publish(cq.max());
        }
    }
    Ok(AppendedRecord {
        phys_offset: pos.as_i64(),
        size: size as i32,
        queue_offset,
        store_timestamp: now,
    })
}

/// The queue of `(topic, queue_id)`, created if new (looked up without allocating).
#[inline(always)]
fn queue_of<'a>(
    queues: &'a mut HashMap<QueueKey, ConsumeQueue>,
    cfg: &StoreConfig,
    topic: &str,
    queue_id: i32,
) -> &'a mut ConsumeQueue {
    let lookup: &dyn QueueKeyRef = &(topic, queue_id);
    if !queues.contains_key(lookup) {
        let root = cfg.dir.join("consumequeue");
        let q = ConsumeQueue::new(
            &root,
            topic,
            queue_id,
            cfg.cq_file_entries,
            QueueOffset::ZERO,
        );
        queues.insert((topic.to_string(), queue_id), q);
    }
    match queues.get_mut(lookup) {
        Some(q) => q,
        None => unreachable!("queue inserted above"),
    }
}

/// SYNC_FLUSH: the queue's entries up to `cq.max()` become visible once `end` is durable. With
/// `merge`, a last entry of the same queue is extended instead of a new one added (returns
/// whether one was added).
#[inline]
pub(crate) fn pend_visible(
    pending: &mut VecDeque<(LogOffset, Rc<QueueKey>, QueueOffset)>,
    merge: bool,
    end: LogOffset,
    cq: &ConsumeQueue,
) -> bool {
    match pending.back_mut() {
        Some(p) if merge && Rc::ptr_eq(&p.1, &cq.key) => {
            p.0 = end;
            p.2 = cq.max();
            false
        }
        _ => {
            pending.push_back((end, cq.key.clone(), cq.max()));
            true
        }
    }
}
