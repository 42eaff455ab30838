//! Recovery at open.
//!
//! 1. Load the checkpoint (offset C: the commit log below C is durable and the consume queues
//!    cover it) and the consume queues, each cut back to the entries of records below C.
//! 2. Scan the commit log forward from the earliest of: C, the active segment's start (its
//!    in-memory index is rebuilt), any sealed segment whose index file is missing, and, when a
//!    consume queue is missing or behind the checkpoint's manifest, the oldest segment. Every
//!    record is verified (magic, size, position, body CRC); valid records are dispatched to the
//!    consume queues idempotently (by their stored QUEUEOFFSET) and to the index.
//! 3. An invalid record below C is corruption in the middle of the log: it is reported, skipped
//!    (the scan resynchronises on the next record that verifies) and never served. An invalid
//!    record at or beyond C is a torn tail: the log is truncated there, and the bytes a crashed
//!    flush may have left beyond it are zeroed so they can never reappear as records.
//! 4. One log line says what was done.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use protocol::message::{
    properties, property_value, sysflag, RecordView, BLANK_MAGIC, MESSAGE_MAGIC_V1,
    MESSAGE_MAGIC_V2,
};

use crate::checkpoint::Checkpoint;
use crate::commitlog::{segment_name, CommitLog, Piece, SealedInfo};
use crate::config::StoreConfig;
use crate::cq::{file_name, ConsumeQueue, CqEntry, CQ_ENTRY};
use crate::error::{Result, StoreError};
use crate::io::{align_down, align_up, Disk, File, BLOCK};
use crate::offsets::{LogOffset, QueueOffset, SegPos};
use crate::seg_index::{index_keys, read_sums, write_index_file, RecEntry, SegIndex};
use crate::state::{QueueKey, State};
use crate::types::RecoveryReport;
use crate::verify;

/// Commit-log bytes read per scan step.
const SCAN_CHUNK: usize = 8 << 20;

fn parse_name(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

pub(crate) async fn recover(cfg: StoreConfig) -> Result<State> {
    let t0 = Instant::now();
    let seg = cfg.segment_size;
    let cl_dir = cfg.dir.join("commitlog");
    let cq_root = cfg.dir.join("consumequeue");
    let free_dir = cl_dir.join("free");
    let disk = cfg.disk.clone();
    disk.create_dir_all(&free_dir)?;
    disk.create_dir_all(&cq_root)?;
    crate::io::probe_device(&disk, &cfg.dir).await?;

    let mut free_segments = spare_segments(&cfg, &free_dir)?;
    let Listing {
        bases,
        idx_files,
        journals,
    } = list_segments(&disk, &cl_dir)?;
    let mut cl = CommitLog::new(&cl_dir, seg, cfg.hot_cache_bytes + cfg.max_dirty_bytes);
    cl.ra = crate::readcache::ReadCache::new(cfg.read_cache_bytes);
    let cp = Checkpoint::load(&disk, &cfg.dir).await?;
    let mut report = RecoveryReport {
        checkpoint: cp.as_ref().map(|c| c.offset.get()),
        segments: bases.len(),
        ..Default::default()
    };
    if bases.is_empty() {
        if cp.as_ref().is_some_and(|c| c.offset > LogOffset::ZERO) {
            tracing::warn!("checkpoint present but no commit-log segments: starting empty");
        }
        return start_empty(cfg, cl, free_segments, report, t0);
    }
    let bases = contiguous(&bases, seg);
    let (first, last) = (bases[0], bases[bases.len() - 1]);
    cl.set_min_offset(first);
    let c = cp
        .as_ref()
        .map_or(first, |c| c.offset.clamp(first, last.add(seg)));

    let mut queues = load_queues(&cfg, &cq_root, c, first).await?;
    report.rebuilt_queues = queues_behind(cp.as_ref(), &queues);
    let rebuild = report.rebuilt_queues > 0;
    let (start, indexed_from) = scan_start(&bases, &idx_files, c, rebuild);
    report.scanned_from = start.get();
    let mut scan = Scan {
        cfg: &cfg,
        c,
        queues: &mut queues,
        indexes: BTreeMap::new(),
        indexed_from,
        report: &mut report,
        sums: HashMap::new(),
    };
    let end = scan.run(&bases, start).await?;
    let indexes = std::mem::take(&mut scan.indexes);
    report.end_offset = end.get();
    let log_end = LogEnd {
        bases: &bases,
        end,
        journals: &journals,
    };
    set_log_end(&cfg, &mut cl, &log_end, indexes, &mut free_segments).await?;
    if let Some(cp) = &cp {
        keep_manifest_queues(&cfg, cp, &mut queues);
    }
    report.elapsed = t0.elapsed();
    log_report(&report);
    Ok(new_state(cfg, cl, queues, free_segments, report))
}

/// Where the scan ended: the segments found, the recovered end, the journals found.
struct LogEnd<'a> {
    bases: &'a [LogOffset],
    end: LogOffset,
    journals: &'a [LogOffset],
}

