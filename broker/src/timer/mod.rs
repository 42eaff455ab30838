//! Scheduled delivery: RocketMQ's delay levels (`DELAY=n`), 5.x timers (`TIMER_DELIVER_MS`,
//! `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`) and the retry schedule of CONSUMER_SEND_MSG_BACK.
//!
//! Timers are records in the shard's commit log, as RocketMQ stores them:
//!
//! * a delayed message goes to `SCHEDULE_TOPIC_XXXX`, queue `level − 1`, with `REAL_TOPIC`,
//!   `REAL_QID` and `DELAY` in its properties and its due time as the consume-queue tags code.
//!   Every message of a level has the same delay, so each level's queue is in due order and
//!   its head is all the engine looks at (nothing in memory per message);
//! * a 5.x timer goes to `rmq_sys_wheel_timer` queue 0 with `REAL_TOPIC`, `REAL_QID` and
//!   `TIMER_OUT_MS` (its due time). Due times are arbitrary there, so the engine indexes that
//!   queue by due time in [`index`]: coarse buckets on disk, only the near window in memory.
//!
//! [`engine`] runs one loop per shard that reads both inputs, re-stores what is due to its real
//! topic and queue and records its progress as a record of its own in the commit log, appended
//! in the same batch as the deliveries (see the module's docs for the durability argument).

pub mod engine;
pub mod index;

use protocol::message::properties::{self as prop, iter_pairs, Properties};
use protocol::message::{tag_hash, StoredMessage};

pub use engine::Timers;

/// RocketMQ's topic of delayed messages (one queue per level).
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// RocketMQ 5.x's topic of timer messages (one queue).
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Saturn's own: the engine's progress records (one queue).
pub const PROGRESS_TOPIC: &str = "SATURN_TIMER_PROGRESS";

/// 5.x timer properties: absolute delivery time, delay in seconds, delay in milliseconds.
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// RocketMQ 5.x's timer cancellation (a tombstone naming the UNIQ_KEY to cancel): not served.
pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
/// Set by the broker on a stored timer: its due time.
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";

/// RocketMQ's default `messageDelayLevel`.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Parses `messageDelayLevel`: space-separated durations with unit `ms`, `s`, `m`, `h` or `d`.
/// Returns each level's delay in ms (level n is element n − 1).
pub fn parse_delay_levels(text: &str) -> Option<Vec<i64>> {
    let levels: Option<Vec<i64>> = text
        .split_whitespace()
        .map(|item| {
            let (num, unit) = if let Some(n) = item.strip_suffix("ms") {
                (n, 1)
            } else {
                let split = item.len().checked_sub(1)?;
                let unit = match &item[split..] {
                    "s" => 1_000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return None,
                };
                (&item[..split], unit)
            };
            let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
            n.checked_mul(unit)
        })
        .collect();
    levels.filter(|l| !l.is_empty())
}

/// Whether the properties may ask for scheduling (a quick look for the property names; see
/// [`schedule_of`] for the answer).
pub fn may_schedule(props: &str) -> bool {
    props.contains("DELAY\u{1}") || props.contains("TIMER_")
}

/// What a sent message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Deliver at once.
    Now,
    /// A delay level (1-based, clamped to the configured levels) and its due time.
    Level(usize, i64),
    /// A 5.x timer due at this time (ms).
    At(i64),
}

