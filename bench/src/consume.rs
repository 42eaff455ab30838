//! The consuming side: pull consumers over every queue of a topic, with
//! long polling, one connection per broker and one pull in flight per
//! queue. Latency is end to end: from the producer's send time written in
//! the body (bench messages) or the born timestamp, to receipt.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use protocol::header::{CommandHeader, PullMessageRequestHeader};
use protocol::message::{pullflag, RecordView};
use protocol::{
    CommandDecoder, RemotingCommand, RequestCode, ResponseCode, DEFAULT_MAX_FRAME_SIZE,
};

use crate::produce::{check_body, now_us};
use crate::route::Queue;
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub struct ConsumeOpts {
    pub topic: String,
    pub group: String,
    pub duration: Option<Duration>,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop once every queue reached the max offset it had at start.
    pub drain: bool,
    pub pull_batch: i32,
    /// Check every body and count distinct sequence numbers.
    pub verify: bool,
    /// Timer workload: bodies hold due times; count records stored before them.
    pub timers: bool,
}

pub struct Shared {
    pub opts: ConsumeOpts,
    pub stop: Cell<bool>,
    pub stats: RefCell<Stats>,
    /// Sequence numbers seen (with `verify`).
    pub seen: RefCell<HashSet<u64>>,
    pub bad_bodies: Cell<u64>,
    pub duplicates: Cell<u64>,
    /// Queues still short of their target offset (with `drain`).
    pub undrained: Cell<usize>,
}

struct QueueState {
    queue: Queue,
    offset: i64,
    target: i64,
}

fn pull_request(topic: &str, group: &str, q: &QueueState, max: i32, opaque: i32) -> bytes::Bytes {
    let header = PullMessageRequestHeader {
        consumer_group: group.to_owned(),
        topic: topic.to_owned(),
        queue_id: q.queue.queue_id,
        queue_offset: q.offset,
        max_msg_nums: max,
        sys_flag: pullflag::FLAG_SUSPEND | pullflag::FLAG_SUBSCRIPTION,
        commit_offset: 0,
        suspend_timeout_millis: 1000,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
    };
    let mut req = RemotingCommand::request(RequestCode::PULL_MESSAGE, opaque);
    req.language = protocol::LanguageCode::JAVA;
    header.encode(&mut req.ext_fields);
    req.to_bytes()
}

/// Queues the next pull of queue `i`, remembering which queue `opaque` belongs to.
async fn send_pull(
    tx: &local_channel::LocalSender<bytes::Bytes>,
    opts: &ConsumeOpts,
    st: &QueueState,
    by_opaque: &mut HashMap<i32, usize>,
    i: usize,
    opaque: i32,
) {
    by_opaque.insert(opaque, i);
    let _ = tx
        .send(pull_request(
            &opts.topic,
            &opts.group,
            st,
            opts.pull_batch,
            opaque,
        ))
        .await;
}

/// Pulls every queue of one broker over one connection.
pub async fn run_broker(shared: Rc<Shared>, addr: String, queues: Vec<(Queue, i64, i64)>) {
    let stream = match TcpStream::connect(addr.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("saturn-bench: cannot connect to {addr}: {e}");
            shared.stats.borrow_mut().error(-1);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (tx, rx) = local_channel::new_bounded::<bytes::Bytes>(4096);
    let writer_task = glommio::spawn_local(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
    })
    .detach();

    let opts = &shared.opts;
    let mut states: Vec<QueueState> = queues
        .into_iter()
        .map(|(queue, start, target)| QueueState {
            queue,
            offset: start,
            target,
        })
        .collect();
    let mut by_opaque: HashMap<i32, usize> = HashMap::new();
    let mut opaque = 1i32;
    for (i, st) in states.iter().enumerate() {
        if opts.drain && st.offset >= st.target {
            continue;
        }
        send_pull(&tx, opts, st, &mut by_opaque, i, opaque).await;
        opaque += 1;
    }
    let mut decoder = CommandDecoder::new(DEFAULT_MAX_FRAME_SIZE);
    let mut chunk = vec![0u8; 1 << 20];
    'read: while !by_opaque.is_empty() {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.extend(&chunk[..n]);
        loop {
            let cmd = match decoder.next_command() {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("saturn-bench: {e}; closing the connection");
                    shared.stats.borrow_mut().error(-1);
                    break 'read;
                }
            };
            let Some(i) = by_opaque.remove(&cmd.opaque) else {
                continue;
            };
            let st = &mut states[i];
            on_answer(&shared, st, &cmd).await;
            if !pull_again(&shared, st) {
                continue;
            }
            send_pull(&tx, opts, st, &mut by_opaque, i, opaque).await;
            opaque = opaque.wrapping_add(1).max(1);
        }
        if shared.stop.get() {
            // Parked pulls expire on the broker; we are done.
            break;
        }
    }
    drop(tx);
    writer_task.cancel();
}

/// A pull's answer for `st`: its records counted, the queue's offset moved on; an error is
/// counted and followed by a short pause.
async fn on_answer(shared: &Shared, st: &mut QueueState, cmd: &RemotingCommand) {
    let next: i64 = cmd
        .ext("nextBeginOffset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(st.offset);
    match ResponseCode::from_num(cmd.code) {
        ResponseCode::SUCCESS => {
            count_records(shared, &cmd.body);
            st.offset = next;
        }
        ResponseCode::PULL_NOT_FOUND
        | ResponseCode::PULL_RETRY_IMMEDIATELY
        | ResponseCode::PULL_OFFSET_MOVED => {
            st.offset = next;
        }
        other => {
            shared.stats.borrow_mut().error(other.num());
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Counts the records of a pull's body: messages, bytes, latency (from the send time in a
/// bench body, else the born timestamp), and with `verify` bad bodies and duplicates.
fn count_records(shared: &Shared, body: &[u8]) {
    let received = now_us();
    let mut stats = shared.stats.borrow_mut();
    stats.requests += 1;
    let mut pos = 0;
    while pos < body.len() {
        let Ok((rec, size)) = RecordView::parse(&body[pos..]) else {
            stats.error(-2);
            break;
        };
        pos += size;
        stats.messages += 1;
        stats.bytes += rec.body.len() as u64;
        *stats.per_sec.entry(received / 1_000_000).or_default() += 1;
        let sent_us = match check_body(rec.body) {
            Some((seq, sent_us)) => {
                // A timer workload's body holds the due time: stored before it is early.
                if shared.opts.timers && (rec.store_timestamp as u64) * 1000 < sent_us {
                    stats.early += 1;
                }
                if shared.opts.verify && !shared.seen.borrow_mut().insert(seq) {
                    shared.duplicates.set(shared.duplicates.get() + 1);
                }
                sent_us
            }
            None => {
                if shared.opts.verify {
                    shared.bad_bodies.set(shared.bad_bodies.get() + 1);
                }
                (rec.born_timestamp.max(0) as u64) * 1000
            }
        };
        stats.record_latency(Duration::from_micros(received.saturating_sub(sent_us)));
    }
}

/// After an answer for `st`: whether to pull it again (not once the run stops or, with
/// `drain`, the queue reached its target; the last drained queue stops the run).
fn pull_again(shared: &Shared, st: &QueueState) -> bool {
    let opts = &shared.opts;
    let total = shared.stats.borrow().messages;
    if opts.count.is_some_and(|c| total >= c) {
        shared.stop.set(true);
    }
    if opts.drain && st.offset >= st.target {
        shared
            .undrained
            .set(shared.undrained.get().saturating_sub(1));
        if shared.undrained.get() == 0 {
            shared.stop.set(true);
        }
        return false;
    }
    !shared.stop.get()
}
