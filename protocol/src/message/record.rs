//! The stored-message record (reference §3.1).
//!
//! ```text
//! TOTALSIZE 4 | MAGIC 4 | BODYCRC 4 | QUEUEID 4 | FLAG 4 | QUEUEOFFSET 8 | PHYSICALOFFSET 8
//! | SYSFLAG 4 | BORNTIMESTAMP 8 | BORNHOST 8/20 | STORETIMESTAMP 8 | STOREHOST 8/20
//! | RECONSUMETIMES 4 | PREPARED_TRANSACTION_OFFSET 8 | BODYLEN 4 + BODY
//! | TOPICLEN 1 (V1) or 2 (V2) + TOPIC | PROPLEN 2 + PROPERTIES
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Bytes, BytesMut};

use super::sysflag::{born_host_v6, store_host_v6, BORNHOST_V6_FLAG, STOREHOSTADDRESS_V6_FLAG};
use super::*;

const V4_HOST_LEN: usize = 8;
const V6_HOST_LEN: usize = 20;

/// The smallest possible record: IPv4 hosts, empty body, topic and properties.
pub const MIN_RECORD_LEN: usize = 84 + 4 + 1 + 2;

fn host_len(v6: bool) -> usize {
    if v6 {
        V6_HOST_LEN
    } else {
        V4_HOST_LEN
    }
}

/// Position of STORETIMESTAMP for a record with this SYSFLAG.
pub fn store_timestamp_position(sys_flag: i32) -> usize {
    BORN_HOST_POSITION + host_len(born_host_v6(sys_flag))
}

/// Bytes before BODYLEN for a record with this SYSFLAG (84 with IPv4 hosts).
pub fn fixed_len(sys_flag: i32) -> usize {
    store_timestamp_position(sys_flag) + 8 + host_len(store_host_v6(sys_flag)) + 4 + 8
}

/// Encoded size of a record. The topic length field is 1 byte when `topic_len` <= 127, else 2.
pub fn encoded_len(
    topic_len: usize,
    body_len: usize,
    properties_len: usize,
    sys_flag: i32,
) -> usize {
    let topic_len_field = if topic_len <= MAX_TOPIC_LEN_V1 { 1 } else { 2 };
    fixed_len(sys_flag) + 4 + body_len + topic_len_field + topic_len + 2 + properties_len
}

