//! Transactional messages: one shard's book of half messages and decisions.
//!
//! A half message (a send whose TRAN_MSG property is `true`) is stored in
//! `RMQ_SYS_TRANS_HALF_TOPIC` queue 0, dispatched like any record (so consumers of the real
//! topic never see it) with the properties REAL_TOPIC, REAL_QID, `__transactionId__` and PGROUP.
//! A decision (END_TRANSACTION commit or rollback, or the discard after the last check) is a
//! record of its own in `RMQ_SYS_TRANS_OP_HALF_TOPIC` queue 0: tag `d`, body the half message's
//! queue offset in decimal. A commit appends the real message and its op record in one append,
//! the real message first. Both queues are ordinary records of the commit log, so whatever
//! carries the log (recovery, replication) carries them; a check never re-writes a half message.
//!
//! This module holds the in-memory state rebuilt from those queues ([`TxBook`]) and the pure
//! helpers; the handler of END_TRANSACTION and the check loop that drives it live in
//! `handlers::transaction` (they need the shard).
//!
//! **Progress.** `P`: every half message below queue offset `P` is decided. `O`: every op record
//! below op-queue offset `O` decides a half message below `P`. Both are kept as the consumer
//! offsets of group `CID_RMQ_SYS_TRANS` (RocketMQ's name) on the two topics, written only after
//! the records they summarise are durable. A restart reads the op queue from `O` and the half
//! queue from `P`; check counts live in memory and start again at zero after a restart.

use std::collections::BTreeMap;
use std::time::Duration;

pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The group whose offsets on the half and op topics hold `P` and `O`.
pub const PROGRESS_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// The tag of an op record ("delete" in RocketMQ's words).
pub const OP_TAG: &str = "d";

/// RocketMQ's transaction settings (broker.conf: transactionTimeOut, transactionCheckInterval,
/// transactionCheckMax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxConfig {
    /// A half message younger than this (broker time) is not checked.
    pub timeout: Duration,
    /// Time between two check rounds.
    pub interval: Duration,
    /// Checks before the half message goes to TRANS_CHECK_MAX_TIME_TOPIC.
    pub max_checks: u32,
}

impl Default for TxConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(6),
            interval: Duration::from_secs(30),
            max_checks: 15,
        }
    }
}

/// An undecided half message, as the check loop knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub phys_offset: i64,
    /// Broker time the half message was stored (ms).
    pub store_ts: i64,
    /// Age (ms) before the first check: CHECK_IMMUNITY_TIME_IN_SECONDS, else the timeout.
    pub first_check_ms: i64,
    pub checks: u32,
}

/// What a pending half message needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Wait,
    Check,
    Discard,
}

impl Pending {
    pub fn due(&self, now_ms: i64, max_checks: u32) -> Due {
        if now_ms.saturating_sub(self.store_ts) < self.first_check_ms {
            Due::Wait
        } else if self.checks >= max_checks {
            Due::Discard
        } else {
            Due::Check
        }
    }
}

/// A decision in flight has no op offset yet.
const IN_FLIGHT: i64 = i64::MAX;

/// Why a decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("the half message at queue offset {0} is already decided (committed, rolled back or discarded)")]
    AlreadyDecided(i64),
}

/// One shard's transactions: the undecided half messages and the recent decisions.
#[derive(Debug, Default)]
pub struct TxBook {
    /// The next half-queue offset the scanner reads.
    read_to: i64,
    /// Half messages read and undecided, by half-queue offset.
    pending: BTreeMap<i64, Pending>,
    /// Decisions for half messages at or above the low watermark: half offset → op offset.
    decided: BTreeMap<i64, i64>,
    /// The op queue and the half queue have been replayed since the start.
    pub loaded: bool,
}

impl TxBook {
    /// A book whose scanner starts at half-queue offset `from` (the persisted `P`).
    pub fn starting_at(from: i64) -> Self {
        Self {
            read_to: from,
            ..Self::default()
        }
    }

    pub fn read_to(&self) -> i64 {
        self.read_to
    }

