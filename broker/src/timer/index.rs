//! The due-time index of 5.x timers, bounded in memory however many are pending.
//!
//! Time is cut into buckets of `width` ms. Every indexed timer is appended to its bucket's file
//! `<dir>/<bucket start ms, 20 digits>` as a 20-byte entry (due ms, commit-log offset, size;
//! big-endian), and the files written since the last [`Index::sync`] are fdatasynced there (the
//! engine syncs before its progress record says these timers are indexed). Only the buckets of
//! the near window (`start < near_end`) are held in memory, sorted by (due, offset); of the
//! others only a count and the lowest commit-log offset per bucket. A bucket is read into memory
//! when the window reaches it ([`Index::advance`]), its duplicates (a timer indexed again after a
//! crash) dropped. A bucket's file is deleted once the engine's durable progress is past its end.
//!
//! **Memory bound.** At most `max_near` entries are held in memory (`timerIndexMaxInMemory`),
//! however many timers fall due in the window: a bucket that does not fit is read in part, its
//! first entries in (due, offset) order up to the bound (the file streamed through a bounded
//! heap, never read whole), and the rest read again, from after the last entry taken, once the
//! deliveries have made room. Timers indexed meanwhile into that bucket at or before that entry
//! go to memory at once (they sort among what is held); later ones wait in the file. Memory is
//! then at most `max_near` entries plus one count per bucket with a file.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// One pending timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub due: i64,
    pub phys: i64,
    pub size: i32,
}

const ENTRY_LEN: usize = 20;

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.due.to_be_bytes());
        out.extend_from_slice(&self.phys.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Entry {
        Entry {
            due: i64::from_be_bytes(b[0..8].try_into().unwrap()),
            phys: i64::from_be_bytes(b[8..16].try_into().unwrap()),
            size: i32::from_be_bytes(b[16..20].try_into().unwrap()),
        }
    }
}

/// What is kept of a bucket outside the near window.
#[derive(Debug, Clone, Copy)]
struct Far {
    count: u64,
    min_phys: i64,
}

pub struct Index {
    dir: PathBuf,
    width: i64,
    near: BTreeSet<Entry>,
    near_end: i64,
    far: BTreeMap<i64, Far>,
    far_count: u64,
    /// Every bucket with a file (for deletion).
    files: BTreeSet<i64>,
    /// Entries appended since the last sync, per bucket.
    unsynced: BTreeMap<i64, Vec<u8>>,
    /// Most entries held in memory.
    max_near: usize,
    /// The bucket read in part (it starts at `near_end` and stays in `far`), and the last
    /// entry taken from it: its entries up to that one are in memory or delivered.
    partial: Option<(i64, Entry)>,
}

impl Index {
    /// Opens the index in `dir`: every bucket file ending at or before `done_due` is deleted
    /// (the engine's durable progress is past it), the others counted.
    /// At most `max_near` entries are held in memory.
    pub fn open(
        dir: PathBuf,
        width: i64,
        done_due: i64,
        max_near: usize,
    ) -> std::io::Result<Index> {
        std::fs::create_dir_all(&dir)?;
        let mut index = Index {
            dir,
            width,
            near: BTreeSet::new(),
            near_end: i64::MIN,
            far: BTreeMap::new(),
            far_count: 0,
            files: BTreeSet::new(),
            unsynced: BTreeMap::new(),
            max_near: max_near.max(1),
            partial: None,
        };
        for item in std::fs::read_dir(&index.dir)? {
            let name = item?.file_name();
            let Some(start) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            let path = index.dir.join(&name);
            if start.saturating_add(width) <= done_due {
                std::fs::remove_file(&path)?;
                continue;
            }
            let (mut count, mut min_phys) = (0u64, i64::MAX);
            scan_bucket(&path, |e| {
                count += 1;
                min_phys = min_phys.min(e.phys);
            })?;
            // A torn last entry (a crash while appending) is cut, so appends stay aligned.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(count * ENTRY_LEN as u64)?;
            if count > 0 {
                index.far.insert(start, Far { count, min_phys });
                index.far_count += count;
            }
            index.files.insert(start);
        }
        Ok(index)
    }

    pub fn bucket(&self, due: i64) -> i64 {
        due.div_euclid(self.width) * self.width
    }

    /// Timers indexed and not yet delivered.
    pub fn pending(&self) -> u64 {
        self.near.len() as u64 + self.far_count
    }

    /// Pending timers due at or before `now` (held in the near window).
    pub fn due_backlog(&self, now: i64) -> u64 {
        self.near
            .range(
                ..=Entry {
                    due: now,
                    phys: i64::MAX,
                    size: i32::MAX,
                },
            )
            .count() as u64
    }

