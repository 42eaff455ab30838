//! The control plane: one thread owns the metadata (topics, subscription
//! groups), applies changes that shards ask for, fans them out to every
//! shard over channels, and has the registrar tell the name servers. Nothing
//! here is on the message path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::body::{encode_json, perm, RegisterBrokerBody, SubscriptionGroupConfig, TopicConfig};
use protocol::header::{CommandHeader, RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use protocol::{RemotingCommand, RequestCode};

use saturn_client::BlockingClient;

use crate::config::BrokerConfig;
use crate::metadata::Metadata;

/// What shards ask of the control plane.
pub enum ControlRequest {
    /// Create or replace a topic on every shard.
    PutTopic {
        config: TopicConfig,
        reply: flume::Sender<TopicConfig>,
    },
    /// Create a topic unless it exists; answers the topic as it stands.
    EnsureTopic {
        config: TopicConfig,
        reply: flume::Sender<TopicConfig>,
    },
    DeleteTopic {
        topic: String,
        reply: flume::Sender<bool>,
    },
    /// Create a subscription group unless it exists.
    EnsureGroup {
        config: SubscriptionGroupConfig,
        reply: flume::Sender<SubscriptionGroupConfig>,
    },
    PutGroup {
        config: SubscriptionGroupConfig,
        reply: flume::Sender<()>,
    },
    DeleteGroup {
        group: String,
        reply: flume::Sender<bool>,
    },
    Shutdown,
}

/// What the control plane tells shards.
#[derive(Debug, Clone)]
pub enum ShardEvent {
    TopicUpdated(TopicConfig),
    TopicDeleted(String),
    GroupUpdated(SubscriptionGroupConfig),
    GroupDeleted(String),
    Shutdown,
}

/// The handle shards use.
#[derive(Clone)]
pub struct ControlHandle {
    tx: flume::Sender<ControlRequest>,
}

impl ControlHandle {
    pub fn new(tx: flume::Sender<ControlRequest>) -> Self {
        Self { tx }
    }

    async fn ask<T>(&self, make: impl FnOnce(flume::Sender<T>) -> ControlRequest) -> Option<T> {
        let (reply, rx) = flume::bounded(1);
        self.tx.send_async(make(reply)).await.ok()?;
        rx.recv_async().await.ok()
    }

    pub async fn put_topic(&self, config: TopicConfig) -> Option<TopicConfig> {
        self.ask(|reply| ControlRequest::PutTopic { config, reply })
            .await
    }
    pub async fn ensure_topic(&self, config: TopicConfig) -> Option<TopicConfig> {
        self.ask(|reply| ControlRequest::EnsureTopic { config, reply })
            .await
    }
    pub async fn delete_topic(&self, topic: String) -> Option<bool> {
        self.ask(|reply| ControlRequest::DeleteTopic { topic, reply })
            .await
    }
    pub async fn ensure_group(
        &self,
        config: SubscriptionGroupConfig,
    ) -> Option<SubscriptionGroupConfig> {
        self.ask(|reply| ControlRequest::EnsureGroup { config, reply })
            .await
    }
    pub async fn put_group(&self, config: SubscriptionGroupConfig) -> Option<()> {
        self.ask(|reply| ControlRequest::PutGroup { config, reply })
            .await
    }
    pub async fn delete_group(&self, group: String) -> Option<bool> {
        self.ask(|reply| ControlRequest::DeleteGroup { group, reply })
            .await
    }
}

/// Runs the control loop until `Shutdown`; returns the final metadata.
pub fn run_control(
    mut meta: Metadata,
    requests: flume::Receiver<ControlRequest>,
    shards: Vec<flume::Sender<ShardEvent>>,
    registrar: Registrar,
) {
    let broadcast = |event: ShardEvent| {
        for shard in &shards {
            // A shard that has stopped no longer needs updates.
            let _ = shard.send(event.clone());
        }
    };
    registrar.publish(&meta);
    while let Ok(request) = requests.recv() {
        match request {
            ControlRequest::PutTopic { config, reply } => {
                meta.topics
                    .insert(config.topic_name.clone(), config.clone());
                meta.bump();
                meta.persist_topics();
                broadcast(ShardEvent::TopicUpdated(config.clone()));
                registrar.publish(&meta);
                tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, "topic created or updated");
                let _ = reply.send(config);
            }
            ControlRequest::EnsureTopic { config, reply } => {
                let existing = meta.topics.get(&config.topic_name).cloned();
                let config = match existing {
                    Some(existing) => existing,
                    None => {
                        meta.topics
                            .insert(config.topic_name.clone(), config.clone());
                        meta.bump();
                        meta.persist_topics();
                        broadcast(ShardEvent::TopicUpdated(config.clone()));
                        registrar.publish(&meta);
                        tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, "topic auto-created");
                        config
                    }
                };
                let _ = reply.send(config);
            }
            ControlRequest::DeleteTopic { topic, reply } => {
                let existed = meta.topics.remove(&topic).is_some();
                if existed {
                    meta.bump();
                    meta.persist_topics();
                    broadcast(ShardEvent::TopicDeleted(topic.clone()));
                    registrar.publish(&meta);
                    tracing::info!(topic = %topic, "topic deleted");
                }
                let _ = reply.send(existed);
            }
            ControlRequest::EnsureGroup { config, reply } => {
                let config = match meta.groups.get(&config.group_name) {
                    Some(existing) => existing.clone(),
                    None => {
                        meta.groups
                            .insert(config.group_name.clone(), config.clone());
                        meta.persist_groups();
                        broadcast(ShardEvent::GroupUpdated(config.clone()));
                        config
                    }
                };
                let _ = reply.send(config);
            }
            ControlRequest::PutGroup { config, reply } => {
                meta.groups
                    .insert(config.group_name.clone(), config.clone());
                meta.persist_groups();
                broadcast(ShardEvent::GroupUpdated(config));
                let _ = reply.send(());
            }
            ControlRequest::DeleteGroup { group, reply } => {
                let existed = meta.groups.remove(&group).is_some();
                if existed {
                    meta.persist_groups();
                    broadcast(ShardEvent::GroupDeleted(group));
                }
                let _ = reply.send(existed);
            }
            ControlRequest::Shutdown => break,
        }
    }
    // Clients stop routing here before the shards stop serving.
    registrar.shutdown();
    broadcast(ShardEvent::Shutdown);
}

