//! SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE and CONSUMER_SEND_MSG_BACK.

use std::fmt::Write as _;
use std::rc::Rc;

use bytes::Bytes;
use protocol::body::{perm, SubscriptionGroupConfig, TopicConfig};
use protocol::header::{CommandHeader, ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader};
use protocol::message::{self, properties as prop, sysflag};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

use super::{HandlerError, Reply};
use crate::conn::Conn;
use crate::metadata::{self, topic_name_error, DLQ_PREFIX, NOT_ALLOWED_SEND_TOPICS, RETRY_PREFIX};
use crate::shard::Shard;

/// Longest properties string a record can carry (its length is a short).
const MAX_PROPERTIES_LEN: usize = 32767;

/// A send's destination once the topic is resolved (retry topics that went on to the dead-letter
/// queue included).
struct Target {
    topic: String,
    queue_id: i32,
    config: Rc<TopicConfig>,
}

/// SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE: check the request, resolve the topic and
/// queue, turn the body into messages, store them and answer.
pub async fn send(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    req: &RemotingCommand,
) -> Result<Reply, HandlerError> {
    let mut h = SendMessageRequestHeader::decode_any(&req.ext_fields)?;
    let batch = req.request_code() == RequestCode::SEND_BATCH_MESSAGE || h.batch == Some(true);
    let (properties, found) = check_send(shard, req, &mut h, batch)?;
    let half = !batch && found.tran_msg;
    // Only a message with a scheduling property is looked at again (no second pass over the
    // properties of every send).
    let timed = !batch && found.may_schedule();
    let kind = found.message_type(half);
    let target = resolve_target(shard, conn, &mut h, batch).await?;
    let real_queue = target.queue_id;
    let entries = if batch {
        batch_entries(shard, &req.body)?
    } else {
        vec![(h.flag, req.body.clone(), properties, found)]
    };
    let (mut to_store, wait) = messages_to_store(shard, conn, &h, target, entries);
    if half {
        // A transactional send: stored as its half message, answered with its real queue.
        super::transaction::into_half(&mut to_store[0], &h.producer_group);
        let mut reply = store_and_answer(shard, req, to_store, wait, kind).await?;
        if let Reply::Cmd(resp) = &mut reply {
            resp.ext_fields.insert("queueId", real_queue.to_string());
        }
        return Ok(reply);
    }
    if timed {
        schedule(shard, &mut to_store[0])?;
    }
    store_and_answer(shard, req, to_store, wait, kind).await
}

/// What is checked before anything else: the topic's name, the sizes, no transactional batch,
/// no feature that is not served. Returns the properties, taken out of the header, and what
/// their one scan found (for a batch, the header's own properties; its entries are scanned
/// apart).
fn check_send(
    shard: &Shard,
    req: &RemotingCommand,
    h: &mut SendMessageRequestHeader,
    batch: bool,
) -> Result<(String, Scanned), HandlerError> {
    if let Some(reason) = topic_name_error(&h.topic) {
        return Err(HandlerError::Invalid(reason.to_string()));
    }
    if NOT_ALLOWED_SEND_TOPICS.contains(&h.topic.as_str()) {
        return Err(HandlerError::NoPermission(format!(
            "Sending message to topic[{}] is forbidden.",
            h.topic
        )));
    }
    let max_size = shard.live.max_message_size.get();
    if req.body.len() > max_size && !batch {
        return Err(HandlerError::MessageIllegal(format!(
            "the message body size {} is over the limit {max_size}",
            req.body.len(),
        )));
    }
    let properties = h.properties.take().unwrap_or_default();
    if properties.len() > MAX_PROPERTIES_LEN {
        return Err(HandlerError::MessageIllegal(format!(
            "the message properties length {} is over the limit {MAX_PROPERTIES_LEN}",
            properties.len()
        )));
    }
    let found = scan(&properties);
    if batch && found.tran_msg {
        return Err(HandlerError::MessageIllegal(
            "a batch cannot be a transactional (half) message".into(),
        ));
    }
    Ok((properties, found))
}

