//! `RemotingCommand`: the header every frame carries, in either of the two
//! serializations (reference §1.3, §1.4).
//!
//! Input is lenient the way real clients need: ext values sent as JSON numbers
//! or booleans become strings, `remark` may be null or absent, `language`,
//! `version` and `serializeTypeCurrentRPC` may be missing, unknown keys are
//! ignored. Output is strict: every ext value a string, `extFields` always
//! present, a real `version`, `flag` and `opaque` as the peer expects.

use std::fmt::Write as _;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::code::{LanguageCode, RequestCode, ResponseCode, SATURN_REMOTING_VERSION};
use crate::frame::{put_frame_prefix, RawFrame};

/// Custom header fields, always strings (reference §1.8).
///
/// A request carries a dozen or so of them. They live in one text buffer
/// with a table of (key, value) spans, searched linearly: decoding a header
/// costs two allocations however many fields it has, and short key
/// comparisons beat a tree. Insertion order is kept (and used when
/// encoding); equality ignores order. Replacing a value leaves the old text
/// in the buffer until the map is dropped or cleared.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    /// Byte ranges in `text`: key start, key end, value start, value end.
    spans: Vec<[u32; 4]>,
}

impl ExtFields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            text: String::new(),
            spans: Vec::with_capacity(n),
        }
    }

    /// Room for `fields` fields of `text` bytes in all.
    pub fn with_capacities(fields: usize, text: usize) -> Self {
        Self {
            text: String::with_capacity(text),
            spans: Vec::with_capacity(fields),
        }
    }

    fn key_at(&self, s: &[u32; 4]) -> &str {
        &self.text[s[0] as usize..s[1] as usize]
    }

    fn value_at(&self, s: &[u32; 4]) -> &str {
        &self.text[s[2] as usize..s[3] as usize]
    }

    fn position(&self, key: &str) -> Option<usize> {
        let text = self.text.as_bytes();
        let key = key.as_bytes();
        self.spans
            .iter()
            .position(|s| same_key(&text[s[0] as usize..s[1] as usize], key))
    }

    /// Sets `key`, replacing an earlier value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        self.insert_with(key.as_ref(), |out| out.push_str(value.as_ref()));
    }

    /// Sets `key` to the text `write` appends to the buffer it is given.
    pub fn insert_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        write(&mut self.text);
        self.finish_field(start, key_end);
    }

    /// Starts a field whose key and value the caller writes into
    /// [`ExtFields::text_mut`] (decoders that unescape in place); ends with
    /// [`ExtFields::finish_field`]. Keys must not repeat (the caller checks
    /// with [`ExtFields::contains_key`] or accepts the later-wins rule of
    /// [`ExtFields::finish_field`]).
    pub(crate) fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    /// Ends a field written into the buffer: the key is `key` bytes from
    /// `start`, the value the rest. A key already present takes the new value.
    pub(crate) fn finish_field(&mut self, start: usize, key_end: usize) {
        let span = [
            start as u32,
            key_end as u32,
            key_end as u32,
            self.text.len() as u32,
        ];
        let text = self.text.as_bytes();
        let key = &text[start..key_end];
        match self
            .spans
            .iter()
            .position(|s| same_key(&text[s[0] as usize..s[1] as usize], key))
        {
            Some(i) => self.spans[i] = span,
            None => self.spans.push(span),
        }
    }

    /// Forgets a field whose text was written but that is not wanted (a
    /// null value): truncates the buffer back to `start`.
    pub(crate) fn abandon_field(&mut self, start: usize) {
        self.text.truncate(start);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.value_at(&self.spans[i]))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key)?;
        let value = self.value_at(&self.spans[i]).to_owned();
        self.spans.remove(i);
        Some(value)
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            ext: self,
            spans: self.spans.iter(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let text = &self.text;
        self.spans.retain(|s| {
            keep(
                &text[s[0] as usize..s[1] as usize],
                &text[s[2] as usize..s[3] as usize],
            )
        });
    }
}

