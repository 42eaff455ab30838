//! Counters and latency histograms, and the report built from them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub struct Stats {
    pub messages: u64,
    pub bytes: u64,
    pub requests: u64,
    /// Error responses (and local failures, code -1) by code.
    pub errors: BTreeMap<i32, u64>,
    /// Latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Timer workload: messages stored before their due time.
    pub early: u64,
    /// Messages received per second (Unix second), when counted.
    pub per_sec: BTreeMap<u64, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            messages: 0,
            bytes: 0,
            requests: 0,
            errors: BTreeMap::new(),
            // 1 µs .. 1 h, 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            early: 0,
            per_sec: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn record_latency(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let _ = self.latency_us.record(us);
    }

    pub fn error(&mut self, code: i32) {
        *self.errors.entry(code).or_default() += 1;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub samples: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: String,
    pub seconds: f64,
    pub messages: u64,
    pub requests: u64,
    pub messages_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency: LatencyReport,
    pub errors: BTreeMap<String, u64>,
    /// The most messages received within one second (consume).
    pub peak_messages_per_sec: u64,
    /// Timer workload: messages the broker stored before their due time.
    pub early: u64,
    /// Broker CPU seconds per million messages, when its pid was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_cpu_s_per_million: Option<f64>,
}

impl Report {
    pub fn new(
        workload: &str,
        stats: &Stats,
        elapsed: Duration,
        broker_cpu_s: Option<f64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let h = &stats.latency_us;
        let q = |x: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(x)
            }
        };
        Self {
            workload: workload.to_owned(),
            seconds: secs,
            messages: stats.messages,
            requests: stats.requests,
            messages_per_sec: stats.messages as f64 / secs,
            mb_per_sec: stats.bytes as f64 / secs / 1e6,
            peak_messages_per_sec: stats.per_sec.values().copied().max().unwrap_or(0),
            early: stats.early,
            latency: LatencyReport {
                p50_us: q(0.5),
                p90_us: q(0.9),
                p99_us: q(0.99),
                p999_us: q(0.999),
                max_us: if h.is_empty() { 0 } else { h.max() },
                samples: h.len(),
            },
            errors: stats
                .errors
                .iter()
                .map(|(k, v)| (protocol::ResponseCode::from_num(*k).to_string(), *v))
                .collect(),
            broker_cpu_s_per_million: broker_cpu_s.map(|cpu| {
                if stats.messages == 0 {
                    0.0
                } else {
                    cpu / (stats.messages as f64 / 1e6)
                }
            }),
        }
    }

    pub fn print_table(&self) {
        let l = &self.latency;
        println!(
            "{:<10} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
            "workload",
            "msgs/s",
            "MB/s",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "msgs"
        );
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{:<10} {:>12.0} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            self.workload,
            self.messages_per_sec,
            self.mb_per_sec,
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            self.messages,
            errors
        );
        if self.peak_messages_per_sec > 0 {
            println!(
                "peak: {} msgs in one second; stored before due: {}",
                self.peak_messages_per_sec, self.early
            );
        }
        if let Some(cpu) = self.broker_cpu_s_per_million {
            println!("broker CPU: {cpu:.2} s per million messages");
        }
    }
}

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture Saturn runs on.
    let ticks = 100.0;
    Some((utime + stime) / ticks)
}
