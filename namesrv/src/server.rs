//! The TCP side: an accept thread, one thread per connection (a name server
//! serves a bounded number of brokers and clients; none of this is on the
//! message path), and a scanner that expires silent brokers.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::CommandDecoder;

use crate::processor::{NamesrvConfig, Processor};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub namesrv: NamesrvConfig,
    /// How often expiry is checked.
    pub scan_interval: Duration,
    pub max_frame_size: usize,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// A connection silent this long is closed (brokers register every 30 s).
    pub idle_timeout: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`); none when `None`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9876)),
            namesrv: NamesrvConfig::default(),
            scan_interval: Duration::from_secs(5),
            max_frame_size: protocol::DEFAULT_MAX_FRAME_SIZE,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(120),
            metrics_listen: None,
        }
    }
}

/// A running name server.
pub struct NameServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NameServer {
    pub fn start(config: ServerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let processor = Arc::new(Processor::new(config.namesrv.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(addr) = config.metrics_listen {
            let p = processor.clone();
            crate::prom::serve(addr, "namesrv-metrics", move || {
                crate::prom::namesrv_text(&p)
            })?;
        }

        let scanner = {
            let processor = processor.clone();
            let stop = stop.clone();
            let interval = config.scan_interval;
            std::thread::Builder::new()
                .name("namesrv-scan".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        sleep_unless_stopped(interval, &stop);
                        for addr in processor.expire(Instant::now()) {
                            tracing::warn!(broker = %addr, "broker expired: no registration within its timeout");
                        }
                    }
                })?
        };

        let acceptor = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("namesrv-accept".into())
                .spawn(move || accept_loop(listener, processor, config, stop))?
        };

        Ok(Self {
            local_addr,
            stop,
            threads: vec![scanner, acceptor],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and expiring; open connections finish on their own.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(step.min(deadline - now));
    }
}

fn accept_loop(
    listener: TcpListener,
    processor: Arc<Processor>,
    config: ServerConfig,
    stop: Arc<AtomicBool>,
) {
    let next_conn = AtomicU64::new(1);
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= config.max_connections {
            tracing::warn!(
                limit = config.max_connections,
                "connection limit reached; closing new connection"
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let processor = processor.clone();
        let active = active.clone();
        let config = config.clone();
        active.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("namesrv-conn-{conn}"))
            .spawn({
                let active = active.clone();
                move || {
                    serve_connection(stream, conn, &processor, &config);
                    for addr in processor.connection_closed(conn) {
                        tracing::info!(broker = %addr, "broker removed: its connection closed");
                    }
                    active.fetch_sub(1, Ordering::Relaxed);
                }
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot start connection thread");
        }
    }
}

fn serve_connection(
    mut stream: TcpStream,
    conn: u64,
    processor: &Processor,
    config: &ServerConfig,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(config.idle_timeout));
    let mut decoder = CommandDecoder::new(config.max_frame_size);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = BytesMut::new();
    loop {
        loop {
            let request = match decoder.next_command() {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "closing connection");
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            };
            if request.is_response() {
                continue; // nothing is ever requested of peers
            }
            if let Some(response) = processor.handle(&request, conn) {
                out.clear();
                response.encode(&mut out);
                if stream.write_all(&out).is_err() {
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => decoder.extend(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                    tracing::debug!(peer = %peer, "idle connection closed");
                }
                return;
            }
        }
    }
}
