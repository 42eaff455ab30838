//! Consumer offsets of one shard: `topic@group` → queue → next offset to
//! consume, persisted as RocketMQ's `consumerOffset.json` every 5 s and on
//! shutdown.

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::body::ConsumerOffsetSerializeWrapper;

use crate::metadata::{read_json, write_json};

pub struct OffsetTable {
    path: PathBuf,
    table: BTreeMap<String, BTreeMap<i32, i64>>,
    dirty: bool,
}

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
        Self {
            path,
            table,
            dirty: false,
        }
    }

    pub fn get(&self, topic: &str, group: &str, queue: i32) -> Option<i64> {
        self.table.get(&key(topic, group))?.get(&queue).copied()
    }

    pub fn commit(&mut self, topic: &str, group: &str, queue: i32, offset: i64) {
        let slot = self
            .table
            .entry(key(topic, group))
            .or_default()
            .entry(queue)
            .or_insert(offset);
        if *slot != offset {
            *slot = offset;
        }
        self.dirty = true;
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