/// Makes `e.end` the commit log's end: zeros what a crashed flush may have left after it,
/// retires later segments, fills the segment table (writing the `.idx` files the scan rebuilt),
/// takes the active segment's rebuilt index and drops every journal (see [`drop_journals`]).
async fn set_log_end(
    cfg: &StoreConfig,
    cl: &mut CommitLog,
    e: &LogEnd<'_>,
    mut indexes: BTreeMap<LogOffset, SegIndex>,
    free_segments: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let disk = &cfg.disk;
    let active = e.end.segment_base(cfg.segment_size);
    let max_garbage = (cfg.max_dirty_bytes + cfg.write_chunk_bytes) as u64 + BLOCK;
    let tail = scrub_after(cl, active, e.end, max_garbage, cfg).await?;
    for &b in e.bases.iter().filter(|&&b| b > active) {
        retire_segment(cfg, cl, b, max_garbage, free_segments).await?;
    }
    for &b in e.bases.iter().filter(|&&b| b < active) {
        let info = sealed_info(disk, cl, b, indexes.remove(&b)).await?;
        cl.insert_segment(b, Some(info));
    }
    cl.insert_segment(active, None);
    cl.active = match indexes.remove(&active) {
        Some(i) => i,
        None if e.end == active => SegIndex::new(),
        None => {
            return Err(StoreError::Corrupt {
                offset: active.get(),
                reason: "active segment was not indexed by the scan".into(),
            })
        }
    };
    drop_journals(disk, cl, e.journals)?;
    set_end(disk, cl, e.end, tail).await
}

/// Queues in the checkpoint's manifest that the scan did not bring back keep their end offset.
fn keep_manifest_queues(
    cfg: &StoreConfig,
    cp: &Checkpoint,
    queues: &mut HashMap<QueueKey, ConsumeQueue>,
) {
    let cq_root = cfg.dir.join("consumequeue");
    for (t, qid, m) in &cp.queues {
        let key = (t.clone(), *qid);
        if !queues.contains_key(&key) && *m > QueueOffset::ZERO {
            let q = ConsumeQueue::new(&cq_root, t, *qid, cfg.cq_file_entries, *m);
            queues.insert(key, q);
        }
    }
}

/// Where the scan starts (a record boundary: the checkpoint, or a segment's start) and the first
/// segment whose index it rebuilds: the first without a usable `.idx` (the active one has none).
fn scan_start(
    bases: &[LogOffset],
    idx_files: &[LogOffset],
    c: LogOffset,
    rebuild: bool,
) -> (LogOffset, LogOffset) {
    let (first, last) = (bases[0], bases[bases.len() - 1]);
    let idx_ok = |b: LogOffset| idx_files.contains(&b) && b != last;
    let indexed_from = bases.iter().copied().find(|&b| !idx_ok(b)).unwrap_or(last);
    let start = if rebuild { first } else { c.min(last) };
    (start.min(indexed_from), indexed_from)
}

/// The recovered end: everything below it is durable; the partial block's bytes (`tail`) are
/// kept for the next flush, which rewrites that block.
async fn set_end(
    disk: &Disk,
    cl: &mut CommitLog,
    end: LogOffset,
    tail: Option<Piece>,
) -> Result<()> {
    cl.set_recovered_end(end, tail);
    let active = cl.active_base();
    let active_path = cl.segment_path(active);
    if disk.exists(&active_path) {
        let f = Rc::new(File::open(disk, &active_path, false).await?);
        cl.files.insert(active, f);
    }
    Ok(())
}

