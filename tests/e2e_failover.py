#!/usr/bin/env python3
"""Consumers fail over to the slave and back (issue 15, acceptance 3).

    SATURN_BROKER_BIN=target/test-opt/saturn-broker python3 tests/e2e_failover.py [--keep]

A `saturn-namesrv`, a master (`saturn-broker -c master.conf --shards 2`, ASYNC_MASTER) and its
slave (brokerRole=SLAVE, brokerId=1, same brokerName and shards) on loopback. The Python client
rocketmq 0.4.4 produces N messages; once the slave has every one, two push consumers start, each
in its own group: the official Java client 4.9.8 (tests/java/failover/FailoverConsume.java) and
rocketmq 0.4.4 (tests/clients/py_client.py). Each consumes slowly; when both have consumed a
quarter, the master is killed with SIGKILL. Checked:

  1. both keep consuming from the slave: every message sent before the kill arrives;
  2. the Java client's offsets are committed meanwhile: they go to the slave (its client sends
     them to any broker of the name when the master is gone), whose offsets of the group reach N;
     then the Java consumer stops. rocketmq 0.4.4 (rocketmq-client-cpp 1.x) keeps the dead
     master's address and sends its offsets only there, so it keeps running through step 3;
  3. the master restarts from its own (older) state: the Java group's offsets on the master
     reach N (forwarded by the slave), the Python group's too (its client commits to the master
     again once it is back); the slave's offsets of both groups are N afterwards;
  4. a new consumer of each group, started after the master is back, receives nothing again
     (the duplicate bound after the switch back is 0); the duplicates during the failover (the
     messages a consumer received twice) are counted and printed.

Every wait is bounded; every process started here is killed on the way out.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import e2e_clients as base
from e2e_clients import LIVE, Fail, check, kill_all, kill_proc, log, rpc

NAMESRV_BIN = os.path.join(os.path.dirname(base.BROKER_BIN), "saturn-namesrv")
JAVA_LIB = os.path.join(os.environ.get("JAVA_CACHE", os.path.join(base.REPO, ".cache", "java")),
                        "client-4.9.8", "lib")
JAVA_SRC = os.path.join(base.HERE, "java", "failover", "FailoverConsume.java")
TOPIC = "E2E_failover"
N = 400
GROUPS = {"java": "CG_failover_java", "python": "CG_failover_py"}
QUEUES = 4


class Proc:
    """A process whose stdout lines are kept; stderr goes to a log file."""

    def __init__(self, name, cmd, run_dir, env=None):
        self.name = name
        self.lines = []
        self.lock = threading.Lock()
        self.err = open(os.path.join(run_dir, name + ".log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, env=env, cwd=base.REPO,
                                     start_new_session=True)
        LIVE.add(self.proc)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def lines_with(self, prefix):
        with self.lock:
            return [l for l in self.lines if l.startswith(prefix)]

    def wait_line(self, prefix, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.lines_with(prefix)
            if found:
                return found[0]
            check(self.proc.poll() is None, "%s exited (rc %s)" % (self.name, self.proc.returncode))
            time.sleep(0.1)
        raise Fail("%s: no %r line within %ds" % (self.name, prefix, timeout))

    def stop(self, grace=10.0):
        kill_proc(self.proc, grace=grace)


def wait_for(what, cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise Fail("never: %s (%ds)" % (what, timeout))


class Brokers:
    """The name server, the master and the slave."""

    def __init__(self, run_dir):
        self.dir = run_dir
        block = base.free_port_block(23000, 32)
        self.namesrv = "127.0.0.1:%d" % block
        self.ports = {"master": block + 4, "slave": block + 16}
        self.procs = {}
        self.shards = {}
        self.ns = Proc("namesrv", [NAMESRV_BIN, "--listen", self.namesrv], run_dir)
        time.sleep(0.3)

    def start(self, role):
        conf = os.path.join(self.dir, role + ".conf")
        lines = ["brokerClusterName=DefaultCluster", "brokerName=saturn", "brokerIP1=127.0.0.1",
                 "namesrvAddr=" + self.namesrv, "listenPort=%d" % self.ports[role],
                 "storePathRootDir=" + os.path.join(self.dir, "data-" + role)]
        lines += ["brokerId=0", "brokerRole=ASYNC_MASTER"] if role == "master" else \
            ["brokerId=1", "brokerRole=SLAVE"]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ, RUST_LOG=os.environ.get("E2E_RUST_LOG", "info"))
        p = Proc(role, [base.BROKER_BIN, "-c", conf, "--shards", "2", "--no-pin", "--segment-size",
                        str(64 << 20)], self.dir, env)
        self.procs[role] = p
        self.shards[role] = p.wait_line("saturn-broker ready: ", 60).split(": ", 1)[1].split()
        log("%s up: %s" % (role, " ".join(self.shards[role])))

    def kill(self, role):
        p = self.procs.pop(role)
        p.proc.send_signal(signal.SIGKILL)
        p.proc.wait(10)
        LIVE.discard(p.proc)

    def offsets(self, role, group):
        """Committed offsets of `group` on `role`'s shards, summed over the topic's queues."""
        total = 0
        for addr in self.shards[role]:
            for q in range(QUEUES):
                code, ext, _, _ = rpc(addr, base.QUERY_CONSUMER_OFFSET, {
                    "consumerGroup": group, "topic": TOPIC, "queueId": q, "setZeroIfNotFound": "false"})
                total += int(ext["offset"]) if code == 0 else 0
        return total

    def max_offsets(self, role):
        out = []
        for addr in self.shards[role]:
            for q in range(QUEUES):
                code, ext, _, _ = rpc(addr, base.GET_MAX_OFFSET, {"topic": TOPIC, "queueId": q})
                out.append(int(ext.get("offset", -1)) if code == 0 else -1)
        return out


def java_consumer(run_dir, namesrv, group, name, seconds, sleep_ms):
    classes = os.path.join(base.REPO, "target", "java", "failover")
    os.makedirs(classes, exist_ok=True)
    r = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-cp", os.path.join(JAVA_LIB, "*"), "-d",
                        classes, JAVA_SRC], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "javac FailoverConsume failed: %s" % (r.stdout + r.stderr))
    home = os.path.join(run_dir, "java-home")
    cmd = ["java", "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Dns=" + namesrv,
           "-Dgroup=" + group, "-Dtopic=" + TOPIC, "-DsleepMs=%d" % sleep_ms, "-Dseconds=%d" % seconds,
           "-Duser.home=" + home, "-cp", classes + os.pathsep + os.path.join(JAVA_LIB, "*"), "FailoverConsume"]
    return Proc(name, cmd, run_dir)


def py_client(run_dir, namesrv, name, args):
    env = dict(os.environ, SATURN_CLIENT_HOME=os.path.join(run_dir, "py-home"))
    return Proc(name, base.CLIENTS["rocketmq-0.4.4"] + args + ["--namesrv", namesrv], run_dir, env)


def bodies(p):
    """Bodies a consumer printed: (all, distinct)."""
    if p.name.startswith("java"):
        got = [l.split(" ", 4)[4] for l in p.lines_with("MSG ")]
    else:
        import json
        got = [json.loads(l).get("body") for l in p.lines_with('{"event": "message"')]
    return got, set(got)


def produce(b):
    p = py_client(b.dir, b.namesrv, "producer", ["produce", "--topic", TOPIC, "--count", str(N), "--mode", "sync",
                                                 "--group", "PG_failover", "--body-prefix", "fo-",
                                                 "--timeout", "120", "--retries", "3"])
    p.proc.wait(150)
    sent = [l for l in p.lines_with('{"event": "sent"')]
    check(len(sent) == N, "producer: %d of %d acknowledged (see producer.log)" % (len(sent), N))
    wait_for("the slave has every message", lambda: b.max_offsets("slave") == b.max_offsets("master"), 30)
    check(sum(b.max_offsets("master")) == N, "master holds %d" % sum(b.max_offsets("master")))


def consume_through_kill(b):
    consumers = {
        "java": java_consumer(b.dir, b.namesrv, GROUPS["java"], "java-1", 300, 40),
        "python": py_client(b.dir, b.namesrv, "python-1", [
            "consume", "--topic", TOPIC, "--group", GROUPS["python"], "--expect", str(N), "--timeout", "300",
            "--sleep-ms", "40", "--threads", "1", "--grace", "600"]),
    }
    wait_for("both consumers at a quarter",
             lambda: all(len(bodies(c)[1]) >= N // 4 for c in consumers.values()), 120)
    before = {k: len(bodies(c)[1]) for k, c in consumers.items()}
    b.kill("master")
    log("master killed (SIGKILL) with %s consumed" % before)
    t0 = time.time()
    wait_for("every message consumed from the slave",
             lambda: all(len(bodies(c)[1]) >= N for c in consumers.values()), 180)
    log("every message consumed %.1fs after the kill" % (time.time() - t0))
    for k, c in consumers.items():
        got, distinct = bodies(c)
        check(len(distinct) == N, "%s consumed %d distinct of %d" % (k, len(distinct), N))
        log("%s: %d delivered, %d distinct, %d duplicates during the failover" %
            (k, len(got), len(distinct), len(got) - len(distinct)))
    wait_for("java offsets committed on the slave", lambda: b.offsets("slave", GROUPS["java"]) >= N, 60)
    log("offsets on the slave: %s" % {k: b.offsets("slave", g) for k, g in GROUPS.items()})
    consumers["java"].stop(grace=10)
    return consumers["python"]


def master_returns(b, python):
    b.start("master")
    t0 = time.time()
    for k, g in GROUPS.items():
        wait_for("%s offsets on the restarted master" % k, lambda g=g: b.offsets("master", g) >= N, 30)
        log("%s: the restarted master has offsets %d, %.1fs after its start" %
            (k, b.offsets("master", g), time.time() - t0))
    python.stop(grace=10)
    for k, g in GROUPS.items():
        wait_for("%s offsets on the slave at N" % k, lambda g=g: b.offsets("slave", g) == N, 10)
    # New consumers of the same groups: nothing is delivered again.
    java = java_consumer(b.dir, b.namesrv, GROUPS["java"], "java-2", 12, 0)
    py = py_client(b.dir, b.namesrv, "python-2", ["consume", "--topic", TOPIC, "--group", GROUPS["python"],
                                                  "--expect", "1", "--timeout", "12"])
    java.wait_line("END", 60)
    py.proc.wait(60)
    for k, p in (("java", java), ("python", py)):
        got, _ = bodies(p)
        check(not got, "%s: %d messages delivered again after the master returned" % (k, len(got)))
        log("%s: a new consumer of the group after the master returned received 0 messages" % k)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (kill_all(), sys.exit(143)))
    run_dir = os.path.join(base.REPO, "target", "test-data", "e2e-failover-%d" % os.getpid())
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    ok = False
    try:
        b = Brokers(run_dir)
        b.start("master")
        b.start("slave")
        code, _, remark, _ = rpc(b.shards["master"][0], base.UPDATE_AND_CREATE_TOPIC, {
            "topic": TOPIC, "defaultTopic": "TBW102", "readQueueNums": QUEUES, "writeQueueNums": QUEUES,
            "perm": 6, "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": "false"})
        check(code == 0, "create topic: %s %s" % (code, remark))
        wait_for("the slave has the topic", lambda: all(o == 0 for o in b.max_offsets("slave")), 30)
        produce(b)
        python = consume_through_kill(b)
        master_returns(b, python)
        ok = True
        log("PASS failover")
    except Fail as e:
        log("FAIL failover: %s (logs in %s)" % (e, run_dir))
    finally:
        kill_all()
    if ok and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
