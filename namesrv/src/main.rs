use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use namesrv::{NameServer, NamesrvConfig, ServerConfig};

/// A faster allocator than glibc's for many small, short-lived allocations
/// (request headers), measured under saturn-bench.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Saturn's RocketMQ-compatible name server.
#[derive(Parser, Debug)]
#[command(name = "saturn-namesrv", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:9876")]
    listen: SocketAddr,
    /// A broker that has not registered for this long is dropped (ms).
    #[arg(long, default_value_t = 120_000)]
    broker_expiry_ms: u64,
    /// How often expiry is checked (ms).
    #[arg(long, default_value_t = 5_000)]
    scan_interval_ms: u64,
    /// Persist KV config to this file (in memory only when absent).
    #[arg(long)]
    kv_config: Option<PathBuf>,
    /// Put orderTopicConf from the ORDER_TOPIC_CONFIG namespace into routes.
    #[arg(long)]
    order_message_enable: bool,
    /// Serve Prometheus metrics (GET /metrics) on this address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_FRAME_SIZE)]
    max_frame_size: usize,
    #[command(flatten)]
    dashboard: admin::dash::watch::DashFlags,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = ServerConfig {
        listen: args.listen,
        namesrv: NamesrvConfig {
            broker_expiry: Duration::from_millis(args.broker_expiry_ms),
            kv_config_path: args.kv_config,
            order_message_enable: args.order_message_enable,
        },
        scan_interval: Duration::from_millis(args.scan_interval_ms),
        max_frame_size: args.max_frame_size,
        metrics_listen: args.metrics_listen,
        ..ServerConfig::default()
    };
    // The dashboard's settings are checked before the name server starts listening.
    let dash = args.dashboard.config("").unwrap_or_else(|e| fail(&e));
    let server = NameServer::start(config)
        .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", args.listen)));
    // Tests and scripts read this line to learn the port.
    println!("saturn-namesrv listening on {}", server.local_addr());
    tracing::info!(addr = %server.local_addr(), "name server started");
    if let Some(mut dash) = dash {
        // Asked on loopback when the name server listens on every address.
        let own = server.local_addr();
        let ip = if own.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            own.ip()
        };
        dash.set_namesrv(SocketAddr::new(ip, own.port()).to_string());
        match admin::dash::serve(dash) {
            // Tests and scripts read this line.
            Ok(local) => println!("saturn-dashboard listening on http://{local}/"),
            Err(e) => fail(&e),
        }
    }
    server.wait();
}

fn fail(message: &str) -> ! {
    eprintln!("saturn-namesrv: {message}");
    std::process::exit(1);
}