    /// The earliest due time held in memory (the near window; what is beyond it is not due
    /// within the window).
    pub fn next_due(&self) -> Option<i64> {
        self.near.first().map(|e| e.due)
    }

    /// Entries held in memory.
    pub fn in_memory(&self) -> usize {
        self.near.len()
    }

    /// The lowest commit-log offset a pending timer still needs.
    pub fn min_phys(&self) -> Option<i64> {
        let near = self.near.iter().map(|e| e.phys).min();
        let far = self.far.values().map(|f| f.min_phys).min();
        near.into_iter().chain(far).min()
    }

    /// Adds a timer: to its bucket's file, and to memory when its bucket is in the near window.
    pub fn insert(&mut self, e: Entry) {
        let b = self.bucket(e.due);
        e.encode(self.unsynced.entry(b).or_default());
        let in_part = matches!(self.partial, Some((pb, last)) if pb == b && e <= last);
        if b < self.near_end || in_part {
            self.near.insert(e);
        } else {
            let f = self.far.entry(b).or_insert(Far {
                count: 0,
                min_phys: e.phys,
            });
            f.count += 1;
            f.min_phys = f.min_phys.min(e.phys);
            self.far_count += 1;
        }
    }

    /// Puts back entries taken by [`Index::take_due`] whose delivery failed.
    pub fn put_back(&mut self, entries: &[Entry]) {
        self.near.extend(entries.iter().copied());
    }

    /// Whether entries wait for [`Index::sync`].
    pub fn dirty(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Appends the entries written since the last sync to their files and fdatasyncs them (and
    /// the directory when a file was created). Runs on glommio's blocking pool.
    pub async fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        let work = std::mem::take(&mut self.unsynced);
        let created: Vec<i64> = work
            .keys()
            .filter(|b| !self.files.contains(b))
            .copied()
            .collect();
        self.files.extend(created.iter().copied());
        let dir = self.dir.clone();
        let new_files = !created.is_empty();
        glommio::executor()
            .spawn_blocking(move || append_buckets(&dir, &work, new_files))
            .await
    }

    /// Brings every bucket starting at or before `until` into memory, leaving out entries at or
    /// below `cursor` (delivered) and duplicates, as far as `max_near` allows (a bucket that
    /// does not fit is read in part). The index must be synced.
    pub async fn advance(&mut self, until: i64, cursor: (i64, i64)) -> std::io::Result<()> {
        let end = self.bucket(until).saturating_add(self.width);
        let mut reached = end;
        while let Some((&b, &f)) = self.far.first_key_value() {
            if b >= end {
                break;
            }
            let room = self.max_near.saturating_sub(self.near.len());
            if room == 0 {
                reached = b;
                break;
            }
            let after = match self.partial {
                Some((pb, last)) if pb == b => cursor.max((last.due, last.phys)),
                _ => cursor,
            };
            let path = self.dir.join(bucket_name(b));
            let (mut taken, rest) = glommio::executor()
                .spawn_blocking(move || first_of_bucket(&path, after, room))
                .await?;
            self.far.remove(&b);
            self.far_count -= f.count;
            self.partial = None;
            // Built in order off the loop: merging it is linear (a million entries inserted
            // one by one would hold the shard's loop for most of a second).
            let last = taken.last().copied();
            self.near.append(&mut taken);
            if let (true, Some(last)) = (rest > 0, last) {
                // Read in part: the bucket stays far with what is left of it.
                self.far.insert(b, Far { count: rest, ..f });
                self.far_count += rest;
                self.partial = Some((b, last));
                reached = b;
                break;
            }
        }
        self.near_end = self.near_end.max(reached);
        Ok(())
    }

    /// Takes up to `max` entries due at or before `now`, in (due, offset) order.
    pub fn take_due(&mut self, now: i64, max: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.near.first().copied() {
                Some(e) if e.due <= now => {
                    self.near.pop_first();
                    out.push(e);
                }
                _ => break,
            }
        }
        out
    }

    /// Deletes the files of buckets that end at or before `done_due` (the engine's durable
    /// progress is past them: nothing of them is pending).
    pub async fn remove_done(&mut self, done_due: i64) -> std::io::Result<()> {
        let width = self.width;
        let done: Vec<i64> = self
            .files
            .iter()
            .take_while(|b| b.saturating_add(width) <= done_due)
            .copied()
            .filter(|b| !self.unsynced.contains_key(b) && !self.far.contains_key(b))
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        for b in &done {
            self.files.remove(b);
        }
        let dir = self.dir.clone();
        glommio::executor()
            .spawn_blocking(move || {
                for b in done {
                    std::fs::remove_file(dir.join(bucket_name(b)))?;
                }
                Ok(())
            })
            .await
    }
}

fn bucket_name(start: i64) -> String {
    format!("{start:020}")
}

