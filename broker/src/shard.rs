//! A shard: one glommio executor pinned to a core, owning its store, its
//! listeners, its consumer offsets and its view of clients. To clients it is
//! a broker of its own (`<name>-<i>` at its own port).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use protocol::body::{SubscriptionGroupConfig, TopicConfig};
use protocol::message::UniqIdGenerator;

use crate::clients::ClientManager;
use crate::config::{BrokerConfig, FlushDiskType};
use crate::conn::{self, Conn, Connections};
use crate::control::{ControlHandle, ShardEvent};
use crate::metadata::Metadata;
use crate::offsets::OffsetTable;

/// A function told of every configuration change a shard applies ([`Shard::on_event`]).
pub type EventHook = fn(&Shard, &ShardEvent);

pub struct Shard {
    pub id: usize,
    pub name: String,
    pub config: Arc<BrokerConfig>,
    /// This shard's address as clients reach it, also stored as STOREHOST.
    pub store_host: SocketAddr,
    pub store: storage::Store,
    pub topics: RefCell<HashMap<String, Rc<TopicConfig>>>,
    pub groups: RefCell<HashMap<String, SubscriptionGroupConfig>>,
    pub offsets: RefCell<OffsetTable>,
    pub clients: RefCell<ClientManager>,
    /// Orderly consumers' queue locks: (group, queue) → (client id, last renewal).
    pub locks:
        RefCell<HashMap<(String, protocol::body::MessageQueue), (String, std::time::Instant)>>,
    pub control: ControlHandle,
    pub uniq: RefCell<UniqIdGenerator>,
    /// The shard's client connections.
    pub connections: Rc<Connections>,
    /// Round-robin cursor for sends that leave the queue to the broker.
    pub next_queue: std::cell::Cell<u32>,
    pub boot_ms: i64,
    /// Traffic counters and rates (mqadmin's stats).
    pub stats: crate::stats::ShardStats,
    /// Calls to clients awaiting their answers.
    pub outbound: crate::outbound::Outbound,
    /// Settings UPDATE_BROKER_CONFIG may change.
    pub live: crate::live_config::LiveConfig,
    /// Transactional messages: undecided half messages and recent decisions.
    pub tx: RefCell<crate::transaction::TxBook>,
    /// The timer engine's configuration and figures (the engine runs in `timer::engine::run`).
    pub timers: crate::timer::Timers,
    /// CLUSTER, MSG_REGION and TRACE_ON, encoded once: added to every stored message.
    pub broker_properties: String,
    /// Replication (master/slave).
    pub ha: crate::ha::HaState,
    /// Called with every configuration change before it is applied (set by replication's
    /// start, so that this module does not depend on what it calls).
    pub on_event: std::cell::Cell<Option<EventHook>>,
}

impl Shard {
    pub fn topic(&self, name: &str) -> Option<Rc<TopicConfig>> {
        self.topics.borrow().get(name).cloned()
    }

    pub fn group(&self, name: &str) -> Option<SubscriptionGroupConfig> {
        self.groups.borrow().get(name).cloned()
    }

    /// The topic as the control thread has it, creating `candidate` there unless it exists;
    /// known to this shard at once (the control thread's broadcast repeats it). `None`: the
    /// broker is stopping.
    pub async fn ensure_topic(&self, candidate: TopicConfig) -> Option<Rc<TopicConfig>> {
        let c = self.control.ensure_topic(candidate).await?;
        Some(self.adopt_topic(c))
    }

    /// Creates or replaces a topic (administration), as [`Shard::ensure_topic`] does.
    pub async fn put_topic(&self, config: TopicConfig) -> Option<Rc<TopicConfig>> {
        let c = self.control.put_topic(config).await?;
        Some(self.adopt_topic(c))
    }

    /// The group as the control thread has it, creating `candidate` there unless it exists;
    /// known to this shard at once.
    pub async fn ensure_group(
        &self,
        candidate: SubscriptionGroupConfig,
    ) -> Option<SubscriptionGroupConfig> {
        let g = self.control.ensure_group(candidate).await?;
        self.groups
            .borrow_mut()
            .insert(g.group_name.clone(), g.clone());
        Some(g)
    }

    /// Creates or replaces a group (administration), as [`Shard::ensure_group`] does.
    pub async fn put_group(&self, config: SubscriptionGroupConfig) -> Option<()> {
        self.control.put_group(config.clone()).await?;
        self.groups
            .borrow_mut()
            .insert(config.group_name.clone(), config);
        Some(())
    }

    fn adopt_topic(&self, c: TopicConfig) -> Rc<TopicConfig> {
        let c = Rc::new(c);
        self.topics
            .borrow_mut()
            .insert(c.topic_name.clone(), c.clone());
        c
    }

