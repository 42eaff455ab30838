//! The Prometheus endpoint of a real broker process (metricsExporterType=PROM) under SYNC_FLUSH:
//! a scrape, a mix of sends over the remoting protocol (normal, FIFO, delayed, transactional),
//! pulls and a committed offset, a second scrape. The counters move by exactly what was sent and
//! consumed, the histograms count one observation per append, and both scrapes are well-formed
//! Prometheus text (one HELP and TYPE per family, cumulative buckets, +Inf equal to _count).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use namesrv::client::BlockingClient;
use protocol::message::decode_offset_msg_id;
use protocol::{RemotingCommand, RequestCode};

const NODE: &str = "cluster=\"DefaultCluster\",node_type=\"broker\",node_id=\"saturn-0\"";

/// The series of one scrape: `name{labels}` → value.
type Scrape = BTreeMap<String, f64>;

/// Each histogram series (family, labels but `le`): its buckets (le, count) in order, `_count`.
type Buckets = BTreeMap<(String, String), (Vec<(f64, f64)>, Option<f64>)>;

fn scrape(port: u16) -> Scrape {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    parse(body)
}

/// One sample line: `name{labels} value`, labels `k="v"` with `\\`, `\"`, `\n` escapes.
fn sample_line(line: &str) -> (String, Vec<(String, String)>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
    };
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{line}"
    );
    let mut labels = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key == "}" || key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => v.push(chars.next().unwrap()),
                '"' => break,
                c => v.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), v));
        if chars.peek() == Some(&'}') {
            break;
        }
    }
    (name.to_owned(), labels, value)
}

/// Parses a scrape, checking the format: HELP and TYPE once per family before its samples, every
/// sample of a declared family, each histogram's buckets rising to +Inf == _count.
fn parse(text: &str) -> Scrape {
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut out = Scrape::new();
    // (family, labels without le) → bucket counts in order, and _count.
    let mut buckets = Buckets::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helps.insert(name.to_owned()), "HELP twice: {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helps.contains(name), "TYPE before HELP: {name}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            let old = kinds.insert(name.to_owned(), kind.to_owned());
            assert!(old.is_none(), "TYPE twice: {name}");
            continue;
        }
        let (name, labels, value) = sample_line(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| kinds[*f] == "histogram"))
            .filter(|f| kinds.contains_key(*f))
            .unwrap_or(&name)
            .to_owned();
        assert!(kinds.contains_key(&family), "no TYPE for {line}");
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k != "le")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        let key = (family.clone(), rest.join(","));
        if name.ends_with("_bucket") && family != name {
            let le = &labels.iter().find(|(k, _)| k == "le").expect("le").1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.entry(key).or_default().0.push((le, value));
        } else if name.ends_with("_count") && family != name {
            buckets.entry(key).or_default().1 = Some(value);
        }
        let series = line.rsplit_once(' ').unwrap().0.to_owned();
        assert!(out.insert(series, value).is_none(), "twice: {line}");
    }
    check_buckets(&buckets);
    out
}

/// Buckets rise with `le` and end at +Inf, equal to `_count`.
fn check_buckets(buckets: &Buckets) {
    for ((family, labels), (list, count)) in buckets {
        assert!(
            list.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{family}{{{labels}}}: {list:?}"
        );
        let inf = list.last().filter(|b| b.0.is_infinite()).map(|b| b.1);
        assert_eq!(inf, *count, "{family}{{{labels}}}: +Inf and _count");
    }
}

/// The value of a series (`name` and the labels after the node's), 0 when absent.
fn get(s: &Scrape, name: &str, labels: &str) -> f64 {
    let sep = if labels.is_empty() { "" } else { "," };
    s.get(&format!("{name}{{{NODE}{sep}{labels}}}"))
        .copied()
        .unwrap_or(0.0)
}

fn delta(a: &Scrape, b: &Scrape, name: &str, labels: &str) -> f64 {
    get(b, name, labels) - get(a, name, labels)
}

fn in_labels(topic: &str, kind: &str, system: bool) -> String {
    format!("topic=\"{topic}\",message_type=\"{kind}\",is_system=\"{system}\"")
}

