//! Replication: what a master reads to ship its commit log, and how a slave appends it.
//!
//! A master reads raw commit-log bytes with [`Store::read_raw`] (from the hot tail, else from
//! the segment file; never past the append end or a segment's end). A slave appends them
//! verbatim with [`Store::append_replica`] at its own append end: every record is verified
//! (structure, body CRC, PHYSICALOFFSET equal to its position, QUEUEOFFSET equal to its
//! queue's next offset), then placed byte for byte where the master had it, dispatched into
//! the consume queues and the key index as recovery does, and flushed and made visible by the
//! store's usual machinery (so the slave's flush mode decides when its readers see it). A blank
//! marker ends the segment as on the master; the zeros after it are skipped.
//!
//! The slave's log is the master's, byte for byte and offset for offset: a slave whose end is
//! beyond the master's, or whose bytes disagree, has diverged ([`StoreError::Diverged`]).

use bytes::Bytes;
use protocol::message::{
    properties, sysflag, RecordView, BLANK_MAGIC, MESSAGE_MAGIC_V1, MESSAGE_MAGIC_V2,
};

use crate::commitlog::BLANK_LEN;
use crate::config::FlushMode;
use crate::cq::{ConsumeQueue, CqEntry};
use crate::error::{Result, StoreError};
use crate::offsets::{LogOffset, QueueOffset};
use crate::state::{QueueKeyRef, State};
use crate::store::{pend_visible, Store};

/// What [`Store::append_replica`] did.
#[derive(Debug, Default)]
pub struct ReplicaAppend {
    /// Bytes of the input used (placed, or skipped zeros after a blank marker).
    pub used: usize,
    /// Queues this store had not seen before, created by the records placed.
    pub new_queues: Vec<(String, i32)>,
}

impl Store {
    /// End of the appended commit log (in memory): what a slave reports to its master, and how
    /// far a master ships.
    pub fn write_end(&self) -> u64 {
        self.sh.st.borrow().cl.write_pos().get()
    }

    /// Whether commit-log offset `phys` lies below the hot tail, so that a read of it goes to
    /// the segment files (Saturn's "not in memory": RocketMQ's `accessMessageInMemoryMaxRatio`
    /// test, which sends slow consumers to a slave).
    pub fn is_cold(&self, phys: u64) -> bool {
        self.sh
            .st
            .borrow()
            .cl
            .hot_start()
            .is_some_and(|h| LogOffset::new(phys) < h)
    }

    /// End of the durable commit log.
    pub fn durable_end(&self) -> u64 {
        self.sh.st.borrow().cl.flushed().get()
    }

    /// Makes this store a slave's: local appends ([`Store::append`]) are refused from now on,
    /// so that its log stays its master's, byte for byte.
    pub fn set_replica_only(&self) {
        self.sh.st.borrow_mut().replica_only = true;
    }

    /// Gates visibility on replication (a SYNC_MASTER): from now on a record becomes visible
    /// to readers only once [`Store::replica_acked`] covers it (and, under SYNC_FLUSH, once it
    /// is durable). Records appended before are visible already.
    pub fn gate_on_replica(&self) {
        let mut st = self.sh.st.borrow_mut();
        if st.replica_gate.is_none() {
            st.replica_gate = Some(st.cl.write_pos());
        }
    }

    /// A slave has everything below `end`: gated records below it become visible.
    pub fn replica_acked(&self, end: u64) {
        let mut st = self.sh.st.borrow_mut();
        let Some(gate) = st.replica_gate else {
            return;
        };
        let end = LogOffset::new(end).min(st.cl.write_pos());
        if end > gate {
            st.replica_gate = Some(end);
            let flushed = st.cl.flushed();
            crate::state::publish_state(&mut st, &self.sh.durable, flushed);
        }
    }

    /// Raw commit-log bytes from `from`: at most `max`, never past the append end or the end of
    /// `from`'s segment. Returns the offset of the first byte, which is past `from` when `from`
    /// lies in the zeros after a segment's blank marker (the next segment's start then); empty
    /// when there is nothing new.
    pub async fn read_raw(&self, from: u64, max: usize) -> Result<(u64, Bytes)> {
        let (from, b) = self.read_raw_at(LogOffset::new(from), max).await?;
        Ok((from.get(), b))
    }

