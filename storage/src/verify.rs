//! The one record verifier, for every record read back from the commit log (pulls, lookups,
//! recovery's scan): against the 12-byte record-table entry (position, size, CRC32C) the store
//! kept when it wrote the record, and structurally where it has none.

use protocol::message::RecordView;

use crate::offsets::LogOffset;
use crate::seg_index::RecEntry;

/// Checks `rec` against its record-table entry: the same size and the same CRC32C. The CRC32C
/// covers the record's full bytes as appended at its position, so a match means these are the
/// bytes written there (magic, TOTALSIZE, PHYSICALOFFSET and BODYCRC included).
pub(crate) fn against_entry(rec: &[u8], e: &RecEntry) -> Result<(), String> {
    if e.size as usize != rec.len() {
        return Err(format!("size {}, written {}", rec.len(), e.size));
    }
    let c = crc32c::crc32c(rec);
    if c != e.crc {
        return Err(format!("crc32c {c:#x}, written {:#x}", e.crc));
    }
    Ok(())
}

/// Checks a record read back at commit-log offset `p` without its CRC32C entry: parses whole,
/// PHYSICALOFFSET equal to `p`, body CRC.
pub(crate) fn structural(rec: &[u8], p: LogOffset) -> Result<(), String> {
    let (v, n) = RecordView::parse(rec).map_err(|e| e.to_string())?;
    if n != rec.len() {
        return Err(format!("size {n} != {}", rec.len()));
    }
    if LogOffset::from_i64(v.phys_offset) != Some(p) {
        return Err(format!("PHYSICALOFFSET {} at {p}", v.phys_offset));
    }
    v.verify_body_crc(0).map_err(|e| e.to_string())
}
