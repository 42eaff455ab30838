//! PULL_MESSAGE with long polling: a pull that finds nothing is parked on
//! its queue and answered by the next append to it or at its timeout. The
//! body is the stored records as they are.

use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::body::{perm, MessageModel, SubscriptionData, SubscriptionGroupConfig};
use protocol::header::{CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader};
use protocol::message::pullflag;
use protocol::sql92::Selector;
use protocol::{RemotingCommand, ResponseCode};
use storage::GetStatus;

use super::{HandlerError, Reply};
use crate::shard::Shard;

/// The longest a pull is held, whatever the client asks (its own timeout is 30 s).
const MAX_SUSPEND: Duration = Duration::from_secs(20);
/// Records per pull, whatever the client asks.
const MAX_PULL_COUNT: usize = 1024;
/// Bytes per pull.
const MAX_PULL_BYTES: usize = 4 << 20;

/// PULL_MESSAGE: check the group, topic and queue, find the subscription, commit the offset the
/// client reports, then read (long-polling when asked).
pub async fn pull(shard: &Rc<Shard>, req: &RemotingCommand) -> Result<Reply, HandlerError> {
    let h = PullMessageRequestHeader::decode(&req.ext_fields)?;
    let group = check_pull(shard, &h).await?;
    let subscription = subscription(shard, &h, &group)?;
    let selector = super::filter::selector(&subscription, shard.config.enable_property_filter)?;
    let sub = (&subscription, selector.as_deref(), &group);
    Ok(read_or_park(shard, req, &h, sub).await)
}

/// The group may consume, the topic exists and is readable, the queue is one of its.
async fn check_pull(
    shard: &Rc<Shard>,
    h: &PullMessageRequestHeader,
) -> Result<SubscriptionGroupConfig, HandlerError> {
    let Ok(group) = super::send::ensure_group(shard, &h.consumer_group).await else {
        return Err(HandlerError::Refused(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{}] does not exist", h.consumer_group),
        ));
    };
    if !group.consume_enable {
        return Err(HandlerError::NoPermission(format!(
            "subscription group no permission, {}",
            h.consumer_group
        )));
    }
    let Some(topic) = shard.topic(&h.topic) else {
        return Err(HandlerError::TopicNotExist(h.topic.clone()));
    };
    if !perm::is_readable(topic.perm) {
        return Err(HandlerError::NoPermission(format!(
            "the topic[{}] pulling message is forbidden",
            h.topic
        )));
    }
    if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
        return Err(HandlerError::Invalid(format!(
            "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
            h.queue_id, h.topic, topic.read_queue_nums
        )));
    }
    Ok(group)
}

/// The subscription the pull filters with: carried in the request, or registered by the
/// consumer's heartbeat (and at least as recent as the request says).
fn subscription(
    shard: &Shard,
    h: &PullMessageRequestHeader,
    group: &SubscriptionGroupConfig,
) -> Result<SubscriptionData, HandlerError> {
    let refused = |code, remark| Err(HandlerError::Refused(code, remark));
    if pullflag::has_subscription_flag(h.sys_flag) {
        let expr = h.subscription.clone().unwrap_or_else(|| "*".into());
        let mut sub = SubscriptionData::build(&h.topic, &expr, h.sub_version);
        sub.expression_type = h.expression_type.clone();
        return Ok(sub);
    }
    let clients = shard.clients.borrow();
    let group_name = &h.consumer_group;
    let Some(info) = clients.consumers.get(group_name) else {
        return refused(
            ResponseCode::SUBSCRIPTION_NOT_EXIST,
            format!("the consumer's group info not exist, group: {group_name}"),
        );
    };
    if info.message_model == MessageModel::BROADCASTING && !group.consume_broadcast_enable {
        return Err(HandlerError::NoPermission(format!(
            "the consumer group[{group_name}] can not consume by broadcast way"
        )));
    }
    let Some(sub) = info.subscriptions.get(&h.topic) else {
        return refused(
            ResponseCode::SUBSCRIPTION_NOT_EXIST,
            format!(
                "the consumer's subscription not exist, group: {group_name} topic: {}",
                h.topic
            ),
        );
    };
    if sub.sub_version < h.sub_version {
        return refused(
            ResponseCode::SUBSCRIPTION_NOT_LATEST,
            format!("the consumer's subscription not latest, group: {group_name}"),
        );
    }
    Ok(sub.clone())
}

