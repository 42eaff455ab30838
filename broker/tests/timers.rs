//! Scheduled delivery through a real broker process on loopback: delay levels (a short
//! messageDelayLevel from broker.conf), 5.x timers, the horizon, the retry schedule of
//! CONSUMER_SEND_MSG_BACK and the dead-letter queue, GET_ALL_DELAY_OFFSET, the runtime figures,
//! and a kill -9 with many pending timers.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use namesrv::client::BlockingClient;
use protocol::message::{decode_properties, StoredMessage};
use protocol::{RemotingCommand, RequestCode};

/// Delivered within this of due (the test machine is shared; the bound of the issue, 100 ms at
/// p99, is measured by saturn-bench).
const LATE_MAX_MS: i64 = 1_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn start(name: &str, extra_conf: &str) -> Broker {
    start_with(name, extra_conf, &[])
}

fn start_with(name: &str, extra_conf: &str, flags: &[&str]) -> Broker {
    // The shared test disk can be over RocketMQ's 85 % (retention would delete what the tests
    // read).
    let conf = format!(
        "messageDelayLevel=300ms 600ms 900ms 1200ms\ndiskMaxUsedSpaceRatio=95\n{extra_conf}"
    );
    Broker::start_conf(name, &conf, flags)
}

/// Long-polls `topic`/`queue` from `offset` until a message comes (or `within` passes).
fn wait_message(
    c: &mut BlockingClient,
    topic: &str,
    queue: i32,
    offset: i64,
    within: Duration,
) -> Option<(StoredMessage, i64)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let (code, msgs, _) = pull(c, "watch", topic, queue, offset, 1, "*", 200);
        if code == 0 {
            return msgs.into_iter().next().map(|m| (m, now_ms()));
        }
    }
    None
}

fn assert_on_time(what: &str, due: i64, arrived: i64) {
    assert!(arrived >= due, "{what}: {} ms early", due - arrived);
    assert!(
        arrived - due <= LATE_MAX_MS,
        "{what}: {} ms late",
        arrived - due
    );
}