/// Reads the scheduling properties of a message. A DELAY level wins over timer properties
/// (RocketMQ's legacy path); of the timer properties TIMER_DELIVER_MS, then TIMER_DELAY_SEC,
/// then TIMER_DELAY_MS. A timer farther than `max_delay_ms` ahead is an error naming the bound.
pub fn schedule_of(
    props: &str,
    levels: &[i64],
    max_delay_ms: i64,
    now: i64,
) -> Result<Schedule, String> {
    let (mut delay, mut timer) = (None, [None; 3]);
    for (name, value) in iter_pairs(props) {
        match name {
            prop::DELAY => delay = Some(value),
            TIMER_DELIVER_MS => timer[0] = Some(value),
            TIMER_DELAY_SEC => timer[1] = Some(value),
            TIMER_DELAY_MS => timer[2] = Some(value),
            TIMER_DEL_UNIQKEY => {
                return Err(format!(
                    "timer cancellation ({TIMER_DEL_UNIQKEY}={value}) is not served by this \
                     broker; the message was not stored"
                ))
            }
            _ => {}
        }
    }
    if let Some(value) = delay {
        let level: i64 = value
            .trim()
            .parse()
            .map_err(|_| format!("the DELAY property ({value}) is not a number"))?;
        if level > 0 {
            let level = (level as usize).min(levels.len());
            return Ok(Schedule::Level(level, now + levels[level - 1]));
        }
    }
    let names = [TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS];
    let Some((i, value)) = timer.iter().enumerate().find_map(|(i, v)| Some((i, (*v)?))) else {
        return Ok(Schedule::Now);
    };
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("the timer property {}={value} is not a number", names[i]))?;
    let due = match i {
        0 => n,
        1 => now.saturating_add(n.saturating_mul(1000)),
        _ => now.saturating_add(n),
    };
    if due.saturating_sub(now) > max_delay_ms {
        return Err(format!(
            "timer message {}={value} is due {} s from now, beyond the broker's timer horizon \
             of {} s (timerMaxDelaySec); the message was not stored",
            names[i],
            due.saturating_sub(now) / 1000,
            max_delay_ms / 1000
        ));
    }
    Ok(if due <= now {
        Schedule::Now
    } else {
        Schedule::At(due)
    })
}

/// Whether `topic` is one of the queues the timer engine reads (a delayed or timer message).
pub fn is_timer_topic(topic: &str) -> bool {
    topic == SCHEDULE_TOPIC || topic == TIMER_TOPIC
}

/// Rewrites a message about to be stored into its timer form: SCHEDULE_TOPIC_XXXX or
/// rmq_sys_wheel_timer, with REAL_TOPIC / REAL_QID and the due time as its tags code.
pub fn divert(msg: &mut storage::MessageToStore, schedule: Schedule) {
    let (topic, queue_id, due) = match schedule {
        Schedule::Now => return,
        Schedule::Level(level, due) => (SCHEDULE_TOPIC, level as i32 - 1, due),
        Schedule::At(due) => (TIMER_TOPIC, 0, due),
    };
    let mut props = Properties::decode(&msg.properties);
    props.insert(prop::REAL_TOPIC, msg.topic.as_str());
    props.insert(prop::REAL_QID, msg.queue_id.to_string());
    match schedule {
        Schedule::Level(level, _) => {
            for name in [TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS] {
                props.remove(name);
            }
            props.insert(prop::DELAY, level.to_string());
        }
        _ => {
            props.insert(TIMER_OUT_MS, due.to_string());
        }
    }
    msg.properties = props.encode();
    msg.topic = topic.to_owned();
    msg.queue_id = queue_id;
    msg.tags_code = due;
}

