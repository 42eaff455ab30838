/// The tags code a consume queue stores for a tag: Java's `String.hashCode()` (`h = 31*h + c`
/// over UTF-16 code units, wrapping in 32 bits), sign-extended to 64 bits.
pub fn tag_hash(tag: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in tag.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    i64::from(h)
}

/// The BODYCRC field: CRC-32 (IEEE) of the body as stored, masked to 31 bits, exactly as
/// RocketMQ's `UtilAll.crc32` returns it.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Java `String.hashCode()` as a 32-bit value (used by the index for key hashes).
pub fn java_string_hash(s: &str) -> i32 {
    tag_hash(s) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_hash_matches_java() {
        // Values of "...".hashCode() in Java.
        assert_eq!(tag_hash(""), 0);
        assert_eq!(tag_hash("TagA"), 2598919);
        assert_eq!(tag_hash("TagB"), 2598920);
        assert_eq!(tag_hash("a"), 97);
        assert_eq!(tag_hash("hello"), 99162322);
        // Overflows and goes negative: "Hello World".hashCode() = -862545276.
        assert_eq!(tag_hash("Hello World"), -862545276);
        // Non-BMP char: two UTF-16 units (0xD83D, 0xDE00), as Java sees it.
        assert_eq!(tag_hash("\u{1F600}"), 1772899);
        assert_eq!(tag_hash("é"), 233);
    }

    #[test]
    fn body_crc_matches_rocketmq() {
        // crc32("123456789") = 0xCBF43926; masked: 0x4BF43926.
        assert_eq!(body_crc(b"123456789"), 0x4BF4_3926);
        assert_eq!(body_crc(b""), 0);
        // Computed with java.util.zip.CRC32 & 0x7FFFFFFF, as UtilAll.crc32 does.
        assert_eq!(body_crc(b"Hello RocketMQ"), 1774740973);
        assert!(body_crc(&[0xFF; 100]) >= 0);
    }
}
