//! Per-shard traffic counters: messages and bytes put per topic, got per (topic, group), and
//! the shard's totals, with the rates mqadmin shows (statsAll, clusterList, brokerStatus,
//! brokerConsumeStats, consumerProgress).
//!
//! The send and pull paths only add to plain `Cell` counters (one map lookup by the name they
//! already hold; nothing allocated once a key exists). A timer of the shard samples every
//! counter every 10 s into three bounded rings (a minute of 10 s samples, an hour of 1 min
//! samples, a day of 1 h samples); a rate is the counter's growth since the oldest sample of
//! the window, divided by the time between them, so it is a measured rate over at most that
//! window, never a guess.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// The multiply-rotate hash rustc uses (FxHash): a counted send or pull hashes its topic (and
/// group) name once, and SipHash cost 45-55 ns per lookup here against 17-21 ns for this one
/// (a 50 M-lookup loop over 64 topic names). Keys are topic and group names, which exist only once
/// created; a client able to create colliding names slows down only these maps.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in words.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap<V> = HashMap<String, V, BuildHasherDefault<NameHasher>>;

/// How often the shard samples its counters.
pub const SAMPLE_INTERVAL_MS: i64 = 10_000;

/// One sample: time and the counter's values then.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sample {
    at_ms: i64,
    msgs: u64,
    bytes: u64,
    times: u64,
}

/// A bounded ring of samples taken at least `every_ms` apart.
#[derive(Debug)]
struct Ring {
    every_ms: i64,
    cap: usize,
    samples: VecDeque<Sample>,
}

impl Ring {
    fn new(every_ms: i64, cap: usize, first: Sample) -> Self {
        let mut samples = VecDeque::with_capacity(cap);
        samples.push_back(first);
        Self {
            every_ms,
            cap,
            samples,
        }
    }

    fn offer(&mut self, s: Sample) {
        let due = self
            .samples
            .back()
            .is_none_or(|last| s.at_ms - last.at_ms >= self.every_ms - SAMPLE_INTERVAL_MS / 2);
        if due {
            if self.samples.len() == self.cap {
                self.samples.pop_front();
            }
            self.samples.push_back(s);
        }
    }

    fn oldest(&self) -> Sample {
        self.samples.front().copied().unwrap_or_default()
    }
}

/// What a window shows: RocketMQ's StatsSnapshot (`sum`, `tps`, `avgpt`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Messages in the window.
    pub sum: u64,
    /// Messages per second over the window.
    pub tps: f64,
    /// Messages per put or pull call in the window.
    pub avgpt: f64,
    /// Bytes in the window, per second, per call.
    pub bytes: u64,
    pub bytes_tps: f64,
    pub bytes_avgpt: f64,
}

/// Messages, bytes and calls counted for one key.
#[derive(Debug)]
pub struct Counter {
    msgs: Cell<u64>,
    bytes: Cell<u64>,
    times: Cell<u64>,
    rings: RefCell<[Ring; 3]>,
}

impl Counter {
    fn new(now_ms: i64) -> Self {
        let zero = Sample {
            at_ms: now_ms,
            ..Default::default()
        };
        Self {
            msgs: Cell::new(0),
            bytes: Cell::new(0),
            times: Cell::new(0),
            rings: RefCell::new([
                Ring::new(SAMPLE_INTERVAL_MS, 7, zero),
                Ring::new(60_000, 61, zero),
                Ring::new(3_600_000, 25, zero),
            ]),
        }
    }

    #[inline]
    pub fn add(&self, msgs: u64, bytes: u64) {
        self.msgs.set(self.msgs.get() + msgs);
        self.bytes.set(self.bytes.get() + bytes);
        self.times.set(self.times.get() + 1);
    }

    pub fn total_msgs(&self) -> u64 {
        self.msgs.get()
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes.get()
    }

    fn now(&self, now_ms: i64) -> Sample {
        Sample {
            at_ms: now_ms,
            msgs: self.msgs.get(),
            bytes: self.bytes.get(),
            times: self.times.get(),
        }
    }

    fn sample(&self, now_ms: i64) {
        let s = self.now(now_ms);
        for ring in self.rings.borrow_mut().iter_mut() {
            ring.offer(s);
        }
    }

