//! A Prometheus text endpoint: a thread that answers `GET /metrics` with what a render function
//! returns. The name server's own figures ([`namesrv_text`]) are served with it; the broker
//! serves its shards' figures through the same responder.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::processor::Processor;

/// Binds `addr` and answers scrapes on a thread named `name` for the life of the process.
pub fn serve<F>(addr: SocketAddr, name: &str, render: F) -> std::io::Result<SocketAddr>
where
    F: Fn() -> String + Send + 'static,
{
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &render) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
        })?;
    tracing::info!(addr = %local, "Prometheus metrics on /metrics");
    Ok(local)
}

/// Reads a request head (at most 8 KiB, 5 s) and answers it.
fn answer(mut stream: TcpStream, render: &dyn Fn() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => ("200 OK", render()),
        ("GET", _) => ("404 Not Found", "only /metrics is served here\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "only GET is served here\n".to_owned(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes())
}

/// The name server's figures: brokers registered per cluster, topics, requests served.
pub fn namesrv_text(processor: &Arc<Processor>) -> String {
    let (clusters, topics, requests) = processor.figures();
    let mut out = String::from(
        "# HELP saturn_namesrv_brokers Broker addresses registered, per cluster.\n\
         # TYPE saturn_namesrv_brokers gauge\n",
    );
    for (cluster, n) in clusters {
        let cluster = cluster.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!(
            "saturn_namesrv_brokers{{node_type=\"namesrv\",cluster=\"{cluster}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP saturn_namesrv_topics Topics with a route.\n# TYPE saturn_namesrv_topics gauge\n\
         saturn_namesrv_topics{{node_type=\"namesrv\"}} {topics}\n\
         # HELP saturn_namesrv_requests_total Requests answered.\n\
         # TYPE saturn_namesrv_requests_total counter\n\
         saturn_namesrv_requests_total{{node_type=\"namesrv\"}} {requests}\n"
    ));
    out
}
