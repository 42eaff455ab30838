//! The producing side: N connections, a window of pipelined requests on
//! each, SEND_MESSAGE_V2 or SEND_BATCH_MESSAGE, optionally at a fixed rate
//! (open loop: latency counts from when a request was due, so a stalled
//! broker cannot hide behind the window).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use std::fmt::Write as _;

use protocol::{CommandDecoder, RemotingCommand, ResponseCode, DEFAULT_MAX_FRAME_SIZE};

use crate::route::Queue;
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub struct ProduceOpts {
    pub topic: String,
    pub size: usize,
    pub connections: usize,
    pub in_flight: usize,
    /// Messages per request: 1 = SEND_MESSAGE_V2, more = SEND_BATCH_MESSAGE.
    pub batch: usize,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// Messages per second over all connections.
    pub rate: Option<f64>,
    pub group: String,
    /// Timer workload: every message carries TIMER_DELIVER_MS (see [`TimerPlan`]).
    pub timer: Option<TimerPlan>,
}

/// Due times of a timer workload: message number j of `count` (in send order) is due at
/// `first_due_ms + window_ms * j / count`. The body's time field carries the due time (µs), so
/// the consumer's latency is the lateness.
#[derive(Debug, Clone, Copy)]
pub struct TimerPlan {
    pub first_due_ms: u64,
    pub window_ms: u64,
    pub count: u64,
    /// The first message's sequence number.
    pub seq_base: u64,
}

impl TimerPlan {
    pub fn due_ms(&self, seq: u64) -> u64 {
        let j = seq.saturating_sub(self.seq_base);
        self.first_due_ms + self.window_ms * j / self.count.max(1)
    }
}

/// Marks bench bodies: `seq: u64 BE, sent_us: u64 BE, MAGIC, pattern...`.
pub const BODY_MAGIC: &[u8; 8] = b"SATURNBN";
pub const BODY_HEADER: usize = 24;

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The body of message `seq`: its number, its send time and a pattern the
/// consumer can check.
#[cfg(test)]
pub fn make_body(seq: u64, size: usize) -> Vec<u8> {
    let mut body = BytesMut::with_capacity(size.max(BODY_HEADER));
    put_body(&mut body, seq, size);
    body.to_vec()
}

/// Appends the body of message `seq` (see [`make_body`]) to `out`.
pub fn put_body(out: &mut BytesMut, seq: u64, size: usize) {
    put_body_at(out, seq, size, now_us());
}

/// As [`put_body`] with the given time (µs) in the body's time field.
pub fn put_body_at(out: &mut BytesMut, seq: u64, size: usize, time_us: u64) {
    let size = size.max(BODY_HEADER);
    out.reserve(size);
    out.put_slice(&seq.to_be_bytes());
    out.put_slice(&time_us.to_be_bytes());
    out.put_slice(BODY_MAGIC);
    let mut at = BODY_HEADER;
    while at < size {
        let run = pattern_run(seq, at, size - at);
        out.put_slice(run);
        at += run.len();
    }
}

/// A batch entry's fixed bytes (SEND_BATCH_MESSAGE body, reference §3):
/// total size, magic, body CRC, flag, body length, and the properties length.
const BATCH_ENTRY_OVERHEAD: usize = 4 + 4 + 4 + 4 + 4 + 2;

pub fn pattern_byte(seq: u64, i: usize) -> u8 {
    (seq as usize).wrapping_mul(31).wrapping_add(i) as u8
}

/// Bytes 0, 1, ..., 255, 0, 1, ..., 255.
static RAMP: [u8; 512] = {
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// The pattern of message `seq` from body index `at`, at most `max` bytes
/// (at most 256): a slice of [`RAMP`], so bodies are made and checked with
/// `memcpy`/`memcmp` instead of byte by byte.
fn pattern_run(seq: u64, at: usize, max: usize) -> &'static [u8] {
    let first = pattern_byte(seq, at) as usize;
    &RAMP[first..first + max.min(256)]
}

