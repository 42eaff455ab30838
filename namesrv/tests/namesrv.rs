//! The `saturn-namesrv` binary over real TCP on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::body::{
    decode_json, encode_json, ClusterInfo, KvTable, RegisterBrokerBody, TopicConfig, TopicList,
    TopicRouteData,
};
use protocol::header::{
    CommandHeader, GetRouteInfoRequestHeader, RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader,
};
use protocol::{RemotingCommand, RequestCode, ResponseCode};
use saturn_client::BlockingClient;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_saturn-namesrv"))
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start saturn-namesrv");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("saturn-namesrv listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, addr }
}

fn client(addr: &str) -> BlockingClient {
    BlockingClient::connect(addr, Duration::from_secs(5)).unwrap()
}

fn register(
    c: &mut BlockingClient,
    name: &str,
    addr: &str,
    id: i64,
    topics: &[(&str, i32)],
    compressed: bool,
) -> RemotingCommand {
    let mut body = RegisterBrokerBody::default();
    let wrapper = &mut body.topic_config_serialize_wrapper;
    wrapper.data_version.counter = 1;
    wrapper.data_version.timestamp = 1_700_000_000_000;
    for (t, q) in topics {
        wrapper
            .topic_config_table
            .insert(t.to_string(), TopicConfig::new(*t, *q, *q, 6));
    }
    let bytes = if compressed {
        body.encode_compressed()
    } else {
        encode_json(&body)
    };
    let header = RegisterBrokerRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: addr.replace(":10911", ":10912"),
        broker_id: id,
        compressed: Some(compressed),
        body_crc32: Some(protocol::message::body_crc(&bytes)),
        ..Default::default()
    };
    let mut req = RemotingCommand::request(RequestCode::REGISTER_BROKER, 0);
    header.encode(&mut req.ext_fields);
    req.body = bytes.into();
    c.invoke(req).unwrap()
}

fn route(c: &mut BlockingClient, topic: &str) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, 0);
    GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: None,
    }
    .encode(&mut req.ext_fields);
    c.invoke(req).unwrap()
}