#[test]
fn delay_levels_timers_and_the_horizon() {
    let broker = start("timers-basic", "timerMaxDelaySec=3600\n");
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Delayed", 1);
    // A delay level: stored under SCHEDULE_TOPIC_XXXX, not visible before it is due.
    let sent_at = now_ms();
    let props = [
        ("TAGS", "tg"),
        ("KEYS", "k1 k2"),
        ("DELAY", "2"),
        ("UNIQ_KEY", "U1"),
    ];
    send_ok(&mut c, "Delayed", 0, b"level-2", &props);
    let (code, _, _) = pull(&mut c, "watch", "Delayed", 0, 0, 1, "*", 0);
    assert_ne!(code, 0, "a delayed message is visible at once");
    let (m, at) = wait_message(&mut c, "Delayed", 0, 0, Duration::from_secs(5)).expect("level 2");
    assert_on_time("level 2", sent_at + 600, at);
    assert_eq!(&m.body[..], b"level-2");
    let p = decode_properties(&m.properties);
    assert_eq!(
        (p.get("TAGS"), p.get("KEYS"), p.get("UNIQ_KEY")),
        (Some("tg"), Some("k1 k2"), Some("U1"))
    );
    assert_eq!(p.get("REAL_TOPIC"), Some("Delayed"));
    assert_eq!(p.get("DELAY"), None, "delivered without DELAY");
    // A level above the last is clamped to it.
    let sent_at = now_ms();
    send_ok(&mut c, "Delayed", 0, b"level-9", &[("DELAY", "9")]);
    let (_, at) = wait_message(&mut c, "Delayed", 0, 1, Duration::from_secs(5)).expect("level 9");
    assert_on_time("level 9 (clamped to 4)", sent_at + 1200, at);
    // 5.x timers: relative in ms and s, and absolute.
    let sent_at = now_ms();
    send_ok(&mut c, "Delayed", 0, b"ms", &[("TIMER_DELAY_MS", "700")]);
    let (m, at) = wait_message(&mut c, "Delayed", 0, 2, Duration::from_secs(5)).expect("ms");
    assert_on_time("TIMER_DELAY_MS", sent_at + 700, at);
    assert_eq!(&m.body[..], b"ms");
    let due = now_ms() + 800;
    let deliver = due.to_string();
    send_ok(
        &mut c,
        "Delayed",
        0,
        b"abs",
        &[("TIMER_DELIVER_MS", &deliver)],
    );
    let (_, at) = wait_message(&mut c, "Delayed", 0, 3, Duration::from_secs(5)).expect("abs");
    assert_on_time("TIMER_DELIVER_MS", due, at);
    let sent_at = now_ms();
    send_ok(&mut c, "Delayed", 0, b"sec", &[("TIMER_DELAY_SEC", "1")]);
    let (_, at) = wait_message(&mut c, "Delayed", 0, 4, Duration::from_secs(5)).expect("sec");
    assert_on_time("TIMER_DELAY_SEC", sent_at + 1000, at);
    // Beyond the horizon: a clear error, nothing stored.
    let resp = send(&mut c, "Delayed", 0, b"far", &[("TIMER_DELAY_SEC", "3601")]);
    assert_eq!(resp.code, 13, "{:?}", resp.remark);
    assert!(resp.remark.unwrap_or_default().contains("timerMaxDelaySec"));
    // GET_ALL_DELAY_OFFSET: RocketMQ's delayOffset.json, level → next offset.
    let resp = c
        .invoke(RemotingCommand::request(
            RequestCode::GET_ALL_DELAY_OFFSET,
            0,
        ))
        .unwrap();
    let body = String::from_utf8(resp.body.to_vec()).unwrap();
    assert_eq!(body, "{\"offsetTable\":{1:0,2:1,3:0,4:1}}");
    // The runtime figures (refreshed every 200 ms): a timer a minute ahead is pending.
    let far = (now_ms() + 60_000).to_string();
    send_ok(
        &mut c,
        "Delayed",
        0,
        b"later",
        &[("TIMER_DELIVER_MS", &far)],
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let info = loop {
        let info = runtime_info(&mut c);
        if info.contains("\"timerPendingCount\":\"1\"") || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for key in [
        "\"timerPendingCount\":\"1\"",
        "\"timerDueBacklog\":\"0\"",
        "\"scheduleMessageOffset_2\":\"1,1\"",
    ] {
        assert!(info.contains(key), "{key} in {info}");
    }
}

fn runtime_info(c: &mut BlockingClient) -> String {
    let resp = c
        .invoke(RemotingCommand::request(
            RequestCode::GET_BROKER_RUNTIME_INFO,
            0,
        ))
        .unwrap();
    String::from_utf8(resp.body.to_vec()).unwrap()
}

fn send_back(c: &mut BlockingClient, m: &StoredMessage, max: i32) -> RemotingCommand {
    let req = RemotingCommand::request(RequestCode::CONSUMER_SEND_MSG_BACK, 0)
        .with_ext("offset", m.phys_offset)
        .with_ext("group", "rg")
        .with_ext("delayLevel", 0)
        .with_ext("originTopic", "Work")
        .with_ext("maxReconsumeTimes", max);
    c.invoke(req).unwrap()
}

#[test]
fn retries_follow_the_schedule_then_reach_the_dlq() {
    let broker = start("timers-retry", "");
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Work", 1);
    send_ok(
        &mut c,
        "Work",
        0,
        b"job",
        &[("KEYS", "job-1"), ("TAGS", "t")],
    );
    let (code, msgs, _) = pull(&mut c, "rg", "Work", 0, 0, 1, "*", 0);
    assert_eq!(code, 0);
    let mut m = msgs.into_iter().next().unwrap();
    let origin = protocol::message::offset_msg_id(m.store_host, m.phys_offset);
    // Levels 3 + reconsumeTimes: 900 ms, then 1200 ms (the last level), with max 2.
    for (round, delay) in [(0, 900), (1, 1200)] {
        let sent_at = now_ms();
        assert_eq!(send_back(&mut c, &m, 2).code, 0);
        let (r, at) = wait_message(&mut c, "%RETRY%rg", 0, round, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("retry {round} not delivered"));
        assert_on_time(&format!("retry {round}"), sent_at + delay, at);
        assert_eq!(r.reconsume_times, round as i32 + 1);
        let p = decode_properties(&r.properties);
        assert_eq!(p.get("RETRY_TOPIC"), Some("Work"));
        assert_eq!(p.get("ORIGIN_MESSAGE_ID"), Some(origin.as_str()));
        assert_eq!(p.get("KEYS"), Some("job-1"));
        m = r;
    }
    // The maximum reached: to the dead-letter queue at once, intact.
    assert_eq!(send_back(&mut c, &m, 2).code, 0);
    let (d, _) = wait_message(&mut c, "%DLQ%rg", 0, 0, Duration::from_secs(2)).expect("DLQ");
    assert_eq!(&d.body[..], b"job");
    assert_eq!(d.reconsume_times, 3);
    let p = decode_properties(&d.properties);
    assert_eq!(
        (
            p.get("RETRY_TOPIC"),
            p.get("ORIGIN_MESSAGE_ID"),
            p.get("DELAY")
        ),
        (Some("Work"), Some(origin.as_str()), None)
    );
}

/// Sends `n` timers to `topic` (4 queues) from 16 connections, due spread over the 4 s from
/// `base` (ms); each body is "<i>:<due ms>". Returns when all are acknowledged.
fn send_timers(broker: &Broker, topic: &str, n: usize, base: i64) {
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let mut c = broker.client(&broker.shards[0]);
            let topic = topic.to_owned();
            std::thread::spawn(move || {
                for i in (t..n).step_by(16) {
                    let due = base + (i % 4000) as i64;
                    let body = format!("{i}:{due}");
                    let deliver = due.to_string();
                    let props = [("TIMER_DELIVER_MS", deliver.as_str())];
                    send_ok(&mut c, &topic, (i % 4) as i32, body.as_bytes(), &props);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Every delivery of `topic` so far: (index, due, store time of the delivered copy).
fn deliveries(
    c: &mut BlockingClient,
    topic: &str,
    next: &mut [i64; 4],
    out: &mut Vec<(usize, i64, i64)>,
) {
    for q in 0..4 {
        loop {
            let (code, msgs, nb) = pull(c, "crash", topic, q, next[q as usize], 256, "*", 0);
            if code != 0 || msgs.is_empty() {
                if std::env::var_os("TIMER_DEBUG").is_some() {
                    eprintln!("pull {topic}/{q} at {}: code {code}", next[q as usize]);
                }
                break;
            }
            for m in &msgs {
                let text = std::str::from_utf8(&m.body).unwrap();
                let (i, due) = text.split_once(':').unwrap();
                out.push((i.parse().unwrap(), due.parse().unwrap(), m.store_timestamp));
            }
            next[q as usize] = nb;
        }
    }
}

/// Acceptance 2 of issue 13: kill -9 with many pending timers, some falling due while the broker
/// is down; after the restart every timer is delivered, none early, and a timer is delivered twice
/// only if its first delivery was appended within the at-least-once window before the kill (the
/// deliveries after the last durable progress record: under synchronous flushing, as here, one
/// group commit; a margin of 1.5 s is allowed for the shared machine). TIMER_CRASH_N sets the count
/// (default 100,000).
#[test]
fn kill_9_with_pending_timers_loses_none() {
    let n: usize = std::env::var("TIMER_CRASH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // Synchronous flushing: an acknowledged send is durable, so a lost timer is the engine's.
    let mut broker = start_with("timers-crash", "", &["--flush", "SYNC_FLUSH"]);
    let topic = "Crash";
    {
        let mut c = broker.client(&broker.shards[0]);
        create_topic(&mut c, topic, 4);
    }
    // All due over 4 s from 20 s after the start (sending takes 5 to 15 s here); the broker is
    // killed 1 s after the first is due, while it delivers, and stays down 2 s.
    let t0 = Instant::now();
    let base = now_ms() + 20_000;
    send_timers(&broker, topic, n, base);
    let sent_in = t0.elapsed();
    std::thread::sleep(Duration::from_millis(
        (base + 1000 - now_ms()).clamp(100, 22_000) as u64,
    ));
    let killed_at = now_ms();
    broker.signal(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(2000));
    broker.launch();
    let mut c = broker.client(&broker.shards[0]);
    let (mut next, mut got) = ([0i64; 4], Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut distinct = std::collections::HashMap::new();
    while distinct.len() < n && Instant::now() < deadline {
        let from = got.len();
        deliveries(&mut c, topic, &mut next, &mut got);
        for &(i, due, at) in &got[from..] {
            distinct.entry(i).or_insert_with(Vec::new).push((due, at));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let missing: Vec<usize> = (0..n)
        .filter(|i| !distinct.contains_key(i))
        .take(10)
        .collect();
    assert_eq!(
        distinct.len(),
        n,
        "timers lost after kill -9, e.g. {missing:?}"
    );
    // Pending at the kill: those not delivered before it; some fell due while the broker was down.
    let before = distinct
        .values()
        .filter(|c| c.iter().any(|d| d.1 < killed_at))
        .count();
    let due_down = distinct
        .values()
        .filter(|c| c[0].0 > killed_at && c[0].0 < killed_at + 2000)
        .count();
    assert!(
        before > 0 && before < n && due_down > 0,
        "{before} delivered before the kill, {due_down} due while down"
    );
    let mut dups = 0;
    for (i, copies) in &distinct {
        for &(due, at) in copies {
            assert!(at >= due, "timer {i} delivered {} ms early", due - at);
        }
        if copies.len() > 1 {
            dups += copies.len() - 1;
            let first = copies.iter().map(|c| c.1).min().unwrap();
            assert!(
                first >= killed_at - 1500,
                "timer {i} delivered twice, first {} ms before the kill",
                killed_at - first
            );
        }
    }
    eprintln!(
        "{n} timers sent in {sent_in:?}; {} pending at the kill, {due_down} due while down; after \
         the restart all delivered, none early, {dups} delivered twice (inside the window before \
         the kill)",
        n - before
    );
}
