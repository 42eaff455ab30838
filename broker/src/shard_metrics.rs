//! What a shard answers a metrics scrape with ([`crate::metrics::Source`]): figures it already
//! keeps, read on its own thread when asked.

use std::collections::BTreeMap;

use protocol::body::ConsumeType;

use crate::histogram::Histogram;
use crate::metrics::{labels, Sample, Source};
use crate::shard::Shard;
use crate::stats::MessageType;

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
    fn pairs<'b>(&'b self, extra: &[(&'b str, &'b str)]) -> Vec<(&'b str, &'b str)> {
        let mut pairs = vec![
            ("cluster", self.shard.config.cluster_name.as_str()),
            ("node_type", "broker"),
            ("node_id", self.shard.name.as_str()),
        ];
        pairs.extend_from_slice(extra);
        pairs
    }

    fn push(&mut self, family: &'static str, extra: &[(&str, &str)], value: f64) {
        let labels = labels(&self.pairs(extra));
        self.samples.push(Sample {
            family,
            suffix: "",
            labels,
            value,
        });
    }

    /// A histogram's `_bucket` series (cumulative, `le` and the sum divided by `scale`: 1e9
    /// turns nanoseconds into seconds), `_sum` and `_count`.
    fn histogram(
        &mut self,
        family: &'static str,
        extra: &[(&str, &str)],
        h: &Histogram,
        scale: f64,
    ) {
        let (cumulative, sum) = h.cumulative();
        let les = h
            .bounds()
            .iter()
            .map(|b| (*b as f64 / scale).to_string())
            .chain(["+Inf".into()]);
        for (le, count) in les.zip(&cumulative) {
            let mut pairs = self.pairs(extra);
            pairs.push(("le", &le));
            let labels = labels(&pairs);
            self.samples.push(Sample {
                family,
                suffix: "_bucket",
                labels,
                value: *count as f64,
            });
        }
        let total = cumulative.last().copied().unwrap_or(0) as f64;
        for (suffix, value) in [("_sum", sum as f64 / scale), ("_count", total)] {
            let labels = labels(&self.pairs(extra));
            self.samples.push(Sample {
                family,
                suffix,
                labels,
                value,
            });
        }
    }
}

impl Source for Shard {
    async fn collect(&self) -> Vec<Sample> {
        let mut out = Out {
            shard: self,
            samples: Vec::new(),
        };
        traffic(self, &mut out);
        lag(self, &mut out).await;
        clients(self, &mut out);
        storage_figures(self, &mut out).await;
        shard_figures(self, &mut out);
        timer_figures(self, &mut out);
        replication(self, &mut out);
        out.samples
    }
}

async fn storage_figures(shard: &Shard, out: &mut Out<'_>) {
    let store = &shard.store;
    let held = store.commit_log_max_offset() - store.commit_log_min_offset();
    let disk = [("storage_type", "local"), ("storage_medium", "disk")];
    out.push("rocketmq_storage_size", &disk, held.max(0) as f64);
    out.push(
        "rocketmq_storage_flush_behind_bytes",
        &disk,
        store.dirty_bytes() as f64,
    );
    out.push("rocketmq_storage_dispatch_behind_bytes", &disk, 0.0);
    if let Some(oldest) = crate::storeext::earliest_store_time(store).await {
        let age = (crate::metadata::now_ms() - oldest).max(0);
        out.push("rocketmq_storage_message_reserve_time", &disk, age as f64);
    }
    let s = store.stats();
    out.histogram("saturn_flush_latency_seconds", &[], &s.flush_latency, 1e9);
    out.histogram("saturn_group_commit_bytes", &[], &s.commit_bytes, 1.0);
    out.histogram("saturn_group_commit_records", &[], &s.commit_records, 1.0);
    for (source, n) in [
        ("hot", &s.hot_reads),
        ("read_ahead", &s.read_ahead_reads),
        ("disk", &s.disk_reads),
    ] {
        out.push("saturn_reads_total", &[("source", source)], n.get() as f64);
    }
}