    async fn read_raw_at(&self, from: LogOffset, max: usize) -> Result<(LogOffset, Bytes)> {
        let (from, end, hot) = {
            let st = self.sh.st.borrow();
            let cl = &st.cl;
            if from < cl.min_offset() {
                return Err(StoreError::NotFound {
                    offset: from.get(),
                    reason: "deleted by retention",
                });
            }
            if from > cl.write_pos() {
                return Err(StoreError::Diverged {
                    offset: from.get(),
                    reason: format!("beyond the end of the commit log ({})", cl.write_pos()),
                });
            }
            let from = cl.skip_blank_gap(from);
            let end = cl
                .write_pos()
                .min(cl.base_of(from).add(cl.segment_size()))
                .min(from.add(max as u64));
            if end <= from {
                return Ok((from, Bytes::new()));
            }
            (from, end, cl.hot_slice(from, end))
        };
        if let Some(b) = hot {
            return Ok((from, b));
        }
        // Below the hot tail: durable, on disk.
        let (base, end) = {
            let st = self.sh.st.borrow();
            let first = st.cl.hot_start().unwrap_or(end);
            (st.cl.base_of(from), end.min(first.max(from.add(1))))
        };
        let f = crate::read::segment_file(&self.sh, base).await?;
        Ok((
            from,
            f.read_exact_at(from.pos_in(base).file_pos(), from.distance_to(end) as usize)
                .await?,
        ))
    }

    /// Appends bytes a master shipped, whose first byte is commit-log offset `offset`: whole
    /// records only, verified; returns how many bytes of `data` were used (a record cut at the
    /// end of `data` is left for the next call, with the bytes that complete it). `offset`
    /// must be this store's append end, or lie in the zeros after its last blank marker
    /// (skipped).
    pub fn append_replica(&self, offset: u64, data: &[u8]) -> Result<ReplicaAppend> {
        let mut st = self.sh.st.borrow_mut();
        let st = &mut *st;
        if let Some(f) = &st.failed {
            return Err(StoreError::ReadOnly(f.clone()));
        }
        if st.closed {
            return Err(StoreError::Closed);
        }
        if let Some(f) = st.full_enospc.as_ref().or(st.full_floor.as_ref()) {
            return Err(StoreError::DiskFull(f.clone()));
        }
        let wp = st.cl.write_pos();
        let offset = LogOffset::new(offset);
        let mut out = ReplicaAppend::default();
        if offset != wp {
            let padding = wp.is_segment_base(st.cl.segment_size())
                && offset < wp
                && offset > wp.back(st.cfg.segment_size);
            if !padding {
                return Err(StoreError::Diverged {
                    offset: offset.get(),
                    reason: format!("the replica's commit log ends at {wp}"),
                });
            }
            out.used = (offset.distance_to(wp) as usize).min(data.len());
        }
        let dirty = st.cl.flushed().distance_to(st.cl.write_pos());
        if dirty > st.cfg.max_dirty_bytes as u64 {
            return Ok(out);
        }
        let mut piece_start = st.cl.write_pos();
        let pending_mark = st.pending_visible.len();
        loop {
            let rest = &data[out.used..];
            match place_one(
                st,
                &mut piece_start,
                rest,
                pending_mark,
                &mut out.new_queues,
            ) {
                Ok(Some(n)) => out.used += n,
                Ok(None) => break,
                Err(e) if out.used > 0 => {
                    // Keep what was placed; the error comes back with the next call.
                    tracing::debug!(error = %e, "replica append stopped");
                    break;
                }
                Err(e) => {
                    st.cl.seal_piece(piece_start);
                    return Err(e);
                }
            }
        }
        st.cl.seal_piece(piece_start);
        let ready = st.cl.write_pos().align_down();
        if st.cl.submitted().distance_to(ready) >= st.cfg.write_chunk_bytes as u64 {
            let _ = crate::flusher::submit_blocks(st, &self.sh.writer, ready, true);
        }
        let dirty = st.cl.flushed().distance_to(st.cl.write_pos());
        if st.cfg.flush == FlushMode::Sync || dirty >= st.cfg.flush_dirty_bytes as u64 {
            self.sh.flush_wake.notify();
        }
        self.sh.appended.notify();
        st.check();
        Ok(out)
    }
}

