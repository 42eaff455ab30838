//! Per-segment index: a record table (position, size, CRC32C of every record in the segment)
//! and a key table (hash of `topic#key` / `topic#uniqKey` → position), plus the segment's store
//! time bounds. Built in memory while a segment is active, written as `<base>.idx` when the
//! segment is sealed, rebuilt from the segment when that file is missing.

use std::collections::HashMap;

use crate::error::{Result, StoreError};
use crate::io::{self, Disk, File};
use crate::offsets::SegPos;

const MAGIC: &[u8; 8] = b"SATIDX01";
pub const HEADER_LEN: usize = 64;
const REC_LEN: usize = 12;
const KEY_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecEntry {
    pub pos: SegPos,
    pub size: u32,
    pub crc: u32,
}

impl RecEntry {
    /// The one 12-byte codec of a record-table entry (position, size, CRC32C; big-endian), in
    /// `.idx` files and `.sums` journals.
    pub fn encode(&self) -> [u8; REC_LEN] {
        let mut e = [0u8; REC_LEN];
        e[0..4].copy_from_slice(&self.pos.0.to_be_bytes());
        e[4..8].copy_from_slice(&self.size.to_be_bytes());
        e[8..12].copy_from_slice(&self.crc.to_be_bytes());
        e
    }

