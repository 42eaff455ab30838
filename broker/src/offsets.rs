//! Consumer offsets of one shard: `topic@group` → queue → next offset to
//! consume, persisted as RocketMQ's `consumerOffset.json` every 5 s and on
//! shutdown.
//!
//! Beside the table it keeps what replication needs (`crate::replstate`): on a master, the
//! entries changed since the last state record; on a slave, the entries committed on the slave
//! itself (while it served consumers) that the master has not confirmed yet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use protocol::body::ConsumerOffsetSerializeWrapper;

use crate::metadata::{read_json, write_json};

pub struct OffsetTable {
    path: PathBuf,
    table: BTreeMap<String, BTreeMap<i32, i64>>,
    dirty: bool,
    /// Master: (`topic@group`, queue) changed since [`OffsetTable::take_changed`].
    changed: BTreeSet<(String, i32)>,
    /// Slave: (`topic@group`, queue) → offset committed here, and when it was last sent to the
    /// master; kept until the master's replicated offset reaches it.
    local: BTreeMap<(String, i32), (i64, Option<Instant>)>,
    /// `local` changed since [`OffsetTable::take_local_if_dirty`].
    local_dirty: bool,
}

/// Where a slave keeps the offsets committed on it that its master has not confirmed (so that
/// they survive its restart).
const LOCAL_FILE: &str = "slaveOffsets.json";

/// An offset entry: `topic@group`, queue, offset.
pub type Entry = (String, i32, i64);

fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl OffsetTable {
    pub fn load(dir: PathBuf) -> Self {
        let path = dir.join("consumerOffset.json");
        let table = match read_json::<ConsumerOffsetSerializeWrapper>(&path) {
            Ok(Some(w)) => w.offset_table,
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                tracing::error!(error = %e, "consumer offsets unreadable; starting without them");
                BTreeMap::new()
            }
        };
        let local: Vec<Entry> = match read_json(&dir.join(LOCAL_FILE)) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "slave's own offsets unreadable; starting without them");
                Vec::new()
            }
        };
        let mut table = table;
        for (k, q, o) in &local {
            // The slave's own value stands (this file may be newer than the table's).
            table.entry(k.clone()).or_default().insert(*q, *o);
        }
        Self {
            path,
            table,
            dirty: false,
            changed: BTreeSet::new(),
            local: local
                .into_iter()
                .map(|(k, q, o)| ((k, q), (o, None)))
                .collect(),
            local_dirty: false,
        }
    }

    pub fn get(&self, topic: &str, group: &str, queue: i32) -> Option<i64> {
        self.table.get(&key(topic, group))?.get(&queue).copied()
    }

    pub fn commit(&mut self, topic: &str, group: &str, queue: i32, offset: i64) {
        let previous = self
            .table
            .entry(key(topic, group))
            .or_default()
            .insert(queue, offset);
        self.dirty = true;
        // Clients commit every queue every 5 s: only a new value goes into the next state record.
        if previous != Some(offset) {
            self.changed.insert((key(topic, group), queue));
        }
    }

    /// Master: an offset a slave committed while it served the group; the larger of it and
    /// this table's wins, and the entry goes into the next state record either way (so the
    /// slave learns that the master has it).
    pub fn commit_from_slave(&mut self, topic: &str, group: &str, queue: i32, offset: i64) {
        let slot = self
            .table
            .entry(key(topic, group))
            .or_default()
            .entry(queue)
            .or_insert(offset);
        *slot = (*slot).max(offset);
        self.dirty = true;
        self.changed.insert((key(topic, group), queue));
    }

    /// Slave: an offset committed here; kept (and forwarded to the master) until the master's
    /// replicated offset reaches it.
    pub fn commit_local(&mut self, topic: &str, group: &str, queue: i32, offset: i64) {
        self.commit(topic, group, queue, offset);
        self.changed.clear();
        self.local
            .insert((key(topic, group), queue), (offset, None));
        self.local_dirty = true;
    }

    /// Slave: the file of its own offsets and their list, when they changed since the last call.
    pub fn take_local_if_dirty(&mut self) -> Option<(PathBuf, Vec<Entry>)> {
        if !self.local_dirty {
            return None;
        }
        self.local_dirty = false;
        let list = self
            .local
            .iter()
            .map(|((k, q), (o, _))| (k.clone(), *q, *o))
            .collect();
        Some((self.path.with_file_name(LOCAL_FILE), list))
    }

    /// Slave: an offset from the master's state record. An entry committed here that the master
    /// has not reached yet is kept (never moved backwards by an older master value).
    pub fn apply_replicated(&mut self, k: &str, queue: i32, offset: i64) {
        let id = (k.to_owned(), queue);
        if let Some((mine, _)) = self.local.get(&id) {
            if offset < *mine {
                return;
            }
            self.local.remove(&id);
            self.local_dirty = true;
        }
        let slot = self
            .table
            .entry(id.0)
            .or_default()
            .entry(queue)
            .or_insert(offset);
        *slot = offset;
        self.dirty = true;
    }

    /// Slave: entries committed here to send to the master (not sent in the last `again`),
    /// marked as sent now.
    pub fn to_forward(&mut self, again: Duration) -> Vec<Entry> {
        let now = Instant::now();
        let mut out = Vec::new();
        for ((k, q), (offset, sent)) in self.local.iter_mut() {
            if sent.is_none_or(|t| now.duration_since(t) >= again) {
                *sent = Some(now);
                out.push((k.clone(), *q, *offset));
            }
        }
        out
    }

    /// Slave: entries committed here that the master has not confirmed.
    pub fn unconfirmed(&self) -> usize {
        self.local.len()
    }

    /// Master: the entries changed since the last call.
    pub fn take_changed(&mut self) -> Vec<Entry> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .filter_map(|(k, q)| {
                let o = *self.table.get(&k)?.get(&q)?;
                Some((k, q, o))
            })
            .collect()
    }

    /// Every entry (a full state record).
    pub fn entries(&self) -> Vec<Entry> {
        self.table
            .iter()
            .flat_map(|(k, v)| v.iter().map(move |(q, o)| (k.clone(), *q, *o)))
            .collect()
    }

    /// Every (topic, queue, offset) a group has committed.
    pub fn of_group(&self, group: &str) -> Vec<(String, i32, i64)> {
        let suffix = format!("@{group}");
        self.table
            .iter()
            .filter_map(|(k, v)| k.strip_suffix(&suffix).map(|t| (t.to_owned(), v)))
            .flat_map(|(t, v)| v.iter().map(move |(q, o)| (t.clone(), *q, *o)))
            .collect()
    }

    /// Groups with offsets for a topic.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let prefix = format!("{topic}@");
        self.table
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    pub fn remove_topic(&mut self, topic: &str) {
        let prefix = format!("{topic}@");
        self.table.retain(|k, _| !k.starts_with(&prefix));
        self.dirty = true;
    }

    pub fn remove_group(&mut self, group: &str) {
        let suffix = format!("@{group}");
        self.table.retain(|k, _| !k.ends_with(&suffix));
        self.dirty = true;
    }

    pub fn snapshot(&self) -> ConsumerOffsetSerializeWrapper {
        ConsumerOffsetSerializeWrapper {
            offset_table: self.table.clone(),
        }
    }

    /// The file and its new content when something changed since the last call.
    pub fn take_if_dirty(&mut self) -> Option<(PathBuf, ConsumerOffsetSerializeWrapper)> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some((self.path.clone(), self.snapshot()))
    }

    pub fn persist(&mut self) {
        write_json(&self.path, &self.snapshot());
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let root = std::env::var_os("SATURN_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-data")
            });
        let d = root.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Only new values go into the next state record; a slave's forward is kept as the larger.
    #[test]
    fn master_records_changes_and_keeps_the_larger_forward() {
        let mut t = OffsetTable::load(dir("offsets-master"));
        t.commit("T", "g", 0, 5);
        t.commit("T", "g", 1, 7);
        assert_eq!(t.take_changed().len(), 2);
        t.commit("T", "g", 0, 5); // the same value again: nothing to replicate
        assert!(t.take_changed().is_empty());
        t.commit_from_slave("T", "g", 0, 3);
        assert_eq!(t.get("T", "g", 0), Some(5));
        // Replicated even when the master's value stays: the slave learns it is confirmed.
        assert_eq!(t.take_changed(), vec![("T@g".to_string(), 0, 5)]);
        t.commit_from_slave("T", "g", 1, 9);
        assert_eq!(t.get("T", "g", 1), Some(9));
    }

    /// A slave's own value is never moved back by an older master value, is forwarded until
    /// confirmed, and survives a restart.
    #[test]
    fn slave_keeps_its_own_until_the_master_reaches_it() {
        let d = dir("offsets-slave");
        let mut t = OffsetTable::load(d.clone());
        t.apply_replicated("T@g", 0, 3);
        t.commit_local("T", "g", 0, 10);
        t.apply_replicated("T@g", 0, 4);
        assert_eq!(t.get("T", "g", 0), Some(10));
        let sent = t.to_forward(Duration::from_secs(60));
        assert_eq!(sent, vec![("T@g".to_string(), 0, 10)]);
        assert!(
            t.to_forward(Duration::from_secs(60)).is_empty(),
            "not again at once"
        );
        let (path, list) = t.take_local_if_dirty().unwrap();
        write_json(&path, &list);
        t.persist();
        let mut again = OffsetTable::load(d);
        again.apply_replicated("T@g", 0, 4);
        assert_eq!(
            again.get("T", "g", 0),
            Some(10),
            "the mark survives a restart"
        );
        again.apply_replicated("T@g", 0, 10);
        assert_eq!(again.unconfirmed(), 0);
        again.apply_replicated("T@g", 0, 2); // a reset on the master, after confirmation
        assert_eq!(again.get("T", "g", 0), Some(2));
    }
}
