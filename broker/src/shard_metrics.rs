//! What a shard answers a metrics scrape with ([`crate::metrics::Source`]): figures it already
//! keeps, read on its own thread when asked.

use std::collections::BTreeMap;

use protocol::body::ConsumeType;

use crate::histogram::{Histogram, BOUNDS};
use crate::metrics::{labels, Sample, Source};
use crate::shard::Shard;

fn is_system(topic: &str) -> bool {
    topic.starts_with("rmq_sys_")
        || topic.starts_with("RMQ_SYS_")
        || matches!(
            topic,
            "TBW102" | "SCHEDULE_TOPIC_XXXX" | "OFFSET_MOVED_EVENT" | "SELF_TEST_TOPIC"
        )
}

fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

struct Out<'a> {
    shard: &'a Shard,
    samples: Vec<Sample>,
}

impl Out<'_> {
    fn push(&mut self, family: &'static str, extra: &[(&str, &str)], value: f64) {
        let mut pairs = vec![
            ("cluster", self.shard.config.cluster_name.as_str()),
            ("node_type", "broker"),
            ("node_id", self.shard.name.as_str()),
        ];
        pairs.extend_from_slice(extra);
        self.samples.push(Sample {
            family,
            suffix: "",
            labels: labels(&pairs),
            value,
        });
    }

    /// A histogram's `_bucket` series (cumulative, `le` in seconds), `_sum` and `_count`.
    fn histogram(&mut self, family: &'static str, h: &Histogram) {
        let (cumulative, sum) = h.cumulative();
        let base = [
            ("cluster", self.shard.config.cluster_name.as_str()),
            ("node_type", "broker"),
            ("node_id", self.shard.name.as_str()),
        ];
        let les: Vec<String> = BOUNDS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".into()])
            .collect();
        for (le, count) in les.iter().zip(cumulative) {
            let mut pairs = base.to_vec();
            pairs.push(("le", le));
            self.samples.push(Sample {
                family,
                suffix: "_bucket",
                labels: labels(&pairs),
                value: count as f64,
            });
        }
        let total = cumulative[BOUNDS.len()] as f64;
        for (suffix, value) in [("_sum", sum), ("_count", total)] {
            self.samples.push(Sample {
                family,
                suffix,
                labels: labels(&base),
                value,
            });
        }
    }
}

impl Source for Shard {
    fn collect(&self) -> Vec<Sample> {
        let mut out = Out {
            shard: self,
            samples: Vec::new(),
        };
        traffic(self, &mut out);
        lag(self, &mut out);
        clients(self, &mut out);
        let store = &self.store;
        let held = store.commit_log_max_offset() - store.commit_log_min_offset();
        out.push(
            "rocketmq_topic_number",
            &[],
            self.topics.borrow().len() as f64,
        );
        out.push(
            "rocketmq_consumer_group_number",
            &[],
            self.groups.borrow().len() as f64,
        );
        let disk = [("storage_type", "local"), ("storage_medium", "disk")];
        out.push("rocketmq_storage_size", &disk, held.max(0) as f64);
        out.push(
            "rocketmq_storage_flush_behind_bytes",
            &disk,
            store.dirty_bytes() as f64,
        );
        out.push("saturn_connections", &[], self.connections.len() as f64);
        out.push("saturn_consume_queues", &[], store.queues().len() as f64);
        out.push(
            "saturn_messages_put_total",
            &[],
            self.stats.put.total_msgs() as f64,
        );
        out.push(
            "saturn_messages_got_total",
            &[],
            self.stats.got.total_msgs() as f64,
        );
        out.histogram("saturn_append_latency_seconds", &self.stats.append_latency);
        out.histogram("saturn_flush_wait_seconds", &self.stats.flush_wait);
        out.samples
    }
}

fn traffic(shard: &Shard, out: &mut Out<'_>) {
    shard.stats.each_topic_put(|topic, msgs, bytes| {
        if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
            return;
        }
        let l = [("topic", topic), ("is_system", flag(is_system(topic)))];
        out.push("rocketmq_messages_in_total", &l, msgs as f64);
        out.push("rocketmq_throughput_in_total", &l, bytes as f64);
    });
    shard.stats.each_group_get(|topic, group, msgs, bytes| {
        let l = [
            ("topic", topic),
            ("consumer_group", group),
            ("is_system", flag(is_system(topic))),
        ];
        out.push("rocketmq_messages_out_total", &l, msgs as f64);
        out.push("rocketmq_throughput_out_total", &l, bytes as f64);
    });
}

/// Per (topic, group) with committed offsets: the messages between them and each queue's end.
fn lag(shard: &Shard, out: &mut Out<'_>) {
    let snapshot = shard.offsets.borrow().snapshot();
    for (key, queues) in &snapshot.offset_table {
        let Some((topic, group)) = key.split_once('@') else {
            continue;
        };
        let behind: i64 = queues
            .iter()
            .map(|(q, committed)| (shard.store.max_offset(topic, *q) - committed).max(0))
            .sum();
        let l = [
            ("topic", topic),
            ("consumer_group", group),
            ("is_retry", flag(topic.starts_with("%RETRY%"))),
            ("is_system", flag(is_system(topic))),
        ];
        out.push("rocketmq_consumer_lag_messages", &l, behind as f64);
    }
}

fn clients(shard: &Shard, out: &mut Out<'_>) {
    let clients = shard.clients.borrow();
    let mut producers: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    for channels in clients.producers.values() {
        for c in channels.values() {
            let key = (
                c.conn.language.get().name(),
                c.conn.version.get().to_string(),
            );
            *producers.entry(key).or_default() += 1;
        }
    }
    for ((lang, version), n) in producers {
        let l = [
            ("language", lang),
            ("version", version.as_str()),
            ("protocol_type", "remoting"),
        ];
        out.push("rocketmq_producer_connections", &l, n as f64);
    }
    let mut consumers: BTreeMap<(&str, &'static str, String, &str), usize> = BTreeMap::new();
    for (group, g) in &clients.consumers {
        let mode = match g.consume_type {
            ConsumeType::CONSUME_PASSIVELY => "push",
            ConsumeType::CONSUME_POP => "pop",
            ConsumeType::CONSUME_ACTIVELY => "pull",
        };
        for c in g.channels.values() {
            let key = (
                group.as_str(),
                c.conn.language.get().name(),
                c.conn.version.get().to_string(),
                mode,
            );
            *consumers.entry(key).or_default() += 1;
        }
    }
    for ((group, lang, version, mode), n) in consumers {
        let l = [
            ("consumer_group", group),
            ("language", lang),
            ("version", version.as_str()),
            ("consume_mode", mode),
            ("protocol_type", "remoting"),
        ];
        out.push("rocketmq_consumer_connections", &l, n as f64);
    }
}
