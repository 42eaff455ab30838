//! Alerts: thresholds evaluated on each sample of [`super::history`], the alerts that fire and
//! resolve (with their times), and a webhook that gets a JSON `POST` on each fire and resolve.
//!
//! Rules (flags, environment or a JSON file, see [`super::watch`]):
//! * `lag`: a consumer group's total lag above N (`groupLag` sets N per group);
//! * `diskPercent`: a broker's commit-log disk use above P %;
//! * `brokerDown` (on unless turned off): a broker seen before is missing from the cluster, or
//!   does not answer, in two samples in a row; the name server not answering in two samples in
//!   a row is an alert of its own.
//!
//! The webhook takes plain `http://` URLs only (the dashboard has no TLS client); each event is
//! tried at most [`ATTEMPTS`] times, each attempt bounded by [`TIMEOUT`], from a thread of its
//! own with a bounded queue, so a slow receiver never holds up the sampler.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::history::Sample;

/// Attempts per webhook event (the first and two retries).
pub const ATTEMPTS: u32 = 3;
/// Connect, write and read timeout of each attempt.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Resolved alerts and webhook deliveries kept for the page.
const KEEP: usize = 200;
/// Events waiting for the webhook; more are dropped (and recorded as dropped).
const QUEUE: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub lag: Option<i64>,
    pub group_lag: BTreeMap<String, i64>,
    pub disk_percent: Option<f64>,
    pub broker_down: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            lag: None,
            group_lag: BTreeMap::new(),
            disk_percent: None,
            broker_down: true,
        }
    }
}

impl Rules {
    pub fn to_json(&self) -> Value {
        json!({ "lag": self.lag, "groupLag": self.group_lag, "diskPercent": self.disk_percent,
                "brokerDown": self.broker_down })
    }
}

/// A condition that holds in the current sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub id: String,
    pub kind: &'static str,
    pub subject: String,
    pub value: Value,
    pub threshold: Value,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub cond: Condition,
    pub fired_at: i64,
    pub resolved_at: Option<i64>,
}

impl Alert {
    pub fn to_json(&self) -> Value {
        let c = &self.cond;
        json!({
            "id": c.id, "kind": c.kind, "subject": c.subject, "value": c.value,
            "threshold": c.threshold, "message": c.message, "firedAt": self.fired_at,
            "resolvedAt": self.resolved_at,
            "state": if self.resolved_at.is_some() { "resolved" } else { "firing" },
        })
    }
}

fn cond(
    kind: &'static str,
    subject: &str,
    value: Value,
    threshold: Value,
    msg: String,
) -> Condition {
    Condition {
        id: format!("{kind}:{subject}"),
        kind,
        subject: subject.to_owned(),
        value,
        threshold,
        message: msg,
    }
}

/// What holds now. `known`: brokers (`name/id`) seen online in any earlier sample.
pub fn conditions(
    r: &Rules,
    cur: &Sample,
    prev: Option<&Sample>,
    known: &BTreeSet<String>,
) -> Vec<Condition> {
    let mut out = Vec::new();
    for (g, p) in &cur.groups {
        if let Some(max) = r.group_lag.get(g).copied().or(r.lag) {
            if p.lag > max {
                let m = format!("group {g}: lag {} over {max}", p.lag);
                out.push(cond("lag", g, json!(p.lag), json!(max), m));
            }
        }
    }
    if let Some(max) = r.disk_percent {
        for b in &cur.brokers {
            let Some(pct) = b.disk.map(|d| d * 100.0) else {
                continue;
            };
            if pct > max {
                let m = format!(
                    "broker {} ({}): disk {pct:.1} % over {max} %",
                    b.key(),
                    b.addr
                );
                out.push(cond("disk", &b.key(), json!(pct), json!(max), m));
            }
        }
    }
    if r.broker_down {
        down(cur, prev, known, &mut out);
    }
    out
}

fn down(cur: &Sample, prev: Option<&Sample>, known: &BTreeSet<String>, out: &mut Vec<Condition>) {
    let Some(prev) = prev else { return };
    let ns_down =
        |s: &Sample| s.brokers.is_empty() && s.errors.iter().any(|e| e.starts_with("name server"));
    if ns_down(cur) && ns_down(prev) {
        let m = format!("name server not answering: {}", cur.errors.join("; "));
        out.push(cond(
            "namesrv-down",
            "namesrv",
            json!(false),
            json!(true),
            m,
        ));
        return; // brokers cannot be told apart from the name server's silence
    }
    let online = |s: &Sample, k: &str| s.brokers.iter().any(|b| b.online && b.key() == k);
    for k in known {
        if !online(cur, k) && !online(prev, k) {
            let how = if cur.brokers.iter().any(|b| b.key() == *k) {
                "registered but not answering"
            } else {
                "missing from the cluster"
            };
            let m = format!("broker {k} {how} for two samples");
            out.push(cond("broker-down", k, json!(false), json!(true), m));
        }
    }
}

