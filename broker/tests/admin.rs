//! The operator requests mqadmin sends, against the real broker binary: runtime info and
//! stats with measured rates, broker consume stats, consume-queue inspection, producer info,
//! run-time config updates, calls forwarded to a consumer and answered by it, and offset
//! resets pushed to a group's consumers.

mod common;

use std::time::Duration;

use common::{commit_offset, create_topic, heartbeat, pull, query_offset, send_ok, Broker};
use namesrv::client::BlockingClient;
use protocol::body::{decode_json, encode_json, HeartbeatData, KvTable};
use protocol::message::{decode_offset_msg_id, tag_hash, StoredMessage};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::Value;

fn invoke(c: &mut BlockingClient, code: RequestCode, ext: &[(&str, &str)]) -> RemotingCommand {
    let mut req = RemotingCommand::request(code, 0);
    for (k, v) in ext {
        req = req.with_ext(k, v);
    }
    c.invoke(req).unwrap()
}

fn json(resp: &RemotingCommand) -> Value {
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    serde_json::from_slice(&resp.body).unwrap()
}

/// Reads commands on a consumer's connection until a request with `code` arrives (skipping
/// the broker's NOTIFY_CONSUMER_IDS_CHANGED and the like).
fn next_request(c: &mut BlockingClient, code: RequestCode) -> RemotingCommand {
    for _ in 0..32 {
        let cmd = c.read_command().unwrap();
        if !cmd.is_response() && cmd.code == code.num() {
            return cmd;
        }
    }
    panic!("no request {code:?} reached the consumer");
}

#[test]
fn runtime_info_and_stats_data_measure_traffic() {
    let b = Broker::start("admin-stats", &[]);
    let mut s0 = b.client(&b.shards[0]);
    create_topic(&mut s0, "StatsT", 2);
    for i in 0..50 {
        send_ok(&mut s0, "StatsT", i % 2, b"0123456789", &[("TAGS", "A")]);
    }
    let (code, msgs, _) = pull(&mut s0, "StatsG", "StatsT", 0, 0, 32, "*", 0);
    assert_eq!((code, msgs.len()), (0, 25));

    let info: KvTable =
        decode_json(&invoke(&mut s0, RequestCode::GET_BROKER_RUNTIME_INFO, &[]).body).unwrap();
    let t = &info.table;
    assert_eq!(t["msgPutTotalTodayNow"], "50");
    assert_eq!(t["msgGetTotalTodayNow"], "25");
    assert_eq!(t["putMessageAverageSize"], "10.00");
    for key in ["putTps", "getTransferedTps", "getTransferredTps"] {
        let tps: Vec<f64> = t[key].split(' ').map(|x| x.parse().unwrap()).collect();
        assert!(
            tps.len() == 3 && tps.iter().all(|r| *r > 0.0),
            "{key}: {}",
            t[key]
        );
    }
    assert!(t["earliestMessageTimeStamp"].parse::<i64>().unwrap() > 1_700_000_000_000);
    let ratio: f64 = t["commitLogDiskRatio"].parse().unwrap();
    assert!((0.0..=1.0).contains(&ratio));

    let view = |c: &mut BlockingClient, name: &str, key: &str| {
        invoke(
            c,
            RequestCode::VIEW_BROKER_STATS_DATA,
            &[("statsName", name), ("statsKey", key)],
        )
    };
    let put = json(&view(&mut s0, "TOPIC_PUT_NUMS", "StatsT"));
    for w in ["statsMinute", "statsHour", "statsDay"] {
        assert_eq!(put[w]["sum"], 50, "{put}");
        assert!(put[w]["tps"].as_f64().unwrap() > 0.0, "{put}");
        assert_eq!(put[w]["avgpt"], 1.0, "one message per send: {put}");
    }
    assert_eq!(
        json(&view(&mut s0, "TOPIC_PUT_SIZE", "StatsT"))["statsMinute"]["sum"],
        500
    );
    let got = json(&view(&mut s0, "GROUP_GET_NUMS", "StatsT@StatsG"));
    assert_eq!(got["statsMinute"]["sum"], 25);
    assert!(got["statsMinute"]["tps"].as_f64().unwrap() > 0.0);
    let missing = view(&mut s0, "GROUP_GET_NUMS", "StatsT@Nobody");
    assert_eq!(missing.code, ResponseCode::SYSTEM_ERROR.num());
    assert!(missing.remark.unwrap().contains("not exist"));
    // The other shard stored nothing: its counters say so.
    let mut s1 = b.client(&b.shards[1]);
    let other = view(&mut s1, "TOPIC_PUT_NUMS", "StatsT");
    assert_eq!(other.code, ResponseCode::SYSTEM_ERROR.num());
}