/// The topic (created from its template when allowed), the dead-letter queue for a retry that
/// failed too often, the permission, and the queue (picked when the producer left it open).
async fn resolve_target(
    shard: &Rc<Shard>,
    conn: &Conn,
    h: &mut SendMessageRequestHeader,
    batch: bool,
) -> Result<Target, HandlerError> {
    let config = find_or_create_topic(
        shard,
        &h.topic,
        &h.default_topic,
        h.default_topic_queue_nums,
    )
    .await?;
    let mut target = Target {
        topic: std::mem::take(&mut h.topic),
        queue_id: h.queue_id,
        config,
    };
    if let Some(group) = target.topic.strip_prefix(RETRY_PREFIX) {
        if batch {
            return Err(HandlerError::MessageIllegal(
                "batch messages cannot be sent to a retry topic".into(),
            ));
        }
        let group_config = ensure_group(shard, group).await?;
        let max = h
            .max_reconsume_times
            .unwrap_or(group_config.retry_max_times);
        // A group holding unexpired queue locks consumes in order: a message it sends back
        // goes to the dead-letter queue at once (a retry topic would break the order).
        if h.reconsume_times.unwrap_or(0) > max || super::client::group_has_live_lock(shard, group)
        {
            let dlq = dlq_topic(shard, group).await?;
            target.topic = dlq.topic_name.clone();
            target.queue_id = 0;
            target.config = dlq;
        }
    }
    let (topic, config) = (&target.topic, &target.config);
    if !perm::is_writeable(config.perm) {
        return Err(HandlerError::NoPermission(format!(
            "the topic[{topic}] sending message is forbidden"
        )));
    }
    let queues = config.write_queue_nums.max(config.read_queue_nums);
    if target.queue_id >= queues {
        return Err(HandlerError::Invalid(format!(
            "request queueId[{}] is illegal, topic: {topic} (it has {queues} queues) producer: {}",
            target.queue_id, conn.peer
        )));
    }
    if target.queue_id < 0 {
        target.queue_id = pick_queue(shard, config.write_queue_nums);
    }
    Ok(target)
}

/// One message to store: its flag, body, properties and what their scan found.
type Entry = (i32, Bytes, String, Scanned);

/// The entries of a batch body, each within the size bound and not delayed.
fn batch_entries(shard: &Shard, body: &Bytes) -> Result<Vec<Entry>, HandlerError> {
    let list = message::decode_batch_bytes(body)
        .map_err(|e| HandlerError::MessageIllegal(format!("bad batch body: {e}")))?;
    if list.is_empty() {
        return Err(HandlerError::MessageIllegal("the batch is empty".into()));
    }
    let mut entries = Vec::with_capacity(list.len());
    for entry in list {
        if entry.body.len() > shard.live.max_message_size.get() {
            return Err(HandlerError::MessageIllegal(
                "a message in the batch is over the size limit".into(),
            ));
        }
        let found = scan(&entry.properties);
        if found.delay.as_deref().is_some_and(|d| d.trim() != "0") {
            return Err(HandlerError::MessageIllegal(
                "batch messages cannot be delayed".into(),
            ));
        }
        if found.timers.iter().any(Option::is_some) || found.timer_del {
            return Err(HandlerError::MessageIllegal(
                "batch messages cannot be timer messages".into(),
            ));
        }
        entries.push((entry.flag, entry.body, entry.properties, found));
    }
    Ok(entries)
}

