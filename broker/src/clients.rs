//! Producers and consumers known to one shard, from their heartbeats:
//! group membership, subscriptions, and the connections to notify when a
//! group's membership changes.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::body::{ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, SubscriptionData};
use protocol::header::{CommandHeader, NotifyConsumerIdsChangedRequestHeader};
use protocol::{RemotingCommand, RequestCode};

use crate::conn::Conn;

pub struct ClientChannel {
    pub conn: Rc<Conn>,
    pub client_id: String,
    pub last_update: Instant,
}

#[derive(Default)]
pub struct ConsumerGroup {
    /// Keyed by connection id.
    pub channels: BTreeMap<u64, ClientChannel>,
    pub subscriptions: HashMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

impl ConsumerGroup {
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .channels
            .values()
            .map(|c| c.client_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[derive(Default)]
pub struct ClientManager {
    pub consumers: HashMap<String, ConsumerGroup>,
    /// producer group → connection id → channel
    pub producers: HashMap<String, BTreeMap<u64, ClientChannel>>,
}

impl ClientManager {
    /// Records a consumer's heartbeat; true when the group gained a member.
    pub fn register_consumer(
        &mut self,
        conn: &Rc<Conn>,
        client_id: &str,
        data: &ConsumerData,
        now: Instant,
    ) -> bool {
        let group = self.consumers.entry(data.group_name.clone()).or_default();
        group.consume_type = data.consume_type;
        group.message_model = data.message_model;
        group.consume_from_where = data.consume_from_where;
        for sub in &data.subscription_data_set {
            let keep = match group.subscriptions.get(&sub.topic) {
                Some(old) => old.sub_version <= sub.sub_version || old.sub_string != sub.sub_string,
                None => true,
            };
            if keep {
                group.subscriptions.insert(sub.topic.clone(), sub.clone());
            }
        }
        let new_member = !group.channels.contains_key(&conn.id);
        group.channels.insert(
            conn.id,
            ClientChannel {
                conn: conn.clone(),
                client_id: client_id.to_owned(),
                last_update: now,
            },
        );
        new_member
    }

    pub fn register_producer(
        &mut self,
        conn: &Rc<Conn>,
        client_id: &str,
        group: &str,
        now: Instant,
    ) {
        self.producers.entry(group.to_owned()).or_default().insert(
            conn.id,
            ClientChannel {
                conn: conn.clone(),
                client_id: client_id.to_owned(),
                last_update: now,
            },
        );
    }

    /// UNREGISTER_CLIENT; true when a consumer group lost a member.
    pub fn unregister(
        &mut self,
        conn_id: u64,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> bool {
        if let Some(g) = producer_group {
            if let Some(p) = self.producers.get_mut(g) {
                p.remove(&conn_id);
                if p.is_empty() {
                    self.producers.remove(g);
                }
            }
        }
        let mut changed = false;
        if let Some(g) = consumer_group {
            if let Some(c) = self.consumers.get_mut(g) {
                changed = c.channels.remove(&conn_id).is_some();
                if c.channels.is_empty() {
                    self.consumers.remove(g);
                }
            }
        }
        changed
    }

    /// Drops a closed connection; returns the consumer groups that lost a member.
    pub fn remove_connection(&mut self, conn_id: u64) -> Vec<String> {
        self.producers.retain(|_, p| {
            p.remove(&conn_id);
            !p.is_empty()
        });
        let mut changed = Vec::new();
        self.consumers.retain(|name, g| {
            if g.channels.remove(&conn_id).is_some() {
                changed.push(name.clone());
            }
            !g.channels.is_empty()
        });
        changed
    }

    /// Drops channels silent for longer than `expiry`.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<String> {
        let alive = |c: &ClientChannel| {
            now.saturating_duration_since(c.last_update) <= expiry && !c.conn.is_closed()
        };
        self.producers.retain(|_, p| {
            p.retain(|_, c| alive(c));
            !p.is_empty()
        });
        let mut changed = Vec::new();
        self.consumers.retain(|name, g| {
            let before = g.channels.len();
            g.channels.retain(|_, c| alive(c));
            if g.channels.len() != before {
                changed.push(name.clone());
            }
            !g.channels.is_empty()
        });
        changed
    }

    /// Tells every member of a group to rebalance now.
    pub fn notify_consumer_ids_changed(&self, group: &str) {
        let Some(g) = self.consumers.get(group) else {
            return;
        };
        let mut cmd = RemotingCommand::request(RequestCode::NOTIFY_CONSUMER_IDS_CHANGED, 0);
        NotifyConsumerIdsChangedRequestHeader {
            consumer_group: group.to_owned(),
        }
        .encode(&mut cmd.ext_fields);
        for channel in g.channels.values() {
            channel.conn.try_send_oneway(cmd.clone());
        }
    }
}