/// Checks a body made by [`make_body`]; returns its sequence number and send time.
pub fn check_body(body: &[u8]) -> Option<(u64, u64)> {
    if body.len() < BODY_HEADER || &body[16..24] != BODY_MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(body[0..8].try_into().ok()?);
    let sent = u64::from_be_bytes(body[8..16].try_into().ok()?);
    let mut at = BODY_HEADER;
    while at < body.len() {
        let run = pattern_run(seq, at, body.len() - at);
        if &body[at..at + run.len()] != run {
            return None;
        }
        at += run.len();
    }
    Some((seq, sent))
}

/// Shared across connections.
pub struct Shared {
    pub opts: ProduceOpts,
    /// Messages not yet handed to a connection (when counting).
    pub remaining: Cell<u64>,
    pub next_seq: Cell<u64>,
    pub stop: Cell<bool>,
    pub stats: RefCell<Stats>,
    pub client_prefix: String,
}

struct Pending {
    due: Instant,
    messages: u64,
    bytes: u64,
}

/// Header text around the parts that change per request.
struct Template {
    parts: [String; 4],
}

impl Template {
    fn new(shared: &Shared, queue: i32, batch: bool) -> Self {
        let code = if batch { 320 } else { 310 };
        let esc = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let p0 = format!(
            "{{\"code\":{code},\"extFields\":{{\"a\":{},\"b\":{},\"c\":\"TBW102\",\"d\":\"4\",\"e\":\"{queue}\",\"f\":\"0\",\"g\":\"",
            esc(&shared.opts.group),
            esc(&shared.opts.topic)
        );
        // Single messages carry UNIQ_KEY (as Java producers do) in the header's
        // properties; batch entries carry their own.
        let (p1, p2) = if batch {
            (
                "\",\"h\":\"0\",\"i\":\"WAIT\\u0001true\\u0002\",\"j\":\"0\",\"k\":\"false\",\"m\":\"true\"},\"flag\":0,\"language\":\"JAVA\",\"opaque\":".to_string(),
                String::new(),
            )
        } else {
            (
                "\",\"h\":\"0\",\"i\":\"UNIQ_KEY\\u0001".to_string(),
                "\\u0002WAIT\\u0001true\\u0002\",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\"},\"flag\":0,\"language\":\"JAVA\",\"opaque\":".to_string(),
            )
        };
        let p3 = ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":409}".to_string();
        Self {
            parts: [p0, p1, p2, p3],
        }
    }

    fn header(
        &self,
        born_ms: u64,
        uniq: Option<&str>,
        timer_ms: Option<u64>,
        opaque: i32,
        out: &mut Vec<u8>,
    ) {
        use std::io::Write;
        out.clear();
        out.extend_from_slice(self.parts[0].as_bytes());
        let _ = write!(out, "{born_ms}");
        out.extend_from_slice(self.parts[1].as_bytes());
        if let Some(u) = uniq {
            out.extend_from_slice(u.as_bytes());
            if let Some(due) = timer_ms {
                let _ = write!(out, "\\u0002TIMER_DELIVER_MS\\u0001{due}");
            }
            out.extend_from_slice(self.parts[2].as_bytes());
        }
        let _ = write!(out, "{opaque}");
        out.extend_from_slice(self.parts[3].as_bytes());
    }
}

/// Requests in flight by opaque. Opaques are sequential per connection, so
/// a ring of slots indexed by the opaque's low bits holds nearly all of them
/// (no hashing, no allocation); the rare one whose slot is taken by a
/// request still unanswered goes to a map.
struct PendingMap {
    slots: Vec<Option<(i32, Pending)>>,
    overflow: HashMap<i32, Pending>,
    len: usize,
}

impl Default for PendingMap {
    fn default() -> Self {
        Self {
            slots: (0..PENDING_SLOTS).map(|_| None).collect(),
            overflow: HashMap::new(),
            len: 0,
        }
    }
}

const PENDING_SLOTS: usize = 4096;

impl PendingMap {
    fn insert(&mut self, opaque: i32, p: Pending) {
        let slot = &mut self.slots[opaque as u32 as usize % PENDING_SLOTS];
        if slot.is_none() {
            *slot = Some((opaque, p));
        } else {
            self.overflow.insert(opaque, p);
        }
        self.len += 1;
    }

