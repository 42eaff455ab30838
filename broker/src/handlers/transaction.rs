//! END_TRANSACTION, half messages, and the check loop (CHECK_TRANSACTION_STATE to a producer
//! of the group). The records and the in-memory book are described in [`crate::transaction`].

use std::rc::Rc;

use bytes::Bytes;
use protocol::body::{perm, TopicConfig};
use protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
};
use protocol::message::{
    self, decode_properties, properties as prop, property_value, sysflag, RecordView, StoredMessage,
};
use protocol::{RemotingCommand, RequestCode};
use storage::MessageToStore;

use super::{HandlerError, Reply};
use crate::metadata::now_ms;
use crate::shard::Shard;
use crate::transaction::{
    self as tx, parse_op_body, Due, Pending, TxBook, CHECK_MAX_TOPIC, HALF_TOPIC, OP_TAG, OP_TOPIC,
    PROGRESS_GROUP,
};

/// Records read per call while scanning the half and op queues.
const SCAN_BATCH: usize = 256;
const SCAN_BYTES: usize = 4 << 20;
/// Half messages checked or discarded per round at most.
const MAX_PER_ROUND: usize = 4096;

/// Turns a send whose TRAN_MSG is true into its half message: stored in the half topic's queue
/// 0, invisible to consumers, with REAL_TOPIC, REAL_QID, `__transactionId__` and PGROUP.
pub fn into_half(m: &mut MessageToStore, producer_group: &str) {
    let mut props = decode_properties(&m.properties);
    props.insert(prop::REAL_TOPIC, std::mem::take(&mut m.topic));
    props.insert(prop::REAL_QID, m.queue_id.to_string());
    if !props.contains(prop::TRANSACTION_ID) {
        if let Some(id) = &m.uniq_key {
            props.insert(prop::TRANSACTION_ID, id.clone());
        }
    }
    if !props.contains(prop::PGROUP) {
        props.insert(prop::PGROUP, producer_group);
    }
    m.properties = props.encode();
    m.topic = HALF_TOPIC.to_owned();
    m.queue_id = 0;
    m.sys_flag = sysflag::reset_transaction_value(m.sys_flag, sysflag::TRANSACTION_NOT_TYPE);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Commit,
    Rollback,
    Discard,
}

/// END_TRANSACTION (37): commit re-stores the half message in its real topic, rollback only
/// records the decision; a half message is decided once. Usually oneway: a refusal is logged.
pub async fn end_transaction(
    shard: &Rc<Shard>,
    req: &RemotingCommand,
) -> Result<Reply, HandlerError> {
    let h = EndTransactionRequestHeader::decode(&req.ext_fields)?;
    let decision = match h.commit_or_rollback {
        sysflag::TRANSACTION_COMMIT_TYPE => Decision::Commit,
        sysflag::TRANSACTION_ROLLBACK_TYPE => Decision::Rollback,
        sysflag::TRANSACTION_NOT_TYPE => {
            // UNKNOW: the producer does not know yet; the check loop asks again.
            tracing::debug!(
                offset = h.tran_state_table_offset,
                "transaction state unknown"
            );
            return Ok(Reply::Cmd(req.success()));
        }
        other => {
            return Err(HandlerError::Invalid(format!(
                "commitOrRollback {other} is none of 0 (unknown), 8 (commit), 12 (rollback)"
            )))
        }
    };
    let result = decide(shard, &h, decision).await;
    if let Err(e) = &result {
        tracing::warn!(
            group = %h.producer_group,
            offset = h.tran_state_table_offset,
            from_check = h.from_transaction_check.unwrap_or(false),
            error = %e,
            "END_TRANSACTION refused"
        );
    }
    result.map(|()| Reply::Cmd(req.success()))
}

async fn decide(
    shard: &Rc<Shard>,
    h: &EndTransactionRequestHeader,
    decision: Decision,
) -> Result<(), HandlerError> {
    let offset = h.tran_state_table_offset;
    let taken = shard
        .tx
        .borrow_mut()
        .begin(offset)
        .map_err(|e| HandlerError::Invalid(e.to_string()))?;
    let stored = async {
        let half = read_half(shard, h.commit_log_offset, offset).await?;
        if half.property(prop::PGROUP) != Some(h.producer_group.as_str()) {
            return Err(HandlerError::Invalid(format!(
                "the producer group {} is not the half message's ({:?})",
                h.producer_group,
                half.property(prop::PGROUP)
            )));
        }
        store_decision(shard, &half, decision).await
    }
    .await;
    match stored {
        Ok(op_offset) => {
            shard.tx.borrow_mut().finish(offset, op_offset);
            Ok(())
        }
        Err(e) => {
            shard.tx.borrow_mut().abort(offset, taken);
            Err(e)
        }
    }
}

