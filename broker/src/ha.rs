//! Master/slave replication: the state a shard keeps ([`HaState`]) and the HA addresses the
//! name servers answer at registration ([`LearnedMasters`]). The streams themselves (the HA
//! listener of a master, the follower of a slave, SYNC_MASTER's wait) are in
//! [`crate::ha_link`]; this module depends on nothing of the crate, so the shard, the control
//! thread and the handlers can hold its types without a cycle.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use storage::Notify;

/// What the name servers answered each shard's registration (index: shard).
pub type LearnedMasters = Arc<Mutex<Vec<Learned>>>;

/// A slave shard's master, as a name server answered its registration.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    /// The master's HA address (`haServerAddr`).
    pub ha: Option<String>,
    /// The master's remoting address (`masterAddr`): where offsets committed on the slave go.
    pub master: Option<String>,
}

pub fn learned_masters(shards: usize) -> LearnedMasters {
    Arc::new(Mutex::new(vec![Learned::default(); shards]))
}

/// One shard's replication state.
#[derive(Default)]
pub struct HaState {
    /// Commit-log end each connected slave reported (by connection).
    pub(crate) reports: RefCell<HashMap<u64, u64>>,
    pub(crate) next_conn: Cell<u64>,
    /// Woken by every report and connection change, and by the ticker while sends wait.
    pub reported: Rc<Notify>,
    /// Sends waiting for a slave (SYNC_MASTER).
    pub waiting: Cell<usize>,
    /// Woken when the first send starts waiting (the ticker sleeps while none waits).
    pub(crate) first_waiter: Rc<Notify>,
    /// Slave: the master's addresses learned at registration.
    pub learned: Option<LearnedMasters>,
    /// Slave: connected to its master's HA port (the metrics' gauge).
    pub master_connected: Cell<bool>,
    /// Master: a slave connected, so the replicated state is written whole again
    /// (`crate::replstate`).
    pub snapshot_due: Cell<bool>,
}

impl HaState {
    pub fn new(learned: Option<LearnedMasters>) -> Self {
        Self {
            learned,
            ..Default::default()
        }
    }

    /// The furthest end a connected slave reported (`None`: no slave).
    pub fn acked(&self) -> Option<u64> {
        self.reports.borrow().values().copied().max()
    }

    pub fn slaves(&self) -> usize {
        self.reports.borrow().len()
    }

    pub(crate) fn report(&self, conn: u64, end: u64) {
        self.reports.borrow_mut().insert(conn, end);
        self.reported.notify();
    }
}

/// Keeps the master HA address a name server answered to shard `shard`'s registration.
pub fn learn_master(learned: &LearnedMasters, shard: usize, resp: &protocol::RemotingCommand) {
    use protocol::header::{CommandHeader, RegisterBrokerResponseHeader};
    let Ok(h) = RegisterBrokerResponseHeader::decode(&resp.ext_fields) else {
        return;
    };
    let mut table = learned.lock().unwrap_or_else(|p| p.into_inner());
    let Some(slot) = table.get_mut(shard) else {
        return;
    };
    if let Some(master) = h.master_addr.filter(|a| !a.is_empty()) {
        slot.master = Some(master);
    }
    let Some(addr) = h.ha_server_addr.filter(|a| !a.is_empty()) else {
        return;
    };
    if slot.ha.as_deref() != Some(addr.as_str()) {
        tracing::info!(shard, master_ha = %addr, "master HA address from the name server");
        slot.ha = Some(addr);
    }
}
