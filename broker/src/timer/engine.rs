//! The timer engine of one shard: a loop that ticks at most every [`TICK`], and only when
//! there is work — the next pending timer or delayed message falls due, a record arrives in a
//! timer queue (the engine waits on those queues' append notifications), or its once-a-second
//! housekeeping is due (no timers: one wake-up a second, not 200) — and on each tick
//!
//! 1. indexes the timer queue (`rmq_sys_wheel_timer`) from its "indexed up to" offset into the
//!    [`Index`] and fdatasyncs the bucket files it wrote;
//! 2. takes what is due: the due head of each delay level's queue, and the index's due entries
//!    in (due, commit-log offset) order;
//! 3. appends, in one batch, the due messages re-stored to their real topic and queue and, last,
//!    a progress record (topic `SATURN_TIMER_PROGRESS`): each level's next queue offset, the
//!    timer queue's indexed-up-to offset, and the cursor (due, offset) up to which timers are
//!    delivered.
//!
//! **Durability.** One batch is one contiguous append, and the commit log becomes durable in
//! order: if the progress record survives a crash, so does every delivery before it. Recovery
//! reads the last progress record and starts from it, so what is delivered again after a crash
//! is at most what was appended after the last durable progress record: the batches of one
//! flush interval under asynchronous flushing (`flushIntervalCommitLog`, 500 ms by default), one
//! group commit under synchronous flushing — not RocketMQ's 10 s. The index is synced before
//! the progress record that advances the indexed-up-to offset is appended, so that offset never
//! runs ahead of durable index data; timers beyond it are indexed again (duplicates in a bucket
//! are dropped when it is loaded).
//!
//! **Never early.** A level's message is due at the broker's receive time plus the level's delay,
//! a timer at its TIMER_OUT_MS; an entry is taken only once the clock has reached it. A timer
//! indexed after the cursor passed its due time (it became visible late) is indexed at the
//! cursor's due time, after the cursor, and so is delivered at the next tick.
//!
//! **Retention.** The engine tells the store the lowest commit-log offset it still needs (the
//! last progress record, each level queue's head, the first timer not yet indexed, the lowest
//! pending timer); retention keeps every segment from there on.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use protocol::message::{RecordView, StoredMessage};

use super::index::{Entry, Index};
use super::{restore, PROGRESS_TOPIC, SCHEDULE_TOPIC, TIMER_OUT_MS, TIMER_TOPIC};

/// What the engine needs of its shard.
pub trait Host {
    fn store(&self) -> &storage::Store;
    fn timers(&self) -> &Timers;
    /// This shard's address (the progress records' born host).
    fn store_host(&self) -> std::net::SocketAddr;
    /// Where the engine keeps its index.
    fn timer_dir(&self) -> std::path::PathBuf;
    fn shard_id(&self) -> usize;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The shortest interval between two ticks (a burst of arriving timers is taken in ticks of at
/// least this much, not one per append).
pub const TICK: Duration = Duration::from_millis(5);
/// The longest the engine sleeps (its housekeeping interval).
const MAX_SLEEP_MS: i64 = 1000;
/// Width of an index bucket.
const BUCKET_MS: i64 = 60_000;
/// How far ahead of now the index holds buckets in memory.
const LOOKAHEAD_MS: i64 = 5_000;
/// Messages per delivery batch (one append).
const MAX_BATCH: usize = 2048;
/// Timer-queue records indexed per tick at most.
const MAX_INDEX_PER_TICK: usize = 16_384;

/// The engine's shared face: configuration and the figures the admin requests read.
pub struct Timers {
    /// Delay of each level in ms (level n is element n − 1).
    pub levels: Vec<i64>,
    /// The farthest ahead a timer may be due (ms).
    pub max_delay_ms: i64,
    /// Most timer-index entries held in memory (`timerIndexMaxInMemory`; see [`Index`]).
    pub index_max_in_memory: usize,
    /// Next queue offset of each level (GET_ALL_DELAY_OFFSET).
    pub level_offsets: RefCell<Vec<i64>>,
    /// Timers indexed and pending, plus delayed messages not yet delivered.
    pub pending: Cell<u64>,
    /// Pending timers already due.
    pub due_backlog: Cell<u64>,
    /// Timer-queue records not yet indexed.
    pub unindexed: Cell<u64>,
    /// Messages delivered since start.
    pub delivered: Cell<u64>,
    /// Index entries held in memory.
    pub in_memory: Cell<u64>,
    /// Notified by the send path when it stored a timer or delayed message, so that the engine,
    /// asleep until the next due time, looks at it (also when its queue is new).
    pub arrived: Rc<storage::Notify>,
}

impl Timers {
    pub fn new(levels: Vec<i64>, max_delay_ms: i64, index_max_in_memory: usize) -> Timers {
        let n = levels.len();
        Timers {
            levels,
            max_delay_ms,
            index_max_in_memory,
            level_offsets: RefCell::new(vec![0; n]),
            pending: Cell::new(0),
            due_backlog: Cell::new(0),
            unindexed: Cell::new(0),
            delivered: Cell::new(0),
            in_memory: Cell::new(0),
            arrived: Rc::default(),
        }
    }

    /// GET_ALL_DELAY_OFFSET's body, as RocketMQ's delayOffset.json: `{"offsetTable":{1:0,...}}`.
    pub fn delay_offset_json(&self) -> String {
        let mut out = String::from("{\"offsetTable\":{");
        for (i, off) in self.level_offsets.borrow().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}:{off}", i + 1);
        }
        out.push_str("}}");
        out
    }
}

