//! Master/slave replication with RocketMQ's classic HA protocol, one stream per shard.
//!
//! A master shard listens on its HA port (`haListenPort` + 4i, default its port + 1). A slave
//! shard i (brokerRole=SLAVE, same brokerName and shard count) connects to master shard i's
//! HA port, from `haMasterAddress` (shard 0's; + 4i) or from the name server's answer to its
//! registration (`haServerAddr`), as RocketMQ's slaves do.
//!
//! Wire (plain TCP, big-endian, no remoting frames):
//! * slave → master: 8 bytes, the slave's commit-log end ("I have everything before this"),
//!   on connect, after each batch it received (what one read of the socket brought, once the
//!   socket has nothing more), and every 5 s;
//! * master → slave: 8-byte offset + 4-byte size + that many raw commit-log bytes (cut
//!   anywhere, at most `haTransferBatchSize`); size 0 is a heartbeat, every 5 s when idle.
//!
//! The master starts at the offset the slave reports; a report beyond the master's end (the
//! slave has bytes the master does not: the histories diverged) or below its oldest segment is
//! refused with an error in the master's log and the connection closed. The slave appends the
//! bytes verbatim (`Store::append_replica`: verified, dispatched to its own consume queues and
//! key index); bytes that do not continue its log close the connection (and are logged).
//!
//! What the slave reports: under SYNC_FLUSH its durable end, otherwise its in-memory end; so a
//! SYNC_MASTER's acknowledgement means "on the slave's disk" when the slave flushes
//! synchronously (see the README's replication section).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use protocol::body::TopicConfig;
use storage::StoreError;

use crate::config::{BrokerRole, FlushDiskType};
use crate::shard::Shard;

/// Heartbeat period, both ways (RocketMQ's `haSendHeartbeatInterval`).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Silence after which either side drops the connection (`haHousekeepingInterval`).
const HOUSEKEEPING: Duration = Duration::from_secs(20);

/// A read at least this large is written after its frame's header as it is (a second write
/// costs less than copying it); smaller reads are gathered behind the header (one write).
const COPY_MAX: usize = 64 << 10;

/// Bytes before a slave's end that the master ships again, for the slave to compare.
const OVERLAP: u64 = 4096;

/// Starts the shard's side of replication: the HA listener of a master, the follower of a
/// slave.
pub fn start(shard: &Rc<Shard>) -> Result<(), String> {
    if shard.config.role == BrokerRole::Slave {
        // Nothing local (transaction checks, timers, send-backs) may write into its log.
        shard.store.set_replica_only();
        glommio::spawn_local(follow(shard.clone())).detach();
        glommio::spawn_local(crate::replstate::follow(shard.clone())).detach();
        return Ok(());
    }
    if shard.config.role == BrokerRole::SyncMaster {
        // Readers never see a record no slave has (the visibility bound is the slave's end).
        shard.store.gate_on_replica();
    }
    let port = shard.config.ha_port(shard.id);
    let addr = std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port);
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} (HA): {e}"))?;
    glommio::spawn_local(accept(shard.clone(), listener)).detach();
    glommio::spawn_local(ticker(shard.clone())).detach();
    shard.on_event.set(Some(crate::replstate::on_event));
    glommio::spawn_local(crate::replstate::run_master(shard.clone())).detach();
    Ok(())
}