/// TOTALSIZE of the record (or blank marker) at the start of `buf`, if 4 bytes are there.
pub fn read_total_size(buf: &[u8]) -> Option<u32> {
    buf.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Little cursor over a record that turns every short read into [`MessageError::Truncated`].
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MessageError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(MessageError::Truncated {
                field,
                offset: self.base + self.pos,
                needed: n,
                available,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, MessageError> {
        Ok(self.take(1, field)?[0])
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, MessageError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, MessageError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, MessageError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A length written as an int; negative is [`MessageError::BadLength`].
    fn len_i32(&mut self, field: &'static str) -> Result<usize, MessageError> {
        let offset = self.base + self.pos;
        let n = self.i32(field)?;
        usize::try_from(n).map_err(|_| MessageError::BadLength {
            field,
            offset,
            value: i64::from(n),
        })
    }

    /// A length written as a short; negative is [`MessageError::BadLength`].
    fn len_i16(&mut self, field: &'static str) -> Result<usize, MessageError> {
        let offset = self.base + self.pos;
        let n = self.i16(field)?;
        usize::try_from(n).map_err(|_| MessageError::BadLength {
            field,
            offset,
            value: i64::from(n),
        })
    }

    fn host(&mut self, v6: bool, field: &'static str) -> Result<SocketAddr, MessageError> {
        let ip = if v6 {
            let b = self.take(16, field)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let b = self.take(4, field)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        // Java writes the port as an int; anything outside u16 is kept modulo 2^16 rather than
        // rejected, as Java's InetSocketAddress would reject it only when used.
        let port = self.i32(field)?;
        Ok(SocketAddr::new(ip, port as u16))
    }

    fn str(&mut self, n: usize, field: &'static str) -> Result<&'a str, MessageError> {
        let offset = self.base + self.pos;
        let b = self.take(n, field)?;
        std::str::from_utf8(b).map_err(|_| MessageError::Utf8 { field, offset })
    }
}

/// A decoded record borrowing the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub total_size: u32,
    pub magic: u32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
    /// Byte offset of the body within the record.
    pub body_offset: usize,
}

impl<'a> RecordView<'a> {
    /// Decodes the record at the start of `buf`, checking every length against TOTALSIZE and the
    /// buffer, but not the body CRC (see [`RecordView::verify_body_crc`]). Returns the record and
    /// its size. A blank marker is [`MessageError::Blank`].
    pub fn parse(buf: &'a [u8]) -> Result<(RecordView<'a>, usize), MessageError> {
        Self::parse_at(buf, 0)
    }

    /// TOTALSIZE and MAGICCODE of the record at the start of `buf`, checked: a known magic, a
    /// length no shorter than the shortest record and within `buf`.
    fn head(buf: &[u8], base: usize) -> Result<(u32, u32), MessageError> {
        let mut head = Reader { buf, pos: 0, base };
        let total_size = head.i32("TOTALSIZE")? as u32;
        let magic = head.i32("MAGICCODE")? as u32;
        match magic {
            MESSAGE_MAGIC_V1 | MESSAGE_MAGIC_V2 => {}
            BLANK_MAGIC => {
                return Err(MessageError::Blank {
                    offset: base,
                    total_size,
                })
            }
            _ => {
                return Err(MessageError::BadMagic {
                    offset: base + MAGIC_POSITION,
                    magic,
                })
            }
        }
        let total = total_size as usize;
        if total < MIN_RECORD_LEN || total_size > i32::MAX as u32 {
            return Err(MessageError::BadLength {
                field: "TOTALSIZE",
                offset: base,
                value: i64::from(total_size as i32),
            });
        }
        if total > buf.len() {
            return Err(MessageError::Truncated {
                field: "record",
                offset: base,
                needed: total,
                available: buf.len(),
            });
        }
        Ok((total_size, magic))
    }

    /// As [`RecordView::parse`], with error offsets counted from `base`.
    pub fn parse_at(buf: &'a [u8], base: usize) -> Result<(RecordView<'a>, usize), MessageError> {
        let (total_size, magic) = Self::head(buf, base)?;
        let total = total_size as usize;
        // From here on reads are bounded by the record, so a field that runs past TOTALSIZE is
        // reported as truncated rather than read from the next record.
        let mut r = Reader {
            buf: &buf[..total],
            pos: 8,
            base,
        };
        let body_crc = r.i32("BODYCRC")?;
        let queue_id = r.i32("QUEUEID")?;
        let flag = r.i32("FLAG")?;
        let queue_offset = r.i64("QUEUEOFFSET")?;
        let phys_offset = r.i64("PHYSICALOFFSET")?;
        let sys_flag = r.i32("SYSFLAG")?;
        let born_timestamp = r.i64("BORNTIMESTAMP")?;
        let born_host = r.host(born_host_v6(sys_flag), "BORNHOST")?;
        let store_timestamp = r.i64("STORETIMESTAMP")?;
        let store_host = r.host(store_host_v6(sys_flag), "STOREHOST")?;
        let reconsume_times = r.i32("RECONSUMETIMES")?;
        let prepared_transaction_offset = r.i64("PREPARED_TRANSACTION_OFFSET")?;
        let body_len = r.len_i32("BODYLEN")?;
        let body_offset = r.pos;
        let body = r.take(body_len, "BODY")?;
        let topic_len = if magic == MESSAGE_MAGIC_V1 {
            usize::from(r.u8("TOPICLEN")?)
        } else {
            r.len_i16("TOPICLEN")?
        };
        let topic = r.str(topic_len, "TOPIC")?;
        let props_len = r.len_i16("PROPERTIESLEN")?;
        let properties = r.str(props_len, "PROPERTIES")?;
        if r.pos != total {
            return Err(MessageError::SizeMismatch {
                offset: base,
                declared: total_size,
                actual: r.pos,
            });
        }
        let view = RecordView {
            total_size,
            magic,
            body_crc,
            queue_id,
            flag,
            queue_offset,
            phys_offset,
            sys_flag,
            born_timestamp,
            born_host,
            store_timestamp,
            store_host,
            reconsume_times,
            prepared_transaction_offset,
            body,
            topic,
            properties,
            body_offset,
        };
        Ok((view, total))
    }

    /// Checks BODYCRC against the body. `base` is where the record starts, for the error.
    pub fn verify_body_crc(&self, base: usize) -> Result<(), MessageError> {
        let computed = body_crc(self.body);
        if computed != self.body_crc {
            return Err(MessageError::BodyCrc {
                offset: base + BODY_CRC_POSITION,
                stored: self.body_crc,
                computed,
            });
        }
        Ok(())
    }

    /// The value of a property, without allocating.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        property_value(self.properties, name)
    }
}

/// A decoded record that owns its data (the body shares the buffer it came from when decoded
/// from [`Bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub total_size: u32,
    pub magic: u32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub topic: String,
    pub properties: String,
}

impl StoredMessage {
    /// Decodes the record at the start of `buf` and verifies its body CRC. The body is a
    /// zero-copy slice of `buf`. Returns the message and its size in bytes.
    pub fn decode(buf: &Bytes) -> Result<(StoredMessage, usize), MessageError> {
        Self::decode_at(buf, 0)
    }

    fn decode_at(buf: &Bytes, base: usize) -> Result<(StoredMessage, usize), MessageError> {
        let (view, len) = RecordView::parse_at(buf, base)?;
        view.verify_body_crc(base)?;
        let body = buf.slice(view.body_offset..view.body_offset + view.body.len());
        Ok((Self::from_view(&view, body), len))
    }

    /// As [`StoredMessage::decode`], copying the body out of a plain slice.
    pub fn decode_slice(buf: &[u8]) -> Result<(StoredMessage, usize), MessageError> {
        let (view, len) = RecordView::parse(buf)?;
        view.verify_body_crc(0)?;
        Ok((
            Self::from_view(&view, Bytes::copy_from_slice(view.body)),
            len,
        ))
    }

    fn from_view(v: &RecordView<'_>, body: Bytes) -> StoredMessage {
        StoredMessage {
            total_size: v.total_size,
            magic: v.magic,
            body_crc: v.body_crc,
            queue_id: v.queue_id,
            flag: v.flag,
            queue_offset: v.queue_offset,
            phys_offset: v.phys_offset,
            sys_flag: v.sys_flag,
            born_timestamp: v.born_timestamp,
            born_host: v.born_host,
            store_timestamp: v.store_timestamp,
            store_host: v.store_host,
            reconsume_times: v.reconsume_times,
            prepared_transaction_offset: v.prepared_transaction_offset,
            body,
            topic: v.topic.to_string(),
            properties: v.properties.to_string(),
        }
    }

    /// The offsetMsgId of this record.
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.phys_offset)
    }

    pub fn property(&self, name: &str) -> Option<&str> {
        property_value(&self.properties, name)
    }

    /// The fields as encoder input (for re-encoding or comparison).
    pub fn as_input(&self) -> RecordInput<'_> {
        RecordInput {
            topic: &self.topic,
            queue_id: self.queue_id,
            flag: self.flag,
            body: &self.body,
            properties: &self.properties,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            queue_offset: self.queue_offset,
            phys_offset: self.phys_offset,
        }
    }
}

