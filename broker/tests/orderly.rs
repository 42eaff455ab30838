//! Orderly consumers' queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ) and their expiry, and the
//! dead-letter rule for a group that holds locks, through the real broker.

mod common;

use std::time::Duration;

use common::*;
use namesrv::client::BlockingClient;
use protocol::body::{
    decode_json, encode_json, LockBatchRequestBody, LockBatchResponseBody, MessageQueue,
};
use protocol::{RemotingCommand, RequestCode};

/// A broker whose queue locks expire 1 s after their last renewal.
fn broker(name: &str) -> Broker {
    Broker::start_conf(
        name,
        "rocketmq.broker.rebalance.lockMaxLiveTime=1000\n",
        &[],
    )
}

fn mq(queue_id: i32) -> MessageQueue {
    MessageQueue {
        topic: "Ord".into(),
        broker_name: "saturn-0".into(),
        queue_id,
    }
}

fn body(client: &str, queues: &[i32]) -> bytes::Bytes {
    encode_json(&LockBatchRequestBody {
        consumer_group: "og".into(),
        client_id: client.into(),
        only_this_broker: true,
        mq_set: queues.iter().map(|q| mq(*q)).collect(),
    })
    .into()
}

/// The queues of `queues` the broker locked for `client`.
fn lock(c: &mut BlockingClient, client: &str, queues: &[i32]) -> Vec<i32> {
    let mut req = RemotingCommand::request(RequestCode::LOCK_BATCH_MQ, 0);
    req.body = body(client, queues);
    let resp = c.invoke(req).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let got: LockBatchResponseBody = decode_json(&resp.body).unwrap();
    let mut ids: Vec<i32> = got.lock_ok_mq_set.iter().map(|m| m.queue_id).collect();
    ids.sort();
    ids
}

fn unlock(c: &mut BlockingClient, client: &str, queues: &[i32]) {
    let mut req = RemotingCommand::request(RequestCode::UNLOCK_BATCH_MQ, 0);
    req.body = body(client, queues);
    assert_eq!(c.invoke(req).unwrap().code, 0);
}

#[test]
fn queue_locks_are_exclusive_renewed_released_and_expire() {
    let broker = broker("ord-locks");
    let mut c = broker.client(&broker.shards[0]);
    assert_eq!(lock(&mut c, "A", &[0, 1, 2]), vec![0, 1, 2]);
    assert_eq!(lock(&mut c, "B", &[0, 1, 2, 3]), vec![3], "held by A");
    // Only the holder releases a lock.
    unlock(&mut c, "B", &[0]);
    assert_eq!(lock(&mut c, "B", &[0]), Vec::<i32>::new());
    unlock(&mut c, "A", &[0]);
    assert_eq!(lock(&mut c, "B", &[0]), vec![0], "released by A");
    // A keeps renewing queue 1 and lets queue 2 lapse (a dead client stops renewing).
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(lock(&mut c, "A", &[1]), vec![1]);
    }
    assert_eq!(lock(&mut c, "B", &[1, 2]), vec![2], "2 expired, 1 renewed");
    assert_eq!(lock(&mut c, "A", &[2]), Vec::<i32>::new(), "now B's");
}

#[test]
fn a_group_holding_locks_sends_failed_messages_to_the_dlq_at_once() {
    let broker = broker("ord-dlq");
    let mut c = broker.client(&broker.shards[0]);
    let retry = |c: &mut BlockingClient| {
        let resp = send(c, "%RETRY%og", 0, b"again", &[]);
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
    };
    retry(&mut c);
    let (code, msgs, _) = pull(&mut c, "og", "%RETRY%og", 0, 0, 32, "*", 0);
    assert_eq!((code, msgs.len()), (0, 1), "no lock: an ordinary retry");
    assert_eq!(lock(&mut c, "A", &[0]), vec![0]);
    retry(&mut c);
    let (_, msgs, _) = pull(&mut c, "og", "%RETRY%og", 0, 1, 32, "*", 0);
    assert!(
        msgs.is_empty(),
        "a locked group's message went to the retry topic"
    );
    let (code, msgs, _) = pull(&mut c, "og", "%DLQ%og", 0, 0, 32, "*", 0);
    assert_eq!((code, msgs.len()), (0, 1), "the DLQ");
    // Once every lock of the group has expired, retries are ordinary again.
    std::thread::sleep(Duration::from_millis(1300));
    retry(&mut c);
    let (_, msgs, _) = pull(&mut c, "og", "%RETRY%og", 0, 1, 32, "*", 0);
    assert_eq!(msgs.len(), 1);
}