/// Places the record (or blank marker) at the head of `data` at the append end; `None` when
/// `data` does not hold it whole.
fn place_one(
    st: &mut State,
    piece_start: &mut LogOffset,
    data: &[u8],
    pending_mark: usize,
    new_queues: &mut Vec<(String, i32)>,
) -> Result<Option<usize>> {
    if data.len() < 8 {
        return Ok(None);
    }
    let pos = st.cl.write_pos();
    let seg_end = st.cl.base_of(pos).add(st.cfg.segment_size);
    let total = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
    let magic = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let diverged = |reason: String| StoreError::Diverged {
        offset: pos.get(),
        reason,
    };
    if magic == BLANK_MAGIC {
        if total != pos.distance_to(seg_end) {
            return Err(diverged(format!(
                "blank marker of {total} bytes, {} left in the segment",
                pos.distance_to(seg_end)
            )));
        }
        st.cl.close_segment(piece_start);
        // The zeros after the marker are skipped by the next call.
        return Ok(Some(BLANK_LEN as usize));
    }
    if magic != MESSAGE_MAGIC_V1 && magic != MESSAGE_MAGIC_V2 || total < 8 {
        return Err(diverged(format!(
            "bad header (magic {magic:#x}, size {total})"
        )));
    }
    if pos.add(total + BLANK_LEN) > seg_end {
        return Err(diverged(format!(
            "record of {total} bytes past the segment end"
        )));
    }
    let Some(rec) = data.get(..total as usize) else {
        return Ok(None);
    };
    crate::verify::structural(rec, pos).map_err(diverged)?;
    let (v, _) = RecordView::parse(rec).map_err(|e| diverged(e.to_string()))?;
    check_queue_offset(st, &v).map_err(diverged)?;
    let p = Props::of(v.properties);
    st.cl.append_verbatim(
        piece_start,
        rec,
        v.store_timestamp,
        (v.topic, p.uniq, p.keys),
    );
    if sysflag::is_dispatched(v.sys_flag) {
        dispatch(
            st,
            &v,
            p.tags,
            (pos, total as i32),
            pending_mark,
            new_queues,
        );
    }
    Ok(Some(total as usize))
}

/// A dispatched record's QUEUEOFFSET must be its queue's next offset (any offset for a queue
/// this store has never seen: the master's log may start after retention).
fn check_queue_offset(st: &State, v: &RecordView<'_>) -> std::result::Result<(), String> {
    if !sysflag::is_dispatched(v.sys_flag) {
        return Ok(());
    }
    let lookup: &dyn QueueKeyRef = &(v.topic, v.queue_id);
    match st.queues.get(lookup) {
        Some(q) if QueueOffset::from_i64(v.queue_offset) != Some(q.max()) => Err(format!(
            "{}:{} QUEUEOFFSET {}, the replica's queue is at {}",
            v.topic,
            v.queue_id,
            v.queue_offset,
            q.max()
        )),
        None if v.queue_offset < 0 => Err(format!("QUEUEOFFSET {}", v.queue_offset)),
        _ => Ok(()),
    }
}

/// The properties the key index and the consume queue need, from one pass over the string
/// (the last of repeated names wins, as in `property_value`).
struct Props<'a> {
    uniq: Option<&'a str>,
    keys: &'a str,
    tags: Option<&'a str>,
}

impl<'a> Props<'a> {
    fn of(s: &'a str) -> Self {
        let mut p = Props {
            uniq: None,
            keys: "",
            tags: None,
        };
        for (k, v) in properties::iter_pairs(s) {
            match k {
                properties::UNIQ_KEY => p.uniq = Some(v),
                properties::KEYS => p.keys = v,
                properties::TAGS => p.tags = Some(v),
                _ => {}
            }
        }
        p
    }
}

fn dispatch(
    st: &mut State,
    v: &RecordView<'_>,
    tags: Option<&str>,
    (pos, size): (LogOffset, i32),
    pending_mark: usize,
    new_queues: &mut Vec<(String, i32)>,
) {
    let lookup: &dyn QueueKeyRef = &(v.topic, v.queue_id);
    if !st.queues.contains_key(lookup) {
        new_queues.push((v.topic.to_string(), v.queue_id));
        let q = ConsumeQueue::new(
            &st.cfg.dir.join("consumequeue"),
            v.topic,
            v.queue_id,
            st.cfg.cq_file_entries,
            QueueOffset::from_i64(v.queue_offset).unwrap_or(QueueOffset::ZERO),
        );
        st.queues.insert((v.topic.to_string(), v.queue_id), q);
    }
    let Some(cq) = st.queues.get_mut(lookup) else {
        return;
    };
    // As recovery does: the tag hash (a scheduled record's delivery time is not in the record).
    let tags = match tags {
        Some(t) if !t.is_empty() => protocol::message::tag_hash(t),
        _ => 0,
    };
    cq.push(CqEntry {
        phys: pos,
        size,
        tags,
    });
    if st.cfg.flush == FlushMode::Sync {
        let merge = st.pending_visible.len() > pending_mark;
        let end = st.cl.write_pos();
        pend_visible(&mut st.pending_visible, merge, end, cq);
    } else {
        cq.publish(cq.max());
    }
}