/// No segment: an empty store (consume queues of a lost log go).
fn start_empty(
    cfg: StoreConfig,
    mut cl: CommitLog,
    free_segments: Vec<std::path::PathBuf>,
    mut report: RecoveryReport,
    t0: Instant,
) -> Result<State> {
    let cq_root = cfg.dir.join("consumequeue");
    cfg.disk.remove_dir_all(&cq_root)?;
    cfg.disk.create_dir_all(&cq_root)?;
    cl.insert_segment(LogOffset::ZERO, None);
    report.elapsed = t0.elapsed();
    log_report(&report);
    Ok(new_state(cfg, cl, HashMap::new(), free_segments, report))
}

/// Spare segments: finished recycled ones stay, half-prepared ones go.
fn spare_segments(cfg: &StoreConfig, free_dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut free_segments = Vec::new();
    for name in cfg.disk.list_dir(free_dir)? {
        let p = free_dir.join(&name);
        if name.starts_with("recycled-") && free_segments.len() < cfg.recycle_segments {
            free_segments.push(p);
        } else {
            cfg.disk.remove_file(&p)?;
        }
    }
    Ok(free_segments)
}

/// What the commit-log directory holds.
struct Listing {
    /// Segment bases, ascending.
    bases: Vec<LogOffset>,
    /// Segments with an `.idx` file.
    idx_files: Vec<LogOffset>,
    /// Segments with a `.sums` journal.
    journals: Vec<LogOffset>,
}

/// Segment bases (sorted), bases with an `.idx` file and bases with a journal; leftover
/// temporary files go.
fn list_segments(disk: &Disk, cl_dir: &Path) -> Result<Listing> {
    let mut l = Listing {
        bases: Vec::new(),
        idx_files: Vec::new(),
        journals: Vec::new(),
    };
    for name in disk.list_dir(cl_dir)? {
        if let Some(b) = parse_name(&name) {
            l.bases.push(LogOffset::new(b));
        } else if let Some(b) = name.strip_suffix(".idx").and_then(parse_name) {
            l.idx_files.push(LogOffset::new(b));
        } else if let Some(b) = name.strip_suffix(".sums").and_then(parse_name) {
            l.journals.push(LogOffset::new(b));
        } else if name.ends_with(".tmp") {
            disk.remove_file(&cl_dir.join(&name))?;
        }
    }
    l.bases.sort_unstable();
    Ok(l)
}

/// After the scan no journal is needed: it has read those of the segments it indexed, and
/// every older segment has its `.idx`. Each one listed goes, stale ones included: a journal
/// whose removal a power cut undid (removals are not synced), or one the checkpointer wrote
/// again while its segment was being sealed. Left alone those would pile up, one per segment,
/// and every later recovery would list them.
fn drop_journals(disk: &Disk, cl: &CommitLog, journals: &[LogOffset]) -> Result<()> {
    for &b in journals {
        disk.remove_file(&cl.sums_path(b))?;
    }
    Ok(())
}

/// The segments from the first on up to a gap (anything after a gap is unreachable).
fn contiguous(bases: &[LogOffset], seg: u64) -> Vec<LogOffset> {
    let mut out = vec![bases[0]];
    for &b in &bases[1..] {
        if b == out[out.len() - 1].add(seg) {
            out.push(b);
        } else {
            tracing::error!(
                segment = b.get(),
                "commit-log segment after a gap; ignoring it"
            );
        }
    }
    out
}

/// Every consume queue on disk, cut back to the entries of records below `c`.
async fn load_queues(
    cfg: &StoreConfig,
    cq_root: &Path,
    c: LogOffset,
    first: LogOffset,
) -> Result<HashMap<(String, i32), ConsumeQueue>> {
    let mut queues = HashMap::new();
    for topic in cfg.disk.list_dir(cq_root)? {
        for qname in cfg.disk.list_dir(&cq_root.join(&topic))? {
            let Ok(qid) = qname.parse::<i32>() else {
                continue;
            };
            if let Some(q) = load_queue(cfg, cq_root, &topic, qid, c, first).await? {
                queues.insert((topic.clone(), qid), q);
            }
        }
    }
    Ok(queues)
}

/// How many queues are missing or behind the checkpoint's manifest (they are rebuilt).
fn queues_behind(cp: Option<&Checkpoint>, queues: &HashMap<(String, i32), ConsumeQueue>) -> usize {
    let Some(cp) = cp else { return 0 };
    let mut n = 0;
    for (t, qid, m) in &cp.queues {
        let have = queues
            .get(&(t.clone(), *qid))
            .map_or(QueueOffset::ZERO, |q| q.max());
        if have < *m {
            tracing::warn!(topic = %t, queue = qid, have = have.get(), expected = m.get(), "consume queue missing or behind; rebuilding");
            n += 1;
        }
    }
    n
}

