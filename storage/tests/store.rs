//! Store integration tests, on the ext4 disk under target/tmp.

mod common;

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use protocol::message::{decode_all, tag_hash, StoredMessage, BLANK_MAGIC};
use storage::{FlushMode, GetStatus, Store};

fn decode(records: &[Bytes]) -> Vec<StoredMessage> {
    records
        .iter()
        .map(|r| StoredMessage::decode(r).unwrap().0)
        .collect()
}

#[test]
fn append_and_read_back() {
    let dir = test_dir("append");
    run(move || async move {
        let store = Store::open(small_config(dir.clone(), FlushMode::Async))
            .await
            .unwrap();
        for i in 0..50 {
            let m = msg(
                "T",
                i % 2,
                format!("body-{i}").as_bytes(),
                "A",
                "",
                &format!("U{i}"),
            );
            let r = store.append(&[m]).unwrap();
            assert_eq!(r.records[0].queue_offset, (i / 2) as i64);
        }
        assert_eq!(store.max_offset("T", 0), 25);
        assert_eq!(store.max_offset("T", 1), 25);
        let g = store.get_messages("T", 0, 0, 10, 1 << 20, |_| true).await;
        assert_eq!(g.status, GetStatus::Found);
        assert_eq!(g.next_begin_offset, 10);
        let ms = decode(&g.records);
        for (k, m) in ms.iter().enumerate() {
            assert_eq!(m.queue_offset, k as i64);
            assert_eq!(m.body, format!("body-{}", 2 * k).as_bytes());
            assert_eq!(m.store_host, host());
        }
        let g = store.get_messages("T", 0, 25, 10, 1 << 20, |_| true).await;
        assert_eq!(g.status, GetStatus::OffsetOverflowOne);
        let g = store.get_messages("T", 0, 30, 10, 1 << 20, |_| true).await;
        assert_eq!(g.status, GetStatus::OffsetOverflowBadly);
        let g = store
            .get_messages("nope", 0, 0, 10, 1 << 20, |_| true)
            .await;
        assert_eq!(g.status, GetStatus::NoMatchedLogicQueue);
        // max_bytes bounds the batch, but at least one record is returned.
        let g = store.get_messages("T", 1, 0, 10, 10, |_| true).await;
        assert_eq!(g.records.len(), 1);
        store.close().await.unwrap();

        // Reopen: everything is there, read from disk this time.
        let store = Store::open(small_config(dir.clone(), FlushMode::Async))
            .await
            .unwrap();
        assert_eq!(store.max_offset("T", 1), 25);
        let g = store.get_messages("T", 1, 0, 100, 1 << 20, |_| true).await;
        let ms = decode(&g.records);
        assert_eq!(ms.len(), 25);
        assert_eq!(ms[24].body, &b"body-49"[..]);
        store.close().await.unwrap();
    });
}

#[test]
fn tag_filtering() {
    let dir = test_dir("tags");
    run(move || async move {
        let store = Store::open(small_config(dir, FlushMode::Async))
            .await
            .unwrap();
        for i in 0..30 {
            let tag = ["TagA", "TagB", ""][i % 3];
            store
                .append(&[msg("T", 0, b"x", tag, "", &format!("U{i}"))])
                .unwrap();
        }
        let want = tag_hash("TagA");
        let g = store
            .get_messages("T", 0, 0, 100, 1 << 20, |t| t == want)
            .await;
        assert_eq!(g.records.len(), 10);
        assert_eq!(g.next_begin_offset, 30);
        for m in decode(&g.records) {
            assert_eq!(m.property("TAGS"), Some("TagA"));
        }
        let g = store.get_messages("T", 0, 0, 100, 1 << 20, |_| false).await;
        assert_eq!(g.status, GetStatus::NoMatchedMessage);
        assert_eq!(g.next_begin_offset, 30);
        store.close().await.unwrap();
    });
}

