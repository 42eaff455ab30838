#!/usr/bin/env python3
"""End-to-end tests: Apache RocketMQ's official Java client (remoting) against a real saturn-broker.

    scripts/install-java && cargo build --release -p saturn-broker
    python3 tests/e2e_java.py [--clients 4.9.8,5.3.3] [--serialize json,rocketmq] [--only case,...] [--keep]

The suite is tests/java/client/Suite.java: one source, compiled with javac against each client's
jars (.cache/java/client-<version>/lib, from scripts/install-java) into target/java/<version>. It
runs four times by default: rocketmq-client 4.9.8 and 5.3.3, each with JSON headers and with
binary headers (-Drocketmq.serialize.type=ROCKETMQ). Every run gets a fresh
`target/release/saturn-broker standalone --shards 2` on free loopback ports with its data under
target/test-data/e2e-java-* (started and stopped by tests/e2e_clients.py's Broker) and one JVM
that executes every case, printing one PASS/FAIL line per case with its reason.

Every wait is bounded (each case by the suite's own per-case timeout, each JVM by --jvm-timeout);
every process started here is killed on the way out. Prints a PASS/FAIL table and each run's wall
time; exit status 1 when anything failed. Logs (broker, JVM stderr, client logs under the run's
home directory) stay under the run directory, which is removed after a clean run unless --keep.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import e2e_clients as base
from e2e_clients import Broker, Fail, LIVE, kill_all, kill_proc, log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SOURCE = os.path.join(HERE, "java", "client", "Suite.java")
JAVA_CACHE = os.environ.get("JAVA_CACHE", os.path.join(REPO, ".cache", "java"))
VERSIONS = ["4.9.8", "5.3.3"]
SERIALIZE = ["json", "rocketmq"]
# Transaction checks a second after the half message, every second, at most 3 times (the suite's
# transaction_check case; RocketMQ's defaults are 6 s, 30-60 s and 15).
TX_CONF = {"transactionTimeOut": 1000, "transactionCheckInterval": 1000, "transactionCheckMax": 3}
LINE = re.compile(r"^(PASS|FAIL) (\S+) (\d+)ms ?(.*)$")


def lib_dir(version):
    return os.path.join(JAVA_CACHE, "client-%s" % version, "lib")


def compile_suite(version):
    """javac the suite against the version's jars; returns the class directory."""
    out = os.path.join(REPO, "target", "java", version)
    os.makedirs(out, exist_ok=True)
    cmd = ["javac", "-nowarn", "-encoding", "UTF-8", "-cp", os.path.join(lib_dir(version), "*"), "-d", out, SOURCE]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise Fail("javac against client %s failed:\n%s" % (version, r.stdout + r.stderr))
    return out