/// Registers every shard with every name server: at once when the topic
/// table changes, and every `register_interval` regardless.
pub struct Registrar {
    snapshot: Arc<Mutex<Option<Metadata>>>,
    wake: flume::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: flume::Sender<()>,
}

impl Registrar {
    pub fn start(config: Arc<BrokerConfig>, learned: crate::ha::LearnedMasters) -> Self {
        let snapshot: Arc<Mutex<Option<Metadata>>> = Arc::new(Mutex::new(None));
        let (wake, wake_rx) = flume::bounded::<()>(1);
        let (stop, stop_rx) = flume::bounded::<()>(1);
        let thread = {
            let snapshot = snapshot.clone();
            std::thread::Builder::new()
                .name("registrar".into())
                .spawn(move || registrar_loop(config, snapshot, wake_rx, stop_rx, learned))
                .expect("spawn registrar thread")
        };
        Self {
            snapshot,
            wake,
            thread: Some(thread),
            stop,
        }
    }

    pub fn publish(&self, meta: &Metadata) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(meta.clone());
        let _ = self.wake.try_send(());
    }

    /// Unregisters every shard from every name server and stops.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn registrar_loop(
    config: Arc<BrokerConfig>,
    snapshot: Arc<Mutex<Option<Metadata>>>,
    wake: flume::Receiver<()>,
    stop: flume::Receiver<()>,
    learned: crate::ha::LearnedMasters,
) {
    let mut clients: Vec<Option<BlockingClient>> =
        config.namesrv_addrs.iter().map(|_| None).collect();
    let mut next = Instant::now();
    loop {
        let timeout = next.saturating_duration_since(Instant::now());
        let stopping = flume::Selector::new()
            .recv(&wake, |_| false)
            .recv(&stop, |_| true)
            .wait_timeout(timeout)
            .unwrap_or(false);
        if stopping {
            unregister_all(&config, &mut clients);
            return;
        }
        let meta = snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(meta) = meta {
            register_all(&config, &meta, &mut clients, &learned);
        }
        next = Instant::now() + next_registration(&config, &learned);
    }
}

