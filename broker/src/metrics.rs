//! The Prometheus endpoint (`metricsExporterType=PROM`, `metricsPromExporterPort`): one small
//! HTTP listener per process, on a thread of its own, answering `GET /metrics` in Prometheus'
//! text format.
//!
//! Nothing is counted for it on the data path: a scrape asks every shard, over a channel, for
//! the figures it already keeps (the stats counters, offsets, clients, store) and each shard
//! answers from its own thread between requests ([`serve`]); the listener then groups the
//! samples by family. The families and labels are RocketMQ 5.x's (`BrokerMetricsConstant`,
//! constant labels `cluster`, `node_type`, `node_id`); Saturn's own carry a `saturn_` prefix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::config::BrokerConfig;

/// One sample: a family from [`FAMILIES`], its labels (`k="v",...`) and value; a histogram's
/// series add `_bucket`, `_sum` or `_count` to the family's name (`suffix`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub family: &'static str,
    pub suffix: &'static str,
    pub labels: String,
    pub value: f64,
}

/// What a shard answers a scrape with.
pub type Reply = flume::Sender<Vec<Sample>>;

/// A source of samples: a shard (it may read its store, hence async).
#[allow(async_fn_in_trait)]
pub trait Source {
    async fn collect(&self) -> Vec<Sample>;
}

/// Every family served: name, type, help.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "rocketmq_messages_in_total",
        "counter",
        "Messages stored, per topic (retry and DLQ topics excluded).",
    ),
    (
        "rocketmq_message_size",
        "histogram",
        "Stored size of the messages of each send (its average record size), per topic and message type, in bytes.",
    ),
    (
        "rocketmq_messages_out_total",
        "counter",
        "Messages handed to consumers, per topic and group.",
    ),
    (
        "rocketmq_throughput_in_total",
        "counter",
        "Body bytes stored, per topic.",
    ),
    (
        "rocketmq_throughput_out_total",
        "counter",
        "Stored bytes handed to consumers, per topic and group.",
    ),
    (
        "rocketmq_rpc_latency",
        "histogram",
        "Time from a request's dispatch to its answer, in ms, per request and response code.",
    ),
    (
        "rocketmq_consumer_lag_messages",
        "gauge",
        "Messages not yet consumed: max offset minus committed offset, summed over queues.",
    ),
    (
        "rocketmq_consumer_lag_latency",
        "gauge",
        "Age in ms of the oldest message not yet consumed (over the queues; 0 when caught up).",
    ),
    (
        "rocketmq_producer_connections",
        "gauge",
        "Producer connections.",
    ),
    (
        "rocketmq_consumer_connections",
        "gauge",
        "Consumer connections, per group.",
    ),
    (
        "rocketmq_topic_number",
        "gauge",
        "Topics this broker holds.",
    ),
    (
        "rocketmq_consumer_group_number",
        "gauge",
        "Subscription groups this broker holds.",
    ),
    (
        "rocketmq_storage_size",
        "gauge",
        "Bytes of commit log held on disk.",
    ),
    (
        "rocketmq_storage_flush_behind_bytes",
        "gauge",
        "Bytes appended but not yet flushed.",
    ),
    (
        "rocketmq_storage_dispatch_behind_bytes",
        "gauge",
        "Bytes appended but not yet in the consume queues (0: an append fills them).",
    ),
    (
        "rocketmq_storage_message_reserve_time",
        "gauge",
        "Age in ms of the oldest message held.",
    ),
    (
        "saturn_connections",
        "gauge",
        "Client connections of the shard.",
    ),
    (
        "saturn_consume_queues",
        "gauge",
        "Consume queues of the shard.",
    ),
    (
        "saturn_messages_put_total",
        "counter",
        "Messages stored by the shard, all topics.",
    ),
    (
        "saturn_messages_got_total",
        "counter",
        "Messages handed to consumers by the shard, all topics.",
    ),
    (
        "saturn_append_latency_seconds",
        "histogram",
        "Time a send spends getting its records into the store, backpressure wait included.",
    ),
    (
        "saturn_flush_wait_seconds",
        "histogram",
        "Time a SYNC_FLUSH send waits for its records to be durable.",
    ),
    (
        "saturn_flush_latency_seconds",
        "histogram",
        "Time of each group commit: its writes and the fdatasync of the segments it touched.",
    ),
    (
        "saturn_group_commit_bytes",
        "histogram",
        "Bytes each group commit made durable.",
    ),
    (
        "saturn_group_commit_records",
        "histogram",
        "Records each group commit made durable (a master's; a slave stores raw bytes).",
    ),
    (
        "saturn_reads_total",
        "counter",
        "Records read by pulls and lookups, by where they came from (hot tail, read-ahead cache, disk).",
    ),
    (
        "saturn_timer_pending",
        "gauge",
        "Delay and timer messages waiting for their time.",
    ),
    (
        "saturn_timer_due_backlog",
        "gauge",
        "Timer messages due but not yet delivered.",
    ),
    (
        "saturn_timer_offset_behind",
        "gauge",
        "Timer-topic messages stored but not yet indexed by the timer engine.",
    ),
    (
        "saturn_timer_delivered_total",
        "counter",
        "Delay and timer messages delivered to their topics.",
    ),
    (
        "saturn_replication_slaves",
        "gauge",
        "Slaves connected to this master shard.",
    ),
    (
        "saturn_replication_lag_bytes",
        "gauge",
        "Commit-log bytes the furthest connected slave has not acknowledged yet.",
    ),
    (
        "saturn_replication_master_connected",
        "gauge",
        "1 while this slave shard is connected to its master.",
    ),
];

