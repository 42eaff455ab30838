//! A shard whose disk has less free space than `diskMinFreeBytes` refuses sends with
//! SERVICE_NOT_AVAILABLE (14) and a "disk full" remark, as RocketMQ does, over real TCP.

mod common;

use common::*;
use protocol::ResponseCode;

#[test]
fn sends_below_the_free_space_floor_get_service_not_available() {
    // No disk here has an exabyte free.
    let broker = Broker::start_conf("disk-full", "diskMinFreeBytes=1000000000000000000\n", &[]);
    let mut s0 = broker.client(&broker.shards[0]);
    create_topic(&mut s0, "Full", 2);
    let resp = send(&mut s0, "Full", 0, b"refused", &[("UNIQ_KEY", "F1")]);
    assert_eq!(resp.code, ResponseCode::SERVICE_NOT_AVAILABLE.num());
    let remark = resp.remark.unwrap_or_default();
    assert!(remark.contains("disk full"), "{remark}");
    assert!(remark.contains("diskMinFreeBytes"), "{remark}");
}
