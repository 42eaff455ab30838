//! Request handlers, one module per side of the protocol.

mod admin;
mod admin_client;
mod admin_stats;
mod client;
mod consumer;
mod error;
mod filter;
mod pull;
mod reply;
mod reset;
mod send;
mod transaction;

use std::rc::Rc;

use protocol::header::HeaderError;
use protocol::{RemotingCommand, RequestCode, ResponseCode};

pub use self::error::{HandlerError, IntoReply};
use crate::conn::{Conn, Outgoing};
use crate::shard::Shard;

/// A shard serves its connections with these handlers.
impl crate::conn::Service for Shard {
    async fn serve(this: &Rc<Self>, conn: &Rc<Conn>, request: RemotingCommand) -> Option<Outgoing> {
        dispatch(this, conn, request).await
    }

    fn response(&self, conn: &Rc<Conn>, response: RemotingCommand) {
        self.outbound.complete(conn.id, response);
    }

    fn closed(&self, conn: &Rc<Conn>) {
        self.connection_closed(conn);
    }
}

/// Serves one request; `None` when nothing is to be sent back (oneway).
pub async fn dispatch(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    req: RemotingCommand,
) -> Option<Outgoing> {
    use RequestCode as C;
    // Sends are served inline; every other handler's state lives in a box of its own, so the
    // box that holds each request's future (see `conn::serve`) is sized for a send, not for the
    // largest handler (a pull's future is three times a send's).
    let oneway = req.is_oneway();
    let started = std::time::Instant::now();
    let reply = match req.request_code() {
        C::SEND_MESSAGE
        | C::SEND_MESSAGE_V2
        | C::SEND_BATCH_MESSAGE
        | C::CONSUMER_SEND_MSG_BACK
            if shard.config.role == crate::config::BrokerRole::Slave =>
        {
            refuse_on_slave(&req)
        }
        C::SEND_MESSAGE | C::SEND_MESSAGE_V2 | C::SEND_BATCH_MESSAGE => {
            send::send(shard, conn, &req).await.into_reply(&req)
        }
        C::PULL_MESSAGE | C::LITE_PULL_MESSAGE => {
            Box::pin(pull::pull(shard, &req)).await.into_reply(&req)
        }
        C::SEND_REPLY_MESSAGE | C::SEND_REPLY_MESSAGE_V2 => {
            Box::pin(reply::serve(shard, conn, &req)).await
        }
        C::HEART_BEAT => Box::pin(client::heartbeat(shard, conn, &req)).await,
        C::UNREGISTER_CLIENT => client::unregister_client(shard, conn, &req),
        C::GET_CONSUMER_LIST_BY_GROUP => client::consumer_list(shard, &req),
        C::CHECK_CLIENT_CONFIG => client::check_client_config(shard, &req),
        C::LOCK_BATCH_MQ => client::lock_batch(shard, &req),
        C::UNLOCK_BATCH_MQ => client::unlock_batch(shard, &req),
        C::QUERY_CONSUMER_OFFSET => consumer::query_consumer_offset(shard, &req),
        C::UPDATE_CONSUMER_OFFSET => consumer::update_consumer_offset(shard, &req),
        C::GET_MAX_OFFSET => consumer::max_offset(shard, &req),
        C::GET_MIN_OFFSET => consumer::min_offset(shard, &req),
        C::SEARCH_OFFSET_BY_TIMESTAMP => Box::pin(consumer::search_offset(shard, &req)).await,
        C::GET_EARLIEST_MSG_STORETIME => Box::pin(consumer::earliest_store_time(shard, &req)).await,
        C::END_TRANSACTION => Box::pin(transaction::end_transaction(shard, &req))
            .await
            .into_reply(&req),
        C::CONSUMER_SEND_MSG_BACK => Box::pin(send::send_back(shard, conn, &req))
            .await
            .into_reply(&req),
        _ => Box::pin(admin_request(shard, &req)).await,
    };
    let (Reply::Cmd(answer) | Reply::Parts(answer, _)) = &reply;
    let key = (req.code, answer.code, oneway);
    shard.stats.rpc.record(key, started.elapsed());
    if tracing::enabled!(tracing::Level::DEBUG) {
        let cmd = match &reply {
            Reply::Cmd(cmd) | Reply::Parts(cmd, _) => cmd,
        };
        if cmd.code != ResponseCode::SUCCESS.num() {
            tracing::debug!(
                peer = %conn.peer,
                request = req.code,
                code = cmd.code,
                remark = ?cmd.remark,
                oneway,
                "request not served with SUCCESS"
            );
        }
    }
    if oneway {
        return None;
    }
    Some(match reply {
        Reply::Cmd(cmd) => Outgoing::command(&cmd),
        Reply::Parts(cmd, parts) => Outgoing::with_parts(&cmd, parts),
    })
}