#[test]
fn registration_routes_and_cluster_info() {
    let server = start(&[]);
    let mut master = client(&server.addr);
    let mut slave = client(&server.addr);
    let mut other = client(&server.addr);
    let mut admin = client(&server.addr);

    let resp = register(
        &mut master,
        "broker-a",
        "10.0.0.1:10911",
        0,
        &[("TopicTest", 4), ("TBW102", 8)],
        false,
    );
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let body: KvTable = decode_json(&resp.body).unwrap();
    assert!(body.table.is_empty());
    let resp = register(
        &mut slave,
        "broker-a",
        "10.0.0.2:10911",
        1,
        &[("TopicTest", 4)],
        false,
    );
    assert_eq!(resp.code, 0);
    let h = RegisterBrokerResponseHeader::decode(&resp.ext_fields).unwrap();
    assert_eq!(h.master_addr.as_deref(), Some("10.0.0.1:10911"));
    assert_eq!(h.ha_server_addr.as_deref(), Some("10.0.0.1:10912"));
    // The second broker name uses the compressed form.
    let resp = register(
        &mut other,
        "broker-b",
        "10.0.0.3:10911",
        0,
        &[("TopicTest", 2), ("OnlyB", 1)],
        true,
    );
    assert_eq!(resp.code, 0, "{:?}", resp.remark);

    let resp = route(&mut admin, "TopicTest");
    assert_eq!(resp.code, 0);
    assert_eq!(resp.flag & 1, 1);
    let text = std::str::from_utf8(&resp.body).unwrap();
    assert!(
        text.contains(r#""brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#),
        "{text}"
    );
    assert!(!text.contains(' '), "compact JSON: {text}");
    let rt: TopicRouteData = decode_json(&resp.body).unwrap();
    assert_eq!(rt.queue_datas.len(), 2);
    let qa = rt
        .queue_datas
        .iter()
        .find(|q| q.broker_name == "broker-a")
        .unwrap();
    assert_eq!(
        (
            qa.read_queue_nums,
            qa.write_queue_nums,
            qa.perm,
            qa.topic_sys_flag
        ),
        (4, 4, 6, 0)
    );
    let qb = rt
        .queue_datas
        .iter()
        .find(|q| q.broker_name == "broker-b")
        .unwrap();
    assert_eq!((qb.read_queue_nums, qb.write_queue_nums), (2, 2));
    let ba = rt
        .broker_datas
        .iter()
        .find(|b| b.broker_name == "broker-a")
        .unwrap();
    assert_eq!(ba.cluster, "DefaultCluster");
    assert_eq!(
        ba.broker_addrs.get(&0).map(String::as_str),
        Some("10.0.0.1:10911")
    );
    assert_eq!(
        ba.broker_addrs.get(&1).map(String::as_str),
        Some("10.0.0.2:10911")
    );
    let bb = rt
        .broker_datas
        .iter()
        .find(|b| b.broker_name == "broker-b")
        .unwrap();
    assert_eq!(bb.broker_addrs.len(), 1);

    // A slave's topic table does not define queues.
    let only_b: TopicRouteData = decode_json(&route_body(&mut admin, "OnlyB")).unwrap();
    assert_eq!(only_b.queue_datas.len(), 1);
    assert_eq!(only_b.queue_datas[0].broker_name, "broker-b");

    let resp = route(&mut admin, "Nope");
    assert_eq!(resp.code, ResponseCode::TOPIC_NOT_EXIST.num());
    assert!(resp.remark.unwrap().contains("Nope"));
    assert!(resp.body.is_empty());

    let resp = admin
        .invoke(RemotingCommand::request(
            RequestCode::GET_BROKER_CLUSTER_INFO,
            0,
        ))
        .unwrap();
    let info: ClusterInfo = decode_json(&resp.body).unwrap();
    let names: Vec<_> = info.cluster_addr_table["DefaultCluster"]
        .iter()
        .cloned()
        .collect();
    assert_eq!(names, vec!["broker-a", "broker-b"]);
    assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 2);
    assert_eq!(info.broker_addr_table["broker-b"].cluster, "DefaultCluster");

    let resp = admin
        .invoke(RemotingCommand::request(
            RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
            0,
        ))
        .unwrap();
    let topics: TopicList = decode_json(&resp.body).unwrap();
    let all: Vec<_> = topics.topic_list.iter().cloned().collect();
    assert_eq!(all, vec!["OnlyB", "TBW102", "TopicTest"]);

    let resp = admin
        .invoke(
            RemotingCommand::request(RequestCode::GET_TOPICS_BY_CLUSTER, 0)
                .with_ext("cluster", "DefaultCluster"),
        )
        .unwrap();
    assert_eq!(
        decode_json::<TopicList>(&resp.body)
            .unwrap()
            .topic_list
            .len(),
        3
    );

    // Write permission can be wiped and restored per broker name.
    let resp = admin
        .invoke(
            RemotingCommand::request(RequestCode::WIPE_WRITE_PERM_OF_BROKER, 0)
                .with_ext("brokerName", "broker-b"),
        )
        .unwrap();
    assert_eq!(resp.ext("wipeTopicCount"), Some("2"));
    let r: TopicRouteData = decode_json(&route_body(&mut admin, "OnlyB")).unwrap();
    assert_eq!(r.queue_datas[0].perm, 4);
    let resp = admin
        .invoke(
            RemotingCommand::request(RequestCode::ADD_WRITE_PERM_OF_BROKER, 0)
                .with_ext("brokerName", "broker-b"),
        )
        .unwrap();
    assert_eq!(resp.ext("addTopicCount"), Some("2"));

    // KV config.
    let put = RemotingCommand::request(RequestCode::PUT_KV_CONFIG, 0)
        .with_ext("namespace", "ns")
        .with_ext("key", "k")
        .with_ext("value", "v");
    assert_eq!(admin.invoke(put).unwrap().code, 0);
    let get = RemotingCommand::request(RequestCode::GET_KV_CONFIG, 0)
        .with_ext("namespace", "ns")
        .with_ext("key", "k");
    assert_eq!(admin.invoke(get.clone()).unwrap().ext("value"), Some("v"));
    let list = RemotingCommand::request(RequestCode::GET_KVLIST_BY_NAMESPACE, 0)
        .with_ext("namespace", "ns");
    let table: KvTable = decode_json(&admin.invoke(list).unwrap().body).unwrap();
    assert_eq!(table.table.get("k").map(String::as_str), Some("v"));
    let del = RemotingCommand::request(RequestCode::DELETE_KV_CONFIG, 0)
        .with_ext("namespace", "ns")
        .with_ext("key", "k");
    assert_eq!(admin.invoke(del).unwrap().code, 0);
    assert_eq!(
        admin.invoke(get).unwrap().code,
        ResponseCode::QUERY_NOT_FOUND.num()
    );

    // Deleting a topic removes its route.
    let del = RemotingCommand::request(RequestCode::DELETE_TOPIC_IN_NAMESRV, 0)
        .with_ext("topic", "OnlyB");
    assert_eq!(admin.invoke(del).unwrap().code, 0);
    assert_eq!(route(&mut admin, "OnlyB").code, 17);

    // Unregistering the master leaves the slave; closing broker-b's
    // connection removes it at once.
    let unreg = RemotingCommand::request(RequestCode::UNREGISTER_BROKER, 0)
        .with_ext("brokerName", "broker-a")
        .with_ext("brokerAddr", "10.0.0.1:10911")
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("brokerId", 0);
    assert_eq!(master.invoke(unreg).unwrap().code, 0);
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r: TopicRouteData = decode_json(&route_body(&mut admin, "TopicTest")).unwrap();
        if r.broker_datas.len() == 1 {
            assert_eq!(r.broker_datas[0].broker_addrs.len(), 1);
            assert_eq!(
                r.broker_datas[0].broker_addrs.get(&1).map(String::as_str),
                Some("10.0.0.2:10911")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker-b not removed after its connection closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn route_body(c: &mut BlockingClient, topic: &str) -> bytes::Bytes {
    let resp = route(c, topic);
    assert_eq!(resp.code, 0, "route of {topic}: {:?}", resp.remark);
    resp.body
}

#[test]
fn registration_expires() {
    let server = start(&["--broker-expiry-ms", "1000", "--scan-interval-ms", "100"]);
    let mut broker = client(&server.addr);
    let mut admin = client(&server.addr);
    assert_eq!(
        register(
            &mut broker,
            "broker-x",
            "10.0.0.9:10911",
            0,
            &[("Exp", 1)],
            false
        )
        .code,
        0
    );
    assert_eq!(route(&mut admin, "Exp").code, 0);
    let started = Instant::now();
    loop {
        // The broker's connection stays open: only the expiry can remove it.
        if route(&mut admin, "Exp").code == 17 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "registration never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Registering again brings it back.
    assert_eq!(
        register(
            &mut broker,
            "broker-x",
            "10.0.0.9:10911",
            0,
            &[("Exp", 1)],
            false
        )
        .code,
        0
    );
    assert_eq!(route(&mut admin, "Exp").code, 0);
}

#[test]
fn bad_input_closes_only_that_connection() {
    let server = start(&["--max-frame-size", "65536"]);
    let mut good = client(&server.addr);

    // Unknown code: code 3 with a remark naming it.
    let resp = good
        .invoke(RemotingCommand::request(RequestCode::Unknown(4242), 0))
        .unwrap();
    assert_eq!(resp.code, 3);
    assert!(resp.remark.unwrap().contains("4242"));
    // Missing header field: SYSTEM_ERROR naming it.
    let resp = good
        .invoke(RemotingCommand::request(
            RequestCode::GET_ROUTEINFO_BY_TOPIC,
            0,
        ))
        .unwrap();
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("topic"));
    // A CRC that does not match the body.
    let mut req = RemotingCommand::request(RequestCode::REGISTER_BROKER, 0)
        .with_ext("brokerName", "b")
        .with_ext("brokerAddr", "1.2.3.4:5")
        .with_ext("clusterName", "c")
        .with_ext("haServerAddr", "1.2.3.4:6")
        .with_ext("brokerId", 0)
        .with_ext("bodyCrc32", 12345);
    req.body = bytes::Bytes::from_static(b"{}");
    let resp = good.invoke(req).unwrap();
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("crc32"));

    let cases: Vec<Vec<u8>> = vec![
        // Garbage: a header length beyond the frame.
        b"\x00\x00\x00\x10\x00\x00\x0f\xffgarbage!garbage!".to_vec(),
        // JSON that is not a header.
        {
            let mut f = vec![0, 0, 0, 9, 0, 0, 0, 5];
            f.extend_from_slice(b"nope!");
            f
        },
        // An oversized frame (limit 64 KiB here).
        vec![0x00, 0x10, 0x00, 0x00, 0, 0, 0, 2, b'{', b'}'],
    ];
    for bytes in cases {
        let mut bad = TcpStream::connect(&server.addr).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        bad.write_all(&bytes).unwrap();
        let mut sink = [0u8; 16];
        let n = bad.read(&mut sink).unwrap_or(0);
        assert_eq!(n, 0, "connection should be closed without a reply");
        // The other client is still served.
        assert_eq!(route(&mut good, "Nope").code, 17);
    }
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

#[test]
fn metrics_endpoint_counts_brokers_topics_and_requests() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = start(&["--metrics-listen", &listen]);
    let before = scrape(port);
    assert!(
        before.contains("saturn_namesrv_topics{node_type=\"namesrv\"} 0\n"),
        "{before}"
    );
    let mut c = client(&server.addr);
    register(
        &mut c,
        "b-a",
        "10.0.0.1:10911",
        0,
        &[("T1", 4), ("T2", 2)],
        false,
    );
    register(
        &mut c,
        "b-a",
        "10.0.0.2:10911",
        1,
        &[("T1", 4), ("T2", 2)],
        false,
    );
    let text = scrape(port);
    assert!(
        text.contains("saturn_namesrv_topics{node_type=\"namesrv\"} 2\n"),
        "{text}"
    );
    let brokers = "saturn_namesrv_brokers{node_type=\"namesrv\",cluster=\"DefaultCluster\"} 2\n";
    assert!(text.contains(brokers), "{text}");
    assert!(
        text.contains("saturn_namesrv_requests_total{node_type=\"namesrv\"} 2\n"),
        "{text}"
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut other = String::new();
    s.read_to_string(&mut other).unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}
