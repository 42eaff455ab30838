//! The dashboard's watcher: a background thread that samples the cluster every interval (one
//! round of admin requests, see [`super::history`]), keeps the samples in a bounded ring,
//! evaluates the alert rules on each sample ([`super::alerts`]) and hands fired and resolved
//! alerts to the webhook. Also the routes of the pages built on it (history, alerts,
//! producers, live tail) and their scripts.
//!
//! Settings: flags ([`WatchFlags`], on `saturn-broker standalone` and `saturn-admin dashboard`),
//! else environment variables, else a JSON file for the alert rules; flags win over the
//! environment, which wins over the file.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::alerts::{self, Rules, State, Webhook};
use super::history::{self, Ring};
use super::http::{Request, Response};
use super::DashConfig;

/// The dashboard's flags as `saturn-broker standalone` and `saturn-namesrv` take them; the
/// dashboard is off unless an address is given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DashFlags {
    /// Serve the dashboard (a page and a JSON API) on this address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub dashboard_listen: Option<std::net::SocketAddr>,
    /// The dashboard's `admin` password (default: $SATURN_DASHBOARD_PASSWORD); required
    /// beyond loopback.
    #[arg(long)]
    pub dashboard_password: Option<String>,
    /// The dashboard's read-only `viewer` password (default: $SATURN_DASHBOARD_READONLY_PASSWORD).
    #[arg(long)]
    pub dashboard_readonly_password: Option<String>,
    #[command(flatten)]
    pub watch: WatchFlags,
}

impl DashFlags {
    /// The dashboard's address and checked configuration ([`super::check`], run here and only
    /// here) for name server(s) `namesrv`, or none without --dashboard-listen; a dashboard
    /// setting without it, or a bad one, is an error.
    pub fn config(self, namesrv: &str) -> std::result::Result<Option<super::Checked>, String> {
        let Some(addr) = self.dashboard_listen else {
            return match self.watch.first_set() {
                Some(flag) => Err(format!(
                    "{flag} is a dashboard setting: it needs --dashboard-listen"
                )),
                None => Ok(None),
            };
        };
        let mut cfg = super::DashConfig::from_env(
            namesrv,
            self.dashboard_password,
            self.dashboard_readonly_password,
        );
        cfg.watch = self.watch.to_config()?;
        super::Checked::new(addr, cfg).map(Some)
    }
}

/// The watcher's flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WatchFlags {
    /// Seconds between the dashboard's samples of the cluster, for its charts and alerts
    /// (default 10; $SATURN_DASHBOARD_SAMPLE_SECS)
    #[arg(long, value_name = "SECS")]
    pub history_interval: Option<f64>,
    /// Samples the dashboard keeps in memory (default 360: an hour at 10 s)
    #[arg(long, value_name = "N")]
    pub history_samples: Option<usize>,
    /// JSON file of alert rules: {"lag": N, "groupLag": {"<group>": N}, "diskPercent": P,
    /// "brokerDown": true, "webhook": "http://..."} ($SATURN_DASHBOARD_ALERT_CONFIG)
    #[arg(long, value_name = "FILE")]
    pub alert_config: Option<PathBuf>,
    /// Alert when a consumer group's total lag is over N ($SATURN_DASHBOARD_ALERT_LAG)
    #[arg(long, value_name = "N")]
    pub alert_lag: Option<i64>,
    /// Alert when a broker's disk use is over P percent ($SATURN_DASHBOARD_ALERT_DISK)
    #[arg(long, value_name = "P")]
    pub alert_disk: Option<f64>,
    /// POST each alert's fire and resolve as JSON to this http:// URL
    /// ($SATURN_DASHBOARD_ALERT_WEBHOOK)
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub interval: Duration,
    pub capacity: usize,
    pub rules: Rules,
    pub webhook: Option<Webhook>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            capacity: 360,
            rules: Rules::default(),
            webhook: None,
        }
    }
}

fn env_or<T: std::str::FromStr>(flag: Option<T>, var: &str) -> Result<Option<T>, String> {
    match (flag, std::env::var(var).ok().filter(|v| !v.is_empty())) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("${var}={text} is not a valid value")),
        (None, None) => Ok(None),
    }
}

