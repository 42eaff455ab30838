//! The remoting calls saturn-admin makes: one blocking connection per address,
//! opened on first use and kept for the run; a response other than SUCCESS is
//! an error carrying RocketMQ's code and remark.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use protocol::body::{decode_json, ClusterInfo, TopicRouteData};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use saturn_client::BlockingClient;
use serde_json::Value;

use crate::fjson;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Net(#[from] saturn_client::ClientError),
    #[error("{addr} answered {code} ({name}): {remark}")]
    Refused {
        addr: String,
        code: i32,
        name: &'static str,
        remark: String,
    },
    #[error("bad answer from {addr}: {what}")]
    Body { addr: String, what: String },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, AdminError>;

pub struct Admin {
    namesrv: Vec<String>,
    timeout: Duration,
    conns: HashMap<String, BlockingClient>,
}

impl Admin {
    /// `namesrv` is mqadmin's `-n`: one or more addresses separated by `;`.
    pub fn new(namesrv: &str, timeout: Duration) -> Self {
        let namesrv = namesrv
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Self {
            namesrv,
            timeout,
            conns: HashMap::new(),
        }
    }

    pub fn namesrv_addrs(&self) -> &[String] {
        &self.namesrv
    }

    /// Sends a request and returns the response, whatever its code.
    pub fn call_raw(&mut self, addr: &str, req: RemotingCommand) -> Result<RemotingCommand> {
        if !self.conns.contains_key(addr) {
            let c = BlockingClient::connect(addr, self.timeout)?;
            self.conns.insert(addr.to_owned(), c);
        }
        let conn = self.conns.get_mut(addr).expect("connected above");
        match conn.invoke(req) {
            Ok(resp) => Ok(resp),
            Err(e) => {
                self.conns.remove(addr);
                Err(e.into())
            }
        }
    }

    /// Sends a request; anything but SUCCESS is [`AdminError::Refused`].
    pub fn call(&mut self, addr: &str, req: RemotingCommand) -> Result<RemotingCommand> {
        let resp = self.call_raw(addr, req)?;
        if resp.code != ResponseCode::SUCCESS.num() {
            return Err(refused(addr, &resp));
        }
        Ok(resp)
    }

    /// Calls the first name server that answers.
    pub fn call_namesrv(&mut self, req: RemotingCommand) -> Result<RemotingCommand> {
        let addrs = self.namesrv.clone();
        let mut last = AdminError::Usage("no name server address: give -n host:port".into());
        for addr in &addrs {
            match self.call(addr, req.clone()) {
                Ok(resp) => return Ok(resp),
                Err(e @ AdminError::Refused { .. }) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn cluster_info(&mut self) -> Result<ClusterInfo> {
        let resp = self.call_namesrv(RemotingCommand::request(
            RequestCode::GET_BROKER_CLUSTER_INFO,
            0,
        ))?;
        json_body(&namesrv_label(&self.namesrv), &resp)
    }

    pub fn route(&mut self, topic: &str) -> Result<TopicRouteData> {
        let req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, 0)
            .with_ext("topic", topic);
        let resp = self.call_namesrv(req)?;
        json_body(&namesrv_label(&self.namesrv), &resp)
    }

    /// Master addresses by broker name: of one cluster, or of all.
    pub fn masters(&mut self, cluster: Option<&str>) -> Result<BTreeMap<String, String>> {
        let info = self.cluster_info()?;
        let names: Vec<String> = match cluster {
            Some(c) => info
                .cluster_addr_table
                .get(c)
                .ok_or_else(|| AdminError::Usage(format!("no cluster named {c}")))?
                .iter()
                .cloned()
                .collect(),
            None => info.broker_addr_table.keys().cloned().collect(),
        };
        let mut out = BTreeMap::new();
        for name in names {
            if let Some(addr) = info
                .broker_addr_table
                .get(&name)
                .and_then(|b| b.broker_addrs.get(&0))
            {
                out.insert(name, addr.clone());
            }
        }
        Ok(out)
    }

    /// `-b addr` wins; otherwise every master of `-c cluster` (or of all clusters).
    pub fn targets(&mut self, broker: Option<&str>, cluster: Option<&str>) -> Result<Vec<String>> {
        if let Some(b) = broker {
            return Ok(vec![b.to_owned()]);
        }
        Ok(self.masters(cluster)?.into_values().collect())
    }

    /// Master address of each broker in a topic's route.
    pub fn route_masters(&mut self, topic: &str) -> Result<BTreeMap<String, String>> {
        let route = self.route(topic)?;
        Ok(route
            .broker_datas
            .iter()
            .filter_map(|b| Some((b.broker_name.clone(), b.broker_addrs.get(&0)?.clone())))
            .collect())
    }
}

fn namesrv_label(addrs: &[String]) -> String {
    addrs.join(";")
}

pub fn refused(addr: &str, resp: &RemotingCommand) -> AdminError {
    AdminError::Refused {
        addr: addr.to_owned(),
        code: resp.code,
        name: ResponseCode::from_num(resp.code).name(),
        remark: resp.remark.clone().unwrap_or_default(),
    }
}

pub fn json_body<T: serde::de::DeserializeOwned>(addr: &str, resp: &RemotingCommand) -> Result<T> {
    decode_json(&resp.body).map_err(|e| AdminError::Body {
        addr: addr.to_owned(),
        what: e.to_string(),
    })
}

/// A body in fastjson's dialect (maps keyed by message queues).
pub fn fast_body(addr: &str, resp: &RemotingCommand) -> Result<Value> {
    fjson::parse(&resp.body).map_err(|e| AdminError::Body {
        addr: addr.to_owned(),
        what: e.to_string(),
    })
}

/// A `key=value` per line body (broker and name server configs).
pub fn properties_body(resp: &RemotingCommand) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&resp.body)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}
