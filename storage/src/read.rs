//! Reads: pull by queue offset, by commit-log offset, by time, by key. Records come from the
//! hot-tail cache when there, otherwise from aligned direct reads, verified before they are
//! returned (structure, body CRC, position, and the CRC32C the store kept when it wrote them).

use std::rc::Rc;

use bytes::Bytes;
use protocol::message::{property_value, RecordView};

use crate::error::{Result, StoreError};
use crate::io::File;
use crate::offsets::{LogOffset, QueueOffset, SegPos};
use crate::seg_index::{key_hash, RecEntry, SegIndex};
use crate::state::{cq_entries, visible_end, QueueKey, Shared};
use crate::types::{GetResult, GetStatus};
use crate::verify;

/// A cold pull reads up to this many bytes of the queue's next records along.
const READ_AHEAD_BYTES: u64 = 256 << 10;
/// Cold pulls keep this many bytes of the commit log beyond what they read in memory or being
/// read (see [`read_ahead`]) ...
const SEQ_AHEAD_BYTES: u64 = 16 << 20;
/// ... read this many at a time.
const SEQ_READ_BYTES: u64 = 2 << 20;
/// Records of one pull further apart than this are read separately.
const GAP_MAX: u64 = 512 << 10;
/// The largest span of cold records of one pull read at once (the rest with further reads).
const READ_SPAN_MAX: u64 = 16 << 20;
/// Consume-queue entries examined per pull at least (RocketMQ examines 16000 bytes = 800).
const SCAN_MIN: u64 = 800;
/// Sealed-segment indexes kept loaded (least recently used dropped first).
const LOADED_MAX: usize = 4;

pub(crate) async fn get_messages(
    sh: &Rc<Shared>,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max_count: usize,
    max_bytes: usize,
    filter: &dyn Fn(i64) -> bool,
) -> GetResult {
    let key = (topic.to_string(), queue_id);
    let Some((q_min, q_max, cl_min)) = queue_bounds(sh, &key) else {
        return GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            records: Vec::new(),
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
        };
    };
    let (min, max) = (q_min.as_i64(), q_max.as_i64());
    let result = |status, next| GetResult {
        status,
        records: Vec::new(),
        next_begin_offset: next,
        min_offset: min,
        max_offset: max,
    };
    if let Some((status, next)) = offset_status(offset, min, max) {
        return result(status, next);
    }
    // Within [min, max) from here on.
    let Some(at) = QueueOffset::from_i64(offset) else {
        return result(GetStatus::OffsetTooSmall, min);
    };
    let limits = (max_count, max_bytes, cl_min);
    let Some(pick) = pick_entries(sh, &key, at, q_max, limits, filter).await else {
        return result(GetStatus::OffsetFoundNull, offset);
    };
    let Picked {
        list,
        consumed,
        removed,
    } = pick;
    let npicked = list.len();
    let from = at.add(consumed);
    let ahead = with_next_records(sh, &key, list, from, q_max, limits).await;
    let fetched = fetch_ahead(sh, &ahead, npicked).await;
    let mut records = Vec::with_capacity(fetched.len());
    for (r, (phys, _)) in fetched.into_iter().zip(&ahead[..npicked]) {
        match r {
            Ok(b) => records.push(b),
            Err(e) => {
                tracing::error!(error = %e, offset = phys.get(), "skipping a record that failed verification")
            }
        }
    }
    let status = if !records.is_empty() {
        GetStatus::Found
    } else if removed > 0 && removed as u64 == consumed {
        GetStatus::MessageWasRemoving
    } else {
        GetStatus::NoMatchedMessage
    };
    GetResult {
        status,
        records,
        next_begin_offset: from.as_i64(),
        min_offset: min,
        max_offset: max,
    }
}

/// The queue's (min, max) offsets as readers see them and the commit log's minimum; None for
/// an unknown queue.
fn queue_bounds(sh: &Shared, key: &QueueKey) -> Option<(QueueOffset, QueueOffset, LogOffset)> {
    let st = sh.st.borrow();
    let q = st.queues.get(key)?;
    Some((q.readable_min(), q.visible(), st.cl.min_offset()))
}

