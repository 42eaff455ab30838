//! Saturn's per-shard store: a direct-I/O commit log of RocketMQ stored messages, consume
//! queues, a key index, group-commit flushing, checkpoints, recovery and retention.
//!
//! One [`Store`] per shard, driven from that shard's glommio executor (it is `!Send`).
//!
//! # On disk
//!
//! ```text
//! <dir>/checkpoint                     durable offset + consume-queue manifest (CRC32C)
//! <dir>/commitlog/<20-digit base>      segment files, `segment_size` bytes each
//! <dir>/commitlog/<base>.idx           record table + key index of a sealed segment
//! <dir>/commitlog/<base>.sums          record-table journal of the active segment
//! <dir>/commitlog/free/                spare (recycled or pre-written) segments
//! <dir>/consumequeue/<topic>/<qid>/<20-digit first entry>   20-byte entries
//! ```
//!
//! **Commit log.** Records are RocketMQ stored messages (magic 0xDAA320A7, IPv4 hosts unless
//! IPv6 addresses are given) with QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP filled in at
//! append, so the bytes go to consumers unchanged. A record is placed in a segment only if 8
//! bytes stay free after it; otherwise an 8-byte blank marker (TOTALSIZE = the rest of the
//! segment, magic 0xCBD43194) ends the segment and the record starts the next one. Segments are
//! created at full size and written with zeros once (or recycled from retention), so commits
//! overwrite allocated, initialized blocks. Appends go to memory (4 MiB chunks laid out like the
//! file, so every block sits whole at an aligned address); whole blocks are written with
//! O_DIRECT straight from that memory, without a copy, by the store's writer thread
//! (module `writer`), in runs of `write_chunk_bytes`: as soon as a run is complete
//! (submitted by the append itself), and by the flusher for the rest, whose partial last block
//! is written from a copy (and again once complete). The flusher then has the writer thread
//! fdatasync the segments; the durable offset advances when that is done.
//!
//! **Integrity.** Every record carries RocketMQ's own checks (magic, TOTALSIZE, BODYCRC over the
//! body) and its PHYSICALOFFSET, which must equal its position. In addition the store keeps a
//! CRC32C of every record's full bytes (12-byte entry: position, size, CRC32C), computed before
//! it is written: in memory for the active segment, journaled to `<base>.sums` at each
//! checkpoint (for the records the checkpoint covers), and in the segment's `.idx` record table
//! (itself CRC32C-protected) once sealed. Every record read back from disk is checked before it
//! is returned: against its CRC32C entry (which covers all its bytes at its position, so its
//! fields need no other check), or, in a sealed segment whose `.idx` is missing or unreadable,
//! by parsing it and checking its PHYSICALOFFSET and BODYCRC; a record that fails is reported
//! (error log, skipped) and never served. Recovery checks the same for everything it scans:
//! records below the checkpoint against the journal, records beyond it structurally (their
//! CRC32C was never persisted).
//! A torn 4 KiB block write under power loss could damage already-durable records of the same
//! block (the partial block is rewritten in place); SIGKILL cannot tear a write.
//!
//! **Consume queues** are derived data: appended in memory at append, written and fdatasynced
//! by the checkpointer every `checkpoint_interval`, and rebuilt from the commit log by recovery
//! beyond the checkpoint (or from the oldest segment when one is missing or behind the
//! checkpoint's manifest). Dispatch during recovery is idempotent: a record is queued only if
//! its stored QUEUEOFFSET is the queue's next offset.
//!
//! **Index.** `topic#key` for each KEYS token and `topic#UNIQ_KEY` → record position, per
//! segment, with the segment's store-time bounds; queries confirm candidates against the record.
//!
//! **Durability contract.** [`Store::append`] returns when the records are in memory, with their
//! offsets. Under [`FlushMode::Sync`], [`Store::wait_durable`] resolves after the fdatasync that
//! covers them (appends that arrive during a flush share the next one), and readers (pulls,
//! offsets, lookups by id) see a record only once it is durable. Under [`FlushMode::Async`],
//! records are visible at once and flushed every `flush_interval` or `flush_dirty_bytes`.
//! `wait_durable` gives up after `flush_timeout` with [`StoreError::FlushTimeout`]; the record
//! stays stored and becomes durable with the flush in progress.
//!
//! **Checkpoint and recovery.** See [`recovery`](crate::recovery) (module docs): start from the
//! checkpoint, verify forward, truncate a torn tail (zeroing what a crashed flush may have left
//! after it), skip and report corruption below the checkpoint, rebuild queues and indexes.
//!
//! **Cold reads.** A pull whose records are no longer in the hot tail reads the commit-log span
//! they cover with one aligned direct read per run of nearby records (the runs of one pull are
//! read concurrently), rounded out to `read_chunk_bytes`, and keeps it in a read-ahead cache of
//! `read_cache_bytes` (least recently used extents evicted), so the pulls of the other queues
//! whose records lie in that span, and the next pull of the same queue, find them in memory.
//! The reads are `pread(2)`s run by the store's reader threads (module `reader`) into recycled
//! aligned buffers that become the records' `Bytes` without a copy.
//! Records are served as `Bytes` slices of the read buffer and verified (as above) each time
//! they are served from it. Consume-queue entries below memory are read ahead 1600 at a time
//! (32 KB) into a per-queue window.
//!
//! **Memory** is bounded by `hot_cache_bytes` (recent commit-log bytes), `max_dirty_bytes`
//! (unflushed bytes: appends fail with [`StoreError::Busy`] beyond it, see
//! [`Store::writable`]), `cq_cache_entries` per queue, the active segment's index (16-24 bytes
//! per record of one segment), four loaded sealed-segment indexes (12 bytes per record and 16
//! per key each), `read_cache_bytes` of cold commit-log spans, up to 64 recycled read buffers
//! of 32 MiB in all (plus, outside that budget, spans still referenced by responses being sent:
//! a served record keeps its whole read buffer alive until it is written), and one 32 KB
//! consume-queue read-ahead window per queue read from disk.
//!
//! **Disk seam.** Every file operation goes through [`io::Disk`]: a [`io::Device`] (the real
//! disk, or [`fault::FaultDisk`] in tests) driven by the I/O engines: glommio's DMA engine for
//! the shard's own reads and writes ([`io::File`]), the writer thread (`writer`) and the reader
//! threads (`reader`). Renames and removals that must survive a power cut fsync their directory
//! ([`io::Disk::rename_durable`], [`io::Disk::remove_durable`]); so do the creations of segment,
//! `.sums` and consume-queue files. [`io::write_file_durable`] does the same for other metadata
//! files (the broker's). Store time comes from a [`Clock`].
//!
//! **Disk faults.** A failed write or fdatasync of the commit log makes the store read-only
//! ([`StoreError::ReadOnly`], naming the operation and file): a failed fsync is never retried
//! (the kernel may have dropped the pages), durable data stays readable, and a restart recovers.
//! A write or allocation that meets ENOSPC, or free space below `disk_min_free_bytes`, refuses
//! appends with [`StoreError::DiskFull`] while the records already appended stay in memory and
//! their flush is retried; appends are accepted again, without a restart, once retention or the
//! operator frees space. [`StoreError::is_unavailable`] tells the broker to answer
//! SERVICE_NOT_AVAILABLE. Retention deletes only segments the last checkpoint covers (the
//! consume-queue entries of later records can only be rebuilt from the commit log).
//!
//! **Offsets.** Three kinds, each its own type (module `offsets`, zero-cost wrappers):
//! `LogOffset`, a byte offset in the shard's commit log (segment bases, the append, submitted
//! and durable positions, records' PHYSICALOFFSET, consume-queue entries' commit-log offsets);
//! `SegPos`, a byte position within one segment (record tables, `.sums` journals, the key
//! index); `QueueOffset`, an entry number in one consume queue. They convert into each other
//! only through named operations (`LogOffset::pos_in(base)`, `SegPos::at(base)`,
//! `segment_base`, `distance_to`), so mixing two kinds does not compile. The store's public
//! API keeps RocketMQ's integers (`i64` on the wire, `u64` for commit-log ends) and converts
//! at its edge.
//!
//! **Invariants.** The commit log's offsets (`min_offset <= write_pos`,
//! `align_down(flushed) <= submitted <= write_pos`, contiguous segments, the active one last)
//! and each consume queue's (`start <= mem_start <= flushed <= max`, `min, visible <= max`,
//! memory holding exactly `[mem_start, max)`) are checked after every append, flush,
//! checkpoint, retention pass and recovery in debug builds (the test profile has them). They
//! are stated in the offset types: the commit log's in `LogOffset`, a queue's in `QueueOffset`.
//!
//! **Modules.** Dependencies point one way (`scripts/modcycles storage/src` checks there is no
//! cycle): the API on top, the parts of the store below it, the state they share below them,
//! the data structures and the disk at the bottom.
//!
//! ```text
//!                               store  (Store: open, append, the public API)
//!        ┌──────────┬─────────────┼───────────┬───────────┐
//!     flusher  checkpointer ──→ retention   read      recovery
//!        └──────────┴─────────────┼───────────┴───────────┘
//!                               state  (State, Shared: commit log + queues + flags + engines;
//!        ┌──────────┬─────────────┼─────┐      consume-queue file/entry helpers, publish, fail)
//!    commitlog      cq         seg_index  verify      types (public value types), checkpoint
//!    (arena,     (entries,    (record table,  (one record verifier)
//!    readcache)   windows)     keys, .idx, .sums)
//!        └──────────┴─────────────┴─────┬───────────────────┐
//!                                      io (Disk, Device, File, durable rename/remove)
//!                                 writer, reader (I/O threads)   fault (test device)
//! ```
//!
//! * `store`: [`Store`]; `open` runs recovery and starts the background tasks; `append` encodes
//!   records into the commit log (`CommitLog::make_room`, `CommitLog::append_record`) and
//!   queues them.
//! * `flusher`: group commit (`flush_once`), the write submission of complete blocks, segment
//!   files and spares. `checkpointer`: sealed-segment `.idx` files, consume-queue writes, the
//!   `.sums` journal, the checkpoint, the free-space check, the retention trigger.
//! * `read`: pulls, lookups by offset, time and key, cold reads and read-ahead. `recovery`: the
//!   scan at open. `retention`: segment deletion and queue trimming.
//! * `state`: what they share (`State`, `Shared`) and the helpers on it they all use.
//! * `commitlog`: `CommitLog`, its offsets (`write_pos`, `submitted`, `flushed`, `min_offset`)
//!   and segment table private behind methods that keep its invariants; `cq`: `ConsumeQueue`,
//!   likewise for `min`, `visible`, `max`, `mem_start`, `flushed`, `start` and its entries in
//!   memory; `seg_index`: the record table and key index of a segment, the one 12-byte
//!   (position, size, CRC32C) entry codec (`RecEntry`, in `.idx` files and `.sums` journals)
//!   and the one key indexer (`index_keys`); `verify`: the one record verifier (against the
//!   entry, or structurally); `offsets`: `LogOffset`, `SegPos` and `QueueOffset` (above).

mod arena;
mod checkpoint;
mod checkpointer;
mod clock;
mod commitlog;
mod config;
mod cq;
mod error;
pub mod fault;
mod flusher;
pub mod io;
mod notify;
mod offsets;
mod read;
mod readcache;
pub(crate) mod reader;
pub mod recovery;
mod replica;
mod retention;
mod seg_index;
mod state;
pub mod stats;
mod store;
mod types;
mod verify;
pub(crate) mod writer;

pub use clock::Clock;
pub use config::{FlushMode, SegmentInit, StoreConfig};
pub use error::{Result, StoreError};
pub use notify::{Notified, Notify};
pub use replica::ReplicaAppend;
pub use store::Store;
pub use types::{
    AppendResult, AppendedRecord, GetResult, GetStatus, MessageToStore, QueueInfo, RecoveryReport,
};
