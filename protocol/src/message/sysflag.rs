//! MessageSysFlag bits (reference §3.4), carried in SYSFLAG of a stored message and in the
//! `sysFlag` / `f` field of a send request.

/// The body is compressed (the broker never decompresses).
pub const COMPRESSED_FLAG: i32 = 0x1;
/// The topic is a MULTI_TAG topic (set by the broker).
pub const MULTI_TAGS_FLAG: i32 = 0x2;
/// Mask of the two transaction-type bits.
pub const TRANSACTION_TYPE_MASK: i32 = 0xC;
pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
/// BORNHOST is 16 + 4 bytes.
pub const BORNHOST_V6_FLAG: i32 = 0x10;
/// STOREHOST is 16 + 4 bytes.
pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x20;
/// 5.x inner batch.
pub const NEED_UNWRAP_FLAG: i32 = 0x40;
/// 5.x inner batch.
pub const INNER_BATCH_FLAG: i32 = 0x80;
/// Mask of the 5.x compression type (bits 8-10).
pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
pub const COMPRESSION_LZ4_TYPE: i32 = 0x100;
pub const COMPRESSION_ZSTD_TYPE: i32 = 0x200;
pub const COMPRESSION_ZLIB_TYPE: i32 = 0x300;

/// The transaction type bits of `flag` (one of the `TRANSACTION_*_TYPE` values).
pub fn transaction_value(flag: i32) -> i32 {
    flag & TRANSACTION_TYPE_MASK
}

/// `flag` with its transaction type replaced by `ty`.
pub fn reset_transaction_value(flag: i32, ty: i32) -> i32 {
    (flag & !TRANSACTION_TYPE_MASK) | (ty & TRANSACTION_TYPE_MASK)
}

/// Whether a record of this type is put into a consume queue: PREPARED and ROLLBACK are not.
pub fn is_dispatched(flag: i32) -> bool {
    matches!(
        transaction_value(flag),
        TRANSACTION_NOT_TYPE | TRANSACTION_COMMIT_TYPE
    )
}

pub fn is_compressed(flag: i32) -> bool {
    flag & COMPRESSED_FLAG != 0
}

pub fn clear_compressed_flag(flag: i32) -> i32 {
    flag & !COMPRESSED_FLAG
}

pub fn born_host_v6(flag: i32) -> bool {
    flag & BORNHOST_V6_FLAG != 0
}

pub fn store_host_v6(flag: i32) -> bool {
    flag & STOREHOSTADDRESS_V6_FLAG != 0
}

/// Compression algorithm of a compressed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    Lz4,
    Zstd,
    Zlib,
}

/// The compression type of `flag`, or `None` when COMPRESSED is not set. A compressed body with
/// type bits 0 is zlib (what 4.x producers send), as in Java's `CompressionType.findByValue`.
pub fn compression_type(flag: i32) -> Option<CompressionType> {
    if !is_compressed(flag) {
        return None;
    }
    Some(match flag & COMPRESSION_TYPE_MASK {
        COMPRESSION_LZ4_TYPE => CompressionType::Lz4,
        COMPRESSION_ZSTD_TYPE => CompressionType::Zstd,
        _ => CompressionType::Zlib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_helpers() {
        let f = COMPRESSED_FLAG | TRANSACTION_PREPARED_TYPE;
        assert_eq!(transaction_value(f), TRANSACTION_PREPARED_TYPE);
        let g = reset_transaction_value(f, TRANSACTION_NOT_TYPE);
        assert_eq!(g, COMPRESSED_FLAG);
        assert!(is_dispatched(g));
        assert!(!is_dispatched(f));
        assert!(!is_dispatched(TRANSACTION_ROLLBACK_TYPE));
        assert!(is_dispatched(TRANSACTION_COMMIT_TYPE | BORNHOST_V6_FLAG));
    }

    #[test]
    fn compression() {
        assert_eq!(compression_type(0), None);
        assert_eq!(compression_type(COMPRESSION_LZ4_TYPE), None);
        assert_eq!(
            compression_type(COMPRESSED_FLAG),
            Some(CompressionType::Zlib)
        );
        assert_eq!(
            compression_type(COMPRESSED_FLAG | COMPRESSION_ZLIB_TYPE),
            Some(CompressionType::Zlib)
        );
        assert_eq!(
            compression_type(COMPRESSED_FLAG | COMPRESSION_ZSTD_TYPE),
            Some(CompressionType::Zstd)
        );
        assert_eq!(
            compression_type(COMPRESSED_FLAG | COMPRESSION_LZ4_TYPE),
            Some(CompressionType::Lz4)
        );
        assert_eq!(clear_compressed_flag(0x301), 0x300);
    }
}
