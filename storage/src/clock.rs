//! The clock seam: store timestamps (STORETIMESTAMP, segment time bounds) and retention read
//! wall time through a [`Clock`], so that a test or the simulation can drive time itself.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Wall time in ms since the epoch (cheap to clone).
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<AtomicI64>),
}

impl Default for Clock {
    fn default() -> Self {
        Clock(Source::System)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock(system)"),
            Source::Manual(t) => write!(f, "Clock(manual {})", t.load(Ordering::Relaxed)),
        }
    }
}

impl Clock {
    /// A clock that reads `time` (ms since the epoch): whoever holds it moves time.
    pub fn manual(time: Arc<AtomicI64>) -> Clock {
        Clock(Source::Manual(time))
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            Source::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}
