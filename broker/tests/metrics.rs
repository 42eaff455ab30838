//! The Prometheus endpoint of a real broker process (metricsExporterType=PROM) under SYNC_FLUSH:
//! after five sends to shard 0, its counters and both latency histograms show exactly them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use common::*;

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

/// The value of the one series whose name and labels start as given.
fn value(text: &str, series: &str) -> f64 {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(series)).collect();
    assert_eq!(lines.len(), 1, "{series}: {lines:?}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn counters_and_histograms_follow_the_sends() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = test_dir("metrics-conf");
    let conf = dir.join("broker.conf");
    let text = format!(
        "metricsExporterType=PROM\nmetricsPromExporterPort={port}\nmetricsPromExporterHost=127.0.0.1\n"
    );
    std::fs::write(&conf, text).unwrap();
    let broker = Broker::start(
        "metrics",
        &["-c", conf.to_str().unwrap(), "--flush", "SYNC_FLUSH"],
    );
    let mut s0 = broker.client(&broker.shards[0]);
    create_topic(&mut s0, "Metered", 2);
    let before = scrape(port);
    let node = "cluster=\"DefaultCluster\",node_type=\"broker\",node_id=\"saturn-0\"";
    assert_eq!(
        value(
            &before,
            &format!("saturn_flush_wait_seconds_count{{{node}}}")
        ),
        0.0
    );
    for i in 0..5 {
        let body = format!("metered-{i}");
        send_ok(
            &mut s0,
            "Metered",
            i % 2,
            body.as_bytes(),
            &[("WAIT", "true")],
        );
    }
    let after = scrape(port);
    let topic = format!("{{{node},topic=\"Metered\",is_system=\"false\"}}");
    assert_eq!(
        value(&after, &format!("rocketmq_messages_in_total{topic}")),
        5.0
    );
    assert_eq!(
        value(&after, &format!("rocketmq_throughput_in_total{topic}")),
        45.0
    );
    for family in ["saturn_append_latency_seconds", "saturn_flush_wait_seconds"] {
        assert_eq!(
            value(&after, &format!("{family}_count{{{node}}}")),
            5.0,
            "{family}"
        );
        let inf = format!("{family}_bucket{{{node},le=\"+Inf\"}}");
        assert_eq!(value(&after, &inf), 5.0, "{family}");
        assert!(
            value(&after, &format!("{family}_sum{{{node}}}")) > 0.0,
            "{family}"
        );
    }
    let other = "node_id=\"saturn-1\"";
    assert!(!after
        .lines()
        .any(|l| l.contains(other) && l.contains("Metered")));
}
