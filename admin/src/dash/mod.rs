//! Saturn's built-in dashboard: a thread that serves a single page (HTML, CSS and JavaScript
//! compiled into the binary) and a JSON API backed by this crate's admin calls, so what it shows
//! is what saturn-admin would print.
//!
//! * [`http`]: the minimal HTTP/1.1 side.
//! * [`api`]: the read-only JSON views (cluster, topics, groups, messages, dead letters);
//!   [`browse`]: a topic's messages by time range, page by page.
//! * [`actions`]: the changes (topics, offset resets with a preview, group delete, re-send).
//!   [`queue_reset`]: one queue's reset to a given offset.
//! * [`watch`]: the sampler thread behind [`history`] (charts over time) and [`alerts`]
//!   (thresholds, webhook); [`live`]: producers and the live tail of a topic.
//! * [`trace`]: a message's trace timeline from the trace topic.
//!
//! Safety: beyond loopback it refuses to start without an admin password. With a password every
//! request needs HTTP Basic credentials: user `admin` with the admin password may do everything,
//! user `viewer` with the read-only password (if one is set) may only read. Changes are `POST`s
//! with a JSON body (`Content-Type: application/json`), which a cross-site form cannot send.

pub mod actions;
pub mod alerts;
pub mod api;
pub mod browse;
pub mod history;
pub mod http;
pub mod live;
pub mod queue_reset;
pub mod trace;
pub mod watch;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};

/// Requests served at once; more wait in the listener's backlog.
const MAX_CONCURRENT: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct DashConfig {
    /// Name servers the admin calls go to, `;`-separated.
    pub namesrv: String,
    /// The `admin` user's password; required when listening beyond loopback.
    pub password: Option<String>,
    /// The `viewer` user's password (read-only role); none: no viewer login.
    pub readonly_password: Option<String>,
    /// Timeout of each remoting call.
    pub timeout: Duration,
    /// The sampler's interval, history size and alert rules.
    pub watch: watch::WatchConfig,
    /// The running sampler (set by [`serve`]).
    pub watcher: Option<Arc<watch::Watch>>,
}