/// Commits the reported offset, reads, and parks on the queue while nothing is found and the
/// client asked to wait; answers with the stored records as they are.
async fn read_or_park(
    shard: &Rc<Shard>,
    req: &RemotingCommand,
    h: &PullMessageRequestHeader,
    (subscription, selector, group): (
        &SubscriptionData,
        Option<&Selector>,
        &SubscriptionGroupConfig,
    ),
) -> Reply {
    if pullflag::has_commit_offset_flag(h.sys_flag) && h.commit_offset >= 0 {
        let (topic, group) = (&h.topic, &h.consumer_group);
        crate::replstate::commit(shard, topic, group, h.queue_id, h.commit_offset, false);
    }

    let max_count = (h.max_msg_nums.max(1) as usize).min(MAX_PULL_COUNT);
    let max_bytes = h
        .max_msg_bytes
        .filter(|b| *b > 0)
        .map(|b| b as usize)
        .unwrap_or(MAX_PULL_BYTES)
        .min(MAX_PULL_BYTES);
    let suspend = pullflag::has_suspend_flag(h.sys_flag);
    let hold = Duration::from_millis(h.suspend_timeout_millis.max(0) as u64).min(MAX_SUSPEND);
    let deadline = Instant::now() + hold;

    loop {
        // Register interest before reading, so an append between the read
        // and the wait is not missed.
        let woken = shard.store.wait_for_append(&h.topic, h.queue_id);
        let mut result = shard
            .store
            .get_messages(
                &h.topic,
                h.queue_id,
                h.queue_offset,
                max_count,
                max_bytes,
                |code| selector.is_some() || subscription.matches_tag_code(code),
            )
            .await;
        if let Some(selector) = selector {
            select(selector, &mut result);
        }
        let (code, next) = map_status(&result, h.queue_offset);
        let (code, suggest) = crate::slave_read::suggest(shard, group, &result, code);
        let now = Instant::now();
        if code == ResponseCode::PULL_NOT_FOUND && suspend && now < deadline {
            let timer = glommio::timer::sleep(deadline - now);
            futures_lite::future::or(woken, timer).await;
            continue;
        }
        let mut resp = req.reply(
            code,
            Some(crate::storeext::status_name(result.status).to_owned()),
        );
        PullMessageResponseHeader {
            suggest_which_broker_id: suggest,
            next_begin_offset: next,
            min_offset: result.min_offset,
            max_offset: result.max_offset,
        }
        .encode(&mut resp.ext_fields);
        return if code == ResponseCode::SUCCESS {
            shard.stats.on_get(
                &h.topic,
                &h.consumer_group,
                result.records.len() as u64,
                result.total_bytes() as u64,
            );
            Reply::Parts(resp, result.records)
        } else {
            Reply::Cmd(resp)
        };
    }
}

/// Drops the records an SQL92 selector does not select; when none is left the pull answers as
/// RocketMQ's NO_MATCHED_MESSAGE (PULL_RETRY_IMMEDIATELY with the offset after the records read),
/// so the consumer moves past them.
fn select(selector: &Selector, result: &mut storage::GetResult) {
    if result.status != GetStatus::Found {
        return;
    }
    super::filter::retain_selected(selector, &mut result.records);
    if result.records.is_empty() {
        result.status = GetStatus::NoMatchedMessage;
    }
}

/// RocketMQ's mapping of store results to pull response codes.
fn map_status(result: &storage::GetResult, requested: i64) -> (ResponseCode, i64) {
    use ResponseCode as R;
    match result.status {
        GetStatus::Found => (R::SUCCESS, result.next_begin_offset),
        GetStatus::NoMatchedMessage | GetStatus::MessageWasRemoving => {
            (R::PULL_RETRY_IMMEDIATELY, result.next_begin_offset)
        }
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue => {
            if requested == 0 {
                (R::PULL_NOT_FOUND, 0)
            } else {
                (R::PULL_OFFSET_MOVED, result.next_begin_offset)
            }
        }
        GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => {
            (R::PULL_OFFSET_MOVED, result.next_begin_offset)
        }
        GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => {
            (R::PULL_NOT_FOUND, result.next_begin_offset)
        }
    }
}
