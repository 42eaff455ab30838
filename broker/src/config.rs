//! Broker configuration: defaults, RocketMQ's `broker.conf` (Java
//! properties), and command-line overrides, in that order.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    Async,
    Sync,
}

impl FlushDiskType {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "ASYNC_FLUSH" | "ASYNC" => Some(Self::Async),
            "SYNC_FLUSH" | "SYNC" => Some(Self::Sync),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Async => "ASYNC_FLUSH",
            Self::Sync => "SYNC_FLUSH",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
    Slave,
}

impl BrokerRole {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "ASYNC_MASTER" => Some(Self::AsyncMaster),
            "SYNC_MASTER" => Some(Self::SyncMaster),
            "SLAVE" => Some(Self::Slave),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub cluster_name: String,
    /// Shard i registers as `<broker_name>-<i>`.
    pub broker_name: String,
    pub broker_id: i64,
    /// Name servers, `host:port` each.
    pub namesrv_addrs: Vec<String>,
    /// The address clients are told to use (routes, stored STOREHOST).
    pub broker_ip: IpAddr,
    /// Shard 0's port; shard i listens on `listen_port + PORT_STRIDE * i`.
    pub listen_port: u16,
    pub shards: usize,
    pub data_dir: PathBuf,
    /// Commit-log directory when set apart from the data dir (`storePathCommitLog`).
    pub commit_log_dir: Option<PathBuf>,
    pub segment_size: u64,
    pub flush: FlushDiskType,
    pub role: BrokerRole,
    pub auto_create_topic: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: i32,
    pub max_message_size: usize,
    pub file_reserved_time: Duration,
    /// Hour of day (0–23) at which expired files are deleted (`deleteWhen`).
    pub delete_when: Vec<u8>,
    pub register_interval: Duration,
    pub client_channel_expiry: Duration,
    pub max_frame_size: usize,
    pub flush_interval: Duration,
    pub sync_flush_timeout: Duration,
    /// hotCacheBytes (Saturn's own): recently appended commit-log bytes each shard keeps in
    /// memory for readers (at least 1 MiB).
    pub hot_cache_bytes: usize,
    /// Per-connection bound on requests being processed.
    pub max_in_flight_per_connection: usize,
    /// Per-connection bound on the bytes of requests being processed.
    pub max_bytes_in_flight_per_connection: usize,
    /// Connections one shard serves at once; more are closed as they are accepted.
    pub max_connections_per_shard: usize,
    /// A connection with nothing in progress that neither reads nor writes this long is closed
    /// (RocketMQ's `serverChannelMaxIdleTimeSeconds`); zero: never.
    pub idle_timeout: Duration,
    pub region_id: String,
    pub trace_on: bool,
    /// Pin shard i to core i.
    pub pin_cores: bool,
    pub io_memory: usize,
    /// How long an idle shard keeps polling its rings before it sleeps.
    /// Sleeping and being woken costs tens of microseconds (more in a VM)
    /// and shows in every request's latency at moderate load; polling
    /// costs that much CPU after each burst of work.
    pub spin_before_park: Duration,
    /// Disk use (fraction) beyond which the oldest segments are deleted.
    pub disk_max_used_ratio: f64,
    /// Sends are refused ("disk full") while a shard's disk has less free space than this.
    pub disk_min_free_bytes: u64,
    /// messageDelayLevel: each delay level's delay in ms (level n is element n − 1).
    pub message_delay_levels: Vec<i64>,
    /// timerMaxDelaySec: the farthest ahead a 5.x timer may be due.
    pub timer_max_delay: Duration,
    /// timerIndexMaxInMemory (Saturn's own): most timer-index entries a shard holds in memory.
    pub timer_index_max_in_memory: usize,
    /// Replication (module `ha`): a slave's master HA address, shard 0's (`haMasterAddress`,
    /// `host:port`; shard i uses port + 4i); unset: learned from the name server's answer.
    pub ha_master_address: Option<String>,
    /// Shard 0's HA port (`haListenPort`); shard i uses it + 4i. Default: listenPort + 1.
    pub ha_listen_port: Option<u16>,
    /// SYNC_MASTER: a send is answered SLAVE_NOT_AVAILABLE when no slave is within this many
    /// bytes of the master (`haMaxGapNotInSync`).
    pub ha_max_gap: u64,
    /// SYNC_MASTER: FLUSH_SLAVE_TIMEOUT when no slave has a send's bytes after this
    /// (`slaveTimeout`).
    pub slave_timeout: Duration,
    /// Bytes per transfer frame (`haTransferBatchSize`).
    pub ha_transfer_batch: usize,
    /// `slaveReadEnable`: pulls may be sent to (and served by) the slave, see `slave_read`.
    pub slave_read_enable: bool,
    /// Prometheus text endpoint (`metricsExporterType=PROM`); other values: none.
    pub metrics_prom: bool,
    /// Its port and address (`metricsPromExporterPort`, `metricsPromExporterHost`).
    pub metrics_port: u16,
    pub metrics_host: IpAddr,
    /// Create RMQ_SYS_TRACE_TOPIC (or `msgTraceTopicName`) at start (`traceTopicEnable`).
    pub trace_topic_enable: bool,
    pub trace_topic_name: String,
    /// SQL92 subscriptions are served (`enablePropertyFilter`; on by default, unlike RocketMQ).
    pub enable_property_filter: bool,
    /// transactionTimeOut, transactionCheckInterval, transactionCheckMax.
    pub transaction: crate::transaction::TxConfig,
    /// An orderly consumer's queue lock not renewed for this long is free again (RocketMQ's
    /// `rocketmq.broker.rebalance.lockMaxLiveTime`, 60 s).
    pub rebalance_lock_max_live: Duration,
}

