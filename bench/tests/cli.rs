//! The command line refuses unbounded or non-loopback runs before touching
//! the network. (Also makes `cargo test --workspace` build the binary that
//! the broker's bench smoke test runs.)

use std::process::Command;

fn bench(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_saturn-bench"))
        .args(args)
        .output()
        .expect("run saturn-bench");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_run_is_bounded() {
    let (code, err) = bench(&["produce", "--namesrv", "127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--duration or --count"), "{err}");
    let (code, err) = bench(&["produce", "--duration", "7200", "--namesrv", "127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("3600"), "{err}");
}

#[test]
fn only_loopback_by_default() {
    let (code, err) = bench(&["consume", "--drain", "--namesrv", "192.0.2.1:9876"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a loopback address"), "{err}");
}