/// Zeros the start of a segment beyond the recovered end, then recycles or removes it.
async fn retire_segment(
    cfg: &StoreConfig,
    cl: &CommitLog,
    b: LogOffset,
    max_garbage: u64,
    free_segments: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let disk = &cfg.disk;
    let path = cl.segment_path(b);
    let f = Rc::new(File::open(disk, &path, false).await?);
    let n = max_garbage.min(cfg.segment_size);
    f.zero_range(0, n, cfg.write_chunk_bytes, cfg.write_depth)
        .await?;
    f.fdatasync().await?;
    drop(f);
    if free_segments.len() < cfg.recycle_segments {
        let to = cl
            .dir()
            .join("free")
            .join(format!("recycled-{:020}", b.get()));
        disk.rename_durable(&path, &to)?;
        free_segments.push(to);
    } else {
        disk.remove_durable(&path)?;
    }
    disk.remove_durable(&cl.idx_path(b))?;
    tracing::warn!(
        segment = b.get(),
        "segment beyond the recovered end retired"
    );
    Ok(())
}

/// A sealed segment's time bounds: from the index the scan rebuilt (written to its `.idx`
/// now), or from its `.idx` header.
async fn sealed_info(
    disk: &Disk,
    cl: &CommitLog,
    b: LogOffset,
    rebuilt: Option<SegIndex>,
) -> Result<SealedInfo> {
    match rebuilt {
        Some(idx) => {
            write_index_file(disk, &cl.idx_path(b), &idx)?;
            Ok(SealedInfo {
                min_ts: idx.min_ts,
                max_ts: idx.max_ts,
                idx_on_disk: true,
            })
        }
        None => read_idx_header(disk, &cl.idx_path(b)).await,
    }
}

fn new_state(
    cfg: StoreConfig,
    cl: CommitLog,
    queues: HashMap<(String, i32), ConsumeQueue>,
    free_segments: Vec<std::path::PathBuf>,
    recovery: RecoveryReport,
) -> State {
    let st = State {
        cfg,
        cl,
        queues,
        pending_visible: VecDeque::new(),
        replica_gate: None,
        replica_only: false,
        failed: None,
        full_enospc: None,
        full_floor: None,
        checkpointed: LogOffset::ZERO,
        closed: false,
        free_segments,
        preparing: false,
        recovery,
    };
    st.check();
    st
}

fn log_report(r: &RecoveryReport) {
    tracing::info!(
        segments = r.segments,
        checkpoint = ?r.checkpoint,
        scanned_from = r.scanned_from,
        scanned_bytes = r.scanned_bytes,
        records = r.records,
        end = r.end_offset,
        truncated_at = ?r.truncated_at,
        corrupt_ranges = ?r.corrupt,
        rebuilt_queues = r.rebuilt_queues,
        elapsed_ms = r.elapsed.as_millis() as u64,
        "store recovered"
    );
}

async fn read_idx_header(disk: &Disk, path: &Path) -> Result<SealedInfo> {
    let f = File::open(disk, path, false).await?;
    let b = f.read_at(0, BLOCK as usize).await?;
    f.close().await?;
    Ok(match SegIndex::decode_header(&b) {
        Some(h) => SealedInfo {
            min_ts: h.min_ts,
            max_ts: h.max_ts,
            idx_on_disk: true,
        },
        None => SealedInfo {
            min_ts: i64::MIN,
            max_ts: i64::MIN,
            idx_on_disk: false,
        },
    })
}