/// Ports per shard: VIP (port − 2), main (port), HA (port + 1), one spare.
pub const PORT_STRIDE: u16 = 4;

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            cluster_name: "DefaultCluster".into(),
            broker_name: "saturn".into(),
            broker_id: 0,
            namesrv_addrs: vec!["127.0.0.1:9876".into()],
            broker_ip: default_ip(),
            listen_port: 10911,
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            data_dir: PathBuf::from("./data"),
            commit_log_dir: None,
            segment_size: 1 << 30,
            flush: FlushDiskType::Async,
            role: BrokerRole::AsyncMaster,
            auto_create_topic: false,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            max_message_size: 4 * 1024 * 1024,
            file_reserved_time: Duration::from_secs(72 * 3600),
            delete_when: vec![4],
            register_interval: Duration::from_secs(30),
            client_channel_expiry: Duration::from_secs(120),
            max_frame_size: protocol::DEFAULT_MAX_FRAME_SIZE,
            flush_interval: Duration::from_millis(500),
            sync_flush_timeout: Duration::from_secs(5),
            hot_cache_bytes: 256 << 20,
            max_in_flight_per_connection: 4096,
            max_bytes_in_flight_per_connection: 64 << 20,
            max_connections_per_shard: 65536,
            idle_timeout: Duration::from_secs(120),
            region_id: "DefaultRegion".into(),
            trace_on: true,
            metrics_prom: false,
            metrics_port: 5557,
            metrics_host: IpAddr::from([0, 0, 0, 0]),
            trace_topic_enable: true,
            trace_topic_name: "RMQ_SYS_TRACE_TOPIC".into(),
            pin_cores: true,
            io_memory: 1 << 20,
            spin_before_park: Duration::ZERO,
            disk_max_used_ratio: 0.85,
            disk_min_free_bytes: 0,
            message_delay_levels: crate::timer::parse_delay_levels(
                crate::timer::DEFAULT_DELAY_LEVELS,
            )
            .unwrap_or_default(),
            // 40 days (RocketMQ: 3 days).
            timer_max_delay: Duration::from_secs(40 * 86_400),
            timer_index_max_in_memory: 2_000_000,
            ha_master_address: None,
            ha_listen_port: None,
            ha_max_gap: 256 << 20,
            slave_timeout: Duration::from_secs(3),
            ha_transfer_batch: 256 << 10,
            slave_read_enable: false,
            enable_property_filter: true,
            transaction: crate::transaction::TxConfig::default(),
            rebalance_lock_max_live: Duration::from_secs(60),
        }
    }
}

impl BrokerConfig {
    /// CLUSTER, MSG_REGION and TRACE_ON as a properties string: what the broker adds to every
    /// message it stores (the send path's `complete_properties`); built once per shard.
    pub fn stored_properties(&self) -> String {
        use protocol::message::properties as prop;
        let trace = if self.trace_on { "true" } else { "false" };
        let mut out = String::new();
        for (name, value) in [
            (prop::CLUSTER, self.cluster_name.as_str()),
            (prop::MSG_REGION, self.region_id.as_str()),
            (prop::TRACE_ON, trace),
        ] {
            out.push_str(name);
            out.push('\u{1}');
            out.push_str(value);
            out.push('\u{2}');
        }
        out
    }