    /// Decodes the first 12 bytes of `c` (at least 12 long).
    pub fn decode(c: &[u8]) -> RecEntry {
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        RecEntry {
            pos: SegPos(be32(&c[0..4])),
            size: be32(&c[4..8]),
            crc: be32(&c[8..12]),
        }
    }
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

/// Indexes a record's keys: its UNIQ_KEY and each space-separated token of its KEYS, as
/// `topic#key`. The one key indexer, at append and when recovery rebuilds an index.
pub fn index_keys(idx: &mut SegIndex, topic: &str, uniq: Option<&str>, keys: &str, pos: SegPos) {
    if let Some(u) = uniq {
        idx.add_key(key_hash(topic, u), pos);
    }
    for k in keys.split(' ').filter(|k| !k.is_empty()) {
        idx.add_key(key_hash(topic, k), pos);
    }
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

    /// Empties the tables, keeping their memory, with room for `records` records and `keys`
    /// keys.
    pub fn reset(&mut self, records: usize, keys: usize) {
        self.records.clear();
        self.keys.clear();
        self.records.reserve(records);
        self.keys.reserve(keys);
        self.min_ts = i64::MAX;
        self.max_ts = i64::MIN;
    }

    /// Room for the next segment: what this one held, plus a quarter.
    pub fn next_capacity(&self) -> (usize, usize) {
        (self.records.len() * 5 / 4, self.keys.len() * 5 / 4)
    }

    pub fn add_record(&mut self, pos: SegPos, size: u32, crc: u32, store_ts: i64) {
        debug_assert!(self.records.last().is_none_or(|r| r.pos < pos));
        self.records.push(RecEntry { pos, size, crc });
        self.min_ts = self.min_ts.min(store_ts);
        self.max_ts = self.max_ts.max(store_ts);
    }

    pub fn add_key(&mut self, hash: u64, pos: SegPos) {
        self.keys.push((hash, pos.0));
    }

    pub fn record(&self, pos: SegPos) -> Option<RecEntry> {
        self.records
            .binary_search_by_key(&pos, |r| r.pos)
            .ok()
            .map(|i| self.records[i])
    }

    /// Positions of records indexed under `hash`, newest first.
    pub fn lookup(&self, hash: u64) -> Vec<SegPos> {
        let mut v: Vec<SegPos> = self
            .keys
            .iter()
            .filter(|k| k.0 == hash)
            .map(|k| SegPos(k.1))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// The file image, padded to a multiple of 4096 bytes, in one buffer (tests).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.image_len()];
        let mut buf = vec![0u8; 2 * IMAGE_BLOCK];
        let r: Result<()> = self.write_image(&mut buf, |at, bytes| {
            out[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
            Ok(())
        });
        debug_assert!(r.is_ok());
        out
    }

    /// Length of the file image: header and tables, padded to a multiple of 4096 bytes.
    pub fn image_len(&self) -> usize {
        (HEADER_LEN + self.records.len() * REC_LEN + self.keys.len() * KEY_LEN)
            .div_ceil(IMAGE_BLOCK)
            * IMAGE_BLOCK
    }

    /// Produces the file image through `buf` (a multiple of 4096 bytes, at least 8192), so that
    /// a segment's tables (tens of MB) need no image of their own in memory: `put(offset,
    /// bytes)` receives consecutive runs of whole 4096-byte blocks, every run from offset 4096
    /// on first and the first block (the header, whose payload checksum is known only at the
    /// end) last. Every run is a prefix of `buf`, or starts at its second block for the first
    /// run, so runs share `buf`'s alignment.
    pub fn write_image(
        &self,
        buf: &mut [u8],
        mut put: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        debug_assert!(buf.len().is_multiple_of(IMAGE_BLOCK) && buf.len() >= 2 * IMAGE_BLOCK);
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        let payload_len = self.records.len() * REC_LEN + keys.len() * KEY_LEN;
        let mut first = [0u8; IMAGE_BLOCK];
        buf[..HEADER_LEN].fill(0); // the header's room; filled in `first` at the end
        let mut w = ImageWriter {
            buf,
            fill: HEADER_LEN,
            at: 0,
            crc: 0,
            payload_left: payload_len,
            first: &mut first,
        };
        for r in &self.records {
            w.push(&r.encode(), &mut put)?;
        }
        for (h, p) in &keys {
            let mut e = [0u8; KEY_LEN];
            e[0..8].copy_from_slice(&h.to_be_bytes());
            e[8..12].copy_from_slice(&p.to_be_bytes());
            w.push(&e, &mut put)?;
        }
        let crc = w.finish(&mut put)?;
        first[..8].copy_from_slice(MAGIC);
        first[8..12].copy_from_slice(&(self.records.len() as u32).to_be_bytes());
        first[12..16].copy_from_slice(&(keys.len() as u32).to_be_bytes());
        first[16..24].copy_from_slice(&self.min_ts.to_be_bytes());
        first[24..32].copy_from_slice(&self.max_ts.to_be_bytes());
        first[32..36].copy_from_slice(&crc.to_be_bytes());
        // From `buf`, like every other run (its memory may have an alignment that `first`'s
        // has not: direct writes need it).
        buf[..IMAGE_BLOCK].copy_from_slice(&first);
        put(0, &buf[..IMAGE_BLOCK])
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
        let records = recs.chunks_exact(REC_LEN).map(RecEntry::decode).collect();
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

/// Block size of index file images (their O_DIRECT writes).
const IMAGE_BLOCK: usize = 4096;

/// Fills a buffer with an index image and hands it on in whole blocks (see
/// [`SegIndex::write_image`]).
struct ImageWriter<'a> {
    buf: &'a mut [u8],
    /// Bytes of `buf` in use.
    fill: usize,
    /// File offset of `buf[0]`.
    at: u64,
    /// CRC32C of the payload so far.
    crc: u32,
    /// Payload bytes not yet covered by `crc`.
    payload_left: usize,
    /// The first block, kept back until the checksum is known.
    first: &'a mut [u8; IMAGE_BLOCK],
}

impl ImageWriter<'_> {
    fn push(&mut self, e: &[u8], put: &mut impl FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        if self.fill + e.len() > self.buf.len() {
            // The whole blocks go on; the partial last one moves to the front and this entry
            // follows it.
            let whole = self.fill / IMAGE_BLOCK * IMAGE_BLOCK;
            self.emit(whole, put)?;
        }
        self.buf[self.fill..self.fill + e.len()].copy_from_slice(e);
        self.fill += e.len();
        Ok(())
    }

    /// Passes on `buf[..n]` (whole blocks) and moves what follows it to the front.
    fn emit(&mut self, n: usize, put: &mut impl FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        let payload_from = if self.at == 0 { HEADER_LEN } else { 0 };
        let covered = (n - payload_from.min(n)).min(self.payload_left);
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[payload_from..payload_from + covered]);
        self.payload_left -= covered;
        if self.at == 0 {
            self.first.copy_from_slice(&self.buf[..IMAGE_BLOCK]);
            if n > IMAGE_BLOCK {
                put(IMAGE_BLOCK as u64, &self.buf[IMAGE_BLOCK..n])?;
            }
        } else if n > 0 {
            put(self.at, &self.buf[..n])?;
        }
        self.buf.copy_within(n..self.fill, 0);
        self.fill -= n;
        self.at += n as u64;
        Ok(())
    }

    /// Pads the image to whole blocks, passes on the rest and returns the payload's CRC32C.
    fn finish(mut self, put: &mut impl FnMut(u64, &[u8]) -> Result<()>) -> Result<u32> {
        let end = self.fill.div_ceil(IMAGE_BLOCK).max(1) * IMAGE_BLOCK;
        self.buf[self.fill..end].fill(0);
        self.fill = end;
        self.emit(end, put)?;
        debug_assert_eq!(self.payload_left, 0);
        Ok(self.crc)
    }
}

/// Writes `<base>.idx` (through a temporary file, fdatasynced, renamed, the directory fsynced)
/// with blocking I/O: on the blocking pool when a segment is sealed, inline during recovery.
/// The image goes out in 1 MiB direct writes from one buffer: a segment's tables are tens of
/// MB, and neither a copy of them in memory nor in the page cache would be read again (indexes
/// are loaded with direct reads).
pub(crate) fn write_index_file(disk: &Disk, path: &std::path::Path, idx: &SegIndex) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let tmp = path.with_extension("idx.tmp");
    disk.remove_file(&tmp)?;
    let f = disk.open_blocking(&tmp, true)?;
    let mut buf = io::AlignedBuf::zeroed(CHUNK.min(idx.image_len().max(8192)));
    // Every run comes from `buf`, whose memory is block-aligned.
    idx.write_image(buf.as_mut_slice(), |at, bytes| {
        io::write_all_at(&*f, &tmp, at, &[bytes])
    })?;
    f.sync_data()
        .map_err(|e| StoreError::io("fdatasync", &tmp, None, e))?;
    drop(f);
    disk.rename_durable(&tmp, path)
}