/// Key equality for short keys (most are 1 to 20 bytes): lengths first,
/// then bytes in an inlined loop rather than a `memcmp` call.
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The fields of an [`ExtFields`], in insertion order.
pub struct Iter<'a> {
    ext: &'a ExtFields,
    spans: std::slice::Iter<'a, [u32; 4]>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.spans.next()?;
        Some((self.ext.key_at(s), self.ext.value_at(s)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for ExtFields {}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ext = ExtFields::new();
        ext.extend(iter);
        ext
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for ExtFields {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `flag` bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// `flag` bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

impl SerializeType {
    pub fn byte(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown header serialization type {0}")]
    UnknownSerializeType(u8),
    #[error("malformed JSON header: {0}")]
    Json(String),
    #[error("JSON header has no `code`")]
    MissingCode,
    #[error("malformed ROCKETMQ header: {what} at byte {offset}")]
    Binary { what: &'static str, offset: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub body: Bytes,
    /// How this command's header was (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A new request with Saturn's language and version.
    pub fn request(code: RequestCode, opaque: i32) -> Self {
        Self {
            code: code.num(),
            language: LanguageCode::RUST,
            version: SATURN_REMOTING_VERSION,
            opaque,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A response to a request with the given opaque. Saturn answers as a
    /// Java server would (`language` JAVA), which every client accepts.
    pub fn response(code: ResponseCode, opaque: i32, remark: Option<String>) -> Self {
        Self {
            code: code.num(),
            language: LanguageCode::JAVA,
            version: SATURN_REMOTING_VERSION,
            opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// The response to `self`, echoing its opaque.
    pub fn reply(&self, code: ResponseCode, remark: impl Into<Option<String>>) -> Self {
        Self::response(code, self.opaque, remark.into())
    }

    pub fn success(&self) -> Self {
        self.reply(ResponseCode::SUCCESS, None)
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_ext(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.ext_fields.insert_with(key, |out| {
            let _ = write!(out, "{value}");
        });
        self
    }

    pub fn request_code(&self) -> RequestCode {
        RequestCode::from_num(self.code)
    }

    pub fn response_code(&self) -> ResponseCode {
        ResponseCode::from_num(self.code)
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn set_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// Decodes a frame's header and takes its body.
    pub fn decode(frame: RawFrame) -> Result<Self, CommandError> {
        let mut cmd = match frame.serialize_type {
            0 => decode_json_header(&frame.header)?,
            1 => decode_binary_header(&frame.header)?,
            other => return Err(CommandError::UnknownSerializeType(other)),
        };
        cmd.body = frame.body;
        Ok(cmd)
    }

    /// A frame's `code` and `opaque` without decoding the rest (no
    /// allocation): what a load generator needs of each response. `None`
    /// when the cheap scan cannot tell; [`RemotingCommand::decode`] then
    /// decides.
    pub fn peek_code_and_opaque(frame: &RawFrame) -> Option<(i32, i32)> {
        match frame.serialize_type {
            0 => fast::peek_code_and_opaque(&frame.header),
            1 => {
                // code i16, language u8, version i16, opaque i32.
                let h = &frame.header;
                let code = i16::from_be_bytes(h.get(0..2)?.try_into().ok()?);
                let opaque = i32::from_be_bytes(h.get(5..9)?.try_into().ok()?);
                Some((i32::from(code), opaque))
            }
            _ => None,
        }
    }

    /// Encodes the header in this command's serialization.
    pub fn encode_header(&self) -> Vec<u8> {
        match self.serialize_type {
            SerializeType::Json => self.encode_json_header(),
            SerializeType::RocketMq => self.encode_binary_header(),
        }
    }

    /// Writes the whole frame: prefix, header and body.
    pub fn encode(&self, dst: &mut BytesMut) {
        if self.serialize_type == SerializeType::Json {
            self.encode_prefix_and_header(dst, self.body.len());
            dst.put_slice(&self.body);
            return;
        }
        let header = self.encode_header();
        dst.reserve(8 + header.len() + self.body.len());
        put_frame_prefix(
            dst,
            self.serialize_type.byte(),
            header.len(),
            self.body.len(),
        );
        dst.put_slice(&header);
        dst.put_slice(&self.body);
    }

    /// Writes prefix and header for a body of `body_len` bytes that the
    /// caller sends separately (the zero-copy pull path).
    pub fn encode_prefix_and_header(&self, dst: &mut BytesMut, body_len: usize) {
        if self.serialize_type == SerializeType::Json {
            // The JSON header is written in place and the prefix patched.
            let start = dst.len();
            dst.reserve(8 + 160 + 40 * self.ext_fields.len());
            dst.put_u64(0);
            self.write_json_header(dst);
            let header_len = dst.len() - start - 8;
            let mut prefix = [0u8; 8];
            put_frame_prefix(&mut &mut prefix[..], 0, header_len, body_len);
            dst[start..start + 8].copy_from_slice(&prefix);
            return;
        }
        let header = self.encode_header();
        dst.reserve(8 + header.len());
        put_frame_prefix(dst, self.serialize_type.byte(), header.len(), body_len);
        dst.put_slice(&header);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::new();
        self.encode(&mut dst);
        dst.freeze()
    }

    /// The JSON header, keys in the alphabetical order Java writes them.
    pub fn encode_json_header(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(160 + 40 * self.ext_fields.len());
        self.write_json_header(&mut out);
        out.to_vec()
    }

    /// Appends the JSON header to `out`.
    fn write_json_header(&self, out: &mut BytesMut) {
        let mut num = itoa::Buffer::new();
        out.put_slice(b"{\"code\":");
        out.put_slice(num.format(self.code).as_bytes());
        out.put_slice(b",\"extFields\":{");
        for (i, (key, value)) in self.ext_fields.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            push_json_string(out, key);
            out.put_u8(b':');
            push_json_string(out, value);
        }
        out.put_slice(b"},\"flag\":");
        out.put_slice(num.format(self.flag).as_bytes());
        out.put_slice(b",\"language\":\"");
        out.put_slice(self.language.name().as_bytes());
        out.put_slice(b"\",\"opaque\":");
        out.put_slice(num.format(self.opaque).as_bytes());
        if let Some(remark) = &self.remark {
            out.put_slice(b",\"remark\":");
            push_json_string(out, remark);
        }
        out.put_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
        out.put_slice(num.format(self.version).as_bytes());
        out.put_u8(b'}');
    }

    /// The ROCKETMQ binary header (reference §1.4).
    pub fn encode_binary_header(&self) -> Vec<u8> {
        let remark = self.remark.as_deref().unwrap_or("");
        let mut ext = Vec::new();
        for (key, value) in &self.ext_fields {
            if key.is_empty() || value.is_empty() {
                continue; // a zero length decodes as null on the Java side
            }
            ext.put_u16(key.len() as u16);
            ext.put_slice(key.as_bytes());
            ext.put_u32(value.len() as u32);
            ext.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(21 + remark.len() + ext.len());
        out.put_i16(self.code as i16);
        out.put_u8(self.language.num());
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        out.put_u32(remark.len() as u32);
        out.put_slice(remark.as_bytes());
        out.put_u32(ext.len() as u32);
        out.put_slice(&ext);
        out
    }
}

fn push_json_string(out: &mut BytesMut, value: &str) {
    out.put_u8(b'"');
    // Most values need no escaping: copy them whole.
    if !value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.put_slice(value.as_bytes());
        out.put_u8(b'"');
        return;
    }
    for &b in value.as_bytes() {
        match b {
            b'"' => out.put_slice(b"\\\""),
            b'\\' => out.put_slice(b"\\\\"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            c if c < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c);
            }
            c => out.put_u8(c), // bytes of multi-byte characters pass through
        }
    }
    out.put_u8(b'"');
}

// ---------------------------------------------------------------- JSON input

#[derive(Deserialize)]
struct JsonHeaderIn {
    #[serde(default, deserialize_with = "lenient_i32")]
    code: Option<i32>,
    #[serde(default, deserialize_with = "lenient_language")]
    language: Option<LanguageCode>,
    #[serde(default, deserialize_with = "lenient_i32")]
    version: Option<i32>,
    #[serde(default, deserialize_with = "lenient_i32")]
    opaque: Option<i32>,
    #[serde(default, deserialize_with = "lenient_i32")]
    flag: Option<i32>,
    #[serde(default, deserialize_with = "lenient_string")]
    remark: Option<String>,
    #[serde(default, rename = "extFields", deserialize_with = "lenient_ext")]
    ext_fields: Option<ExtFields>,
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, CommandError> {
    if let Some(cmd) = fast::decode(header) {
        return Ok(cmd);
    }
    decode_json_header_serde(header)
}

fn decode_json_header_serde(header: &[u8]) -> Result<RemotingCommand, CommandError> {
    let parsed: JsonHeaderIn =
        serde_json::from_slice(header).map_err(|e| CommandError::Json(e.to_string()))?;
    Ok(RemotingCommand {
        code: parsed.code.ok_or(CommandError::MissingCode)?,
        language: parsed.language.unwrap_or(LanguageCode::JAVA),
        version: parsed.version.unwrap_or(0),
        opaque: parsed.opaque.unwrap_or(0),
        flag: parsed.flag.unwrap_or(0),
        remark: parsed.remark,
        ext_fields: parsed.ext_fields.unwrap_or_default(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// A JSON scalar seen as text: strings as they are, numbers in decimal,
/// booleans as `true`/`false`; `None` for null.
struct ScalarText(Option<String>);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalarText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ScalarText, E> {
                Ok(ScalarText(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarText, E> {
                Ok(ScalarText(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarText, E> {
                // JavaScript clients may send integral values as floats.
                if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
                    Ok(ScalarText(Some((v as i64).to_string())))
                } else {
                    Ok(ScalarText(Some(v.to_string())))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<ScalarText, E> {
                Ok(ScalarText(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<ScalarText, E> {
                Ok(ScalarText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScalarText, A::Error> {
                let value: serde_json::Value =
                    Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ScalarText(Some(value.to_string())))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<ScalarText, A::Error> {
                let value: serde_json::Value =
                    Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(ScalarText(Some(value.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(ScalarText::deserialize(d)?.0)
}

fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    match ScalarText::deserialize(d)?.0 {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map(|v| Some(v as i32))
            .map_err(|_| de::Error::custom(format!("expected an integer, got {text:?}"))),
    }
}

fn lenient_language<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LanguageCode>, D::Error> {
    Ok(ScalarText::deserialize(d)?.0.map(|text| {
        LanguageCode::from_name(&text)
            .or_else(|| text.parse::<u8>().ok().map(LanguageCode::from_num))
            .unwrap_or(LanguageCode::OTHER)
    }))
}

fn lenient_ext<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExtFields>, D::Error> {
    /// Builds the map in one pass, dropping null values.
    struct ExtVisitor;
    impl<'de> Visitor<'de> for ExtVisitor {
        type Value = Option<ExtFields>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of scalars, or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(ExtVisitor)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut ext = ExtFields::with_capacity(map.size_hint().unwrap_or(16));
            while let Some((key, value)) = map.next_entry::<String, ScalarText>()? {
                if let Some(value) = value.0 {
                    ext.insert(key, value);
                }
            }
            Ok(Some(ext))
        }
    }
    d.deserialize_option(ExtVisitor)
}

mod fast {
    //! A hand-written parser for the headers clients actually send: one
    //! object of scalars with `extFields` an object of scalars. It gives up
    //! (`None`) on anything else (floats, nested values in unexpected
    //! places, duplicate fields, bad UTF-8, trailing bytes) and the serde
    //! path decides, so both paths agree wherever this one answers.
    //!
    //! The header is checked as UTF-8 once; strings are found with `memchr`
    //! and ext keys and values are unescaped straight into the map's one
    //! text buffer, so a request's header costs a handful of allocations.

    use std::borrow::Cow;

    use super::*;

    struct P<'a> {
        /// The whole header, valid UTF-8.
        s: &'a str,
        b: &'a [u8],
        i: usize,
    }

    enum Scalar<'a> {
        Str(Cow<'a, str>),
        /// Integer, canonical (no leading zeros, not `-0`), and its text.
        Int(i64, &'a str),
        Bool(bool),
        Null,
    }

    impl<'a> P<'a> {
        fn ws(&mut self) {
            while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        /// A string's raw contents (between the quotes, escapes as
        /// written) and whether it has escapes; the cursor moves past it.
        fn raw_string(&mut self) -> Option<(&'a str, bool)> {
            self.eat(b'"')?;
            let start = self.i;
            let mut escaped = false;
            // Most strings in a header are short: look at a few bytes by
            // hand before paying for memchr's set-up.
            let near = self.b.len().min(start + 24);
            while self.i < near {
                match self.b[self.i] {
                    b'"' => {
                        let at = self.i;
                        self.i += 1;
                        let raw = &self.b[start..at];
                        if raw.iter().any(|&c| c < 0x20) {
                            return None; // control characters must be escaped
                        }
                        return Some((&self.s[start..at], false));
                    }
                    b'\\' => break,
                    _ => self.i += 1,
                }
            }
            loop {
                let at = self.i + memchr::memchr2(b'"', b'\\', self.b.get(self.i..)?)?;
                if self.b[at] == b'"' {
                    self.i = at + 1;
                    let raw = &self.b[start..at];
                    if raw.iter().any(|&c| c < 0x20) {
                        return None; // control characters must be escaped
                    }
                    // Both ends are ASCII quotes: char boundaries.
                    return Some((&self.s[start..at], escaped));
                }
                escaped = true;
                self.i = at + 2; // the backslash and the byte it escapes
            }
        }

        fn string(&mut self) -> Option<Cow<'a, str>> {
            let (raw, escaped) = self.raw_string()?;
            if !escaped {
                return Some(Cow::Borrowed(raw));
            }
            let mut out = String::with_capacity(raw.len());
            unescape(raw, &mut out)?;
            Some(Cow::Owned(out))
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
        }

        fn number(&mut self) -> Option<Scalar<'a>> {
            let start = self.i;
            if self.b[self.i] == b'-' {
                self.i += 1;
            }
            let digits = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let n = self.i - digits;
            // Floats, leading zeros and -0 are the serde path's business.
            if n == 0
                || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
                || (n > 1 && self.b[digits] == b'0')
                || (n == 1 && self.b[digits] == b'0' && digits > start)
            {
                return None;
            }
            let text = &self.s[start..self.i];
            text.parse().ok().map(|v| Scalar::Int(v, text))
        }

        fn scalar(&mut self) -> Option<Scalar<'a>> {
            match self.peek()? {
                b'"' => self.string().map(Scalar::Str),
                b't' => self.literal(b"true").map(|_| Scalar::Bool(true)),
                b'f' => self.literal(b"false").map(|_| Scalar::Bool(false)),
                b'n' => self.literal(b"null").map(|_| Scalar::Null),
                b'-' | b'0'..=b'9' => self.number(),
                _ => None,
            }
        }

        /// One ext field, written into `map`'s buffer; null values are
        /// dropped.
        fn ext_field(&mut self, map: &mut ExtFields) -> Option<()> {
            let start = map.text_mut().len();
            let (key, escaped) = self.raw_string()?;
            push_text(map.text_mut(), key, escaped)?;
            let key_end = map.text_mut().len();
            self.eat(b':')?;
            match self.peek()? {
                b'"' => {
                    let (value, escaped) = self.raw_string()?;
                    push_text(map.text_mut(), value, escaped)?;
                }
                _ => match self.scalar()? {
                    Scalar::Int(_, text) => map.text_mut().push_str(text),
                    Scalar::Bool(b) => map.text_mut().push_str(if b { "true" } else { "false" }),
                    Scalar::Null => {
                        map.abandon_field(start);
                        return Some(());
                    }
                    Scalar::Str(s) => map.text_mut().push_str(&s),
                },
            }
            map.finish_field(start, key_end);
            Some(())
        }
    }

    fn push_text(out: &mut String, raw: &str, escaped: bool) -> Option<()> {
        if escaped {
            unescape(raw, out)
        } else {
            out.push_str(raw);
            Some(())
        }
    }

    /// Appends the JSON string contents `raw` (without quotes) to `out`
    /// with its escapes resolved.
    fn unescape(raw: &str, out: &mut String) -> Option<()> {
        let b = raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let Some(at) = memchr::memchr(b'\\', &b[i..]).map(|n| i + n) else {
                out.push_str(&raw[i..]);
                break;
            };
            out.push_str(&raw[i..at]);
            let e = *b.get(at + 1)?;
            i = at + 2;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = hex4(b.get(i..i + 4)?)?;
                    i += 4;
                    let ch = if (0xD800..0xDC00).contains(&hi) {
                        if b.get(i..i + 2)? != b"\\u" {
                            return None;
                        }
                        let lo = hex4(b.get(i + 2..i + 6)?)?;
                        i += 6;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                    } else {
                        char::from_u32(hi)?
                    };
                    out.push(ch);
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn hex4(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, &c| {
            let d = (c as char).to_digit(16)?;
            Some(acc * 16 + d)
        })
    }

    fn int_of(v: Scalar) -> Option<Option<i32>> {
        match v {
            Scalar::Int(i, _) => Some(Some(i as i32)),
            Scalar::Str(s) => s.trim().parse::<i64>().ok().map(|i| Some(i as i32)),
            Scalar::Null => Some(None),
            Scalar::Bool(_) => None,
        }
    }

    fn text_of(v: Scalar) -> Option<String> {
        match v {
            Scalar::Str(s) => Some(s.into_owned()),
            Scalar::Int(_, text) => Some(text.to_owned()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Null => None,
        }
    }

    pub(super) fn decode(header: &[u8]) -> Option<RemotingCommand> {
        let s = std::str::from_utf8(header).ok()?;
        let mut p = P { s, b: header, i: 0 };
        let (mut code, mut language, mut version, mut opaque, mut flag) =
            (None, None, None, None, None);
        let mut remark = None;
        let mut ext: Option<ExtFields> = None;
        let mut seen = [false; 8];
        p.eat(b'{')?;
        if p.peek()? != b'}' {
            loop {
                let key = p.string()?;
                p.eat(b':')?;
                let slot = match &*key {
                    "code" => 0,
                    "language" => 1,
                    "version" => 2,
                    "opaque" => 3,
                    "flag" => 4,
                    "remark" => 5,
                    "extFields" => 6,
                    _ => 7,
                };
                if slot < 7 && std::mem::replace(&mut seen[slot], true) {
                    return None; // duplicate field: let serde report it
                }
                match slot {
                    0 => code = int_of(p.scalar()?)?,
                    1 => {
                        language = match p.scalar()? {
                            Scalar::Str(text) => Some(language_of(&text)),
                            Scalar::Int(_, text) => Some(language_of(text)),
                            Scalar::Bool(b) => Some(language_of(if b { "true" } else { "false" })),
                            Scalar::Null => None,
                        }
                    }
                    2 => version = int_of(p.scalar()?)?,
                    3 => opaque = int_of(p.scalar()?)?,
                    4 => flag = int_of(p.scalar()?)?,
                    5 => remark = text_of(p.scalar()?),
                    6 => {
                        if p.peek()? == b'n' {
                            p.literal(b"null")?;
                        } else {
                            // Room for the whole rest of the header: one allocation.
                            let mut map = ExtFields::with_capacities(16, header.len() - p.i);
                            p.eat(b'{')?;
                            if p.peek()? != b'}' {
                                loop {
                                    p.ext_field(&mut map)?;
                                    if p.peek()? == b',' {
                                        p.i += 1;
                                        continue;
                                    }
                                    break;
                                }
                            }
                            p.eat(b'}')?;
                            ext = Some(map);
                        }
                    }
                    _ => {
                        p.scalar()?; // unknown keys: scalars only here
                    }
                }
                if p.peek()? == b',' {
                    p.i += 1;
                    continue;
                }
                break;
            }
        }
        p.eat(b'}')?;
        p.ws();
        if p.i != header.len() {
            return None;
        }
        Some(RemotingCommand {
            code: code?,
            language: language.unwrap_or(LanguageCode::JAVA),
            version: version.unwrap_or(0),
            opaque: opaque.unwrap_or(0),
            flag: flag.unwrap_or(0),
            remark,
            ext_fields: ext.unwrap_or_default(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        })
    }

    /// `code` and `opaque` of a JSON header whose top level holds only
    /// scalars and an `extFields` object of scalars (skipped unread).
    pub(super) fn peek_code_and_opaque(header: &[u8]) -> Option<(i32, i32)> {
        let s = std::str::from_utf8(header).ok()?;
        let mut p = P { s, b: header, i: 0 };
        let (mut code, mut opaque) = (None, None);
        p.eat(b'{')?;
        loop {
            let (key, _) = p.raw_string()?;
            p.eat(b':')?;
            match key {
                "code" => match p.scalar()? {
                    Scalar::Int(v, _) => code = Some(v as i32),
                    _ => return None,
                },
                "opaque" => match p.scalar()? {
                    Scalar::Int(v, _) => opaque = Some(v as i32),
                    _ => return None,
                },
                _ if p.peek()? == b'{' => {
                    p.i += 1;
                    if p.peek()? != b'}' {
                        loop {
                            p.raw_string()?;
                            p.eat(b':')?;
                            if p.peek()? == b'"' {
                                p.raw_string()?;
                            } else {
                                p.scalar()?;
                            }
                            if p.peek()? != b',' {
                                break;
                            }
                            p.i += 1;
                        }
                    }
                    p.eat(b'}')?;
                }
                _ if p.peek()? == b'"' => {
                    p.raw_string()?;
                }
                _ => {
                    p.scalar()?;
                }
            }
            if let (Some(c), Some(o)) = (code, opaque) {
                return Some((c, o));
            }
            if p.peek()? != b',' {
                return None;
            }
            p.i += 1;
        }
    }

    fn language_of(text: &str) -> LanguageCode {
        LanguageCode::from_name(text)
            .or_else(|| text.parse::<u8>().ok().map(LanguageCode::from_num))
            .unwrap_or(LanguageCode::OTHER)
    }
}

// ------------------------------------------------------------ binary input

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CommandError> {
        if self.buf.len() - self.pos < n {
            return Err(CommandError::Binary {
                what,
                offset: self.pos,
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CommandError> {
        Ok(self.take(1, what)?[0])
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, CommandError> {
        Ok((&self.take(2, what)?[..]).get_i16())
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, CommandError> {
        Ok((&self.take(4, what)?[..]).get_i32())
    }

    fn string(&mut self, len: usize, what: &'static str) -> Result<String, CommandError> {
        let offset = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CommandError::Binary { what, offset })
    }
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, CommandError> {
    let mut r = Reader {
        buf: header,
        pos: 0,
    };
    let code = r.i16("code")? as i32;
    let language = LanguageCode::from_num(r.u8("language")?);
    let version = r.i16("version")? as i32;
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let remark_len = non_negative(r.i32("remark length")?, "remark length", r.pos)?;
    let remark = if remark_len == 0 {
        None
    } else {
        Some(r.string(remark_len, "remark")?)
    };
    let ext_len = non_negative(r.i32("ext length")?, "ext length", r.pos)?;
    let ext_start = r.pos;
    let ext_bytes = r.take(ext_len, "ext fields")?;
    let mut ext_fields = ExtFields::new();
    let mut er = Reader {
        buf: ext_bytes,
        pos: 0,
    };
    while er.pos < ext_bytes.len() {
        let key_len = er.i16("ext key length").map_err(|e| shift(e, ext_start))? as u16 as usize;
        let key = er
            .string(key_len, "ext key")
            .map_err(|e| shift(e, ext_start))?;
        let val_len = er
            .i32("ext value length")
            .map_err(|e| shift(e, ext_start))?;
        let val_len = non_negative(val_len, "ext value length", ext_start + er.pos)
            .map_err(|e| shift(e, 0))?;
        let value = er
            .string(val_len, "ext value")
            .map_err(|e| shift(e, ext_start))?;
        if !key.is_empty() && !value.is_empty() {
            ext_fields.insert(key, value);
        }
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

fn non_negative(value: i32, what: &'static str, offset: usize) -> Result<usize, CommandError> {
    usize::try_from(value).map_err(|_| CommandError::Binary { what, offset })
}

fn shift(err: CommandError, by: usize) -> CommandError {
    match err {
        CommandError::Binary { what, offset } => CommandError::Binary {
            what,
            offset: offset + by,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameCodec;

    fn route_request(serialize_type: SerializeType) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, 1);
        cmd.language = LanguageCode::JAVA;
        cmd.version = 409;
        cmd.serialize_type = serialize_type;
        cmd.ext_fields.insert("topic", "TopicTest");
        cmd
    }

    /// The byte-exact worked example of the reference, §1.4a (JSON).
    #[test]
    fn golden_json_route_request() {
        let bytes = route_request(SerializeType::Json).to_bytes();
        let text = r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":409}"#;
        assert_eq!(text.len(), 131);
        assert_eq!(&bytes[..8], &[0, 0, 0, 0x87, 0, 0, 0, 0x83]);
        assert_eq!(&bytes[8..], text.as_bytes());
    }

    /// The byte-exact worked example of the reference, §1.4a (ROCKETMQ).
    #[test]
    fn golden_binary_route_request() {
        let bytes = route_request(SerializeType::RocketMq).to_bytes();
        let hex = "0000002d010000290069000199000000010000000000000000000000140005746f70696300000009546f70696354657374";
        let expected: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(&bytes[..], &expected[..]);
        let mut buf = BytesMut::from(&expected[..]);
        let frame = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        let cmd = RemotingCommand::decode(frame).unwrap();
        assert_eq!(cmd, route_request(SerializeType::RocketMq));
    }

    #[test]
    fn lenient_json_input() {
        let header = br#"{"code":"310","opaque":7,"flag":0,"remark":null,"extFields":{"e":3,"k":false,"x":null,"f":1.0,"a":"pg"},"unknown":[1,2]}"#;
        let cmd = RemotingCommand::decode(RawFrame {
            serialize_type: 0,
            header: Bytes::from_static(header),
            body: Bytes::from_static(b"hello"),
        })
        .unwrap();
        assert_eq!(cmd.code, 310);
        assert_eq!(cmd.language, LanguageCode::JAVA);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext("e"), Some("3"));
        assert_eq!(cmd.ext("k"), Some("false"));
        assert_eq!(cmd.ext("f"), Some("1"));
        assert_eq!(cmd.ext("x"), None);
        assert_eq!(&cmd.body[..], b"hello");
    }

    /// The fast header parser agrees with the serde path wherever it answers.
    #[test]
    fn fast_parser_agrees_with_serde() {
        let inputs: &[&[u8]] = &[
            br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":409}"#,
            b"{\"code\":34,\"extFields\":{\"AccessKey\":\"\",\"OnsChannel\":\"ALIYUN\",\"Signature\":\"3SN/+=\"},\"flag\":0,\"language\":\"CPP\",\"opaque\":2,\"remark\":\"\",\"version\":63}\n",
            br#"{"code":310,"language":"JAVA","opaque":7,"flag":0,"version":121,"extFields":{"a":"pg","e":3,"k":false,"i":"TAGS\u0001TagA\u0002KEYS\u0001k \"q\"\u0002","x":null,"u":"\ud83d\ude00"}}"#,
            br#"{"code":"11","opaque":-5,"remark":null,"language":9,"extFields":null}"#,
            br#" { "code" : 1 , "unknown" : "x" , "other": 12 } "#,
            br#"{"code":1,"code":2}"#,
            br#"{"code":1.0}"#,
            br#"{"code":01}"#,
            br#"{"code":-0}"#,
            br#"{"code":1,"extFields":{"a":[1]}}"#,
            br#"{"code":1,"extFields":{"f":2.5}}"#,
            br#"{"code":1} x"#,
            br#"{"code":true}"#,
            br#"{"opaque":1}"#,
            br#"{"code":1,"remark":"bad \x escape"}"#,
            br#"{"code":1,"remark":"\udc00"}"#,
            b"{\"code\":1,\"remark\":\"\xff\"}",
            br#"{}"#,
            br#"{"code":99999999999}"#,
            br#"{"code":1,"extFields":{"a":"1","b":"x","a":"2","c":null,"d\"e":"\\","n":-12,"t":true}}"#,
            br#"{"code":1,"extFields":{"k":"ends with \"}}"#,
            br#"{"code":1,"extFields":{"k":"tab	inside"}}"#,
            br#"{"code":1,"extFields":{"k":"\u00e9\u0041\/x","\u006b2":"v"}}"#,
            br#"{"code":1,"extFields":{"k":"\ud83d"}}"#,
            br#"{"code":1,"extFields":{"k":"\u12"}}"#,
            br#"{"code":1,"extFields":{"k":99999999999999999999}}"#,
            "{\"code\":1,\"extFields\":{\"k\":\"caf\u{e9} \u{1f600}\"}}".as_bytes(),
        ];
        for input in inputs {
            let serde = decode_json_header_serde(input);
            if let Some(cmd) = fast::decode(input) {
                assert_eq!(Ok(cmd), serde, "{}", String::from_utf8_lossy(input));
            }
            assert_eq!(
                decode_json_header(input),
                serde,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(fast::decode(inputs[0]).is_some());
        assert!(fast::decode(inputs[1]).is_some());
        assert!(fast::decode(inputs[2]).is_some());
        let dup = fast::decode(inputs[19]).expect("fast path");
        assert_eq!(dup.ext_fields.get("a"), Some("2"));
        assert_eq!(dup.ext_fields.get("d\"e"), Some("\\"));
        assert_eq!(dup.ext_fields.get("n"), Some("-12"));
        assert!(!dup.ext_fields.contains_key("c"));
        assert_eq!(dup.ext_fields.len(), 5);
        let esc = fast::decode(inputs[22]).expect("fast path");
        assert_eq!(esc.ext_fields.get("k"), Some("\u{e9}A/x"));
        assert_eq!(esc.ext_fields.get("k2"), Some("v"));
    }

    proptest::proptest! {
        /// Mutated real headers: wherever the fast parser answers, it answers
        /// what the serde path answers.
        #[test]
        fn fast_parser_agrees_on_mutations(
            pos in 0usize..400,
            cut in 0usize..6,
            insert in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
            which in 0usize..2,
        ) {
            let bases: [&[u8]; 2] = [
                br#"{"code":310,"extFields":{"a":"pg","b":"T","e":3,"k":false,"i":"TAGS\u0001TagA\u0002"},"flag":0,"language":"JAVA","opaque":12,"remark":"x","version":121}"#,
                b"{\"code\":34,\"extFields\":{\"AccessKey\":\"\",\"queueId\":0},\"flag\":0,\"language\":\"CPP\",\"opaque\":2,\"remark\":\"\",\"version\":63}\n",
            ];
            let base = bases[which];
            let pos = pos % (base.len() + 1);
            let mut input = base[..pos].to_vec();
            input.extend_from_slice(&insert);
            input.extend_from_slice(&base[(pos + cut).min(base.len())..]);
            if let Some(cmd) = fast::decode(&input) {
                proptest::prop_assert_eq!(Ok(cmd), decode_json_header_serde(&input));
            }
        }
    }

    #[test]
    fn peek_agrees_with_decode() {
        let headers: &[&[u8]] = &[
            br#"{"code":0,"extFields":{"msgId":"AB","queueId":"3"},"flag":1,"language":"JAVA","opaque":77,"serializeTypeCurrentRPC":"JSON","version":409}"#,
            br#"{"extFields":{"a":"x\"y","n":5,"b":true},"remark":"r","code":14,"opaque":-3}"#,
            br#"{"code":17,"opaque":2,"remark":null}"#,
        ];
        for h in headers {
            let frame = RawFrame {
                serialize_type: 0,
                header: Bytes::copy_from_slice(h),
                body: Bytes::new(),
            };
            let cmd = RemotingCommand::decode(frame.clone()).unwrap();
            assert_eq!(
                RemotingCommand::peek_code_and_opaque(&frame),
                Some((cmd.code, cmd.opaque))
            );
        }
        let cmd = RemotingCommand::response(ResponseCode::SYSTEM_BUSY, 99, Some("x".into()));
        let mut bin = cmd.clone();
        bin.serialize_type = SerializeType::RocketMq;
        let frame = RawFrame {
            serialize_type: 1,
            header: Bytes::from(bin.encode_header()),
            body: Bytes::new(),
        };
        assert_eq!(
            RemotingCommand::peek_code_and_opaque(&frame),
            Some((cmd.code, 99))
        );
    }

    #[test]
    fn ext_fields_map_operations() {
        let mut ext = ExtFields::new();
        ext.insert("a", "1");
        ext.insert(String::from("b"), String::from("2"));
        ext.insert_with("c", |out| out.push_str("33"));
        ext.insert("a", "one");
        ext.insert_with("b", |out| out.push_str("two"));
        assert_eq!(ext.len(), 3);
        assert_eq!(ext.get("a"), Some("one"));
        assert_eq!(ext.get("b"), Some("two"));
        assert_eq!(ext.get("c"), Some("33"));
        assert_eq!(ext.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(ext.remove("b"), Some("two".to_owned()));
        assert_eq!(ext.remove("b"), None);
        ext.retain(|k, _| k != "c");
        assert_eq!(ext.iter().collect::<Vec<_>>(), [("a", "one")]);
        let other: ExtFields = [("a", "one")].into_iter().collect();
        assert_eq!(ext, other);
        ext.clear();
        assert!(ext.is_empty() && ext.get("a").is_none());
    }

    #[test]
    fn response_is_strict() {
        let req = route_request(SerializeType::Json);
        let resp = req
            .reply(
                ResponseCode::TOPIC_NOT_EXIST,
                Some("no \"route\"".to_string()),
            )
            .with_ext("queueId", 3);
        let text = String::from_utf8(resp.encode_json_header()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["code"], 17);
        assert_eq!(value["flag"], 1);
        assert_eq!(value["opaque"], 1);
        assert_eq!(value["extFields"]["queueId"], "3");
        assert_eq!(value["remark"], "no \"route\"");
        assert_eq!(value["version"], SATURN_REMOTING_VERSION);
        let empty = req.success().encode_json_header();
        assert!(String::from_utf8(empty)
            .unwrap()
            .contains("\"extFields\":{}"));
    }

    #[test]
    fn binary_errors_name_the_field() {
        let err = decode_binary_header(&[0, 105, 0]).unwrap_err();
        assert!(matches!(
            err,
            CommandError::Binary {
                what: "version",
                ..
            }
        ));
        let mut h = route_request(SerializeType::RocketMq).encode_binary_header();
        h[13..17].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            decode_binary_header(&h),
            Err(CommandError::Binary {
                what: "remark length",
                ..
            })
        ));
    }
}