    /// Moves the scanner past half messages decided before it read them (a commit that came
    /// within the check interval, the usual case): they need no reading. Stops at a decision
    /// still in flight, which may yet fail.
    pub fn skip_decided(&mut self) {
        while self
            .decided
            .get(&self.read_to)
            .is_some_and(|op| *op != IN_FLIGHT)
        {
            self.read_to += 1;
        }
        self.prune();
    }

    /// The half queue's head was removed by retention: nothing below `offset` can be read.
    pub fn skip_to(&mut self, offset: i64) {
        self.read_to = self.read_to.max(offset);
        self.prune();
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// `P`: every half message below it is decided.
    pub fn low_watermark(&self) -> i64 {
        self.pending
            .keys()
            .next()
            .copied()
            .unwrap_or(self.read_to)
            .min(self.read_to)
    }

    /// `O` given the op queue's current end: the oldest op record still needed.
    pub fn op_low_watermark(&self, op_end: i64) -> i64 {
        self.decided
            .values()
            .copied()
            .filter(|o| *o != IN_FLIGHT)
            .min()
            .unwrap_or(op_end)
            .min(op_end)
    }

    /// An op record read from the op queue (replay at start).
    pub fn on_op(&mut self, half_offset: i64, op_offset: i64) {
        if half_offset >= self.low_watermark() {
            self.decided.insert(half_offset, op_offset);
            self.pending.remove(&half_offset);
        }
    }

    /// A half message read by the scanner; false when it is already decided.
    pub fn on_half(&mut self, offset: i64, pending: Pending) -> bool {
        let known = self.decided.contains_key(&offset) || offset < self.low_watermark();
        self.read_to = self.read_to.max(offset + 1);
        if known {
            self.prune();
            return false;
        }
        self.pending.insert(offset, pending);
        true
    }

    /// Marks the half message at `offset` as being decided; refused when it already is (or a
    /// decision for it is in flight). Returns its pending entry, for [`TxBook::abort`].
    pub fn begin(&mut self, offset: i64) -> Result<Option<Pending>, DecisionError> {
        let below = offset < self.read_to && !self.pending.contains_key(&offset);
        if below || self.decided.contains_key(&offset) {
            return Err(DecisionError::AlreadyDecided(offset));
        }
        self.decided.insert(offset, IN_FLIGHT);
        Ok(self.pending.remove(&offset))
    }

    /// The decision's op record is stored at `op_offset`.
    pub fn finish(&mut self, offset: i64, op_offset: i64) {
        self.decided.insert(offset, op_offset);
        self.prune();
    }

    /// The decision failed (nothing stored): the half message is undecided again.
    pub fn abort(&mut self, offset: i64, pending: Option<Pending>) {
        self.decided.remove(&offset);
        if let Some(p) = pending {
            self.pending.insert(offset, p);
        }
    }

    /// The pending half messages, oldest first (offset, entry).
    pub fn pending(&self) -> impl Iterator<Item = (i64, &Pending)> {
        self.pending.iter().map(|(k, v)| (*k, v))
    }

    pub fn count_check(&mut self, offset: i64) {
        if let Some(p) = self.pending.get_mut(&offset) {
            p.checks += 1;
        }
    }

    /// Forgets decisions below the low watermark (every offset there is decided).
    fn prune(&mut self) {
        let low = self.low_watermark();
        while let Some((&k, &v)) = self.decided.first_key_value() {
            if k >= low || v == IN_FLIGHT {
                break;
            }
            self.decided.pop_first();
        }
    }
}

/// The age before a half message's first check: its CHECK_IMMUNITY_TIME_IN_SECONDS when that is
/// a positive number of seconds, else the configured timeout.
pub fn first_check_ms(immunity_seconds: Option<&str>, timeout: Duration) -> i64 {
    immunity_seconds
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map(|s| s.saturating_mul(1000))
        .unwrap_or(timeout.as_millis() as i64)
}

/// The half-queue offset an op record's body names.
pub fn parse_op_body(body: &[u8]) -> Option<i64> {
    std::str::from_utf8(body)
        .ok()?
        .trim()
        .trim_end_matches(',')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(store_ts: i64) -> Pending {
        Pending {
            phys_offset: store_ts * 10,
            store_ts,
            first_check_ms: 1000,
            checks: 0,
        }
    }

    #[test]
    fn a_half_message_is_decided_once() {
        let mut b = TxBook::default();
        assert!(b.on_half(0, p(0)));
        assert_eq!(b.low_watermark(), 0, "an undecided half message holds P");
        assert!(b.on_half(1, p(1)));
        assert_eq!(b.begin(0).unwrap(), Some(p(0)));
        assert_eq!(b.begin(0), Err(DecisionError::AlreadyDecided(0)));
        b.finish(0, 7);
        assert_eq!(b.begin(0), Err(DecisionError::AlreadyDecided(0)));
        assert_eq!(b.low_watermark(), 1);
        // A decision before the scanner read the half message.
        assert_eq!(b.begin(5).unwrap(), None);
        b.finish(5, 8);
        assert!(!b.on_half(5, p(5)), "decided before it was read");
        assert_eq!(b.begin(5), Err(DecisionError::AlreadyDecided(5)));
        assert_eq!(b.pending_len(), 1);
        assert_eq!(b.op_low_watermark(100), 8);
    }

    #[test]
    fn an_aborted_decision_leaves_the_half_message_pending() {
        let mut b = TxBook::default();
        b.on_half(0, p(0));
        let taken = b.begin(0).unwrap();
        assert_eq!(b.op_low_watermark(3), 3, "in flight has no op offset");
        b.abort(0, taken);
        assert_eq!(b.pending().count(), 1);
        assert!(b.begin(0).is_ok());
    }

    #[test]
    fn watermarks_follow_the_oldest_undecided() {
        let mut b = TxBook::starting_at(10);
        assert_eq!(b.low_watermark(), 10);
        b.on_op(9, 0); // below P: forgotten
        b.on_op(12, 1);
        assert_eq!(b.op_low_watermark(5), 1);
        b.on_half(10, p(10));
        b.on_half(11, p(11));
        assert!(!b.on_half(12, p(12)));
        assert_eq!(b.read_to(), 13);
        assert_eq!(b.low_watermark(), 10);
        b.begin(10).unwrap();
        b.finish(10, 2);
        b.begin(11).unwrap();
        b.finish(11, 3);
        assert_eq!(b.low_watermark(), 13);
        assert_eq!(
            b.op_low_watermark(4),
            4,
            "every decision below P is forgotten"
        );
        assert_eq!(b.begin(12), Err(DecisionError::AlreadyDecided(12)));
    }

    #[test]
    fn decided_half_messages_are_skipped_unread() {
        let mut b = TxBook::default();
        for q in 0..3 {
            b.begin(q).unwrap();
        }
        b.finish(0, 0);
        b.finish(1, 1);
        b.begin(4).unwrap();
        b.finish(4, 2);
        b.skip_decided();
        assert_eq!(b.read_to(), 2, "2 is in flight");
        b.finish(2, 3);
        b.skip_decided();
        assert_eq!(b.read_to(), 3, "3 is not decided");
        assert!(b.on_half(3, p(3)));
        b.skip_decided();
        assert_eq!(b.read_to(), 5);
        assert_eq!(b.low_watermark(), 3);
        assert_eq!(b.begin(4), Err(DecisionError::AlreadyDecided(4)));
        assert_eq!(b.begin(1), Err(DecisionError::AlreadyDecided(1)));
    }

    #[test]
    fn due_honours_immunity_and_the_maximum() {
        let t = Duration::from_secs(6);
        assert_eq!(first_check_ms(None, t), 6000);
        assert_eq!(first_check_ms(Some("20"), t), 20_000);
        assert_eq!(first_check_ms(Some("x"), t), 6000);
        assert_eq!(first_check_ms(Some("-1"), t), 6000);
        let mut e = p(1000);
        assert_eq!(e.due(1500, 3), Due::Wait);
        assert_eq!(e.due(2000, 3), Due::Check);
        e.checks = 3;
        assert_eq!(e.due(2000, 3), Due::Discard);
        assert_eq!(parse_op_body(b"42,"), Some(42));
        assert_eq!(parse_op_body(b"x"), None);
    }
}