#[test]
fn broker_consume_stats_and_consume_queue_entries() {
    let b = Broker::start("admin-cq", &[]);
    let mut s0 = b.client(&b.shards[0]);
    create_topic(&mut s0, "CqT", 2);
    let mut sent = Vec::new();
    for i in 0..6 {
        sent.push(send_ok(
            &mut s0,
            "CqT",
            0,
            format!("cq-{i}").as_bytes(),
            &[("TAGS", "TagX")],
        ));
    }
    send_ok(&mut s0, "CqT", 1, b"other", &[]);
    heartbeat(&mut s0, "cq-client", "CqG", "CqT", "*");
    commit_offset(&mut s0, "CqG", "CqT", 0, 2);
    commit_offset(&mut s0, "CqG", "CqT", 1, 1);

    // The body keys offset tables by MessageQueue objects, as RocketMQ's fastjson writes them:
    // not JSON a strict parser takes, so it is read as text.
    let stats = invoke(
        &mut s0,
        RequestCode::GET_BROKER_CONSUME_STATS,
        &[("isOrder", "false")],
    );
    assert_eq!(stats.code, 0, "{:?}", stats.remark);
    let text = String::from_utf8_lossy(&stats.body).to_string();
    assert!(text.contains("\"totalDiff\":4"), "{text}");
    assert!(text.contains(&format!("\"brokerAddr\":\"{}\"", b.shards[0])));
    assert!(text.contains("{\"CqG\":[{\"consumeTps\":"), "{text}");
    assert_eq!(text.matches("\"brokerOffset\"").count(), 2, "{text}");
    assert!(
        text.contains("\"brokerOffset\":6,\"consumerOffset\":2"),
        "{text}"
    );
    let ordered_only = invoke(
        &mut s0,
        RequestCode::GET_BROKER_CONSUME_STATS,
        &[("isOrder", "true")],
    );
    let text = String::from_utf8_lossy(&ordered_only.body).to_string();
    assert!(
        text.contains("\"totalDiff\":0"),
        "CqT is not ordered: {text}"
    );

    let query = |c: &mut BlockingClient, queue: &str, index: &str| {
        invoke(
            c,
            RequestCode::QUERY_CONSUME_QUEUE,
            &[
                ("topic", "CqT"),
                ("queueId", queue),
                ("index", index),
                ("count", "3"),
                ("consumerGroup", "CqG"),
            ],
        )
    };
    let body = json(&query(&mut s0, "0", "2"));
    assert_eq!(
        (body["minQueueIndex"].clone(), body["maxQueueIndex"].clone()),
        (0.into(), 6.into())
    );
    assert_eq!(body["subscriptionData"]["topic"], "CqT", "{body}");
    let entries = body["queueData"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (e, s) in entries.iter().zip(&sent[2..5]) {
        let (_, phys) = decode_offset_msg_id(&s.msg_id).unwrap();
        assert_eq!(e["physicOffset"], phys);
        assert_eq!(e["tagsCode"], tag_hash("TagX"));
        assert!(e["physicSize"].as_i64().unwrap() > 0);
    }
    let beyond = query(&mut s0, "0", "6");
    assert_eq!(beyond.code, 0);
    assert!(beyond.remark.unwrap().contains("is not exist"));
    let no_queue = query(&mut s0, "9", "0");
    assert_eq!(no_queue.code, ResponseCode::SYSTEM_ERROR.num());
}

#[test]
fn producer_info_lists_heartbeating_producers() {
    let b = Broker::start("admin-producers", &[]);
    let mut s0 = b.client(&b.shards[0]);
    let mut hb = HeartbeatData {
        client_id: "127.0.0.1@prod-1".into(),
        ..Default::default()
    };
    hb.producer_data_set.push(protocol::body::ProducerData {
        group_name: "InfoPG".into(),
    });
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, 0);
    req.body = encode_json(&hb).into();
    assert_eq!(s0.invoke(req).unwrap().code, 0);
    let info = json(&invoke(&mut s0, RequestCode::GET_ALL_PRODUCER_INFO, &[]));
    let list = info["data"]["InfoPG"].as_array().expect("InfoPG listed");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["clientId"], "127.0.0.1@prod-1");
    assert!(list[0]["lastUpdateTimestamp"].as_i64().unwrap() > 1_700_000_000_000);
}

