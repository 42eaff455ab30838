//! `saturn-bench`: a load generator that speaks RocketMQ's remoting
//! protocol, so the same tool measures Saturn and any other
//! RocketMQ-compatible broker.

mod consume;
mod produce;
mod route;
mod stats;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use glommio::{LocalExecutorBuilder, Placement};

use stats::{Report, Stats};

/// A faster allocator than glibc's for many small, short-lived allocations
/// (request headers), measured under saturn-bench.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "saturn-bench",
    version,
    about = "Load generator for RocketMQ-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send messages and measure throughput and latency.
    Produce(ProduceArgs),
    /// Pull every queue of a topic and measure throughput and end-to-end latency.
    Consume(ConsumeArgs),
    /// Produce and consume at once.
    Mixed {
        #[command(flatten)]
        produce: ProduceArgs,
        /// Consumer group.
        #[arg(long, default_value = "saturn_bench_cg")]
        group: String,
        /// Messages per pull.
        #[arg(long, default_value_t = 32)]
        pull_batch: i32,
    },
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Name server address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    #[arg(long, default_value = "BenchTopic")]
    topic: String,
    /// Create the topic with this many queues per broker before running.
    #[arg(long)]
    create_topic: Option<i32>,
    /// Run for this many seconds (at most 3600).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// The broker's pid: report its CPU seconds per million messages.
    #[arg(long)]
    broker_pid: Vec<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Pin the bench to this core.
    #[arg(long)]
    core: Option<usize>,
    /// Microseconds the bench polls before it sleeps when idle, so that its
    /// own wake-ups do not inflate the latencies it measures.
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// Allow addresses other than loopback.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Args, Debug, Clone)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Messages per request (more than 1: SEND_BATCH_MESSAGE).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Target messages per second over all connections (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Producer group.
    #[arg(long, default_value = "saturn_bench_pg")]
    producer_group: String,
    /// Timer workload: every message carries TIMER_DELIVER_MS, the --count messages due evenly
    /// over this many seconds (in send order), the first --timer-start seconds after the start.
    /// Consume them with `consume --timers`: its latency is then the lateness.
    #[arg(long)]
    timer_window: Option<f64>,
    /// Seconds from the start to the first due time of a timer workload.
    #[arg(long, default_value_t = 5.0)]
    timer_start: f64,
}

#[derive(Args, Debug, Clone)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = "saturn_bench_cg")]
    group: String,
    /// Messages per pull.
    #[arg(long, default_value_t = 32)]
    pull_batch: i32,
    /// Start at offset 0 of every queue (default: at the current end).
    #[arg(long)]
    from_start: bool,
    /// Stop when every queue reached the end it had at start.
    #[arg(long)]
    drain: bool,
    /// Check every body and fail on bad or duplicate messages.
    #[arg(long)]
    verify: bool,
    /// The messages come from `produce --timer-window`: latency is lateness (receipt minus due
    /// time), and records stored before their due time are counted.
    #[arg(long)]
    timers: bool,
}

