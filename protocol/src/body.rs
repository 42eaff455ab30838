//! JSON bodies (reference §2.7, §5.3), accepting the shapes real clients send
//! and writing compact standard JSON.
//!
//! Leniency: numbers may arrive as strings and strings as numbers (the C++
//! client sends `subVersion` as a string), enums as names or ordinals, missing
//! fields take Java's defaults, unknown fields are ignored, and fastjson's
//! unquoted integer map keys (`{0:"addr"}`) are accepted through
//! [`decode_json`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::message::java_string_hash as java_hash;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("malformed JSON body: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed compressed body: {0}")]
    Compressed(String),
}

/// Parses a JSON body, first quoting fastjson's bare integer keys.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let normalized = quote_bare_keys(bytes);
    Ok(serde_json::from_slice(&normalized)?)
}

/// Compact standard JSON.
pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail: all keys are strings or
    // integers and no custom serializer returns an error.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// Rewrites `{0:"a",-1:"b"}` as `{"0":"a","-1":"b"}` outside of strings;
/// borrows the input when there is nothing to rewrite.
pub fn quote_bare_keys(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'{' || c == b',' {
            let mut j = i + 1;
            while j < input.len() && input[j].is_ascii_whitespace() {
                j += 1;
            }
            let start = j;
            if j < input.len() && input[j] == b'-' {
                j += 1;
            }
            let digits = j;
            while j < input.len() && input[j].is_ascii_digit() {
                j += 1;
            }
            let end = j;
            while j < input.len() && input[j].is_ascii_whitespace() {
                j += 1;
            }
            if end > digits && j < input.len() && input[j] == b':' {
                let buf = out.get_or_insert_with(|| input[..i].to_vec());
                buf.push(c);
                buf.push(b'"');
                buf.extend_from_slice(&input[start..end]);
                buf.push(b'"');
                i = end;
                continue;
            }
        }
        if let Some(buf) = out.as_mut() {
            buf.push(c);
        }
        i += 1;
    }
    match out {
        Some(buf) => Cow::Owned(buf),
        None => Cow::Borrowed(input),
    }
}

// ------------------------------------------------------------------ lenient

pub mod lenient {
    //! `deserialize_with` helpers that take a value in whatever JSON shape a
    //! client chose.
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Int(i64),
        Float(f64),
        Bool(bool),
        Str(String),
        Null,
    }

    fn int_of(value: Loose) -> Option<i64> {
        match value {
            Loose::Int(v) => Some(v),
            Loose::Float(v) => Some(v as i64),
            Loose::Bool(v) => Some(v as i64),
            Loose::Str(s) => s.trim().parse().ok(),
            Loose::Null => None,
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(int_of(Loose::deserialize(d)?).unwrap_or(0))
    }

    pub fn i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        Ok(int_of(Loose::deserialize(d)?).unwrap_or(0) as i32)
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(match Loose::deserialize(d)? {
            Loose::Bool(v) => v,
            Loose::Int(v) => v != 0,
            Loose::Float(v) => v != 0.0,
            Loose::Str(s) => s.trim().eq_ignore_ascii_case("true"),
            Loose::Null => false,
        })
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Loose::deserialize(d)? {
            Loose::Str(s) => s,
            Loose::Int(v) => v.to_string(),
            Loose::Float(v) => v.to_string(),
            Loose::Bool(v) => v.to_string(),
            Loose::Null => String::new(),
        })
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Loose::deserialize(d)? {
            Loose::Null => None,
            Loose::Str(s) => Some(s),
            Loose::Int(v) => Some(v.to_string()),
            Loose::Float(v) => Some(v.to_string()),
            Loose::Bool(v) => Some(v.to_string()),
        })
    }

    /// A list that may be null.
    pub fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }

    /// A set of strings that may hold numbers or be null.
    pub fn string_set<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
        let raw: Option<Vec<Loose>> = Option::deserialize(d)?;
        Ok(raw
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| match v {
                Loose::Str(s) => Some(s),
                Loose::Int(v) => Some(v.to_string()),
                _ => None,
            })
            .collect())
    }

    /// A set of integers that may arrive as strings or be null.
    pub fn int_set<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<i32>, D::Error> {
        let raw: Option<Vec<Loose>> = Option::deserialize(d)?;
        Ok(raw
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| int_of(v).map(|v| v as i32))
            .collect())
    }

    /// A string map whose values may be null or scalars of any type.
    pub fn string_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let raw: Option<BTreeMap<String, Loose>> = Option::deserialize(d)?;
        Ok(raw
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| match v {
                Loose::Str(s) => Some((k, s)),
                Loose::Int(v) => Some((k, v.to_string())),
                Loose::Float(v) => Some((k, v.to_string())),
                Loose::Bool(v) => Some((k, v.to_string())),
                Loose::Null => None,
            })
            .collect())
    }
}