/// The records to append, with the properties the broker adds; and whether the producer waits
/// for durability (no message said WAIT=false).
fn messages_to_store(
    shard: &Shard,
    conn: &Conn,
    h: &SendMessageRequestHeader,
    target: Target,
    entries: Vec<Entry>,
) -> (Vec<storage::MessageToStore>, bool) {
    let mut sys_flag = h.sys_flag;
    if target.config.topic_filter_type == protocol::body::TopicFilterType::MULTI_TAG {
        sys_flag |= sysflag::MULTI_TAGS_FLAG;
    }
    let mut to_store = Vec::with_capacity(entries.len());
    let mut wait = true;
    let last = entries.len() - 1;
    let mut topic = Some(target.topic);
    for (i, (flag, body, props, mut found)) in entries.into_iter().enumerate() {
        let props = complete_properties(shard, props, &mut found);
        wait &= !found.wait_false;
        // The last message takes the topic; the others copy it.
        let topic = if i == last {
            topic.take().unwrap_or_default()
        } else {
            topic.clone().unwrap_or_default()
        };
        to_store.push(message_to_store(
            topic,
            target.queue_id,
            flag,
            body,
            props,
            found,
            sys_flag,
            h.born_timestamp,
            conn.peer,
            h.reconsume_times.unwrap_or(0),
        ));
    }
    (to_store, wait)
}

/// A delayed or timer message goes to its timer topic instead (see [`crate::timer`]); nothing in
/// a dead-letter queue is delayed.
fn schedule(shard: &Shard, msg: &mut storage::MessageToStore) -> Result<(), HandlerError> {
    if msg.topic.starts_with(DLQ_PREFIX) || !crate::timer::may_schedule(&msg.properties) {
        return Ok(());
    }
    let t = &shard.timers;
    let s = crate::timer::schedule_of(
        &msg.properties,
        &t.levels,
        t.max_delay_ms,
        metadata::now_ms(),
    )
    .map_err(HandlerError::MessageIllegal)?;
    crate::timer::divert(msg, s);
    Ok(())
}

/// Appends, waits for durability when asked, and builds the send response. A flush that did
/// not finish in time is FLUSH_DISK_TIMEOUT with the send result (the record is stored); a
/// failed or full disk is an error by its kind.
async fn store_and_answer(
    shard: &Rc<Shard>,
    req: &RemotingCommand,
    batch: Vec<storage::MessageToStore>,
    wait: bool,
    kind: crate::stats::MessageType,
) -> Result<Reply, HandlerError> {
    let queue_id = batch[0].queue_id;
    let started = std::time::Instant::now();
    // Backpressure: while the store has too much unflushed data, this
    // request waits (and with it, once its connection's window is full,
    // the reading of that socket) instead of being rejected.
    shard.store.writable().await;
    let appended = shard
        .store
        .append(&batch)
        .map_err(HandlerError::from_store)?;
    if crate::timer::is_timer_topic(&batch[0].topic) {
        shard.timers.arrived.notify();
    }
    shard
        .stats
        .append_latency
        .record_duration(started.elapsed());
    let body_bytes: usize = batch.iter().map(|m| m.body.len()).sum();
    let stored: i64 = appended.records.iter().map(|r| i64::from(r.size)).sum();
    shard.stats.on_put(
        &batch[0].topic,
        kind,
        batch.len() as u64,
        body_bytes as u64,
        stored as u64,
    );
    let mut code = ResponseCode::SUCCESS;
    if wait && shard.config.flush == crate::config::FlushDiskType::Sync {
        let waited = std::time::Instant::now();
        let durable = shard.store.wait_durable(appended.end_offset).await;
        shard.stats.flush_wait.record_duration(waited.elapsed());
        match durable {
            Ok(_) => {}
            Err(e @ storage::StoreError::FlushTimeout { .. }) => {
                tracing::warn!(error = %e, "sync flush did not complete in time");
                code = ResponseCode::FLUSH_DISK_TIMEOUT;
            }
            Err(e) => {
                // A failed or full disk: SERVICE_NOT_AVAILABLE naming the cause.
                tracing::warn!(error = %e, "sync flush failed");
                return Err(HandlerError::from_store(e));
            }
        }
    }
    if wait && shard.config.role == crate::config::BrokerRole::SyncMaster {
        let replica = crate::ha_link::wait_slave(shard, appended.end_offset).await;
        if replica != ResponseCode::SUCCESS {
            code = replica; // the replica's status overrides the flush's, as RocketMQ's does
        }
    }
    let mut resp = req.reply(code, None);
    // SendMessageResponseHeader's fields, written in place.
    let ext = &mut resp.ext_fields;
    ext.insert_with("msgId", |out| {
        for (i, r) in appended.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            message::push_offset_msg_id(out, shard.store_host, r.phys_offset);
        }
    });
    ext.insert_with("queueId", |out| {
        let _ = write!(out, "{queue_id}");
    });
    ext.insert_with("queueOffset", |out| {
        let _ = write!(out, "{}", appended.records[0].queue_offset);
    });
    ext.insert("MSG_REGION", &shard.config.region_id);
    ext.insert(
        "TRACE_ON",
        if shard.config.trace_on {
            "true"
        } else {
            "false"
        },
    );
    Ok(Reply::Cmd(resp))
}