/// What a progress record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub cursor: (i64, i64),
    pub indexed: i64,
    pub levels: Vec<i64>,
}

impl Progress {
    fn encode(&self) -> Bytes {
        let mut s = format!(
            "saturn-timer-progress 1 {} {} {}",
            self.cursor.0, self.cursor.1, self.indexed
        );
        for l in &self.levels {
            let _ = write!(s, " {l}");
        }
        Bytes::from(s)
    }

    fn decode(body: &[u8]) -> Option<Progress> {
        let text = std::str::from_utf8(body).ok()?;
        let mut it = text.split(' ');
        if it.next()? != "saturn-timer-progress" || it.next()? != "1" {
            return None;
        }
        let nums: Option<Vec<i64>> = it.map(|n| n.parse().ok()).collect();
        let nums = nums?;
        if nums.len() < 3 {
            return None;
        }
        Some(Progress {
            cursor: (nums[0], nums[1]),
            indexed: nums[2],
            levels: nums[3..].to_vec(),
        })
    }
}

/// The engine's own state, owned by its loop.
struct Engine {
    p: Progress,
    index: Index,
    /// Commit-log offset of the last progress record, and the end of its append.
    progress_phys: i64,
    progress_end: u64,
    /// The cursor's due time of the last progress record known durable.
    durable_due: Rc<Cell<i64>>,
    last_housekeeping: i64,
    last_publish: i64,
    /// Earliest due time (ms) of what the last tick left pending in the level queues.
    next_level_due: Cell<i64>,
}