/// The half message at `phys_offset`, which must be the half queue's entry `queue_offset`.
async fn read_half(
    shard: &Shard,
    phys_offset: i64,
    queue_offset: i64,
) -> Result<StoredMessage, HandlerError> {
    let record = shard.store.read_record(phys_offset).await.map_err(|e| {
        HandlerError::Invalid(format!(
            "no prepared transaction message at commit log offset {phys_offset}: {e}"
        ))
    })?;
    let (msg, _) = StoredMessage::decode(&record)
        .map_err(|e| HandlerError::Invalid(format!("stored message is unreadable: {e}")))?;
    if msg.topic != HALF_TOPIC || msg.queue_offset != queue_offset {
        return Err(HandlerError::Invalid(format!(
            "the message at commit log offset {phys_offset} is not the half message at queue \
             offset {queue_offset} (topic {}, queue offset {})",
            msg.topic, msg.queue_offset
        )));
    }
    Ok(msg)
}

/// Appends what the decision stores (the real message for a commit, the copy in
/// TRANS_CHECK_MAX_TIME_TOPIC for a discard) and its op record, in one append; returns the op
/// record's queue offset.
async fn store_decision(
    shard: &Rc<Shard>,
    half: &StoredMessage,
    decision: Decision,
) -> Result<i64, HandlerError> {
    let mut batch = Vec::with_capacity(2);
    match decision {
        Decision::Commit => batch.push(committed(shard, half)?),
        Decision::Discard => batch.push(discarded(shard, half).await?),
        Decision::Rollback => {}
    }
    batch.push(op_record(shard, half.queue_offset));
    shard.store.writable().await;
    let appended = shard
        .store
        .append(&batch)
        .map_err(HandlerError::from_store)?;
    if decision == Decision::Commit {
        shard.stats.on_put(
            &batch[0].topic,
            crate::stats::MessageType::Transaction,
            1,
            batch[0].body.len() as u64,
            appended.records[0].size as u64,
        );
    }
    if shard.config.flush == crate::config::FlushDiskType::Sync {
        match shard.store.wait_durable(appended.end_offset).await {
            Ok(()) | Err(storage::StoreError::FlushTimeout { .. }) => {}
            Err(e) => return Err(HandlerError::from_store(e)),
        }
    }
    let op = appended.records.last().expect("the op record was appended");
    Ok(op.queue_offset)
}