/// The answer to a pull at `offset` that finds nothing to read (status, next offset), if so.
fn offset_status(offset: i64, min: i64, max: i64) -> Option<(GetStatus, i64)> {
    if max == 0 {
        Some((GetStatus::NoMessageInQueue, 0))
    } else if offset < min {
        Some((GetStatus::OffsetTooSmall, min))
    } else if offset == max {
        Some((GetStatus::OffsetOverflowOne, offset))
    } else if offset > max {
        let next = if min == 0 { min } else { max };
        Some((GetStatus::OffsetOverflowBadly, next))
    } else {
        None
    }
}

/// The records a pull takes: (position, size) of each, and how many entries it went past
/// (`consumed`), of which `removed` point below the commit log's start.
struct Picked {
    list: Vec<(LogOffset, u32)>,
    consumed: u64,
    removed: usize,
}

/// Examines the queue's entries from `offset` in growing steps, starting with what the pull
/// can take, up to [`SCAN_MIN`] (or `max_count`) of them (more only matter when the filter skips
/// entries). `limits`: (max_count, max_bytes, commit-log minimum). None when the first entries
/// cannot be read.
async fn pick_entries(
    sh: &Shared,
    key: &QueueKey,
    offset: QueueOffset,
    max: QueueOffset,
    limits: (usize, usize, LogOffset),
    filter: &dyn Fn(i64) -> bool,
) -> Option<Picked> {
    let (max_count, max_bytes, cl_min) = limits;
    let take = max_count.max(1);
    let scan = offset.distance_to(max).min(SCAN_MIN.max(max_count as u64));
    let mut p = Picked {
        list: Vec::new(),
        consumed: 0,
        removed: 0,
    };
    let mut bytes = 0usize;
    let mut step = (take as u64).min(scan);
    let mut next = offset;
    let scan_end = offset.add(scan);
    while next < scan_end {
        let n = step.min(next.distance_to(scan_end));
        let entries = match cq_entries(sh, key, next, n).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, topic = %key.0, queue_id = key.1, offset = offset.get(), "reading consume queue");
                break;
            }
        };
        for e in &entries {
            let size = e.size as usize;
            let full = !p.list.is_empty() && bytes + size > max_bytes;
            if e.is_empty() {
                blank_entry(key, offset.add(p.consumed), max);
            }
            if p.list.len() >= take || e.is_empty() || full {
                return Some(p);
            }
            p.consumed += 1;
            if e.phys < cl_min {
                p.removed += 1;
            } else if filter(e.tags) {
                bytes += size;
                p.list.push((e.phys, e.size as u32));
            }
        }
        if (entries.len() as u64) < n {
            break;
        }
        next = next.add(n);
        step = step.saturating_mul(2);
    }
    (p.consumed > 0 || !p.list.is_empty()).then_some(p)
}

/// A blank slot below the queue's visible end: recovery or a queue write left a hole, and the
/// records from here on cannot be pulled. Said loudly, with where, never served as a record.
#[cold]
fn blank_entry(key: &QueueKey, idx: QueueOffset, visible: QueueOffset) {
    tracing::error!(
        topic = %key.0,
        queue_id = key.1,
        offset = idx.get(),
        visible = visible.get(),
        "blank consume-queue entry inside the visible range"
    );
}

