//! What a slave needs beyond the messages travels with the log: consumer offsets, topic and
//! subscription-group configurations are written by the master as small state records in its
//! own commit log (topic [`STATE_TOPIC`], queue 0), so they reach the slave in the same byte
//! stream, in order with the messages, and are applied by the slave as it reads them.
//!
//! **Master.** Once a second (the shard's housekeeping tick), when a slave is connected, shard
//! i writes one record of the offsets its consumers committed since the previous record (none
//! when nothing changed). Shard 0 writes a record for each topic or group created, updated or
//! deleted. When a slave connects, the next tick writes the whole state (every offset of the
//! shard; every topic and group on shard 0), so a slave that joins, or comes back, starts from
//! the whole of it. Records hold at most [`CHUNK`] entries each. Lag bound: an offset committed
//! on the master reaches the slave's log within one tick (≤ 1 s) plus replication.
//!
//! **Slave.** Each shard reads the state queue of its replicated log from its start (which is
//! recovery: the records are in the slave's own log after a restart) and applies each record:
//! offsets into its table, configurations through its control thread.
//!
//! **Offsets committed on a slave** (UPDATE_CONSUMER_OFFSET, or PULL's commitOffset, while a
//! consumer reads from the slave) are kept in the slave's table and marked as its own (the marks
//! are kept in `slaveOffsets.json` beside `consumerOffset.json`, so a restart keeps them); every
//! second the slave sends them to its master (the `masterAddr` a name server answered its
//! registration) as UPDATE_CONSUMER_OFFSET with [`FROM_SLAVE`] set. The rule: the master keeps
//! the larger of its own offset and the slave's for that group and queue, and the slave keeps
//! its own value until a state record from the master carries one at least as large (a master
//! that restarts with older offsets never moves the slave's back, and its next record after the
//! forward carries the slave's). A reset of offsets to an earlier position made on the master
//! while a slave holds a larger unconfirmed value is therefore undone by the forward.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use protocol::body::{SubscriptionGroupConfig, TopicConfig};
use protocol::header::{CommandHeader, UpdateConsumerOffsetRequestHeader};
use protocol::message::StoredMessage;
use protocol::{RemotingCommand, RequestCode};
use serde::{Deserialize, Serialize};

use crate::config::BrokerRole;
use crate::control::ShardEvent;
use crate::offsets::Entry;
use crate::shard::Shard;

/// Saturn's own topic of state records (one queue per shard's log).
pub use crate::metadata::STATE_TOPIC;
/// The UPDATE_CONSUMER_OFFSET field a slave sets when it forwards an offset committed on it.
pub const FROM_SLAVE: &str = "saturnFromSlave";
/// Entries per record.
const CHUNK: usize = 1000;
/// A forwarded offset not confirmed by the master is sent again after this.
const FORWARD_AGAIN: Duration = Duration::from_secs(1);

/// One state record (the body, JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum StateRecord {
    /// (`topic@group`, queue, offset) entries.
    Offsets {
        offsets: Vec<Entry>,
    },
    Topics {
        put: Vec<TopicConfig>,
    },
    TopicDeleted {
        topic: String,
    },
    Groups {
        put: Vec<SubscriptionGroupConfig>,
    },
    GroupDeleted {
        group: String,
    },
}

/// Commits a consumer offset: on a slave as its own (forwarded to the master); on a master
/// from a slave's forward as the larger of both; else as it is.
pub fn commit(shard: &Shard, topic: &str, group: &str, queue: i32, offset: i64, from_slave: bool) {
    let mut table = shard.offsets.borrow_mut();
    if shard.config.role == BrokerRole::Slave {
        table.commit_local(topic, group, queue, offset);
    } else if from_slave {
        table.commit_from_slave(topic, group, queue, offset);
    } else {
        table.commit(topic, group, queue, offset);
    }
}

/// Master, shard 0: a configuration change becomes a state record (when a slave is connected;
/// else the whole state is written when one connects).
pub fn on_event(shard: &Shard, event: &ShardEvent) {
    if shard.id != 0 || shard.config.role == BrokerRole::Slave || shard.ha.slaves() == 0 {
        return;
    }
    let record = match event {
        ShardEvent::TopicUpdated(t) => StateRecord::Topics {
            put: vec![t.clone()],
        },
        ShardEvent::TopicDeleted(t) => StateRecord::TopicDeleted { topic: t.clone() },
        ShardEvent::GroupUpdated(g) => StateRecord::Groups {
            put: vec![g.clone()],
        },
        ShardEvent::GroupDeleted(g) => StateRecord::GroupDeleted { group: g.clone() },
        ShardEvent::Shutdown => return,
    };
    append(shard, vec![record]);
}

/// Master: writes the state records once a second while the shard runs (started by
/// [`crate::ha_link::start`]).
pub async fn run_master(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        tick(&shard);
    }
}

/// Master: the tick's share (the changed offsets, or the whole state after a
/// slave connected).
pub fn tick(shard: &Shard) {
    if shard.config.role == BrokerRole::Slave {
        return;
    }
    let changed = shard.offsets.borrow_mut().take_changed();
    if shard.ha.slaves() == 0 {
        return;
    }
    let mut records = Vec::new();
    if shard.ha.snapshot_due.replace(false) {
        let all = shard.offsets.borrow().entries();
        records.extend(all.chunks(CHUNK).map(|c| StateRecord::Offsets {
            offsets: c.to_vec(),
        }));
        if shard.id == 0 {
            records.extend(config_snapshot(shard));
        }
    } else {
        records.extend(changed.chunks(CHUNK).map(|c| StateRecord::Offsets {
            offsets: c.to_vec(),
        }));
    }
    append(shard, records);
}