/// The committed message: the half message back in its real topic and queue, TRAN_MSG,
/// REAL_TOPIC and REAL_QID dropped, the COMMIT type in its sysflag, and the half message's
/// commit-log offset as its prepared-transaction offset.
fn committed(shard: &Shard, half: &StoredMessage) -> Result<MessageToStore, HandlerError> {
    let mut props = decode_properties(&half.properties);
    let topic = props.remove(prop::REAL_TOPIC).unwrap_or_default();
    let queue_id: i32 = props
        .remove(prop::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(-1);
    props.remove(prop::TRAN_MSG);
    let config = shard
        .topic(&topic)
        .ok_or_else(|| HandlerError::TopicNotExist(topic.clone()))?;
    if !perm::is_writeable(config.perm) {
        return Err(HandlerError::NoPermission(format!(
            "the topic[{topic}] sending message is forbidden"
        )));
    }
    if queue_id < 0 || queue_id >= config.write_queue_nums.max(config.read_queue_nums) {
        return Err(HandlerError::Invalid(format!(
            "the half message's queue {queue_id} is not a queue of {topic}"
        )));
    }
    let sys_flag =
        sysflag::reset_transaction_value(half.sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
    Ok(copy_of(half, topic, queue_id, props.encode(), sys_flag))
}

/// The half message as stored in TRANS_CHECK_MAX_TIME_TOPIC once checked too often (its
/// properties kept, REAL_TOPIC included, with TRANSACTION_CHECK_TIMES).
async fn discarded(
    shard: &Rc<Shard>,
    half: &StoredMessage,
) -> Result<MessageToStore, HandlerError> {
    if shard.topic(CHECK_MAX_TOPIC).is_none() {
        let rw = perm::READ | perm::WRITE;
        shard
            .ensure_topic(TopicConfig::new(CHECK_MAX_TOPIC, 1, 1, rw))
            .await
            .ok_or(HandlerError::ShuttingDown)?;
    }
    let mut props = decode_properties(&half.properties);
    let checks = shard.config.transaction.max_checks;
    props.insert(prop::TRANSACTION_CHECK_TIMES, checks.to_string());
    let sys_flag = sysflag::reset_transaction_value(half.sys_flag, sysflag::TRANSACTION_NOT_TYPE);
    Ok(copy_of(
        half,
        CHECK_MAX_TOPIC.to_owned(),
        0,
        props.encode(),
        sys_flag,
    ))
}

fn copy_of(
    half: &StoredMessage,
    topic: String,
    queue_id: i32,
    properties: String,
    sys_flag: i32,
) -> MessageToStore {
    let tags_code = property_value(&properties, prop::TAGS).map_or(0, message::tag_hash);
    let keys = property_value(&properties, prop::KEYS)
        .unwrap_or_default()
        .to_owned();
    let uniq_key = property_value(&properties, prop::UNIQ_KEY).map(str::to_owned);
    MessageToStore {
        topic,
        queue_id,
        flag: half.flag,
        body: half.body.clone(),
        properties,
        sys_flag,
        born_timestamp: half.born_timestamp,
        born_host: half.born_host,
        reconsume_times: half.reconsume_times,
        prepared_transaction_offset: half.phys_offset,
        tags_code,
        keys,
        uniq_key,
    }
}

/// The op record deciding the half message at `half_offset`.
fn op_record(shard: &Shard, half_offset: i64) -> MessageToStore {
    MessageToStore {
        topic: OP_TOPIC.to_owned(),
        queue_id: 0,
        flag: 0,
        body: Bytes::from(half_offset.to_string()),
        properties: message::encode_properties(&[(prop::TAGS, OP_TAG)]),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: shard.store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code: message::tag_hash(OP_TAG),
        keys: String::new(),
        uniq_key: None,
    }
}

// ------------------------------------------------------------------------------ the book

/// Rebuilds the shard's book from the op queue (from `O`) before the shard serves anyone; the
/// half queue is read from `P` by the first check round.
pub async fn load(shard: &Rc<Shard>) {
    let (p, o) = {
        let offsets = shard.offsets.borrow();
        let p = offsets.get(HALF_TOPIC, PROGRESS_GROUP, 0).unwrap_or(0);
        let o = offsets.get(OP_TOPIC, PROGRESS_GROUP, 0).unwrap_or(0);
        (
            p.max(shard.store.min_offset(HALF_TOPIC, 0)),
            o.max(shard.store.min_offset(OP_TOPIC, 0)),
        )
    };
    let mut book = TxBook::starting_at(p);
    let mut cursor = o;
    let mut ops = 0usize;
    loop {
        let r = shard
            .store
            .get_messages(OP_TOPIC, 0, cursor, SCAN_BATCH, SCAN_BYTES, |_| true)
            .await;
        if r.records.is_empty() {
            break;
        }
        for record in &r.records {
            let Ok((view, _)) = RecordView::parse(record) else {
                continue;
            };
            if let Some(half) = parse_op_body(view.body) {
                book.on_op(half, view.queue_offset);
                ops += 1;
            }
        }
        cursor = r.next_begin_offset;
    }
    tracing::info!(
        shard = shard.id,
        half_from = p,
        op_from = o,
        ops,
        "transactions: op queue replayed"
    );
    *shard.tx.borrow_mut() = book;
}

/// Reads the half messages stored since the last round into the book.
async fn scan_halves(shard: &Rc<Shard>) {
    let timeout = shard.config.transaction.timeout;
    loop {
        let from = {
            let mut book = shard.tx.borrow_mut();
            book.skip_decided();
            book.read_to()
        };
        let r = shard
            .store
            .get_messages(HALF_TOPIC, 0, from, SCAN_BATCH, SCAN_BYTES, |_| true)
            .await;
        if r.records.is_empty() {
            if r.next_begin_offset > from {
                // Retention removed the head of the queue: those are gone.
                shard.tx.borrow_mut().skip_to(r.next_begin_offset);
            }
            return;
        }
        let mut book = shard.tx.borrow_mut();
        for record in &r.records {
            let Ok((view, _)) = RecordView::parse(record) else {
                continue;
            };
            let immunity = view.property(prop::CHECK_IMMUNITY_TIME_IN_SECONDS);
            book.on_half(
                view.queue_offset,
                Pending {
                    phys_offset: view.phys_offset,
                    store_ts: view.store_timestamp,
                    first_check_ms: tx::first_check_ms(immunity, timeout),
                    checks: 0,
                },
            );
        }
    }
}

/// The check loop: every transactionCheckInterval, read new half messages, check the due
/// ones, discard those checked too often, and persist the progress once it is durable.
pub async fn run_checks(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(shard.config.transaction.interval).await;
        scan_halves(&shard).await;
        check_round(&shard).await;
        persist_progress(&shard).await;
    }
}

/// Checks or discards the due half messages, oldest first, at most `MAX_PER_ROUND` of them (the
/// rest wait for the next round). Failures are logged once per round.
async fn check_round(shard: &Rc<Shard>) {
    let now = now_ms();
    let max = shard.config.transaction.max_checks;
    let due: Vec<(i64, Pending, Due)> = shard
        .tx
        .borrow()
        .pending()
        .map(|(q, p)| (q, p.clone(), p.due(now, max)))
        .filter(|(_, _, d)| *d != Due::Wait)
        .take(MAX_PER_ROUND)
        .collect();
    let (mut failed, mut first) = (0usize, None);
    for (offset, pending, due) in due {
        let outcome = match due {
            Due::Check => {
                shard.tx.borrow_mut().count_check(offset);
                send_check(shard, offset, &pending, pending.checks + 1).await
            }
            _ => discard(shard, offset, &pending).await,
        };
        if let Err(e) = outcome {
            failed += 1;
            first.get_or_insert((offset, e));
        }
    }
    if let Some((offset, e)) = first {
        tracing::warn!(shard = shard.id, failed, offset, error = %e, "transaction checks failed");
    }
}

/// CHECK_TRANSACTION_STATE (oneway) to one live producer of the half message's group; the
/// producer answers with END_TRANSACTION (fromTransactionCheck). The check counts even when no
/// producer of the group is connected. `nth`: this check's number, from 1.
async fn send_check(
    shard: &Rc<Shard>,
    offset: i64,
    p: &Pending,
    nth: u32,
) -> Result<(), HandlerError> {
    let half = read_half(shard, p.phys_offset, offset).await?;
    let group = half.property(prop::PGROUP).unwrap_or_default().to_owned();
    let conn = shard
        .clients
        .borrow()
        .producers
        .get(&group)
        .and_then(|channels| {
            channels
                .values()
                .find(|c| !c.conn.is_closed())
                .map(|c| c.conn.clone())
        });
    let Some(conn) = conn else {
        return Err(HandlerError::Invalid(format!(
            "no live producer of group {group} to check the half message with"
        )));
    };
    let cmd = check_request(shard, offset, &half, nth)?;
    conn.try_send_oneway(cmd);
    Ok(())
}

/// The check request: the header names the half message; the body is the message as the
/// producer sent it (its real topic and queue), encoded as a stored record, with
/// TRANSACTION_CHECK_TIMES set to `nth` (the half message itself is never re-written).
fn check_request(
    shard: &Shard,
    offset: i64,
    half: &StoredMessage,
    nth: u32,
) -> Result<RemotingCommand, HandlerError> {
    let real_topic = half.property(prop::REAL_TOPIC).unwrap_or_default();
    let mut props = decode_properties(&half.properties);
    props.insert(prop::TRANSACTION_CHECK_TIMES, nth.to_string());
    let props = props.encode();
    let mut input = half.as_input();
    input.properties = &props;
    input.topic = real_topic;
    input.queue_id = half
        .property(prop::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    let body = input
        .to_bytes()
        .map_err(|e| HandlerError::Invalid(format!("cannot encode the half message: {e}")))?;
    let uniq = half.property(prop::UNIQ_KEY).map(str::to_owned);
    let header = CheckTransactionStateRequestHeader {
        topic: Some(real_topic.to_owned()),
        tran_state_table_offset: offset,
        commit_log_offset: half.phys_offset,
        msg_id: uniq.clone(),
        transaction_id: half
            .property(prop::TRANSACTION_ID)
            .map(str::to_owned)
            .or(uniq),
        offset_msg_id: Some(message::offset_msg_id(shard.store_host, half.phys_offset)),
        broker_name: Some(shard.name.clone()),
    };
    let mut cmd = RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE, 0);
    header.encode(&mut cmd.ext_fields);
    Ok(cmd.with_body(body))
}

/// Moves a half message checked `transactionCheckMax` times to TRANS_CHECK_MAX_TIME_TOPIC.
async fn discard(shard: &Rc<Shard>, offset: i64, p: &Pending) -> Result<(), HandlerError> {
    let taken = match shard.tx.borrow_mut().begin(offset) {
        Ok(t) => t,
        Err(_) => return Ok(()), // decided meanwhile
    };
    let stored = async {
        let half = read_half(shard, p.phys_offset, offset).await?;
        store_decision(shard, &half, Decision::Discard).await
    }
    .await;
    match stored {
        Ok(op) => {
            shard.tx.borrow_mut().finish(offset, op);
            tracing::warn!(
                shard = shard.id,
                offset,
                "half message checked too often: moved to {CHECK_MAX_TOPIC}"
            );
            Ok(())
        }
        Err(e) => {
            shard.tx.borrow_mut().abort(offset, taken);
            Err(e)
        }
    }
}

/// Writes `P` and `O` as the progress group's offsets once every record they account for is
/// durable.
async fn persist_progress(shard: &Rc<Shard>) {
    let (p, o) = {
        let book = shard.tx.borrow();
        let op_end = shard.store.max_offset(OP_TOPIC, 0);
        (book.low_watermark(), book.op_low_watermark(op_end))
    };
    let unchanged = {
        let offsets = shard.offsets.borrow();
        offsets.get(HALF_TOPIC, PROGRESS_GROUP, 0) == Some(p)
            && offsets.get(OP_TOPIC, PROGRESS_GROUP, 0) == Some(o)
    };
    if unchanged {
        return;
    }
    let end = shard.store.commit_log_max_offset().max(0) as u64;
    if shard.store.wait_durable(end).await.is_err() {
        return;
    }
    let mut offsets = shard.offsets.borrow_mut();
    offsets.commit(HALF_TOPIC, PROGRESS_GROUP, 0, p);
    offsets.commit(OP_TOPIC, PROGRESS_GROUP, 0, o);
}

/// The tasks of the transaction service, started before the shard listens: the book rebuilt,
/// then the check loop.
pub fn start(
    shard: Rc<Shard>,
) -> futures_lite::future::BoxedLocal<Vec<glommio::task::JoinHandle<()>>> {
    Box::pin(async move {
        load(&shard).await;
        scan_halves(&shard).await;
        reconcile_committed(&shard).await;
        vec![glommio::spawn_local(run_checks(shard)).detach()]
    })
}

/// After a restart: an undecided half message whose committed copy is in its real topic (the
/// process died between the two records of one commit's append, the op record lost) is decided
/// with its op record now, so that a check answered COMMIT cannot store it twice. The copy is
/// found by the half message's UNIQ_KEY and its prepared-transaction offset.
async fn reconcile_committed(shard: &Rc<Shard>) {
    let pending: Vec<(i64, Pending)> = shard
        .tx
        .borrow()
        .pending()
        .map(|(q, p)| (q, p.clone()))
        .collect();
    let mut found = 0usize;
    for (offset, p) in pending {
        let Ok(half) = read_half(shard, p.phys_offset, offset).await else {
            continue;
        };
        let (Some(topic), Some(uniq)) = (
            half.property(prop::REAL_TOPIC),
            half.property(prop::UNIQ_KEY),
        ) else {
            continue;
        };
        let copies = shard
            .store
            .query_by_key(topic, uniq, 16, half.store_timestamp, i64::MAX)
            .await;
        let committed = copies.iter().any(|r| {
            RecordView::parse(r)
                .is_ok_and(|(v, _)| v.prepared_transaction_offset == half.phys_offset)
        });
        if !committed {
            continue;
        }
        if shard.tx.borrow_mut().begin(offset).is_err() {
            continue;
        }
        match store_decision(shard, &half, Decision::Rollback).await {
            // The op record alone: the committed copy is already stored.
            Ok(op) => {
                shard.tx.borrow_mut().finish(offset, op);
                found += 1;
            }
            Err(e) => {
                shard.tx.borrow_mut().abort(offset, Some(p));
                tracing::warn!(shard = shard.id, offset, error = %e, "transaction reconcile");
            }
        }
    }
    if found > 0 {
        tracing::warn!(
            shard = shard.id,
            found,
            "committed half messages without their op record: decided now"
        );
    }
}