    fn remove(&mut self, opaque: &i32) -> Option<Pending> {
        let slot = &mut self.slots[*opaque as u32 as usize % PENDING_SLOTS];
        let found = match slot {
            Some((o, _)) if o == opaque => slot.take().map(|(_, p)| p),
            _ => self.overflow.remove(opaque),
        };
        if found.is_some() {
            self.len -= 1;
        }
        found
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.overflow.clear();
        self.len = 0;
    }
}

/// `fmt::Write` into a `BytesMut` (for the UNIQ_KEY hex digits).
struct HexSink<'a>(&'a mut BytesMut);

impl std::fmt::Write for HexSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

fn uniq_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:016X}")
}

/// Reads responses until the connection ends or the writer is done and nothing is pending:
/// counts each as acknowledged or failed and reopens the window.
async fn read_responses(
    shared: Rc<Shared>,
    mut reader: futures_lite::io::ReadHalf<TcpStream>,
    window: Rc<Semaphore>,
    pending: Rc<RefCell<PendingMap>>,
    writer_done: Rc<Cell<bool>>,
) {
    let mut decoder = CommandDecoder::new(DEFAULT_MAX_FRAME_SIZE);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        if writer_done.get() && pending.borrow().is_empty() {
            return;
        }
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return connection_lost(&shared, &pending, &window),
            Ok(n) => n,
        };
        decoder.extend(&chunk[..n]);
        let now = Instant::now();
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("saturn-bench: {e}; closing the connection");
                    return connection_lost(&shared, &pending, &window);
                }
            };
            // Only the status matters here: scan for it, decode
            // the whole header only when the scan cannot tell.
            let (code, opaque) = match RemotingCommand::peek_code_and_opaque(&frame) {
                Some(status) => status,
                None => match RemotingCommand::decode(frame) {
                    Ok(cmd) => (cmd.code, cmd.opaque),
                    Err(e) => {
                        eprintln!("saturn-bench: {e}; closing the connection");
                        return connection_lost(&shared, &pending, &window);
                    }
                },
            };
            let Some(p) = pending.borrow_mut().remove(&opaque) else {
                continue;
            };
            let mut st = shared.stats.borrow_mut();
            st.requests += 1;
            st.record_latency(now.saturating_duration_since(p.due));
            let code_num = code;
            let code = ResponseCode::from_num(code_num);
            // Stored, with a flush or replica status: acknowledged.
            if matches!(
                code,
                ResponseCode::SUCCESS
                    | ResponseCode::FLUSH_DISK_TIMEOUT
                    | ResponseCode::FLUSH_SLAVE_TIMEOUT
                    | ResponseCode::SLAVE_NOT_AVAILABLE
            ) {
                st.messages += p.messages;
                st.bytes += p.bytes;
            }
            if code != ResponseCode::SUCCESS {
                st.error(code_num);
            }
            drop(st);
            window.signal(1);
        }
    }
}

/// Counts every request still pending as lost and stops the sender.
fn connection_lost(shared: &Shared, pending: &RefCell<PendingMap>, window: &Semaphore) {
    let lost = pending.borrow().len() as u64;
    let mut st = shared.stats.borrow_mut();
    for _ in 0..lost {
        st.error(-1);
    }
    pending.borrow_mut().clear();
    window.close();
}

