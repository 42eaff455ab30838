use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use broker::config::{BrokerConfig, FlushDiskType};
use broker::server::Broker;
use clap::{Args, Parser, Subcommand};

/// A faster allocator than glibc's for many small, short-lived allocations
/// (request headers), measured under saturn-bench.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Saturn: a thread-per-core broker for RocketMQ clients.
#[derive(Parser, Debug)]
#[command(name = "saturn-broker", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A broker plus an embedded name server, data in ./data: the first run.
    Standalone {
        /// Port of the embedded name server.
        #[arg(long, default_value_t = 9876)]
        namesrv_port: u16,
        #[command(flatten)]
        dashboard: admin::dash::watch::DashFlags,
        #[command(flatten)]
        flags: Flags,
    },
}

#[derive(Args, Debug, Clone, Default)]
struct Flags {
    /// RocketMQ broker.conf to read (flags override it).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Data directory (storePathRootDir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Shard 0's port (listenPort); shard i uses port + 4i.
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Number of shards (default: every core).
    #[arg(long, global = true)]
    shards: Option<usize>,
    /// ASYNC_FLUSH or SYNC_FLUSH.
    #[arg(long, global = true)]
    flush: Option<String>,
    /// Name servers, `;`-separated (namesrvAddr).
    #[arg(long, global = true)]
    namesrv: Option<String>,
    /// Address advertised to clients (brokerIP1).
    #[arg(long, global = true)]
    broker_ip: Option<IpAddr>,
    /// Broker name; shard i registers as `<name>-<i>`.
    #[arg(long, global = true)]
    broker_name: Option<String>,
    /// Cluster name.
    #[arg(long, global = true)]
    cluster: Option<String>,
    /// Create topics on first send (autoCreateTopicEnable).
    #[arg(long, global = true)]
    auto_create_topic: Option<bool>,
    /// Commit-log segment size in bytes (mappedFileSizeCommitLog).
    #[arg(long, global = true)]
    segment_size: Option<u64>,
    /// Do not pin shards to cores.
    #[arg(long, global = true)]
    no_pin: bool,
    /// Microseconds an idle shard polls before it sleeps (0: sleep at once).
    #[arg(long, global = true)]
    spin_us: Option<u64>,
    /// Connections one shard serves at once (saturnMaxConnectionsPerShard).
    #[arg(long, global = true)]
    max_connections: Option<usize>,
    /// Seconds a connection may sit idle before it is closed, 0: never
    /// (serverChannelMaxIdleTimeSeconds).
    #[arg(long, global = true)]
    idle_timeout: Option<u64>,
    /// Bytes of requests one connection may have in progress
    /// (saturnMaxBytesInFlightPerConnection).
    #[arg(long, global = true)]
    max_bytes_in_flight: Option<usize>,
}