/// A cold pull (its last record neither in the hot tail nor about to be rewritten) gets the
/// queue's next records appended to `list`, up to [`READ_AHEAD_BYTES`]: they are read along
/// with these when they are near.
async fn with_next_records(
    sh: &Shared,
    key: &QueueKey,
    mut list: Vec<(LogOffset, u32)>,
    from: QueueOffset,
    max: QueueOffset,
    limits: (usize, usize, LogOffset),
) -> Vec<(LogOffset, u32)> {
    let (max_count, _, cl_min) = limits;
    let cold = list.last().is_some_and(|&(p, n)| {
        let st = sh.st.borrow();
        p.add(u64::from(n)) <= st.cl.flushed().align_down() && st.cl.cached(p, n as usize).is_none()
    });
    if !cold {
        return list;
    }
    let n = (from.saturating_distance_to(max)).min(max_count.clamp(32, 256) as u64);
    if let Ok(es) = cq_entries(sh, key, from, n).await {
        let mut b = 0u64;
        for e in es.iter().take_while(|e| !e.is_empty()) {
            if b >= READ_AHEAD_BYTES || e.phys < cl_min {
                break;
            }
            b += e.size as u64;
            list.push((e.phys, e.size as u32));
        }
    }
    list
}

/// Opens an existing segment file for reading.
pub(crate) async fn segment_file(sh: &Shared, base: LogOffset) -> Result<Rc<File>> {
    let path = {
        let st = sh.st.borrow();
        if let Some(f) = st.cl.files.get(&base) {
            return Ok(f.clone());
        }
        if !st.cl.segments().contains_key(&base) {
            return Err(StoreError::NotFound {
                offset: base.get(),
                reason: "segment deleted",
            });
        }
        (st.cl.segment_path(base), st.cfg.disk.clone())
    };
    let (path, disk) = path;
    let f = Rc::new(File::open(&disk, &path, false).await?);
    Ok(sh.st.borrow_mut().cl.files.entry(base).or_insert(f).clone())
}

/// The record-table entry the store kept for the record at `phys`, if it knows the segment.
async fn rec_entry(sh: &Shared, phys: LogOffset) -> Result<Option<RecEntry>> {
    let (base, pos, idx_path) = loop {
        let wait = {
            let st = sh.st.borrow();
            let base = st.cl.base_of(phys);
            let pos = phys.pos_in(base);
            if base == st.cl.active_base() {
                return Ok(st.cl.active.record(pos));
            }
            if let Some(i) = st.cl.sealing.get(&base) {
                return Ok(i.record(pos));
            }
            if let Some(k) = st.cl.loaded.iter().position(|(b, _)| *b == base) {
                let r = st.cl.loaded[k].1.record(pos);
                if k + 1 < st.cl.loaded.len() {
                    // Least recently used first: readers of a few segments at once (consumers
                    // at different points of a backlog) keep theirs loaded.
                    drop(st);
                    let mut st = sh.st.borrow_mut();
                    if let Some(e) = st.cl.loaded.remove(k) {
                        st.cl.loaded.push_back(e);
                    }
                }
                return Ok(r);
            }
            match st.cl.loading.iter().find(|(b, _)| *b == base) {
                Some((_, n)) => n.notified(),
                None => break (base, pos, st.cl.idx_path(base)),
            }
        };
        // Another reader is loading it: wait, then look again.
        wait.await;
    };
    let n = Rc::new(crate::notify::Notify::default());
    sh.st.borrow_mut().cl.loading.push((base, n.clone()));
    let idx = load_index(sh, base, &idx_path).await;
    sh.st
        .borrow_mut()
        .cl
        .loading
        .retain(|(_, x)| !Rc::ptr_eq(x, &n));
    n.notify();
    Ok(idx?.and_then(|i| i.record(pos)))
}

async fn load_index(
    sh: &Shared,
    base: LogOffset,
    path: &std::path::Path,
) -> Result<Option<Rc<SegIndex>>> {
    let disk = sh.st.borrow().cfg.disk.clone();
    if !disk.exists(path) {
        return Ok(None);
    }
    let f = File::open(&disk, path, false).await?;
    let size = f.size().await?;
    let b = f.read_at(0, size as usize).await?;
    f.close().await?;
    let idx = match SegIndex::decode(&b, path) {
        Ok(i) => Rc::new(i),
        Err(e) => {
            tracing::error!(error = %e, "segment index unreadable");
            return Ok(None);
        }
    };
    let mut st = sh.st.borrow_mut();
    // Concurrent readers may have loaded it meanwhile: keep one copy, so that the list holds
    // LOADED_MAX different segments.
    if let Some((_, i)) = st.cl.loaded.iter().find(|(b, _)| *b == base) {
        return Ok(Some(i.clone()));
    }
    st.cl.loaded.push_back((base, idx.clone()));
    while st.cl.loaded.len() > LOADED_MAX {
        st.cl.loaded.pop_front();
    }
    Ok(Some(idx))
}

