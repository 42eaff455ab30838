//! Per-segment index: a record table (position, size, CRC32C of every record in the segment)
//! and a key table (hash of `topic#key` / `topic#uniqKey` → position), plus the segment's store
//! time bounds. Built in memory while a segment is active, written as `<base>.idx` when the
//! segment is sealed, rebuilt from the segment when that file is missing.

use crate::error::{Result, StoreError};

const MAGIC: &[u8; 8] = b"SATIDX01";
pub const HEADER_LEN: usize = 64;
const REC_LEN: usize = 12;
const KEY_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecEntry {
    pub pos: u32,
    pub size: u32,
    pub crc: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub records: u32,
    pub keys: u32,
    pub min_ts: i64,
    pub max_ts: i64,
}

#[derive(Debug, Clone)]
pub struct SegIndex {
    pub records: Vec<RecEntry>,
    pub keys: Vec<(u64, u32)>,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// FNV-1a 64 of `topic#key`: stable across versions, as it is stored on disk.
pub fn key_hash(topic: &str, key: &str) -> u64 {
    // Three plain loops rather than a chained iterator (the same bytes in the same order).
    fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
    let h = fnv(0xcbf2_9ce4_8422_2325, topic.as_bytes());
    let h = fnv(h, b"#");
    fnv(h, key.as_bytes())
}

impl Default for SegIndex {
    fn default() -> Self {
        SegIndex {
            records: Vec::new(),
            keys: Vec::new(),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }
}

impl SegIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index with room for `records` records and `keys` keys, so
    /// that a segment's tables do not grow by doubling (each doubling copies
    /// the table into freshly faulted memory). Untouched capacity costs
    /// address space only.
    pub fn with_capacity(records: usize, keys: usize) -> Self {
        SegIndex {
            records: Vec::with_capacity(records),
            keys: Vec::with_capacity(keys),
            ..Self::default()
        }
    }

    /// Room for the next segment: what this one held, plus a quarter.
    pub fn next_capacity(&self) -> (usize, usize) {
        (self.records.len() * 5 / 4, self.keys.len() * 5 / 4)
    }

    pub fn add_record(&mut self, pos: u32, size: u32, crc: u32, store_ts: i64) {
        debug_assert!(self.records.last().is_none_or(|r| r.pos < pos));
        self.records.push(RecEntry { pos, size, crc });
        self.min_ts = self.min_ts.min(store_ts);
        self.max_ts = self.max_ts.max(store_ts);
    }

    pub fn add_key(&mut self, hash: u64, pos: u32) {
        self.keys.push((hash, pos));
    }

    pub fn record(&self, pos: u32) -> Option<RecEntry> {
        self.records
            .binary_search_by_key(&pos, |r| r.pos)
            .ok()
            .map(|i| self.records[i])
    }

    /// Positions of records indexed under `hash`, newest first.
    pub fn lookup(&self, hash: u64) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .keys
            .iter()
            .filter(|k| k.0 == hash)
            .map(|k| k.1)
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// The file image, padded to a multiple of 4096 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        let payload_len = self.records.len() * REC_LEN + keys.len() * KEY_LEN;
        let mut out = Vec::with_capacity(HEADER_LEN + payload_len + 4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.records.len() as u32).to_be_bytes());
        out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.min_ts.to_be_bytes());
        out.extend_from_slice(&self.max_ts.to_be_bytes());
        out.extend_from_slice(&[0u8; 4]); // payload crc, filled below
        out.resize(HEADER_LEN, 0);
        for r in &self.records {
            out.extend_from_slice(&r.pos.to_be_bytes());
            out.extend_from_slice(&r.size.to_be_bytes());
            out.extend_from_slice(&r.crc.to_be_bytes());
        }
        for (h, p) in &keys {
            out.extend_from_slice(&h.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out[HEADER_LEN..]);
        out[32..36].copy_from_slice(&crc.to_be_bytes());
        let padded = out.len().div_ceil(4096) * 4096;
        out.resize(padded, 0);
        out
    }

    pub fn decode_header(buf: &[u8]) -> Option<Header> {
        if buf.len() < HEADER_LEN || &buf[..8] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let i64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&buf[i..i + 8]);
            i64::from_be_bytes(a)
        };
        Some(Header {
            records: u32_at(8),
            keys: u32_at(12),
            min_ts: i64_at(16),
            max_ts: i64_at(24),
        })
    }

    pub fn decode(buf: &[u8], what: &std::path::Path) -> Result<SegIndex> {
        let bad = |reason: &str| StoreError::Corrupt {
            offset: 0,
            reason: format!("index file {}: {reason}", what.display()),
        };
        let h = Self::decode_header(buf).ok_or_else(|| bad("bad header"))?;
        let payload_len = h.records as usize * REC_LEN + h.keys as usize * KEY_LEN;
        let payload = buf
            .get(HEADER_LEN..HEADER_LEN + payload_len)
            .ok_or_else(|| bad("truncated"))?;
        let stored = u32::from_be_bytes([buf[32], buf[33], buf[34], buf[35]]);
        if crc32c::crc32c(payload) != stored {
            return Err(bad("checksum mismatch"));
        }
        let (recs, keys) = payload.split_at(h.records as usize * REC_LEN);
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let records = recs
            .chunks_exact(REC_LEN)
            .map(|c| RecEntry {
                pos: be32(&c[0..4]),
                size: be32(&c[4..8]),
                crc: be32(&c[8..12]),
            })
            .collect();
        let keys = keys
            .chunks_exact(KEY_LEN)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&c[..8]);
                (u64::from_be_bytes(a), be32(&c[8..12]))
            })
            .collect();
        Ok(SegIndex {
            records,
            keys,
            min_ts: h.min_ts,
            max_ts: h.max_ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_fnv1a_of_topic_hash_key() {
        // The hash is stored on disk: it must stay FNV-1a 64 over `topic#key`.
        let reference = |s: &str| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
        };
        for (t, k) in [
            ("t", "k"),
            ("BenchTopic", "0123456789ABCDEF"),
            ("", ""),
            ("a#b", "c"),
        ] {
            assert_eq!(key_hash(t, k), reference(&format!("{t}#{k}")));
        }
    }

    #[test]
    fn round_trip() {
        let mut s = SegIndex::new();
        s.add_record(0, 100, 7, 5);
        s.add_record(100, 50, 8, 9);
        s.add_key(key_hash("t", "k"), 100);
        s.add_key(key_hash("t", "a"), 0);
        let b = s.encode();
        assert_eq!(b.len() % 4096, 0);
        let d = SegIndex::decode(&b, std::path::Path::new("x")).unwrap();
        assert_eq!(d.records, s.records);
        assert_eq!(d.lookup(key_hash("t", "k")), vec![100]);
        assert_eq!((d.min_ts, d.max_ts), (5, 9));
        assert_eq!(d.record(100).unwrap().crc, 8);
        let mut bad = b.clone();
        bad[HEADER_LEN] ^= 1;
        assert!(SegIndex::decode(&bad, std::path::Path::new("x")).is_err());
    }
}