fn main() {
    init_logging();
    let cli = Cli::parse();
    let (flags, standalone, dash) = match cli.command {
        Some(Command::Standalone {
            namesrv_port,
            dashboard,
            flags,
        }) => (merge(cli.flags, flags), Some(namesrv_port), dashboard),
        None => (cli.flags, None, admin::dash::watch::DashFlags::default()),
    };
    let mut config = BrokerConfig::default();
    if standalone.is_some() {
        config.auto_create_topic = true;
        config.broker_ip = IpAddr::from([127, 0, 0, 1]);
    }
    if let Some(path) = &flags.config {
        match config.load_file(path) {
            Ok(unknown) => {
                for key in unknown {
                    tracing::warn!(key = %key, "broker.conf key not used by Saturn; ignored");
                }
            }
            Err(e) => fail(&e),
        }
    }
    apply_flags(&mut config, &flags);
    // The dashboard's settings are checked once, here, before anything starts; its name
    // servers are set below, once the embedded one listens.
    let dashboard = dash.config("").unwrap_or_else(|e| fail(&e));
    raise_open_file_limit(config.shards * config.max_connections_per_shard);

    let namesrv = standalone.map(|port| {
        let listen = SocketAddr::from(([0, 0, 0, 0], port));
        let server = namesrv::NameServer::start(namesrv::ServerConfig {
            listen,
            namesrv: namesrv::NamesrvConfig {
                kv_config_path: Some(config.data_dir.join("namesrv").join("kvConfig.json")),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap_or_else(|e| fail(&format!("cannot start the name server on {listen}: {e}")));
        config.namesrv_addrs = vec![format!("127.0.0.1:{}", server.local_addr().port())];
        println!("saturn-namesrv listening on {}", server.local_addr());
        server
    });

    let shards = config.shards;
    let ports: Vec<String> = (0..shards).map(|i| config.shard_addr(i)).collect();
    if let Some(mut dash) = dashboard {
        dash.set_namesrv(config.namesrv_addrs.join(";"));
        start_dashboard(dash);
    }
    let broker = Broker::start(config).unwrap_or_else(|e| fail(&e));
    // Tests and scripts read this line.
    println!("saturn-broker ready: {}", ports.join(" "));

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .unwrap_or_else(|e| fail(&format!("cannot install signal handlers: {e}")));
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "shutting down");
    }
    broker.shutdown();
    if let Some(ns) = namesrv {
        ns.shutdown();
    }
    tracing::info!("stopped");
    // Give log lines a moment to reach their sink.
    std::thread::sleep(Duration::from_millis(10));
}

fn merge(global: Flags, local: Flags) -> Flags {
    Flags {
        config: local.config.or(global.config),
        data_dir: local.data_dir.or(global.data_dir),
        port: local.port.or(global.port),
        shards: local.shards.or(global.shards),
        flush: local.flush.or(global.flush),
        namesrv: local.namesrv.or(global.namesrv),
        broker_ip: local.broker_ip.or(global.broker_ip),
        broker_name: local.broker_name.or(global.broker_name),
        cluster: local.cluster.or(global.cluster),
        auto_create_topic: local.auto_create_topic.or(global.auto_create_topic),
        segment_size: local.segment_size.or(global.segment_size),
        no_pin: local.no_pin || global.no_pin,
        spin_us: local.spin_us.or(global.spin_us),
        max_connections: local.max_connections.or(global.max_connections),
        idle_timeout: local.idle_timeout.or(global.idle_timeout),
        max_bytes_in_flight: local.max_bytes_in_flight.or(global.max_bytes_in_flight),
    }
}

fn apply_flags(config: &mut BrokerConfig, f: &Flags) {
    if let Some(v) = &f.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = f.port {
        config.listen_port = v;
    }
    if let Some(v) = f.shards {
        if v == 0 {
            fail("--shards must be at least 1");
        }
        config.shards = v;
    }
    if let Some(v) = &f.flush {
        config.flush = FlushDiskType::parse(v)
            .unwrap_or_else(|| fail(&format!("--flush {v}: expected ASYNC_FLUSH or SYNC_FLUSH")));
    }
    if let Some(v) = &f.namesrv {
        config.namesrv_addrs = v
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(v) = f.broker_ip {
        config.broker_ip = v;
    }
    if let Some(v) = &f.broker_name {
        config.broker_name = v.clone();
    }
    if let Some(v) = &f.cluster {
        config.cluster_name = v.clone();
    }
    if let Some(v) = f.auto_create_topic {
        config.auto_create_topic = v;
    }
    if let Some(v) = f.segment_size {
        config.segment_size = v;
    }
    if f.no_pin {
        config.pin_cores = false;
    }
    if let Some(v) = f.spin_us {
        config.spin_before_park = std::time::Duration::from_micros(v);
    }
    apply_limit_flags(config, f);
}

fn apply_limit_flags(config: &mut BrokerConfig, f: &Flags) {
    if let Some(v) = f.max_connections {
        config.max_connections_per_shard = v;
    }
    if let Some(v) = f.idle_timeout {
        config.idle_timeout = Duration::from_secs(v);
    }
    if let Some(v) = f.max_bytes_in_flight {
        // A request larger than the budget still runs, alone.
        config.max_bytes_in_flight_per_connection = v.max(1);
    }
}

/// Raises this process's limit on open files toward what the shards may hold (every
/// connection is a file), as far as the hard limit allows.
fn raise_open_file_limit(want: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit of our own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let target = (want as libc::rlim_t + 1024).min(lim.rlim_max);
        if target > lim.rlim_cur {
            lim.rlim_cur = target;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("cannot raise the open-file limit");
            }
        }
        if (lim.rlim_cur as usize) < want {
            tracing::info!(
                limit = lim.rlim_cur,
                wanted = want,
                "open-file limit is below the connections the shards may serve"
            );
        }
    }
}

fn start_dashboard(dash: admin::dash::Checked) {
    match admin::dash::serve(dash) {
        // Tests and scripts read this line.
        Ok(local) => println!("saturn-dashboard listening on http://{local}/"),
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("saturn-broker: {message}");
    std::process::exit(1);
}

fn init_logging() {
    // glommio reports problems only as `log` records: the subscriber's
    // `init` also routes those into tracing.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