/// Checks a record read back from disk.
///
/// A record the store has a CRC32C entry for (every record, unless its sealed segment's `.idx`
/// is missing or unreadable) is checked against it alone: the CRC32C was computed over the
/// record's full bytes at its position when it was appended, so a match means these are the
/// bytes written there (magic, TOTALSIZE, PHYSICALOFFSET and BODYCRC, which the store computed
/// too, included). Other records are parsed and their body CRC computed.
async fn verify(sh: &Shared, phys: LogOffset, b: &Bytes) -> Result<()> {
    let corrupt = |reason: String| StoreError::Corrupt {
        offset: phys.get(),
        reason,
    };
    match rec_entry(sh, phys).await? {
        Some(e) => return verify::against_entry(b, &e).map_err(corrupt),
        None => {
            let st = sh.st.borrow();
            let base = st.cl.base_of(phys);
            // The active segment's table is complete: a record it lacks was never written whole.
            if base == st.cl.active_base() || st.cl.sealing.contains_key(&base) {
                return Err(corrupt("not a record the store wrote".into()));
            }
        }
    }
    verify::structural(b, phys).map_err(corrupt)
}

/// Fetches records `(phys, size)`, from memory (hot tail, read-ahead cache) or disk, verifying
/// every record that did not come from the hot tail.
///
/// Records missing from memory are read a span at a time (see [`plan_run`]): from the first
/// missing record on, as long as the records follow each other in one segment without large
/// gaps, rounded out to `read_chunk_bytes` (and starting where the cache's bytes end); the span
/// is kept in the read-ahead cache when its bytes are final (below the flushed offset), for the
/// records of the other queues it holds (and the next pull of this one). The pull's later spans
/// are read in the background meanwhile.
pub(crate) async fn fetch(sh: &Rc<Shared>, list: &[(LogOffset, u32)]) -> Vec<Result<Bytes>> {
    fetch_ahead(sh, list, list.len()).await
}

/// [`fetch`] of `all[..n]`; the records of `all[n..]` (the queue's next ones) are read into the
/// read-ahead cache when they extend the last span read, not returned.
async fn fetch_ahead(sh: &Rc<Shared>, all: &[(LogOffset, u32)], n: usize) -> Vec<Result<Bytes>> {
    let list = &all[..n];
    let mut out = Vec::with_capacity(list.len());
    let mut i = 0;
    while i < list.len() {
        let (p, s) = list[i];
        match look_up(sh, p, s) {
            InMemory::Hot(b) => {
                crate::stats::add(&sh.stats.hot_reads, 1);
                out.push(Ok(b));
                i += 1;
            }
            InMemory::ReadAhead(b) => {
                if i + 1 == list.len() {
                    let base = sh.st.borrow().cl.base_of(p);
                    read_ahead(sh, base, p.add(u64::from(s)));
                }
                crate::stats::add(&sh.stats.read_ahead_reads, 1);
                out.push(verify(sh, p, &b).await.map(|_| b));
                i += 1;
            }
            // Another pull (or a prefetch) is reading these bytes: look again once it is done.
            InMemory::Loading(w) => w.await,
            InMemory::No { uncached_from } => {
                let run = plan_run(sh, all, i, uncached_from);
                let j = run.j.min(list.len());
                let data = if run.keep {
                    // The later runs of this pull that are not in memory: read in the
                    // background, so the disk works on them while this one is read and served.
                    prefetch_runs(sh, list, j, p);
                    read_ahead(sh, run.base, run.to);
                    read_extent(sh, run.base, run.from, run.to).await
                } else {
                    read_span(sh, run.base, run.from, run.to).await
                };
                let served = serve_run(sh, &list[i..j], &run, data, &mut out).await;
                crate::stats::add(&sh.stats.disk_reads, served as u64);
                i += served;
            }
        }
    }
    out
}