const MAX_DURATION_S: f64 = 3600.0;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let common = match &cli.command {
        Cmd::Produce(p) => p.common.clone(),
        Cmd::Consume(c) => c.common.clone(),
        Cmd::Mixed { produce, .. } => produce.common.clone(),
    };
    if common.duration.is_none()
        && common.count.is_none()
        && !matches!(&cli.command, Cmd::Consume(c) if c.drain)
    {
        fail("give --duration or --count (every run is bounded)");
    }
    if common
        .duration
        .is_some_and(|d| !(0.0..=MAX_DURATION_S).contains(&d))
    {
        fail("--duration must be between 0 and 3600 seconds");
    }
    check_loopback(&common.namesrv, common.allow_remote);
    if let Some(q) = common.create_topic {
        route::create_topic(&common.namesrv, &common.topic, q).unwrap_or_else(|e| fail(&e));
    }
    let route = route::fetch_route(&common.namesrv, &common.topic).unwrap_or_else(|e| fail(&e));
    let placement = match common
        .core
        .or_else(|| core_affinity::get_core_ids().and_then(|c| c.last().map(|c| c.id)))
    {
        Some(core) => Placement::Fixed(core),
        None => Placement::Unbound,
    };
    let cpu_before: Option<f64> = broker_cpu(&common.broker_pid);
    let command = cli.command;
    let reports = LocalExecutorBuilder::new(placement)
        .name("bench")
        .io_memory(1 << 20)
        .spin_before_park(std::time::Duration::from_micros(common.spin_us))
        .spawn(move || async move { run(command, route).await })
        .unwrap_or_else(|e| fail(&format!("cannot start the executor: {e}")))
        .join()
        .unwrap_or_else(|e| fail(&format!("executor failed: {e}")));
    let cpu = match (cpu_before, broker_cpu(&common.broker_pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let mut failed = false;
    let mut out = Vec::new();
    for (mut report, ok) in reports {
        report.broker_cpu_s_per_million =
            cpu.and_then(|cpu| (report.messages > 0).then(|| cpu / (report.messages as f64 / 1e6)));
        failed |= !ok;
        out.push(report);
    }
    if common.json {
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
    } else {
        for r in &out {
            r.print_table();
        }
    }
    if failed {
        std::process::exit(1);
    }
}

fn broker_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| stats::process_cpu_seconds(*p)).sum()
}