/// Wakes waiting sends now and then, so that a timeout is noticed without a report; while no
/// send waits, it sleeps until one does (no wake-ups on an idle broker or an ASYNC_MASTER).
async fn ticker(shard: Rc<Shard>) {
    loop {
        if shard.ha.waiting.get() == 0 {
            let first = shard.ha.first_waiter.notified();
            if shard.ha.waiting.get() == 0 {
                first.await;
            }
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
        if shard.ha.waiting.get() > 0 {
            shard.ha.reported.notify();
        }
    }
}

async fn accept(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve_slave(shard.clone(), stream)).detach();
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "HA accept failed");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Master side of one slave connection.
async fn serve_slave(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let (mut r, w) = futures_lite::io::split(stream);
    let first = match glommio::timer::timeout(HOUSEKEEPING, async {
        read_u64(&mut r).await.map_err(glommio::GlommioError::from)
    })
    .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(shard = shard.id, slave = %peer, error = %e, "no first report from the slave");
            return;
        }
    };
    let (min, end) = (
        shard.store.commit_log_min_offset() as u64,
        shard.store.write_end(),
    );
    if first > end || (first < min && first != 0) {
        tracing::error!(shard = shard.id, slave = %peer, slave_end = first, master_end = end, master_min = min,
            "slave refused: its commit log is not a prefix of this master's (diverged or too old); \
             remove the slave's store to resynchronise");
        return;
    }
    let from = if first == 0 {
        min
    } else {
        // Start up to OVERLAP bytes before the slave's end (within its segment): a Saturn slave
        // compares them with its own and refuses a master whose history differs.
        let in_segment = first % shard.config.segment_size;
        (first - in_segment.min(OVERLAP)).max(min)
    };
    let conn = shard.ha.next_conn.get();
    shard.ha.next_conn.set(conn + 1);
    shard.ha.report(conn, first);
    shard.ha.snapshot_due.set(true);
    tracing::info!(shard = shard.id, slave = %peer, from, "slave connected");
    let done = Rc::new(Cell::new(false));
    let reader = glommio::spawn_local(read_reports(shard.clone(), conn, r, done.clone()));
    let e = ship(&shard, w, from, &done).await;
    drop(reader);
    shard.ha.reports.borrow_mut().remove(&conn);
    shard.ha.reported.notify();
    tracing::warn!(shard = shard.id, slave = %peer, error = %e, "slave disconnected");
}

async fn read_reports<R: futures_lite::AsyncRead + Unpin>(
    shard: Rc<Shard>,
    conn: u64,
    mut r: R,
    done: Rc<Cell<bool>>,
) {
    loop {
        let read = glommio::timer::timeout(HOUSEKEEPING, async {
            read_u64(&mut r).await.map_err(glommio::GlommioError::from)
        });
        match read.await {
            Ok(v) => {
                shard.ha.report(conn, v);
                if let Some(end) = shard.ha.acked() {
                    shard.store.replica_acked(end);
                }
            }
            Err(_) => break,
        }
    }
    done.set(true);
    shard.ha.reported.notify();
}

/// Sends the log from `from` on, and heartbeats, until the connection fails or `done`. Each
/// frame is one write (header and bytes together) and carries everything pending up to
/// `haTransferBatchSize`; the loop waits for an append only once the slave is caught up.
async fn ship<W: futures_lite::AsyncWrite + Unpin>(
    shard: &Rc<Shard>,
    mut w: W,
    mut from: u64,
    done: &Cell<bool>,
) -> String {
    let batch = shard.config.ha_transfer_batch;
    let mut frame: Vec<u8> = Vec::new();
    loop {
        // Armed before the read, so an append between the read and the wait is not missed.
        let appended = shard.store.wait_for_any_append();
        let reported = shard.ha.reported.notified();
        let (at, size, big) = match next_frame(&shard.store, from, batch, &mut frame).await {
            Ok(v) => v,
            Err(e) => return e,
        };
        if size == 0 {
            if done.get() {
                return "the slave's report stream ended".into();
            }
            let wake = futures_lite::future::or(appended, reported);
            let beat = futures_lite::future::or(
                async {
                    glommio::timer::sleep(HEARTBEAT).await;
                    true
                },
                async {
                    wake.await;
                    false
                },
            );
            if !beat.await {
                continue;
            }
        }
        if let Err(e) = w.write_all(&frame).await {
            return e.to_string();
        }
        if let Some(b) = big {
            if let Err(e) = w.write_all(&b).await {
                return e.to_string();
            }
        }
        from = at + size as u64;
    }
}