#[test]
fn update_broker_config_changes_live_keys_and_refuses_others() {
    let b = Broker::start("admin-config", &[]);
    let mut s0 = b.client(&b.shards[0]);
    create_topic(&mut s0, "CfgT", 1);
    let update = |c: &mut BlockingClient, text: &str| {
        let mut req = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG, 0);
        req.body = text.as_bytes().to_vec().into();
        c.invoke(req).unwrap()
    };
    assert_eq!(update(&mut s0, "maxMessageSize=1024\n").code, 0);
    let refused = common::send(&mut s0, "CfgT", 0, &[b'x'; 2000], &[]);
    assert_eq!(
        refused.code,
        ResponseCode::MESSAGE_ILLEGAL.num(),
        "{:?}",
        refused.remark
    );
    send_ok(&mut s0, "CfgT", 0, &[b'x'; 1000], &[]);
    let config = invoke(&mut s0, RequestCode::GET_BROKER_CONFIG, &[]);
    assert!(String::from_utf8_lossy(&config.body).contains("maxMessageSize=1024\n"));

    let bad_key = update(&mut s0, "flushDiskType=SYNC_FLUSH\nmaxMessageSize=4096\n");
    assert_eq!(bad_key.code, ResponseCode::NO_PERMISSION.num());
    assert!(bad_key.remark.unwrap().contains("flushDiskType"));
    let bad_value = update(&mut s0, "maxMessageSize=lots");
    assert_eq!(bad_value.code, ResponseCode::NO_PERMISSION.num());
    let config = invoke(&mut s0, RequestCode::GET_BROKER_CONFIG, &[]);
    assert!(
        String::from_utf8_lossy(&config.body).contains("maxMessageSize=1024\n"),
        "a refused update changes nothing"
    );
    // Each shard is a broker of its own: shard 1 keeps its size.
    let mut s1 = b.client(&b.shards[1]);
    let config = invoke(&mut s1, RequestCode::GET_BROKER_CONFIG, &[]);
    assert!(!String::from_utf8_lossy(&config.body).contains("maxMessageSize=1024\n"));
}

#[test]
fn calls_are_forwarded_to_the_consumer_and_its_answer_relayed() {
    let b = Broker::start("admin-forward", &[]);
    let mut s0 = b.client(&b.shards[0]);
    create_topic(&mut s0, "FwdT", 1);
    let sent = send_ok(&mut s0, "FwdT", 0, b"direct-body", &[("TAGS", "D")]);
    let mut consumer = b.client(&b.shards[0]);
    heartbeat(&mut consumer, "fwd-client", "FwdG", "FwdT", "*");

    let admin_addr = b.shards[0].clone();
    let admin = std::thread::spawn(move || {
        let mut a = BlockingClient::connect(&admin_addr, Duration::from_secs(15)).unwrap();
        let running = invoke(
            &mut a,
            RequestCode::GET_CONSUMER_RUNNING_INFO,
            &[("consumerGroup", "FwdG"), ("clientId", "fwd-client")],
        );
        let direct = invoke(
            &mut a,
            RequestCode::CONSUME_MESSAGE_DIRECTLY,
            &[
                ("consumerGroup", "FwdG"),
                ("clientId", "fwd-client"),
                ("msgId", &sent.msg_id),
                ("topic", "FwdT"),
            ],
        );
        (running, direct)
    });
    let req = next_request(&mut consumer, RequestCode::GET_CONSUMER_RUNNING_INFO);
    assert_eq!(req.ext("clientId"), Some("fwd-client"));
    let answer = RemotingCommand::response(ResponseCode::SUCCESS, req.opaque, None)
        .with_body(&b"{\"properties\":{\"consumeType\":\"CONSUME_PASSIVELY\"}}"[..]);
    consumer.send(&answer).unwrap();
    let req = next_request(&mut consumer, RequestCode::CONSUME_MESSAGE_DIRECTLY);
    assert_eq!(req.ext("brokerName"), Some("saturn-0"));
    let (msg, _) = StoredMessage::decode(&req.body).unwrap();
    assert_eq!(&msg.body[..], b"direct-body");
    let answer = RemotingCommand::response(ResponseCode::SUCCESS, req.opaque, None)
        .with_body(&b"{\"consumeResult\":\"CR_SUCCESS\"}"[..]);
    consumer.send(&answer).unwrap();
    let (running, direct) = admin.join().unwrap();
    assert_eq!(running.code, 0, "{:?}", running.remark);
    assert!(String::from_utf8_lossy(&running.body).contains("CONSUME_PASSIVELY"));
    assert_eq!(direct.code, 0, "{:?}", direct.remark);
    assert_eq!(&direct.body[..], b"{\"consumeResult\":\"CR_SUCCESS\"}");

    // A client that is not there, and one that hangs up instead of answering.
    let absent = invoke(
        &mut s0,
        RequestCode::GET_CONSUMER_RUNNING_INFO,
        &[("consumerGroup", "FwdG"), ("clientId", "nobody")],
    );
    assert_eq!(absent.code, ResponseCode::SYSTEM_ERROR.num());
    assert!(absent.remark.unwrap().contains("not online"));
    let admin_addr = b.shards[0].clone();
    let admin = std::thread::spawn(move || {
        let mut a = BlockingClient::connect(&admin_addr, Duration::from_secs(15)).unwrap();
        invoke(
            &mut a,
            RequestCode::GET_CONSUMER_RUNNING_INFO,
            &[("consumerGroup", "FwdG"), ("clientId", "fwd-client")],
        )
    });
    next_request(&mut consumer, RequestCode::GET_CONSUMER_RUNNING_INFO);
    drop(consumer);
    let gone = admin.join().unwrap();
    assert_eq!(gone.code, ResponseCode::SYSTEM_ERROR.num());
    assert!(gone.remark.unwrap().contains("closed"));
}