fn check_loopback(addr: &str, allow_remote: bool) {
    if allow_remote {
        return;
    }
    let ok = addr
        .to_socket_addrs()
        .map(|mut a| a.all(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    if !ok {
        fail(&format!(
            "{addr} is not a loopback address (pass --allow-remote to use it)"
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("saturn-bench: {message}");
    std::process::exit(2);
}

/// Prints a progress line every second while on a terminal.
fn progress(label: &'static str, total: impl Fn() -> u64 + 'static, stop: Rc<Cell<bool>>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    glommio::spawn_local(async move {
        let start = Instant::now();
        let mut last = 0u64;
        while !stop.get() {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            let total = total();
            eprint!(
                "\r{label}: {total} messages, {} msg/s, {:.0} s   ",
                total - last,
                start.elapsed().as_secs_f64()
            );
            last = total;
        }
        eprintln!();
    })
    .detach();
}

async fn run(command: Cmd, route: protocol::body::TopicRouteData) -> Vec<(Report, bool)> {
    match command {
        Cmd::Produce(p) => {
            let (report, ok) = run_produce(p, &route).await;
            vec![(report, ok)]
        }
        Cmd::Consume(c) => {
            let (report, ok) = run_consume(c, &route, None).await;
            vec![(report, ok)]
        }
        Cmd::Mixed {
            produce,
            group,
            pull_batch,
        } => {
            let consume = ConsumeArgs {
                common: produce.common.clone(),
                group,
                pull_batch,
                from_start: false,
                drain: false,
                verify: false,
                timers: false,
            };
            let producer_done = Rc::new(Cell::new(false));
            let consumer = glommio::spawn_local({
                let route = route.clone();
                let done = producer_done.clone();
                async move { run_consume(consume, &route, Some(done)).await }
            })
            .detach();
            // Give the consumers a moment to park their first pulls.
            glommio::timer::sleep(Duration::from_millis(300)).await;
            let produced = run_produce(produce, &route).await;
            producer_done.set(true);
            let consumed = consumer
                .await
                .unwrap_or_else(|| (produced.0.clone(), false));
            let mut consumed = consumed;
            consumed.0.workload = "mixed-e2e".into();
            let mut produced = produced;
            produced.0.workload = "mixed-send".into();
            vec![produced, consumed]
        }
    }
}

async fn run_produce(p: ProduceArgs, route: &protocol::body::TopicRouteData) -> (Report, bool) {
    let queues = route::queues(route, true);
    if queues.is_empty() {
        fail("the route has no writable queue");
    }
    for q in &queues {
        check_loopback(&q.addr, p.common.allow_remote);
    }
    let opts = produce::ProduceOpts {
        topic: p.common.topic.clone(),
        size: p.size,
        connections: p.connections.max(1),
        in_flight: p.in_flight.max(1),
        batch: p.batch.max(1),
        duration: p.common.duration.map(Duration::from_secs_f64),
        count: p.common.count,
        rate: p.rate,
        group: p.producer_group.clone(),
        timer: None,
    };
    // Sequence numbers differ between runs, so a consumer verifying several runs' messages
    // does not see false duplicates.
    let seq_base = (produce::now_us() / 1000 % 1_000_000) << 32;
    let mut opts = opts;
    if let Some(window) = p.timer_window {
        let Some(count) = opts.count.filter(|_| opts.batch == 1) else {
            fail("--timer-window needs --count and single messages (--batch 1)");
        };
        opts.timer = Some(produce::TimerPlan {
            first_due_ms: produce::now_us() / 1000 + (p.timer_start * 1000.0) as u64,
            window_ms: (window * 1000.0) as u64,
            count,
            seq_base,
        });
    }
    // Connection c talks to one broker and rotates over its queues.
    let mut brokers: BTreeMap<String, Vec<route::Queue>> = BTreeMap::new();
    for q in queues {
        brokers.entry(q.broker_name.clone()).or_default().push(q);
    }
    let brokers: Vec<Vec<route::Queue>> = brokers.into_values().collect();
    let shared = Rc::new(produce::Shared {
        remaining: Cell::new(opts.count.unwrap_or(u64::MAX)),
        next_seq: Cell::new(seq_base),
        stop: Cell::new(false),
        stats: RefCell::new(Stats::default()),
        client_prefix: format!("7F000001{:04X}", std::process::id() & 0xFFFF),
        opts,
    });
    let stop = Rc::new(Cell::new(false));
    let start = Instant::now();
    if let Some(d) = shared.opts.duration {
        let shared = shared.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(d).await;
            shared.stop.set(true);
        })
        .detach();
    }
    let mut tasks = Vec::new();
    for c in 0..shared.opts.connections {
        let qs = brokers[c % brokers.len()].clone();
        tasks.push(glommio::spawn_local(produce::run_connection(shared.clone(), qs)).detach());
    }
    {
        let shared = shared.clone();
        progress(
            "produce",
            move || shared.stats.borrow().messages,
            stop.clone(),
        );
    }
    for t in tasks {
        t.await;
    }
    stop.set(true);
    let elapsed = start.elapsed();
    let stats = shared.stats.borrow();
    let mut ok = stats.errors.is_empty();
    if let Some(count) = shared.opts.count {
        ok &= stats.messages == count;
        if stats.messages != count {
            eprintln!(
                "saturn-bench: {} of {count} messages acknowledged",
                stats.messages
            );
        }
    }
    (Report::new("produce", &stats, elapsed, None), ok)
}

async fn run_consume(
    c: ConsumeArgs,
    route: &protocol::body::TopicRouteData,
    stop_after_producer: Option<Rc<Cell<bool>>>,
) -> (Report, bool) {
    let by_broker = consume_plan(&c, route);
    let undrained = by_broker
        .values()
        .flatten()
        .filter(|(_, start, target)| start < target)
        .count();
    let shared = Rc::new(consume::Shared {
        opts: consume::ConsumeOpts {
            topic: c.common.topic.clone(),
            group: c.group.clone(),
            duration: c.common.duration.map(Duration::from_secs_f64),
            count: c.common.count,
            drain: c.drain,
            pull_batch: c.pull_batch.clamp(1, 1024),
            verify: c.verify,
            timers: c.timers,
        },
        stop: Cell::new(c.drain && undrained == 0),
        stats: RefCell::new(Stats::default()),
        seen: RefCell::new(HashSet::new()),
        bad_bodies: Cell::new(0),
        duplicates: Cell::new(0),
        undrained: Cell::new(undrained),
    });
    let start = Instant::now();
    let stop_flag = Rc::new(Cell::new(false));
    {
        let shared = shared.clone();
        progress(
            "consume",
            move || shared.stats.borrow().messages,
            stop_flag.clone(),
        );
    }
    spawn_stopper(shared.clone(), stop_after_producer);
    let mut tasks = Vec::new();
    for (addr, qs) in by_broker {
        tasks.push(glommio::spawn_local(consume::run_broker(shared.clone(), addr, qs)).detach());
    }
    for t in tasks {
        t.await;
    }
    stop_flag.set(true);
    let elapsed = start.elapsed();
    let ok = consume_verdict(&c, &shared);
    let stats = shared.stats.borrow();
    (Report::new("consume", &stats, elapsed, None), ok)
}

/// The queues to pull, by broker address, each with its start and target offsets.
type ConsumePlan = BTreeMap<String, Vec<(route::Queue, i64, i64)>>;

fn consume_plan(c: &ConsumeArgs, route: &protocol::body::TopicRouteData) -> ConsumePlan {
    let queues = route::queues(route, false);
    if queues.is_empty() {
        fail("the route has no readable queue");
    }
    for q in &queues {
        check_loopback(&q.addr, c.common.allow_remote);
    }
    let mut by_broker = ConsumePlan::new();
    for q in queues {
        let max = queue_max_offset(&q, &c.common.topic).unwrap_or_else(|e| fail(&e));
        let start = if c.from_start { 0 } else { max };
        by_broker
            .entry(q.addr.clone())
            .or_default()
            .push((q, start, max));
    }
    by_broker
}

/// Stops the consumers at the deadline, or in mixed mode a while after the producer is done.
fn spawn_stopper(shared: Rc<consume::Shared>, stop_after_producer: Option<Rc<Cell<bool>>>) {
    {
        let duration = shared.opts.duration;
        glommio::spawn_local(async move {
            let deadline = duration.map(|d| Instant::now() + d);
            loop {
                glommio::timer::sleep(Duration::from_millis(50)).await;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    shared.stop.set(true);
                }
                // In mixed mode: stop once the producer is done and the
                // consumer has caught up with it (bounded by 10 s).
                if let Some(p) = &stop_after_producer {
                    if p.get() {
                        glommio::timer::sleep(Duration::from_secs(2)).await;
                        shared.stop.set(true);
                    }
                }
                if shared.stop.get() {
                    return;
                }
            }
        })
        .detach();
    }
}

/// Whether the consumption went right: no errors; with `--verify` no bad body or duplicate;
/// with `--count` that many messages (distinct ones with `--verify`).
fn consume_verdict(c: &ConsumeArgs, shared: &consume::Shared) -> bool {
    let stats = shared.stats.borrow();
    let mut ok = stats.errors.is_empty();
    if c.verify {
        let bad = shared.bad_bodies.get();
        let dups = shared.duplicates.get();
        if bad > 0 || dups > 0 {
            eprintln!("saturn-bench: {bad} bad bodies, {dups} duplicates");
            ok = false;
        }
    }
    if let Some(count) = c.common.count {
        if stats.messages < count {
            eprintln!(
                "saturn-bench: consumed {} of {count} messages",
                stats.messages
            );
            ok = false;
        }
        if c.verify && (shared.seen.borrow().len() as u64) < count {
            eprintln!(
                "saturn-bench: {} distinct messages of {count}",
                shared.seen.borrow().len()
            );
            ok = false;
        }
    }
    ok
}

fn queue_max_offset(q: &route::Queue, topic: &str) -> Result<i64, String> {
    let mut client = saturn_client::BlockingClient::connect(&q.addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let resp = client
        .invoke(
            protocol::RemotingCommand::request(protocol::RequestCode::GET_MAX_OFFSET, 0)
                .with_ext("topic", topic)
                .with_ext("queueId", q.queue_id),
        )
        .map_err(|e| e.to_string())?;
    resp.ext("offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            format!(
                "GET_MAX_OFFSET of {topic}/{} at {}: code {}",
                q.queue_id, q.addr, resp.code
            )
        })
}
