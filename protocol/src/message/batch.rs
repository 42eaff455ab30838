//! The SEND_BATCH_MESSAGE body (reference §2.3): a concatenation of
//! `TOTALSIZE 4 | MAGIC 4 (0) | BODYCRC 4 (0) | FLAG 4 | BODYLEN 4 + BODY | PROPLEN 2 + PROPERTIES`.
//!
//! Decoding is as lenient as Java's `MessageDecoder.decodeMessage`: TOTALSIZE, MAGIC and BODYCRC
//! are read and ignored, the fields are read in order. It is strict about lengths that would run
//! past the buffer, negative lengths and properties that are not UTF-8.

use bytes::{BufMut, Bytes, BytesMut};

use super::MessageError;

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
}

/// Fixed bytes of an entry besides body and properties.
const ENTRY_OVERHEAD: usize = 4 + 4 + 4 + 4 + 4 + 2;

fn read<const N: usize>(
    buf: &[u8],
    pos: &mut usize,
    field: &'static str,
) -> Result<[u8; N], MessageError> {
    let available = buf.len() - *pos;
    if available < N {
        return Err(MessageError::Truncated {
            field,
            offset: *pos,
            needed: N,
            available,
        });
    }
    let mut a = [0u8; N];
    a.copy_from_slice(&buf[*pos..*pos + N]);
    *pos += N;
    Ok(a)
}

fn read_slice<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    n: usize,
    field: &'static str,
) -> Result<&'a [u8], MessageError> {
    let available = buf.len() - *pos;
    if available < n {
        return Err(MessageError::Truncated {
            field,
            offset: *pos,
            needed: n,
            available,
        });
    }
    let s = &buf[*pos..*pos + n];
    *pos += n;
    Ok(s)
}

/// Decodes a batch body. Bodies are copied out of `buf`; see [`decode_batch_bytes`] for zero-copy.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<BatchEntry>, MessageError> {
    decode_inner(buf, Bytes::copy_from_slice)
}

/// Decodes a batch body; bodies are slices of `buf`.
pub fn decode_batch_bytes(buf: &Bytes) -> Result<Vec<BatchEntry>, MessageError> {
    decode_inner(buf, |s| buf.slice_ref(s))
}

fn decode_inner(
    buf: &[u8],
    body_of: impl Fn(&[u8]) -> Bytes,
) -> Result<Vec<BatchEntry>, MessageError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let _total = read::<4>(buf, &mut pos, "TOTALSIZE")?;
        let _magic = read::<4>(buf, &mut pos, "MAGICCODE")?;
        let _crc = read::<4>(buf, &mut pos, "BODYCRC")?;
        let flag = i32::from_be_bytes(read::<4>(buf, &mut pos, "FLAG")?);
        let body_len_at = pos;
        let body_len = i32::from_be_bytes(read::<4>(buf, &mut pos, "BODYLEN")?);
        if body_len < 0 {
            return Err(MessageError::BadLength {
                field: "BODYLEN",
                offset: body_len_at,
                value: i64::from(body_len),
            });
        }
        let body = body_of(read_slice(buf, &mut pos, body_len as usize, "BODY")?);
        let props_len_at = pos;
        let props_len = i16::from_be_bytes(read::<2>(buf, &mut pos, "PROPERTIESLEN")?);
        if props_len < 0 {
            return Err(MessageError::BadLength {
                field: "PROPERTIESLEN",
                offset: props_len_at,
                value: i64::from(props_len),
            });
        }
        let props_at = pos;
        let props = read_slice(buf, &mut pos, props_len as usize, "PROPERTIES")?;
        let properties = std::str::from_utf8(props)
            .map_err(|_| MessageError::Utf8 {
                field: "PROPERTIES",
                offset: props_at,
            })?
            .to_string();
        out.push(BatchEntry {
            flag,
            body,
            properties,
        });
    }
    Ok(out)
}

/// Appends one entry as Java's `MessageDecoder.encodeMessage` writes it (MAGIC and BODYCRC 0).
pub fn encode_batch_entry(
    dst: &mut BytesMut,
    flag: i32,
    body: &[u8],
    properties: &str,
) -> Result<(), MessageError> {
    if properties.len() > i16::MAX as usize {
        return Err(MessageError::TooLong {
            field: "properties",
            len: properties.len(),
            max: i16::MAX as usize,
        });
    }
    let total = ENTRY_OVERHEAD + body.len() + properties.len();
    if total > i32::MAX as usize {
        return Err(MessageError::TooLong {
            field: "batch entry",
            len: total,
            max: i32::MAX as usize,
        });
    }
    dst.reserve(total);
    dst.put_i32(total as i32);
    dst.put_i32(0);
    dst.put_i32(0);
    dst.put_i32(flag);
    dst.put_i32(body.len() as i32);
    dst.put_slice(body);
    dst.put_i16(properties.len() as i16);
    dst.put_slice(properties.as_bytes());
    Ok(())
}

/// Encodes a whole batch body.
pub fn encode_batch(entries: &[BatchEntry]) -> Result<Bytes, MessageError> {
    let mut dst = BytesMut::new();
    for e in entries {
        encode_batch_entry(&mut dst, e.flag, &e.body, &e.properties)?;
    }
    Ok(dst.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = vec![
            BatchEntry {
                flag: 1,
                body: Bytes::from_static(b"one"),
                properties: "TAGS\u{1}a\u{2}".into(),
            },
            BatchEntry {
                flag: 0,
                body: Bytes::new(),
                properties: String::new(),
            },
        ];
        let buf = encode_batch(&entries).unwrap();
        assert_eq!(&buf[..4], &(22 + 3 + 7i32).to_be_bytes());
        assert_eq!(decode_batch(&buf).unwrap(), entries);
        assert_eq!(decode_batch_bytes(&buf).unwrap(), entries);
        for n in 1..buf.len() {
            if n == 32 {
                // A cut exactly between entries is a valid shorter batch.
                assert_eq!(decode_batch(&buf[..n]).unwrap().len(), 1);
                continue;
            }
            assert!(decode_batch(&buf[..n]).is_err(), "len {n}");
        }
        assert_eq!(decode_batch(&[]).unwrap(), vec![]);
    }

    #[test]
    fn rejects_negative_lengths() {
        let mut b = BytesMut::new();
        b.put_i32(0);
        b.put_i32(0);
        b.put_i32(0);
        b.put_i32(0);
        b.put_i32(-1);
        assert!(matches!(
            decode_batch(&b),
            Err(MessageError::BadLength { offset: 16, .. })
        ));
    }
}
