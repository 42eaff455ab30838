//! The name server's state: which brokers are alive, and which queues each
//! broker name serves per topic (reference §5.2). Pure data, no I/O; the
//! server wraps it in a mutex.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use protocol::body::{
    perm, BrokerData, BrokerMemberGroup, ClusterInfo, DataVersion, QueueData,
    TopicConfigSerializeWrapper, TopicList, TopicRouteData,
};

/// Identifies the TCP connection a registration arrived on, so that a closed
/// connection removes the brokers it registered.
pub type ConnId = u64;

#[derive(Debug, Clone)]
struct LiveBroker {
    cluster: String,
    broker_name: String,
    broker_id: i64,
    last_update: Instant,
    timeout: Duration,
    data_version: DataVersion,
    conn: ConnId,
    ha_server_addr: String,
}

/// What a registration tells the broker back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    pub master_addr: Option<String>,
    pub ha_server_addr: Option<String>,
}

pub struct Registration<'a> {
    pub cluster: &'a str,
    pub broker_name: &'a str,
    pub broker_addr: &'a str,
    pub broker_id: i64,
    pub ha_server_addr: &'a str,
    pub timeout: Duration,
    pub enable_acting_master: bool,
    pub topics: &'a TopicConfigSerializeWrapper,
    pub conn: ConnId,
}

#[derive(Default)]
pub struct RouteTable {
    /// topic → broker name → queues
    topic_queues: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// broker name → addresses
    brokers: BTreeMap<String, BrokerData>,
    /// cluster → broker names
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// broker address → liveness
    live: BTreeMap<String, LiveBroker>,
}

/// Topic system flag bits used by the unit-topic listings.
const FLAG_UNIT: i32 = 0x1;
const FLAG_UNIT_SUB: i32 = 0x2;

impl RouteTable {
    pub fn register(&mut self, reg: Registration<'_>, now: Instant) -> RegisterResult {
        self.clusters
            .entry(reg.cluster.to_owned())
            .or_default()
            .insert(reg.broker_name.to_owned());
        let data = self
            .brokers
            .entry(reg.broker_name.to_owned())
            .or_insert_with(|| BrokerData {
                broker_name: reg.broker_name.to_owned(),
                cluster: reg.cluster.to_owned(),
                ..BrokerData::default()
            });
        data.cluster = reg.cluster.to_owned();
        data.enable_acting_master = reg.enable_acting_master;
        // An address that moved to another id (slave promoted) leaves its old slot.
        data.broker_addrs
            .retain(|id, addr| *id == reg.broker_id || addr != reg.broker_addr);
        data.broker_addrs
            .insert(reg.broker_id, reg.broker_addr.to_owned());

        if reg.broker_id == 0 {
            for config in reg.topics.topic_config_table.values() {
                self.topic_queues
                    .entry(config.topic_name.clone())
                    .or_default()
                    .insert(
                        reg.broker_name.to_owned(),
                        QueueData {
                            broker_name: reg.broker_name.to_owned(),
                            perm: config.perm,
                            read_queue_nums: config.read_queue_nums,
                            topic_sys_flag: config.topic_sys_flag,
                            write_queue_nums: config.write_queue_nums,
                        },
                    );
            }
        }

        self.live.insert(
            reg.broker_addr.to_owned(),
            LiveBroker {
                cluster: reg.cluster.to_owned(),
                broker_name: reg.broker_name.to_owned(),
                broker_id: reg.broker_id,
                last_update: now,
                timeout: reg.timeout,
                data_version: reg.topics.data_version.clone(),
                conn: reg.conn,
                ha_server_addr: reg.ha_server_addr.to_owned(),
            },
        );

        if reg.broker_id == 0 {
            return RegisterResult::default();
        }
        let master_addr = self
            .brokers
            .get(reg.broker_name)
            .and_then(|b| b.broker_addrs.get(&0))
            .cloned();
        let ha_server_addr = master_addr
            .as_ref()
            .and_then(|addr| self.live.get(addr))
            .map(|live| live.ha_server_addr.clone());
        RegisterResult {
            master_addr,
            ha_server_addr,
        }
    }