    pub fn connection_closed(&self, conn: &Rc<Conn>) {
        self.outbound.connection_closed(conn.id);
        let notify = self.clients.borrow_mut().remove_connection(conn.id);
        for group in notify {
            self.clients.borrow().notify_consumer_ids_changed(&group);
        }
    }

    fn apply(&self, event: ShardEvent) -> bool {
        if let Some(hook) = self.on_event.get() {
            hook(self, &event);
        }
        match event {
            ShardEvent::TopicUpdated(t) => {
                self.topics
                    .borrow_mut()
                    .insert(t.topic_name.clone(), Rc::new(t));
            }
            ShardEvent::TopicDeleted(t) => {
                self.topics.borrow_mut().remove(&t);
                self.store.delete_topic(&t);
                self.offsets.borrow_mut().remove_topic(&t);
                self.stats.forget_topic(&t);
            }
            ShardEvent::GroupUpdated(g) => {
                self.groups.borrow_mut().insert(g.group_name.clone(), g);
            }
            ShardEvent::GroupDeleted(g) => {
                self.groups.borrow_mut().remove(&g);
            }
            ShardEvent::Shutdown => return false,
        }
        true
    }
}

/// Everything a shard needs from the process when it starts.
pub struct ShardSetup {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    pub metadata: Metadata,
    pub control: ControlHandle,
    pub events: flume::Receiver<ShardEvent>,
    /// Told once the shard listens (or failed to start).
    pub ready: flume::Sender<Result<(), String>>,
    /// Master HA addresses learned at registration (a slave's).
    pub learned_masters: crate::ha::LearnedMasters,
    /// Metrics scrapes to answer ([`crate::metrics`]).
    pub metrics: flume::Receiver<crate::metrics::Reply>,
    /// Services started before the shard listens (the transaction book rebuilt from its
    /// queues, then its check loop); their tasks are cancelled when the shard stops.
    pub services: StartServices,
    /// Starts the shard's side of replication ([`crate::ha_link::start`]), before it listens.
    pub replication: fn(&Rc<Shard>) -> Result<(), String>,
}

/// What [`ShardSetup::services`] is: given the shard, rebuild what must be rebuilt and return
/// the background tasks started.
pub type StartServices =
    fn(Rc<Shard>) -> futures_lite::future::BoxedLocal<Vec<glommio::task::JoinHandle<()>>>;

impl crate::timer::engine::Host for Shard {
    fn store(&self) -> &storage::Store {
        &self.store
    }
    fn timers(&self) -> &crate::timer::Timers {
        &self.timers
    }
    fn store_host(&self) -> SocketAddr {
        self.store_host
    }
    fn timer_dir(&self) -> std::path::PathBuf {
        self.config.shard_dir(self.id).join("timer")
    }
    fn shard_id(&self) -> usize {
        self.id
    }
}

/// Runs a shard to completion inside its executor.
pub async fn run(setup: ShardSetup) {
    let ShardSetup {
        id,
        config,
        metadata,
        control,
        events,
        ready,
        learned_masters,
        metrics,
        services,
        replication,
    } = setup;
    let port = config.shard_port(id);
    let store_host = SocketAddr::new(config.broker_ip, port);
    let store = match open_store(&config, id, store_host).await {
        Ok(s) => {
            // Retention keeps everything until the timer engine has said what it needs.
            s.set_retention_floor(0);
            s
        }
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: cannot open store: {e}")));
            return;
        }
    };
    let listeners = match bind_listeners(&config, port) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: {e}")));
            return;
        }
    };
    let shard = new_shard(
        id,
        &config,
        metadata,
        control,
        store,
        store_host,
        learned_masters,
    );
    if let Err(e) = replication(&shard) {
        let _ = ready.send(Err(format!("shard {id}: {e}")));
        return;
    }
    // The shard's own broker-name topic.
    {
        let own = TopicConfig::new(&shard.name, 1, 1, 7);
        shard
            .topics
            .borrow_mut()
            .insert(own.topic_name.clone(), Rc::new(own));
    }
    let services = services(shard.clone()).await;

    for listener in listeners {
        let (service, table) = (shard.clone(), shard.connections.clone());
        let limits = config.conn_limits();
        glommio::spawn_local(conn::accept(listener, service, table, limits, id)).detach();
    }
    let sweeper = glommio::spawn_local(shard.connections.clone().run_sweeper()).detach();
    let housekeeping = glommio::spawn_local(housekeeping(shard.clone())).detach();
    let timers = glommio::spawn_local(crate::timer::engine::run(shard.clone())).detach();
    let scrapes = glommio::spawn_local(crate::metrics::serve(shard.clone(), metrics)).detach();

    tracing::info!(shard = id, name = %shard.name, addr = %store_host, "shard listening");
    let _ = ready.send(Ok(()));

    while let Ok(event) = events.recv_async().await {
        if !shard.apply(event) {
            break;
        }
    }
    housekeeping.cancel();
    for task in services {
        task.cancel();
    }
    timers.cancel();
    sweeper.cancel();
    scrapes.cancel();
    shard.offsets.borrow_mut().persist();
    if let Err(e) = shard.store.flush().await {
        tracing::error!(shard = id, error = %e, "final flush failed");
    }
    tracing::info!(shard = id, "shard stopped");
}

