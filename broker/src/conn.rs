//! One client connection: a reader that decodes frames and starts a task per
//! request, and a writer that drains a bounded queue of outgoing frames.
//! Responses leave in completion order, matched by opaque.
//!
//! Bounds: at most `max_in_flight_per_connection` requests are being served
//! per connection (the reader stops reading, so TCP pushes back), and at most
//! `OUT_QUEUE` frames wait for the socket.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use protocol::{FrameCodec, LanguageCode, RemotingCommand};

use crate::shard::Shard;

/// Frames waiting for the socket, per connection.
const OUT_QUEUE: usize = 1024;
/// Bytes the writer gathers into one socket write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Pieces of one vectored socket write (below IOV_MAX, 1024).
const WRITE_BATCH_PIECES: usize = 512;
/// Pieces shorter than this are copied together rather than given an iovec of their own.
const SMALL_PIECE: usize = 512;

/// A read at least this large means requests are streaming in: the next read goes straight
/// into the frame buffer.
const STREAMING_READ: usize = 16 * 1024;

/// A frame to send: an encoded prefix and header (and small body), then
/// body parts passed through untouched (stored records).
pub struct Outgoing {
    pub head: Bytes,
    pub parts: Vec<Bytes>,
}

impl Outgoing {
    pub fn command(cmd: &RemotingCommand) -> Self {
        Self {
            head: cmd.to_bytes(),
            parts: Vec::new(),
        }
    }

    /// `cmd` (whose own body must be empty) followed by `parts` as its body.
    pub fn with_parts(cmd: &RemotingCommand, parts: Vec<Bytes>) -> Self {
        debug_assert!(cmd.body.is_empty());
        let body_len = parts.iter().map(Bytes::len).sum();
        let mut head = BytesMut::new();
        cmd.encode_prefix_and_header(&mut head, body_len);
        Self {
            head: head.freeze(),
            parts,
        }
    }

    fn close_marker() -> Self {
        Self {
            head: Bytes::new(),
            parts: Vec::new(),
        }
    }

    fn is_close_marker(&self) -> bool {
        self.head.is_empty() && self.parts.is_empty()
    }
}

/// What the connection's writer is about to send: pieces in order, small ones copied together.
#[derive(Default)]
struct OutBuf {
    pieces: Vec<Bytes>,
    /// Small pieces since the last large one, not yet in `pieces`.
    small: BytesMut,
    bytes: usize,
}

impl OutBuf {
    fn push(&mut self, b: Bytes) {
        self.bytes += b.len();
        if b.len() < SMALL_PIECE {
            self.small.extend_from_slice(&b);
        } else {
            self.seal_small();
            self.pieces.push(b);
        }
    }

    fn seal_small(&mut self) {
        if !self.small.is_empty() {
            self.pieces.push(self.small.split().freeze());
        }
    }

    fn is_full(&self) -> bool {
        self.bytes >= WRITE_BATCH_BYTES || self.pieces.len() >= WRITE_BATCH_PIECES
    }

    /// Sends everything: as much as the socket takes at once with `sendmsg` over the pieces
    /// (no copy), the rest (when the socket is full) through glommio, which waits for room.
    async fn send<W: futures_lite::AsyncWrite + Unpin>(
        &mut self,
        fd: RawFd,
        writer: &mut W,
    ) -> std::io::Result<()> {
        self.seal_small();
        self.bytes = 0;
        if self.pieces.len() == 1 {
            let b = self.pieces.pop().unwrap_or_default();
            return writer.write_all(&b).await;
        }
        let mut first = 0; // pieces before it are sent
        while first < self.pieces.len() {
            let iov: Vec<libc::iovec> = self.pieces[first..]
                .iter()
                .take(WRITE_BATCH_PIECES)
                .map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: an all-zero msghdr is valid (no name, no control data); the iovecs set
            // below point into `self.pieces`, which are alive and not modified during the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iov.len() as _;
            // SAFETY: `fd` is this connection's socket, open while its writer task runs (the
            // stream is owned by the split halves, one of which is `writer`); `msg` and the
            // memory it points to outlive the call; the kernel only reads them. MSG_DONTWAIT
            // keeps the call from blocking the executor.
            let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => break,
                    _ => {
                        self.pieces.clear();
                        return Err(e);
                    }
                }
            }
            let mut n = n as usize;
            while n > 0 && first < self.pieces.len() {
                let len = self.pieces[first].len();
                if n >= len {
                    n -= len;
                    first += 1;
                } else {
                    let _ = self.pieces[first].split_to(n);
                    n = 0;
                }
            }
        }
        if first == self.pieces.len() {
            self.pieces.clear();
            return Ok(());
        }
        // The socket is full: the rest in one buffer, written as room appears.
        let mut rest = Vec::with_capacity(self.pieces[first..].iter().map(Bytes::len).sum());
        for b in &self.pieces[first..] {
            rest.extend_from_slice(b);
        }
        self.pieces.clear();
        writer.write_all(&rest).await
    }
}

/// A client as the shard sees it.
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    out: LocalSender<Outgoing>,
    /// Language and version of the last request (heartbeats record them).
    pub language: Cell<LanguageCode>,
    pub version: Cell<i32>,
    next_opaque: Cell<i32>,
    closed: Rc<Cell<bool>>,
}