/// Runs one connection until the budget or time is used up.
pub async fn run_connection(shared: Rc<Shared>, queues: Vec<Queue>) {
    let addr = queues[0].addr.clone();
    let stream = match TcpStream::connect(addr.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("saturn-bench: cannot connect to {addr}: {e}");
            shared.stats.borrow_mut().error(-1);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (reader, writer) = futures_lite::io::split(stream);
    let window = Rc::new(Semaphore::new(shared.opts.in_flight as u64));
    let pending: Rc<RefCell<PendingMap>> = Rc::new(RefCell::new(PendingMap::default()));
    let writer_done = Rc::new(Cell::new(false));

    let reader_task = glommio::spawn_local(read_responses(
        shared.clone(),
        reader,
        window.clone(),
        pending.clone(),
        writer_done.clone(),
    ))
    .detach();
    let mut conn = ConnWriter::new(shared.clone(), &queues, writer, pending.clone());
    conn.run(&window).await;
    writer_done.set(true);
    let _ = conn.writer.flush().await;
    wait_for_answers(&shared, &pending, &addr).await;
    reader_task.cancel();
}

/// Waits (at most 30 s) for the answers still out; counts the missing ones as errors.
async fn wait_for_answers(shared: &Shared, pending: &RefCell<PendingMap>, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pending.borrow().is_empty() && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    let lost = pending.borrow().len();
    if lost > 0 {
        eprintln!("saturn-bench: {lost} requests to {addr} unanswered after 30 s");
        let mut st = shared.stats.borrow_mut();
        for _ in 0..lost {
            st.error(-1);
        }
    }
}

type TcpWriter = futures_lite::io::WriteHalf<TcpStream>;

/// The writing side of one connection: requests written straight into one output buffer
/// (no per-message allocation), flushed when the window, the budget or the rate says so.
struct ConnWriter {
    shared: Rc<Shared>,
    writer: TcpWriter,
    pending: Rc<RefCell<PendingMap>>,
    templates: Vec<Template>,
    /// Time between two requests of this connection at a fixed rate.
    interval: Option<Duration>,
    next_due: Instant,
    out: BytesMut,
    header: Vec<u8>,
    opaque: i32,
    qi: usize,
}

impl ConnWriter {
    fn new(
        shared: Rc<Shared>,
        queues: &[Queue],
        writer: TcpWriter,
        pending: Rc<RefCell<PendingMap>>,
    ) -> Self {
        let opts = &shared.opts;
        let batch = opts.batch.max(1);
        let templates = queues
            .iter()
            .map(|q| Template::new(&shared, q.queue_id, batch > 1))
            .collect();
        let interval = opts
            .rate
            .map(|r| Duration::from_secs_f64(batch as f64 * opts.connections as f64 / r.max(1e-9)));
        ConnWriter {
            shared,
            writer,
            pending,
            templates,
            interval,
            next_due: Instant::now(),
            out: BytesMut::with_capacity(512 * 1024),
            header: Vec::with_capacity(512),
            opaque: 1,
            qi: 0,
        }
    }

    /// Sends until the budget or the time is used up, or the connection is lost.
    async fn run(&mut self, window: &Semaphore) {
        loop {
            if self.shared.stop.get() || window.acquire(1).await.is_err() {
                return; // stopped, or the connection is lost
            }
            self.out.clear();
            // Fill the write buffer with as many requests as the window, the budget and the
            // rate allow, then write them at once.
            loop {
                let n = self.take_budget();
                if n == 0 {
                    window.signal(1); // the permit this request would have used
                    if !self.out.is_empty() {
                        let _ = self.writer.write_all(&self.out).await;
                    }
                    return;
                }
                let Some(due) = self.pace().await else {
                    return;
                };
                self.put_request(n, due);
                if self.out.len() >= 256 * 1024
                    || self.shared.stop.get()
                    || !window.try_acquire(1).unwrap_or(false)
                {
                    break;
                }
            }
            if !self.out.is_empty() && self.writer.write_all(&self.out).await.is_err() {
                return;
            }
        }
    }

    /// Messages of the next request: the batch, or what is left of `--count`; 0 when none.
    fn take_budget(&self) -> u64 {
        let batch = self.shared.opts.batch.max(1) as u64;
        if self.shared.opts.count.is_none() {
            return batch;
        }
        let left = self.shared.remaining.get();
        let n = left.min(batch);
        self.shared.remaining.set(left - n);
        n
    }

    /// When the next request is due: now, or at a fixed rate its slot (sleeping until then
    /// after writing what is due). `None` when the connection is lost.
    async fn pace(&mut self) -> Option<Instant> {
        let Some(interval) = self.interval else {
            return Some(Instant::now());
        };
        self.next_due += interval;
        let now = Instant::now();
        if self.next_due > now {
            if !self.out.is_empty() {
                // Send what is due before sleeping.
                self.writer.write_all(&self.out).await.ok()?;
                self.out.clear();
            }
            glommio::timer::sleep(self.next_due - now).await;
        }
        Some(self.next_due)
    }

    /// Appends one request of `n` messages (a single send, or a batch) to the output buffer
    /// and records it as pending.
    fn put_request(&mut self, n: u64, due: Instant) {
        let shared = &*self.shared;
        let opts = &shared.opts;
        let batch = opts.batch.max(1);
        let single_body_len = opts.size.max(BODY_HEADER);
        // Batch entries carry "UNIQ_KEY\x01<prefix><16 hex>\x02".
        let props_len = "UNIQ_KEY".len() + 2 + shared.client_prefix.len() + 16;
        let seq0 = shared.next_seq.get();
        shared.next_seq.set(seq0 + n);
        let born_ms = now_us() / 1000;
        let template = &self.templates[self.qi % self.templates.len()];
        self.qi += 1;
        let uniq = (batch == 1).then(|| uniq_key(&shared.client_prefix, seq0));
        let timer_ms = opts.timer.map(|t| t.due_ms(seq0));
        template.header(
            born_ms,
            uniq.as_deref(),
            timer_ms,
            self.opaque,
            &mut self.header,
        );
        let entry_len = BATCH_ENTRY_OVERHEAD + single_body_len + props_len;
        let body_len = if batch > 1 {
            n as usize * entry_len
        } else {
            single_body_len
        };
        let out = &mut self.out;
        out.reserve(8 + self.header.len() + body_len);
        out.put_u32((4 + self.header.len() + body_len) as u32);
        out.put_u32(self.header.len() as u32);
        out.put_slice(&self.header);
        if batch > 1 {
            for k in 0..n {
                out.put_i32(entry_len as i32);
                out.put_i32(0); // magic code: not checked
                out.put_i32(0); // body CRC: the broker computes its own
                out.put_i32(0); // flag
                out.put_i32(single_body_len as i32);
                put_body(out, seq0 + k, opts.size);
                out.put_i16(props_len as i16);
                out.put_slice(b"UNIQ_KEY\x01");
                out.put_slice(shared.client_prefix.as_bytes());
                let _ = write!(HexSink(out), "{:016X}", seq0 + k);
                out.put_u8(2);
            }
        } else if let Some(due) = timer_ms {
            put_body_at(out, seq0, opts.size, due * 1000);
        } else {
            put_body(out, seq0, opts.size);
        }
        let bytes = n * single_body_len as u64;
        let p = Pending {
            due,
            messages: n,
            bytes,
        };
        self.pending.borrow_mut().insert(self.opaque, p);
        self.opaque = self.opaque.wrapping_add(1).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_map_finds_every_request_once() {
        let mut m = PendingMap::default();
        let p = || Pending {
            due: Instant::now(),
            messages: 1,
            bytes: 1,
        };
        // 1 and 1 + PENDING_SLOTS share a slot.
        let keys = [1, 2, 1 + PENDING_SLOTS as i32, -7, i32::MAX];
        for k in keys {
            m.insert(k, p());
        }
        assert_eq!(m.len(), keys.len());
        for k in keys {
            assert!(m.remove(&k).is_some(), "{k}");
            assert!(m.remove(&k).is_none(), "{k} twice");
        }
        assert!(m.is_empty());
        m.insert(5, p());
        m.clear();
        assert!(m.is_empty() && m.remove(&5).is_none());
    }

    #[test]
    fn bodies_follow_the_pattern_and_check() {
        for (seq, size) in [
            (0u64, 1024usize),
            (7, 24),
            (8, 25),
            (1 << 40, 4096),
            (255, 300),
        ] {
            let body = make_body(seq, size);
            assert_eq!(body.len(), size.max(BODY_HEADER));
            for (i, b) in body.iter().enumerate().skip(BODY_HEADER) {
                assert_eq!(*b, pattern_byte(seq, i), "seq {seq} byte {i}");
            }
            assert_eq!(check_body(&body).map(|(s, _)| s), Some(seq));
            if body.len() > BODY_HEADER {
                let mut bad = body.clone();
                *bad.last_mut().unwrap() ^= 1;
                assert_eq!(check_body(&bad), None);
            }
        }
    }
}