    fn between(from: Sample, to: Sample) -> Snapshot {
        let sum = to.msgs - from.msgs;
        let times = to.times - from.times;
        let dt = to.at_ms - from.at_ms;
        let bytes = to.bytes - from.bytes;
        let per_s = |n: u64| {
            if dt > 0 {
                n as f64 * 1000.0 / dt as f64
            } else {
                0.0
            }
        };
        let per_call = |n: u64| {
            if times > 0 {
                n as f64 / times as f64
            } else {
                0.0
            }
        };
        Snapshot {
            sum,
            tps: per_s(sum),
            avgpt: per_call(sum),
            bytes,
            bytes_tps: per_s(bytes),
            bytes_avgpt: per_call(bytes),
        }
    }

    /// The last minute (0), hour (1) or day (2), up to now.
    pub fn window(&self, which: usize, now_ms: i64) -> Snapshot {
        let from = self.rings.borrow()[which.min(2)].oldest();
        Self::between(from, self.now(now_ms))
    }

    /// Messages per second over about the last `span_ms` (the sample closest to that age).
    pub fn rate_over(&self, span_ms: i64, now_ms: i64) -> f64 {
        let rings = self.rings.borrow();
        let want = now_ms - span_ms;
        let from = rings
            .iter()
            .flat_map(|r| r.samples.iter())
            .filter(|s| s.at_ms >= want - SAMPLE_INTERVAL_MS / 2)
            .min_by_key(|s| s.at_ms)
            .copied()
            .unwrap_or_else(|| rings[0].oldest());
        Self::between(from, self.now(now_ms)).tps
    }
}

/// RocketMQ's `message_type` label of a send (its `TopicMessageType`): a transaction's half
/// message or commit, else a message with a sharding key, else a delayed or timer message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Normal = 0,
    Fifo = 1,
    Delay = 2,
    Transaction = 3,
}

impl MessageType {
    pub const ALL: [MessageType; 4] = [Self::Normal, Self::Fifo, Self::Delay, Self::Transaction];

    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Fifo => "fifo",
            Self::Delay => "delay",
            Self::Transaction => "transaction",
        }
    }
}

/// One topic's put counters: all of them (the rates), and messages, bytes and the stored size
/// of each send by message type (the metrics).
#[derive(Debug)]
pub struct TopicPut {
    all: Counter,
    typed: [(Cell<u64>, Cell<u64>); 4],
    /// Average stored record size of each send, by message type.
    pub sizes: [crate::histogram::Histogram; 4],
}

impl TopicPut {
    fn new(now_ms: i64) -> Self {
        use crate::histogram::{Histogram, MESSAGE_SIZE};
        Self {
            all: Counter::new(now_ms),
            typed: Default::default(),
            sizes: std::array::from_fn(|_| Histogram::new(MESSAGE_SIZE)),
        }
    }

    #[inline]
    fn add(&self, kind: MessageType, msgs: u64, bytes: u64, stored: u64) {
        self.all.add(msgs, bytes);
        let (m, b) = &self.typed[kind as usize];
        m.set(m.get() + msgs);
        b.set(b.get() + bytes);
        self.sizes[kind as usize].record(stored / msgs.max(1));
    }

    /// Messages and body bytes of one message type.
    pub fn typed(&self, kind: MessageType) -> (u64, u64) {
        let (m, b) = &self.typed[kind as usize];
        (m.get(), b.get())
    }
}

/// Messages put and got since boot at the start of today and of yesterday (UTC days), as
/// RocketMQ's runtime info reports them (`msgPutTotalTodayMorning`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayMarks {
    pub day: i64,
    pub put_morning: u64,
    pub put_yesterday: u64,
    pub get_morning: u64,
    pub get_yesterday: u64,
}

const DAY_MS: i64 = 86_400_000;