#[test]
fn segment_roll_alignment_and_tail_rewrite() {
    let dir = test_dir("roll");
    run(move || async move {
        let cfg = small_config(dir.clone(), FlushMode::Sync);
        let seg = cfg.segment_size;
        let store = Store::open(cfg.clone()).await.unwrap();
        // One small record, flushed: it sits in a partial block.
        let r1 = store
            .append(&[msg("T", 0, b"first", "", "", "U0")])
            .unwrap();
        store.wait_durable(r1.end_offset).await.unwrap();
        // A second one lands in the same block: the block is rewritten with both.
        let r2 = store
            .append(&[msg("T", 0, b"second", "", "", "U1")])
            .unwrap();
        store.wait_durable(r2.end_offset).await.unwrap();
        let seg0 = dir.join("commitlog").join(format!("{:020}", 0));
        let raw = std::fs::read(&seg0).unwrap();
        assert_eq!(raw.len() as u64, seg, "segments are created at full size");
        let end = r2.end_offset as usize;
        let on_disk = decode_all(Bytes::copy_from_slice(&raw[..end])).unwrap();
        assert_eq!(on_disk.len(), 2);
        assert_eq!(on_disk[1].body, &b"second"[..]);
        assert!(
            raw[end..4096].iter().all(|&b| b == 0),
            "the partial block is zero-padded"
        );

        // Fill past the first segment with 10 KiB records.
        let body = vec![7u8; 10 * 1024];
        let mut last = None;
        for i in 0..40 {
            let r = store
                .append(&[msg("T", 0, &body, "", "", &format!("V{i}"))])
                .unwrap();
            last = Some(r);
        }
        let last = last.unwrap();
        store.wait_durable(last.end_offset).await.unwrap();
        assert!(last.end_offset > seg);
        let raw = std::fs::read(&seg0).unwrap();
        // Records, then a blank marker whose size runs to the end of the segment.
        let mut p = 0usize;
        loop {
            let total = u32::from_be_bytes(raw[p..p + 4].try_into().unwrap()) as usize;
            let magic = u32::from_be_bytes(raw[p + 4..p + 8].try_into().unwrap());
            if magic == BLANK_MAGIC {
                assert_eq!(p + total, seg as usize);
                break;
            }
            p += total;
        }
        let seg1 = dir.join("commitlog").join(format!("{:020}", seg));
        assert_eq!(std::fs::metadata(&seg1).unwrap().len(), seg);
        // Every record reads back, across the roll, from memory and from disk.
        let g = store.get_messages("T", 0, 0, 100, 16 << 20, |_| true).await;
        assert_eq!(g.records.len(), 42);
        store.close().await.unwrap();
        let store = Store::open(cfg).await.unwrap();
        let g = store.get_messages("T", 0, 0, 100, 16 << 20, |_| true).await;
        let ms = decode(&g.records);
        assert_eq!(ms.len(), 42);
        for (i, m) in ms.iter().enumerate() {
            assert_eq!(m.queue_offset, i as i64);
        }
        assert!(ms.iter().any(|m| m.phys_offset as u64 >= seg));
        store.close().await.unwrap();
    });
}

#[test]
fn sync_flush_visibility() {
    let dir = test_dir("visibility");
    run(move || async move {
        let store = Rc::new(
            Store::open(small_config(dir, FlushMode::Sync))
                .await
                .unwrap(),
        );
        let r = store.append(&[msg("T", 0, b"x", "", "", "U")]).unwrap();
        // Not durable yet: readers do not see it.
        assert_eq!(store.max_offset("T", 0), 0);
        assert!(store.read_record(0).await.is_err());
        let waiter = store.wait_for_append("T", 0);
        store.wait_durable(r.end_offset).await.unwrap();
        waiter.await;
        assert_eq!(store.max_offset("T", 0), 1);
        assert!(store.read_record(0).await.is_ok());
        // Many appends in flight share flushes.
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            tasks.push(glommio::spawn_local(async move {
                let r = s
                    .append(&[msg("T", 1, b"y", "", "", &format!("W{i}"))])
                    .unwrap();
                s.wait_durable(r.end_offset).await.unwrap();
            }));
        }
        for t in tasks {
            t.await;
        }
        assert_eq!(store.max_offset("T", 1), 200);
        Rc::try_unwrap(store).ok().unwrap().close().await.unwrap();
    });
}