/// Rewrites the active segment after `end`: the partial block keeps its bytes below `end` and
/// loses the rest; then zeros over the region a crashed flush could have written, if any of it
/// is not zero. Returns the tail piece (the bytes of the partial block) for the next flush.
async fn scrub_after(
    cl: &CommitLog,
    active: LogOffset,
    end: LogOffset,
    max_garbage: u64,
    cfg: &StoreConfig,
) -> Result<Option<Piece>> {
    let path = cl.segment_path(active);
    if !cfg.disk.exists(&path) {
        return Ok(None);
    }
    let f = Rc::new(File::open(&cfg.disk, &path, false).await?);
    let seg_end = active.add(cl.segment_size());
    let a = end.align_down();
    let z_end = end.align_up().add(max_garbage).min(seg_end);
    // Byte position in the segment's file.
    let at = |o: LogOffset| active.distance_to(o);
    let look = f.read_at(at(end), end.distance_to(z_end) as usize).await?;
    let tail_bytes = f.read_exact_at(at(a), a.distance_to(end) as usize).await?;
    if look.iter().any(|&b| b != 0) {
        tracing::warn!(
            offset = end.get(),
            bytes = end.distance_to(z_end),
            "zeroing bytes after the recovered end"
        );
        if end > a {
            let mut buf = f.alloc(BLOCK as usize);
            buf.as_bytes_mut()[..tail_bytes.len()].copy_from_slice(&tail_bytes);
            f.write_at(buf, at(a)).await?;
        }
        let from = at(end.align_up());
        f.zero_range(from, at(z_end), cfg.write_chunk_bytes, cfg.write_depth)
            .await?;
        f.fdatasync().await?;
    }
    Ok((end > a).then(|| Piece {
        start: a,
        data: tail_bytes,
    }))
}

/// Loads a queue's files, cut back to the entries of records below `c`.
async fn load_queue(
    cfg: &StoreConfig,
    root: &Path,
    topic: &str,
    qid: i32,
    c: LogOffset,
    cl_min: LogOffset,
) -> Result<Option<ConsumeQueue>> {
    let Some(mut q) = open_queue(cfg, root, topic, qid).await? else {
        return Ok(None);
    };
    if q.files.is_empty() {
        return Ok(None);
    }
    let on_disk = written_end(&q).await?;
    // Drop entries of records at or beyond the checkpoint.
    let n = first_entry_from(&q, q.start(), on_disk, c).await?;
    if n < on_disk {
        zero_entries(&q, n, on_disk).await?;
    }
    let mut mem = VecDeque::new();
    for i in q.block_start(n).until(n) {
        mem.push_back(entry(&q, i).await?);
    }
    q.restore(n, mem);
    // Minimum: first entry whose record still exists.
    let min = first_entry_from(&q, q.start(), n, cl_min).await?;
    q.set_min(min);
    Ok(Some(q))
}

/// Where the queue's written entries end. They are written in order, so they form a prefix of
/// its files; but a recovery that cut the queue back zeroed the entries beyond its cut, so the
/// last files may hold none: the end is in the last file that holds an entry, never at the end
/// of the file before an empty one (the zeros there are not entries).
async fn written_end(q: &ConsumeQueue) -> Result<QueueOffset> {
    for (&no, f) in q.files.iter().rev() {
        let n = written_prefix(f, q.file_entries).await?;
        if n > 0 {
            return Ok(q.start().add(no * q.file_entries + n));
        }
    }
    Ok(q.start())
}

