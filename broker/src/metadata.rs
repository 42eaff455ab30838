//! Process-wide metadata: topic configs and subscription groups, with a
//! single writer (the control thread) and a copy in every shard. Persisted
//! as RocketMQ's `topics.json` and `subscriptionGroup.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::body::{
    perm, DataVersion, SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicConfig,
    TopicConfigSerializeWrapper,
};

use crate::config::BrokerConfig;

pub const TBW102: &str = "TBW102";
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
pub const RETRY_PREFIX: &str = "%RETRY%";
pub const DLQ_PREFIX: &str = "%DLQ%";

/// Topics producers may not send to.
pub const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "rmq_sys_wheel_timer",
    "SATURN_TIMER_PROGRESS",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    SELF_TEST_TOPIC,
    OFFSET_MOVED_EVENT,
];

/// Why a topic name is refused, or `None` when it is valid.
pub fn topic_name_error(topic: &str) -> Option<String> {
    if topic.trim().is_empty() {
        return Some("the specified topic is blank".into());
    }
    let max = if topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX) {
        255
    } else {
        127
    };
    if topic.len() > max {
        return Some(format!(
            "the specified topic is longer than topic max length {max}"
        ));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '%' | '|' | '-')))
    {
        return Some(format!(
            "the specified topic[{topic}] contains illegal character {c:?}, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    None
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct Metadata {
    pub topics: BTreeMap<String, TopicConfig>,
    pub groups: BTreeMap<String, SubscriptionGroupConfig>,
    pub data_version: DataVersion,
    dir: PathBuf,
}

impl Metadata {
    /// Loads the config directory (creating the built-in topics).
    pub fn load(config: &BrokerConfig) -> Result<Self, String> {
        let dir = config.data_dir.join("config");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let topics: TopicConfigSerializeWrapper =
            read_json(&dir.join("topics.json"))?.unwrap_or_default();
        let groups: SubscriptionGroupWrapper =
            read_json(&dir.join("subscriptionGroup.json"))?.unwrap_or_default();
        let mut meta = Self {
            topics: topics.topic_config_table,
            groups: groups.subscription_group_table,
            data_version: DataVersion {
                state_version: 0,
                timestamp: now_ms(),
                counter: topics.data_version.counter,
            },
            dir,
        };
        let rw = perm::READ | perm::WRITE;
        let rwi = rw | perm::INHERIT;
        let builtin = [
            TopicConfig::new(SELF_TEST_TOPIC, 1, 1, rw),
            TopicConfig::new(OFFSET_MOVED_EVENT, 1, 1, rw),
            TopicConfig::new(&config.cluster_name, 16, 16, rwi),
        ];
        for t in builtin {
            meta.topics.entry(t.topic_name.clone()).or_insert(t);
        }
        if config.auto_create_topic {
            let q = config.default_topic_queue_nums;
            meta.topics
                .insert(TBW102.into(), TopicConfig::new(TBW102, q, q, rwi));
        } else {
            meta.topics.remove(TBW102);
        }
        meta.persist_topics();
        Ok(meta)
    }

    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            topic_config_table: self.topics.clone(),
            data_version: self.data_version.clone(),
        }
    }

    pub fn bump(&mut self) {
        self.data_version.counter += 1;
        self.data_version.timestamp = now_ms();
    }

    pub fn persist_topics(&self) {
        write_json(&self.dir.join("topics.json"), &self.wrapper());
    }

    pub fn persist_groups(&self) {
        write_json(
            &self.dir.join("subscriptionGroup.json"),
            &SubscriptionGroupWrapper {
                subscription_group_table: self.groups.clone(),
                data_version: self.data_version.clone(),
            },
        );
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => protocol::body::decode_json(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is corrupt: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A crash between write and rename leaves only the temporary file.
            let tmp = path.with_extension("json.tmp");
            match std::fs::read(&tmp) {
                Ok(bytes) => Ok(protocol::body::decode_json(&bytes).ok()),
                Err(_) => Ok(None),
            }
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes JSON through a temporary file, fsync and rename, so a crash
/// leaves the old or the new file whole.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) {
    use std::io::Write;
    let bytes = protocol::body::encode_json(value);
    let tmp = path.with_extension("json.tmp");
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(path = %path.display(), error = %e, "cannot persist");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(topic_name_error("TopicTest").is_none());
        assert!(topic_name_error("%RETRY%group-1").is_none());
        assert!(topic_name_error("").is_some());
        assert!(topic_name_error("a b").unwrap().contains("illegal"));
        assert!(topic_name_error(&"x".repeat(128)).is_some());
        assert!(topic_name_error(&format!("%RETRY%{}", "x".repeat(200))).is_none());
    }
}
