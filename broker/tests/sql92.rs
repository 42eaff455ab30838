//! SQL92 subscriptions through a real broker: pulls carrying an expression get exactly the
//! records it selects, a pull whose records are all filtered out moves the consumer past them,
//! CHECK_CLIENT_CONFIG and pulls refuse a bad expression with its reason, and
//! `enablePropertyFilter=false` refuses SQL92 altogether.

mod common;

use common::*;
use protocol::body::{encode_json, CheckClientRequestBody, SubscriptionData};
use protocol::message::decode_all;
use protocol::{RemotingCommand, RequestCode, ResponseCode};

fn sql_pull(topic: &str, offset: i64, expr: &str) -> RemotingCommand {
    let mut header = pull_header("CG_sql", topic, 0, offset, 32, expr, 0);
    header.expression_type = Some("SQL92".into());
    pull_command(&header)
}

fn check_config(topic: &str, expr: &str) -> RemotingCommand {
    let mut sub = SubscriptionData::build(topic, "*", 1);
    sub.sub_string = expr.into();
    sub.expression_type = Some("SQL92".into());
    let body = CheckClientRequestBody {
        client_id: "c1".into(),
        group: "CG_sql".into(),
        subscription_data: sub,
    };
    let mut req = RemotingCommand::request(RequestCode::CHECK_CLIENT_CONFIG, 0);
    req.body = encode_json(&body).into();
    req
}

fn a_values(resp: &RemotingCommand) -> Vec<String> {
    decode_all(resp.body.clone())
        .unwrap()
        .iter()
        .map(|m| m.property("a").unwrap_or("-").to_owned())
        .collect()
}

#[test]
fn sql92_pulls_select_exactly_and_move_past_what_they_filter_out() {
    let broker = Broker::start("sql92", &[]);
    let mut c = broker.client(&broker.shards[0]);
    let topic = "SqlT";
    create_topic(&mut c, topic, 1);
    for i in 0..10 {
        let a = i.to_string();
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let mut props = vec![("TAGS", tag)];
        if i != 4 {
            props.push(("a", a.as_str()));
        }
        send_ok(&mut c, topic, 0, b"x", &props);
    }
    let resp = c.invoke(sql_pull(topic, 0, "a >= 6 OR a IS NULL")).unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(a_values(&resp), ["-", "6", "7", "8", "9"]);
    assert_eq!(resp.ext("nextBeginOffset"), Some("10"));
    let resp = c
        .invoke(sql_pull(topic, 2, "TAGS = 'TagA' AND a BETWEEN 1 AND 7"))
        .unwrap();
    assert_eq!(a_values(&resp), ["2", "6"]);
    // Nothing selected: PULL_RETRY_IMMEDIATELY with the offset after the records read.
    let resp = c.invoke(sql_pull(topic, 3, "a > 100")).unwrap();
    assert_eq!(resp.code, ResponseCode::PULL_RETRY_IMMEDIATELY.num());
    assert_eq!(resp.ext("nextBeginOffset"), Some("10"));
    // A bad expression: SUBSCRIPTION_PARSE_FAILED with the parser's reason.
    let resp = c.invoke(sql_pull(topic, 0, "a >")).unwrap();
    assert_eq!(resp.code, ResponseCode::SUBSCRIPTION_PARSE_FAILED.num());
    let remark = resp.remark.unwrap_or_default();
    assert!(remark.contains("Invalid MessageSelector"), "{remark}");

    let ok = c.invoke(check_config(topic, "a IN ('1', '2')")).unwrap();
    assert_eq!(ok.code, 0, "{:?}", ok.remark);
    let bad = c.invoke(check_config(topic, "a = NULL")).unwrap();
    assert_eq!(bad.code, ResponseCode::SUBSCRIPTION_PARSE_FAILED.num());
    assert!(bad
        .remark
        .unwrap_or_default()
        .contains("cannot be compared"));
}

#[test]
fn property_filter_off_refuses_sql92() {
    let dir = test_dir("sql92-off-conf");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("broker.conf");
    std::fs::write(&conf, "enablePropertyFilter=false\n").unwrap();
    let broker = Broker::start("sql92-off", &["-c", conf.to_str().unwrap()]);
    let mut c = broker.client(&broker.shards[0]);
    create_topic(&mut c, "SqlOff", 1);
    send_ok(&mut c, "SqlOff", 0, b"x", &[("a", "1")]);
    let refusal = "The broker does not support consumer to filter message by SQL92";
    let resp = c.invoke(check_config("SqlOff", "a = 1")).unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR.num());
    assert_eq!(resp.remark.as_deref(), Some(refusal));
    let resp = c.invoke(sql_pull("SqlOff", 0, "a = 1")).unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR.num());
    assert_eq!(resp.remark.as_deref(), Some(refusal));
    let _ = std::fs::remove_dir_all(&dir);
}
