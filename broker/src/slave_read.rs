//! Which broker a consumer should pull from next (`suggestWhichBrokerId` of PULL_MESSAGE's
//! answer), after RocketMQ's `PullMessageProcessor` (4.9.x):
//!
//! * with `slaveReadEnable=false` (the default) every answer suggests the master (0), from a
//!   master and from a slave alike; a slave still serves the pull (so consumers whose master
//!   is down read from the slave: their client falls back to any broker of the name);
//! * with `slaveReadEnable=true` a pull that reads cold data suggests the group's
//!   `whichBrokerWhenConsumeSlowly` (default 1, the slave), any other the group's `brokerId`
//!   (default 0). RocketMQ's "cold" is "more than `accessMessageInMemoryMaxRatio` (40 %) of RAM
//!   behind the commit log's end"; Saturn's is "below the store's hot tail" (the pull reads
//!   from the segment files, `hotCacheBytes` behind the end at most);
//! * a slave does not move a consumer's offset: where the store would answer
//!   PULL_OFFSET_MOVED (the slave does not hold the offset asked, e.g. it is behind its master)
//!   a slave answers PULL_RETRY_IMMEDIATELY and suggests the group's `brokerId` (RocketMQ's
//!   behaviour with `offsetCheckInSlave=false`, its default).

use protocol::body::SubscriptionGroupConfig;
use protocol::message::RecordView;
use protocol::ResponseCode;
use storage::{GetResult, GetStatus};

use crate::config::BrokerRole;
use crate::shard::Shard;

/// RocketMQ's `MixAll.MASTER_ID`.
pub const MASTER_ID: i64 = 0;

/// The answer's code (changed on a slave as above) and the broker id to suggest.
pub fn suggest(
    shard: &Shard,
    group: &SubscriptionGroupConfig,
    result: &GetResult,
    code: ResponseCode,
) -> (ResponseCode, i64) {
    if shard.config.role == BrokerRole::Slave && code == ResponseCode::PULL_OFFSET_MOVED {
        return (ResponseCode::PULL_RETRY_IMMEDIATELY, group.broker_id);
    }
    if !shard.config.slave_read_enable {
        return (code, MASTER_ID);
    }
    if reads_cold(&shard.store, result) {
        (code, group.which_broker_when_consume_slowly)
    } else {
        (code, group.broker_id)
    }
}

/// Whether the first record the pull found was read from the segment files.
fn reads_cold(store: &storage::Store, result: &GetResult) -> bool {
    if result.status != GetStatus::Found {
        return false;
    }
    let Some(first) = result.records.first() else {
        return false;
    };
    RecordView::parse(first).is_ok_and(|(v, _)| store.is_cold(v.phys_offset as u64))
}