/// Reads a `.sums` journal: position → entry.
pub(crate) async fn read_sums(
    disk: &Disk,
    path: &std::path::Path,
) -> Result<HashMap<SegPos, RecEntry>> {
    let mut out = HashMap::new();
    if !disk.exists(path) {
        return Ok(out);
    }
    let f = File::open(disk, path, false).await?;
    let size = f.size().await?;
    let b = f.read_at(0, size as usize).await?;
    f.close().await?;
    for c in b.chunks_exact(12) {
        let e = RecEntry::decode(c);
        if e.size == 0 {
            break;
        }
        out.insert(e.pos, e);
    }
    Ok(out)
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
        s.add_record(SegPos(0), 100, 7, 5);
        s.add_record(SegPos(100), 50, 8, 9);
        s.add_key(key_hash("t", "k"), SegPos(100));
        s.add_key(key_hash("t", "a"), SegPos(0));
        let b = s.encode();
        assert_eq!(b.len() % 4096, 0);
        let d = SegIndex::decode(&b, std::path::Path::new("x")).unwrap();
        assert_eq!(d.records, s.records);
        assert_eq!(d.lookup(key_hash("t", "k")), vec![SegPos(100)]);
        assert_eq!((d.min_ts, d.max_ts), (5, 9));
        assert_eq!(d.record(SegPos(100)).unwrap().crc, 8);
        let mut bad = b.clone();
        bad[HEADER_LEN] ^= 1;
        assert!(SegIndex::decode(&bad, std::path::Path::new("x")).is_err());
    }

    #[test]
    fn image_written_in_many_runs_decodes_whole() {
        // Tables far larger than the buffer: entries cross block boundaries, runs are many.
        let mut s = SegIndex::new();
        for i in 0..5000u32 {
            s.add_record(
                SegPos(i * 100),
                100,
                i.wrapping_mul(2_654_435_761),
                i64::from(i),
            );
        }
        for i in (0..3001u32).rev() {
            s.add_key(key_hash("t", &i.to_string()), SegPos(i * 100));
        }
        let mut runs = Vec::new();
        let mut image = vec![0u8; s.image_len()];
        // A buffer that is not zeroed: nothing of it may leak into the image.
        let mut buf = vec![0xA5u8; 3 * IMAGE_BLOCK];
        // Every run comes from the buffer (the direct writes rely on its alignment).
        let (lo, hi) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        s.write_image(&mut buf, |at, bytes| {
            let p = bytes.as_ptr() as usize;
            assert!(p >= lo && p + bytes.len() <= hi && (p - lo).is_multiple_of(IMAGE_BLOCK));
            assert_eq!(at as usize % IMAGE_BLOCK, 0);
            assert_eq!(bytes.len() % IMAGE_BLOCK, 0);
            image[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
            runs.push(at);
            Ok(())
        })
        .unwrap();
        assert_eq!(runs.first(), Some(&(IMAGE_BLOCK as u64)));
        assert_eq!(runs.last(), Some(&0));
        assert!(runs.len() > 5, "{runs:?}");
        let d = SegIndex::decode(&image, std::path::Path::new("x")).unwrap();
        assert_eq!(d.records, s.records);
        assert_eq!(d.keys.len(), 3001);
        assert_eq!(d.lookup(key_hash("t", "1234")), vec![SegPos(123_400)]);
        assert_eq!((d.min_ts, d.max_ts), (0, 4999));
        assert_eq!(image, s.encode());
    }
}
