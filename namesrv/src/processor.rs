//! Request handling: one function per request code, each turning a decoded
//! request into a response.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::body::{
    decode_json, encode_json, GetBrokerMemberGroupResponseBody, KvTable, RegisterBrokerBody,
    TopicRouteData,
};
use protocol::header::{
    AddWritePermResponseHeader, BrokerHeartbeatRequestHeader, BrokerPermRequestHeader,
    CommandHeader, DeleteTopicFromNamesrvRequestHeader, GetBrokerMemberGroupRequestHeader,
    GetKvConfigResponseHeader, GetKvListByNamespaceRequestHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, HeaderError, KvConfigKeyRequestHeader,
    PutKvConfigRequestHeader, QueryDataVersionRequestHeader, QueryDataVersionResponseHeader,
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, TopicRequestHeader,
    UnregisterBrokerRequestHeader, WipeWritePermResponseHeader,
};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

use crate::kv::KvStore;
use crate::route::{ConnId, Registration, RouteTable};

/// The KV namespace whose entries feed `orderTopicConf` and the
/// registration response.
pub const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// Default expiry of a broker that names none in its registration.
    pub broker_expiry: Duration,
    /// Where KV config persists; in memory only when `None`.
    pub kv_config_path: Option<PathBuf>,
    /// Put `orderTopicConf` into routes of topics listed in ORDER_TOPIC_CONFIG.
    pub order_message_enable: bool,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        Self {
            broker_expiry: Duration::from_secs(120),
            kv_config_path: None,
            order_message_enable: false,
        }
    }
}

pub struct Processor {
    config: NamesrvConfig,
    routes: Mutex<RouteTable>,
    kv: Mutex<KvStore>,
    /// UPDATE_NAMESRV_CONFIG / GET_NAMESRV_CONFIG properties.
    properties: Mutex<BTreeMap<String, String>>,
    /// Requests answered (the metrics endpoint).
    requests: std::sync::atomic::AtomicU64,
}

fn header_error(request: &RemotingCommand, err: HeaderError) -> RemotingCommand {
    request.reply(ResponseCode::SYSTEM_ERROR, Some(err.to_string()))
}

/// Decodes a request's header or returns the error response from the caller.
macro_rules! header {
    ($ty:ty, $req:expr) => {
        match <$ty>::decode(&$req.ext_fields) {
            Ok(h) => h,
            Err(e) => return header_error($req, e),
        }
    };
}