    /// Removes one broker address; a broker name without addresses left
    /// disappears with its queues.
    pub fn unregister(
        &mut self,
        cluster: &str,
        broker_name: &str,
        broker_addr: &str,
        broker_id: i64,
    ) {
        self.live.remove(broker_addr);
        let now_empty = match self.brokers.get_mut(broker_name) {
            Some(data) => {
                data.broker_addrs
                    .retain(|id, addr| !(*id == broker_id && addr == broker_addr));
                data.broker_addrs.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.brokers.remove(broker_name);
            if let Some(names) = self.clusters.get_mut(cluster) {
                names.remove(broker_name);
                if names.is_empty() {
                    self.clusters.remove(cluster);
                }
            }
            self.topic_queues.retain(|_, queues| {
                queues.remove(broker_name);
                !queues.is_empty()
            });
        }
    }

    fn remove_live(&mut self, addrs: Vec<String>) -> Vec<String> {
        for addr in &addrs {
            if let Some(live) = self.live.get(addr).cloned() {
                self.unregister(&live.cluster, &live.broker_name, addr, live.broker_id);
            }
        }
        addrs
    }

    /// Drops brokers whose last registration is older than their timeout.
    /// Returns the addresses dropped.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let stale: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_update) > l.timeout)
            .map(|(addr, _)| addr.clone())
            .collect();
        self.remove_live(stale)
    }

