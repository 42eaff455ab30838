//! RocketMQ remoting wire formats, with no I/O and no runtime.
//!
//! * [`frame`]: length-prefixed frames and the incremental decoder.
//! * [`decoder`]: a connection's receive buffer: bytes in, commands out.
//! * [`command`]: `RemotingCommand` with JSON and ROCKETMQ binary headers.
//! * [`code`]: request and response codes.
//! * [`header`]: typed custom headers carried in `extFields`.
//! * [`body`]: JSON bodies (routes, heartbeats, topic configs, ...).
//! * [`message`]: the stored-message format, properties, message ids, tag hash, body CRC.
//! * [`sql92`]: RocketMQ's SQL92 message selector, parsed and evaluated on properties.

pub mod body;
pub mod code;
pub mod command;
pub mod decoder;
pub mod frame;
pub mod header;
pub mod message;
pub mod sql92;

pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use command::{ExtFields, RemotingCommand, SerializeType};
pub use decoder::{CommandDecoder, StreamError, RECV_CHUNK};
pub use frame::{FrameCodec, FrameError, RawFrame, DEFAULT_MAX_FRAME_SIZE};