/// Builds in `out` the frame of the log from `from` on: the 12-byte header, then the bytes of
/// consecutive hot-tail pieces (or of the file) up to `batch`, stopping at a gap (the zeros
/// after a blank marker start a new frame). Returns the frame's offset and payload size (0:
/// nothing new; `out` is then a heartbeat), and a first read of [`COPY_MAX`] bytes or more
/// whole, not copied: the frame is then `out` (the header) followed by it.
async fn next_frame(
    store: &storage::Store,
    from: u64,
    batch: usize,
    out: &mut Vec<u8>,
) -> Result<(u64, usize, Option<bytes::Bytes>), String> {
    let read_err = |at: u64, e: StoreError| format!("cannot read the commit log at {at}: {e}");
    out.clear();
    out.resize(12, 0);
    let (at, first) = store
        .read_raw(from, batch)
        .await
        .map_err(|e| read_err(from, e))?;
    if first.len() >= COPY_MAX {
        out[..8].copy_from_slice(&at.to_be_bytes());
        out[8..12].copy_from_slice(&(first.len() as u32).to_be_bytes());
        return Ok((at, first.len(), Some(first)));
    }
    out.extend_from_slice(&first);
    let mut end = at + first.len() as u64;
    while !first.is_empty() && out.len() - 12 < batch {
        let (next, more) = store
            .read_raw(end, batch - (out.len() - 12))
            .await
            .map_err(|e| read_err(end, e))?;
        if next != end || more.is_empty() {
            break;
        }
        out.extend_from_slice(&more);
        end += more.len() as u64;
    }
    let size = out.len() - 12;
    out[..8].copy_from_slice(&at.to_be_bytes());
    out[8..12].copy_from_slice(&(size as u32).to_be_bytes());
    Ok((at, size, None))
}

async fn read_u64<R: futures_lite::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).await?;
    Ok(u64::from_be_bytes(b))
}

/// The master HA address slave shard `id` follows: `haMasterAddress` (shard 0's, + 4i), else
/// what the name server answered at registration.
fn master_address(shard: &Shard) -> Option<String> {
    if let Some(a) = &shard.config.ha_master_address {
        let (host, port) = a.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let port = port + crate::config::PORT_STRIDE * shard.id as u16;
        return Some(format!("{host}:{port}"));
    }
    let learned = shard.ha.learned.as_ref()?;
    let table = learned.lock().unwrap_or_else(|p| p.into_inner());
    table.get(shard.id).and_then(|l| l.ha.clone())
}

