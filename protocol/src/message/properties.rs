//! The properties string (reference §3.3): `name \u{1} value \u{2}` per entry.

/// Separates a name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Terminates an entry.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// Separates several keys in [`KEYS`].
pub const KEY_SEPARATOR: char = ' ';

// System property names (Java `MessageConst`).
pub const KEYS: &str = "KEYS";
pub const TAGS: &str = "TAGS";
pub const WAIT: &str = "WAIT";
pub const DELAY: &str = "DELAY";
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
pub const REAL_TOPIC: &str = "REAL_TOPIC";
pub const REAL_QID: &str = "REAL_QID";
pub const TRAN_MSG: &str = "TRAN_MSG";
pub const PGROUP: &str = "PGROUP";
pub const MIN_OFFSET: &str = "MIN_OFFSET";
pub const MAX_OFFSET: &str = "MAX_OFFSET";
pub const BUYER_ID: &str = "BUYER_ID";
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
pub const MQ2_FLAG: &str = "MQ2_FLAG";
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
pub const MSG_REGION: &str = "MSG_REGION";
pub const TRACE_ON: &str = "TRACE_ON";
pub const UNIQ_KEY: &str = "UNIQ_KEY";
pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
pub const INNER_NUM: &str = "INNER_NUM";
pub const INNER_BASE: &str = "INNER_BASE";
pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
pub const TRANSACTION_ID: &str = "__transactionId__";
pub const INSTANCE_ID: &str = "INSTANCE_ID";
pub const CORRELATION_ID: &str = "CORRELATION_ID";
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
pub const TTL: &str = "TTL";
pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
pub const MSG_TYPE: &str = "MSG_TYPE";
pub const CLUSTER: &str = "CLUSTER";
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
pub const POP_CK: &str = "POP_CK";
pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
pub const BORN_HOST: &str = "__BORNHOST";
pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
pub const STARTDELIVERTIME: &str = "__STARTDELIVERTIME";

/// Properties in the order they were decoded or inserted. A name appears at most once:
/// decoding keeps the last value of a repeated name (as Java's `HashMap.put` does) at the
/// position of its first occurrence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, String)>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lenient decoding, exactly as Java's `MessageDecoder.string2messageProperties`.
    pub fn decode(s: &str) -> Self {
        let mut props = Properties::new();
        for (k, v) in iter_pairs(s) {
            props.insert(k, v);
        }
        props
    }

    /// `name \u{1} value \u{2}` for every entry, in order.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        for (k, v) in &self.entries {
            push_pair(&mut out, k, v);
        }
        out
    }

    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, keeping its position if present. Returns the old value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let name = name.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let idx = self.entries.iter().position(|(k, _)| k == name)?;
        Some(self.entries.remove(idx).1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.entries
    }

    /// The space-separated [`KEYS`], empty tokens dropped.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.get(KEYS)
            .unwrap_or("")
            .split(KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Properties {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        let mut p = Properties::new();
        for (k, v) in iter {
            p.insert(k, v);
        }
        p
    }
}

/// Encodes pairs in the given order (a repeated name is written as often as it is given).
pub fn encode_properties<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        push_pair(&mut out, k.as_ref(), v.as_ref());
    }
    out
}

/// Lenient decoding (see [`Properties::decode`]).
pub fn decode_properties(s: &str) -> Properties {
    Properties::decode(s)
}

/// The value of `name` in an encoded properties string, without allocating. When a name is
/// repeated the last value wins, as in Java.
pub fn property_value<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for (k, v) in iter_pairs(s) {
        if k == name {
            found = Some(v);
        }
    }
    found
}

/// The pairs Java's `string2messageProperties` accepts, in order: each segment ends at the next
/// `\u{2}` (or the end of the string); the segment must be at least 3 characters and its first
/// `\u{1}` must come after position 0 and before its last character.
///
/// The separators are ASCII, so byte positions and Java's UTF-16 positions accept the same pairs.
pub fn iter_pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = s.as_bytes();
    let len = bytes.len();
    let mut index = 0usize;
    std::iter::from_fn(move || {
        while index < len {
            let rest = &s[index..];
            let end = rest.find(PROPERTY_SEPARATOR).map_or(len, |rel| index + rel);
            let seg_start = index;
            index = end + 1;
            // Java measures the segment in UTF-16 units; "at least 3 units" needs at least 3 bytes
            // too, and the separator checks below decide the rest.
            if end - seg_start < 3 {
                continue;
            }
            // Java searches for \u{1} from the segment start to the end of the whole string.
            let kv = match s[seg_start..].find(NAME_VALUE_SEPARATOR) {
                Some(rel) => seg_start + rel,
                None => continue,
            };
            if kv > seg_start && kv < end - 1 {
                return Some((&s[seg_start..kv], &s[kv + 1..end]));
            }
        }
        None
    })
}

fn push_pair(out: &mut String, k: &str, v: &str) {
    out.push_str(k);
    out.push(NAME_VALUE_SEPARATOR);
    out.push_str(v);
    out.push(PROPERTY_SEPARATOR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = encode_properties(&[("TAGS", "TagA"), ("KEYS", "k1 k2"), (UNIQ_KEY, "ABC")]);
        assert_eq!(
            s,
            "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}ABC\u{2}"
        );
        let p = decode_properties(&s);
        assert_eq!(p.get(TAGS), Some("TagA"));
        assert_eq!(p.keys().collect::<Vec<_>>(), vec!["k1", "k2"]);
        assert_eq!(p.encode(), s);
        assert_eq!(property_value(&s, UNIQ_KEY), Some("ABC"));
        assert_eq!(property_value(&s, "NOPE"), None);
    }

    #[test]
    fn lenient_like_java() {
        // Missing final separator.
        assert_eq!(property_value("a\u{1}b", "a"), Some("b"));
        // Empty value: segment "a\u{1}" has \u{1} at its last char: rejected.
        assert_eq!(decode_properties("a\u{1}\u{2}").len(), 0);
        // Empty name rejected.
        assert_eq!(decode_properties("\u{1}bc\u{2}").len(), 0);
        // Segment shorter than 3.
        assert_eq!(decode_properties("a\u{2}\u{2}\u{2}").len(), 0);
        // No name/value separator in the segment, but one later in the string: rejected,
        // and the later pair still parses.
        let p = decode_properties("abc\u{2}x\u{1}y\u{2}");
        assert_eq!(p.into_vec(), vec![("x".to_string(), "y".to_string())]);
        // Value containing \u{1}.
        assert_eq!(property_value("a\u{1}b\u{1}c\u{2}", "a"), Some("b\u{1}c"));
        // Repeated name: last wins, first position kept.
        let p = decode_properties("a\u{1}1\u{2}b\u{1}2\u{2}a\u{1}3\u{2}");
        assert_eq!(p.get("a"), Some("3"));
        assert_eq!(p.iter().next(), Some(("a", "3")));
        assert_eq!(property_value("a\u{1}1\u{2}a\u{1}3\u{2}", "a"), Some("3"));
        assert_eq!(decode_properties("").len(), 0);
    }

    #[test]
    fn insert_remove() {
        let mut p = Properties::new();
        assert_eq!(p.insert("A", "1"), None);
        assert_eq!(p.insert("A", "2"), Some("1".into()));
        p.insert("B", "3");
        assert_eq!(p.remove("A"), Some("2".into()));
        assert_eq!(p.encode(), "B\u{1}3\u{2}");
        assert_eq!(p.encoded_len(), p.encode().len());
    }
}