/// The counters of one shard.
#[derive(Debug)]
pub struct ShardStats {
    /// Time of the last sample: a key seen for the first time counted nothing since then.
    last_sample_ms: Cell<i64>,
    day: Cell<DayMarks>,
    /// Every message stored by this shard.
    pub put: Counter,
    /// Every message handed to a consumer by this shard.
    pub got: Counter,
    topic_put: RefCell<NameMap<TopicPut>>,
    /// topic → group → counter.
    group_get: RefCell<NameMap<NameMap<Counter>>>,
    /// Time a send spends getting its records into the store (backpressure wait included).
    pub append_latency: crate::histogram::Histogram,
    /// Time a SYNC_FLUSH send waits for its records to be durable.
    pub flush_wait: crate::histogram::Histogram,
    /// Time from a request's dispatch to its answer (`rocketmq_rpc_latency`).
    pub rpc: crate::histogram::RpcLatency,
}

fn latency() -> crate::histogram::Histogram {
    crate::histogram::Histogram::new(crate::histogram::LATENCY_NS)
}

impl ShardStats {
    pub fn new(now_ms: i64) -> Self {
        Self {
            last_sample_ms: Cell::new(now_ms),
            day: Cell::new(DayMarks {
                day: now_ms / DAY_MS,
                ..Default::default()
            }),
            put: Counter::new(now_ms),
            got: Counter::new(now_ms),
            topic_put: RefCell::new(NameMap::default()),
            group_get: RefCell::new(NameMap::default()),
            append_latency: latency(),
            flush_wait: latency(),
            rpc: Default::default(),
        }
    }

    /// A send of type `kind` stored `msgs` messages of `bytes` body bytes, `stored` bytes of
    /// records, in `topic`.
    #[inline]
    pub fn on_put(&self, topic: &str, kind: MessageType, msgs: u64, bytes: u64, stored: u64) {
        self.put.add(msgs, bytes);
        let mut map = self.topic_put.borrow_mut();
        match map.get(topic) {
            Some(c) => c.add(kind, msgs, bytes, stored),
            None => {
                let c = TopicPut::new(self.last_sample_ms.get());
                c.add(kind, msgs, bytes, stored);
                map.insert(topic.to_owned(), c);
            }
        }
    }

    /// A pull of `group` got `msgs` messages of `bytes` stored bytes from `topic`.
    #[inline]
    pub fn on_get(&self, topic: &str, group: &str, msgs: u64, bytes: u64) {
        if msgs == 0 {
            return;
        }
        self.got.add(msgs, bytes);
        let mut map = self.group_get.borrow_mut();
        let groups = match map.get_mut(topic) {
            Some(g) => g,
            None => map.entry(topic.to_owned()).or_default(),
        };
        match groups.get(group) {
            Some(c) => c.add(msgs, bytes),
            None => {
                let c = Counter::new(self.last_sample_ms.get());
                c.add(msgs, bytes);
                groups.insert(group.to_owned(), c);
            }
        }
    }

    /// Every topic's put counters.
    pub fn each_topic_put(&self, mut f: impl FnMut(&str, &TopicPut)) {
        for (topic, c) in self.topic_put.borrow().iter() {
            f(topic, c);
        }
    }

    /// Every (topic, group)'s get totals: (topic, group, messages, bytes).
    pub fn each_group_get(&self, mut f: impl FnMut(&str, &str, u64, u64)) {
        for (topic, groups) in self.group_get.borrow().iter() {
            for (group, c) in groups {
                f(topic, group, c.total_msgs(), c.total_bytes());
            }
        }
    }

    /// Takes a sample of every counter (the shard's timer, every `SAMPLE_INTERVAL_MS`).
    pub fn sample(&self, now_ms: i64) {
        self.last_sample_ms.set(now_ms);
        let mut d = self.day.get();
        if now_ms / DAY_MS != d.day {
            d = DayMarks {
                day: now_ms / DAY_MS,
                put_yesterday: d.put_morning,
                put_morning: self.put.total_msgs(),
                get_yesterday: d.get_morning,
                get_morning: self.got.total_msgs(),
            };
            self.day.set(d);
        }
        self.put.sample(now_ms);
        self.got.sample(now_ms);
        for c in self.topic_put.borrow().values() {
            c.all.sample(now_ms);
        }
        for groups in self.group_get.borrow().values() {
            for c in groups.values() {
                c.sample(now_ms);
            }
        }
    }