impl Processor {
    pub fn new(config: NamesrvConfig) -> Self {
        let kv = KvStore::load(config.kv_config_path.clone());
        let mut properties = BTreeMap::new();
        properties.insert(
            "orderMessageEnable".to_string(),
            config.order_message_enable.to_string(),
        );
        properties.insert(
            "brokerExpiryMillis".to_string(),
            config.broker_expiry.as_millis().to_string(),
        );
        Self {
            config,
            routes: Mutex::new(RouteTable::default()),
            kv: Mutex::new(kv),
            properties: Mutex::new(properties),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, RouteTable> {
        // A panic while holding the lock would be a bug elsewhere; the table
        // itself stays consistent between operations, so keep serving.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kv(&self) -> std::sync::MutexGuard<'_, KvStore> {
        self.kv.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn expire(&self, now: Instant) -> Vec<String> {
        self.routes().expire(now)
    }

    pub fn connection_closed(&self, conn: ConnId) -> Vec<String> {
        self.routes().connection_closed(conn)
    }

    /// Broker addresses per cluster, topics with a route, requests answered (for metrics).
    pub fn figures(&self) -> (Vec<(String, usize)>, usize, u64) {
        let routes = self.routes();
        let info = routes.cluster_info();
        let clusters = info
            .cluster_addr_table
            .iter()
            .map(|(cluster, names)| {
                let addrs = names
                    .iter()
                    .filter_map(|n| info.broker_addr_table.get(n))
                    .map(|b| b.broker_addrs.len())
                    .sum();
                (cluster.clone(), addrs)
            })
            .collect();
        let topics = routes.all_topics().topic_list.len();
        let requests = self.requests.load(std::sync::atomic::Ordering::Relaxed);
        (clusters, topics, requests)
    }

    /// Handles one request; `None` for oneway requests.
    pub fn handle(&self, request: &RemotingCommand, conn: ConnId) -> Option<RemotingCommand> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = self.dispatch(request, conn);
        if request.is_oneway() {
            None
        } else {
            Some(response)
        }
    }

    fn dispatch(&self, req: &RemotingCommand, conn: ConnId) -> RemotingCommand {
        use RequestCode as C;
        match req.request_code() {
            C::REGISTER_BROKER => self.register_broker(req, conn),
            C::UNREGISTER_BROKER => self.unregister_broker(req),
            C::BROKER_HEARTBEAT => self.broker_heartbeat(req),
            C::QUERY_DATA_VERSION => self.query_data_version(req),
            C::GET_ROUTEINFO_BY_TOPIC => self.route(req),
            C::GET_BROKER_CLUSTER_INFO => req
                .success()
                .with_body(encode_json(&self.routes().cluster_info())),
            C::GET_ALL_TOPIC_LIST_FROM_NAMESERVER
            | C::GET_TOPICS_BY_CLUSTER
            | C::GET_SYSTEM_TOPIC_LIST_FROM_NS
            | C::GET_UNIT_TOPIC_LIST
            | C::GET_HAS_UNIT_SUB_TOPIC_LIST
            | C::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => self.topic_list(req),
            C::DELETE_TOPIC_IN_NAMESRV => {
                let h = header!(DeleteTopicFromNamesrvRequestHeader, req);
                self.routes()
                    .delete_topic(&h.topic, h.cluster_name.as_deref());
                req.success()
            }
            C::REGISTER_TOPIC_IN_NAMESRV => self.register_topic(req),
            C::WIPE_WRITE_PERM_OF_BROKER => self.write_perm(req, false),
            C::ADD_WRITE_PERM_OF_BROKER => self.write_perm(req, true),
            C::GET_BROKER_MEMBER_GROUP => {
                let h = header!(GetBrokerMemberGroupRequestHeader, req);
                let group = self.routes().member_group(&h.cluster_name, &h.broker_name);
                req.success()
                    .with_body(encode_json(&GetBrokerMemberGroupResponseBody {
                        broker_member_group: group,
                    }))
            }
            C::PUT_KV_CONFIG
            | C::GET_KV_CONFIG
            | C::DELETE_KV_CONFIG
            | C::GET_KVLIST_BY_NAMESPACE => self.kv_request(req),
            C::UPDATE_NAMESRV_CONFIG | C::GET_NAMESRV_CONFIG => self.config_request(req),
            other => req.reply(
                ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
                Some(format!(" request type {} not supported", other.num())),
            ),
        }
    }

    /// The topic lists: all, of a cluster, system, unit and unit-subscription ones.
    fn topic_list(&self, req: &RemotingCommand) -> RemotingCommand {
        use RequestCode as C;
        let routes = self.routes();
        let body = match req.request_code() {
            C::GET_TOPICS_BY_CLUSTER => {
                let h = header!(GetTopicsByClusterRequestHeader, req);
                encode_json(&routes.topics_of_cluster(&h.cluster))
            }
            C::GET_SYSTEM_TOPIC_LIST_FROM_NS => encode_json(&routes.system_topics()),
            C::GET_UNIT_TOPIC_LIST => encode_json(&routes.unit_topics(RouteTable::is_unit)),
            C::GET_HAS_UNIT_SUB_TOPIC_LIST => {
                encode_json(&routes.unit_topics(RouteTable::is_unit_sub))
            }
            C::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
                encode_json(&routes.unit_topics(RouteTable::is_unit_sub_not_unit))
            }
            _ => encode_json(&routes.all_topics()),
        };
        req.success().with_body(body)
    }

    fn register_topic(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = header!(TopicRequestHeader, req);
        match decode_json::<TopicRouteData>(&req.body) {
            Ok(route) => {
                self.routes().register_topic(&h.topic, &route.queue_datas);
                req.success()
            }
            Err(e) => req.reply(ResponseCode::SYSTEM_ERROR, Some(e.to_string())),
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`add` false) and ADD_WRITE_PERM_OF_BROKER: the number of
    /// topics changed.
    fn write_perm(&self, req: &RemotingCommand, add: bool) -> RemotingCommand {
        let h = header!(BrokerPermRequestHeader, req);
        let count = self.routes().set_write_perm(&h.broker_name, add);
        let mut resp = req.success();
        if add {
            AddWritePermResponseHeader {
                add_topic_count: count,
            }
            .encode(&mut resp.ext_fields);
        } else {
            WipeWritePermResponseHeader {
                wipe_topic_count: count,
            }
            .encode(&mut resp.ext_fields);
        }
        resp
    }

    /// PUT_KV_CONFIG, GET_KV_CONFIG, DELETE_KV_CONFIG, GET_KVLIST_BY_NAMESPACE.
    fn kv_request(&self, req: &RemotingCommand) -> RemotingCommand {
        use RequestCode as C;
        match req.request_code() {
            C::PUT_KV_CONFIG => {
                let h = header!(PutKvConfigRequestHeader, req);
                self.kv().put(&h.namespace, &h.key, &h.value);
                req.success()
            }
            C::GET_KV_CONFIG => {
                let h = header!(KvConfigKeyRequestHeader, req);
                match self.kv().get(&h.namespace, &h.key) {
                    Some(value) => {
                        let mut resp = req.success();
                        GetKvConfigResponseHeader { value: Some(value) }
                            .encode(&mut resp.ext_fields);
                        resp
                    }
                    None => req.reply(
                        ResponseCode::QUERY_NOT_FOUND,
                        Some(format!(
                            "No config item, Namespace: {} Key: {}",
                            h.namespace, h.key
                        )),
                    ),
                }
            }
            C::DELETE_KV_CONFIG => {
                let h = header!(KvConfigKeyRequestHeader, req);
                self.kv().delete(&h.namespace, &h.key);
                req.success()
            }
            _ => {
                let h = header!(GetKvListByNamespaceRequestHeader, req);
                match self.kv().namespace(&h.namespace) {
                    Some(table) => req.success().with_body(encode_json(&KvTable { table })),
                    None => req.reply(
                        ResponseCode::QUERY_NOT_FOUND,
                        Some(format!("No config item, Namespace: {}", h.namespace)),
                    ),
                }
            }
        }
    }

    /// UPDATE_NAMESRV_CONFIG and GET_NAMESRV_CONFIG.
    fn config_request(&self, req: &RemotingCommand) -> RemotingCommand {
        let mut props = self.properties.lock().unwrap_or_else(|p| p.into_inner());
        if req.request_code() == RequestCode::UPDATE_NAMESRV_CONFIG {
            let text = String::from_utf8_lossy(&req.body);
            for (k, v) in parse_properties(&text) {
                props.insert(k, v);
            }
            return req.success();
        }
        let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        req.success().with_body(text.into_bytes())
    }

    fn register_broker(&self, req: &RemotingCommand, conn: ConnId) -> RemotingCommand {
        let h = header!(RegisterBrokerRequestHeader, req);
        if let Some(expected) = h.body_crc32.filter(|crc| *crc != 0) {
            let actual = protocol::message::body_crc(&req.body);
            if actual != expected {
                return req.reply(
                    ResponseCode::SYSTEM_ERROR,
                    Some(format!("crc32 not match: header {expected}, body {actual}")),
                );
            }
        }
        let body = if req.body.is_empty() {
            RegisterBrokerBody::default()
        } else {
            match RegisterBrokerBody::decode(&req.body, h.compressed.unwrap_or(false)) {
                Ok(body) => body,
                Err(e) => {
                    return req.reply(
                        ResponseCode::SYSTEM_ERROR,
                        Some(format!("register broker failed: {e}")),
                    )
                }
            }
        };
        let timeout = h
            .heartbeat_timeout_millis
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms as u64))
            .unwrap_or(self.config.broker_expiry);
        let result = self.routes().register(
            Registration {
                cluster: &h.cluster_name,
                broker_name: &h.broker_name,
                broker_addr: &h.broker_addr,
                broker_id: h.broker_id,
                ha_server_addr: &h.ha_server_addr,
                timeout,
                enable_acting_master: h.enable_acting_master.unwrap_or(false),
                topics: &body.topic_config_serialize_wrapper,
                conn,
            },
            Instant::now(),
        );
        tracing::debug!(
            broker = %h.broker_name, addr = %h.broker_addr, id = h.broker_id,
            topics = body.topic_config_serialize_wrapper.topic_config_table.len(),
            "broker registered"
        );
        let mut resp = req.success();
        RegisterBrokerResponseHeader {
            ha_server_addr: result.ha_server_addr,
            master_addr: result.master_addr,
        }
        .encode(&mut resp.ext_fields);
        let table = self.kv().namespace(ORDER_TOPIC_CONFIG).unwrap_or_default();
        resp.with_body(encode_json(&KvTable { table }))
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = header!(UnregisterBrokerRequestHeader, req);
        self.routes()
            .unregister(&h.cluster_name, &h.broker_name, &h.broker_addr, h.broker_id);
        tracing::info!(broker = %h.broker_name, addr = %h.broker_addr, "broker unregistered");
        req.success()
    }