/// Enums that travel as names (Java, Go) or ordinals (C++).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident default $default:ident { $($variant:ident = $ord:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum $name { $($variant),* }

        impl Default for $name {
            fn default() -> Self { $name::$default }
        }

        impl $name {
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
            pub fn ordinal(self) -> i64 {
                match self { $($name::$variant => $ord),* }
            }
            pub fn from_name(text: &str) -> Option<Self> {
                match text.trim() {
                    $(s if s.eq_ignore_ascii_case(stringify!($variant)) => Some($name::$variant),)*
                    s => s.parse::<i64>().ok().and_then(Self::from_ordinal),
                }
            }
            pub fn from_ordinal(ord: i64) -> Option<Self> {
                match ord { $($ord => Some($name::$variant),)* _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw { Int(i64), Str(String), Null }
                match Raw::deserialize(d)? {
                    Raw::Int(v) => Self::from_ordinal(v)
                        .ok_or_else(|| de::Error::custom(format!("{} has no ordinal {v}", stringify!($name)))),
                    Raw::Str(s) => Self::from_name(&s)
                        .ok_or_else(|| de::Error::custom(format!("{} has no value {s:?}", stringify!($name)))),
                    Raw::Null => Ok(Self::default()),
                }
            }
        }
    };
}

wire_enum! {
    /// How a consumer gets messages.
    ConsumeType default CONSUME_PASSIVELY { CONSUME_ACTIVELY = 0, CONSUME_PASSIVELY = 1, CONSUME_POP = 2 }
}
wire_enum! {
    MessageModel default CLUSTERING { BROADCASTING = 0, CLUSTERING = 1 }
}
wire_enum! {
    ConsumeFromWhere default CONSUME_FROM_LAST_OFFSET {
        CONSUME_FROM_LAST_OFFSET = 0,
        CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST = 1,
        CONSUME_FROM_MIN_OFFSET = 2,
        CONSUME_FROM_MAX_OFFSET = 3,
        CONSUME_FROM_FIRST_OFFSET = 4,
        CONSUME_FROM_TIMESTAMP = 5,
    }
}
wire_enum! {
    TopicFilterType default SINGLE_TAG { SINGLE_TAG = 0, MULTI_TAG = 1 }
}

// ------------------------------------------------------------------- common

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    #[serde(default, deserialize_with = "lenient::string")]
    pub topic: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub broker_name: String,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub queue_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    #[serde(default, deserialize_with = "lenient::i64")]
    pub state_version: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub timestamp: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub counter: i64,
}

/// Perm bits (reference §4.9).
pub mod perm {
    pub const PRIORITY: i32 = 8;
    pub const READ: i32 = 4;
    pub const WRITE: i32 = 2;
    pub const INHERIT: i32 = 1;

    pub fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }
    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }
    pub fn is_inherited(perm: i32) -> bool {
        perm & INHERIT != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    #[serde(default, deserialize_with = "lenient::string")]
    pub topic_name: String,
    #[serde(default = "sixteen", deserialize_with = "lenient::i32")]
    pub read_queue_nums: i32,
    #[serde(default = "sixteen", deserialize_with = "lenient::i32")]
    pub write_queue_nums: i32,
    #[serde(default = "rw", deserialize_with = "lenient::i32")]
    pub perm: i32,
    #[serde(default)]
    pub topic_filter_type: TopicFilterType,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub topic_sys_flag: i32,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub order: bool,
    #[serde(default, deserialize_with = "lenient::string_map")]
    pub attributes: BTreeMap<String, String>,
}

fn sixteen() -> i32 {
    16
}
fn rw() -> i32 {
    perm::READ | perm::WRITE
}