/// Firing and resolved alerts, the brokers seen, and the webhook's recent deliveries.
#[derive(Debug, Default)]
pub struct State {
    pub firing: BTreeMap<String, Alert>,
    pub resolved: VecDeque<Alert>,
    pub known: BTreeSet<String>,
    pub deliveries: Arc<Mutex<VecDeque<Value>>>,
}

impl State {
    /// Applies one sample: fires what newly holds, resolves what no longer does; returns the
    /// events (`fire` / `resolve`) in that order.
    pub fn evaluate(
        &mut self,
        r: &Rules,
        cur: &Sample,
        prev: Option<&Sample>,
    ) -> Vec<(&'static str, Alert)> {
        let now = conditions(r, cur, prev, &self.known);
        for b in cur.brokers.iter().filter(|b| b.online) {
            self.known.insert(b.key());
        }
        let mut events = Vec::new();
        let holding: BTreeSet<&str> = now.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = self
            .firing
            .keys()
            .filter(|id| !holding.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(mut a) = self.firing.remove(&id) {
                a.resolved_at = Some(cur.t);
                events.push(("resolve", a.clone()));
                if self.resolved.len() >= KEEP {
                    self.resolved.pop_front();
                }
                self.resolved.push_back(a);
            }
        }
        for c in now {
            match self.firing.get_mut(&c.id) {
                Some(a) => a.cond = c, // still firing: the latest value
                None => {
                    let a = Alert {
                        cond: c,
                        fired_at: cur.t,
                        resolved_at: None,
                    };
                    events.push(("fire", a.clone()));
                    self.firing.insert(a.cond.id.clone(), a);
                }
            }
        }
        events
    }

    pub fn to_json(&self) -> Value {
        let firing: Vec<Value> = self.firing.values().map(Alert::to_json).collect();
        let resolved: Vec<Value> = self.resolved.iter().rev().map(Alert::to_json).collect();
        let deliveries: Vec<Value> = self
            .deliveries
            .lock()
            .map(|d| d.iter().rev().cloned().collect())
            .unwrap_or_default();
        json!({ "firing": firing, "resolved": resolved, "webhookDeliveries": deliveries })
    }
}

/// A parsed `http://host[:port][/path]` webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parses a webhook URL; anything but plain `http://` is refused.
pub fn parse_webhook(url: &str) -> Result<Webhook, String> {
    let bad = |why: &str| format!("--alert-webhook {url}: {why}");
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are served (no TLS client in the dashboard)"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if hostport.contains('@') || path.contains(char::is_whitespace) {
        return Err(bad("credentials or spaces in the URL are not served"));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !hostport.ends_with(']') => {
            (h, p.parse::<u16>().map_err(|_| bad("bad port"))?)
        }
        _ => (hostport, 80),
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("no host"));
    }
    Ok(Webhook {
        url: url.to_owned(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// One `POST` of `body`; the HTTP status it answered.
pub fn post(w: &Webhook, body: &[u8]) -> Result<u16, String> {
    let host = w.host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, w.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {}: {e}", w.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to nothing", w.host))?;
    let mut s =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: saturn-dashboard\r\n\r\n",
        w.path,
        w.host,
        w.port,
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("send: {e}"))?;
    let mut first = Vec::new();
    let mut b = [0u8; 256];
    while !first.contains(&b'\n') && first.len() < 4096 {
        let n = s.read(&mut b).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        first.extend_from_slice(&b[..n]);
    }
    let line = String::from_utf8_lossy(&first);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            )
        })
}

/// Starts the webhook's sender thread; events sent to the returned queue are posted in order.
pub fn start_sender(
    w: Webhook,
    log: Arc<Mutex<VecDeque<Value>>>,
) -> std::io::Result<SyncSender<Value>> {
    let (tx, rx) = sync_channel::<Value>(QUEUE);
    std::thread::Builder::new()
        .name("dashboard-webhook".into())
        .spawn(move || {
            for ev in rx {
                let rec = deliver(&w, &ev);
                record(&log, rec);
            }
        })?;
    Ok(tx)
}

fn record(log: &Mutex<VecDeque<Value>>, rec: Value) {
    if let Ok(mut l) = log.lock() {
        if l.len() >= KEEP {
            l.pop_front();
        }
        l.push_back(rec);
    }
}

/// Posts one event, retrying at most [`ATTEMPTS`] times in all; what happened.
fn deliver(w: &Webhook, ev: &Value) -> Value {
    let body = ev.to_string().into_bytes();
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match post(w, &body) {
            Ok(code) if (200..300).contains(&code) => {
                return json!({ "t": crate::cmd::cluster::now_ms(), "event": ev["event"], "id": ev["alert"]["id"],
                               "ok": true, "attempts": attempt, "status": code });
            }
            Ok(code) => last = format!("HTTP {code}"),
            Err(e) => last = e,
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
        }
    }
    json!({ "t": crate::cmd::cluster::now_ms(), "event": ev["event"], "id": ev["alert"]["id"], "ok": false,
            "attempts": ATTEMPTS, "error": last })
}