/// The shard's state, from the process's metadata and its opened store.
fn new_shard(
    id: usize,
    config: &Arc<BrokerConfig>,
    metadata: Metadata,
    control: ControlHandle,
    store: storage::Store,
    store_host: SocketAddr,
    learned_masters: crate::ha::LearnedMasters,
) -> Rc<Shard> {
    let ip = config.broker_ip;
    Rc::new(Shard {
        id,
        name: config.shard_name(id),
        store_host,
        store,
        topics: RefCell::new(
            metadata
                .topics
                .iter()
                .map(|(k, v)| (k.clone(), Rc::new(v.clone())))
                .collect(),
        ),
        groups: RefCell::new(metadata.groups.clone().into_iter().collect()),
        offsets: RefCell::new(OffsetTable::load(config.shard_dir(id).join("config"))),
        clients: RefCell::new(ClientManager::default()),
        locks: RefCell::new(HashMap::new()),
        control,
        uniq: RefCell::new(UniqIdGenerator::new(ip, std::process::id(), id as i32)),
        connections: Rc::new(Connections::new(
            config.max_connections_per_shard,
            config.idle_timeout,
        )),
        next_queue: std::cell::Cell::new(0),
        boot_ms: crate::metadata::now_ms(),
        stats: crate::stats::ShardStats::new(crate::metadata::now_ms()),
        outbound: crate::outbound::Outbound::default(),
        live: crate::live_config::LiveConfig::new(config),
        tx: RefCell::new(Default::default()),
        timers: crate::timer::Timers::new(
            config.message_delay_levels.clone(),
            config.timer_max_delay.as_millis() as i64,
            config.timer_index_max_in_memory,
        ),
        broker_properties: config.stored_properties(),
        ha: crate::ha::HaState::new(Some(learned_masters)),
        on_event: std::cell::Cell::new(None),
        config: config.clone(),
    })
}

async fn open_store(
    config: &BrokerConfig,
    id: usize,
    store_host: SocketAddr,
) -> Result<storage::Store, storage::StoreError> {
    let mut store_config = storage::StoreConfig::new(config.shard_commit_log_dir(id), store_host);
    store_config.segment_size = config.segment_size;
    store_config.flush = match config.flush {
        FlushDiskType::Async => storage::FlushMode::Async,
        FlushDiskType::Sync => storage::FlushMode::Sync,
    };
    store_config.flush_interval = config.flush_interval;
    store_config.flush_timeout = config.sync_flush_timeout;
    store_config.hot_cache_bytes = config.hot_cache_bytes;
    store_config.disk_max_used_ratio = config.disk_max_used_ratio;
    store_config.disk_min_free_bytes = config.disk_min_free_bytes;
    store_config.retention = config.file_reserved_time;
    if let Some(disk) = crate::fault_hook::disk_for_shard(id) {
        store_config.disk = disk;
    }
    storage::Store::open(store_config).await
}

/// Periodic work: sample the stats every 10 s, persist changed offsets every second (the file
/// write and fsync run on glommio's blocking pool, never on this core's reactor), expire silent
/// clients every 5 s.
async fn housekeeping(shard: Rc<Shard>) {
    for tick in 0u64.. {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        if tick % 10 == 9 {
            shard.stats.sample(crate::metadata::now_ms());
        }
        let pending = shard.offsets.borrow_mut().take_if_dirty();
        if let Some((path, snapshot)) = pending {
            glommio::executor()
                .spawn_blocking(move || crate::metadata::write_json(&path, &snapshot))
                .await;
        }
        if tick % 5 != 4 {
            continue;
        }
        let expired = shard.clients.borrow_mut().expire(
            std::time::Instant::now(),
            shard.config.client_channel_expiry,
        );
        for group in expired {
            shard.clients.borrow().notify_consumer_ids_changed(&group);
        }
    }
}

fn bind_listeners(
    config: &BrokerConfig,
    port: u16,
) -> Result<Vec<glommio::net::TcpListener>, String> {
    let mut out = Vec::new();
    for p in [port, port.saturating_sub(2)] {
        let addr = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), p);
        let listener = glommio::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        out.push(listener);
        if config.listen_port < 3 {
            break;
        }
    }
    Ok(out)
}