/// Decodes a concatenation of records (a pull / query response body), verifying each. Stops at
/// the first bad record; error offsets count from the start of `buf`.
pub fn decode_all(buf: Bytes) -> Result<Vec<StoredMessage>, MessageError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = buf.slice(pos..);
        let (msg, len) = StoredMessage::decode_at(&rest, pos)?;
        out.push(msg);
        pos += len;
    }
    Ok(out)
}

/// What the encoder writes. BORNHOST_V6 / STOREHOSTADDRESS_V6 in the written SYSFLAG follow the
/// address families of `born_host` / `store_host`, whatever `sys_flag` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInput<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    pub flag: i32,
    pub body: &'a [u8],
    pub properties: &'a str,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub queue_offset: i64,
    pub phys_offset: i64,
}

impl RecordInput<'_> {
    /// The SYSFLAG actually written.
    pub fn effective_sys_flag(&self) -> i32 {
        let mut f = self.sys_flag & !(BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
        if self.born_host.is_ipv6() {
            f |= BORNHOST_V6_FLAG;
        }
        if self.store_host.is_ipv6() {
            f |= STOREHOSTADDRESS_V6_FLAG;
        }
        f
    }

    /// Checks the variable-length fields and returns the encoded size.
    pub fn encoded_len(&self) -> Result<usize, MessageError> {
        if self.topic.len() > MAX_TOPIC_LEN_V2 {
            return Err(MessageError::TooLong {
                field: "topic",
                len: self.topic.len(),
                max: MAX_TOPIC_LEN_V2,
            });
        }
        if self.properties.len() > MAX_PROPERTIES_LEN {
            return Err(MessageError::TooLong {
                field: "properties",
                len: self.properties.len(),
                max: MAX_PROPERTIES_LEN,
            });
        }
        let len = encoded_len(
            self.topic.len(),
            self.body.len(),
            self.properties.len(),
            self.effective_sys_flag(),
        );
        if len > i32::MAX as usize {
            return Err(MessageError::TooLong {
                field: "record",
                len,
                max: i32::MAX as usize,
            });
        }
        Ok(len)
    }

    /// Writes the record at the start of `dst`, computing TOTALSIZE and BODYCRC. Returns its size.
    pub fn encode_into(&self, dst: &mut [u8]) -> Result<usize, MessageError> {
        let len = self.encoded_len()?;
        if dst.len() < len {
            return Err(MessageError::BufferTooSmall {
                needed: len,
                available: dst.len(),
            });
        }
        let sys_flag = self.effective_sys_flag();
        let v2 = self.topic.len() > MAX_TOPIC_LEN_V1;
        let mut w = Writer {
            buf: &mut dst[..len],
            pos: 0,
        };
        w.put(&(len as u32).to_be_bytes());
        w.put(
            &(if v2 {
                MESSAGE_MAGIC_V2
            } else {
                MESSAGE_MAGIC_V1
            })
            .to_be_bytes(),
        );
        w.put(&body_crc(self.body).to_be_bytes());
        w.put(&self.queue_id.to_be_bytes());
        w.put(&self.flag.to_be_bytes());
        w.put(&self.queue_offset.to_be_bytes());
        w.put(&self.phys_offset.to_be_bytes());
        w.put(&sys_flag.to_be_bytes());
        w.put(&self.born_timestamp.to_be_bytes());
        w.host(self.born_host);
        w.put(&self.store_timestamp.to_be_bytes());
        w.host(self.store_host);
        w.put(&self.reconsume_times.to_be_bytes());
        w.put(&self.prepared_transaction_offset.to_be_bytes());
        w.put(&(self.body.len() as u32).to_be_bytes());
        w.put(self.body);
        if v2 {
            w.put(&(self.topic.len() as u16).to_be_bytes());
        } else {
            w.put(&[self.topic.len() as u8]);
        }
        w.put(self.topic.as_bytes());
        w.put(&(self.properties.len() as u16).to_be_bytes());
        w.put(self.properties.as_bytes());
        debug_assert_eq!(w.pos, len);
        Ok(len)
    }

    /// Appends the record to `dst`. Returns its size.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<usize, MessageError> {
        let len = self.encoded_len()?;
        let start = dst.len();
        dst.resize(start + len, 0);
        self.encode_into(&mut dst[start..])
    }

    /// The record as a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, MessageError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b.freeze())
    }
}

