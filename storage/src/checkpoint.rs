//! The checkpoint: what recovery may trust without re-reading the commit log.
//!
//! `offset`: every record below it is durable in the commit log and its consume-queue entries
//! are durable too. `queues`: each queue's entry count at that moment, so that recovery can tell
//! a consume queue that went missing or fell behind (and rebuild it from the commit log).
//! Written to `checkpoint.tmp` (direct I/O, fdatasync), renamed over `checkpoint` and the
//! directory fsynced; a torn or
//! missing file only makes recovery start earlier.

use std::path::Path;

use crate::error::Result;
use crate::io::{align_up, Disk, File};
use crate::offsets::{LogOffset, QueueOffset};

const MAGIC: &[u8; 8] = b"SATCKPT1";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub offset: LogOffset,
    pub min_offset: LogOffset,
    pub queues: Vec<(String, i32, QueueOffset)>,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&self.offset.get().to_be_bytes());
        p.extend_from_slice(&self.min_offset.get().to_be_bytes());
        p.extend_from_slice(&(self.queues.len() as u32).to_be_bytes());
        for (t, q, max) in &self.queues {
            p.extend_from_slice(&(t.len() as u32).to_be_bytes());
            p.extend_from_slice(t.as_bytes());
            p.extend_from_slice(&q.to_be_bytes());
            p.extend_from_slice(&max.get().to_be_bytes());
        }
        let mut out = Vec::with_capacity(16 + p.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&p).to_be_bytes());
        out.extend_from_slice(&p);
        out
    }

    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.len() < 16 || &b[..8] != MAGIC {
            return None;
        }
        let len = u32::from_be_bytes(b[8..12].try_into().ok()?) as usize;
        let crc = u32::from_be_bytes(b[12..16].try_into().ok()?);
        let p = b.get(16..16 + len)?;
        if crc32c::crc32c(p) != crc {
            return None;
        }
        let mut r = p;
        let mut take = |n: usize| -> Option<&[u8]> {
            if r.len() < n {
                return None;
            }
            let (a, rest) = r.split_at(n);
            r = rest;
            Some(a)
        };
        let offset = LogOffset::new(u64::from_be_bytes(take(8)?.try_into().ok()?));
        let min_offset = LogOffset::new(u64::from_be_bytes(take(8)?.try_into().ok()?));
        let n = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut queues = Vec::new();
        for _ in 0..n {
            let tl = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
            let t = std::str::from_utf8(take(tl)?).ok()?.to_string();
            let q = i32::from_be_bytes(take(4)?.try_into().ok()?);
            let max = QueueOffset::new(u64::from_be_bytes(take(8)?.try_into().ok()?));
            queues.push((t, q, max));
        }
        Some(Checkpoint {
            offset,
            min_offset,
            queues,
        })
    }

    pub async fn load(disk: &Disk, dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join("checkpoint");
        if !disk.exists(&path) {
            return Ok(None);
        }
        let f = File::open(disk, &path, false).await?;
        let size = f.size().await?;
        let b = f.read_at(0, size as usize).await?;
        f.close().await?;
        let cp = Checkpoint::decode(&b);
        if cp.is_none() {
            tracing::warn!(path = %path.display(), "checkpoint unreadable; recovering from the oldest segment");
        }
        Ok(cp)
    }

    /// Writes the checkpoint durably: a temporary file, fdatasynced, renamed over the old one,
    /// the directory fsynced (else a power cut could bring the old checkpoint back).
    pub async fn store(&self, disk: &Disk, dir: &Path) -> Result<()> {
        let tmp = dir.join("checkpoint.tmp");
        let path = dir.join("checkpoint");
        disk.remove_file(&tmp)?;
        let f = File::open(disk, &tmp, true).await?;
        let data = self.encode();
        let mut buf = f.alloc(align_up(data.len() as u64) as usize);
        buf.as_bytes_mut()[..data.len()].copy_from_slice(&data);
        f.write_at(buf, 0).await?;
        f.fdatasync().await?;
        f.close().await?;
        disk.rename_durable(&tmp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = Checkpoint {
            offset: LogOffset::new(123),
            min_offset: LogOffset::new(4),
            queues: vec![
                ("t".into(), 1, QueueOffset::new(9)),
                ("%RETRY%g".into(), 0, QueueOffset::ZERO),
            ],
        };
        let mut b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        b.resize(8192, 0);
        assert!(Checkpoint::decode(&b).is_some());
        b[20] ^= 1;
        assert_eq!(Checkpoint::decode(&b), None);
    }
}
