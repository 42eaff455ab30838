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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write as _;
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
}

impl Index {
    /// Opens the index in `dir`: every bucket file ending at or before `done_due` is deleted
    /// (the engine's durable progress is past it), the others counted.
    pub fn open(dir: PathBuf, width: i64, done_due: i64) -> std::io::Result<Index> {
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
            let entries = read_bucket(&path)?;
            // A torn last entry (a crash while appending) is cut, so appends stay aligned.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len((entries.len() * ENTRY_LEN) as u64)?;
            if let Some(min_phys) = entries.iter().map(|e| e.phys).min() {
                let count = entries.len() as u64;
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
        if b < self.near_end {
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
    /// below `cursor` (delivered) and duplicates. The index must be synced.
    pub async fn advance(&mut self, until: i64, cursor: (i64, i64)) -> std::io::Result<()> {
        let end = self.bucket(until).saturating_add(self.width);
        while let Some((&b, _)) = self.far.first_key_value() {
            if b >= end {
                break;
            }
            let f = self.far.remove(&b).unwrap_or(Far {
                count: 0,
                min_phys: 0,
            });
            self.far_count -= f.count;
            let path = self.dir.join(bucket_name(b));
            let entries = glommio::executor()
                .spawn_blocking(move || read_bucket(&path))
                .await?;
            let mut seen = HashSet::with_capacity(entries.len());
            for e in entries {
                if (e.due, e.phys) > cursor && seen.insert(e.phys) {
                    self.near.insert(e);
                }
            }
        }
        self.near_end = self.near_end.max(end);
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

/// A bucket's entries; a torn last entry (a crash while appending) is ignored.
fn read_bucket(path: &Path) -> std::io::Result<Vec<Entry>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(bytes.chunks_exact(ENTRY_LEN).map(Entry::decode).collect())
}