fn append_buckets(
    dir: &Path,
    work: &BTreeMap<i64, Vec<u8>>,
    new_files: bool,
) -> std::io::Result<()> {
    for (b, bytes) in work {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(bucket_name(*b)))?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    if new_files {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Calls `f` with each entry of a bucket's file, streamed; a torn last entry (a crash while
/// appending) is ignored, a missing file is empty.
fn scan_bucket(path: &Path, mut f: impl FnMut(Entry)) -> std::io::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buf = [0u8; ENTRY_LEN * 4096];
    let mut have = 0;
    loop {
        let n = r.read(&mut buf[have..])?;
        have += n;
        let whole = have - have % ENTRY_LEN;
        buf[..whole]
            .chunks_exact(ENTRY_LEN)
            .for_each(|b| f(Entry::decode(b)));
        buf.copy_within(whole..have, 0);
        have -= whole;
        if n == 0 {
            return Ok(());
        }
    }
}

/// The first `room` entries of a bucket after `after` (due, offset), without duplicates, and
/// how many entries after them the file holds (duplicates included). Memory: `room` entries,
/// however large the file.
fn first_of_bucket(
    path: &Path,
    after: (i64, i64),
    room: usize,
) -> std::io::Result<(BTreeSet<Entry>, u64)> {
    let mut heap = BinaryHeap::with_capacity(room.min(1 << 20) + 1);
    let mut later = 0u64;
    scan_bucket(path, |e| {
        if (e.due, e.phys) <= after {
            return;
        }
        heap.push(e);
        if heap.len() > room {
            heap.pop();
            later += 1;
        }
    })?;
    let mut taken = heap.into_sorted_vec();
    let mut seen = HashSet::with_capacity(taken.len());
    taken.retain(|e| seen.insert(e.phys));
    // From sorted input, a BTreeSet is built in one pass.
    Ok((taken.into_iter().collect(), later))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_dir(name: &str) -> PathBuf {
        let root = std::env::var_os("SATURN_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-data")
            });
        let dir = root.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn e(due: i64, phys: i64) -> Entry {
        Entry {
            due,
            phys,
            size: 100,
        }
    }

    /// Takes every due entry, advancing the window as the engine does, checking the bound.
    async fn drain(index: &mut Index, cursor: &mut (i64, i64), max: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        loop {
            index.advance(10_000, *cursor).await.unwrap();
            assert!(index.in_memory() <= max, "{} held", index.in_memory());
            let got = index.take_due(10_000, 3);
            let Some(last) = got.last() else { break };
            *cursor = (last.due, last.phys);
            out.extend(got);
        }
        out
    }

    /// 35 timers in one bucket, at most 10 in memory: delivered in order, each once, the bucket
    /// read in parts; one indexed meanwhile before the part held joins memory at once, one after
    /// it waits in the file; after a reopen only what is past the cursor comes back.
    #[test]
    fn a_bucket_larger_than_the_bound_is_read_in_parts() {
        glommio::LocalExecutor::default().run(async {
            let dir = test_dir("timer-index-bound");
            let mut index = Index::open(dir.clone(), 60_000, i64::MIN, 10).unwrap();
            // Sent out of due order (phys rising), duplicates of two (indexed again).
            let mut all: Vec<Entry> = (0..35).map(|i| e(1000 + (i * 7) % 35, 500 * i)).collect();
            for x in all.iter().chain(&all[3..5]) {
                index.insert(*x);
            }
            index.sync().await.unwrap();
            index.advance(10_000, (i64::MIN, i64::MIN)).await.unwrap();
            assert_eq!(index.in_memory(), 10);
            assert_eq!(index.pending(), 37, "10 held + 27 in the file");
            let first = index.take_due(10_000, 4);
            let mut cursor = (first[3].due, first[3].phys);
            // Before the end of the part held (due 1009): to memory now. After it: the file.
            index.insert(e(1005, 99_000));
            index.insert(e(5000, 99_500));
            assert_eq!(index.in_memory(), 7);
            index.sync().await.unwrap();
            let mut got = first;
            got.extend(drain(&mut index, &mut cursor, 10).await);
            all.push(e(1005, 99_000));
            all.push(e(5000, 99_500));
            all.sort();
            assert_eq!(got, all);
            assert_eq!(index.pending(), 0);

            // Reopened with the cursor in the middle: the rest, in order.
            let mut index = Index::open(dir.clone(), 60_000, i64::MIN, 10).unwrap();
            let mut cursor = (all[20].due, all[20].phys);
            let rest = drain(&mut index, &mut cursor, 10).await;
            assert_eq!(rest, all[21..].to_vec());
            let _ = std::fs::remove_dir_all(&dir);
        });
    }
}
