//! Disk faults injected into a running broker, for tests that drive it with real clients
//! (issue 12: a failed fdatasync and a full disk, seen through the broker).
//!
//! Honoured only in builds with debug assertions (the suite's `test-opt` profile and debug
//! builds); a release broker ignores it. With `SATURN_TEST_FAULTS=<file>` in the environment,
//! every shard opens its store on a [`storage::fault::FaultDisk`] over the real disk (removed
//! files kept in `<file>-attic-<shard>`, beside the file, so on the same file system) and reads
//! `<file>` every 100 ms. When its content changes, the shard applies it, one order a line, and
//! then writes the content to `<file>.<shard>.applied` so that the test knows it holds:
//!
//! ```text
//! sync-eio        every later fdatasync fails with EIO (the store turns read-only)
//! write-enospc    every later write fails with ENOSPC (the disk is full)
//! free <bytes>    the file system reports this many bytes free (against diskMinFreeBytes)
//! clear           no faults; the real free space again
//! ```
//!
//! The orders act on the store's device only; the broker's JSON metadata uses the real disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use storage::fault::{FaultDisk, FaultOp};

/// The environment variable naming the control file.
pub const ENV: &str = "SATURN_TEST_FAULTS";

/// The device for shard `shard`'s store when fault injection is on (and the watcher of the
/// control file started on the calling executor); `None` otherwise.
pub fn disk_for_shard(shard: usize) -> Option<storage::io::Disk> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let control = PathBuf::from(std::env::var_os(ENV)?);
    let attic = sibling(&control, &format!("-attic-{shard}"));
    let fault = match FaultDisk::new(shard as u64 + 1, &attic) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(shard, error = %e, "{ENV}: cannot create {}", attic.display());
            return None;
        }
    };
    tracing::warn!(shard, control = %control.display(), "test fault injection is on");
    let disk = fault.disk();
    glommio::spawn_local(watch(fault, control, shard)).detach();
    Some(disk)
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Applies the control file's content each time it changes; runs as long as the process.
async fn watch(fault: FaultDisk, control: PathBuf, shard: usize) {
    let ack = sibling(&control, &format!(".{shard}.applied"));
    let mut applied: Option<String> = None;
    loop {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        // A few bytes from the page cache: read on the reactor (test builds only).
        let Ok(text) = std::fs::read_to_string(&control) else {
            continue;
        };
        if applied.as_deref() == Some(text.as_str()) {
            continue;
        }
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match apply(&fault, line) {
                Ok(()) => tracing::warn!(shard, order = line, "test fault applied"),
                Err(e) => tracing::error!(shard, order = line, "{ENV}: {e}"),
            }
        }
        if let Err(e) = std::fs::write(&ack, &text) {
            tracing::error!(shard, error = %e, "{ENV}: cannot write {}", ack.display());
        }
        applied = Some(text);
    }
}

/// One order of the control file.
fn apply(fault: &FaultDisk, order: &str) -> Result<(), String> {
    let mut words = order.split_whitespace();
    match (words.next(), words.next()) {
        (Some("sync-eio"), None) => fault.fail(FaultOp::Sync, 1, libc::EIO, true),
        (Some("write-enospc"), None) => fault.fail(FaultOp::Write, 1, libc::ENOSPC, true),
        (Some("free"), Some(n)) => {
            let n = n
                .parse()
                .map_err(|_| format!("free {n}: not a byte count"))?;
            fault.set_free_bytes(Some(n));
        }
        (Some("clear"), None) => {
            fault.clear_faults();
            fault.set_free_bytes(None);
        }
        _ => return Err(format!("unknown order {order:?}")),
    }
    Ok(())
}