impl Conn {
    /// Queues a frame; waits while the queue is full. Dropped silently when
    /// the connection has closed.
    pub async fn send(&self, frame: Outgoing) {
        if self.closed.get() {
            return;
        }
        if self.out.send(frame).await.is_err() {
            self.closed.set(true);
        }
    }

    /// Sends a oneway request to the client (NOTIFY_CONSUMER_IDS_CHANGED, ...).
    pub fn try_send_oneway(&self, mut cmd: RemotingCommand) {
        if self.closed.get() {
            return;
        }
        let opaque = self.next_opaque.get();
        self.next_opaque.set(opaque.wrapping_add(1));
        cmd.opaque = opaque;
        cmd.set_oneway();
        let _ = self.out.try_send(Outgoing::command(&cmd));
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn addr_string(&self) -> String {
        self.peer.to_string()
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, id: u64) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (tx, rx) = local_channel::new_bounded::<Outgoing>(OUT_QUEUE);
    let conn = Rc::new(Conn {
        id,
        peer,
        out: tx,
        language: Cell::new(LanguageCode::JAVA),
        version: Cell::new(0),
        next_opaque: Cell::new(1),
        closed: Rc::new(Cell::new(false)),
    });

    glommio::spawn_local({
        let closed = conn.closed.clone();
        async move {
            let mut out = OutBuf::default();
            while let Some(first) = rx.recv().await {
                if first.is_close_marker() {
                    break;
                }
                let mut pending = Some(first);
                // Gather what is queued into large writes: small pieces (headers, small
                // responses) are copied together, stored records are sent from where they are
                // with one vectored write.
                loop {
                    let next = match pending.take() {
                        Some(f) => Some(f),
                        // Whatever is already queued, without waiting.
                        None => futures_lite::future::poll_once(rx.recv()).await.flatten(),
                    };
                    let Some(frame) = next else {
                        break;
                    };
                    if frame.is_close_marker() {
                        let _ = out.send(fd, &mut writer).await;
                        let _ = writer.close().await;
                        closed.set(true);
                        return;
                    }
                    out.push(frame.head);
                    for part in frame.parts {
                        out.push(part);
                    }
                    if out.is_full() && out.send(fd, &mut writer).await.is_err() {
                        closed.set(true);
                        return;
                    }
                }
                if out.send(fd, &mut writer).await.is_err() {
                    closed.set(true);
                    return;
                }
                if writer.flush().await.is_err() {
                    closed.set(true);
                    return;
                }
            }
        }
    })
    .detach();

    let in_flight = Rc::new(Semaphore::new(
        shard.config.max_in_flight_per_connection as u64,
    ));
    let codec = FrameCodec::new(shard.config.max_frame_size);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last_read = 0;
    'read: loop {
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "broken framing; closing connection");
                    break 'read;
                }
            };
            let request = match RemotingCommand::decode(frame) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "undecodable header; closing connection");
                    break 'read;
                }
            };
            if request.is_response() {
                // An answer to a call the broker made (oneway notifications get none).
                shard.outbound.complete(conn.id, request);
                continue;
            }
            conn.language.set(request.language);
            conn.version.set(request.version);
            let permit = match in_flight.acquire_static_permit(1).await {
                Ok(p) => p,
                Err(_) => break 'read,
            };
            let shard = shard.clone();
            let conn = conn.clone();
            glommio::spawn_local(async move {
                if let Some(reply) = crate::handlers::dispatch(&shard, &conn, request).await {
                    conn.send(reply).await;
                }
                drop(permit);
            })
            .detach();
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        // While requests stream in (the last read was large), what the socket holds goes
        // straight into `buf`. Otherwise, and when the socket turns out empty, glommio reads
        // into `chunk`, waiting for data (it tries a plain read first itself: a connection
        // with one request at a time pays for one read attempt, not two).
        let got = match (last_read >= STREAMING_READ).then(|| recv_now(fd, &mut buf)) {
            Some(Some(r)) => r,
            _ => reader.read(&mut chunk).await.inspect(|&n| {
                buf.extend_from_slice(&chunk[..n]);
            }),
        };
        match got {
            Ok(0) | Err(_) => break,
            Ok(n) => last_read = n,
        }
    }
    // Ask the writer to flush what is queued and close the socket; frames
    // produced later (parked pulls) are dropped.
    let _ = conn.out.try_send(Outgoing::close_marker());
    conn.closed.set(true);
    shard.connection_closed(&conn);
}

/// Reads what the socket `fd` holds into `buf`'s spare capacity without waiting: `None` when
/// it holds nothing yet.
fn recv_now(fd: RawFd, buf: &mut BytesMut) -> Option<std::io::Result<usize>> {
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `fd` is this connection's socket, open while its reader runs; the kernel
        // writes at most `spare.len()` bytes into the spare capacity, which `buf` owns and
        // nothing else references during the call. MSG_DONTWAIT keeps the call from blocking
        // the executor.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // SAFETY: the kernel initialized the `n` bytes after the current length.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Some(Ok(n as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return None,
            _ => return Some(Err(e)),
        }
    }
}

thread_local! {
    static NEXT_CONN: RefCell<u64> = const { RefCell::new(1) };
}

pub fn next_conn_id(shard: usize) -> u64 {
    NEXT_CONN.with(|n| {
        let mut n = n.borrow_mut();
        *n += 1;
        ((shard as u64) << 48) | *n
    })
}
