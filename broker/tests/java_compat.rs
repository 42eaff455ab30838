//! What the official Java client relies on (found by tests/e2e_java.py), checked over the
//! protocol: delayed and timer sends are stored under their timer topics, not the real one,
//! until due (tests/timers.rs follows them to delivery), and so is a retry re-sent by a client
//! with a DELAY level; stored messages carry MSG_REGION and TRACE_ON as RocketMQ's do.

mod common;

use common::*;

#[test]
fn delayed_and_timer_messages_wait_under_their_timer_topics() {
    let broker = Broker::start("unserved", &[]);
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "Later", 1);
    let far = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 600_000)
        .to_string();
    let cases: [&[(&str, &str)]; 4] = [
        &[("DELAY", "3")],
        &[("TIMER_DELIVER_MS", &far)],
        &[("TIMER_DELAY_SEC", "500")],
        &[("TIMER_DELAY_MS", "500000")],
    ];
    for props in cases {
        let resp = send(&mut c, "Later", 0, b"not yet", props);
        assert_eq!(resp.code, 0, "{props:?}: {:?}", resp.remark);
    }
    assert_eq!(max_offset(&mut c, "Later", 0), 0, "delivered early");
    assert_eq!(max_offset(&mut c, "SCHEDULE_TOPIC_XXXX", 2), 1);
    assert_eq!(max_offset(&mut c, "rmq_sys_wheel_timer", 0), 3);

    // DELAY 0 is no delay; a client's fallback retry carries a level and is scheduled.
    send_ok(&mut c, "Later", 0, b"now", &[("DELAY", "0")]);
    assert_eq!(max_offset(&mut c, "Later", 0), 1);
    let resp = send(&mut c, "%RETRY%Gr", 0, b"again", &[("DELAY", "4")]);
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(max_offset(&mut c, "SCHEDULE_TOPIC_XXXX", 3), 1);
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