/// Records read by known offset and size (the timer engine's index): from disk (well past the
/// hot tail) and memory, across a segment roll, in the order asked, verified; bad offsets and
/// sizes are errors in their place, not panics, and do not disturb the others.
#[test]
fn read_records_by_offset_and_size() {
    let dir = test_dir("read-records");
    run(move || async move {
        let store = Store::open(small_config(dir, FlushMode::Async))
            .await
            .unwrap();
        let body = vec![5u8; 3000];
        let mut recs = Vec::new();
        for i in 0..120 {
            let m = msg("T", 0, &body, "", "", &format!("U{i}"));
            recs.push(store.append(&[m]).unwrap().records[0]);
        }
        store.flush().await.unwrap();
        let mut list: Vec<(i64, u32)> = recs
            .iter()
            .map(|r| (r.phys_offset, r.size as u32))
            .collect();
        // Out of log order, as timers due in another order than sent are.
        list.swap(5, 90);
        list[30..60].reverse();
        let (p7, s7) = list[7];
        list.extend([(-1, 10), (p7 + 1, s7), (i64::MAX / 2, 100), (p7, 0)]);
        let got = store.read_records(&list).await;
        assert_eq!(got.len(), 124);
        for (i, r) in got[..120].iter().enumerate() {
            let want = match i {
                5 => 90,
                90 => 5,
                30..60 => 89 - i,
                i => i,
            };
            let m = StoredMessage::decode(r.as_ref().unwrap()).unwrap().0;
            assert_eq!(m.property("UNIQ_KEY"), Some(format!("U{want}").as_str()));
            assert_eq!(m.phys_offset, recs[want].phys_offset);
        }
        assert!(got[120..].iter().all(|r| r.is_err()), "{:?}", &got[120..]);
        store.close().await.unwrap();
    });
}

