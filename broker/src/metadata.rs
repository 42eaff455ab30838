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

/// The topic of the state records a master writes for its slaves (`crate::replstate`).
pub const STATE_TOPIC: &str = "SATURN_BROKER_STATE";

/// Topics producers may not send to.
pub const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "rmq_sys_wheel_timer",
    "SATURN_TIMER_PROGRESS",
    STATE_TOPIC,
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    SELF_TEST_TOPIC,
    OFFSET_MOVED_EVENT,
];

/// The topic replies go to: `<cluster>_REPLY_TOPIC`.
pub fn reply_topic(cluster: &str) -> String {
    format!("{cluster}_REPLY_TOPIC")
}

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
        let mut builtin = vec![
            TopicConfig::new(SELF_TEST_TOPIC, 1, 1, rw),
            TopicConfig::new(OFFSET_MOVED_EVENT, 1, 1, rw),
            TopicConfig::new(&config.cluster_name, 16, 16, rwi),
            // Replies of request-reply (DefaultMQProducer.request()), as RocketMQ creates it.
            TopicConfig::new(reply_topic(&config.cluster_name), 1, 1, rw),
        ];
        // Client-side message trace writes here (traceTopicEnable, msgTraceTopicName).
        if config.trace_topic_enable {
            let name = &config.trace_topic_name;
            if let Some(why) = topic_name_error(name) {
                return Err(format!("msgTraceTopicName: {why}"));
            }
            builtin.push(TopicConfig::new(name, 1, 1, rw));
        }
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

/// Writes JSON durably on the real disk (see [`write_json_on`]).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) {
    write_json_on(&storage::io::Disk::default(), path, value);
}

/// Writes JSON through the store's durable write on `disk`: a temporary file written and
/// fdatasynced, renamed over `path`, the directory fsynced. A crash or power cut leaves the
/// old or the new file whole; a temporary file left behind is ignored by [`read_json`] (unless
/// it is whole and `path` is missing: a cut between the rename and the directory's fsync).
/// A failure is logged; the next write tries again.
pub fn write_json_on<T: serde::Serialize>(disk: &storage::io::Disk, path: &Path, value: &T) {
    let bytes = protocol::body::encode_json(value);
    let result = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => disk.create_dir_all(dir),
        _ => Ok(()),
    }
    .and_then(|()| disk.write_file_durable(path, &bytes));
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

    #[test]
    fn trace_topic_is_created_unless_turned_off() {
        let base =
            std::env::var_os("SATURN_TEST_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("saturn-meta-trace-{}", std::process::id()));
        let with = |pairs: &[(&str, &str)]| {
            let _ = std::fs::remove_dir_all(&dir);
            let mut c = BrokerConfig {
                data_dir: dir.clone(),
                ..Default::default()
            };
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            c.apply_properties(&pairs).unwrap();
            Metadata::load(&c)
        };
        let m = with(&[]).unwrap();
        let t = &m.topics["RMQ_SYS_TRACE_TOPIC"];
        assert_eq!((t.read_queue_nums, t.write_queue_nums, t.perm), (1, 1, 6));
        let m = with(&[("msgTraceTopicName", "MyTrace")]).unwrap();
        assert!(m.topics.contains_key("MyTrace") && !m.topics.contains_key("RMQ_SYS_TRACE_TOPIC"));
        let m = with(&[("traceTopicEnable", "false")]).unwrap();
        assert!(!m.topics.contains_key("RMQ_SYS_TRACE_TOPIC"));
        let err = with(&[("msgTraceTopicName", "bad name")]).unwrap_err();
        assert!(err.contains("msgTraceTopicName"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn test_dir(name: &str) -> PathBuf {
        let root = std::env::var_os("SATURN_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-data")
            });
        let dir = root.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    type Table = BTreeMap<String, i64>;

    fn table(n: i64) -> Table {
        (0..n).map(|i| (format!("topic-{i}"), i)).collect()
    }

    /// A power cut at each sync of a metadata write (the temporary file's fdatasync, the
    /// directory's fsync) leaves the old file whole; with no cut the new one is read back.
    #[test]
    fn a_power_cut_leaves_the_old_or_the_new_file_whole() {
        use storage::fault::FaultDisk;
        let dir = test_dir("meta-power-cut");
        let path = dir.join("meta").join("topics.json");
        for cut in 1..=3u64 {
            let fault = FaultDisk::new(cut, &dir.join(format!("attic-{cut}"))).unwrap();
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
            write_json_on(&fault.disk(), &path, &table(3));
            let syncs = fault.syncs();
            fault.cut_at_sync(cut);
            write_json_on(&fault.disk(), &path, &table(50));
            let completed = !fault.is_dead();
            // Two syncs per write: a cut at the 1st or 2nd stops it, the 3rd is past it.
            assert_eq!(completed, cut == 3, "cut at sync {cut}");
            fault.power_cut().unwrap();
            fault.power_on();
            let got: Table = read_json(&path).unwrap().expect("the file is there");
            if completed {
                assert_eq!(got, table(50), "cut at sync {cut}: the write completed");
                assert_eq!(fault.syncs() - syncs, 2, "a durable write syncs twice");
            } else {
                assert_eq!(got, table(3), "cut at sync {cut}: the old file stays");
            }
        }
    }

    /// A temporary file a crash left half-written is ignored at start.
    #[test]
    fn a_partial_temporary_file_is_ignored() {
        let dir = test_dir("meta-partial-tmp");
        let path = dir.join("topics.json");
        let tmp = dir.join("topics.json.tmp");
        let partial = &protocol::body::encode_json(&table(40))[..25];
        std::fs::write(&tmp, partial).unwrap();
        assert_eq!(read_json::<Table>(&path).unwrap(), None);
        write_json(&path, &table(2));
        std::fs::write(&tmp, partial).unwrap();
        assert_eq!(read_json::<Table>(&path).unwrap(), Some(table(2)));
        // The next write replaces the leftover.
        write_json(&path, &table(4));
        assert!(!tmp.exists());
        assert_eq!(read_json::<Table>(&path).unwrap(), Some(table(4)));
    }
}