/// Writer over a slice sized exactly for the record (checked by `encode_into`).
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    fn host(&mut self, addr: SocketAddr) {
        match addr.ip() {
            IpAddr::V4(v4) => self.put(&v4.octets()),
            IpAddr::V6(v6) => self.put(&v6.octets()),
        }
        self.put(&i32::from(addr.port()).to_be_bytes());
    }
}

fn check_len(rec: &[u8], end: usize) -> Result<(), MessageError> {
    if rec.len() < end {
        return Err(MessageError::Truncated {
            field: "record",
            offset: 0,
            needed: end,
            available: rec.len(),
        });
    }
    Ok(())
}

/// Overwrites QUEUEOFFSET of an encoded record.
pub fn patch_queue_offset(rec: &mut [u8], queue_offset: i64) -> Result<(), MessageError> {
    check_len(rec, QUEUE_OFFSET_POSITION + 8)?;
    rec[QUEUE_OFFSET_POSITION..QUEUE_OFFSET_POSITION + 8]
        .copy_from_slice(&queue_offset.to_be_bytes());
    Ok(())
}

/// Overwrites PHYSICALOFFSET of an encoded record.
pub fn patch_phys_offset(rec: &mut [u8], phys_offset: i64) -> Result<(), MessageError> {
    check_len(rec, PHY_POS_POSITION + 8)?;
    rec[PHY_POS_POSITION..PHY_POS_POSITION + 8].copy_from_slice(&phys_offset.to_be_bytes());
    Ok(())
}