#[test]
fn lookups_by_offset_time_key_and_id() {
    let dir = test_dir("lookups");
    run(move || async move {
        let cfg = small_config(dir, FlushMode::Async);
        let store = Store::open(cfg.clone()).await.unwrap();
        let mut stamps = Vec::new();
        let body = vec![1u8; 3000];
        for i in 0..120 {
            let r = store
                .append(&[msg(
                    "T",
                    0,
                    &body,
                    "",
                    &format!("k{i} common"),
                    &format!("UNIQ{i}"),
                )])
                .unwrap();
            stamps.push(r.records[0]);
            if i % 40 == 39 {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        }
        for round in 0..2 {
            // By id (offsetMsgId → commit-log offset).
            let rec = stamps[77];
            let b = store.read_record(rec.phys_offset).await.unwrap();
            let m = StoredMessage::decode(&b).unwrap().0;
            assert_eq!(m.property("UNIQ_KEY"), Some("UNIQ77"));
            assert!(store.read_record(rec.phys_offset + 1).await.is_err());
            // By key and by unique id.
            let hits = store.query_by_key("T", "k5", 10, 0, i64::MAX).await;
            assert_eq!(hits.len(), 1, "round {round}");
            let hits = store.query_by_key("T", "UNIQ100", 10, 0, i64::MAX).await;
            assert_eq!(decode(&hits)[0].queue_offset, 100);
            let hits = store.query_by_key("T", "common", 7, 0, i64::MAX).await;
            assert_eq!(hits.len(), 7);
            assert!(store
                .query_by_key("Other", "k5", 10, 0, i64::MAX)
                .await
                .is_empty());
            assert!(store.query_by_key("T", "k5", 10, 0, 1).await.is_empty());
            // By time.
            let t40 = stamps[40].store_timestamp;
            let lower = store.offset_by_timestamp("T", 0, t40, false).await;
            assert_eq!(stamps[lower as usize].store_timestamp, t40);
            assert!(lower == 0 || stamps[lower as usize - 1].store_timestamp < t40);
            let upper = store.offset_by_timestamp("T", 0, t40, true).await;
            assert_eq!(stamps[upper as usize].store_timestamp, t40);
            assert!(upper == 119 || stamps[upper as usize + 1].store_timestamp > t40);
            assert_eq!(
                store.offset_by_timestamp("T", 0, i64::MAX, false).await,
                120
            );
            assert_eq!(store.offset_by_timestamp("T", 0, 0, true).await, 0);
            assert_eq!(
                store.earliest_store_time("T", 0).await,
                stamps[0].store_timestamp
            );
            assert_eq!(store.earliest_store_time("T", 9).await, -1);
            if round == 0 {
                // Again after a restart: sealed segments' indexes come from disk.
                store.flush().await.unwrap();
            }
        }
        store.close().await.unwrap();
        let store = Store::open(cfg).await.unwrap();
        assert_eq!(
            store
                .query_by_key("T", "common", 1000, 0, i64::MAX)
                .await
                .len(),
            120
        );
        store.close().await.unwrap();
    });
}

#[test]
fn retention_deletes_old_segments() {
    let dir = test_dir("retention");
    run(move || async move {
        let mut cfg = small_config(dir.clone(), FlushMode::Async);
        // Age alone decides here: the machine's disk may be over the default 85 % used.
        cfg.disk_max_used_ratio = 1.0;
        let seg = cfg.segment_size;
        let store = Store::open(cfg.clone()).await.unwrap();
        let body = vec![3u8; 8000];
        for i in 0..200 {
            store
                .append(&[msg("T", 0, &body, "", "", &format!("U{i}"))])
                .unwrap();
        }
        store.flush().await.unwrap();
        store.checkpoint().await.unwrap();
        let segments_before = store.commit_log_max_offset() as u64 / seg + 1;
        assert!(segments_before >= 6);
        // Nothing is old yet.
        assert_eq!(store.run_retention(protocol_now()).await.unwrap(), 0);
        // Three days later every sealed segment goes, the active one stays.
        let later = protocol_now() + 73 * 3600 * 1000;
        let n = store.run_retention(later).await.unwrap();
        assert_eq!(n as u64, segments_before - 1);
        let min = store.commit_log_min_offset() as u64;
        assert_eq!(min % seg, 0);
        assert!(min > 0);
        let qmin = store.min_offset("T", 0);
        assert!(qmin > 0);
        assert_eq!(store.max_offset("T", 0), 200);
        let g = store.get_messages("T", 0, 0, 10, 1 << 20, |_| true).await;
        assert_eq!(g.status, GetStatus::OffsetTooSmall);
        assert_eq!(g.next_begin_offset, qmin);
        let g = store
            .get_messages("T", 0, qmin, 1000, 64 << 20, |_| true)
            .await;
        assert_eq!(g.records.len() as i64, 200 - qmin);
        assert!(store.read_record(0).await.is_err());
        // New appends keep working, on recycled segments.
        for i in 0..100 {
            store
                .append(&[msg("T", 0, &body, "", "", &format!("V{i}"))])
                .unwrap();
        }
        store.close().await.unwrap();
        let store = Store::open(cfg).await.unwrap();
        assert_eq!(store.min_offset("T", 0), qmin);
        assert_eq!(store.max_offset("T", 0), 300);
        let g = store
            .get_messages("T", 0, 250, 1000, 64 << 20, |_| true)
            .await;
        assert_eq!(g.records.len(), 50);
        store.close().await.unwrap();
    });
}

/// A user of the store (the broker's timer engine) sets a floor: retention deletes only the
/// segments wholly below it, whatever their age, and resumes once the floor moves.
#[test]
fn retention_keeps_segments_from_the_floor() {
    let dir = test_dir("retention-floor");
    run(move || async move {
        let mut cfg = small_config(dir.clone(), FlushMode::Async);
        cfg.disk_max_used_ratio = 1.0;
        let seg = cfg.segment_size;
        let store = Store::open(cfg.clone()).await.unwrap();
        let body = vec![3u8; 8000];
        let mut offsets = Vec::new();
        for i in 0..200 {
            let r = store
                .append(&[msg("T", 0, &body, "", "", &format!("U{i}"))])
                .unwrap();
            offsets.push(r.records[0].phys_offset);
        }
        store.flush().await.unwrap();
        store.checkpoint().await.unwrap();
        let segments = store.commit_log_max_offset() as u64 / seg + 1;
        let floor = offsets[100] as u64;
        store.set_retention_floor(floor);
        let later = protocol_now() + 73 * 3600 * 1000;
        let n = store.run_retention(later).await.unwrap() as u64;
        assert_eq!(n, floor / seg, "only the segments below the floor's go");
        assert!(store.read_record(offsets[100]).await.is_ok());
        assert!(store.commit_log_min_offset() as u64 <= floor);
        store.set_retention_floor(u64::MAX);
        let more = store.run_retention(later).await.unwrap() as u64;
        assert_eq!(n + more, segments - 1);
        store.close().await.unwrap();
    });
}

fn protocol_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Cold reads of interleaved queues through the read-ahead cache: records of several queues
/// share spans, spans straddle cache extents, the cache is tiny (evictions), pulls of different
/// sizes, concurrent pulls of all queues, and several segments.
#[test]
fn cold_reads_of_interleaved_queues() {
    let dir = test_dir("cold-interleaved");
    run(move || async move {
        let store = Store::open(small_config(dir.clone(), FlushMode::Async))
            .await
            .unwrap();
        let queues = 3;
        let n = 1200;
        for i in 0..n {
            // Sizes vary, so records straddle blocks and extents at arbitrary places; runs of
            // one queue alternate with interleaved records.
            let q = if (i / 40) % 2 == 0 {
                i % queues
            } else {
                (i / 7) % queues
            };
            let body = vec![b'a' + (i % 26) as u8; 100 + (i * 37) % 900];
            let m = msg("T", q as i32, &body, "A", "", &format!("U{i}"));
            store.append(&[m]).unwrap();
        }
        store.close().await.unwrap();
        for (chunk, cache, batch) in [(4096, 8192, 7), (8192, 64 << 10, 32), (4096, 4 << 20, 256)] {
            let mut c = small_config(dir.clone(), FlushMode::Async);
            c.read_chunk_bytes = chunk;
            c.read_cache_bytes = cache;
            let store = Rc::new(Store::open(c).await.unwrap());
            let mut tasks = Vec::new();
            for q in 0..queues as i32 {
                let store = store.clone();
                tasks.push(glommio::spawn_local(async move {
                    let max = store.max_offset("T", q);
                    let mut off = 0;
                    let mut got = Vec::new();
                    while off < max {
                        let g = store
                            .get_messages("T", q, off, batch, 16 << 20, |_| true)
                            .await;
                        assert_eq!(g.status, GetStatus::Found);
                        got.extend(decode(&g.records));
                        off = g.next_begin_offset;
                    }
                    (max, got)
                }));
            }
            let mut total = 0;
            for t in tasks {
                let (max, got) = t.await;
                assert_eq!(got.len() as i64, max);
                for (k, m) in got.iter().enumerate() {
                    assert_eq!(m.queue_offset, k as i64);
                    let uniq =
                        protocol::message::property_value(&m.properties, "UNIQ_KEY").unwrap();
                    let i: usize = uniq[1..].parse().unwrap();
                    assert_eq!(m.body.len(), 100 + (i * 37) % 900);
                    assert!(m.body.iter().all(|b| *b == b'a' + (i % 26) as u8));
                }
                total += got.len();
            }
            assert_eq!(total, n);
            Rc::try_unwrap(store).ok().unwrap().close().await.unwrap();
        }
    });
}
