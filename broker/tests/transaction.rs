//! Transactional messages through the real broker: half messages, END_TRANSACTION decided once,
//! CHECK_TRANSACTION_STATE to a registered producer, and kill -9 with decisions and undecided
//! half messages in the log.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use namesrv::client::BlockingClient;
use protocol::message::decode_offset_msg_id;
use protocol::{RemotingCommand, RequestCode};

const COMMIT: i32 = 8;
const ROLLBACK: i32 = 12;
const GROUP: &str = "pg_tx";

/// A broker whose checks come 500 ms after a half message, every 300 ms, at most 50 times.
fn tx_broker(name: &str) -> Broker {
    tx_broker_with(name, 50)
}

fn tx_broker_with(name: &str, max_checks: u32) -> Broker {
    let conf = format!(
        "transactionTimeOut=500\ntransactionCheckInterval=300\ntransactionCheckMax={max_checks}\n"
    );
    Broker::start_conf(name, &conf, &["--flush", "SYNC_FLUSH"])
}

struct Half {
    queue_offset: i64,
    phys_offset: i64,
    queue_id: i32,
}

fn send_half(c: &mut BlockingClient, topic: &str, queue: i32, body: &str) -> Half {
    let resp = send(
        c,
        topic,
        queue,
        body.as_bytes(),
        &[("TRAN_MSG", "true"), ("PGROUP", GROUP), ("KEYS", body)],
    );
    assert_eq!(resp.code, 0, "half send: {:?}", resp.remark);
    let id = resp.ext("msgId").unwrap();
    Half {
        queue_offset: resp.ext("queueOffset").unwrap().parse().unwrap(),
        phys_offset: decode_offset_msg_id(id).unwrap().1,
        queue_id: resp.ext("queueId").unwrap().parse().unwrap(),
    }
}

fn end_request(half: &Half, decision: i32, group: &str, from_check: bool) -> RemotingCommand {
    RemotingCommand::request(RequestCode::END_TRANSACTION, 0)
        .with_ext("producerGroup", group)
        .with_ext("tranStateTableOffset", half.queue_offset)
        .with_ext("commitLogOffset", half.phys_offset)
        .with_ext("commitOrRollback", decision)
        .with_ext("fromTransactionCheck", from_check)
        .with_ext("msgId", "m")
}

fn end(c: &mut BlockingClient, half: &Half, decision: i32) -> RemotingCommand {
    c.invoke(end_request(half, decision, GROUP, false)).unwrap()
}

/// The bodies stored in the topic's queues (read by offset, as a consumer would).
fn bodies(c: &mut BlockingClient, topic: &str, queues: i32) -> Vec<String> {
    let mut out = Vec::new();
    for q in 0..queues {
        let (_, msgs, _) = pull(c, "reader", topic, q, 0, 32, "*", 0);
        out.extend(
            msgs.iter()
                .map(|m| String::from_utf8_lossy(&m.body).into_owned()),
        );
    }
    out.sort();
    out
}

/// The CHECK_TRANSACTION_STATE requests read on `c` within `wait`: (half-queue offset,
/// TRANSACTION_CHECK_TIMES).
fn checks_within(c: &mut BlockingClient, wait: Duration) -> Vec<(i64, u32)> {
    c.set_timeout(Duration::from_millis(200)).unwrap();
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let Ok(cmd) = c.read_command() else {
            continue;
        };
        if cmd.code == RequestCode::CHECK_TRANSACTION_STATE.num() {
            let offset = cmd.ext("tranStateTableOffset").unwrap().parse().unwrap();
            // The body is the message with its real topic, as the producer sent it.
            let (msg, _) = protocol::message::StoredMessage::decode(&cmd.body).unwrap();
            assert_eq!(msg.topic, "Tx");
            assert_eq!(msg.property("PGROUP"), Some(GROUP));
            let nth = msg.property("TRANSACTION_CHECK_TIMES").unwrap();
            out.push((offset, nth.parse().unwrap()));
        }
    }
    c.set_timeout(Duration::from_secs(10)).unwrap();
    out
}

#[test]
fn a_half_message_is_invisible_until_committed_and_decided_once() {
    let broker = tx_broker("tx-once");
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Tx", 2);
    let a = send_half(&mut c, "Tx", 1, "a");
    assert_eq!(a.queue_id, 1, "answered with the real queue");
    assert!(
        bodies(&mut c, "Tx", 2).is_empty(),
        "a half message is visible"
    );
    let pulled = c
        .invoke(pull_request(
            "g",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            0,
            0,
            32,
            "*",
            0,
        ))
        .unwrap();
    assert_ne!(pulled.code, 0, "the half topic is readable by clients");
    // Wrong group, wrong offsets: refused, nothing decided.
    let wrong = c.invoke(end_request(&a, COMMIT, "other", false)).unwrap();
    assert_ne!(wrong.code, 0);
    assert!(wrong.remark.unwrap().contains("producer group"));
    let bogus = Half {
        queue_offset: a.queue_offset + 7,
        ..a
    };
    assert_ne!(end(&mut c, &bogus, COMMIT).code, 0);
    let a = send_half(&mut c, "Tx", 1, "a2");
    assert_eq!(end(&mut c, &a, COMMIT).code, 0);
    for again in [COMMIT, ROLLBACK] {
        let r = end(&mut c, &a, again);
        assert_ne!(r.code, 0, "a second decision was accepted");
        assert!(r.remark.unwrap().contains("already decided"));
    }
    let b = send_half(&mut c, "Tx", 0, "b");
    assert_eq!(end(&mut c, &b, ROLLBACK).code, 0);
    assert_ne!(end(&mut c, &b, COMMIT).code, 0, "commit after rollback");
    assert_eq!(bodies(&mut c, "Tx", 2), vec!["a2".to_string()]);
}