/// Slave side: follows the master for as long as the shard runs, reconnecting after failures.
async fn follow(shard: Rc<Shard>) {
    let mut logged_missing = false;
    loop {
        let Some(addr) = master_address(&shard) else {
            if !logged_missing {
                tracing::info!(shard = shard.id, "slave: master HA address not known yet (haMasterAddress, or the name server's answer)");
                logged_missing = true;
            }
            glommio::timer::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let e = follow_once(&shard, &addr).await;
        let pause = if matches!(e, StoreError::Diverged { .. }) {
            tracing::error!(shard = shard.id, master = %addr, error = %e,
                "slave: the master's log does not continue this slave's; not following (remove this slave's store to resynchronise)");
            Duration::from_secs(5)
        } else {
            tracing::warn!(shard = shard.id, master = %addr, error = %e, "slave: replication stream ended; reconnecting");
            Duration::from_millis(500)
        };
        glommio::timer::sleep(pause).await;
    }
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

/// One connection to the master: reports, receives and appends until something fails.
async fn follow_once(shard: &Rc<Shard>, addr: &str) -> StoreError {
    let stream = match TcpStream::connect_timeout(addr, Duration::from_secs(3)).await {
        Ok(s) => s,
        Err(e) => return io_err(format!("connect {addr}: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut r, w) = futures_lite::io::split(stream);
    tracing::info!(shard = shard.id, master = %addr, end = shard.store.write_end(), "slave: following");
    let stop = Rc::new(Cell::new(false));
    let batch = Rc::new(storage::Notify::default());
    let reporter = glommio::spawn_local(report_loop(shard.clone(), w, stop.clone(), batch.clone()));
    shard.ha.master_connected.set(true);
    let e = receive(shard, &mut r, &batch).await;
    shard.ha.master_connected.set(false);
    stop.set(true);
    drop(reporter);
    e
}

/// Reports the slave's end after each received batch (`batch`: woken by the receiver once it
/// has applied what one read brought and the socket had nothing more), and every heartbeat
/// period.
async fn report_loop<W: futures_lite::AsyncWrite + Unpin>(
    shard: Rc<Shard>,
    mut w: W,
    stop: Rc<Cell<bool>>,
    batch: Rc<storage::Notify>,
) {
    let sync = shard.config.flush == FlushDiskType::Sync;
    let mut last: Option<(u64, Instant)> = None;
    while !stop.get() {
        // Armed first: a batch applied while this report is written is reported next.
        let next = batch.notified();
        let end = shard.store.write_end();
        let rep = if sync {
            // Durable: wait for the flush that covers what was appended (woken by each flush).
            let _ = shard.store.wait_durable(end).await;
            shard.store.durable_end()
        } else {
            end
        };
        let due = last.is_none_or(|(v, t)| v != rep || t.elapsed() >= HEARTBEAT);
        if due {
            if w.write_all(&rep.to_be_bytes()).await.is_err() {
                return;
            }
            last = Some((rep, Instant::now()));
        }
        let timer = glommio::timer::sleep(HEARTBEAT);
        futures_lite::future::or(next, async {
            timer.await;
        })
        .await;
    }
}

/// Bytes the slave reads from the master's stream at once.
const RX: usize = 1 << 20;

/// The frame whose payload is being read: bytes left, and how many of them (from `cmp_at`)
/// this slave has already and compares instead of appending.
#[derive(Default)]
struct Frame {
    left: usize,
    cmp_at: u64,
    cmp_left: usize,
}

/// Reads frames from the master and appends them, until something fails. Reads take what the
/// socket has (up to [`RX`]); what one read brought is applied at once, and `batch` is woken
/// when the read left the socket empty.
async fn receive<R: futures_lite::AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    r: &mut R,
    batch: &storage::Notify,
) -> StoreError {
    let store = &shard.store;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_off = store.write_end();
    let mut rx = vec![0u8; RX];
    let (mut filled, mut frame) = (0usize, Frame::default());
    loop {
        let read = glommio::timer::timeout(HOUSEKEEPING, async {
            r.read(&mut rx[filled..])
                .await
                .map_err(glommio::GlommioError::from)
        });
        let n = match read.await {
            Ok(0) => return io_err("the master closed the connection"),
            Ok(n) => n,
            Err(e) => return io_err(format!("reading from the master: {e}")),
        };
        let drained = n < RX - filled;
        filled += n;
        let mut pos = 0;
        while pos < filled {
            if frame.left == 0 {
                if filled - pos < 12 {
                    break;
                }
                match start_frame(store, &rx[pos..pos + 12], &mut buf, &mut buf_off) {
                    Ok(f) => frame = f,
                    Err(e) => return e,
                }
                pos += 12;
                continue;
            }
            let take = frame.left.min(filled - pos);
            if let Err(e) = take_payload(store, &mut frame, &rx[pos..pos + take], &mut buf).await {
                return e;
            }
            pos += take;
        }
        rx.copy_within(pos..filled, 0);
        filled -= pos;
        if !buf.is_empty() {
            if let Err(e) = apply(shard, &mut buf, &mut buf_off).await {
                return e;
            }
        }
        if drained {
            batch.notify();
        }
    }
}

/// Reads a frame header: a heartbeat, bytes this slave has (compared), or the continuation of
/// its log (or of its new segment, past the zeros after a blank marker).
fn start_frame(
    store: &storage::Store,
    header: &[u8],
    buf: &mut Vec<u8>,
    buf_off: &mut u64,
) -> Result<Frame, StoreError> {
    let at = u64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
    let size = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    if size == 0 {
        return Ok(Frame::default()); // heartbeat
    }
    if size > 64 << 20 {
        return Err(io_err(format!("frame of {size} bytes from the master")));
    }
    let expected = *buf_off + buf.len() as u64;
    if at < expected && buf.is_empty() {
        // Bytes this slave has: they must be its own (else the master's history differs).
        let cmp_left = ((expected - at) as usize).min(size);
        return Ok(Frame {
            left: size,
            cmp_at: at,
            cmp_left,
        });
    }
    if at != expected {
        // Allowed only past the zeros after a blank marker: to this store's new segment.
        if !(at == store.write_end() && expected <= at) {
            return Err(StoreError::Diverged {
                offset: at,
                reason: format!("the master sent bytes at {at}, this slave expected {expected}"),
            });
        }
        buf.clear();
        *buf_off = at;
    }
    Ok(Frame {
        left: size,
        ..Frame::default()
    })
}

/// Takes the next `bytes` of the current frame: compares those this slave has, queues the rest
/// for appending.
async fn take_payload(
    store: &storage::Store,
    frame: &mut Frame,
    bytes: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let n = frame.cmp_left.min(bytes.len());
    if n > 0 {
        same_bytes(store, frame.cmp_at, &bytes[..n]).await?;
        frame.cmp_at += n as u64;
        frame.cmp_left -= n;
    }
    buf.extend_from_slice(&bytes[n..]);
    frame.left -= bytes.len();
    Ok(())
}

/// Checks that this store holds `bytes` at `at`.
async fn same_bytes(store: &storage::Store, at: u64, bytes: &[u8]) -> Result<(), StoreError> {
    let mut done = 0usize;
    while done < bytes.len() {
        let from = at + done as u64;
        let (got_at, own) = store.read_raw(from, bytes.len() - done).await?;
        if got_at != from || own.is_empty() {
            break; // zeros after a blank marker: nothing of ours to compare
        }
        if own[..] != bytes[done..done + own.len()] {
            return Err(StoreError::Diverged {
                offset: from,
                reason: "the master's bytes differ from this slave's (the histories diverged)"
                    .into(),
            });
        }
        done += own.len();
    }
    Ok(())
}

/// Appends the whole records at the head of `buf` (which starts at commit-log offset
/// `buf_off`), and makes the topics of new queues known.
async fn apply(shard: &Rc<Shard>, buf: &mut Vec<u8>, buf_off: &mut u64) -> Result<(), StoreError> {
    loop {
        shard.store.writable().await;
        let r = shard.store.append_replica(*buf_off, buf)?;
        buf.drain(..r.used);
        *buf_off += r.used as u64;
        for (topic, queue) in r.new_queues {
            if topic == crate::replstate::STATE_TOPIC {
                continue; // read by `replstate::follow` from the store, not a topic
            }
            adopt_queue(shard, topic, queue).await;
        }
        if r.used == 0 || buf.is_empty() {
            return Ok(());
        }
    }
}

/// A replicated record of a topic (or queue) this broker does not know: the topic is created
/// with enough queues to serve it.
async fn adopt_queue(shard: &Rc<Shard>, topic: String, queue: i32) {
    let need = queue + 1;
    match shard.topic(&topic) {
        Some(t) if t.read_queue_nums >= need => {}
        Some(t) => {
            let mut c = (*t).clone();
            c.read_queue_nums = need;
            c.write_queue_nums = c.write_queue_nums.max(need);
            shard.put_topic(c).await;
        }
        None => {
            let perm = protocol::body::perm::READ | protocol::body::perm::WRITE;
            shard
                .ensure_topic(TopicConfig::new(&topic, need, need, perm))
                .await;
        }
    }
}

/// SYNC_MASTER: waits until a slave reports everything below `end`. SLAVE_NOT_AVAILABLE at once
/// when no slave is connected within `haMaxGapNotInSync` of `end`; FLUSH_SLAVE_TIMEOUT after
/// `slaveTimeout`. Every waiting send is woken by each report (no task or timer per send).
pub async fn wait_slave(shard: &Shard, end: u64) -> protocol::ResponseCode {
    use protocol::ResponseCode as R;
    let ha = &shard.ha;
    let gap = shard.config.ha_max_gap;
    if ha.acked().is_none_or(|a| a.saturating_add(gap) < end) {
        return R::SLAVE_NOT_AVAILABLE;
    }
    let deadline = Instant::now() + shard.config.slave_timeout;
    let _waiting = Waiting::new(&ha.waiting);
    if ha.waiting.get() == 1 {
        ha.first_waiter.notify();
    }
    loop {
        let next = ha.reported.notified();
        if ha.acked().is_some_and(|a| a >= end) {
            return R::SUCCESS;
        }
        if Instant::now() >= deadline {
            return R::FLUSH_SLAVE_TIMEOUT;
        }
        next.await;
    }
}

/// Counts a waiting send for as long as it waits (also when its request is dropped).
struct Waiting<'a>(&'a Cell<usize>);

impl<'a> Waiting<'a> {
    fn new(c: &'a Cell<usize>) -> Self {
        c.set(c.get() + 1);
        Self(c)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
