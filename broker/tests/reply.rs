//! Request-reply over the protocol: a request is stored as a plain message (with CLUSTER, which
//! the replier's MessageUtil needs); SEND_REPLY_MESSAGE_V2 pushes the reply with
//! PUSH_REPLY_MESSAGE_TO_CLIENT to the connection of the producer named by REPLY_TO_CLIENT and
//! stores it in `<cluster>_REPLY_TOPIC`; a requester that is unknown or hangs up gets the replier
//! SYSTEM_ERROR with the reason.

mod common;

use common::*;
use protocol::{RemotingCommand, RequestCode, ResponseCode};

const REPLY_TOPIC: &str = "DefaultCluster_REPLY_TOPIC";

fn reply_request(to: &str, correlation: &str, body: &[u8]) -> RemotingCommand {
    let props = [
        ("CORRELATION_ID", correlation),
        ("REPLY_TO_CLIENT", to),
        ("MSG_TYPE", "reply"),
    ];
    let mut header = send_header(REPLY_TOPIC, 0, Some(&props));
    header.producer_group = "PG_replier".into();
    send_command(RequestCode::SEND_REPLY_MESSAGE_V2, header, body)
}

#[test]
fn replies_are_pushed_to_the_requester_and_stored() {
    let broker = Broker::start("reply", &[]);
    let addr = broker.shards[0].clone();
    let mut requester = broker.client(&addr);
    producer_heartbeat(&mut requester, "requester-1", "PG_requester");
    // The request itself: stored like any message, with CLUSTER added.
    create_topic(&mut requester, "Rpc", 1);
    let props = [
        ("CORRELATION_ID", "corr-1"),
        ("REPLY_TO_CLIENT", "requester-1"),
    ];
    send_ok(&mut requester, "Rpc", 0, b"question", &props);
    let (code, msgs, _) = pull(&mut requester, "g", "Rpc", 0, 0, 8, "*", 0);
    assert_eq!(code, 0);
    assert_eq!(msgs[0].property("CLUSTER"), Some("DefaultCluster"));
    assert_eq!(msgs[0].property("REPLY_TO_CLIENT"), Some("requester-1"));

    let replier = std::thread::spawn(move || {
        let mut c = connect(&addr);
        c.invoke(reply_request("requester-1", "corr-1", b"answer"))
            .unwrap()
    });
    let push = loop {
        let cmd = requester.read_command().unwrap();
        if !cmd.is_response() && cmd.code == RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT.num() {
            break cmd;
        }
    };
    assert_eq!(&push.body[..], b"answer");
    assert_eq!(push.ext("topic"), Some(REPLY_TOPIC));
    assert_eq!(push.ext("producerGroup"), Some("PG_replier"));
    assert!(push.ext("bornHost").unwrap().starts_with("127.0.0.1:"));
    assert!(push.ext("storeTimestamp").unwrap().parse::<i64>().unwrap() > 0);
    let props = push.ext("properties").unwrap();
    assert!(
        props.contains("CORRELATION_ID\u{1}corr-1\u{2}"),
        "{props:?}"
    );
    assert!(props.contains("PUSH_REPLY_TIME\u{1}"), "{props:?}");
    requester
        .send(&RemotingCommand::response(
            ResponseCode::SUCCESS,
            push.opaque,
            None,
        ))
        .unwrap();
    let answer = replier.join().unwrap();
    assert_eq!(answer.code, 0, "{:?}", answer.remark);
    assert_eq!(answer.ext("msgId"), Some("0"));
    assert_eq!(
        max_offset(&mut requester, REPLY_TOPIC, 0),
        1,
        "reply stored"
    );

    // Nobody of that id: SYSTEM_ERROR naming it (and the reply is stored all the same).
    let resp = requester
        .invoke(reply_request("nobody", "corr-2", b"lost"))
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR.num());
    assert_eq!(
        resp.remark.as_deref(),
        Some("push reply message fail, channel of <nobody> not found.")
    );
    assert_eq!(max_offset(&mut requester, REPLY_TOPIC, 0), 2);
}

#[test]
fn a_requester_that_hangs_up_fails_the_reply_clearly() {
    let broker = Broker::start("reply-gone", &[]);
    let addr = broker.shards[0].clone();
    let mut requester = broker.client(&addr);
    producer_heartbeat(&mut requester, "requester-2", "PG_requester");
    let replier = std::thread::spawn(move || {
        let mut c = connect(&addr);
        c.invoke(reply_request("requester-2", "corr-3", b"answer"))
            .unwrap()
    });
    loop {
        let cmd = requester.read_command().unwrap();
        if !cmd.is_response() && cmd.code == RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT.num() {
            break;
        }
    }
    drop(requester);
    let answer = replier.join().unwrap();
    assert_eq!(answer.code, ResponseCode::SYSTEM_ERROR.num());
    let remark = answer.remark.unwrap_or_default();
    assert!(
        remark.contains("push reply message to requester-2 fail") && remark.contains("closed"),
        "{remark}"
    );
}