#[test]
fn kill_9_keeps_decisions_and_checks_the_undecided_again() {
    // At once (nothing but the log), and after the progress offsets were persisted.
    for delay_ms in [0, 1200] {
        kill_run(delay_ms);
    }
}

fn kill_run(delay_ms: u64) {
    let mut broker = tx_broker(&format!("tx-kill-{delay_ms}"));
    let mut c = broker.client(&broker.shards[1]);
    create_topic(&mut c, "Tx", 2);
    let mut committed = BTreeSet::new();
    let mut undecided = Vec::new();
    for i in 0..12 {
        let h = send_half(&mut c, "Tx", i % 2, &format!("m{i}"));
        match i % 3 {
            0 => {
                assert_eq!(end(&mut c, &h, COMMIT).code, 0);
                committed.insert(format!("m{i}"));
            }
            1 => assert_eq!(end(&mut c, &h, ROLLBACK).code, 0),
            _ => undecided.push((h, format!("m{i}"))),
        }
    }
    // Decisions are durable when answered (SYNC_FLUSH); the progress offsets may or may not be
    // persisted yet: either way the op queue says what is decided.
    std::thread::sleep(Duration::from_millis(delay_ms));
    drop(c);
    broker.signal(libc::SIGKILL);
    broker.launch();
    let mut c = broker.client(&broker.shards[1]);
    producer_heartbeat(&mut c, "tx-test-client", GROUP);
    let checked: BTreeSet<i64> = checks_within(&mut c, Duration::from_secs(3))
        .into_iter()
        .map(|(offset, _)| offset)
        .collect();
    let want: BTreeSet<i64> = undecided.iter().map(|(h, _)| h.queue_offset).collect();
    assert_eq!(checked, want, "checked after the restart");
    // The producer's answers to the checks: commit one, roll back the next.
    for (i, (h, body)) in undecided.iter().enumerate() {
        let decision = if i % 2 == 0 { COMMIT } else { ROLLBACK };
        let r = c
            .invoke(end_request(h, decision, GROUP, true))
            .expect("end");
        assert_eq!(r.code, 0, "{:?}", r.remark);
        if decision == COMMIT {
            committed.insert(body.clone());
        }
    }
    let got: BTreeSet<String> = bodies(&mut c, "Tx", 2).into_iter().collect();
    assert_eq!(got, committed, "committed after a kill -9, each once");
    assert_eq!(bodies(&mut c, "Tx", 2).len(), committed.len(), "duplicates");
    // The book was rebuilt: the decisions made before the kill still hold.
    drop(c);
    broker.signal(libc::SIGKILL);
    broker.launch();
    let mut c = broker.client(&broker.shards[1]);
    producer_heartbeat(&mut c, "tx-test-client", GROUP);
    assert!(
        checks_within(&mut c, Duration::from_millis(1500)).is_empty(),
        "a decided half message was checked after the second restart"
    );
    assert_ne!(end(&mut c, &undecided[0].0, ROLLBACK).code, 0);
    let got: BTreeSet<String> = bodies(&mut c, "Tx", 2).into_iter().collect();
    assert_eq!(got, committed);
}

#[test]
fn an_unanswered_half_message_reaches_the_check_max_topic_once_across_a_kill() {
    let mut broker = tx_broker_with("tx-max", 3);
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Tx", 1);
    producer_heartbeat(&mut c, "tx-test-client", GROUP);
    let h = send_half(&mut c, "Tx", 0, "silent");
    let before = checks_within(&mut c, Duration::from_millis(900));
    assert!(
        !before.is_empty() && before.len() < 3,
        "checks before the kill: {before:?}"
    );
    drop(c);
    broker.signal(libc::SIGKILL);
    broker.launch();
    let mut c = broker.client(&broker.shards[0]);
    producer_heartbeat(&mut c, "tx-test-client", GROUP);
    // Check counts start again after a restart: three more, then the discard.
    let after = checks_within(&mut c, Duration::from_secs(3));
    let q = h.queue_offset;
    assert_eq!(
        after,
        vec![(q, 1), (q, 2), (q, 3)],
        "checks after the restart"
    );
    let parked = bodies(&mut c, "TRANS_CHECK_MAX_TIME_TOPIC", 1);
    assert_eq!(parked, vec!["silent".to_string()]);
    assert!(
        bodies(&mut c, "Tx", 1).is_empty(),
        "an undecided message was delivered"
    );
    let r = end(&mut c, &h, COMMIT);
    assert!(r.remark.unwrap_or_default().contains("already decided"));
}