    /// Drops the brokers that registered over a connection that closed.
    pub fn connection_closed(&mut self, conn: ConnId) -> Vec<String> {
        let gone: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.conn == conn)
            .map(|(addr, _)| addr.clone())
            .collect();
        self.remove_live(gone)
    }

    /// Refreshes liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION); returns the
    /// stored data version when the broker is known.
    pub fn touch(&mut self, broker_addr: &str, now: Instant) -> Option<DataVersion> {
        self.live.get_mut(broker_addr).map(|live| {
            live.last_update = now;
            live.data_version.clone()
        })
    }

    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topic_queues.get(topic)?;
        let mut route = TopicRouteData::default();
        for (name, queue) in queues {
            let Some(broker) = self.brokers.get(name) else {
                continue;
            };
            if broker.broker_addrs.is_empty() {
                continue;
            }
            route.queue_datas.push(queue.clone());
            route.broker_datas.push(broker.clone());
        }
        if route.broker_datas.is_empty() {
            return None;
        }
        Some(route)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    pub fn all_topics(&self) -> TopicList {
        TopicList {
            topic_list: self.topic_queues.keys().cloned().collect(),
            broker_addr: None,
        }
    }

    pub fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster).cloned().unwrap_or_default();
        TopicList {
            topic_list: self
                .topic_queues
                .iter()
                .filter(|(_, q)| q.keys().any(|n| names.contains(n)))
                .map(|(t, _)| t.clone())
                .collect(),
            broker_addr: None,
        }
    }

    /// Cluster names and broker names: the topics every broker creates for itself.
    pub fn system_topics(&self) -> TopicList {
        let mut list: BTreeSet<String> = self.clusters.keys().cloned().collect();
        list.extend(self.brokers.keys().cloned());
        TopicList {
            topic_list: list,
            broker_addr: self
                .brokers
                .values()
                .find_map(|b| b.broker_addrs.values().next().cloned()),
        }
    }

    /// Topics by unit flags: `unit` requires FLAG_UNIT, `unit_sub` requires
    /// FLAG_UNIT_SUB; `unit_sub_not_unit` requires FLAG_UNIT_SUB without FLAG_UNIT.
    pub fn unit_topics(&self, want: fn(i32) -> bool) -> TopicList {
        TopicList {
            topic_list: self
                .topic_queues
                .iter()
                .filter(|(_, q)| {
                    q.values()
                        .next()
                        .map(|d| want(d.topic_sys_flag))
                        .unwrap_or(false)
                })
                .map(|(t, _)| t.clone())
                .collect(),
            broker_addr: None,
        }
    }

    pub fn is_unit(flag: i32) -> bool {
        flag & FLAG_UNIT != 0
    }
    pub fn is_unit_sub(flag: i32) -> bool {
        flag & FLAG_UNIT_SUB != 0
    }
    pub fn is_unit_sub_not_unit(flag: i32) -> bool {
        flag & FLAG_UNIT_SUB != 0 && flag & FLAG_UNIT == 0
    }

    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.topic_queues.remove(topic);
            }
            Some(cluster) => {
                let names = self.clusters.get(cluster).cloned().unwrap_or_default();
                if let Some(queues) = self.topic_queues.get_mut(topic) {
                    queues.retain(|name, _| !names.contains(name));
                    if queues.is_empty() {
                        self.topic_queues.remove(topic);
                    }
                }
            }
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV: merges queue data of known brokers.
    pub fn register_topic(&mut self, topic: &str, queues: &[QueueData]) {
        for queue in queues {
            if self.brokers.contains_key(&queue.broker_name) {
                self.topic_queues
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(queue.broker_name.clone(), queue.clone());
            }
        }
    }

    /// Sets or clears the write bit on every queue of a broker name; returns
    /// how many topics it touched.
    pub fn set_write_perm(&mut self, broker_name: &str, writable: bool) -> i32 {
        let mut count = 0;
        for queues in self.topic_queues.values_mut() {
            if let Some(q) = queues.get_mut(broker_name) {
                q.perm = if writable {
                    q.perm | perm::WRITE
                } else {
                    q.perm & !perm::WRITE
                };
                count += 1;
            }
        }
        count
    }

    pub fn member_group(&self, cluster: &str, broker_name: &str) -> BrokerMemberGroup {
        BrokerMemberGroup {
            broker_addrs: self
                .brokers
                .get(broker_name)
                .filter(|b| b.cluster == cluster)
                .map(|b| b.broker_addrs.clone())
                .unwrap_or_default(),
            broker_name: broker_name.to_owned(),
            cluster: cluster.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::body::TopicConfig;

    fn topics(names: &[&str]) -> TopicConfigSerializeWrapper {
        let mut w = TopicConfigSerializeWrapper::default();
        for n in names {
            w.topic_config_table
                .insert(n.to_string(), TopicConfig::new(*n, 4, 4, 6));
        }
        w
    }

    fn reg<'a>(
        name: &'a str,
        addr: &'a str,
        id: i64,
        t: &'a TopicConfigSerializeWrapper,
        conn: ConnId,
    ) -> Registration<'a> {
        Registration {
            cluster: "C",
            broker_name: name,
            broker_addr: addr,
            broker_id: id,
            ha_server_addr: "ha",
            timeout: Duration::from_secs(120),
            enable_acting_master: false,
            topics: t,
            conn,
        }
    }

    #[test]
    fn register_route_expire() {
        let t = topics(&["T"]);
        let mut table = RouteTable::default();
        let now = Instant::now();
        table.register(reg("a", "1.1.1.1:1", 0, &t, 1), now);
        let slave = table.register(reg("a", "1.1.1.2:1", 1, &t, 2), now);
        assert_eq!(slave.master_addr.as_deref(), Some("1.1.1.1:1"));
        assert_eq!(slave.ha_server_addr.as_deref(), Some("ha"));
        let route = table.route("T").unwrap();
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
        assert!(table.route("U").is_none());
        assert_eq!(table.expire(now + Duration::from_secs(60)).len(), 0);
        assert_eq!(table.connection_closed(1), vec!["1.1.1.1:1".to_string()]);
        // The slave keeps the broker name (and its queues) alive.
        assert_eq!(
            table.route("T").unwrap().broker_datas[0].broker_addrs.len(),
            1
        );
        assert_eq!(table.expire(now + Duration::from_secs(121)).len(), 1);
        assert!(table.route("T").is_none());
        assert!(table.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn write_perm() {
        let t = topics(&["T", "U"]);
        let mut table = RouteTable::default();
        table.register(reg("a", "x:1", 0, &t, 1), Instant::now());
        assert_eq!(table.set_write_perm("a", false), 2);
        assert_eq!(table.route("T").unwrap().queue_datas[0].perm, 4);
        assert_eq!(table.set_write_perm("a", true), 2);
        assert_eq!(table.route("T").unwrap().queue_datas[0].perm, 6);
    }
}