/// A transaction's half message, then its END_TRANSACTION (commit 8, rollback 12).
fn transaction(c: &mut BlockingClient, topic: &str, body: &str, decision: i32) {
    let resp = send(
        c,
        topic,
        0,
        body.as_bytes(),
        &[("TRAN_MSG", "true"), ("PGROUP", "pg_tx")],
    );
    assert_eq!(resp.code, 0, "half send: {:?}", resp.remark);
    let phys = decode_offset_msg_id(resp.ext("msgId").unwrap()).unwrap().1;
    let end = RemotingCommand::request(RequestCode::END_TRANSACTION, 0)
        .with_ext("producerGroup", "pg_tx")
        .with_ext("tranStateTableOffset", resp.ext("queueOffset").unwrap())
        .with_ext("commitLogOffset", phys)
        .with_ext("commitOrRollback", decision)
        .with_ext("fromTransactionCheck", false)
        .with_ext("msgId", "m");
    assert_eq!(c.invoke(end).unwrap().code, 0);
}

/// Scrapes until `ok` holds (the timer engine indexes and the flusher commits on their own
/// time), at most 10 s.
fn scrape_until(port: u16, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(port);
        if ok(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_broker() -> (Broker, u16) {
    let port = free_port();
    let conf = format!(
        "metricsExporterType=PROM\nmetricsPromExporterPort={port}\nmetricsPromExporterHost=127.0.0.1\n"
    );
    let broker = Broker::start_conf("metrics", &conf, &["--flush", "SYNC_FLUSH"]);
    (broker, port)
}

/// Sends 6 normal, 2 FIFO, 3 delayed (2 h, still pending), 2 transactional (one committed, one
/// rolled back) messages to `Metered` queue 0; returns the body bytes of the normal ones.
fn send_mix(c: &mut BlockingClient) -> u64 {
    let mut normal = 0;
    for i in 0..6 {
        let body = format!("metered-{i}");
        normal += body.len() as u64;
        send_ok(c, "Metered", 0, body.as_bytes(), &[("WAIT", "true")]);
    }
    for i in 0..2 {
        send_ok(
            c,
            "Metered",
            0,
            b"fifo",
            &[("__SHARDINGKEY", &format!("k{i}"))],
        );
    }
    for _ in 0..3 {
        send_ok(c, "Metered", 0, b"later", &[("DELAY", "18")]);
    }
    transaction(c, "Metered", "tx-commit", 8);
    transaction(c, "Metered", "tx-rollback", 12);
    normal
}

#[test]
fn counters_and_histograms_follow_what_was_sent_and_consumed() {
    let (broker, port) = start_broker();
    let mut s0 = broker.client(&broker.shards[0]);
    create_topic(&mut s0, "Metered", 2);
    let before = scrape(port);
    let normal_bytes = send_mix(&mut s0);
    // Consume 5 of the 9 messages in queue 0 (6 normal, 2 FIFO, the committed one).
    let (code, msgs, next) = pull(&mut s0, "mg", "Metered", 0, 0, 5, "*", 0);
    assert_eq!((code, msgs.len(), next), (0, 5, 5));
    commit_offset(&mut s0, "mg", "Metered", 0, 5);
    let after = scrape_until(port, |s| {
        get(s, "saturn_timer_pending", "") >= 3.0
            && get(
                s,
                "rocketmq_storage_flush_behind_bytes",
                "storage_type=\"local\",storage_medium=\"disk\"",
            ) == 0.0
    });
    check_traffic(&before, &after, normal_bytes);
    check_histograms(&before, &after);
    check_consumption(&before, &after);
    let other = "node_id=\"saturn-1\"";
    assert!(!after
        .keys()
        .any(|k| k.contains(other) && k.contains("Metered")));
}

fn check_traffic(before: &Scrape, after: &Scrape, normal_bytes: u64) {
    let d = |name: &str, topic: &str, kind: &str, system: bool| {
        delta(before, after, name, &in_labels(topic, kind, system))
    };
    let m = "rocketmq_messages_in_total";
    assert_eq!(d(m, "Metered", "normal", false), 6.0);
    assert_eq!(d(m, "Metered", "fifo", false), 2.0);
    assert_eq!(d(m, "Metered", "transaction", false), 1.0, "the commit");
    assert_eq!(d(m, "RMQ_SYS_TRANS_HALF_TOPIC", "transaction", true), 2.0);
    assert_eq!(d(m, "SCHEDULE_TOPIC_XXXX", "delay", true), 3.0);
    let t = "rocketmq_throughput_in_total";
    assert_eq!(d(t, "Metered", "normal", false), normal_bytes as f64);
    assert_eq!(d(t, "Metered", "fifo", false), 8.0);
    // One size observation per send, of its stored record (body, properties and header).
    let size = |suffix: &str, topic: &str, kind: &str, system: bool| {
        d(
            &format!("rocketmq_message_size{suffix}"),
            topic,
            kind,
            system,
        )
    };
    assert_eq!(size("_count", "Metered", "normal", false), 6.0);
    assert_eq!(size("_count", "Metered", "fifo", false), 2.0);
    assert_eq!(size("_count", "SCHEDULE_TOPIC_XXXX", "delay", true), 3.0);
    let sum = size("_sum", "Metered", "normal", false);
    assert!(sum > normal_bytes as f64 && sum < 6.0 * 1024.0, "{sum}");
    assert_eq!(delta(before, after, "saturn_messages_put_total", ""), 14.0);
    assert_eq!(delta(before, after, "saturn_timer_pending", ""), 3.0);
    assert_eq!(
        delta(before, after, "saturn_timer_delivered_total", ""),
        0.0
    );
}

fn check_histograms(before: &Scrape, after: &Scrape) {
    // Every send request is one append; the six with WAIT=true and the others (WAIT unset
    // means wait) all waited for SYNC_FLUSH.
    for family in ["saturn_append_latency_seconds", "saturn_flush_wait_seconds"] {
        let count = delta(before, after, &format!("{family}_count"), "");
        assert_eq!(count, 13.0, "{family}");
        assert!(delta(before, after, &format!("{family}_sum"), "") > 0.0);
    }
    // Each request timed once: 13 SEND_MESSAGE_V2 (310), 2 END_TRANSACTION (37), 1 pull (11).
    for (code, n) in [(310, 13.0), (37, 2.0), (11, 1.0)] {
        let l = format!(
            "protocol_type=\"remoting\",request_code=\"{code}\",response_code=\"0\",result=\"success\""
        );
        assert_eq!(
            delta(before, after, "rocketmq_rpc_latency_count", &l),
            n,
            "{code}"
        );
    }
    // Each group commit made durable what was appended before it: together, every byte the
    // commit log grew by and every record appended (13 sends, a commit's record, two op records).
    let disk = "storage_type=\"local\",storage_medium=\"disk\"";
    let grown = delta(before, after, "rocketmq_storage_size", disk);
    assert_eq!(
        delta(before, after, "saturn_group_commit_bytes_sum", ""),
        grown
    );
    let records = delta(before, after, "saturn_group_commit_records_sum", "");
    assert_eq!(records, 16.0);
    let commits = delta(before, after, "saturn_flush_latency_seconds_count", "");
    assert_eq!(
        delta(before, after, "saturn_group_commit_bytes_count", ""),
        commits
    );
    assert!((1.0..=16.0).contains(&commits), "{commits}");
    assert_eq!(
        get(after, "rocketmq_storage_dispatch_behind_bytes", disk),
        0.0
    );
    assert!(get(after, "rocketmq_storage_message_reserve_time", disk) >= 0.0);
    assert!(after.contains_key(&format!(
        "rocketmq_storage_message_reserve_time{{{NODE},{disk}}}"
    )));
}

fn check_consumption(before: &Scrape, after: &Scrape) {
    let group = "topic=\"Metered\",consumer_group=\"mg\"";
    let out = format!("{group},is_system=\"false\"");
    assert_eq!(
        delta(before, after, "rocketmq_messages_out_total", &out),
        5.0
    );
    let lag = format!("{group},is_retry=\"false\",is_system=\"false\"");
    // Queue 0 holds 9 messages, 5 committed.
    assert_eq!(get(after, "rocketmq_consumer_lag_messages", &lag), 4.0);
    let age = get(after, "rocketmq_consumer_lag_latency", &lag);
    assert!((0.0..60_000.0).contains(&age), "{age}");
    assert!(after.contains_key(&format!("rocketmq_consumer_lag_latency{{{NODE},{lag}}}")));
    let reads = |s: &Scrape| {
        ["hot", "read_ahead", "disk"]
            .iter()
            .map(|src| get(s, "saturn_reads_total", &format!("source=\"{src}\"")))
            .sum::<f64>()
    };
    assert!(reads(after) - reads(before) >= 5.0);
    assert_eq!(get(after, "saturn_replication_slaves", ""), 0.0);
    assert!(!after
        .keys()
        .any(|k| k.starts_with("saturn_replication_lag_bytes")));
}

#[test]
#[should_panic(expected = "+Inf and _count")]
fn the_format_check_catches_a_histogram_whose_inf_is_not_its_count() {
    parse("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 4\n");
}

#[test]
#[should_panic(expected = "HELP twice")]
fn the_format_check_catches_a_family_declared_twice() {
    parse("# HELP g x\n# TYPE g gauge\ng 1\n# HELP g x\n# TYPE g gauge\n");
}