impl WatchFlags {
    /// The first flag given, if any (for refusing them where no dashboard runs).
    pub fn first_set(&self) -> Option<&'static str> {
        [
            (self.history_interval.is_some(), "--history-interval"),
            (self.history_samples.is_some(), "--history-samples"),
            (self.alert_config.is_some(), "--alert-config"),
            (self.alert_lag.is_some(), "--alert-lag"),
            (self.alert_disk.is_some(), "--alert-disk"),
            (self.alert_webhook.is_some(), "--alert-webhook"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    pub fn to_config(&self) -> Result<WatchConfig, String> {
        let mut c = WatchConfig::default();
        let file = env_or(self.alert_config.clone(), "SATURN_DASHBOARD_ALERT_CONFIG")?;
        let mut webhook = None;
        if let Some(path) = file {
            webhook = rules_file(&path, &mut c.rules)?;
        }
        if let Some(secs) = env_or(self.history_interval, "SATURN_DASHBOARD_SAMPLE_SECS")? {
            if !(0.5..=3600.0).contains(&secs) {
                return Err(format!(
                    "--history-interval {secs}: give 0.5 to 3600 seconds"
                ));
            }
            c.interval = Duration::from_secs_f64(secs);
        }
        if let Some(n) = self.history_samples {
            if !(2..=100_000).contains(&n) {
                return Err(format!("--history-samples {n}: give 2 to 100000"));
            }
            c.capacity = n;
        }
        if let Some(n) = env_or(self.alert_lag, "SATURN_DASHBOARD_ALERT_LAG")? {
            c.rules.lag = Some(n);
        }
        if let Some(p) = env_or(self.alert_disk, "SATURN_DASHBOARD_ALERT_DISK")? {
            c.rules.disk_percent = Some(p);
        }
        if let Some(p) = c.rules.disk_percent.filter(|p| !(0.0..=100.0).contains(p)) {
            return Err(format!("disk alert at {p} %: give 0 to 100"));
        }
        let url = env_or(self.alert_webhook.clone(), "SATURN_DASHBOARD_ALERT_WEBHOOK")?;
        if let Some(u) = url.or(webhook) {
            c.webhook = Some(alerts::parse_webhook(&u)?);
        }
        Ok(c)
    }
}

/// Reads the rules file into `rules`; the webhook it names, if any.
fn rules_file(path: &std::path::Path, rules: &mut Rules) -> Result<Option<String>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("alert rules {shown}: {e}"))?;
    let v: Value =
        serde_json::from_slice(&text).map_err(|e| format!("alert rules {shown}: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("alert rules {shown}: not a JSON object"))?;
    let bad = |k: &str| format!("alert rules {shown}: {k} has the wrong type");
    let mut webhook = None;
    for (k, x) in obj {
        match k.as_str() {
            "lag" => rules.lag = Some(x.as_i64().ok_or_else(|| bad(k))?),
            "diskPercent" => rules.disk_percent = Some(x.as_f64().ok_or_else(|| bad(k))?),
            "brokerDown" => rules.broker_down = x.as_bool().ok_or_else(|| bad(k))?,
            "webhook" => webhook = Some(x.as_str().ok_or_else(|| bad(k))?.to_owned()),
            "groupLag" => {
                for (g, n) in x.as_object().ok_or_else(|| bad(k))? {
                    let n = n.as_i64().ok_or_else(|| bad(k))?;
                    rules.group_lag.insert(g.clone(), n);
                }
            }
            other => {
                return Err(format!(
                    "alert rules {shown}: unknown key {other} (known: lag, groupLag, \
                     diskPercent, brokerDown, webhook)"
                ))
            }
        }
    }
    Ok(webhook)
}

/// The watcher's state, shared by the sampler thread and the request threads.
#[derive(Debug)]
pub struct Watch {
    pub cfg: WatchConfig,
    pub ring: Mutex<Ring>,
    pub alerts: Mutex<State>,
    webhook: Option<SyncSender<Value>>,
}

/// Starts the sampler (and the webhook's sender) for the dashboard of `dash`.
pub fn start(dash: &DashConfig) -> Result<Arc<Watch>, String> {
    let cfg = dash.watch.clone();
    let state = State::default();
    let webhook = match &cfg.webhook {
        Some(w) => Some(
            alerts::start_sender(w.clone(), state.deliveries.clone()).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let w = Arc::new(Watch {
        ring: Mutex::new(Ring::new(cfg.capacity)),
        alerts: Mutex::new(state),
        webhook,
        cfg,
    });
    let (w2, mut dash) = (w.clone(), dash.clone());
    dash.watcher = None;
    std::thread::Builder::new()
        .name("dashboard-sampler".into())
        .spawn(move || sampler(&w2, &dash))
        .map_err(|e| e.to_string())?;
    Ok(w)
}

fn sampler(w: &Watch, dash: &DashConfig) {
    // One client for the life of the sampler: its connections are reused from round to round
    // (a failed one is dropped and made again on the next call).
    let mut admin = super::admin_of(dash);
    loop {
        let began = Instant::now();
        let s = history::collect(&mut admin);
        w.record(s);
        let left = w.cfg.interval.saturating_sub(began.elapsed());
        std::thread::sleep(left.max(Duration::from_millis(100)));
    }
}

impl Watch {
    /// Keeps a sample and evaluates the alert rules on it.
    pub fn record(&self, s: history::Sample) {
        let events = {
            let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            let mut st = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
            st.evaluate(&self.cfg.rules, &s, ring.samples.back())
        };
        if let Some(tx) = &self.webhook {
            let st = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
            let log = st.deliveries.clone();
            drop(st);
            for (ev, a) in &events {
                alerts::enqueue(tx, &log, ev, a);
            }
        }
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    fn alerts_json(&self) -> Value {
        let mut v = self
            .alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .to_json();
        v["rules"] = self.cfg.rules.to_json();
        v["webhook"] = json!(self.cfg.webhook.as_ref().map(|w| &w.url));
        v["intervalMs"] = json!(self.cfg.interval.as_millis() as u64);
        v
    }
}

const CHARTS_JS: &str = include_str!("assets/charts.js");
const WATCH_JS: &str = include_str!("assets/watch.js");

/// The requests this module serves (after the login check); `None`: not one of them.
pub fn route(req: &Request, cfg: &DashConfig) -> Option<Response> {
    if req.method != "GET" {
        return None;
    }
    let js = "text/javascript; charset=utf-8";
    let w = cfg.watcher.as_deref();
    Some(match (req.path.as_str(), w) {
        ("/charts.js", _) => super::asset(CHARTS_JS, js),
        ("/watch.js", _) => super::asset(WATCH_JS, js),
        ("/api/history" | "/api/alerts", None) => {
            Response::error(503, "this dashboard runs without its sampler")
        }
        ("/api/history", Some(w)) => {
            let ring = w.ring.lock().unwrap_or_else(|e| e.into_inner());
            let ms = w.cfg.interval.as_millis() as u64;
            match history::view(&ring, &req.query, ms) {
                Ok(v) => Response::json(200, &v),
                Err(e) => Response::error(400, &e),
            }
        }
        ("/api/alerts", Some(w)) => Response::json(200, &w.alerts_json()),
        ("/api/producers" | "/api/tail", _) => super::live::get(&req.path, &req.query, cfg),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_env_and_rules_file() {
        let dir = std::env::temp_dir().join(format!("saturn-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rules.json");
        std::fs::write(
            &f,
            r#"{"lag": 50, "groupLag": {"G": 7}, "diskPercent": 80, "brokerDown": false,
                "webhook": "http://127.0.0.1:9/x"}"#,
        )
        .unwrap();
        let flags = WatchFlags {
            alert_config: Some(f.clone()),
            alert_lag: Some(9),
            history_interval: Some(1.5),
            ..WatchFlags::default()
        };
        let c = flags.to_config().unwrap();
        assert_eq!(c.rules.lag, Some(9), "the flag wins over the file");
        assert_eq!(c.rules.group_lag.get("G"), Some(&7));
        assert_eq!(c.rules.disk_percent, Some(80.0));
        assert!(!c.rules.broker_down);
        assert_eq!(c.interval, Duration::from_millis(1500));
        assert_eq!(c.webhook.unwrap().port, 9);
        std::fs::write(&f, r#"{"lagg": 5}"#).unwrap();
        assert!(flags.to_config().unwrap_err().contains("unknown key lagg"));
        let https = WatchFlags {
            alert_webhook: Some("https://hooks.example/x".into()),
            ..WatchFlags::default()
        };
        assert!(https.to_config().unwrap_err().contains("only http://"));
        let fast = WatchFlags {
            history_interval: Some(0.01),
            ..WatchFlags::default()
        };
        assert!(fast.to_config().is_err());
        assert_eq!(fast.first_set(), Some("--history-interval"));
        assert_eq!(WatchFlags::default().first_set(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