/// The services a shard starts before it listens (see [`crate::shard::StartServices`]).
pub fn start_services(
    shard: Rc<Shard>,
) -> futures_lite::future::BoxedLocal<Vec<glommio::task::JoinHandle<()>>> {
    transaction::start(shard)
}

/// A handler's answer: a command, or a command whose body is stored records
/// passed through as they are.
pub enum Reply {
    Cmd(RemotingCommand),
    Parts(RemotingCommand, Vec<bytes::Bytes>),
}

impl From<RemotingCommand> for Reply {
    fn from(cmd: RemotingCommand) -> Self {
        Reply::Cmd(cmd)
    }
}

pub(crate) fn header_error(req: &RemotingCommand, err: HeaderError) -> Reply {
    Reply::Cmd(req.reply(ResponseCode::SYSTEM_ERROR, Some(err.to_string())))
}

/// The administration requests (topics, groups, messages by id or key, stats, configuration),
/// and the answer to a code not served.
async fn admin_request(shard: &Rc<Shard>, req: &RemotingCommand) -> Reply {
    use RequestCode as C;
    match req.request_code() {
        C::UPDATE_AND_CREATE_TOPIC => Box::pin(admin::create_topic(shard, req)).await,
        C::DELETE_TOPIC_IN_BROKER => Box::pin(admin::delete_topic(shard, req)).await,
        C::GET_ALL_TOPIC_CONFIG => admin::all_topic_config(shard, req),
        C::GET_TOPIC_CONFIG => admin::topic_config(shard, req),
        C::GET_ALL_DELAY_OFFSET => Reply::Cmd(
            req.success()
                .with_body(shard.timers.delay_offset_json().into_bytes()),
        ),
        C::VIEW_MESSAGE_BY_ID => Box::pin(admin::view_message(shard, req)).await,
        C::QUERY_MESSAGE => Box::pin(admin::query_message(shard, req)).await,
        C::GET_BROKER_RUNTIME_INFO => Box::pin(admin_stats::runtime_info(shard, req)).await,
        C::VIEW_BROKER_STATS_DATA => admin_stats::view_stats(shard, req),
        C::GET_BROKER_CONSUME_STATS => {
            Box::pin(admin_stats::broker_consume_stats(shard, req)).await
        }
        C::QUERY_CONSUME_QUEUE => Box::pin(admin_stats::query_consume_queue(shard, req)).await,
        C::GET_ALL_PRODUCER_INFO => admin_stats::producer_info(shard, req),
        C::GET_CONSUMER_RUNNING_INFO => {
            Box::pin(admin_client::consumer_running_info(shard, req)).await
        }
        C::CONSUME_MESSAGE_DIRECTLY => {
            Box::pin(admin_client::consume_message_directly(shard, req)).await
        }
        C::INVOKE_BROKER_TO_RESET_OFFSET => Box::pin(reset::reset_offset(shard, req)).await,
        C::UPDATE_BROKER_CONFIG => admin_client::update_broker_config(shard, req),
        C::GET_BROKER_CONFIG => admin::broker_config(shard, req),
        C::GET_ALL_CONSUMER_OFFSET => admin::all_consumer_offset(shard, req),
        C::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => Box::pin(admin::create_group(shard, req)).await,
        C::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => admin::all_groups(shard, req),
        C::DELETE_SUBSCRIPTIONGROUP => Box::pin(admin::delete_group(shard, req)).await,
        C::GET_CONSUMER_CONNECTION_LIST => admin::consumer_connections(shard, req),
        C::GET_PRODUCER_CONNECTION_LIST => admin::producer_connections(shard, req),
        C::GET_TOPIC_STATS_INFO => Box::pin(admin::topic_stats(shard, req)).await,
        C::GET_CONSUME_STATS => Box::pin(admin::consume_stats(shard, req)).await,
        C::QUERY_TOPIC_CONSUME_BY_WHO => admin::consumed_by_who(shard, req),
        other => Reply::Cmd(req.reply(
            ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
            Some(format!(" request type {} not supported", other.num())),
        )),
    }
}

/// A slave refuses writes as RocketMQ's does: SERVICE_NOT_AVAILABLE.
fn refuse_on_slave(req: &protocol::RemotingCommand) -> Reply {
    error(
        req,
        protocol::ResponseCode::SERVICE_NOT_AVAILABLE,
        "service not available now: this broker is a slave (brokerRole=SLAVE); messages are put to its master",
    )
}

pub(crate) fn error(req: &RemotingCommand, code: ResponseCode, remark: impl Into<String>) -> Reply {
    Reply::Cmd(req.reply(code, Some(remark.into())))
}

/// Decodes a typed header or returns the error reply from the handler.
macro_rules! header {
    ($ty:ty, $req:expr) => {
        match <$ty as protocol::header::CommandHeader>::decode(&$req.ext_fields) {
            Ok(h) => h,
            Err(e) => return crate::handlers::header_error($req, e),
        }
    };
}
pub(crate) use header;