/// Overwrites STORETIMESTAMP of an encoded record (its position depends on SYSFLAG).
pub fn patch_store_timestamp(rec: &mut [u8], store_timestamp: i64) -> Result<(), MessageError> {
    check_len(rec, SYSFLAG_POSITION + 4)?;
    let f = &rec[SYSFLAG_POSITION..SYSFLAG_POSITION + 4];
    let sys_flag = i32::from_be_bytes([f[0], f[1], f[2], f[3]]);
    let pos = store_timestamp_position(sys_flag);
    check_len(rec, pos + 8)?;
    rec[pos..pos + 8].copy_from_slice(&store_timestamp.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(topic: &'a str, body: &'a [u8], props: &'a str) -> RecordInput<'a> {
        RecordInput {
            topic,
            queue_id: 3,
            flag: 7,
            body,
            properties: props,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.1.2.3:5555".parse().unwrap(),
            store_timestamp: 1_700_000_000_123,
            store_host: "192.168.0.1:10911".parse().unwrap(),
            reconsume_times: 2,
            prepared_transaction_offset: 0,
            queue_offset: 42,
            phys_offset: 0x1234,
        }
    }

    #[test]
    fn layout_v4() {
        let input = sample("TopicTest", b"hello", "TAGS\u{1}TagA\u{2}");
        let bytes = input.to_bytes().unwrap();
        assert_eq!(bytes.len(), 91 + 5 + 9 + 10);
        assert_eq!(&bytes[4..8], &MESSAGE_MAGIC_V1.to_be_bytes());
        assert_eq!(
            &bytes[QUEUE_OFFSET_POSITION..QUEUE_OFFSET_POSITION + 8],
            &42i64.to_be_bytes()
        );
        assert_eq!(
            &bytes[PHY_POS_POSITION..PHY_POS_POSITION + 8],
            &0x1234i64.to_be_bytes()
        );
        assert_eq!(
            &bytes[STORE_TIMESTAMP_POSITION..STORE_TIMESTAMP_POSITION + 8],
            &1_700_000_000_123i64.to_be_bytes()
        );
        assert_eq!(&bytes[48..56], &[10, 1, 2, 3, 0, 0, 0x15, 0xB3]);
        let (m, n) = StoredMessage::decode(&bytes).unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(m.as_input(), input);
        assert_eq!(m.body_crc, body_crc(b"hello"));
        assert_eq!(m.offset_msg_id(), "C0A8000100002A9F0000000000001234");
        assert_eq!(m.property("TAGS"), Some("TagA"));
    }

    #[test]
    fn ipv6_and_v2() {
        let topic = "T".repeat(200);
        let mut input = sample(&topic, b"", "");
        input.born_host = "[::1]:1".parse().unwrap();
        input.store_host = "[fe80::2]:10911".parse().unwrap();
        let bytes = input.to_bytes().unwrap();
        assert_eq!(&bytes[4..8], &MESSAGE_MAGIC_V2.to_be_bytes());
        let (m, _) = StoredMessage::decode(&bytes).unwrap();
        assert_eq!(m.sys_flag, BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
        assert_eq!(m.topic, topic);
        assert_eq!(m.born_host, input.born_host);
        assert_eq!(m.store_host, input.store_host);
        assert_eq!(bytes.len(), encoded_len(200, 0, 0, m.sys_flag));
    }

    #[test]
    fn patching() {
        let mut input = sample("t", b"x", "");
        input.born_host = "[::1]:1".parse().unwrap();
        let mut buf = input.to_bytes().unwrap().to_vec();
        patch_queue_offset(&mut buf, 9).unwrap();
        patch_phys_offset(&mut buf, 10).unwrap();
        patch_store_timestamp(&mut buf, 11).unwrap();
        let (v, _) = RecordView::parse(&buf).unwrap();
        assert_eq!(
            (v.queue_offset, v.phys_offset, v.store_timestamp),
            (9, 10, 11)
        );
        assert!(patch_store_timestamp(&mut buf[..40], 1).is_err());
    }

    #[test]
    fn rejects() {
        let bytes = sample("t", b"body", "").to_bytes().unwrap();
        // Truncations at every length.
        for n in 0..bytes.len() {
            assert!(RecordView::parse(&bytes[..n]).is_err(), "len {n}");
        }
        // Body CRC.
        let mut bad = bytes.to_vec();
        let body_at = fixed_len(0) + 4;
        bad[body_at] ^= 1;
        assert!(matches!(
            StoredMessage::decode_slice(&bad),
            Err(MessageError::BodyCrc { offset: 8, .. })
        ));
        // Blank marker.
        let mut blank = vec![0u8; 8];
        blank[..4].copy_from_slice(&100u32.to_be_bytes());
        blank[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
        assert_eq!(
            RecordView::parse(&blank).unwrap_err(),
            MessageError::Blank {
                offset: 0,
                total_size: 100
            }
        );
        // Total size larger than the fields.
        let mut longer = bytes.to_vec();
        longer.push(0);
        let n = longer.len() as u32;
        longer[..4].copy_from_slice(&n.to_be_bytes());
        assert!(matches!(
            RecordView::parse(&longer),
            Err(MessageError::SizeMismatch { .. })
        ));
        // Too-long fields in the encoder.
        let props = "p".repeat(40_000);
        assert!(sample("t", b"", &props).to_bytes().is_err());
        let mut small = [0u8; 10];
        assert!(sample("t", b"", "").encode_into(&mut small).is_err());
    }

    #[test]
    fn decode_all_concatenation() {
        let mut buf = BytesMut::new();
        for i in 0..3 {
            let mut s = sample("t", b"abc", "");
            s.queue_offset = i;
            s.encode(&mut buf).unwrap();
        }
        let msgs = decode_all(buf.freeze()).unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn negative_lengths_are_bad_lengths_at_their_offset() {
        let good = sample("TopicTest", b"hello", "TAGS\u{1}TagA\u{2}")
            .to_bytes()
            .unwrap();
        let mut b = good.to_vec();
        b[84..88].copy_from_slice(&(-1i32).to_be_bytes());
        match RecordView::parse_at(&b, 1000) {
            Err(MessageError::BadLength {
                field,
                offset,
                value,
            }) => {
                assert_eq!((field, offset, value), ("BODYLEN", 1084, -1));
            }
            other => panic!("{other:?}"),
        }
        let mut b = good.to_vec();
        b[103..105].copy_from_slice(&(-2i16).to_be_bytes());
        match RecordView::parse_at(&b, 0) {
            Err(MessageError::BadLength {
                field,
                offset,
                value,
            }) => {
                assert_eq!((field, offset, value), ("PROPERTIESLEN", 103, -2));
            }
            other => panic!("{other:?}"),
        }
    }
}