/// What the broker reads from a message's properties, found in one pass (this runs for every
/// message sent). For each property the last occurrence counts, as in `property_value`.
#[derive(Default)]
pub(super) struct Scanned {
    tags_code: i64,
    keys: String,
    uniq_key: Option<String>,
    wait_false: bool,
    has_cluster: bool,
    has_region: bool,
    has_trace_on: bool,
    /// The special properties: each asks for more than storing the message.
    /// DELAY: a delay level (or, on a retry topic, the retry's level).
    pub(super) delay: Option<String>,
    /// TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS, in this order.
    pub(super) timers: [Option<String>; 3],
    /// TIMER_DEL_UNIQKEY: a 5.x timer cancellation.
    pub(super) timer_del: bool,
    /// TRAN_MSG=true: a transaction's half message.
    pub(super) tran_msg: bool,
    /// __SHARDINGKEY: a FIFO message (the metrics' message type).
    sharding_key: bool,
}

impl Scanned {
    /// RocketMQ's message type of a send (`half`: stored as a transaction's half message).
    fn message_type(&self, half: bool) -> crate::stats::MessageType {
        use crate::stats::MessageType;
        let delayed = self.delay.as_deref().is_some_and(|d| d.trim() != "0")
            || self.timers.iter().any(Option::is_some);
        if half {
            MessageType::Transaction
        } else if self.sharding_key {
            MessageType::Fifo
        } else if delayed {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }

    /// Whether a scheduling property (DELAY, a timer, a timer cancellation) is present: only
    /// then may the message go to a timer queue ([`crate::timer::schedule_of`]).
    pub(super) fn may_schedule(&self) -> bool {
        self.delay.is_some() || self.timers.iter().any(Option::is_some) || self.timer_del
    }
}

pub(super) fn scan(props: &str) -> Scanned {
    let mut found = Scanned::default();
    for (name, value) in message::properties::iter_pairs(props) {
        match name {
            prop::TAGS => found.tags_code = message::tag_hash(value),
            prop::KEYS => found.keys = value.to_owned(),
            prop::UNIQ_KEY => found.uniq_key = Some(value.to_owned()),
            prop::WAIT => found.wait_false = value.eq_ignore_ascii_case("false"),
            prop::CLUSTER => found.has_cluster = true,
            prop::MSG_REGION => found.has_region = true,
            prop::TRACE_ON => found.has_trace_on = true,
            prop::DELAY => found.delay = Some(value.to_owned()),
            prop::TIMER_DELIVER_MS => found.timers[0] = Some(value.to_owned()),
            prop::TIMER_DELAY_SEC => found.timers[1] = Some(value.to_owned()),
            prop::TIMER_DELAY_MS => found.timers[2] = Some(value.to_owned()),
            crate::timer::TIMER_DEL_UNIQKEY => found.timer_del = true,
            prop::TRAN_MSG => found.tran_msg = value.eq_ignore_ascii_case("true"),
            prop::SHARDING_KEY => found.sharding_key = true,
            _ => {}
        }
    }
    found
}

#[allow(clippy::too_many_arguments)]
fn message_to_store(
    topic: String,
    queue_id: i32,
    flag: i32,
    body: Bytes,
    properties: String,
    found: Scanned,
    sys_flag: i32,
    born_timestamp: i64,
    born_host: std::net::SocketAddr,
    reconsume_times: i32,
) -> storage::MessageToStore {
    storage::MessageToStore {
        topic,
        queue_id,
        flag,
        body,
        properties,
        sys_flag,
        born_timestamp,
        born_host,
        reconsume_times,
        prepared_transaction_offset: 0,
        tags_code: found.tags_code,
        keys: found.keys,
        uniq_key: found.uniq_key,
    }
}

/// Adds what the broker owes every stored message: a UNIQ_KEY when the
/// producer sent none, and the CLUSTER, MSG_REGION and TRACE_ON properties
/// (RocketMQ stores all three; the 5.x client drops a consumer's trace
/// records when the consumed message has no MSG_REGION). The three are the
/// shard's [`BrokerConfig::stored_properties`](crate::config::BrokerConfig::stored_properties), appended in one piece when the producer set
/// none of them (the usual case).
fn complete_properties(shard: &Shard, mut props: String, found: &mut Scanned) -> String {
    let needs_uniq = found.uniq_key.is_none();
    let (cluster, region, trace) = (found.has_cluster, found.has_region, found.has_trace_on);
    if !needs_uniq && cluster && region && trace {
        return props;
    }
    if !props.is_empty() && !props.ends_with('\u{2}') {
        props.push('\u{2}');
    }
    if needs_uniq {
        let id = shard.uniq.borrow_mut().next_id(metadata::now_ms());
        push_property(&mut props, prop::UNIQ_KEY, &id);
        found.uniq_key = Some(id);
    }
    if !cluster && !region && !trace {
        props.push_str(&shard.broker_properties);
    } else {
        let c = &shard.config;
        let values = [
            (cluster, prop::CLUSTER, c.cluster_name.as_str()),
            (region, prop::MSG_REGION, c.region_id.as_str()),
            (
                trace,
                prop::TRACE_ON,
                if c.trace_on { "true" } else { "false" },
            ),
        ];
        for (_, name, value) in values.into_iter().filter(|(has, ..)| !has) {
            push_property(&mut props, name, value);
        }
    }
    (found.has_cluster, found.has_region, found.has_trace_on) = (true, true, true);
    props
}

fn push_property(props: &mut String, name: &str, value: &str) {
    props.push_str(name);
    props.push('\u{1}');
    props.push_str(value);
    props.push('\u{2}');
}

fn pick_queue(shard: &Shard, write_queues: i32) -> i32 {
    let n = shard.next_queue.get();
    shard.next_queue.set(n.wrapping_add(1));
    (n % write_queues.max(1) as u32) as i32
}

/// The topic's config, auto-creating it from its template (TBW102) when
/// the template allows, and retry topics on demand.
pub(crate) async fn find_or_create_topic(
    shard: &Rc<Shard>,
    topic: &str,
    default_topic: &str,
    default_queue_nums: i32,
) -> Result<Rc<TopicConfig>, HandlerError> {
    if let Some(c) = shard.topic(topic) {
        return Ok(c);
    }
    let rw = perm::READ | perm::WRITE;
    let candidate = if topic.starts_with(RETRY_PREFIX) {
        Some(TopicConfig::new(topic, 1, 1, rw))
    } else {
        shard
            .topic(default_topic)
            .filter(|t| perm::is_inherited(t.perm))
            .map(|template| {
                let queues = default_queue_nums.clamp(1, template.write_queue_nums.max(1));
                let mut c = TopicConfig::new(topic, queues, queues, template.perm & !perm::INHERIT);
                c.topic_sys_flag = template.topic_sys_flag;
                c
            })
    };
    let candidate = candidate.ok_or_else(|| HandlerError::TopicNotExist(topic.to_owned()))?;
    shard
        .ensure_topic(candidate)
        .await
        .ok_or(HandlerError::ShuttingDown)
}

/// The group's config, created on demand when the broker allows it.
pub(crate) async fn ensure_group(
    shard: &Rc<Shard>,
    group: &str,
) -> Result<SubscriptionGroupConfig, HandlerError> {
    if let Some(g) = shard.group(group) {
        return Ok(g);
    }
    if !shard.live.auto_create_subscription_group.get() {
        return Err(HandlerError::GroupNotExist(group.to_owned()));
    }
    shard
        .ensure_group(SubscriptionGroupConfig::new(group))
        .await
        .ok_or(HandlerError::ShuttingDown)
}

async fn dlq_topic(shard: &Rc<Shard>, group: &str) -> Result<Rc<TopicConfig>, HandlerError> {
    let name = format!("{DLQ_PREFIX}{group}");
    if let Some(c) = shard.topic(&name) {
        return Ok(c);
    }
    shard
        .ensure_topic(TopicConfig::new(&name, 1, 1, perm::READ | perm::WRITE))
        .await
        .ok_or(HandlerError::ShuttingDown)
}

/// CONSUMER_SEND_MSG_BACK: re-stores a message the consumer failed to
/// process into the group's retry topic, or its dead-letter queue once it
/// failed too often.
pub async fn send_back(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    req: &RemotingCommand,
) -> Result<Reply, HandlerError> {
    let h = ConsumerSendMsgBackRequestHeader::decode(&req.ext_fields)?;
    let group = ensure_group(shard, &h.group).await?;
    if group.retry_queue_nums <= 0 {
        return Ok(Reply::Cmd(req.success()));
    }
    let record = shard.store.read_record(h.offset).await.map_err(|e| {
        HandlerError::Invalid(format!("look message by offset failed, {}: {e}", h.offset))
    })?;
    let (msg, _) = message::StoredMessage::decode(&record)
        .map_err(|e| HandlerError::Invalid(format!("stored message is unreadable: {e}")))?;
    let mut props = message::decode_properties(&msg.properties);
    if !props.contains(prop::RETRY_TOPIC) {
        props.insert(prop::RETRY_TOPIC, msg.topic.clone());
    }
    if !props.contains(prop::ORIGIN_MESSAGE_ID) {
        let origin = h
            .origin_msg_id
            .clone()
            .unwrap_or_else(|| message::offset_msg_id(msg.store_host, msg.phys_offset));
        props.insert(prop::ORIGIN_MESSAGE_ID, origin);
    }
    props.insert(prop::WAIT, "false");
    let max = if req.version >= protocol::code::VERSION_3_4_9 {
        h.max_reconsume_times.unwrap_or(group.retry_max_times)
    } else {
        group.retry_max_times
    };
    let (topic, queue_id) = if msg.reconsume_times >= max || h.delay_level < 0 {
        props.remove(prop::DELAY);
        (dlq_topic(shard, &h.group).await?.topic_name.clone(), 0)
    } else {
        let retry = format!("{RETRY_PREFIX}{}", h.group);
        let config = find_or_create_topic(shard, &retry, "", 1).await?;
        // The retry schedule: level 3 + reconsumeTimes unless the client asks for a level.
        let level = if h.delay_level > 0 {
            h.delay_level
        } else {
            3 + msg.reconsume_times
        };
        props.insert(prop::DELAY, level.to_string());
        let q = pick_queue(shard, group.retry_queue_nums.min(config.write_queue_nums));
        (retry, q)
    };
    let props = props.encode();
    let found = scan(&props);
    let timed = found.may_schedule();
    let kind = found.message_type(false);
    let mut stored = message_to_store(
        topic,
        queue_id,
        msg.flag,
        msg.body.clone(),
        props,
        found,
        msg.sys_flag,
        msg.born_timestamp,
        msg.born_host,
        msg.reconsume_times + 1,
    );
    let _ = conn;
    if timed {
        schedule(shard, &mut stored)?;
    }
    match store_and_answer(shard, req, vec![stored], false, kind).await? {
        Reply::Cmd(mut resp) if resp.code == 0 => {
            resp.ext_fields.clear();
            Ok(Reply::Cmd(resp))
        }
        other => Ok(other),
    }
}