/// Where a record's bytes are in memory, if they are.
enum InMemory {
    Hot(Bytes),
    ReadAhead(Bytes),
    /// Being read by another pull: resolves when that read is done.
    Loading(crate::notify::Notified),
    /// Not in memory; the read-ahead cache holds the bytes before `uncached_from`.
    No {
        uncached_from: LogOffset,
    },
}

#[inline]
fn look_up(sh: &Shared, p: LogOffset, s: u32) -> InMemory {
    let mut st = sh.st.borrow_mut();
    if let Some(b) = st.cl.cached(p, s as usize) {
        return InMemory::Hot(b);
    }
    if let Some(b) = st.cl.ra.get(p, s as usize) {
        return InMemory::ReadAhead(b);
    }
    let uf = st.cl.ra.cached_to(p);
    match st.cl.ra.loading(uf) {
        Some(w) => InMemory::Loading(w),
        None => InMemory::No { uncached_from: uf },
    }
}

/// Starts background reads into the read-ahead cache for the records of `list` from `k` on
/// that are not in memory, run by run, within [`READ_SPAN_MAX`] of `p`.
fn prefetch_runs(sh: &Rc<Shared>, list: &[(LogOffset, u32)], mut k: usize, p: LogOffset) {
    while k < list.len() && p.distance_to(list[k].0.add(u64::from(list[k].1))) <= READ_SPAN_MAX {
        let (q, n) = list[k];
        let uf = {
            let st = sh.st.borrow();
            let uf = st.cl.ra.cached_to(q);
            let in_memory = st.cl.cached(q, n as usize).is_some()
                || uf >= q.add(u64::from(n))
                || st.cl.ra.loading(uf).is_some();
            if in_memory {
                k += 1;
                continue;
            }
            uf
        };
        let r = plan_run(sh, list, k, uf);
        if !r.keep {
            break;
        }
        let token = sh.st.borrow_mut().cl.ra.begin(r.from, r.to);
        let sh2 = sh.clone();
        glommio::spawn_local(async move {
            if let Err(e) = read_into_cache(&sh2, r.base, r.from, r.to, token).await {
                tracing::warn!(error = %e, offset = r.from.get(), "commit-log read failed");
            }
        })
        .detach();
        k = r.j;
    }
}

/// Serves the records of `recs` (the records `run` planned) from the bytes read, verified, into
/// `out`; returns how many it served (the rest, beyond the span read, are looked up again).
async fn serve_run(
    sh: &Shared,
    recs: &[(LogOffset, u32)],
    run: &Run,
    data: Result<Bytes>,
    out: &mut Vec<Result<Bytes>>,
) -> usize {
    let (base, from, to) = (run.base, run.from, run.to);
    let mut served = 0;
    for (k, &(p, s)) in recs.iter().enumerate() {
        let end = p.add(u64::from(s));
        let r = match &data {
            Ok(d) if p >= from && end <= to => {
                let lo = from.distance_to(p) as usize;
                Ok(d.slice(lo..lo + s as usize))
            }
            // The first record may begin in the cached bytes before `from` (read whole
            // if they were evicted meanwhile).
            Ok(_) if k == 0 => {
                let cached = sh.st.borrow_mut().cl.ra.get(p, s as usize);
                match cached {
                    Some(b) => Ok(b),
                    None => read_span(sh, base, p.align_down(), end.align_up())
                        .await
                        .map(|d| {
                            d.slice(p.align_down().distance_to(p) as usize..)
                                .slice(..s as usize)
                        }),
                }
            }
            // Beyond the span read (cached already): looked up again.
            Ok(_) => break,
            Err(e) => Err(StoreError::Corrupt {
                offset: p.get(),
                reason: format!("read failed: {e}"),
            }),
        };
        let r = match r {
            Ok(b) => verify(sh, p, &b).await.map(|_| b),
            Err(e) => Err(e),
        };
        out.push(r);
        served += 1;
    }
    served
}