/// A slave that does not know its master yet (the name server's answer names it) registers
/// again after 2 s, not `register_interval`.
fn next_registration(config: &BrokerConfig, learned: &crate::ha::LearnedMasters) -> Duration {
    let slave = config.role == crate::config::BrokerRole::Slave;
    let table = learned.lock().unwrap_or_else(|p| p.into_inner());
    if slave && table.iter().any(|l| l.master.is_none()) {
        return Duration::from_secs(2).min(config.register_interval);
    }
    config.register_interval
}

fn with_client<T>(
    slot: &mut Option<BlockingClient>,
    addr: &str,
    f: impl FnOnce(&mut BlockingClient) -> Result<T, saturn_client::ClientError>,
) -> Result<T, String> {
    if slot.is_none() {
        *slot =
            Some(BlockingClient::connect(addr, Duration::from_secs(3)).map_err(|e| e.to_string())?);
    }
    let client = slot.as_mut().expect("connected above");
    let result = f(client).map_err(|e| e.to_string());
    if result.is_err() {
        *slot = None; // reconnect next time
    }
    result
}

fn register_all(
    config: &BrokerConfig,
    meta: &Metadata,
    clients: &mut [Option<BlockingClient>],
    learned: &crate::ha::LearnedMasters,
) {
    for shard in 0..config.shards {
        let mut wrapper = meta.wrapper();
        // Each shard also serves a topic named after itself, as RocketMQ brokers do.
        let own = config.shard_name(shard);
        wrapper.topic_config_table.insert(
            own.clone(),
            TopicConfig::new(&own, 1, 1, perm::READ | perm::WRITE | perm::INHERIT),
        );
        let body = encode_json(&RegisterBrokerBody {
            topic_config_serialize_wrapper: wrapper,
            filter_server_list: Vec::new(),
        });
        let header = RegisterBrokerRequestHeader {
            broker_name: own.clone(),
            broker_addr: config.shard_addr(shard),
            cluster_name: config.cluster_name.clone(),
            ha_server_addr: format!("{}:{}", config.broker_ip, config.ha_port(shard)),
            broker_id: config.broker_id,
            heartbeat_timeout_millis: None,
            enable_acting_master: None,
            compressed: Some(false),
            body_crc32: Some(protocol::message::body_crc(&body)),
        };
        for (i, addr) in config.namesrv_addrs.iter().enumerate() {
            let mut req = RemotingCommand::request(RequestCode::REGISTER_BROKER, 0);
            header.encode(&mut req.ext_fields);
            req.body = body.clone().into();
            match with_client(&mut clients[i], addr, |c| c.invoke(req)) {
                Ok(resp) if resp.code == 0 => {
                    tracing::debug!(shard, namesrv = %addr, "registered");
                    crate::ha::learn_master(learned, shard, &resp);
                }
                Ok(resp) => {
                    tracing::warn!(shard, namesrv = %addr, code = resp.code, remark = ?resp.remark, "registration refused")
                }
                Err(e) => tracing::warn!(shard, namesrv = %addr, error = %e, "registration failed"),
            }
        }
    }
}

fn unregister_all(config: &BrokerConfig, clients: &mut [Option<BlockingClient>]) {
    for shard in 0..config.shards {
        let header = UnregisterBrokerRequestHeader {
            broker_name: config.shard_name(shard),
            broker_addr: config.shard_addr(shard),
            cluster_name: config.cluster_name.clone(),
            broker_id: config.broker_id,
        };
        for (i, addr) in config.namesrv_addrs.iter().enumerate() {
            let mut req = RemotingCommand::request(RequestCode::UNREGISTER_BROKER, 0);
            header.encode(&mut req.ext_fields);
            if let Err(e) = with_client(&mut clients[i], addr, |c| c.invoke(req)) {
                tracing::warn!(shard, namesrv = %addr, error = %e, "unregistration failed");
            }
        }
    }
    tracing::info!("unregistered from name servers");
}