#[test]
fn reset_offset_pushes_new_offsets_to_online_consumers() {
    let b = Broker::start("admin-reset", &[]);
    let mut s0 = b.client(&b.shards[0]);
    create_topic(&mut s0, "ResetT", 2);
    for i in 0..10 {
        send_ok(&mut s0, "ResetT", i % 2, b"r", &[]);
    }
    commit_offset(&mut s0, "ResetG", "ResetT", 0, 5);
    commit_offset(&mut s0, "ResetG", "ResetT", 1, 4);
    let reset = |c: &mut BlockingClient, ts: &str| {
        invoke(
            c,
            RequestCode::INVOKE_BROKER_TO_RESET_OFFSET,
            &[
                ("topic", "ResetT"),
                ("group", "ResetG"),
                ("timestamp", ts),
                ("isForce", "true"),
            ],
        )
    };
    // No consumer online: the stored offsets are reset and the table answered.
    let offline = reset(&mut s0, "0");
    assert_eq!(offline.code, 0, "{:?}", offline.remark);
    assert!(String::from_utf8_lossy(&offline.body).contains("\"queueId\":1"));
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 0), 0);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 1), 0);
    commit_offset(&mut s0, "ResetG", "ResetT", 0, 5);
    commit_offset(&mut s0, "ResetG", "ResetT", 1, 4);

    let mut consumer = b.client(&b.shards[0]);
    heartbeat(&mut consumer, "reset-client", "ResetG", "ResetT", "*");
    let resp = reset(&mut s0, "0");
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let body = String::from_utf8_lossy(&resp.body).to_string();
    let push = next_request(&mut consumer, RequestCode::RESET_CONSUMER_CLIENT_OFFSET);
    assert!(push.is_oneway());
    assert_eq!(push.ext("group"), Some("ResetG"));
    assert_eq!(String::from_utf8_lossy(&push.body), body);
    assert!(
        body.contains("\"queueId\":0") && body.contains("\"queueId\":1"),
        "{body}"
    );
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 0), 0);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 1), 0);
    // -1: to the end of every queue.
    assert_eq!(reset(&mut s0, "-1").code, 0);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 0), 5);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 1), 5);
    let unknown = invoke(
        &mut s0,
        RequestCode::INVOKE_BROKER_TO_RESET_OFFSET,
        &[
            ("topic", "NoSuchT"),
            ("group", "ResetG"),
            ("timestamp", "0"),
            ("isForce", "true"),
        ],
    );
    assert_eq!(unknown.code, ResponseCode::TOPIC_NOT_EXIST.num());

    // Without isForce a queue only moves back: at the end (5), a reset to the start applies,
    // then a reset to the end does not move it forward again.
    let unforced = |c: &mut BlockingClient, ts: &str| {
        let fields = [
            ("topic", "ResetT"),
            ("group", "ResetG"),
            ("timestamp", ts),
            ("isForce", "false"),
        ];
        invoke(c, RequestCode::INVOKE_BROKER_TO_RESET_OFFSET, &fields)
    };
    assert_eq!(unforced(&mut s0, "0").code, 0);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 0), 0);
    assert_eq!(unforced(&mut s0, "-1").code, 0);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 0), 0);

    // 5.x: one queue to a given offset, pushed with that queue only; outside the queue refused.
    let to_offset = |c: &mut BlockingClient, offset: &str| {
        let fields = [
            ("topic", "ResetT"),
            ("group", "ResetG"),
            ("timestamp", "0"),
            ("isForce", "false"),
            ("queueId", "1"),
            ("offset", offset),
        ];
        invoke(c, RequestCode::INVOKE_BROKER_TO_RESET_OFFSET, &fields)
    };
    let resp = to_offset(&mut s0, "3");
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 1), 3);
    let body = String::from_utf8_lossy(&resp.body).to_string();
    assert!(
        body.contains("\"queueId\":1") && !body.contains("\"queueId\":0"),
        "{body}"
    );
    let bad = to_offset(&mut s0, "6");
    assert_eq!(bad.code, ResponseCode::SYSTEM_ERROR.num());
    assert!(bad
        .remark
        .unwrap()
        .contains("not in consume queue range [0-5]"));
    assert_eq!(query_offset(&mut s0, "ResetG", "ResetT", 1), 3);
}