impl DashConfig {
    /// Passwords from the flags, else from $SATURN_DASHBOARD_PASSWORD and
    /// $SATURN_DASHBOARD_READONLY_PASSWORD (which keep them out of `ps`).
    pub fn from_env(namesrv: &str, password: Option<String>, readonly: Option<String>) -> Self {
        let env = |k: &str| std::env::var(k).ok();
        Self {
            namesrv: namesrv.to_owned(),
            password: password.or_else(|| env("SATURN_DASHBOARD_PASSWORD")),
            readonly_password: readonly.or_else(|| env("SATURN_DASHBOARD_READONLY_PASSWORD")),
            timeout: Duration::from_secs(5),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

/// Checks the configuration against the address: beyond loopback an admin password is required.
pub fn check(addr: SocketAddr, cfg: &DashConfig) -> Result<(), String> {
    let empty = |p: &Option<String>| p.as_deref().is_some_and(str::is_empty);
    if empty(&cfg.password) || empty(&cfg.readonly_password) {
        return Err("a dashboard password may not be empty".into());
    }
    if !addr.ip().is_loopback() && cfg.password.is_none() {
        return Err(format!(
            "the dashboard would listen on {addr}, beyond loopback, without a password: \
             give --dashboard-password (or SATURN_DASHBOARD_PASSWORD), or listen on 127.0.0.1"
        ));
    }
    if cfg.readonly_password.is_some() && cfg.password.is_none() {
        return Err("a read-only password needs an admin password too".into());
    }
    Ok(())
}

/// A dashboard address and configuration that passed [`check`]. [`serve`] takes only this, so
/// the check runs once, where the settings are read: a program makes it before it starts
/// anything, and a refused configuration stops it before it listens anywhere.
#[derive(Debug, Clone)]
pub struct Checked {
    addr: SocketAddr,
    cfg: DashConfig,
}

impl Checked {
    /// Runs [`check`]; its error when the configuration is refused.
    pub fn new(addr: SocketAddr, cfg: DashConfig) -> Result<Checked, String> {
        check(addr, &cfg)?;
        Ok(Checked { addr, cfg })
    }

    /// The address the dashboard will listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name servers the admin calls go to (not part of the check: `saturn-broker
    /// standalone` and `saturn-namesrv` learn their own name server's address after it).
    pub fn set_namesrv(&mut self, namesrv: String) {
        self.cfg.namesrv = namesrv;
    }
}

/// Binds the checked address and serves the dashboard on its own thread for the life of the
/// process.
pub fn serve(dash: Checked) -> Result<SocketAddr, String> {
    let Checked { addr, mut cfg } = dash;
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("dashboard cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    cfg.watcher = Some(watch::start(&cfg)?);
    let cfg = Arc::new(cfg);
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || accept_loop(listener, cfg))
        .map_err(|e| e.to_string())?;
    Ok(local)
}

fn accept_loop(listener: TcpListener, cfg: Arc<DashConfig>) {
    let busy = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming().flatten() {
        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONCURRENT {
            busy.fetch_sub(1, Ordering::AcqRel);
            let mut s = stream;
            let _ = http::write_response(&mut s, &Response::error(503, "dashboard busy"));
            continue;
        }
        let (cfg, busy2) = (cfg.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name("dashboard-req".into())
            .spawn(move || {
                connection(stream, &cfg);
                busy2.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn connection(mut stream: TcpStream, cfg: &DashConfig) {
    let resp = match http::read_request(&mut stream) {
        Ok(Ok(req)) => handle(&req, cfg),
        Ok(Err(resp)) => resp,
        Err(_) => return,
    };
    let _ = http::write_response(&mut stream, &resp);
}

/// The role the request's credentials give; `None`: refused.
pub fn role_of(req: &Request, cfg: &DashConfig) -> Option<Role> {
    let Some(admin_pw) = &cfg.password else {
        return Some(Role::Admin);
    };
    let cred = req.header("authorization")?.strip_prefix("Basic ")?;
    let cred = String::from_utf8(http::base64_decode(cred.trim())?).ok()?;
    let (user, pw) = cred.split_once(':')?;
    match user {
        "admin" if same(pw, admin_pw) => Some(Role::Admin),
        "viewer"
            if cfg
                .readonly_password
                .as_deref()
                .is_some_and(|r| same(pw, r)) =>
        {
            Some(Role::Viewer)
        }
        _ => None,
    }
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn handle(req: &Request, cfg: &DashConfig) -> Response {
    let Some(role) = role_of(req, cfg) else {
        let mut r = Response::error(401, "log in: user admin (or viewer) and its password");
        r.extra.push((
            "WWW-Authenticate",
            "Basic realm=\"saturn\", charset=\"UTF-8\"".into(),
        ));
        return r;
    };
    if let Some(r) = watch::route(req, cfg) {
        return r;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/index.html") => asset(INDEX, "text/html; charset=utf-8"),
        ("GET", "/app.js") => asset(APP_JS, "text/javascript; charset=utf-8"),
        ("GET", "/style.css") => asset(STYLE, "text/css; charset=utf-8"),
        ("GET", "/trace.js") => asset(TRACE_JS, "text/javascript; charset=utf-8"),
        ("GET", "/api/whoami") => Response::json(
            200,
            &serde_json::json!({ "role": if role == Role::Admin { "admin" } else { "viewer" } }),
        ),
        ("GET", p) if p.starts_with("/api/") => api::get(p, &req.query, cfg),
        ("POST", p) if p.starts_with("/api/") => {
            if role != Role::Admin {
                return Response::error(403, "the viewer role may only read");
            }
            let ct = req.header("content-type").unwrap_or("");
            if !ct.starts_with("application/json") {
                return Response::error(415, "actions take a JSON body (application/json)");
            }
            actions::post(p, &req.body, cfg)
        }
        ("GET", _) => Response::error(404, "no such page"),
        _ => Response::error(405, "only GET and POST are served"),
    }
}

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const TRACE_JS: &str = include_str!("assets/trace.js");

fn asset(body: &'static str, ct: &'static str) -> Response {
    let mut r = Response::new(200, ct, body);
    r.extra.push((
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self'; script-src 'self'".into(),
    ));
    r
}

/// A fresh admin client per request (connections on loopback are cheap; nothing is shared).
pub fn admin_of(cfg: &DashConfig) -> crate::client::Admin {
    let t = if cfg.timeout.is_zero() {
        Duration::from_secs(5)
    } else {
        cfg.timeout
    };
    crate::client::Admin::new(&cfg.namesrv, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pw: Option<&str>, ro: Option<&str>) -> DashConfig {
        DashConfig {
            namesrv: "127.0.0.1:9876".into(),
            password: pw.map(str::to_owned),
            readonly_password: ro.map(str::to_owned),
            timeout: Duration::from_secs(1),
            ..DashConfig::default()
        }
    }

    fn req(method: &str, path: &str, auth: Option<&str>) -> Request {
        let mut headers = std::collections::BTreeMap::new();
        if let Some(a) = auth {
            headers.insert("authorization".to_owned(), a.to_owned());
        }
        Request {
            method: method.into(),
            path: path.into(),
            query: Default::default(),
            headers,
            body: Vec::new(),
        }
    }

    #[test]
    fn refuses_beyond_loopback_without_password() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(check(any, &cfg(None, None))
            .unwrap_err()
            .contains("beyond loopback"));
        assert!(check(lo, &cfg(None, None)).is_ok());
        assert!(check(any, &cfg(Some("pw"), None)).is_ok());
        assert!(check(lo, &cfg(Some(""), None)).is_err());
        assert!(check(lo, &cfg(None, Some("ro"))).is_err());
        // The only way to `serve`: a refused configuration never reaches it.
        assert!(Checked::new(any, cfg(None, None)).is_err());
        assert_eq!(Checked::new(lo, cfg(None, None)).unwrap().addr(), lo);
    }

    #[test]
    fn roles_from_basic_credentials() {
        let c = cfg(Some("s3cret"), Some("view"));
        // admin:s3cret, viewer:view, admin:view
        let admin = "Basic YWRtaW46czNjcmV0";
        let viewer = "Basic dmlld2VyOnZpZXc=";
        let wrong = "Basic YWRtaW46dmlldw==";
        assert_eq!(
            role_of(&req("GET", "/", Some(admin)), &c),
            Some(Role::Admin)
        );
        assert_eq!(
            role_of(&req("GET", "/", Some(viewer)), &c),
            Some(Role::Viewer)
        );
        assert_eq!(role_of(&req("GET", "/", Some(wrong)), &c), None);
        assert_eq!(role_of(&req("GET", "/", None), &c), None);
        assert_eq!(
            role_of(&req("GET", "/", None), &cfg(None, None)),
            Some(Role::Admin)
        );
        assert_eq!(handle(&req("GET", "/", None), &c).status, 401);
        let post = handle(&req("POST", "/api/topic/delete", Some(viewer)), &c);
        assert_eq!(post.status, 403);
        let no_json = handle(&req("POST", "/api/topic/delete", Some(admin)), &c);
        assert_eq!(no_json.status, 415);
        assert_eq!(handle(&req("GET", "/nope", Some(admin)), &c).status, 404);
        assert_eq!(handle(&req("DELETE", "/", Some(admin)), &c).status, 405);
        let page = handle(&req("GET", "/", Some(viewer)), &c);
        assert!(String::from_utf8_lossy(&page.body).contains("/app.js"));
    }
}
