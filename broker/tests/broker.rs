//! The `saturn-broker standalone` binary with two shards, over real TCP,
//! driven with the protocol crate.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use protocol::body::{
    decode_json, GetConsumerListByGroupResponseBody, TopicConfigSerializeWrapper,
};
use protocol::message::{self, decode_offset_msg_id};
use protocol::{RemotingCommand, RequestCode, ResponseCode};

#[test]
fn produce_pull_offsets_and_routes_across_two_shards() {
    let broker = Broker::start("produce-pull", &[]);
    assert_eq!(broker.shards.len(), 2);
    let mut s0 = broker.client(&broker.shards[0]);
    let mut s1 = broker.client(&broker.shards[1]);
    create_topic(&mut s0, "Orders", 4);
    let route = broker.wait_route("Orders", 2);
    let mut names: Vec<_> = route
        .broker_datas
        .iter()
        .map(|b| b.broker_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, vec!["saturn-0", "saturn-1"]);
    for q in &route.queue_datas {
        assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm), (4, 4, 6));
    }
    // Every shard has the topic, though it was created through shard 0.
    let resp = s1
        .invoke(RemotingCommand::request(
            RequestCode::GET_ALL_TOPIC_CONFIG,
            0,
        ))
        .unwrap();
    let topics: TopicConfigSerializeWrapper = decode_json(&resp.body).unwrap();
    assert_eq!(topics.topic_config_table["Orders"].write_queue_nums, 4);

    // Send to both shards, every queue, with tags, keys and a user property.
    let mut sent = Vec::new();
    for i in 0..200 {
        let client = if i % 2 == 0 { &mut s0 } else { &mut s1 };
        let tag = if i % 3 == 0 { "TagA" } else { "TagB" };
        let key = format!("key-{i}");
        let body = format!("body-{i}");
        let s = send_ok(
            client,
            "Orders",
            (i / 2) % 4,
            body.as_bytes(),
            &[("TAGS", tag), ("KEYS", &key), ("color", "blue")],
        );
        let (host, _offset) = decode_offset_msg_id(&s.msg_id).unwrap();
        let shard = if i % 2 == 0 {
            &broker.shards[0]
        } else {
            &broker.shards[1]
        };
        assert_eq!(
            host.to_string(),
            *shard,
            "msgId names the shard that stored it"
        );
        sent.push((i, s));
    }
    // Queue offsets are dense per (shard, queue).
    for (i, s) in &sent {
        assert_eq!(s.queue_id, (i / 2) % 4);
        assert_eq!(s.queue_offset, (*i as i64 / 8));
    }

    // Pull everything back from each shard: bodies, tags, keys, properties intact.
    let mut got = 0;
    for (shard_idx, client) in [(0, &mut s0), (1, &mut s1)] {
        for q in 0..4 {
            let (code, msgs, next) = pull(client, "g1", "Orders", q, 0, 100, "*", 0);
            assert_eq!(code, 0);
            assert_eq!(msgs.len(), 25);
            assert_eq!(next, 25);
            for (n, m) in msgs.iter().enumerate() {
                let i = (n as i32 * 4 + q) * 2 + shard_idx;
                assert_eq!(m.topic, "Orders");
                assert_eq!(m.queue_id, q);
                assert_eq!(m.queue_offset, n as i64);
                assert_eq!(&m.body[..], format!("body-{i}").as_bytes());
                assert_eq!(m.property("KEYS"), Some(format!("key-{i}").as_str()));
                assert_eq!(m.property("color"), Some("blue"));
                assert!(m.property("UNIQ_KEY").is_some(), "broker fills UNIQ_KEY");
                assert_eq!(m.property("CLUSTER"), Some("DefaultCluster"));
                got += 1;
            }
            // Tag filtering on the broker.
            let (code, msgs, _) = pull(client, "g2", "Orders", q, 0, 100, "TagA", 0);
            assert_eq!(code, 0);
            assert!(msgs.iter().all(|m| m.property("TAGS") == Some("TagA")));
            // Caught up: PULL_NOT_FOUND; beyond the end: OFFSET_MOVED, corrected
            // (as RocketMQ does) to the min offset while the queue still starts at 0.
            let (code, _, next) = pull(client, "g1", "Orders", q, 25, 100, "*", 0);
            assert_eq!((code, next), (ResponseCode::PULL_NOT_FOUND.num(), 25));
            let (code, _, next) = pull(client, "g1", "Orders", q, 99, 100, "*", 0);
            assert_eq!((code, next), (ResponseCode::PULL_OFFSET_MOVED.num(), 0));
        }
    }
    assert_eq!(got, 200);

    // Long polling: a parked pull is answered by the next append.
    let started = Instant::now();
    let waiter = {
        let addr = broker.shards[1].clone();
        std::thread::spawn(move || {
            let mut c =
                namesrv::client::BlockingClient::connect(&addr, Duration::from_secs(30)).unwrap();
            pull(&mut c, "g1", "Orders", 3, 25, 10, "*", 10_000)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    send_ok(&mut s1, "Orders", 3, b"late", &[("TAGS", "TagA")]);
    let (code, msgs, next) = waiter.join().unwrap();
    assert_eq!(code, 0);
    assert_eq!(&msgs[0].body[..], b"late");
    assert_eq!(next, 26);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "long poll answered by the append"
    );
    // And an idle one times out with PULL_NOT_FOUND.
    let started = Instant::now();
    let (code, _, _) = pull(&mut s0, "g1", "Orders", 0, 25, 10, "*", 500);
    assert_eq!(code, ResponseCode::PULL_NOT_FOUND.num());
    assert!(started.elapsed() >= Duration::from_millis(450));

    // Consumer offsets.
    let commit = RemotingCommand::request(RequestCode::UPDATE_CONSUMER_OFFSET, 0)
        .with_ext("consumerGroup", "g1")
        .with_ext("topic", "Orders")
        .with_ext("queueId", 2)
        .with_ext("commitOffset", 17);
    assert_eq!(s0.invoke(commit).unwrap().code, 0);
    let query = RemotingCommand::request(RequestCode::QUERY_CONSUMER_OFFSET, 0)
        .with_ext("consumerGroup", "g1")
        .with_ext("topic", "Orders")
        .with_ext("queueId", 2);
    let resp = s0.invoke(query.clone()).unwrap();
    assert_eq!(resp.ext("offset"), Some("17"));
    // Offsets are per shard: shard 1 has none for this queue yet, but its queue
    // still holds everything, so a new group starts at 0.
    let resp = s1.invoke(query).unwrap();
    assert_eq!((resp.code, resp.ext("offset")), (0, Some("0")));
    let max = RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
        .with_ext("topic", "Orders")
        .with_ext("queueId", 3);
    assert_eq!(s1.invoke(max).unwrap().ext("offset"), Some("26"));
    let min = RemotingCommand::request(RequestCode::GET_MIN_OFFSET, 0)
        .with_ext("topic", "Orders")
        .with_ext("queueId", 3);
    assert_eq!(s1.invoke(min).unwrap().ext("offset"), Some("0"));

    // View by offsetMsgId and query by key.
    let (_, target) = &sent[5];
    let (_, phys) = decode_offset_msg_id(&target.msg_id).unwrap();
    let view =
        RemotingCommand::request(RequestCode::VIEW_MESSAGE_BY_ID, 0).with_ext("offset", phys);
    let resp = s1.invoke(view).unwrap();
    assert_eq!(resp.code, 0);
    let (m, _) = message::StoredMessage::decode(&resp.body).unwrap();
    assert_eq!(&m.body[..], b"body-5");
    let query = RemotingCommand::request(RequestCode::QUERY_MESSAGE, 0)
        .with_ext("topic", "Orders")
        .with_ext("key", "key-5")
        .with_ext("maxNum", 32)
        .with_ext("beginTimestamp", 0)
        .with_ext("endTimestamp", i64::MAX);
    let resp = s1.invoke(query).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let found = message::decode_all(resp.body.clone()).unwrap();
    assert!(found.iter().any(|m| &m.body[..] == b"body-5"));

    // Heartbeats make group members visible.
    heartbeat(&mut s0, "client-a", "cg", "Orders", "*");
    let list = RemotingCommand::request(RequestCode::GET_CONSUMER_LIST_BY_GROUP, 0)
        .with_ext("consumerGroup", "cg");
    let resp = s0.invoke(list.clone()).unwrap();
    let ids: GetConsumerListByGroupResponseBody = decode_json(&resp.body).unwrap();
    assert_eq!(ids.consumer_id_list, vec!["client-a"]);
    // The retry topic now has a route.
    broker.wait_route("%RETRY%cg", 2);
}

#[test]
fn bad_input_never_hurts_others_or_stored_data() {
    let broker = Broker::start("bad-input", &[]);
    let mut good = broker.client(&broker.shards[0]);
    create_topic(&mut good, "Safe", 2);
    let before: Vec<_> = (0..20)
        .map(|i| {
            send_ok(
                &mut good,
                "Safe",
                i % 2,
                format!("keep-{i}").as_bytes(),
                &[],
            )
        })
        .collect();

    // Well-formed frames with bad content get error codes with remarks.
    let resp = good
        .invoke(RemotingCommand::request(RequestCode::Unknown(7777), 0))
        .unwrap();
    assert_eq!(resp.code, 3);
    assert!(resp.remark.unwrap().contains("7777"));
    let resp = good
        .invoke(RemotingCommand::request(RequestCode::PULL_MESSAGE, 0).with_ext("topic", "Safe"))
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR.num());
    assert!(resp.remark.unwrap().contains("consumerGroup"));
    let resp = good
        .invoke(
            RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
                .with_ext("topic", "Safe")
                .with_ext("queueId", "not-a-number"),
        )
        .unwrap();
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("queueId"));
    let resp = send(&mut good, "bad topic!", 0, b"x", &[]);
    assert_eq!(resp.code, 1);
    let big = vec![b'x'; 4 * 1024 * 1024 + 1];
    let resp = send(&mut good, "Safe", 0, &big, &[]);
    assert_eq!(resp.code, ResponseCode::MESSAGE_ILLEGAL.num());
    let resp = send(&mut good, "NoSuchTopicAndNoTemplate", 0, b"x", &[]);
    assert!(
        resp.code == 0 || resp.code == 17,
        "auto-create or TOPIC_NOT_EXIST"
    );

    // Broken framing from several connections at once closes each of them.
    let mut threads = Vec::new();
    for k in 0..8 {
        let addr = broker.shards[k % 2].clone();
        threads.push(std::thread::spawn(move || {
            let cases: Vec<Vec<u8>> = vec![
                b"\x00\x00\x00\x10\x00\x00\x0f\xffgarbage!garbage!".to_vec(),
                vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 2, b'{', b'}'],
                {
                    let mut f = vec![0, 0, 0, 9, 0, 0, 0, 5];
                    f.extend_from_slice(b"nope!");
                    f
                },
                {
                    let mut f = vec![0, 0, 0, 9, 7, 0, 0, 5];
                    f.extend_from_slice(b"{\"a\":}");
                    f
                },
            ];
            for bytes in cases {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(&bytes).unwrap();
                let mut sink = [0u8; 64];
                assert_eq!(s.read(&mut sink).unwrap_or(0), 0, "closed without a reply");
            }
            // Truncated: half a frame, then the connection goes away.
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(&[0, 0, 0, 100, 0, 0, 0, 50, b'{']).unwrap();
        }));
    }
    for t in threads {
        t.join().unwrap();
    }

    // The good client is still served and every stored message is intact.
    for (i, s) in before.iter().enumerate() {
        let (code, msgs, _) = pull(
            &mut good,
            "check",
            "Safe",
            s.queue_id,
            s.queue_offset,
            1,
            "*",
            0,
        );
        assert_eq!(code, 0);
        assert_eq!(&msgs[0].body[..], format!("keep-{i}").as_bytes());
    }
}

