//! What the broker asks of a shard's store beyond its core API.

use storage::{GetStatus, Store};

/// RocketMQ's name of a store status (the pull response's remark).
pub fn status_name(status: GetStatus) -> &'static str {
    match status {
        GetStatus::Found => "FOUND",
        GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
        GetStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
        GetStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
        GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
        GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
        GetStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
        GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
    }
}

/// Store time of the oldest record in the commit log, if any.
pub async fn earliest_store_time(store: &Store) -> Option<i64> {
    let (min, max) = (store.commit_log_min_offset(), store.commit_log_max_offset());
    if max <= min {
        return None;
    }
    let record = store.read_record(min).await.ok()?;
    protocol::message::StoredMessage::decode(&record)
        .ok()
        .map(|(m, _)| m.store_timestamp)
}

/// Store time of the message at a queue offset, 0 when there is none.
pub async fn store_time_at(store: &Store, topic: &str, queue_id: i32, offset: i64) -> i64 {
    let result = store
        .get_messages(topic, queue_id, offset, 1, 1 << 20, |_| true)
        .await;
    result
        .records
        .first()
        .and_then(|r| protocol::message::StoredMessage::decode(r).ok())
        .map(|(m, _)| m.store_timestamp)
        .unwrap_or(0)
}

/// Share of RAM behind the commit-log head within which RocketMQ treats a
/// message as "in memory" (`accessMessageInMemoryMaxRatio`).
const IN_MEMORY_RATIO: f64 = 0.4;

/// Whether the oldest stored message is still "in memory" in RocketMQ's
/// sense: a new consumer group may then start from offset 0.
pub fn head_is_hot(store: &Store) -> bool {
    let behind = store.commit_log_max_offset() - store.commit_log_min_offset();
    (behind as f64) <= total_memory_bytes() as f64 * IN_MEMORY_RATIO
}

fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// Messages stored over all queues of this store.
pub fn total_messages(store: &Store) -> i64 {
    store.queues().iter().map(|q| q.max_offset).sum()
}
