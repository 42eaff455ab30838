//! Requests the broker sends to a client on the client's own connection, awaiting the answer
//! (GET_CONSUMER_RUNNING_INFO and CONSUME_MESSAGE_DIRECTLY, forwarded from mqadmin).
//!
//! One table per shard of the calls in flight, keyed by (connection id, opaque). The
//! connection's reader hands every response it reads to [`Outbound::complete`]; a call that is
//! not answered within its timeout, or whose connection closes, fails. At most
//! `MAX_IN_FLIGHT` calls wait at once per shard: these are operator requests, never traffic.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use protocol::RemotingCommand;

use crate::conn::{Conn, Outgoing};

/// Calls to clients waiting for an answer, per shard.
pub const MAX_IN_FLIGHT: usize = 256;

/// Opaques of broker-initiated calls start here, far from the connection's own counter for
/// oneway notifications (whose answers never come).
const FIRST_OPAQUE: i32 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("the client's connection closed")]
    Closed,
    #[error("too many calls to clients in flight ({MAX_IN_FLIGHT})")]
    Busy,
}

#[derive(Default)]
pub struct Outbound {
    next_opaque: Cell<i32>,
    pending: RefCell<HashMap<(u64, i32), flume::Sender<RemotingCommand>>>,
}

/// Removes a call's entry however the call ends (answer, timeout, cancelled).
struct Entry<'a> {
    table: &'a Outbound,
    key: (u64, i32),
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.table.pending.borrow_mut().remove(&self.key);
    }
}

impl Outbound {
    fn opaque(&self) -> i32 {
        let n = self.next_opaque.get();
        let opaque = if n < FIRST_OPAQUE { FIRST_OPAQUE } else { n };
        self.next_opaque
            .set(opaque.checked_add(1).unwrap_or(FIRST_OPAQUE));
        opaque
    }

    /// Sends `cmd` (a request) to the client on `conn` and waits for its answer.
    pub async fn call(
        &self,
        conn: &Rc<Conn>,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, CallError> {
        if conn.is_closed() {
            return Err(CallError::Closed);
        }
        if self.pending.borrow().len() >= MAX_IN_FLIGHT {
            return Err(CallError::Busy);
        }
        cmd.opaque = self.opaque();
        let key = (conn.id, cmd.opaque);
        let (tx, rx) = flume::bounded(1);
        self.pending.borrow_mut().insert(key, tx);
        let _entry = Entry { table: self, key };
        conn.send(Outgoing::command(&cmd)).await;
        let answer = async { rx.recv_async().await.map_err(|_| CallError::Closed) };
        let expiry = async {
            glommio::timer::sleep(timeout).await;
            Err(CallError::Timeout(timeout.as_millis()))
        };
        futures_lite::future::or(answer, expiry).await
    }

    /// A response read on connection `conn_id`: completes the call it answers, if any.
    pub fn complete(&self, conn_id: u64, response: RemotingCommand) {
        let tx = self
            .pending
            .borrow_mut()
            .remove(&(conn_id, response.opaque));
        match tx {
            Some(tx) => {
                let _ = tx.try_send(response);
            }
            None => tracing::debug!(
                conn = conn_id,
                opaque = response.opaque,
                "a response nobody waits for"
            ),
        }
    }

    /// Fails every call waiting on a connection that closed.
    pub fn connection_closed(&self, conn_id: u64) {
        self.pending.borrow_mut().retain(|(c, _), _| *c != conn_id);
    }
}