#[test]
fn restart_keeps_messages_and_offsets() {
    for (mode, signal) in [
        ("ASYNC_FLUSH", libc::SIGTERM),
        ("SYNC_FLUSH", libc::SIGKILL),
    ] {
        let mut broker = Broker::start(&format!("restart-{mode}"), &["--flush", mode]);
        let mut c = broker.client(&broker.shards[1]);
        create_topic(&mut c, "Durable", 2);
        let sent: Vec<_> = (0..300)
            .map(|i| {
                send_ok(
                    &mut c,
                    "Durable",
                    i % 2,
                    format!("m-{i}").as_bytes(),
                    &[("KEYS", &format!("k{i}"))],
                )
            })
            .collect();
        let commit = RemotingCommand::request(RequestCode::UPDATE_CONSUMER_OFFSET, 0)
            .with_ext("consumerGroup", "dg")
            .with_ext("topic", "Durable")
            .with_ext("queueId", 1)
            .with_ext("commitOffset", 42);
        assert_eq!(c.invoke(commit).unwrap().code, 0);
        if signal == libc::SIGKILL {
            // Changed offsets persist every second; a kill after that keeps them.
            std::thread::sleep(Duration::from_millis(2500));
        }
        drop(c);
        let status = broker.signal(signal);
        if signal == libc::SIGTERM {
            assert!(status.success(), "graceful shutdown: {status:?}");
        }
        broker.launch();
        let mut c = broker.client(&broker.shards[1]);
        for (i, s) in sent.iter().enumerate() {
            let (code, msgs, _) = pull(
                &mut c,
                "after",
                "Durable",
                s.queue_id,
                s.queue_offset,
                1,
                "*",
                0,
            );
            assert_eq!(code, 0, "{mode}: message {i} lost");
            assert_eq!(&msgs[0].body[..], format!("m-{i}").as_bytes(), "{mode}");
        }
        let query = RemotingCommand::request(RequestCode::QUERY_CONSUMER_OFFSET, 0)
            .with_ext("consumerGroup", "dg")
            .with_ext("topic", "Durable")
            .with_ext("queueId", 1);
        assert_eq!(
            c.invoke(query).unwrap().ext("offset"),
            Some("42"),
            "{mode}: offset"
        );
        // The topic survived too, and new sends continue the queue.
        let s = send_ok(&mut c, "Durable", 0, b"after-restart", &[]);
        assert_eq!(s.queue_offset, 150, "{mode}");
    }
}
