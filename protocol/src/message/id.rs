//! Message ids (reference §3.5).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::MessageError;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
}

fn ip_bytes(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

/// The offsetMsgId: uppercase hex of store host ip (4 or 16 bytes), port (4-byte int) and
/// commit-log offset (8-byte long): 32 hex characters for IPv4, 56 for IPv6.
pub fn offset_msg_id(store_host: SocketAddr, phys_offset: i64) -> String {
    let mut out = String::with_capacity(56);
    push_offset_msg_id(&mut out, store_host, phys_offset);
    out
}

/// Appends the offsetMsgId (see [`offset_msg_id`]) to `out`.
pub fn push_offset_msg_id(out: &mut String, store_host: SocketAddr, phys_offset: i64) {
    let mut raw = [0u8; 28];
    let n = match store_host.ip() {
        std::net::IpAddr::V4(ip) => {
            raw[..4].copy_from_slice(&ip.octets());
            4
        }
        std::net::IpAddr::V6(ip) => {
            raw[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    raw[n..n + 4].copy_from_slice(&i32::from(store_host.port()).to_be_bytes());
    raw[n + 4..n + 12].copy_from_slice(&phys_offset.to_be_bytes());
    push_hex(out, &raw[..n + 12]);
}

fn unhex(id: &str) -> Result<Vec<u8>, MessageError> {
    let bad = |reason| MessageError::BadMessageId {
        id: id.chars().take(64).collect(),
        reason,
    };
    let digits = id.as_bytes();
    if digits.len() & 1 == 1 {
        return Err(bad("odd number of hex digits"));
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(bad("not a hex digit")),
    };
    digits
        .chunks_exact(2)
        .map(|pair| Ok((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// Decodes an offsetMsgId into (store host, commit-log offset). The length decides the address
/// family (32 characters: IPv4, 56: IPv6), as in Java's `MessageDecoder.decodeMessageId`.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), MessageError> {
    let ip_len = match id.len() {
        32 => 4,
        56 => 16,
        _ => {
            return Err(MessageError::BadMessageId {
                id: id.chars().take(64).collect(),
                reason: "length is neither 32 (IPv4) nor 56 (IPv6)",
            })
        }
    };
    let raw = unhex(id)?;
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        let mut o = [0u8; 16];
        o.copy_from_slice(&raw[..16]);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    let port = i32::from_be_bytes([
        raw[ip_len],
        raw[ip_len + 1],
        raw[ip_len + 2],
        raw[ip_len + 3],
    ]);
    let port = u16::try_from(port).map_err(|_| MessageError::BadMessageId {
        id: id.to_string(),
        reason: "port out of range",
    })?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&raw[ip_len + 4..ip_len + 12]);
    Ok((SocketAddr::new(ip, port), i64::from_be_bytes(off)))
}

/// Generates client-format unique ids (`UNIQ_KEY`) the way Java's `MessageClientIDSetter` does:
/// uppercase hex of ip (4 or 16 bytes) + pid (short) + class-loader hash (int) + milliseconds
/// since the start of the current month (int) + counter (short).
///
/// Java takes the month boundary in the JVM's local time zone; this takes it in UTC. Ids stay
/// unique either way (the boundary only sets the origin of the time field).
#[derive(Debug, Clone)]
pub struct UniqIdGenerator {
    prefix: String,
    start_of_month_ms: i64,
    next_month_ms: i64,
    counter: u16,
}

impl UniqIdGenerator {
    pub fn new(ip: IpAddr, pid: u32, class_loader_hash: i32) -> Self {
        let mut raw = Vec::with_capacity(22);
        ip_bytes(ip, &mut raw);
        raw.extend_from_slice(&(pid as u16).to_be_bytes());
        raw.extend_from_slice(&class_loader_hash.to_be_bytes());
        let mut prefix = String::with_capacity(raw.len() * 2);
        push_hex(&mut prefix, &raw);
        UniqIdGenerator {
            prefix,
            start_of_month_ms: i64::MAX,
            next_month_ms: i64::MIN,
            counter: 0,
        }
    }

    /// Starts the counter at `counter` (Java starts at 0; a broker may randomize it).
    pub fn with_counter(mut self, counter: u16) -> Self {
        self.counter = counter;
        self
    }

    /// The next id at wall-clock time `now_ms` (milliseconds since the Unix epoch).
    pub fn next_id(&mut self, now_ms: i64) -> String {
        if now_ms >= self.next_month_ms || now_ms < self.start_of_month_ms {
            let (start, next) = month_bounds_utc(now_ms);
            self.start_of_month_ms = start;
            self.next_month_ms = next;
        }
        let diff = (now_ms - self.start_of_month_ms) as i32;
        let mut out = String::with_capacity(self.prefix.len() + 12);
        out.push_str(&self.prefix);
        push_hex(&mut out, &diff.to_be_bytes());
        push_hex(&mut out, &self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        out
    }
}

/// (start of the month containing `ms`, start of the next month), both UTC, in ms.
fn month_bounds_utc(ms: i64) -> (i64, i64) {
    const DAY_MS: i64 = 86_400_000;
    let days = ms.div_euclid(DAY_MS);
    let (y, m, _) = civil_from_days(days);
    let start = days_from_civil(y, m, 1) * DAY_MS;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let next = days_from_civil(ny, nm, 1) * DAY_MS;
    (start, next)
}

// Howard Hinnant's civil-date algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_msg_id_golden() {
        let host: SocketAddr = "192.168.0.1:10911".parse().unwrap();
        let id = offset_msg_id(host, 0x1234);
        assert_eq!(id, "C0A8000100002A9F0000000000001234");
        assert_eq!(decode_offset_msg_id(&id).unwrap(), (host, 0x1234));
        assert_eq!(
            decode_offset_msg_id("c0a8000100002a9f0000000000001234").unwrap(),
            (host, 0x1234)
        );
    }

    #[test]
    fn offset_msg_id_v6() {
        let host: SocketAddr = "[2001:db8::1]:10911".parse().unwrap();
        let id = offset_msg_id(host, i64::MAX);
        assert_eq!(id.len(), 56);
        assert_eq!(
            id,
            "20010DB800000000000000000000000100002A9F7FFFFFFFFFFFFFFF"
        );
        assert_eq!(decode_offset_msg_id(&id).unwrap(), (host, i64::MAX));
    }

    #[test]
    fn offset_msg_id_rejects() {
        assert!(decode_offset_msg_id("").is_err());
        assert!(decode_offset_msg_id("C0A8000100002A9F000000000000123").is_err());
        assert!(decode_offset_msg_id("Z0A8000100002A9F0000000000001234").is_err());
        // Port 0x00012A9F does not fit in 16 bits.
        assert!(decode_offset_msg_id("C0A8000100012A9F0000000000001234").is_err());
        // Multi-byte characters of the right byte length must not panic.
        assert!(decode_offset_msg_id(&"é".repeat(16)).is_err());
    }

    #[test]
    fn uniq_id_layout() {
        let mut g = UniqIdGenerator::new("10.0.0.7".parse().unwrap(), 0x1_2345, 0x0102_0304);
        // 2024-03-05T00:00:01.5Z = 1709596801500; start of March 2024 = 1709251200000.
        let id = g.next_id(1_709_596_801_500);
        let diff = 1_709_596_801_500i64 - 1_709_251_200_000;
        assert_eq!(id.len(), 32);
        assert_eq!(&id[..8], "0A000007");
        assert_eq!(&id[8..12], "2345");
        assert_eq!(&id[12..20], "01020304");
        assert_eq!(&id[20..28], format!("{:08X}", diff));
        assert_eq!(&id[28..], "0000");
        assert!(g.next_id(1_709_596_801_500).ends_with("0001"));
    }

    #[test]
    fn month_bounds() {
        assert_eq!(month_bounds_utc(0), (0, 31 * 86_400_000));
        // 2024-02-10 -> Feb 2024 (leap year, 29 days).
        let (s, n) = month_bounds_utc(1_707_523_200_000);
        assert_eq!(s, 1_706_745_600_000);
        assert_eq!(n - s, 29 * 86_400_000);
        // December rolls into the next year.
        let (s, n) = month_bounds_utc(1_703_462_400_000); // 2023-12-25
        assert_eq!(s, 1_701_388_800_000);
        assert_eq!(n, 1_704_067_200_000);
        // Before 1970 does not panic.
        let (s, n) = month_bounds_utc(-1);
        assert!(s < 0 && n == 0);
    }
}