impl TopicConfig {
    pub fn new(name: impl Into<String>, read: i32, write: i32, perm: i32) -> Self {
        Self {
            topic_name: name.into(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_filter_type: TopicFilterType::SINGLE_TAG,
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        }
    }

    /// `TopicConfig.encode()`: the space-separated form of the compressed
    /// registration body.
    pub fn encode_text(&self) -> String {
        let attrs = serde_json::to_string(&self.attributes).unwrap_or_else(|_| "{}".into());
        format!(
            "{} {} {} {} {} {}",
            self.topic_name,
            self.read_queue_nums,
            self.write_queue_nums,
            self.perm,
            self.topic_filter_type.name(),
            attrs
        )
    }

    /// Parses [`TopicConfig::encode_text`]; `None` when fewer than five fields.
    pub fn decode_text(text: &str) -> Option<Self> {
        let mut parts = text.splitn(6, ' ');
        let name = parts.next()?;
        let read = parts.next()?.parse().ok()?;
        let write = parts.next()?.parse().ok()?;
        let perm = parts.next()?.parse().ok()?;
        let filter = TopicFilterType::from_name(parts.next()?)?;
        let attributes = parts
            .next()
            .and_then(|a| serde_json::from_str::<BTreeMap<String, String>>(a).ok())
            .unwrap_or_default();
        Some(Self {
            topic_name: name.to_owned(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_filter_type: filter,
            topic_sys_flag: 0,
            order: false,
            attributes,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    #[serde(default)]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    #[serde(default)]
    pub data_version: DataVersion,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    #[serde(default)]
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub filter_server_list: Vec<String>,
}

/// Upper bound for an inflated registration body.
pub const MAX_INFLATED_REGISTER_BODY: u64 = 64 * 1024 * 1024;

impl RegisterBrokerBody {
    /// Decodes either the JSON body or, with `compressed`, the deflated
    /// binary form (reference §2.2, REGISTER_BROKER).
    pub fn decode(body: &[u8], compressed: bool) -> Result<Self, BodyError> {
        if compressed {
            Self::decode_compressed(body)
        } else {
            decode_json(body)
        }
    }

    pub fn decode_compressed(body: &[u8]) -> Result<Self, BodyError> {
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .take(MAX_INFLATED_REGISTER_BODY + 1)
            .read_to_end(&mut inflated)
            .map_err(|e| BodyError::Compressed(format!("inflate: {e}")))?;
        if inflated.len() as u64 > MAX_INFLATED_REGISTER_BODY {
            return Err(BodyError::Compressed("inflated body too large".into()));
        }
        let mut cur = Cursor {
            buf: &inflated,
            pos: 0,
        };
        let data_version: DataVersion = decode_json(cur.chunk("data version")?)?;
        let count = cur.int("topic count")?;
        let mut table = BTreeMap::new();
        for _ in 0..count {
            let text = std::str::from_utf8(cur.chunk("topic config")?)
                .map_err(|_| BodyError::Compressed("topic config is not UTF-8".into()))?;
            let config = TopicConfig::decode_text(text)
                .ok_or_else(|| BodyError::Compressed(format!("bad topic config {text:?}")))?;
            table.insert(config.topic_name.clone(), config);
        }
        let filter_server_list = if cur.remaining() >= 4 {
            decode_json::<Option<Vec<String>>>(cur.chunk("filter server list")?)?
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        // 5.x brokers append topic-queue mappings; static topics are not
        // supported, so they are read past and dropped.
        Ok(Self {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: table,
                data_version,
            },
            filter_server_list,
        })
    }

    /// The compressed form, as a 4.x broker with `compressedRegister` sends it.
    pub fn encode_compressed(&self) -> Vec<u8> {
        use std::io::Write;
        let mut raw = Vec::new();
        let put_chunk = |raw: &mut Vec<u8>, bytes: &[u8]| {
            raw.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            raw.extend_from_slice(bytes);
        };
        let wrapper = &self.topic_config_serialize_wrapper;
        put_chunk(&mut raw, &encode_json(&wrapper.data_version));
        raw.extend_from_slice(&(wrapper.topic_config_table.len() as i32).to_be_bytes());
        for config in wrapper.topic_config_table.values() {
            put_chunk(&mut raw, config.encode_text().as_bytes());
        }
        put_chunk(&mut raw, &encode_json(&self.filter_server_list));
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = enc.write_all(&raw);
        enc.finish().unwrap_or_default()
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn int(&mut self, what: &str) -> Result<i32, BodyError> {
        if self.remaining() < 4 {
            return Err(BodyError::Compressed(format!("truncated at {what}")));
        }
        let b = &self.buf[self.pos..self.pos + 4];
        self.pos += 4;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn chunk(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = self.int(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.remaining())
            .ok_or_else(|| BodyError::Compressed(format!("bad length {len} at {what}")))?;
        let chunk = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(chunk)
    }
}

/// Response body of REGISTER_BROKER and GET_KVLIST_BY_NAMESPACE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KvTable {
    #[serde(default, deserialize_with = "lenient::string_map")]
    pub table: BTreeMap<String, String>,
}

// ------------------------------------------------------------------- routes

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    #[serde(default, deserialize_with = "lenient::string")]
    pub broker_name: String,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub perm: i32,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub read_queue_nums: i32,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub topic_sys_flag: i32,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub write_queue_nums: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// brokerId → `ip:port`; written with quoted keys.
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub broker_name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub cluster: String,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub enable_acting_master: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub queue_datas: Vec<QueueData>,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub broker_datas: Vec<BrokerData>,
    #[serde(default)]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
}

impl TopicRouteData {
    /// The master's address (broker id 0) of `broker_name`, if the route has one.
    pub fn master_of(&self, broker_name: &str) -> Option<&String> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
            .and_then(|b| b.broker_addrs.get(&0))
    }

    /// Each queue data whose broker has a master in the route, with the master's address.
    pub fn master_queue_datas(&self) -> impl Iterator<Item = (&QueueData, &String)> {
        self.queue_datas
            .iter()
            .filter_map(|qd| Some((qd, self.master_of(&qd.broker_name)?)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    #[serde(default)]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    #[serde(default)]
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    #[serde(default, deserialize_with = "lenient::string_set")]
    pub topic_list: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BrokerMemberGroup {
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
    #[serde(default)]
    pub broker_name: String,
    #[serde(default)]
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GetBrokerMemberGroupResponseBody {
    pub broker_member_group: BrokerMemberGroup,
}

// --------------------------------------------------------------- heartbeats

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    #[serde(default, deserialize_with = "lenient::bool")]
    pub class_filter_mode: bool,
    #[serde(default, deserialize_with = "lenient::string")]
    pub topic: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub sub_string: String,
    #[serde(default, deserialize_with = "lenient::string_set")]
    pub tags_set: BTreeSet<String>,
    #[serde(default, deserialize_with = "lenient::int_set")]
    pub code_set: BTreeSet<i32>,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub sub_version: i64,
    /// Absent from ali-ons and C++ heartbeats: TAG.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub expression_type: Option<String>,
}

impl SubscriptionData {
    /// The subscription for `expression` as `FilterAPI.build` makes it.
    pub fn build(topic: &str, expression: &str, sub_version: i64) -> Self {
        let mut data = Self {
            topic: topic.to_owned(),
            sub_string: expression.trim().to_owned(),
            sub_version,
            expression_type: Some("TAG".into()),
            ..Self::default()
        };
        if data.is_all() {
            data.sub_string = "*".into();
        } else {
            for tag in expression
                .split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                data.tags_set.insert(tag.to_owned());
                data.code_set.insert(java_hash(tag));
            }
        }
        data
    }

    pub fn is_all(&self) -> bool {
        let s = self.sub_string.trim();
        s.is_empty() || s == "*"
    }

    pub fn is_tag_type(&self) -> bool {
        self.expression_type
            .as_deref()
            .map(|t| t.is_empty() || t.eq_ignore_ascii_case("TAG"))
            .unwrap_or(true)
    }

    /// Whether a consume-queue entry's tag code passes this subscription.
    /// Codes are derived from the tags whenever tags are present: the C++
    /// client sends `codeSet` full of zeros.
    pub fn matches_tag_code(&self, tag_code: i64) -> bool {
        if self.is_all() {
            return true;
        }
        if !self.tags_set.is_empty() {
            return self
                .tags_set
                .iter()
                .any(|t| java_hash(t) as i64 == tag_code);
        }
        if !self.code_set.is_empty() {
            return self.code_set.contains(&(tag_code as i32));
        }
        // An expression whose tags were not listed: derive them.
        self.sub_string
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .any(|t| java_hash(t) as i64 == tag_code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    #[serde(default, deserialize_with = "lenient::string")]
    pub group_name: String,
    #[serde(default)]
    pub consume_type: ConsumeType,
    #[serde(default)]
    pub message_model: MessageModel,
    #[serde(default)]
    pub consume_from_where: ConsumeFromWhere,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub unit_mode: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    #[serde(default, deserialize_with = "lenient::string")]
    pub group_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatData {
    #[serde(rename = "clientID", default, deserialize_with = "lenient::string")]
    pub client_id: String,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub producer_data_set: Vec<ProducerData>,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub consumer_data_set: Vec<ConsumerData>,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub heartbeat_fingerprint: i64,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub without_sub: bool,
}

// ------------------------------------------------------------ consumer side

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    #[serde(default, deserialize_with = "lenient::string")]
    pub consumer_group: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub client_id: String,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub only_this_broker: bool,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub mq_set: Vec<MessageQueue>,
}

/// UNLOCK_BATCH_MQ carries the same shape.
pub type UnlockBatchRequestBody = LockBatchRequestBody;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet", default, deserialize_with = "lenient::vec")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerListByGroupResponseBody {
    #[serde(default, deserialize_with = "lenient::vec")]
    pub consumer_id_list: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckClientRequestBody {
    #[serde(default, deserialize_with = "lenient::string")]
    pub client_id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub group: String,
    #[serde(default)]
    pub subscription_data: SubscriptionData,
}

// ---------------------------------------------------------------- admin side

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    #[serde(default, deserialize_with = "lenient::string")]
    pub group_name: String,
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    pub consume_enable: bool,
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    pub consume_from_min_enable: bool,
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    pub consume_broadcast_enable: bool,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub consume_message_orderly: bool,
    #[serde(default = "one", deserialize_with = "lenient::i32")]
    pub retry_queue_nums: i32,
    #[serde(default = "sixteen", deserialize_with = "lenient::i32")]
    pub retry_max_times: i32,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub broker_id: i64,
    #[serde(default = "one_i64", deserialize_with = "lenient::i64")]
    pub which_broker_when_consume_slowly: i64,
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    pub notify_consumer_ids_changed_enable: bool,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub group_sys_flag: i32,
    #[serde(default = "fifteen", deserialize_with = "lenient::i32")]
    pub consume_timeout_minute: i32,
}

fn yes() -> bool {
    true
}
fn one() -> i32 {
    1
}
fn one_i64() -> i64 {
    1
}
fn fifteen() -> i32 {
    15
}

impl SubscriptionGroupConfig {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group_name: group.into(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupWrapper {
    #[serde(default)]
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    #[serde(default)]
    pub data_version: DataVersion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    pub language: String,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerConnection {
    pub connection_set: Vec<Connection>,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProducerConnection {
    pub connection_set: Vec<Connection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    pub group_list: BTreeSet<String>,
}

/// `{"offsetTable":{"topic@group":{0:12,1:7}}}`, written with quoted keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOffsetSerializeWrapper {
    #[serde(default)]
    pub offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopicOffset {
    pub min_offset: i64,
    pub max_offset: i64,
    pub last_update_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OffsetWrapper {
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub pull_offset: i64,
    pub last_timestamp: i64,
}

/// Writes a map keyed by `MessageQueue` the way fastjson does, with object
/// literals as keys: `{{"brokerName":"b","queueId":0,"topic":"t"}:value}`.
/// Not standard JSON, but what Java admin tools parse.
pub fn mq_keyed_map_json<T: Serialize>(entries: &[(MessageQueue, T)]) -> String {
    let mut out = String::from("{");
    for (i, (mq, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"brokerName\":{},\"queueId\":{},\"topic\":{}}}:",
            serde_json::Value::from(mq.broker_name.as_str()),
            mq.queue_id,
            serde_json::Value::from(mq.topic.as_str())
        ));
        out.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_uses_quoted_keys_and_accepts_bare_ones() {
        let mut route = TopicRouteData::default();
        route.queue_datas.push(QueueData {
            broker_name: "broker-a".into(),
            perm: 6,
            read_queue_nums: 4,
            topic_sys_flag: 0,
            write_queue_nums: 4,
        });
        let mut bd = BrokerData {
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            ..Default::default()
        };
        bd.broker_addrs.insert(0, "10.0.0.1:10911".into());
        bd.broker_addrs.insert(1, "10.0.0.2:10911".into());
        route.broker_datas.push(bd);
        let text = String::from_utf8(encode_json(&route)).unwrap();
        assert_eq!(
            text,
            r#"{"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}],"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{}}"#
        );
        let bare = text.replace("\"0\":", "0:").replace("\"1\":", " 1 :");
        let back: TopicRouteData = decode_json(bare.as_bytes()).unwrap();
        assert_eq!(back, route);
    }

    #[test]
    fn quoting_leaves_strings_alone() {
        let input = br#"{"a":"{0:1}","b":{0:"x",-2:"y"}}"#;
        let out = quote_bare_keys(input);
        assert_eq!(&out[..], br#"{"a":"{0:1}","b":{"0":"x","-2":"y"}}"#);
        assert!(matches!(quote_bare_keys(b"{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn heartbeat_from_cpp_shape() {
        let body = br#"{"clientID":"127.0.0.1@1#2","consumerDataSet":[{"consumeFromWhere":4,"consumeType":1,"groupName":"cg","messageModel":1,"subscriptionDataSet":[{"codeSet":["2598919"],"subString":"TagA","subVersion":"1700000000123","tagsSet":["TagA"],"topic":"T"}]}],"producerDataSet":[{"groupName":"pg"}]}"#;
        let hb: HeartbeatData = decode_json(body).unwrap();
        let c = &hb.consumer_data_set[0];
        assert_eq!(c.consume_type, ConsumeType::CONSUME_PASSIVELY);
        assert_eq!(c.message_model, MessageModel::CLUSTERING);
        assert_eq!(
            c.consume_from_where,
            ConsumeFromWhere::CONSUME_FROM_FIRST_OFFSET
        );
        let s = &c.subscription_data_set[0];
        assert_eq!(s.sub_version, 1_700_000_000_123);
        assert!(s.code_set.contains(&2_598_919));
        assert!(s.is_tag_type());
        assert!(s.matches_tag_code(2_598_919));
        assert!(!s.matches_tag_code(1));
    }

    #[test]
    fn heartbeat_from_ali_ons_shape() {
        let body = br#"{"clientID":"x@y","producerDataSet":[],"consumerDataSet":[{"groupName":"g","consumeType":"CONSUME_PASSIVELY","messageModel":"BROADCASTING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,"subscriptionDataSet":[{"topic":"T","subString":"TagA || TagB","classFilterMode":false,"tagsSet":["TagA","TagB"],"codeSet":[2598919,2598920],"subVersion":1}]}]}"#;
        let hb: HeartbeatData = decode_json(body).unwrap();
        assert_eq!(
            hb.consumer_data_set[0].message_model,
            MessageModel::BROADCASTING
        );
        let s = &hb.consumer_data_set[0].subscription_data_set[0];
        assert_eq!(s.expression_type, None);
        assert_eq!(
            SubscriptionData::build("T", "TagA || TagB", 1).code_set,
            s.code_set
        );
    }

    #[test]
    fn compressed_register_body_round_trips() {
        let mut body = RegisterBrokerBody::default();
        let wrapper = &mut body.topic_config_serialize_wrapper;
        wrapper.data_version.counter = 3;
        wrapper.data_version.timestamp = 1_700_000_000_000;
        wrapper
            .topic_config_table
            .insert("TopicTest".into(), TopicConfig::new("TopicTest", 4, 4, 6));
        let bytes = body.encode_compressed();
        let back = RegisterBrokerBody::decode(&bytes, true).unwrap();
        assert_eq!(back, body);
        assert!(RegisterBrokerBody::decode(&bytes[..bytes.len() / 2], true).is_err());
        assert_eq!(
            TopicConfig::new("T", 4, 4, 6).encode_text(),
            "T 4 4 6 SINGLE_TAG {}"
        );
    }

    #[test]
    fn mq_keyed_map_is_fastjson_form() {
        let mq = MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 0,
        };
        assert_eq!(
            mq_keyed_map_json(&[(mq, 123i64)]),
            r#"{{"brokerName":"b","queueId":0,"topic":"T"}:123}"#
        );
    }
}