    /// Minute, hour and day windows of a stats item by RocketMQ's name
    /// (`TOPIC_PUT_NUMS`/`TOPIC_PUT_SIZE` keyed by topic, `GROUP_GET_NUMS`/`GROUP_GET_SIZE` keyed
    /// by `topic@group`); `None` when this shard has not counted that key.
    pub fn item(&self, name: &str, key: &str, now_ms: i64) -> Option<[Snapshot; 3]> {
        let windows = |c: &Counter| [0, 1, 2].map(|w| c.window(w, now_ms));
        let sized = |mut w: [Snapshot; 3]| {
            for s in &mut w {
                s.sum = s.bytes;
                s.tps = s.bytes_tps;
                s.avgpt = s.bytes_avgpt;
            }
            w
        };
        match name {
            "TOPIC_PUT_NUMS" => self.topic_put.borrow().get(key).map(|t| windows(&t.all)),
            "TOPIC_PUT_SIZE" => self
                .topic_put
                .borrow()
                .get(key)
                .map(|t| sized(windows(&t.all))),
            "GROUP_GET_NUMS" | "GROUP_GET_SIZE" => {
                let (topic, group) = key.split_once('@')?;
                let map = self.group_get.borrow();
                let w = map.get(topic)?.get(group).map(windows)?;
                Some(if name == "GROUP_GET_SIZE" {
                    sized(w)
                } else {
                    w
                })
            }
            _ => None,
        }
    }

    /// Drops the counters of a deleted topic (the maps hold only topics that exist or existed
    /// since the last deletion, so they stay bounded by the topic and group tables).
    pub fn forget_topic(&self, topic: &str) {
        self.topic_put.borrow_mut().remove(topic);
        self.group_get.borrow_mut().remove(topic);
    }

    pub fn day_marks(&self) -> DayMarks {
        self.day.get()
    }

    /// Messages per second `group` got from `topic` over the last minute.
    pub fn group_get_tps(&self, topic: &str, group: &str, now_ms: i64) -> f64 {
        self.group_get
            .borrow()
            .get(topic)
            .and_then(|g| g.get(group))
            .map(|c| c.window(0, now_ms).tps)
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_samples() {
        let s = ShardStats::new(0);
        for _ in 0..100 {
            s.on_put("T", MessageType::Normal, 1, 10, 100);
        }
        s.sample(10_000);
        for _ in 0..100 {
            s.on_put("T", MessageType::Delay, 2, 20, 300);
        }
        // 300 messages in 20 s since the counter was created at 0.
        let w = s.item("TOPIC_PUT_NUMS", "T", 20_000).unwrap();
        assert_eq!(w[0].sum, 300);
        assert!((w[0].tps - 15.0).abs() < 1e-9, "{w:?}");
        assert!((w[0].avgpt - 1.5).abs() < 1e-9);
        let size = s.item("TOPIC_PUT_SIZE", "T", 20_000).unwrap();
        assert_eq!(size[0].sum, 3000);
        assert!(s.item("TOPIC_PUT_NUMS", "U", 20_000).is_none());
        let put = s.topic_put.borrow();
        assert_eq!(put["T"].typed(MessageType::Normal), (100, 1000));
        assert_eq!(put["T"].typed(MessageType::Delay), (200, 2000));
        assert_eq!(put["T"].typed(MessageType::Fifo), (0, 0));
        // One observation per send: its average stored record size.
        assert_eq!(
            put["T"].sizes[MessageType::Delay as usize].cumulative().1,
            15000
        );
        assert_eq!(put["T"].sizes[MessageType::Normal as usize].count(), 100);
        // Over the last 10 s: 200 messages.
        assert!((s.put.rate_over(10_000, 20_000) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn the_minute_ring_forgets_old_traffic() {
        let s = ShardStats::new(0);
        s.on_get("T", "g", 600, 6000);
        for i in 1..=12 {
            s.sample(i * SAMPLE_INTERVAL_MS);
        }
        let w = s.item("GROUP_GET_NUMS", "T@g", 120_000).unwrap();
        assert_eq!(w[0].sum, 0, "the minute window holds no traffic: {w:?}");
        assert_eq!(w[1].sum, 600, "the hour window does");
        assert_eq!(s.group_get_tps("T", "g", 120_000), 0.0);
        assert!(s.item("GROUP_GET_NUMS", "T@h", 120_000).is_none());
    }
}