/// Queues one event for the webhook; a full queue drops it (recorded).
pub fn enqueue(tx: &SyncSender<Value>, log: &Mutex<VecDeque<Value>>, event: &str, a: &Alert) {
    let ev = json!({ "event": event, "alert": a.to_json(), "source": "saturn-dashboard" });
    if let Err(TrySendError::Full(ev) | TrySendError::Disconnected(ev)) = tx.try_send(ev) {
        record(
            log,
            json!({ "t": crate::cmd::cluster::now_ms(), "event": ev["event"], "id": ev["alert"]["id"],
                    "ok": false, "attempts": 0, "error": "queue full: dropped" }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::{BrokerPoint, GroupPoint};
    use super::*;

    fn sample(t: i64, lag: i64, online: &[&str], disk: f64) -> Sample {
        let mut s = Sample {
            t,
            ..Sample::default()
        };
        s.groups.insert("G".into(), GroupPoint { lag, consumed: 0 });
        for b in online {
            s.brokers.push(BrokerPoint {
                cluster: "c".into(),
                broker: (*b).into(),
                id: 0,
                addr: "127.0.0.1:1".into(),
                online: true,
                put_total: None,
                get_total: None,
                disk: Some(disk),
            });
        }
        s
    }

    #[test]
    fn fires_and_resolves_lag_disk_and_broker_down() {
        let r = Rules {
            lag: Some(5),
            disk_percent: Some(90.0),
            ..Rules::default()
        };
        let mut st = State::default();
        let s1 = sample(1, 3, &["a", "b"], 0.5);
        assert!(st.evaluate(&r, &s1, None).is_empty());
        let s2 = sample(2, 9, &["a"], 0.95);
        let ev = st.evaluate(&r, &s2, Some(&s1));
        let ids: Vec<_> = ev.iter().map(|(e, a)| (*e, a.cond.id.as_str())).collect();
        // b missed one sample only: not down yet.
        assert_eq!(ids, vec![("fire", "lag:G"), ("fire", "disk:a/0")]);
        let s3 = sample(3, 9, &["a"], 0.5);
        let ev = st.evaluate(&r, &s3, Some(&s2));
        let ids: Vec<_> = ev.iter().map(|(e, a)| (*e, a.cond.id.as_str())).collect();
        assert_eq!(
            ids,
            vec![("resolve", "disk:a/0"), ("fire", "broker-down:b/0")]
        );
        assert_eq!(st.firing["lag:G"].fired_at, 2);
        let s4 = sample(4, 0, &["a", "b"], 0.5);
        let ev = st.evaluate(&r, &s4, Some(&s3));
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|(e, _)| *e == "resolve"));
        assert!(st.firing.is_empty());
        let j = st.to_json();
        assert_eq!(j["resolved"].as_array().unwrap().len(), 3);
        assert_eq!(j["resolved"][0]["resolvedAt"], 4);
        // A per-group threshold wins over the global one.
        let r2 = Rules {
            lag: Some(5),
            group_lag: [("G".to_owned(), 100)].into(),
            ..Rules::default()
        };
        assert!(conditions(&r2, &s3, None, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn webhook_urls() {
        let w = parse_webhook("http://127.0.0.1:8099/hook?x=1").unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("127.0.0.1", 8099, "/hook?x=1")
        );
        assert_eq!(parse_webhook("http://example.org").unwrap().port, 80);
        assert!(parse_webhook("https://example.org/")
            .unwrap_err()
            .contains("only http://"));
        assert!(parse_webhook("ftp://x/").is_err());
        assert!(parse_webhook("http://:80/").is_err());
        assert_eq!(parse_webhook("http://[::1]/").unwrap().host, "[::1]");
        assert_eq!(parse_webhook("http://[::1]:81/").unwrap().port, 81);
        assert!(parse_webhook("http://u:p@host/").is_err());
    }

    #[test]
    fn webhook_post_to_a_real_listener_and_bounded_retries() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let w = parse_webhook(&format!("http://127.0.0.1:{port}/h")).unwrap();
        assert_eq!(post(&w, b"{\"a\":1}").unwrap(), 204);
        let got = h.join().unwrap();
        assert!(got.starts_with("POST /h HTTP/1.1") && got.contains("application/json"));
        // Nothing listens any more: three attempts, then a recorded failure.
        let rec = deliver(&w, &json!({ "event": "fire", "alert": { "id": "x" } }));
        assert_eq!(
            (rec["ok"].clone(), rec["attempts"].clone()),
            (json!(false), json!(3))
        );
    }
}