    fn broker_heartbeat(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = header!(BrokerHeartbeatRequestHeader, req);
        self.routes().touch(&h.broker_addr, Instant::now());
        req.success()
    }

    fn query_data_version(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = header!(QueryDataVersionRequestHeader, req);
        let theirs: Option<protocol::body::DataVersion> = decode_json(&req.body).ok();
        let ours = self.routes().touch(&h.broker_addr, Instant::now());
        let changed = match (&ours, &theirs) {
            (Some(a), Some(b)) => a != b,
            _ => true,
        };
        let mut resp = req.success();
        QueryDataVersionResponseHeader { changed }.encode(&mut resp.ext_fields);
        match ours {
            Some(version) => resp.with_body(encode_json(&version)),
            None => resp,
        }
    }

    fn route(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = header!(GetRouteInfoRequestHeader, req);
        let route = self.routes().route(&h.topic);
        match route {
            Some(mut route) => {
                if self.order_message_enabled() {
                    route.order_topic_conf = self.kv().get(ORDER_TOPIC_CONFIG, &h.topic);
                }
                req.success().with_body(encode_json(&route))
            }
            None => req.reply(
                ResponseCode::TOPIC_NOT_EXIST,
                Some(format!(
                    "No topic route info in name server for the topic: {}",
                    h.topic
                )),
            ),
        }
    }

    fn order_message_enabled(&self) -> bool {
        let props = self.properties.lock().unwrap_or_else(|p| p.into_inner());
        props
            .get("orderMessageEnable")
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
            .unwrap_or(false)
    }
}

/// Java properties text, the subset that matters here: `key=value` or
/// `key: value` lines, `#`/`!` comments, blank lines.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let idx = l.find(['=', ':'])?;
            Some((l[..idx].trim().to_owned(), l[idx + 1..].trim().to_owned()))
        })
        .collect()
}
