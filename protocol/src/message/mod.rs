//! RocketMQ's stored-message format and everything that travels inside it.
//!
//! A stored message (reference §3.1) is the record a broker appends to its commit log, and the
//! bytes a pull, query or view response carries unchanged. This module encodes and decodes it
//! without I/O:
//!
//! * [`record`]: the record layout, [`StoredMessage`] / [`RecordView`] decoding, [`RecordInput`]
//!   encoding, and in-place patching of the fields a store fills in at append.
//! * [`properties`]: the `name \u{1} value \u{2}` properties codec and the property names.
//! * [`sysflag`] and [`pullflag`]: MessageSysFlag and PullSysFlag bits.
//! * [`id`]: offset message ids (store host + commit-log offset) and client unique ids.
//! * [`batch`]: the SEND_BATCH_MESSAGE body.
//! * [`tag_hash`] and [`body_crc`]: computed exactly as the Java implementation computes them.
//!
//! Every decoder here accepts hostile bytes: it never panics, and its error names what was wrong
//! and at which byte offset.

pub mod batch;
mod error;
mod hash;
pub mod id;
pub mod properties;
pub mod pullflag;
pub mod record;
pub mod sysflag;

pub use batch::{decode_batch, decode_batch_bytes, encode_batch, encode_batch_entry, BatchEntry};
pub use error::MessageError;
pub use hash::{body_crc, java_string_hash, tag_hash};
pub use id::{decode_offset_msg_id, offset_msg_id, push_offset_msg_id, UniqIdGenerator};
pub use properties::{decode_properties, encode_properties, property_value, Properties};
pub use record::{
    decode_all, encoded_len, patch_phys_offset, patch_queue_offset, patch_store_timestamp,
    read_total_size, RecordInput, RecordView, StoredMessage,
};

/// Magic of a V1 record: 1-byte topic length. The only magic 4.x writes.
pub const MESSAGE_MAGIC_V1: u32 = 0xDAA3_20A7;
/// Magic of a V2 record (5.x): 2-byte topic length; used when the topic is longer than 127 bytes.
pub const MESSAGE_MAGIC_V2: u32 = 0xDAA3_20AB;
/// Magic of the end-of-segment blank marker: TOTALSIZE = the bytes left in the segment.
pub const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// Size of the blank marker actually written (TOTALSIZE + MAGIC).
pub const BLANK_MARKER_LEN: usize = 8;

/// Byte positions of the fixed fields. Those up to SYSFLAG are the same for every record;
/// from BORNHOST on they hold for IPv4 hosts (see [`record::store_timestamp_position`]).
pub const TOTAL_SIZE_POSITION: usize = 0;
pub const MAGIC_POSITION: usize = 4;
pub const BODY_CRC_POSITION: usize = 8;
pub const QUEUE_ID_POSITION: usize = 12;
pub const FLAG_POSITION: usize = 16;
pub const QUEUE_OFFSET_POSITION: usize = 20;
pub const PHY_POS_POSITION: usize = 28;
pub const SYSFLAG_POSITION: usize = 36;
pub const BORN_TIMESTAMP_POSITION: usize = 40;
pub const BORN_HOST_POSITION: usize = 48;
/// STORETIMESTAMP position when BORNHOST is IPv4.
pub const STORE_TIMESTAMP_POSITION: usize = 56;

/// Largest topic a V1 record can carry (1-byte signed length in Java).
pub const MAX_TOPIC_LEN_V1: usize = 127;
/// Largest topic a V2 record can carry (2-byte signed length in Java).
pub const MAX_TOPIC_LEN_V2: usize = i16::MAX as usize;
/// Largest properties string (2-byte signed length).
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;