/// Keeps the commit log read ahead of a pull that read (or found in the read-ahead cache) the
/// bytes up to `to` of segment `base`: when less than [`SEQ_AHEAD_BYTES`] beyond `to` are in
/// memory or being read, the next [`SEQ_READ_BYTES`] are read in the background. Consumers
/// draining a backlog go through the log in order and find the next spans in memory, while
/// the disk reads on.
fn read_ahead(sh: &Rc<Shared>, base: LogOffset, to: LogOffset) {
    let (at, end, token) = {
        let mut st = sh.st.borrow_mut();
        let limit = st
            .cl
            .flushed()
            .align_down()
            .min(base.add(st.cl.segment_size()));
        let mut at = to;
        loop {
            let c = st.cl.ra.cached_to(at);
            match st.cl.ra.loading_end(c) {
                Some(e) if e > c => at = e,
                _ => {
                    at = c;
                    break;
                }
            }
        }
        if at >= to.add(SEQ_AHEAD_BYTES) || at >= limit {
            return;
        }
        let mut end = at.add(SEQ_READ_BYTES).align_down().min(limit);
        if let Some(n) = st.cl.ra.next_start(at, end) {
            end = n;
        }
        if end <= at || at.align_down() != at {
            return;
        }
        (at, end, st.cl.ra.begin(at, end))
    };
    let sh = sh.clone();
    glommio::spawn_local(async move {
        if let Err(e) = read_into_cache(&sh, base, at, end, token).await {
            tracing::warn!(error = %e, offset = at.get(), "commit-log read-ahead failed");
        }
    })
    .detach();
}

/// A span of records `list[i..j]` to read: `[from, to)` of the segment at `base`.
#[derive(Clone, Copy)]
struct Run {
    j: usize,
    base: LogOffset,
    from: LogOffset,
    to: LogOffset,
    /// Whether the bytes are final (below the flushed offset), so the span can be cached.
    keep: bool,
}

/// Plans the read of the records from `list[i]` on (not in memory from `uf` on): as long as they
/// follow each other in one segment, without gaps over [`GAP_MAX`], within [`READ_SPAN_MAX`].
fn plan_run(sh: &Shared, list: &[(LogOffset, u32)], i: usize, uf: LogOffset) -> Run {
    let st = sh.st.borrow();
    let (p, _) = list[i];
    let base = st.cl.base_of(p);
    let seg_end = base.add(st.cl.segment_size());
    let chunk = st.cfg.read_chunk_bytes as u64;
    let limit = st.cl.flushed().align_down();
    let end_of = |k: usize| list[k].0.add(u64::from(list[k].1));
    let mut j = i + 1;
    while j < list.len()
        && list[j].0 >= end_of(j - 1)
        && end_of(j - 1).distance_to(list[j].0) <= GAP_MAX
        && end_of(j) <= limit.min(seg_end)
        && p.distance_to(end_of(j)) <= READ_SPAN_MAX
    {
        j += 1;
    }
    let need_end = end_of(j - 1);
    // Bytes at or beyond `limit` may still change on disk: such a span is not kept.
    let keep = need_end <= limit;
    if !keep {
        return Run {
            j,
            base,
            from: p.align_down(),
            to: need_end.align_up(),
            keep,
        };
    }
    let from = if uf > p {
        uf
    } else {
        st.cl
            .ra
            .cached_to(base.add(base.distance_to(p) / chunk * chunk))
    };
    let mut to = base
        .add(base.distance_to(need_end).div_ceil(chunk) * chunk)
        .min(seg_end)
        .min(limit);
    if let Some(n) = st.cl.ra.next_start(from, to) {
        to = n;
    }
    Run {
        j,
        base,
        from,
        to: to.max(need_end.align_up()),
        keep,
    }
}

