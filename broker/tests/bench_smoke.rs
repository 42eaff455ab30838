//! A short run of every `saturn-bench` subcommand against a real broker:
//! every message sent is acknowledged, every message consumed is one that
//! was sent, intact, once.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Broker;

/// The saturn-bench binary of the same build profile, built if missing
/// (cargo only builds the binaries of the package under test).
fn bench_binary() -> PathBuf {
    let broker = PathBuf::from(env!("CARGO_BIN_EXE_saturn-broker"));
    let bench = broker.with_file_name("saturn-bench");
    if !bench.exists() {
        // The profile is the name of the directory holding the binary (`debug` is `dev`).
        let profile = broker
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .map_or("dev", |n| if n == "debug" { "dev" } else { n })
            .to_string();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", "saturn-bench", "--profile", &profile]);
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p saturn-bench failed");
    }
    assert!(bench.exists(), "{} is missing", bench.display());
    bench
}

fn run(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(bench_binary())
        .args(args)
        .arg("--json")
        .output()
        .expect("run saturn-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "saturn-bench {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

#[test]
fn every_subcommand_against_two_shards() {
    let broker = Broker::start("bench-smoke", &[]);
    let ns = broker.namesrv.clone();
    // "ready" comes before the shards' first registration reaches the name server; saturn-bench
    // needs them registered (it finds the brokers through the cluster list).
    broker.wait_route("TBW102", 2);

    let r = run(&[
        "produce",
        "--namesrv",
        &ns,
        "--topic",
        "Smoke",
        "--create-topic",
        "4",
        "--count",
        "3000",
        "--connections",
        "2",
        "--in-flight",
        "16",
    ]);
    assert_eq!(r[0]["messages"], 3000);
    assert!(r[0]["errors"].as_object().unwrap().is_empty());

    let r = run(&[
        "produce",
        "--namesrv",
        &ns,
        "--topic",
        "Smoke",
        "--count",
        "1600",
        "--batch",
        "16",
    ]);
    assert_eq!(r[0]["messages"], 1600);

    // Reads everything back: 4600 distinct bench messages, verified.
    let r = run(&[
        "consume",
        "--namesrv",
        &ns,
        "--topic",
        "Smoke",
        "--from-start",
        "--drain",
        "--verify",
        "--count",
        "4600",
    ]);
    assert_eq!(r[0]["messages"], 4600);
    assert!(r[0]["errors"].as_object().unwrap().is_empty());

    let r = run(&[
        "mixed",
        "--namesrv",
        &ns,
        "--topic",
        "Smoke",
        "--count",
        "2000",
        "--rate",
        "2000",
    ]);
    assert_eq!(r[0]["workload"], "mixed-send");
    assert_eq!(r[0]["messages"], 2000);
    assert_eq!(r[1]["workload"], "mixed-e2e");
    assert_eq!(
        r[1]["messages"], 2000,
        "the consumer saw every message sent during the run"
    );
    assert!(r[1]["latency"]["p50_us"].as_u64().unwrap() > 0);
}
