//! Connection costs and bounds, against the real broker binary on loopback: memory per idle
//! connection, the per-shard connection limit, the idle timeout and the per-connection byte
//! budget for requests in progress.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{create_topic, pull_request, Broker};
use namesrv::client::BlockingClient;
use protocol::{RemotingCommand, RequestCode};

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Raises this process's open-file limit to its hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit of our own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

fn small_request() -> RemotingCommand {
    RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", "NoSuchTopic")
        .with_ext("queueId", 0)
}

/// Opens `n` connections to `addr`, each served one request: what a client does before it
/// goes quiet.
fn open_served(addr: &str, n: usize) -> Vec<BlockingClient> {
    (0..n)
        .map(|i| {
            let mut c = BlockingClient::connect(addr, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            c.invoke(small_request())
                .unwrap_or_else(|e| panic!("request on connection {i}: {e}"));
            c
        })
        .collect()
}

/// Acceptance 3 of issue 12: 10,000 idle connections to one shard add at most 160 MB
/// (16 KB each) to the broker's resident memory. `SATURN_IDLE_CONNS` changes the count.
#[test]
fn idle_connections_cost_a_few_kb() {
    let n: usize = std::env::var("SATURN_IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let limit = raise_nofile();
    assert!(
        limit as usize > n + 200,
        "open-file hard limit {limit} is too low for {n} connections"
    );
    let b = Broker::start("idle-conns", &[]);
    let pid = b.child.as_ref().unwrap().id();
    let addr = b.shards[0].clone();
    // Warm up: whatever a first connection allocates once (tables, allocator pages) is not a
    // per-connection cost.
    drop(open_served(&addr, 200));
    std::thread::sleep(Duration::from_secs(2));
    let before = rss(pid);
    let started = Instant::now();
    let mut conns = open_served(&addr, n);
    std::thread::sleep(Duration::from_secs(2));
    let after = rss(pid);
    let per_conn = after.saturating_sub(before) / n as u64;
    println!(
        "{n} idle connections to one shard: RSS {:.1} MB -> {:.1} MB, {:.1} KB per connection \
         (opened and served in {:.1} s)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        per_conn as f64 / 1e3,
        started.elapsed().as_secs_f64() - 2.0,
    );
    // Every connection is still served.
    for (i, c) in conns.iter_mut().enumerate().step_by(97) {
        let resp = c.invoke(small_request()).unwrap();
        assert!(resp.is_response(), "connection {i}");
    }
    assert!(
        per_conn <= 16_000,
        "{per_conn} bytes per idle connection (at most 16 KB)"
    );
}

/// Whether the server closed `stream` within `within` (EOF or reset), reading nothing.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("unexpected bytes from the broker"),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connection_limit_per_shard() {
    let b = Broker::start("conn-limit", &["--max-connections", "3"]);
    let addr = b.shards[0].clone();
    let mut served = open_served(&addr, 3);
    // The fourth is closed as it is accepted.
    let mut fourth = TcpStream::connect(&addr).unwrap();
    assert!(closed_within(&mut fourth, Duration::from_secs(5)));
    // The limit is per shard: the other shard still serves.
    drop(open_served(&b.shards[1], 3));
    // Once one closes, a new connection is served again.
    drop(served.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut again = open_served(&addr, 1);
    for c in served.iter_mut().chain(again.iter_mut()) {
        assert!(c.invoke(small_request()).unwrap().is_response());
    }
}

#[test]
fn idle_connections_are_closed_after_the_timeout() {
    let b = Broker::start("conn-idle", &["--idle-timeout", "2"]);
    let addr = b.shards[0].clone();
    let mut idle = TcpStream::connect(&addr).unwrap();
    let mut busy = open_served(&addr, 1).pop().unwrap();
    let mut parked = open_served(&addr, 1).pop().unwrap();
    create_topic(&mut parked, "IdleT", 1);
    // A long poll of 5 s is in progress on `parked`: it is not idle, though silent.
    let mut pull = pull_request("g", "IdleT", 0, 0, 32, "*", 5000);
    pull.opaque = 77;
    parked.send(&pull).unwrap();
    // `busy` keeps talking while `idle` says nothing.
    let start = Instant::now();
    let mut idle_closed = None;
    while start.elapsed() < Duration::from_secs(4) || idle_closed.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "idle connection still open"
        );
        assert!(busy.invoke(small_request()).unwrap().is_response());
        if idle_closed.is_none() && closed_within(&mut idle, Duration::from_millis(300)) {
            idle_closed = Some(start.elapsed());
        }
    }
    let waited = idle_closed.unwrap();
    assert!(
        waited >= Duration::from_millis(1500),
        "closed after {waited:?} (timeout 2 s)"
    );
    parked.set_timeout(Duration::from_secs(10)).unwrap();
    let resp = parked.read_command().unwrap();
    assert_eq!(resp.opaque, 77, "the parked pull is answered, not cut off");
}

/// Requests in progress are weighed: beyond the byte budget the broker stops reading the
/// connection until some finish, as it does beyond the count.
#[test]
fn byte_budget_stops_reading_a_connection() {
    let b = Broker::start("conn-budget", &["--max-bytes-in-flight", "4096"]);
    let addr = b.shards[0].clone();
    let mut c = open_served(&addr, 1).pop().unwrap();
    create_topic(&mut c, "BudgetT", 1);
    c.set_timeout(Duration::from_secs(20)).unwrap();
    // Three long polls of 3 s, each padded to 1.5 KB: 4.5 KB in progress.
    for i in 0..3 {
        let mut pull = pull_request("g", "BudgetT", 0, 0, 32, "*", 3000);
        pull.opaque = 100 + i;
        pull.remark = Some("x".repeat(1500));
        c.send(&pull).unwrap();
    }
    let start = Instant::now();
    let mut probe = small_request();
    probe.opaque = 200;
    c.send(&probe).unwrap();
    let first = c.read_command().unwrap();
    let waited = start.elapsed();
    // The probe is read only once the third pull's bytes fit, i.e. after the first pull ended.
    assert_ne!(first.opaque, 200, "the probe overtook the parked pulls");
    assert!(
        waited >= Duration::from_millis(2000),
        "first answer after {waited:?}"
    );
    let mut seen = vec![first.opaque];
    while seen.len() < 4 {
        seen.push(c.read_command().unwrap().opaque);
    }
    seen.sort();
    assert_eq!(seen, vec![100, 101, 102, 200]);

    // Without the small budget the probe is answered at once beside parked pulls.
    let b2 = Broker::start("conn-budget-default", &[]);
    let mut c = open_served(&b2.shards[0], 1).pop().unwrap();
    create_topic(&mut c, "BudgetT", 1);
    for i in 0..3 {
        let mut pull = pull_request("g", "BudgetT", 0, 0, 32, "*", 3000);
        pull.opaque = 100 + i;
        pull.remark = Some("x".repeat(1500));
        c.send(&pull).unwrap();
    }
    let start = Instant::now();
    c.send(&probe).unwrap();
    assert_eq!(c.read_command().unwrap().opaque, 200);
    assert!(start.elapsed() < Duration::from_millis(1500));
}