/// Reads `[from, to)` of the segment at `base` (block-aligned) without keeping it.
async fn read_span(sh: &Shared, base: LogOffset, from: LogOffset, to: LogOffset) -> Result<Bytes> {
    let f = segment_file(sh, base).await?;
    let (fd, path) = f.writer_handle()?;
    sh.reader
        .read(
            fd,
            path,
            from.pos_in(base).file_pos(),
            from.distance_to(to) as usize,
        )
        .await
}

/// Reads `[from, to)` of the segment at `base` into the read-ahead cache (registered as under
/// way meanwhile, so that other readers wait for it).
async fn read_extent(
    sh: &Shared,
    base: LogOffset,
    from: LogOffset,
    to: LogOffset,
) -> Result<Bytes> {
    let token = sh.st.borrow_mut().cl.ra.begin(from, to);
    read_into_cache(sh, base, from, to, token).await
}

/// Reads `[from, to)`, registered with `token` by `ReadCache::begin`, into the cache.
async fn read_into_cache(
    sh: &Shared,
    base: LogOffset,
    from: LogOffset,
    to: LogOffset,
    token: Rc<crate::notify::Notify>,
) -> Result<Bytes> {
    let data = read_span(sh, base, from, to).await;
    sh.st
        .borrow_mut()
        .cl
        .ra
        .loaded(from, &token, data.as_ref().ok().cloned());
    data
}

pub(crate) async fn read_record(sh: &Rc<Shared>, phys: i64) -> Result<Bytes> {
    let not_found = |reason| StoreError::NotFound {
        offset: phys as u64,
        reason,
    };
    let Some(phys) = LogOffset::from_i64(phys) else {
        return Err(not_found("negative offset"));
    };
    {
        let st = sh.st.borrow();
        if phys < st.cl.min_offset() {
            return Err(not_found("deleted by retention"));
        }
        if phys >= visible_end(&st) {
            return Err(not_found("beyond the end of the commit log"));
        }
    }
    let size = match rec_entry(sh, phys).await? {
        Some(r) => r.size,
        None => {
            // No table for this segment: read the size field.
            let b = fetch_raw(sh, phys, 4).await?;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        }
    };
    if size as u64 > sh.st.borrow().cl.segment_size() {
        return Err(not_found("no record starts here"));
    }
    fetch(sh, &[(phys, size)])
        .await
        .pop()
        .unwrap_or(Err(StoreError::Closed))
}

async fn fetch_raw(sh: &Shared, phys: LogOffset, len: usize) -> Result<Bytes> {
    if let Some(b) = sh.st.borrow().cl.cached(phys, len) {
        return Ok(b);
    }
    let base = sh.st.borrow().cl.base_of(phys);
    let f = segment_file(sh, base).await?;
    f.read_exact_at(phys.pos_in(base).file_pos(), len).await
}

async fn store_time_of_entry(
    sh: &Rc<Shared>,
    key: &(String, i32),
    idx: QueueOffset,
) -> Option<i64> {
    let e = *cq_entries(sh, key, idx, 1).await.ok()?.first()?;
    let b = fetch(sh, &[(e.phys, e.size as u32)]).await.pop()?.ok()?;
    RecordView::parse(&b).ok().map(|(v, _)| v.store_timestamp)
}

pub(crate) async fn offset_by_timestamp(
    sh: &Rc<Shared>,
    topic: &str,
    queue_id: i32,
    ts: i64,
    upper: bool,
) -> i64 {
    let key = (topic.to_string(), queue_id);
    let (min, max) = {
        let st = sh.st.borrow();
        match st.queues.get(&key) {
            Some(q) => (q.readable_min(), q.visible()),
            None => return 0,
        }
    };
    if min >= max {
        return max.as_i64();
    }
    // Lower: first index with store time >= ts. Upper: last index with store time <= ts.
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo.midpoint(hi);
        let t = store_time_of_entry(sh, &key, mid).await.unwrap_or(i64::MIN);
        let go_right = if upper { t <= ts } else { t < ts };
        if go_right {
            lo = mid.next();
        } else {
            hi = mid;
        }
    }
    if upper {
        if lo == min {
            min.as_i64()
        } else {
            lo.prev().as_i64()
        }
    } else {
        lo.as_i64()
    }
}