/// Runs the shard's timer engine until the task is cancelled.
pub async fn run<H: Host + 'static>(shard: Rc<H>) {
    let mut engine = match recover(&shard).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(shard = shard.shard_id(), error = %e, "timer engine cannot start");
            return;
        }
    };
    let mut last_error = 0;
    loop {
        let started = std::time::Instant::now();
        // Armed before the tick: a timer appended while it runs wakes the next wait.
        let arrived = arrivals(&*shard);
        match engine.tick(&shard).await {
            Ok(wake) => {
                let wait = Duration::from_millis(wake.saturating_sub(now_ms()).max(0) as u64);
                if wait > TICK.saturating_sub(started.elapsed()) {
                    futures_lite::future::or(arrived, glommio::timer::sleep(wait)).await;
                }
                let rest = TICK.saturating_sub(started.elapsed());
                if !rest.is_zero() {
                    glommio::timer::sleep(rest).await;
                }
            }
            Err(e) => {
                let now = now_ms();
                if now - last_error > 10_000 {
                    tracing::warn!(shard = shard.shard_id(), error = %e, "timer engine tick failed");
                    last_error = now;
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Resolves at the next record readers can see in the timer queue or a delay level's queue, or
/// when the send path reports a timer stored (see [`Timers::arrived`]; a queue that does not
/// exist yet has no waiters).
fn arrivals<H: Host>(shard: &H) -> impl std::future::Future<Output = ()> {
    let store = shard.store();
    let mut waits = vec![shard.timers().arrived.notified()];
    waits.extend(store.wait_for_append_if_exists(TIMER_TOPIC, 0));
    for q in 0..shard.timers().levels.len() {
        waits.extend(store.wait_for_append_if_exists(SCHEDULE_TOPIC, q as i32));
    }
    std::future::poll_fn(move |cx| {
        let ready = waits
            .iter_mut()
            .any(|w| std::pin::Pin::new(w).poll(cx).is_ready());
        if ready {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
}

async fn recover<H: Host>(shard: &Rc<H>) -> Result<Engine, String> {
    let store = shard.store();
    let n = shard.timers().levels.len();
    let last = store.max_offset(PROGRESS_TOPIC, 0) - 1;
    let mut found = None;
    let mut progress_phys = -1;
    if last >= 0 {
        let r = store
            .get_messages(PROGRESS_TOPIC, 0, last, 1, 1 << 20, |_| true)
            .await;
        if let Some(rec) = r.records.first() {
            let (m, _) = StoredMessage::decode(rec).map_err(|e| e.to_string())?;
            progress_phys = m.phys_offset;
            found = Progress::decode(&m.body);
        }
        if found.is_none() {
            return Err(format!(
                "the last timer progress record ({last}) is unreadable"
            ));
        }
    }
    let mut p = found.unwrap_or(Progress {
        cursor: (i64::MIN, i64::MIN),
        indexed: store.min_offset(TIMER_TOPIC, 0),
        levels: Vec::new(),
    });
    for q in p.levels.len()..n {
        p.levels.push(store.min_offset(SCHEDULE_TOPIC, q as i32));
    }
    p.levels.truncate(n);
    let dir = shard.timer_dir().join("buckets");
    let max_near = shard.timers().index_max_in_memory;
    let index = Index::open(dir, BUCKET_MS, p.cursor.0, max_near).map_err(|e| e.to_string())?;
    tracing::info!(
        shard = shard.shard_id(),
        pending_indexed = index.pending(),
        indexed = p.indexed,
        cursor_due = p.cursor.0,
        "timer engine recovered"
    );
    *shard.timers().level_offsets.borrow_mut() = p.levels.clone();
    Ok(Engine {
        durable_due: Rc::new(Cell::new(p.cursor.0)),
        p,
        index,
        progress_phys,
        progress_end: 0,
        last_housekeeping: 0,
        last_publish: 0,
        next_level_due: Cell::new(i64::MAX),
    })
}

impl Engine {
    /// One round of indexing, delivery and housekeeping. Returns when (ms) the engine needs to
    /// run again if no timer arrives before: at once when work was left for the next tick, the
    /// earliest pending due time, at the latest the next housekeeping.
    async fn tick<H: Host + 'static>(&mut self, shard: &Rc<H>) -> Result<i64, String> {
        let max = shard.store().max_offset(TIMER_TOPIC, 0);
        let indexed = self.index_new(shard).await?;
        self.index
            .sync()
            .await
            .map_err(|e| format!("timer index: {e}"))?;
        let now = now_ms();
        self.index
            .advance(now + LOOKAHEAD_MS, self.p.cursor)
            .await
            .map_err(|e| format!("timer index: {e}"))?;
        let backlog = indexed < max;
        let mut indexed = Some(indexed);
        loop {
            let full = self.deliver(shard, indexed.take()).await?;
            if !full {
                break;
            }
        }
        if now - self.last_housekeeping >= MAX_SLEEP_MS {
            self.last_housekeeping = now;
            self.housekeeping(shard).await?;
        }
        // The figures cost a walk over the due backlog: five times a second is enough.
        if now - self.last_publish >= 200 {
            self.last_publish = now;
            self.publish(&**shard);
        }
        if backlog {
            return Ok(now);
        }
        let due = self.index.next_due().unwrap_or(i64::MAX);
        let due = due.min(self.next_level_due.get());
        // Figures published before the last change are refreshed by one more tick.
        let publish = if self.last_publish == now {
            i64::MAX
        } else {
            self.last_publish + 200
        };
        Ok(due.min(publish).min(self.last_housekeeping + MAX_SLEEP_MS))
    }

    /// Reads the timer queue from the indexed-up-to offset into the index. Returns the new
    /// indexed-up-to offset (committed with the next progress record).
    async fn index_new<H: Host>(&mut self, shard: &Rc<H>) -> Result<i64, String> {
        let store = shard.store();
        let max = store.max_offset(TIMER_TOPIC, 0);
        let mut off = self.p.indexed;
        let mut n = 0;
        while off < max && n < MAX_INDEX_PER_TICK {
            let r = store
                .get_messages(TIMER_TOPIC, 0, off, 1024, 16 << 20, |_| true)
                .await;
            if r.status == storage::GetStatus::OffsetTooSmall {
                tracing::error!(
                    from = off,
                    to = r.next_begin_offset,
                    "timers lost to retention"
                );
                off = r.next_begin_offset;
                continue;
            }
            if r.records.is_empty() {
                break;
            }
            for rec in &r.records {
                let (v, _) = RecordView::parse(rec).map_err(|e| e.to_string())?;
                let due = protocol::message::property_value(v.properties, TIMER_OUT_MS)
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(v.store_timestamp);
                // Indexed after the cursor passed its due time: due at the cursor, after it.
                let due = due.max(self.p.cursor.0);
                let size = v.total_size as i32;
                self.index.insert(Entry {
                    due,
                    phys: v.phys_offset,
                    size,
                });
                off = v.queue_offset + 1;
                n += 1;
            }
        }
        Ok(off)
    }

    /// Delivers one batch of what is due (and the progress record, also when only the indexed
    /// offset moved). Returns whether the batch was full (more may be due).
    async fn deliver<H: Host>(
        &mut self,
        shard: &Rc<H>,
        indexed: Option<i64>,
    ) -> Result<bool, String> {
        let now = now_ms();
        let mut batch = Vec::new();
        let levels = self.due_levels(shard, now, &mut batch).await;
        let taken = self
            .index
            .take_due(now, MAX_BATCH.saturating_sub(batch.len()));
        read_timers(&**shard, &taken, &mut batch).await;
        let indexed = indexed.unwrap_or(self.p.indexed);
        if taken.is_empty() && levels == self.p.levels && indexed == self.p.indexed {
            return Ok(false);
        }
        let full = batch.len() >= MAX_BATCH || taken.len() == MAX_BATCH;
        let delivered = batch.len();
        let next = Progress {
            cursor: taken.last().map_or(self.p.cursor, |e| (e.due, e.phys)),
            indexed,
            levels,
        };
        batch.push(progress_record(&**shard, &next));
        shard.store().writable().await;
        match shard.store().append(&batch) {
            Ok(r) => {
                let last = r.records.last().map_or(-1, |r| r.phys_offset);
                self.progress_phys = last;
                self.progress_end = r.end_offset;
                self.p = next;
                *shard.timers().level_offsets.borrow_mut() = self.p.levels.clone();
                let t = shard.timers();
                t.delivered.set(t.delivered.get() + delivered as u64);
                Ok(full)
            }
            Err(e) => {
                self.index.put_back(&taken);
                Err(format!("delivering timers: {e}"))
            }
        }
    }

    /// The due head of each level's queue, re-stored, into `batch`. Returns the levels' next
    /// offsets after them.
    async fn due_levels<H: Host>(
        &self,
        shard: &Rc<H>,
        now: i64,
        batch: &mut Vec<storage::MessageToStore>,
    ) -> Vec<i64> {
        let mut next = self.p.levels.clone();
        let next_due = &self.next_level_due;
        next_due.set(i64::MAX);
        for (q, off) in next.iter_mut().enumerate() {
            let room = MAX_BATCH.saturating_sub(batch.len());
            let q = q as i32;
            if *off >= shard.store().max_offset(SCHEDULE_TOPIC, q) {
                continue;
            }
            if room == 0 {
                next_due.set(now); // more may be due: the next tick looks again
                continue;
            }
            // Due entries form the queue's head: stop at the first that is not due (and
            // remember when it is).
            let stop = Cell::new(false);
            let filter = |due: i64| {
                if !stop.get() && due > now {
                    next_due.set(next_due.get().min(due));
                }
                if stop.get() || due > now {
                    stop.set(true);
                }
                !stop.get()
            };
            let r = shard
                .store()
                .get_messages(SCHEDULE_TOPIC, q, *off, room.min(256), 8 << 20, filter)
                .await;
            // Full, or cut short by the byte bound before a record not due: more may be due.
            if r.records.len() >= room.min(256) || (!stop.get() && !r.records.is_empty()) {
                next_due.set(now);
            }
            if r.status == storage::GetStatus::OffsetTooSmall {
                tracing::error!(
                    level = q + 1,
                    from = *off,
                    "delayed messages lost to retention"
                );
                *off = r.next_begin_offset;
                continue;
            }
            for rec in &r.records {
                let restored = StoredMessage::decode(rec)
                    .map_err(|e| e.to_string())
                    .and_then(|(m, _)| {
                        *off = m.queue_offset + 1;
                        restore(m)
                    });
                match restored {
                    Ok(m) => batch.push(m),
                    Err(e) => tracing::error!(level = q + 1, error = %e, "delayed message dropped"),
                }
            }
        }
        next
    }

    /// Once a second: delete index buckets the durable progress is past, and tell retention
    /// what the engine still needs.
    async fn housekeeping<H: Host + 'static>(&mut self, shard: &Rc<H>) -> Result<(), String> {
        self.index
            .remove_done(self.durable_due.get())
            .await
            .map_err(|e| format!("timer index: {e}"))?;
        // Learn, off the loop, when the last progress record is durable.
        let (end, due, mark) = (self.progress_end, self.p.cursor.0, self.durable_due.clone());
        let s = shard.clone();
        glommio::spawn_local(async move {
            if s.store().wait_durable(end).await.is_ok() {
                mark.set(mark.get().max(due));
            }
        })
        .detach();
        let mut floor = i64::MAX;
        if self.progress_phys >= 0 {
            floor = self.progress_phys;
        }
        if let Some(p) = self.index.min_phys() {
            floor = floor.min(p);
        }
        for (q, off) in self.p.levels.iter().enumerate() {
            floor = floor.min(head_phys(&**shard, SCHEDULE_TOPIC, q as i32, *off).await);
        }
        floor = floor.min(head_phys(&**shard, TIMER_TOPIC, 0, self.p.indexed).await);
        shard.store().set_retention_floor(floor.max(0) as u64);
        Ok(())
    }

    /// Updates the figures the admin requests read.
    fn publish<H: Host>(&self, shard: &H) {
        let t = shard.timers();
        let store = shard.store();
        let levels: i64 = self
            .p
            .levels
            .iter()
            .enumerate()
            .map(|(q, off)| (store.max_offset(SCHEDULE_TOPIC, q as i32) - off).max(0))
            .sum();
        let unindexed = (store.max_offset(TIMER_TOPIC, 0) - self.p.indexed).max(0) as u64;
        t.pending
            .set(self.index.pending() + levels as u64 + unindexed);
        t.unindexed.set(unindexed);
        t.due_backlog.set(self.index.due_backlog(now_ms()));
        t.in_memory.set(self.index.in_memory() as u64);
    }
}

/// The commit-log offset of a queue's record at `off`, `i64::MAX` when there is none.
async fn head_phys<H: Host>(shard: &H, topic: &str, q: i32, off: i64) -> i64 {
    if off >= shard.store().max_offset(topic, q) {
        return i64::MAX;
    }
    let r = shard
        .store()
        .get_messages(topic, q, off, 1, 1, |_| true)
        .await;
    r.records
        .first()
        .and_then(|rec| RecordView::parse(rec).ok())
        .map_or(i64::MAX, |(v, _)| v.phys_offset)
}

/// Reads the records of `taken` (a span per I/O where they follow each other in the log, as a
/// burst sent in order does) and pushes them, re-stored, into `batch`. A record that cannot be
/// read or re-stored is logged and dropped.
async fn read_timers<H: Host>(
    shard: &H,
    taken: &[Entry],
    batch: &mut Vec<storage::MessageToStore>,
) {
    let list: Vec<(i64, u32)> = taken.iter().map(|e| (e.phys, e.size as u32)).collect();
    let records = shard.store().read_records(&list).await;
    for (e, rec) in taken.iter().zip(records) {
        let restored = rec.map_err(|e| e.to_string()).and_then(|rec| {
            let (m, _) = StoredMessage::decode(&rec).map_err(|e| e.to_string())?;
            restore(m)
        });
        match restored {
            Ok(m) => batch.push(m),
            Err(err) => tracing::error!(phys = e.phys, error = %err, "timer dropped"),
        }
    }
}

fn progress_record<H: Host>(shard: &H, p: &Progress) -> storage::MessageToStore {
    storage::MessageToStore {
        topic: PROGRESS_TOPIC.to_owned(),
        queue_id: 0,
        flag: 0,
        body: p.encode(),
        properties: String::new(),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: shard.store_host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code: 0,
        keys: String::new(),
        uniq_key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn progress_round_trips() {
        let p = Progress {
            cursor: (i64::MIN, 42),
            indexed: 7,
            levels: vec![1, 2, 3],
        };
        assert_eq!(Progress::decode(&p.encode()), Some(p));
        assert_eq!(Progress::decode(b"saturn-timer-progress 2 1 2 3"), None);
        assert_eq!(Progress::decode(b"saturn-timer-progress 1 1 x 3"), None);
    }
}