    /// What each connection is bounded by.
    pub fn conn_limits(&self) -> crate::conn::Limits {
        crate::conn::Limits {
            max_frame_size: self.max_frame_size,
            max_in_flight: self.max_in_flight_per_connection,
            max_bytes_in_flight: self.max_bytes_in_flight_per_connection,
        }
    }

    pub fn shard_name(&self, shard: usize) -> String {
        format!("{}-{}", self.broker_name, shard)
    }

    pub fn shard_port(&self, shard: usize) -> u16 {
        self.listen_port + PORT_STRIDE * shard as u16
    }

    pub fn shard_addr(&self, shard: usize) -> String {
        format!("{}:{}", self.broker_ip, self.shard_port(shard))
    }

    /// Shard i's HA port (replication): `haListenPort` + 4i, default its port + 1.
    pub fn ha_port(&self, shard: usize) -> u16 {
        self.ha_listen_port.unwrap_or(self.listen_port + 1) + PORT_STRIDE * shard as u16
    }

    pub fn shard_dir(&self, shard: usize) -> PathBuf {
        self.data_dir.join(format!("shard-{shard}"))
    }

    pub fn shard_commit_log_dir(&self, shard: usize) -> PathBuf {
        match &self.commit_log_dir {
            Some(dir) => dir.join(format!("shard-{shard}")),
            None => self.shard_dir(shard).join("store"),
        }
    }

    /// Applies RocketMQ `broker.conf` properties. Unknown keys are returned
    /// so the caller can log them once.
    pub fn apply_properties(&mut self, pairs: &[(String, String)]) -> Result<Vec<String>, String> {
        let mut unknown = Vec::new();
        for (key, value) in pairs {
            if !(self.apply_core_key(key, value)? || self.apply_service_key(key, value)?) {
                unknown.push(key.clone());
            }
        }
        Ok(unknown)
    }