pub(crate) async fn earliest_store_time(sh: &Rc<Shared>, topic: &str, queue_id: i32) -> i64 {
    let key = (topic.to_string(), queue_id);
    let min = {
        let st = sh.st.borrow();
        match st.queues.get(&key) {
            Some(q) if q.min() < q.visible() => q.min(),
            _ => return -1,
        }
    };
    store_time_of_entry(sh, &key, min).await.unwrap_or(-1)
}

pub(crate) async fn query_by_key(
    sh: &Rc<Shared>,
    topic: &str,
    key: &str,
    max: usize,
    begin: i64,
    end: i64,
) -> Vec<Bytes> {
    let h = key_hash(topic, key);
    let (mut cands, sealed) = key_candidates(sh, h);
    let mut out = Vec::new();
    let mut sealed = sealed.into_iter();
    loop {
        for (base, positions, min_ts, max_ts) in cands.drain(..) {
            if max_ts < begin || min_ts > end {
                continue;
            }
            for pos in positions {
                if out.len() >= max {
                    return out;
                }
                let Ok(b) = read_record(sh, pos.at(base).as_i64()).await else {
                    continue;
                };
                if record_matches(&b, topic, key, begin, end) {
                    out.push(b);
                }
            }
        }
        let Some((base, min_ts, max_ts)) = sealed.next() else {
            return out;
        };
        if max_ts < begin || min_ts > end {
            continue;
        }
        if let Some(i) = sealed_index(sh, base).await {
            cands.push((base, i.lookup(h), min_ts, max_ts));
        }
    }
}

/// Candidates for a key hash: (segment base, positions, min store time, max store time) from
/// the indexes in memory, newest segment first; and the sealed segments whose index is on disk,
/// (base, min store time, max store time), newest first.
#[allow(clippy::type_complexity)]
fn key_candidates(
    sh: &Shared,
    h: u64,
) -> (
    Vec<(LogOffset, Vec<SegPos>, i64, i64)>,
    Vec<(LogOffset, i64, i64)>,
) {
    let st = sh.st.borrow();
    let a = &st.cl.active;
    let mut c = vec![(st.cl.active_base(), a.lookup(h), a.min_ts, a.max_ts)];
    for (b, i) in st.cl.sealing.iter().rev() {
        c.push((*b, i.lookup(h), i.min_ts, i.max_ts));
    }
    let sealed = st
        .cl
        .segments()
        .iter()
        .rev()
        .filter_map(|(b, info)| match info {
            Some(i) if i.idx_on_disk => Some((*b, i.min_ts, i.max_ts)),
            _ => None,
        })
        .collect();
    (c, sealed)
}

/// Whether a record found under a key hash is of `topic`, has `key` as its UNIQ_KEY or among
/// its KEYS, and was stored within `[begin, end]`.
fn record_matches(b: &[u8], topic: &str, key: &str, begin: i64, end: i64) -> bool {
    let Ok((v, _)) = RecordView::parse(b) else {
        return false;
    };
    let keys_match = property_value(v.properties, protocol::message::properties::UNIQ_KEY)
        == Some(key)
        || property_value(v.properties, protocol::message::properties::KEYS)
            .is_some_and(|ks| ks.split(' ').any(|k| k == key));
    v.topic == topic && keys_match && v.store_timestamp >= begin && v.store_timestamp <= end
}

/// A sealed segment's index: loaded already, or loaded from its `.idx` now.
async fn sealed_index(sh: &Shared, base: LogOffset) -> Option<Rc<SegIndex>> {
    let loaded = {
        let st = sh.st.borrow();
        st.cl
            .loaded
            .iter()
            .find(|(b, _)| *b == base)
            .map(|(_, i)| i.clone())
    };
    if loaded.is_some() {
        return loaded;
    }
    let path = sh.st.borrow().cl.idx_path(base);
    load_index(sh, base, &path).await.ok().flatten()
}