/// The scrape side of every shard's channel.
pub struct Hub {
    shards: Vec<flume::Sender<Reply>>,
}

/// A hub and the receivers to hand to the shards, one each.
pub fn channels(shards: usize) -> (Hub, Vec<flume::Receiver<Reply>>) {
    let (tx, rx): (Vec<_>, Vec<_>) = (0..shards).map(|_| flume::bounded(4)).unzip();
    (Hub { shards: tx }, rx)
}

/// A shard's side: answers each scrape from its own thread.
pub async fn serve<S: Source>(source: Rc<S>, scrapes: flume::Receiver<Reply>) {
    while let Ok(reply) = scrapes.recv_async().await {
        let _ = reply.send(source.collect().await);
    }
}

impl Hub {
    /// Every shard's samples, rendered; a shard that does not answer in 5 s is left out.
    pub fn gather(&self) -> String {
        let mut samples = Vec::new();
        for shard in &self.shards {
            let (tx, rx) = flume::bounded(1);
            if shard.send_timeout(tx, Duration::from_secs(5)).is_ok() {
                if let Ok(s) = rx.recv_timeout(Duration::from_secs(5)) {
                    samples.extend(s);
                }
            }
        }
        render(&samples)
    }
}

/// Prometheus text: each family's HELP and TYPE once, then its samples.
pub fn render(samples: &[Sample]) -> String {
    let mut by_family: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        debug_assert!(
            FAMILIES.iter().any(|f| f.0 == s.family),
            "{} is not in FAMILIES",
            s.family
        );
        by_family.entry(s.family).or_default().push(s);
    }
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let Some(list) = by_family.get(name) else {
            continue;
        };
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for s in list {
            out.push_str(&format!(
                "{name}{}{{{}}} {}\n",
                s.suffix,
                s.labels,
                number(s.value)
            ));
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label set from pairs, values escaped as the text format wants.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Binds the endpoint and serves it on a thread of its own for the life of the process.
pub fn start_http(config: &BrokerConfig, hub: Hub) -> Result<SocketAddr, String> {
    let addr = SocketAddr::new(config.metrics_host, config.metrics_port);
    namesrv::prom::serve(addr, "metrics", move || hub.gather())
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_once_with_escaped_labels() {
        let s = |family, l: &str, value| Sample {
            family,
            suffix: "",
            labels: l.to_owned(),
            value,
        };
        let text = render(&[
            s("saturn_connections", &labels(&[("node_id", "b-0")]), 2.0),
            s(
                "rocketmq_messages_in_total",
                &labels(&[("topic", "a\"b")]),
                5.0,
            ),
            s("saturn_connections", &labels(&[("node_id", "b-1")]), 0.5),
        ]);
        assert_eq!(text.matches("# TYPE saturn_connections gauge").count(), 1);
        assert!(text.contains("rocketmq_messages_in_total{topic=\"a\\\"b\"} 5\n"));
        assert!(text.contains("saturn_connections{node_id=\"b-1\"} 0.5\n"));
        assert!(
            text.find("rocketmq_messages_in_total").unwrap()
                < text.find("saturn_connections").unwrap()
        );
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::BrokerConfig;

    #[test]
    fn broker_conf_turns_the_endpoint_on_and_refuses_exporters_not_served() {
        let mut c = BrokerConfig::default();
        assert!(!c.metrics_prom);
        let kv = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        c.apply_properties(&kv("metricsExporterType", "PROM"))
            .unwrap();
        c.apply_properties(&kv("metricsPromExporterPort", "25111"))
            .unwrap();
        assert!(c.metrics_prom);
        assert_eq!(c.metrics_port, 25111);
        let err = c
            .apply_properties(&kv("metricsExporterType", "OTLP_GRPC"))
            .unwrap_err();
        assert!(err.contains("PROM or DISABLE"), "{err}");
        assert!(c
            .apply_properties(&kv("metricsPromExporterPort", "x"))
            .is_err());
    }

    #[test]
    fn endpoint_answers_over_http() {
        use std::io::{Read, Write};
        let c = BrokerConfig {
            metrics_port: 0,
            metrics_host: std::net::IpAddr::from([127, 0, 0, 1]),
            ..Default::default()
        };
        let (hub, _rx) = super::channels(0);
        let addr = super::start_http(&c, hub).unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        };
        assert!(get("/metrics").starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(get("/other").starts_with("HTTP/1.1 404"));
    }
}
