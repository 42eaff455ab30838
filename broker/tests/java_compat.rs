//! What the official Java client relies on (found by tests/e2e_java.py), checked over the
//! protocol: sends asking for features Saturn does not serve yet (delay levels, 5.x timers)
//! are refused with MESSAGE_ILLEGAL and nothing is stored, while a retry re-sent
//! by a client with a DELAY level is still stored (and delivered without delay); stored messages
//! carry MSG_REGION and TRACE_ON as RocketMQ's do.

mod common;

use common::*;
use namesrv::client::BlockingClient;
use protocol::{RemotingCommand, RequestCode, ResponseCode};

fn max_offset(client: &mut BlockingClient, topic: &str, queue: i32) -> i64 {
    let resp = client
        .invoke(
            RemotingCommand::request(RequestCode::GET_MAX_OFFSET, 0)
                .with_ext("topic", topic)
                .with_ext("queueId", queue),
        )
        .unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    resp.ext("offset").unwrap().parse().unwrap()
}

#[test]
fn delayed_and_timer_messages_are_refused_not_stored() {
    let broker = Broker::start("unserved", &[]);
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Later", 1);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("DELAY", "3")], "delayed delivery (DELAY level 3)"),
        (&[("TIMER_DELIVER_MS", "1700000005000")], "timer messages"),
        (&[("TIMER_DELAY_SEC", "5")], "timer messages"),
        (&[("TIMER_DELAY_MS", "5000")], "timer messages"),
    ];
    for (props, words) in cases {
        let resp = send(&mut c, "Later", 0, b"not yet", props);
        assert_eq!(resp.code, ResponseCode::MESSAGE_ILLEGAL.num(), "{props:?}");
        let remark = resp.remark.unwrap_or_default();
        assert!(remark.contains(words), "{props:?}: {remark}");
    }
    assert_eq!(
        max_offset(&mut c, "Later", 0),
        0,
        "a refused message was stored"
    );

    // DELAY 0 is no delay; a client's fallback retry carries a level and is stored.
    send_ok(&mut c, "Later", 0, b"now", &[("DELAY", "0")]);
    assert_eq!(max_offset(&mut c, "Later", 0), 1);
    let resp = send(&mut c, "%RETRY%Gr", 0, b"again", &[("DELAY", "4")]);
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(max_offset(&mut c, "%RETRY%Gr", 0), 1);
}

#[test]
fn stored_messages_carry_region_and_trace_switch() {
    let broker = Broker::start("region-trace", &[]);
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Traced", 1);
    send_ok(&mut c, "Traced", 0, b"plain", &[("TAGS", "a")]);
    // A producer's own values are kept, not doubled.
    send_ok(
        &mut c,
        "Traced",
        0,
        b"own",
        &[("MSG_REGION", "Elsewhere"), ("TRACE_ON", "false")],
    );
    let (code, msgs, _) = pull(&mut c, "g", "Traced", 0, 0, 8, "*", 0);
    assert_eq!(code, 0);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].property("MSG_REGION"), Some("DefaultRegion"));
    assert_eq!(msgs[0].property("TRACE_ON"), Some("true"));
    assert_eq!(msgs[0].property("CLUSTER"), Some("DefaultCluster"));
    assert_eq!(msgs[1].property("MSG_REGION"), Some("Elsewhere"));
    assert_eq!(msgs[1].property("TRACE_ON"), Some("false"));
    assert_eq!(msgs[1].properties.matches("MSG_REGION").count(), 1);
}