/// The message to re-store when a stored timer is due: its real topic and queue, the DELAY and
/// timer properties removed (so it is not scheduled again), everything else kept.
pub fn restore(msg: StoredMessage) -> Result<storage::MessageToStore, String> {
    let mut props = Properties::decode(&msg.properties);
    let topic = props
        .get(prop::REAL_TOPIC)
        .filter(|t| !t.is_empty())
        .ok_or("no REAL_TOPIC")?
        .to_owned();
    let queue_id: i32 = props
        .get(prop::REAL_QID)
        .and_then(|q| q.parse().ok())
        .filter(|q| *q >= 0)
        .ok_or("no valid REAL_QID")?;
    for name in [
        prop::DELAY,
        TIMER_DELIVER_MS,
        TIMER_DELAY_SEC,
        TIMER_DELAY_MS,
    ] {
        props.remove(name);
    }
    let tags_code = props.get(prop::TAGS).map_or(0, tag_hash);
    let keys = props.get(prop::KEYS).unwrap_or_default().to_owned();
    let uniq_key = props.get(prop::UNIQ_KEY).map(str::to_owned);
    Ok(storage::MessageToStore {
        topic,
        queue_id,
        flag: msg.flag,
        body: msg.body,
        properties: props.encode(),
        sys_flag: msg.sys_flag,
        born_timestamp: msg.born_timestamp,
        born_host: msg.born_host,
        reconsume_times: msg.reconsume_times,
        prepared_transaction_offset: 0,
        tags_code,
        keys,
        uniq_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
            .collect()
    }

    #[test]
    fn delay_levels_parse_with_units() {
        let l = parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap();
        assert_eq!(l.len(), 18);
        assert_eq!((l[0], l[3], l[4], l[17]), (1000, 30_000, 60_000, 7_200_000));
        assert_eq!(
            parse_delay_levels("200ms 1s 2d"),
            Some(vec![200, 1000, 172_800_000])
        );
        for bad in ["", "1x", "s", "0s", "-1s", "1.5s"] {
            assert_eq!(parse_delay_levels(bad), None, "{bad}");
        }
    }

    #[test]
    fn schedule_reads_level_and_timers() {
        let levels = [1000, 5000, 10_000];
        let max = 40 * 86_400_000;
        let s = |p: &[(&str, &str)]| schedule_of(&props(p), &levels, max, 1_000_000);
        assert_eq!(s(&[("TAGS", "a")]), Ok(Schedule::Now));
        assert_eq!(s(&[("DELAY", "0")]), Ok(Schedule::Now));
        assert_eq!(s(&[("DELAY", "2")]), Ok(Schedule::Level(2, 1_005_000)));
        // Above the last level: clamped to it.
        assert_eq!(s(&[("DELAY", "40")]), Ok(Schedule::Level(3, 1_010_000)));
        // DELAY wins over timer properties.
        let p = [("TIMER_DELAY_SEC", "9"), ("DELAY", "1")];
        assert_eq!(s(&p), Ok(Schedule::Level(1, 1_001_000)));
        assert_eq!(s(&[("TIMER_DELAY_SEC", "3")]), Ok(Schedule::At(1_003_000)));
        assert_eq!(s(&[("TIMER_DELAY_MS", "30")]), Ok(Schedule::At(1_000_030)));
        assert_eq!(
            s(&[("TIMER_DELIVER_MS", "2000000")]),
            Ok(Schedule::At(2_000_000))
        );
        // Due already: at once.
        assert_eq!(s(&[("TIMER_DELIVER_MS", "5")]), Ok(Schedule::Now));
        assert!(s(&[("DELAY", "x")]).unwrap_err().contains("DELAY"));
        assert!(s(&[("TIMER_DELAY_MS", "y")])
            .unwrap_err()
            .contains("TIMER_DELAY_MS=y"));
        let cancel = s(&[("TIMER_DELAY_SEC", "3"), ("TIMER_DEL_UNIQKEY", "X")]).unwrap_err();
        assert!(cancel.contains("cancellation"), "{cancel}");
        let far = s(&[("TIMER_DELAY_SEC", "3456001")]).unwrap_err();
        assert!(
            far.contains("timerMaxDelaySec") && far.contains("3456000 s"),
            "{far}"
        );
        assert!(s(&[("TIMER_DELAY_SEC", "3456000")]).is_ok());
    }

    fn message(properties: String) -> storage::MessageToStore {
        storage::MessageToStore {
            topic: "T".into(),
            queue_id: 3,
            flag: 7,
            body: bytes::Bytes::from_static(b"body"),
            properties,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "127.0.0.1:5".parse().unwrap(),
            reconsume_times: 2,
            prepared_transaction_offset: 0,
            tags_code: 0,
            keys: "k1".into(),
            uniq_key: Some("U".into()),
        }
    }

    #[test]
    fn divert_keeps_the_real_destination() {
        let mut m = message(props(&[("TAGS", "a"), ("UNIQ_KEY", "U"), ("DELAY", "9")]));
        divert(&mut m, Schedule::Level(3, 77));
        assert_eq!(
            (m.topic.as_str(), m.queue_id, m.tags_code),
            (SCHEDULE_TOPIC, 2, 77)
        );
        let p = Properties::decode(&m.properties);
        assert_eq!(p.get("REAL_TOPIC"), Some("T"));
        assert_eq!(p.get("REAL_QID"), Some("3"));
        assert_eq!(p.get("DELAY"), Some("3"));
        let mut t = message(props(&[("TIMER_DELAY_MS", "5")]));
        divert(&mut t, Schedule::At(99));
        assert_eq!(
            (t.topic.as_str(), t.queue_id, t.tags_code),
            (TIMER_TOPIC, 0, 99)
        );
        assert_eq!(
            Properties::decode(&t.properties).get("TIMER_OUT_MS"),
            Some("99")
        );
    }
}