    /// Identity, network, store and flush keys.
    /// Ok(false): not a key of this group.
    fn apply_core_key(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let v = value.trim();
        let bad = || format!("broker.conf: {key}={value} is not valid");
        match key {
            "brokerClusterName" => self.cluster_name = v.to_owned(),
            "brokerName" => self.broker_name = v.to_owned(),
            "brokerId" => self.broker_id = v.parse().map_err(|_| bad())?,
            "namesrvAddr" => {
                self.namesrv_addrs = v
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "brokerIP1" => self.broker_ip = v.parse().map_err(|_| bad())?,
            "listenPort" => self.listen_port = v.parse().map_err(|_| bad())?,
            "storePathRootDir" => self.data_dir = PathBuf::from(v),
            "storePathCommitLog" => self.commit_log_dir = Some(PathBuf::from(v)),
            "mappedFileSizeCommitLog" => self.segment_size = v.parse().map_err(|_| bad())?,
            "flushDiskType" => self.flush = FlushDiskType::parse(v).ok_or_else(bad)?,
            "brokerRole" => self.role = BrokerRole::parse(v).ok_or_else(bad)?,
            "autoCreateTopicEnable" => self.auto_create_topic = parse_bool(v).ok_or_else(bad)?,
            "autoCreateSubscriptionGroup" => {
                self.auto_create_subscription_group = parse_bool(v).ok_or_else(bad)?
            }
            "defaultTopicQueueNums" => {
                self.default_topic_queue_nums = v.parse().map_err(|_| bad())?
            }
            "maxMessageSize" => self.max_message_size = v.parse().map_err(|_| bad())?,
            "fileReservedTime" => {
                let hours: u64 = v.parse().map_err(|_| bad())?;
                self.file_reserved_time = Duration::from_secs(hours * 3600);
            }
            "deleteWhen" => {
                self.delete_when = v
                    .split(';')
                    .map(|h| h.trim().parse::<u8>().ok().filter(|h| *h < 24))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(bad)?
            }
            "syncFlushTimeout" => {
                self.sync_flush_timeout = Duration::from_millis(v.parse().map_err(|_| bad())?)
            }
            "flushIntervalCommitLog" => {
                self.flush_interval = Duration::from_millis(v.parse().map_err(|_| bad())?)
            }
            "registerNameServerPeriod" => {
                let ms: u64 = v.parse().map_err(|_| bad())?;
                self.register_interval = Duration::from_millis(ms.clamp(10_000, 60_000));
            }
            "regionId" => self.region_id = v.to_owned(),
            "traceOn" => self.trace_on = parse_bool(v).ok_or_else(bad)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Metrics, trace, limits, filters, replication, transaction and timer keys.
    /// Ok(false): not a key of this group.
    fn apply_service_key(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let v = value.trim();
        let bad = || format!("broker.conf: {key}={value} is not valid");
        match key {
            "metricsExporterType" => match v {
                "PROM" => self.metrics_prom = true,
                "DISABLE" => self.metrics_prom = false,
                _ => {
                    return Err(format!(
                        "broker.conf: metricsExporterType={v}: Saturn serves PROM or DISABLE"
                    ))
                }
            },
            "metricsPromExporterPort" => self.metrics_port = v.parse().map_err(|_| bad())?,
            "metricsPromExporterHost" => self.metrics_host = v.parse().map_err(|_| bad())?,
            "traceTopicEnable" => self.trace_topic_enable = parse_bool(v).ok_or_else(bad)?,
            "msgTraceTopicName" => self.trace_topic_name = v.to_owned(),
            "diskMaxUsedSpaceRatio" => {
                let pct: f64 = v.parse().map_err(|_| bad())?;
                if !(10.0..=95.0).contains(&pct) {
                    return Err(bad());
                }
                self.disk_max_used_ratio = pct / 100.0;
            }
            "serverChannelMaxIdleTimeSeconds" => {
                self.idle_timeout = Duration::from_secs(v.parse().map_err(|_| bad())?)
            }
            "saturnMaxConnectionsPerShard" => {
                self.max_connections_per_shard = v.parse().map_err(|_| bad())?
            }
            "saturnMaxBytesInFlightPerConnection" => {
                self.max_bytes_in_flight_per_connection = v.parse().map_err(|_| bad())?
            }
            "diskMinFreeBytes" => self.disk_min_free_bytes = v.parse().map_err(|_| bad())?,
            "enablePropertyFilter" => {
                self.enable_property_filter = parse_bool(v).ok_or_else(bad)?
            }
            "saturnSpinBeforeParkMicros" => {
                self.spin_before_park = Duration::from_micros(v.parse().map_err(|_| bad())?)
            }
            "haMasterAddress" => {
                self.ha_master_address = Some(v.to_owned()).filter(|a| !a.is_empty())
            }
            "haListenPort" => self.ha_listen_port = Some(v.parse().map_err(|_| bad())?),
            "haMaxGapNotInSync" => self.ha_max_gap = v.parse().map_err(|_| bad())?,
            "slaveTimeout" => {
                self.slave_timeout = Duration::from_millis(v.parse().map_err(|_| bad())?)
            }
            "saturnHotCacheBytes" => {
                self.hot_cache_bytes = v.parse().map_err(|_| bad())?;
                if self.hot_cache_bytes < (1 << 20) {
                    return Err(bad());
                }
            }
            "slaveReadEnable" => self.slave_read_enable = parse_bool(v).ok_or_else(bad)?,
            "haTransferBatchSize" => {
                self.ha_transfer_batch = v.parse().map_err(|_| bad())?;
                if !(1024..=(64 << 20)).contains(&self.ha_transfer_batch) {
                    return Err(bad());
                }
            }
            "transactionTimeOut" => {
                self.transaction.timeout = Duration::from_millis(v.parse().map_err(|_| bad())?)
            }
            "transactionCheckInterval" => {
                let ms: u64 = v.parse().map_err(|_| bad())?;
                if ms == 0 {
                    return Err(bad());
                }
                self.transaction.interval = Duration::from_millis(ms)
            }
            "transactionCheckMax" => self.transaction.max_checks = v.parse().map_err(|_| bad())?,
            "rocketmq.broker.rebalance.lockMaxLiveTime" => {
                self.rebalance_lock_max_live = Duration::from_millis(v.parse().map_err(|_| bad())?)
            }
            "messageDelayLevel" => {
                self.message_delay_levels = crate::timer::parse_delay_levels(v).ok_or_else(bad)?
            }
            "timerMaxDelaySec" => {
                self.timer_max_delay = Duration::from_secs(v.parse().map_err(|_| bad())?)
            }
            "hotCacheBytes" => {
                let n: usize = v.parse().map_err(|_| bad())?;
                self.hot_cache_bytes = if n >= 1 << 20 { n } else { return Err(bad()) };
            }
            "timerIndexMaxInMemory" => {
                let n: usize = v.parse().map_err(|_| bad())?;
                self.timer_index_max_in_memory = if n > 0 { n } else { return Err(bad()) };
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn load_file(&mut self, path: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.apply_properties(&namesrv::processor::parse_properties(&text))
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The first non-loopback IPv4 address of this host, else 127.0.0.1: what
/// RocketMQ brokers advertise by default.
pub fn default_ip() -> IpAddr {
    let mut found = None;
    // SAFETY: getifaddrs fills a linked list that we only read and then
    // release with freeifaddrs; every pointer is checked for null before use
    // and ifa_addr is cast to sockaddr_in only when its family is AF_INET.
    unsafe {
        let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut addrs) == 0 {
            let mut cur = addrs;
            while !cur.is_null() {
                let ifa = &*cur;
                if !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    if !ip.is_loopback() && !ip.is_unspecified() && found.is_none() {
                        found = Some(ip);
                    }
                }
                cur = ifa.ifa_next;
            }
            libc::freeifaddrs(addrs);
        }
    }
    IpAddr::V4(found.unwrap_or(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_conf_keys() {
        let text = "brokerClusterName = C1\nbrokerName=b\nbrokerId=0\nnamesrvAddr=1.2.3.4:9876;5.6.7.8:9876\n\
                    brokerIP1=10.1.1.1\nlistenPort=20911\nflushDiskType=SYNC_FLUSH\nbrokerRole=ASYNC_MASTER\n\
                    autoCreateTopicEnable=true\ndeleteWhen=04\nfileReservedTime=48\n# c\nsomethingElse=1\n";
        let mut c = BrokerConfig::default();
        let unknown = c
            .apply_properties(&namesrv::processor::parse_properties(text))
            .unwrap();
        assert_eq!(unknown, vec!["somethingElse".to_string()]);
        assert_eq!(c.cluster_name, "C1");
        assert_eq!(c.namesrv_addrs.len(), 2);
        assert_eq!(c.broker_ip.to_string(), "10.1.1.1");
        assert_eq!(c.listen_port, 20911);
        assert_eq!(c.flush, FlushDiskType::Sync);
        assert!(c.auto_create_topic);
        assert_eq!(c.delete_when, vec![4]);
        assert_eq!(c.file_reserved_time, Duration::from_secs(48 * 3600));
        assert_eq!(c.shard_addr(1), "10.1.1.1:20915");
        let err = c
            .apply_properties(&[("listenPort".into(), "x".into())])
            .unwrap_err();
        assert!(err.contains("listenPort"));
    }

    #[test]
    fn connection_bounds() {
        let c = BrokerConfig::default();
        assert_eq!(c.max_connections_per_shard, 65536);
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert!(c.max_bytes_in_flight_per_connection >= c.max_frame_size);
        let mut c = BrokerConfig::default();
        let text = "serverChannelMaxIdleTimeSeconds=30\nsaturnMaxConnectionsPerShard=100\n\
                    saturnMaxBytesInFlightPerConnection=1048576\n";
        let unknown = c
            .apply_properties(&namesrv::processor::parse_properties(text))
            .unwrap();
        assert!(unknown.is_empty());
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections_per_shard, 100);
        let limits = c.conn_limits();
        assert_eq!(limits.max_bytes_in_flight, 1 << 20);
        assert_eq!(limits.max_in_flight, c.max_in_flight_per_connection);
        let err = c
            .apply_properties(&[("saturnMaxConnectionsPerShard".into(), "-1".into())])
            .unwrap_err();
        assert!(err.contains("saturnMaxConnectionsPerShard"));
    }

    /// The memory bounds of a shard's store and timer index.
    #[test]
    fn memory_bound_keys() {
        let mut c = BrokerConfig::default();
        assert_eq!(
            (c.hot_cache_bytes, c.timer_index_max_in_memory),
            (256 << 20, 2_000_000)
        );
        let text = "hotCacheBytes=67108864\ntimerIndexMaxInMemory=500000\n";
        let unknown = c
            .apply_properties(&namesrv::processor::parse_properties(text))
            .unwrap();
        assert!(unknown.is_empty());
        assert_eq!(
            (c.hot_cache_bytes, c.timer_index_max_in_memory),
            (64 << 20, 500_000)
        );
        for (key, value) in [("hotCacheBytes", "1000"), ("timerIndexMaxInMemory", "0")] {
            let err = c
                .apply_properties(&[(key.into(), value.into())])
                .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
