//! `saturn-client`: a small blocking remoting client: what a broker's control
//! thread uses to register with name servers, what saturn-admin and the
//! dashboard use, and what tests and tools use to talk to a server. Not for
//! the data path.
//!
//! Its own crate so that the name server's binary can serve the dashboard
//! (saturn-admin's library) without a package cycle: saturn-admin depends on
//! this crate, not on saturn-namesrv.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use protocol::command::CommandError;
use protocol::{CommandDecoder, FrameError, RemotingCommand, StreamError, DEFAULT_MAX_FRAME_SIZE};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad frame from {addr}: {source}")]
    Frame { addr: String, source: FrameError },
    #[error("bad header from {addr}: {source}")]
    Command { addr: String, source: CommandError },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
}

pub struct BlockingClient {
    addr: String,
    stream: TcpStream,
    decoder: CommandDecoder,
    next_opaque: i32,
}

impl BlockingClient {
    pub fn connect(addr: &str, timeout: Duration) -> Result<Self, ClientError> {
        let io = |source| ClientError::Io {
            addr: addr.to_owned(),
            source,
        };
        let resolved: Vec<SocketAddr> = addr.to_socket_addrs().map_err(io)?.collect();
        let target = resolved.first().ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "address resolves to nothing",
            ))
        })?;
        let stream = TcpStream::connect_timeout(target, timeout).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(Self {
            addr: addr.to_owned(),
            stream,
            decoder: CommandDecoder::new(DEFAULT_MAX_FRAME_SIZE),
            next_opaque: 1,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|source| self.io_err(source))
    }

    fn io_err(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Assigns an opaque, sends, and waits for the response with that opaque
    /// (requests the server sends meanwhile are skipped).
    pub fn invoke(&mut self, mut request: RemotingCommand) -> Result<RemotingCommand, ClientError> {
        request.opaque = self.next_opaque;
        self.next_opaque = self.next_opaque.wrapping_add(1);
        self.send(&request)?;
        loop {
            let cmd = self.read_command()?;
            if cmd.is_response() && cmd.opaque == request.opaque {
                return Ok(cmd);
            }
        }
    }

    /// Sends a oneway request.
    pub fn invoke_oneway(&mut self, mut request: RemotingCommand) -> Result<(), ClientError> {
        request.opaque = self.next_opaque;
        self.next_opaque = self.next_opaque.wrapping_add(1);
        request.set_oneway();
        self.send(&request)
    }

    pub fn send(&mut self, cmd: &RemotingCommand) -> Result<(), ClientError> {
        let bytes = cmd.to_bytes();
        self.send_raw(&bytes)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .map_err(|source| self.io_err(source))
    }

    /// Reads the next command of any kind.
    pub fn read_command(&mut self) -> Result<RemotingCommand, ClientError> {
        loop {
            let addr = || self.addr.clone();
            match self.decoder.next_command() {
                Ok(Some(cmd)) => return Ok(cmd),
                Ok(None) => {}
                Err(StreamError::Frame(source)) => {
                    return Err(ClientError::Frame {
                        addr: addr(),
                        source,
                    })
                }
                Err(StreamError::Command(source)) => {
                    return Err(ClientError::Command {
                        addr: addr(),
                        source,
                    })
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                // Signals (glommio uses some) interrupt blocking reads.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(self.io_err(source)),
            };
            if n == 0 {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                });
            }
            self.decoder.extend(&chunk[..n]);
        }
    }
}