def run_jvm(classes, version, serialize, broker, run_dir, args):
    """One JVM over every case; returns {case: (PASS|FAIL, note)} in the order printed."""
    home = os.path.join(run_dir, "home")
    os.makedirs(home, exist_ok=True)
    props = ["-Dns=%s" % broker.namesrv, "-Drun=%d" % (os.getpid() % 100000), "-Duser.home=%s" % home,
             "-Dshards=%d" % len(broker.shards),
             # Rebalance every second instead of every 20 s (consumers joining a group).
             "-Drocketmq.client.rebalance.waitInterval=1000"]
    if serialize == "rocketmq":
        props.append("-Drocketmq.serialize.type=ROCKETMQ")
    # A short-lived JVM on two shared cores: C1 only and the serial collector keep its CPU low.
    cmd = ["java", "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"] + props + [
        "-cp", classes + os.pathsep + os.path.join(lib_dir(version), "*"), "Suite"] + args.only
    err_path = os.path.join(run_dir, "jvm.stderr")
    results = {}
    with open(err_path, "ab") as errf, open(os.path.join(run_dir, "jvm.stdout"), "ab") as keep:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, cwd=run_dir, start_new_session=True)
        LIVE.add(proc)
        deadline = time.time() + args.jvm_timeout
        try:
            for raw in proc.stdout:
                keep.write(raw)
                line = raw.decode(errors="replace").rstrip("\n")
                m = LINE.match(line)
                if m:
                    results[m.group(2)] = (m.group(1), "%s (%.1fs)" % (m.group(4), int(m.group(3)) / 1000))
                    log("java %s/%s %s %s" % (version, serialize, m.group(1), m.group(2)))
                elif line.startswith(("CLIENT ", "SUMMARY ")):
                    log("java %s/%s %s" % (version, serialize, line))
                    if line.startswith("CLIENT ") and "serialize=%s " % serialize.upper() not in line:
                        results["serialize"] = ("FAIL", "the client does not use %s headers: %s" % (
                            serialize.upper(), line))
                if time.time() > deadline:
                    break
            proc.wait(max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:
            results["jvm"] = ("FAIL", "killed after %d s" % args.jvm_timeout)
        elif proc.returncode not in (0, 1):
            results["jvm"] = ("FAIL", "exited with %s (see %s)" % (proc.returncode, err_path))
        kill_proc(proc)
    return results


def run_one(version, serialize, classes, run_root, args):
    name = "java-%s-%s" % (version.replace(".", ""), serialize)
    broker = Broker(run_root, name, conf=TX_CONF)  # makes a fresh directory for the run
    run_dir = broker.dir
    t = time.time()
    try:
        broker.start()
        results = run_jvm(classes, version, serialize, broker, run_dir, args)
        if broker.proc.poll() is not None:
            results["broker"] = ("FAIL", "the broker exited with %s" % broker.proc.returncode)
    except Fail as e:
        results = {"broker": ("FAIL", str(e))}
    finally:
        broker.stop()
    return results, time.time() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default=",".join(VERSIONS))
    ap.add_argument("--serialize", default=",".join(SERIALIZE))
    ap.add_argument("--only", default="", help="comma-separated cases of Suite.java (default: all)")
    ap.add_argument("--jvm-timeout", type=int, default=300, help="seconds one JVM may run (default 300)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory even when everything passed")
    args = ap.parse_args()
    args.only = [s for s in args.only.split(",") if s]
    versions = [v for v in args.clients.split(",") if v]
    serializations = [s for s in args.serialize.split(",") if s]
    for v in versions:
        if not os.path.isdir(lib_dir(v)):
            sys.exit("%s missing: run scripts/install-java" % lib_dir(v))
    for s in serializations:
        if s not in SERIALIZE:
            sys.exit("unknown serialization %s (have %s)" % (s, ", ".join(SERIALIZE)))
    if not os.path.exists(base.BROKER_BIN):
        sys.exit("%s missing: cargo build --release -p saturn-broker" % base.BROKER_BIN)
    signal.signal(signal.SIGTERM, base._on_signal)
    signal.signal(signal.SIGINT, base._on_signal)
    run_root = os.path.join(REPO, "target", "test-data", "e2e-java-%d" % os.getpid())
    os.makedirs(run_root, exist_ok=True)
    log("run directory %s" % run_root)

    runs = []  # (title, results, seconds)
    for v in versions:
        try:
            classes = compile_suite(v)
        except Fail as e:
            runs.append(("%s" % v, {"javac": ("FAIL", str(e))}, 0.0))
            continue
        for s in serializations:
            results, took = run_one(v, s, classes, run_root, args)
            runs.append(("%s %s" % (v, s.upper()), results, took))
            log("java %s %s: %.1fs" % (v, s, took))
    kill_all()
    return report(runs, run_root, args)


def report(runs, run_root, args):
    cases = []
    for _, results, _ in runs:
        cases += [c for c in results if c not in cases]
    w = max([len(t) for t, _, _ in runs] + [8]) + 2
    cw = max([len(c) for c in cases] + [8]) + 1
    print()
    print("%-*s" % (cw, "case") + "".join("%-*s" % (w, t) for t, _, _ in runs))
    failed = 0
    for c in cases:
        row = [results.get(c, ("-", ""))[0] for _, results, _ in runs]
        failed += sum(1 for r in row if r in ("FAIL", "-"))
        print("%-*s" % (cw, c) + "".join("%-*s" % (w, r) for r in row))
    print("%-*s" % (cw, "time") + "".join("%-*s" % (w, "%.0fs" % took) for _, _, took in runs))
    print()
    for title, results, _ in runs:
        for c, (status, note) in results.items():
            print("%s %-22s %-4s %s" % (title, c, status, note))
    print("\ntotal %.0fs; %s" % (time.time() - base.T0, "all passed" if not failed else "%d FAILED" % failed))
    if not failed and not args.keep:
        shutil.rmtree(run_root, ignore_errors=True)
    else:
        print("logs: %s" % run_root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
