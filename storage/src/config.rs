use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Clock;
use crate::io::Disk;

/// When an append becomes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Group commit: [`crate::Store::wait_durable`] resolves after the fdatasync covering the
    /// record; readers see a record only once it is durable.
    Sync,
    /// Records are visible at once; flushed every `flush_interval` or when `flush_dirty_bytes`
    /// accumulate.
    Async,
}

/// How a new commit-log segment is prepared before it is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentInit {
    /// fallocate and write zeros over the whole segment once, so that commits overwrite
    /// initialized blocks (the fastest fdatasync).
    Prewrite,
    /// fallocate only (unwritten extents: cheaper to create, dearer to commit into).
    Fallocate,
    /// `Prewrite` under SYNC_FLUSH (every fdatasync counts), `Fallocate` under ASYNC_FLUSH
    /// (pre-writing would double the bytes written while a fresh store fills).
    Auto,
}

impl SegmentInit {
    pub fn resolve(self, flush: FlushMode) -> SegmentInit {
        match (self, flush) {
            (SegmentInit::Auto, FlushMode::Sync) => SegmentInit::Prewrite,
            (SegmentInit::Auto, FlushMode::Async) => SegmentInit::Fallocate,
            (s, _) => s,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of this shard's store (created if missing).
    pub dir: PathBuf,
    /// Commit-log segment size in bytes; a multiple of 4096, at least 64 KiB. Default 1 GiB.
    pub segment_size: u64,
    pub segment_init: SegmentInit,
    /// Spare segments kept for recycling after retention deletes old ones.
    pub recycle_segments: usize,
    pub flush: FlushMode,
    /// ASYNC_FLUSH: flush at least this often. Default 500 ms.
    pub flush_interval: Duration,
    /// ASYNC_FLUSH: flush as soon as this many bytes are unflushed. Default 4 MiB.
    pub flush_dirty_bytes: usize,
    /// `wait_durable` gives up (FlushTimeout) after this long. Default 5 s.
    pub flush_timeout: Duration,
    /// Appends fail with `Busy` beyond this many unflushed bytes. Default 256 MiB.
    pub max_dirty_bytes: usize,
    /// Largest single commit-log write submitted to the disk; appends hand a run of this many
    /// complete bytes to the writer thread at once. Default 4 MiB.
    pub write_chunk_bytes: usize,
    /// Writes in flight when segments are pre-written with zeros. Default 16.
    pub write_depth: usize,
    /// Recently appended commit-log bytes kept in memory for readers. Default 256 MiB.
    pub hot_cache_bytes: usize,
    /// Cold commit-log bytes read ahead and kept for readers (see the read-ahead cache in the
    /// crate docs). Default 32 MiB.
    pub read_cache_bytes: usize,
    /// Granularity of cold commit-log reads: a pull's span is read rounded out to multiples of
    /// this (a multiple of 4096). Default 4 KiB (spans are read as they are).
    pub read_chunk_bytes: usize,
    /// Consume-queue entries per file (a multiple of 1024, so a file is block-aligned).
    /// Default 307 200 (6 MB files).
    pub cq_file_entries: u64,
    /// Consume-queue entries kept in memory per queue beyond the unflushed ones. Default 4096.
    pub cq_cache_entries: usize,
    /// How often consume queues are flushed and a checkpoint written. Default 1 s.
    pub checkpoint_interval: Duration,
    /// Segments whose newest record is older than this are deleted. Default 72 h.
    pub retention: Duration,
    /// Segments are deleted (oldest first) while the disk is fuller than this. Default 0.85.
    pub disk_max_used_ratio: f64,
    /// How often retention runs. Default 10 s.
    pub retention_interval: Duration,
    /// Appends are refused with [`crate::StoreError::DiskFull`] while the file system holding
    /// the store has less free space than this (retention deletes segments meanwhile); they
    /// are accepted again once space is freed. Default 0 (only ENOSPC refuses them).
    pub disk_min_free_bytes: u64,
    /// The broker address written into STOREHOST.
    pub store_host: SocketAddr,
    /// The device every file operation goes through (the real disk by default).
    pub disk: Disk,
    /// Wall time for store timestamps and retention (the system clock by default).
    pub clock: Clock,
}

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>, store_host: SocketAddr) -> Self {
        StoreConfig {
            dir: dir.into(),
            segment_size: 1 << 30,
            segment_init: SegmentInit::Auto,
            recycle_segments: 2,
            flush: FlushMode::Async,
            flush_interval: Duration::from_millis(500),
            flush_dirty_bytes: 4 << 20,
            flush_timeout: Duration::from_secs(5),
            max_dirty_bytes: 256 << 20,
            write_chunk_bytes: 4 << 20,
            write_depth: 16,
            hot_cache_bytes: 256 << 20,
            read_cache_bytes: 32 << 20,
            read_chunk_bytes: 4096,
            cq_file_entries: 307_200,
            cq_cache_entries: 4096,
            checkpoint_interval: Duration::from_secs(1),
            retention: Duration::from_secs(72 * 3600),
            disk_max_used_ratio: 0.85,
            retention_interval: Duration::from_secs(10),
            disk_min_free_bytes: 0,
            store_host,
            disk: Disk::default(),
            clock: Clock::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.segment_size.is_multiple_of(4096) || self.segment_size < 64 * 1024 {
            return Err(format!(
                "segment_size {} must be a multiple of 4096 and at least 64 KiB",
                self.segment_size
            ));
        }
        if self.segment_size > u32::MAX as u64 {
            return Err("segment_size must be below 4 GiB".into());
        }
        if self.cq_file_entries == 0 || !self.cq_file_entries.is_multiple_of(1024) {
            return Err("cq_file_entries must be a positive multiple of 1024".into());
        }
        if self.write_chunk_bytes == 0 || !self.write_chunk_bytes.is_multiple_of(4096) {
            return Err("write_chunk_bytes must be a positive multiple of 4096".into());
        }
        if self.read_chunk_bytes == 0 || !self.read_chunk_bytes.is_multiple_of(4096) {
            return Err("read_chunk_bytes must be a positive multiple of 4096".into());
        }
        if self.write_depth == 0 || self.max_dirty_bytes == 0 {
            return Err("write_depth and max_dirty_bytes must be positive".into());
        }
        Ok(())
    }
}
