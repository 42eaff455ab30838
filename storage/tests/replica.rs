//! Replication at the store level: a master's raw commit log, shipped in arbitrary cuts,
//! appended verbatim by a replica, gives the same bytes, queues, index and recovery.

mod common;

use common::*;
use protocol::message::StoredMessage;
use storage::{FlushMode, Store, StoreError};

/// Ships everything the master has to the replica, in frames of at most `frame` bytes cut
/// anywhere (as the HA protocol does), keeping the slave's partial-record buffer.
async fn ship(master: &Store, replica: &Store, frame: usize) -> usize {
    let mut cursor = replica.write_end();
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_off = cursor;
    let mut frames = 0;
    loop {
        let (at, data) = master.read_raw(cursor, frame).await.unwrap();
        if data.is_empty() {
            break;
        }
        frames += 1;
        if at != buf_off + buf.len() as u64 {
            assert!(buf_off + buf.len() as u64 <= replica.write_end() || buf.is_empty());
            buf.clear();
            buf_off = at;
        }
        buf.extend_from_slice(&data);
        cursor = at + data.len() as u64;
        let r = replica.append_replica(buf_off, &buf).unwrap();
        buf.drain(..r.used);
        buf_off += r.used as u64;
    }
    assert!(buf.is_empty() || buf_off < replica.write_end());
    frames
}

fn records(n: usize, from: usize) -> Vec<storage::MessageToStore> {
    (from..from + n)
        .map(|i| {
            let body = vec![b'a' + (i % 26) as u8; 100 + (i * 37) % 3000];
            msg(
                "R",
                (i % 3) as i32,
                &body,
                "T",
                &format!("k{i}"),
                &format!("U{i}"),
            )
        })
        .collect()
}

#[test]
fn replica_gets_every_byte_and_queue() {
    let (mdir, rdir) = (test_dir("repl-master"), test_dir("repl-replica"));
    run(move || async move {
        let master = Store::open(small_config(mdir.clone(), FlushMode::Async))
            .await
            .unwrap();
        let replica = Store::open(small_config(rdir.clone(), FlushMode::Sync))
            .await
            .unwrap();
        // Several segments of 256 KiB: blank markers, rolls, cold reads below the hot tail.
        for chunk in records(600, 0).chunks(7) {
            master.append(chunk).unwrap();
        }
        master.flush().await.unwrap();
        let frames = ship(&master, &replica, 5000).await;
        assert!(frames > 100, "{frames} frames");
        assert_eq!(replica.write_end(), master.write_end());
        // More, shipped in one large cut each time.
        for chunk in records(200, 600).chunks(50) {
            master.append(chunk).unwrap();
            ship(&master, &replica, 1 << 20).await;
        }
        assert_eq!(replica.write_end(), master.write_end());
        replica.flush().await.unwrap();
        compare(&master, &replica).await;
        let q = replica.query_by_key("R", "k777", 10, 0, i64::MAX).await;
        assert_eq!(q.len(), 1, "index built on the replica");
        // A replica already past the master refuses bytes at another offset.
        let e = replica.append_replica(0, b"\0\0\0\0\0\0\0\0").unwrap_err();
        assert!(matches!(e, StoreError::Diverged { .. }), "{e}");
        replica.close().await.unwrap();
        // Recovery of the replica finds the same log and queues.
        let replica = Store::open(small_config(rdir, FlushMode::Sync))
            .await
            .unwrap();
        assert_eq!(replica.write_end(), master.write_end());
        compare(&master, &replica).await;
        replica.close().await.unwrap();
        master.close().await.unwrap();
    });
}

async fn compare(master: &Store, replica: &Store) {
    assert_eq!(master.queues(), replica.queues());
    for q in 0..3 {
        let n = master.max_offset("R", q);
        let a = master
            .get_messages("R", q, 0, n as usize, 1 << 30, |_| true)
            .await;
        let b = replica
            .get_messages("R", q, 0, n as usize, 1 << 30, |_| true)
            .await;
        assert_eq!(a.records.len() as i64, n);
        assert_eq!(a.records, b.records, "queue {q}: same bytes");
        let last = StoredMessage::decode(&b.records[b.records.len() - 1])
            .unwrap()
            .0;
        assert_eq!(last.queue_offset, n - 1);
    }
}

#[test]
fn replica_refuses_a_corrupt_record() {
    let (mdir, rdir) = (test_dir("repl-m2"), test_dir("repl-r2"));
    run(move || async move {
        let master = Store::open(small_config(mdir, FlushMode::Async))
            .await
            .unwrap();
        let replica = Store::open(small_config(rdir, FlushMode::Async))
            .await
            .unwrap();
        master.append(&records(3, 0)).unwrap();
        let (at, data) = master.read_raw(0, 1 << 20).await.unwrap();
        assert_eq!(at, 0);
        let mut bad = data.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let r = replica.append_replica(0, &bad).unwrap();
        assert!(r.used > 0 && r.used < bad.len(), "good records placed");
        let e = replica
            .append_replica(r.used as u64, &bad[r.used..])
            .unwrap_err();
        assert!(matches!(e, StoreError::Diverged { .. }), "{e}");
        assert_eq!(replica.write_end(), r.used as u64);
        assert_eq!(replica.max_offset("R", 2), 0);
        replica.close().await.unwrap();
        master.close().await.unwrap();
    });
}