/// How many slots of a queue file, from its first, hold entries (they form a prefix).
async fn written_prefix(f: &File, file_entries: u64) -> Result<u64> {
    let slots = (f.size().await? / CQ_ENTRY).min(file_entries);
    let (mut lo, mut hi) = (0u64, slots);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if read_entry(f, mid).await?.is_empty() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// A queue with its files opened (None when it has none): its start is its first file's name.
async fn open_queue(
    cfg: &StoreConfig,
    root: &Path,
    topic: &str,
    qid: i32,
) -> Result<Option<ConsumeQueue>> {
    let dir = root.join(topic).join(qid.to_string());
    let firsts: Vec<QueueOffset> = cfg
        .disk
        .list_dir(&dir)?
        .iter()
        .filter_map(|n| parse_name(n).map(QueueOffset::new))
        .collect();
    let Some(&start) = firsts.first() else {
        return Ok(None);
    };
    let fe = cfg.cq_file_entries;
    let mut q = ConsumeQueue::new(root, topic, qid, fe, start);
    for &f in &firsts {
        if f < start || start.distance_to(f) % fe != 0 {
            tracing::warn!(
                topic,
                queue = qid,
                file = f.get(),
                "misnamed consume-queue file ignored"
            );
            continue;
        }
        let file = File::open(&cfg.disk, &dir.join(file_name(f)), false).await?;
        q.files.insert(start.distance_to(f) / fe, Rc::new(file));
    }
    Ok(Some(q))
}

/// The first entry in `[lo, hi)` whose record lies at or beyond commit-log offset `at`, or that
/// is blank (`hi` if none is); entries are in commit-log order. A blank slot is no entry: the
/// queue cannot extend past it (its zeros would read as the record at offset 0).
async fn first_entry_from(
    q: &ConsumeQueue,
    mut lo: QueueOffset,
    mut hi: QueueOffset,
    at: LogOffset,
) -> Result<QueueOffset> {
    while lo < hi {
        let mid = lo.midpoint(hi);
        let e = match q.mem_entry(mid) {
            Some(e) => e,
            None => entry(q, mid).await?,
        };
        if !e.is_empty() && e.phys < at {
            lo = mid.next();
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

async fn read_entry(f: &File, slot: u64) -> Result<CqEntry> {
    let b = f.read_at(slot * CQ_ENTRY, CQ_ENTRY as usize).await?;
    if b.len() < CQ_ENTRY as usize {
        return Ok(CqEntry {
            phys: LogOffset::ZERO,
            size: 0,
            tags: 0,
        });
    }
    Ok(CqEntry::decode(&b))
}

async fn entry(q: &ConsumeQueue, idx: QueueOffset) -> Result<CqEntry> {
    let (file_no, pos) = q.locate(idx);
    match q.files.get(&file_no) {
        Some(f) => read_entry(f, pos / CQ_ENTRY).await,
        None => Ok(CqEntry {
            phys: LogOffset::ZERO,
            size: 0,
            tags: 0,
        }),
    }
}

/// Zeros entries `[from, to)` on disk (they point at records the log no longer has), the last
/// file first: if this is cut short, the entries zeroed are still the end of what is written.
async fn zero_entries(q: &ConsumeQueue, from: QueueOffset, to: QueueOffset) -> Result<()> {
    let mut hi = to;
    while hi > from {
        let (file_no, _) = q.locate(hi.prev());
        let lo = from.max(q.start().add(file_no * q.file_entries));
        if let Some(f) = q.files.get(&file_no) {
            let (_, pos) = q.locate(lo);
            let a = align_down(pos);
            let b = align_up(pos + lo.distance_to(hi) * CQ_ENTRY);
            let keep = f.read_exact_at(a, (pos - a) as usize).await?;
            let mut buf = f.alloc((b - a) as usize);
            buf.as_bytes_mut()[..keep.len()].copy_from_slice(&keep);
            f.write_at(buf, a).await?;
            f.fdatasync().await?;
        }
        hi = lo;
    }
    Ok(())
}

struct Scan<'a> {
    cfg: &'a StoreConfig,
    c: LogOffset,
    queues: &'a mut HashMap<(String, i32), ConsumeQueue>,
    /// Indexes being rebuilt, by segment base (segments from `indexed_from` on).
    indexes: BTreeMap<LogOffset, SegIndex>,
    indexed_from: LogOffset,
    report: &'a mut RecoveryReport,
    /// The record table journaled for the segment being scanned (position → size, CRC32C).
    sums: HashMap<SegPos, RecEntry>,
}

impl Scan<'_> {
    /// Scans from `start` to the end of the valid log; returns that end.
    async fn run(&mut self, bases: &[LogOffset], start: LogOffset) -> Result<LogOffset> {
        let seg = self.cfg.segment_size;
        let mut p = start;
        loop {
            let base = p.segment_base(seg);
            if !bases.contains(&base) {
                return Ok(p);
            }
            if base >= self.indexed_from {
                self.indexes.entry(base).or_default();
            }
            let path = self.cfg.dir.join("commitlog").join(segment_name(base));
            let f = File::open(&self.cfg.disk, &path, false).await?;
            self.sums = read_sums(
                &self.cfg.disk,
                &self
                    .cfg
                    .dir
                    .join("commitlog")
                    .join(format!("{}.sums", segment_name(base))),
            )
            .await?;
            let r = self.scan_segment(&f, base, p).await;
            f.close().await?;
            match r? {
                SegEnd::Next => p = base.add(seg),
                SegEnd::Stop(at) => return Ok(at),
            }
        }
    }

    async fn scan_segment(
        &mut self,
        f: &File,
        base: LogOffset,
        mut p: LogOffset,
    ) -> Result<SegEnd> {
        let seg_end = base.add(self.cfg.segment_size);
        let buf_end = |buf: &Bytes, start: LogOffset| start.add(buf.len() as u64);
        let mut buf = Bytes::new();
        let mut buf_start = p;
        loop {
            if p.add(8) > seg_end {
                return Ok(self.stop(p, "no room for a record"));
            }
            // Make sure the header, then the whole record, is buffered.
            let need_hdr = 8usize;
            if p.add(need_hdr as u64) > buf_end(&buf, buf_start) {
                (buf, buf_start) = self.fill(f, base, p, need_hdr).await?;
                if buf.len() < need_hdr {
                    return Ok(self.stop(p, "end of file"));
                }
            }
            let o = buf_start.distance_to(p) as usize;
            let total = u32::from_be_bytes(buf[o..o + 4].try_into().expect("4 bytes")) as u64;
            let magic = u32::from_be_bytes(buf[o + 4..o + 8].try_into().expect("4 bytes"));
            if magic == BLANK_MAGIC && total == p.distance_to(seg_end) {
                self.report.scanned_bytes += 8;
                return Ok(SegEnd::Next);
            }
            let plausible = (magic == MESSAGE_MAGIC_V1 || magic == MESSAGE_MAGIC_V2)
                && total >= 8
                && p.add(total + 8) <= seg_end;
            if plausible && p.add(total) > buf_end(&buf, buf_start) {
                (buf, buf_start) = self.fill(f, base, p, total as usize).await?;
            }
            let o = buf_start.distance_to(p) as usize;
            let rec = plausible.then(|| buf.get(o..o + total as usize)).flatten();
            match rec.map(|r| verify::structural(r, p).and_then(|()| self.check_sum(base, p, r))) {
                Some(Ok(())) => {
                    let r = buf.slice(o..o + total as usize);
                    self.dispatch(base, p, &r);
                    self.report.scanned_bytes += total;
                    p = p.add(total);
                }
                other => {
                    let reason = match other {
                        Some(Err(e)) => e,
                        _ => format!("bad header (magic {magic:#x}, size {total})"),
                    };
                    // Zeros: the clean end of what was written.
                    let zeros = buf.get(o..o + 8).is_some_and(|h| h.iter().all(|&b| b == 0));
                    match self.invalid(f, base, p, zeros, &reason).await? {
                        Ok(q) => {
                            p = q;
                            buf = Bytes::new();
                            buf_start = p;
                        }
                        Err(end) => return Ok(end),
                    }
                }
            }
        }
    }

    /// An invalid record at `p`: at or beyond the checkpoint the log ends there (a torn tail,
    /// or the clean end when its header is all `zeros`); below it, corruption is skipped to the
    /// next record that verifies (`Ok`), or to the end of the segment.
    async fn invalid(
        &mut self,
        f: &File,
        base: LogOffset,
        p: LogOffset,
        zeros: bool,
        reason: &str,
    ) -> Result<std::result::Result<LogOffset, SegEnd>> {
        let seg_end = base.add(self.cfg.segment_size);
        if p >= self.c {
            if zeros {
                return Ok(Err(self.stop(p, "end")));
            }
            return Ok(Err(self.stop_invalid(p, reason)));
        }
        let limit = self.c.min(seg_end);
        match self.resync(f, base, p.add(1), limit).await? {
            Some(q) => {
                tracing::error!(offset = p.get(), skipped = p.distance_to(q), reason = %reason, "corrupt record in the commit log; skipped");
                self.report.corrupt.push((p.get(), q.get()));
                Ok(Ok(q))
            }
            None if self.c > seg_end => {
                tracing::error!(offset = p.get(), reason = %reason, "corrupt record in the commit log; rest of the segment skipped");
                self.report.corrupt.push((p.get(), seg_end.get()));
                Ok(Err(SegEnd::Next))
            }
            None => Ok(Err(self.stop_invalid(p, reason))),
        }
    }

    /// Checks a record against the CRC32C journaled when it was written, if there is one.
    fn check_sum(
        &self,
        base: LogOffset,
        p: LogOffset,
        rec: &[u8],
    ) -> std::result::Result<(), String> {
        match self.sums.get(&p.pos_in(base)) {
            Some(e) => verify::against_entry(rec, e),
            None => Ok(()),
        }
    }

    fn stop(&mut self, p: LogOffset, _why: &str) -> SegEnd {
        SegEnd::Stop(p)
    }

    fn stop_invalid(&mut self, p: LogOffset, reason: &str) -> SegEnd {
        tracing::warn!(
            offset = p.get(),
            reason,
            "commit log ends here (torn or unwritten tail)"
        );
        if p.get() < self.report.truncated_at.unwrap_or(u64::MAX) {
            self.report.truncated_at = Some(p.get());
        }
        SegEnd::Stop(p)
    }

    async fn fill(
        &mut self,
        f: &File,
        base: LogOffset,
        p: LogOffset,
        need: usize,
    ) -> Result<(Bytes, LogOffset)> {
        let seg_end = base.add(self.cfg.segment_size);
        let len = (need.max(SCAN_CHUNK) as u64).min(p.distance_to(seg_end)) as usize;
        Ok((f.read_at(base.distance_to(p), len).await?, p))
    }

    /// The first offset in `[from, limit)` where a record verifies.
    async fn resync(
        &mut self,
        f: &File,
        base: LogOffset,
        from: LogOffset,
        limit: LogOffset,
    ) -> Result<Option<LogOffset>> {
        let mut at = from;
        while at < limit {
            let chunk = f.read_at(base.distance_to(at), SCAN_CHUNK).await?;
            if chunk.len() < 8 {
                return Ok(None);
            }
            for i in 0..chunk.len().saturating_sub(8) {
                let q = at.add(i as u64);
                if q >= limit {
                    return Ok(None);
                }
                let m = u32::from_be_bytes(chunk[i + 4..i + 8].try_into().expect("4 bytes"));
                if m != MESSAGE_MAGIC_V1 && m != MESSAGE_MAGIC_V2 {
                    continue;
                }
                let total =
                    u32::from_be_bytes(chunk[i..i + 4].try_into().expect("4 bytes")) as usize;
                let rec = if i + total <= chunk.len() {
                    chunk.slice(i..i + total)
                } else {
                    f.read_at(
                        base.distance_to(q),
                        total.min(self.cfg.segment_size as usize),
                    )
                    .await?
                };
                if rec.len() == total
                    && verify::structural(&rec, q).is_ok()
                    && self.check_sum(base, q, &rec).is_ok()
                {
                    return Ok(Some(q));
                }
            }
            at = at.add((chunk.len() - 8) as u64);
        }
        Ok(None)
    }

    fn dispatch(&mut self, base: LogOffset, p: LogOffset, rec: &Bytes) {
        let Ok((v, _)) = RecordView::parse(rec) else {
            return;
        };
        self.report.records += 1;
        if let Some(idx) = self.indexes.get_mut(&base) {
            let pos = p.pos_in(base);
            idx.add_record(
                pos,
                rec.len() as u32,
                crc32c::crc32c(rec),
                v.store_timestamp,
            );
            let uniq = property_value(v.properties, properties::UNIQ_KEY);
            let keys = property_value(v.properties, properties::KEYS).unwrap_or("");
            index_keys(idx, v.topic, uniq, keys, pos);
        }
        if !sysflag::is_dispatched(v.sys_flag) {
            return;
        }
        let key = (v.topic.to_string(), v.queue_id);
        let qo = QueueOffset::from_i64(v.queue_offset).unwrap_or(QueueOffset::ZERO);
        let root = self.cfg.dir.join("consumequeue");
        let fe = self.cfg.cq_file_entries;
        let q = self
            .queues
            .entry(key)
            .or_insert_with(|| ConsumeQueue::new(&root, v.topic, v.queue_id, fe, qo));
        // The broker's tags code is the tag hash except for scheduled records (a delivery time
        // the record does not carry): those rebuilt entries get the tag hash.
        let tags = match property_value(v.properties, properties::TAGS) {
            Some(t) if !t.is_empty() => protocol::message::tag_hash(t),
            _ => 0,
        };
        let entry = CqEntry {
            phys: p,
            size: rec.len() as i32,
            tags,
        };
        if qo == q.max() {
            q.push(entry);
            q.publish(q.max());
        } else if qo > q.max() {
            if q.is_blank() {
                *q = ConsumeQueue::new(&root, v.topic, v.queue_id, fe, qo);
                q.push(entry);
                q.publish(q.max());
            } else {
                tracing::error!(
                    topic = v.topic,
                    queue = v.queue_id,
                    expected = q.max().get(),
                    found = qo.get(),
                    offset = p.get(),
                    "gap in queue offsets; record not queued"
                );
            }
        }
    }
}

enum SegEnd {
    Next,
    Stop(LogOffset),
}