fn config_snapshot(shard: &Shard) -> Vec<StateRecord> {
    let topics: Vec<TopicConfig> = shard
        .topics
        .borrow()
        .values()
        .filter(|t| t.topic_name != shard.name)
        .map(|t| (**t).clone())
        .collect();
    let groups: Vec<SubscriptionGroupConfig> = shard.groups.borrow().values().cloned().collect();
    let mut out: Vec<StateRecord> = topics
        .chunks(CHUNK)
        .map(|c| StateRecord::Topics { put: c.to_vec() })
        .collect();
    out.extend(
        groups
            .chunks(CHUNK)
            .map(|c| StateRecord::Groups { put: c.to_vec() }),
    );
    out
}

fn append(shard: &Shard, records: Vec<StateRecord>) {
    if records.is_empty() {
        return;
    }
    let now = crate::metadata::now_ms();
    let batch: Vec<storage::MessageToStore> = records
        .iter()
        .map(|r| storage::MessageToStore {
            topic: STATE_TOPIC.to_owned(),
            queue_id: 0,
            flag: 0,
            body: Bytes::from(serde_json::to_vec(r).expect("state records serialize")),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: now,
            born_host: shard.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            tags_code: 0,
            keys: String::new(),
            uniq_key: None,
        })
        .collect();
    if let Err(e) = shard.store.append(&batch) {
        tracing::warn!(shard = shard.id, error = %e, "cannot write the replicated state record");
    }
}

/// Slave: applies the state records of the replicated log (from its start) and forwards the
/// offsets committed here, for as long as the shard runs.
pub async fn follow(shard: Rc<Shard>) {
    let mut next = shard.store.min_offset(STATE_TOPIC, 0).max(0);
    loop {
        let woken = shard.store.wait_for_append(STATE_TOPIC, 0);
        let result = shard
            .store
            .get_messages(STATE_TOPIC, 0, next, 256, 4 << 20, |_| true)
            .await;
        for rec in &result.records {
            match StoredMessage::decode(rec) {
                Ok((m, _)) => apply(&shard, &m.body).await,
                Err(e) => tracing::error!(shard = shard.id, error = %e, "unreadable state record"),
            }
        }
        let moved = result.next_begin_offset > next;
        next = next.max(result.next_begin_offset);
        forward(&shard).await;
        let own = shard.offsets.borrow_mut().take_local_if_dirty();
        if let Some((path, list)) = own {
            glommio::executor()
                .spawn_blocking(move || crate::metadata::write_json(&path, &list))
                .await;
        }
        if !moved {
            let timer = glommio::timer::sleep(Duration::from_secs(1));
            futures_lite::future::or(woken, timer).await;
        }
    }
}

async fn apply(shard: &Shard, body: &[u8]) {
    let record: StateRecord = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(shard = shard.id, error = %e, "state record not understood");
            return;
        }
    };
    match record {
        StateRecord::Offsets { offsets } => {
            let mut table = shard.offsets.borrow_mut();
            for (k, q, o) in offsets {
                table.apply_replicated(&k, q, o);
            }
        }
        StateRecord::Topics { put } => {
            for t in put {
                if shard.topic(&t.topic_name).as_deref() != Some(&t) {
                    shard.put_topic(t).await;
                }
            }
        }
        StateRecord::TopicDeleted { topic } => {
            shard.control.delete_topic(topic).await;
        }
        StateRecord::Groups { put } => {
            for g in put {
                if shard.group(&g.group_name).as_ref() != Some(&g) {
                    shard.put_group(g).await;
                }
            }
        }
        StateRecord::GroupDeleted { group } => {
            shard.control.delete_group(group).await;
        }
    }
}

/// Slave: sends the offsets committed here (and not confirmed) to the master, when its address
/// is known; what fails is sent again after [`FORWARD_AGAIN`].
async fn forward(shard: &Shard) {
    if shard.offsets.borrow().unconfirmed() == 0 {
        return;
    }
    let Some(addr) = master_addr(shard) else {
        return;
    };
    let entries = shard.offsets.borrow_mut().to_forward(FORWARD_AGAIN);
    if entries.is_empty() {
        return;
    }
    let id = shard.id;
    let sent = glommio::executor()
        .spawn_blocking(move || send_offsets(&addr, &entries))
        .await;
    match sent {
        Ok(n) => tracing::debug!(shard = id, forwarded = n, "offsets sent to the master"),
        Err(e) => tracing::debug!(shard = id, error = %e, "offsets not sent to the master yet"),
    }
}

fn master_addr(shard: &Shard) -> Option<String> {
    let learned = shard.ha.learned.as_ref()?;
    let table = learned.lock().unwrap_or_else(|p| p.into_inner());
    table.get(shard.id).and_then(|l| l.master.clone())
}

/// One connection, one UPDATE_CONSUMER_OFFSET per entry; the count answered with success.
fn send_offsets(addr: &str, entries: &[Entry]) -> Result<usize, String> {
    let mut client = saturn_client::BlockingClient::connect(addr, Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    let mut ok = 0;
    for (k, queue, offset) in entries {
        let Some((topic, group)) = k.split_once('@') else {
            continue;
        };
        let mut req = RemotingCommand::request(RequestCode::UPDATE_CONSUMER_OFFSET, 0);
        UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id: *queue,
            commit_offset: *offset,
        }
        .encode(&mut req.ext_fields);
        req.ext_fields.insert(FROM_SLAVE, "true");
        let resp = client.invoke(req).map_err(|e| e.to_string())?;
        if resp.code == 0 {
            ok += 1;
        }
    }
    Ok(ok)
}