fn shard_figures(shard: &Shard, out: &mut Out<'_>) {
    let topics = shard.topics.borrow().len() as f64;
    out.push("rocketmq_topic_number", &[], topics);
    let groups = shard.groups.borrow().len() as f64;
    out.push("rocketmq_consumer_group_number", &[], groups);
    out.push("saturn_connections", &[], shard.connections.len() as f64);
    let queues = shard.store.queues().len() as f64;
    out.push("saturn_consume_queues", &[], queues);
    let stats = &shard.stats;
    out.push(
        "saturn_messages_put_total",
        &[],
        stats.put.total_msgs() as f64,
    );
    out.push(
        "saturn_messages_got_total",
        &[],
        stats.got.total_msgs() as f64,
    );
    out.histogram(
        "saturn_append_latency_seconds",
        &[],
        &stats.append_latency,
        1e9,
    );
    out.histogram("saturn_flush_wait_seconds", &[], &stats.flush_wait, 1e9);
    stats.rpc.each(|(request, response, oneway), h| {
        let (request, response) = (request.to_string(), response.to_string());
        let l = [
            ("protocol_type", "remoting"),
            ("request_code", request.as_str()),
            ("response_code", response.as_str()),
            ("result", if oneway { "oneway" } else { "success" }),
        ];
        out.histogram("rocketmq_rpc_latency", &l, h, 1e6);
    });
}

/// The timer engine's figures (GET_BROKER_RUNTIME_INFO's timer keys).
fn timer_figures(shard: &Shard, out: &mut Out<'_>) {
    let t = &shard.timers;
    out.push("saturn_timer_pending", &[], t.pending.get() as f64);
    out.push("saturn_timer_due_backlog", &[], t.due_backlog.get() as f64);
    out.push("saturn_timer_offset_behind", &[], t.unindexed.get() as f64);
    out.push(
        "saturn_timer_delivered_total",
        &[],
        t.delivered.get() as f64,
    );
}

/// A master's connected slaves and how far behind the furthest is; a slave's link to its master.
fn replication(shard: &Shard, out: &mut Out<'_>) {
    let ha = &shard.ha;
    if shard.config.role == crate::config::BrokerRole::Slave {
        let up = f64::from(u8::from(ha.master_connected.get()));
        out.push("saturn_replication_master_connected", &[], up);
        return;
    }
    out.push("saturn_replication_slaves", &[], ha.slaves() as f64);
    if let Some(acked) = ha.acked() {
        let behind = shard.store.write_end().saturating_sub(acked);
        out.push("saturn_replication_lag_bytes", &[], behind as f64);
    }
}

fn traffic(shard: &Shard, out: &mut Out<'_>) {
    shard.stats.each_topic_put(|topic, put| {
        if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
            return;
        }
        for kind in MessageType::ALL {
            let (msgs, bytes) = put.typed(kind);
            if msgs == 0 {
                continue;
            }
            let l = [
                ("topic", topic),
                ("message_type", kind.name()),
                ("is_system", flag(is_system(topic))),
            ];
            out.push("rocketmq_messages_in_total", &l, msgs as f64);
            out.push("rocketmq_throughput_in_total", &l, bytes as f64);
            let sizes = &put.sizes[kind as usize];
            out.histogram("rocketmq_message_size", &l, sizes, 1.0);
        }
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

/// Per (topic, group) with committed offsets: the messages between them and each queue's end,
/// and the age of the oldest of them (a read of one record per queue behind).
async fn lag(shard: &Shard, out: &mut Out<'_>) {
    let snapshot = shard.offsets.borrow().snapshot();
    let now = crate::metadata::now_ms();
    for (key, queues) in &snapshot.offset_table {
        let Some((topic, group)) = key.split_once('@') else {
            continue;
        };
        let (mut behind, mut oldest) = (0i64, now);
        for (q, committed) in queues {
            let n = (shard.store.max_offset(topic, *q) - committed).max(0);
            if n > 0 {
                behind += n;
                let at = crate::storeext::store_time_at(&shard.store, topic, *q, *committed).await;
                if at > 0 {
                    oldest = oldest.min(at);
                }
            }
        }
        let l = [
            ("topic", topic),
            ("consumer_group", group),
            ("is_retry", flag(topic.starts_with("%RETRY%"))),
            ("is_system", flag(is_system(topic))),
        ];
        out.push("rocketmq_consumer_lag_messages", &l, behind as f64);
        out.push(
            "rocketmq_consumer_lag_latency",
            &l,
            (now - oldest).max(0) as f64,
        );
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
