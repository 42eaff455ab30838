//! PULL_MESSAGE with long polling: a pull that finds nothing is parked on
//! its queue and answered by the next append to it or at its timeout. The
//! body is the stored records as they are.

use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::body::{perm, MessageModel, SubscriptionData};
use protocol::header::{CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader};
use protocol::message::pullflag;
use protocol::{RemotingCommand, ResponseCode};
use storage::GetStatus;

use super::{error, header, Reply};
use crate::shard::Shard;

/// The longest a pull is held, whatever the client asks (its own timeout is 30 s).
const MAX_SUSPEND: Duration = Duration::from_secs(20);
/// Records per pull, whatever the client asks.
const MAX_PULL_COUNT: usize = 1024;
/// Bytes per pull.
const MAX_PULL_BYTES: usize = 4 << 20;

pub async fn pull(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    let h = header!(PullMessageRequestHeader, req);
    let Some(group) = super::send::ensure_group(shard, &h.consumer_group).await else {
        return error(
            req,
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{}] does not exist", h.consumer_group),
        );
    };
    if !group.consume_enable {
        return error(
            req,
            ResponseCode::NO_PERMISSION,
            format!("subscription group no permission, {}", h.consumer_group),
        );
    }
    let Some(topic) = shard.topic(&h.topic) else {
        return error(
            req,
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", h.topic),
        );
    };
    if !perm::is_readable(topic.perm) {
        return error(
            req,
            ResponseCode::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        );
    }
    if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, topic.read_queue_nums
            ),
        );
    }

    let subscription = if pullflag::has_subscription_flag(h.sys_flag) {
        let expr = h.subscription.clone().unwrap_or_else(|| "*".into());
        let mut sub = SubscriptionData::build(&h.topic, &expr, h.sub_version);
        sub.expression_type = h.expression_type.clone();
        sub
    } else {
        let clients = shard.clients.borrow();
        let Some(info) = clients.consumers.get(&h.consumer_group) else {
            return error(
                req,
                ResponseCode::SUBSCRIPTION_NOT_EXIST,
                format!(
                    "the consumer's group info not exist, group: {}",
                    h.consumer_group
                ),
            );
        };
        if info.message_model == MessageModel::BROADCASTING && !group.consume_broadcast_enable {
            return error(
                req,
                ResponseCode::NO_PERMISSION,
                format!(
                    "the consumer group[{}] can not consume by broadcast way",
                    h.consumer_group
                ),
            );
        }
        let Some(sub) = info.subscriptions.get(&h.topic) else {
            return error(
                req,
                ResponseCode::SUBSCRIPTION_NOT_EXIST,
                format!(
                    "the consumer's subscription not exist, group: {} topic: {}",
                    h.consumer_group, h.topic
                ),
            );
        };
        if sub.sub_version < h.sub_version {
            return error(
                req,
                ResponseCode::SUBSCRIPTION_NOT_LATEST,
                format!(
                    "the consumer's subscription not latest, group: {}",
                    h.consumer_group
                ),
            );
        }
        sub.clone()
    };
    if !subscription.is_tag_type() {
        return error(
            req,
            ResponseCode::SYSTEM_ERROR,
            "The broker does not support consumer to filter message by SQL92",
        );
    }

    if pullflag::has_commit_offset_flag(h.sys_flag) && h.commit_offset >= 0 {
        shard
            .offsets
            .borrow_mut()
            .commit(&h.topic, &h.consumer_group, h.queue_id, h.commit_offset);
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
        let result = shard
            .store
            .get_messages(
                &h.topic,
                h.queue_id,
                h.queue_offset,
                max_count,
                max_bytes,
                |code| subscription.matches_tag_code(code),
            )
            .await;
        let (code, next) = map_status(&result, h.queue_offset);
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
            suggest_which_broker_id: 0,
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
