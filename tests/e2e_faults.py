#!/usr/bin/env python3
"""Disk faults through the broker, seen by real clients (issue 12, acceptance 2).

    SATURN_BROKER_BIN=target/test-opt/saturn-broker python3 tests/e2e_faults.py [--keep]

A `saturn-broker standalone --shards 2 --flush SYNC_FLUSH` (a build with debug assertions: the
fault hook, broker/src/fault_hook.rs, is off in release builds) runs with SATURN_TEST_FAULTS
pointing at a control file, so each shard's store sits on storage's FaultDisk. The official Java
client 4.9.8 sends (tests/java/faults/FaultSend.java, one JVM for the whole run): it reports the
broker's response code and remark after its retries on the other shard, where the C++ and Node
clients only say that every broker failed. The Python rocketmq 0.4.4 client pulls
(tests/clients/py_client.py).

  floor     free space faked below diskMinFreeBytes: sends refused with 14 "disk full ..."; the
            space back: sends accepted again without a restart
  enospc    every write fails with ENOSPC: sends refused with 14 "disk full ..."; writes allowed
            again: sends accepted again without a restart
  eio       every fdatasync fails with EIO: sends refused with 14 naming the failed fdatasync;
            every acknowledged message is pulled back intact from the read-only store
  restart   the broker restarted with the faults off: recovery keeps every acknowledged message,
            sends are accepted again, everything acknowledged is pulled back once

Every wait is bounded; every process started here is killed on the way out.
"""
import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import e2e_clients as base
from e2e_clients import LIVE, Broker, Ctx, Fail, check, kill_all, log

PULLER = "rocketmq-0.4.4"
TOPIC = "E2E_faults"
FLOOR = 64 << 20  # diskMinFreeBytes of the broker under test
JAVA_LIB = os.path.join(os.environ.get("JAVA_CACHE", os.path.join(base.REPO, ".cache", "java")),
                        "client-4.9.8", "lib")
SOURCE = os.path.join(base.HERE, "java", "faults", "FaultSend.java")


class Faults:
    """The control file of the broker's fault hook, and the shards' acknowledgements."""

    def __init__(self, path, shards):
        self.path = path
        self.shards = shards

    def set(self, text, timeout=15):
        with open(self.path + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(self.path + ".tmp", self.path)
        acks = ["%s.%d.applied" % (self.path, i) for i in range(self.shards)]
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(os.path.exists(a) and open(a).read() == text + "\n" for a in acks):
                return
            time.sleep(0.1)
        raise Fail("the broker did not apply %r within %ds" % (text, timeout))


class JavaSender:
    """One JVM of FaultSend: a send per request line, a result per answer line."""

    def __init__(self, run_dir, namesrv):
        classes = os.path.join(base.REPO, "target", "java", "faults")
        os.makedirs(classes, exist_ok=True)
        r = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-cp", os.path.join(JAVA_LIB, "*"),
                            "-d", classes, SOURCE], capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "javac FaultSend failed: %s" % (r.stdout + r.stderr))
        cmd = ["java", "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Dns=%s" % namesrv, "-Duser.home=%s" % os.path.join(run_dir, "java-home"),
               "-cp", classes + os.pathsep + os.path.join(JAVA_LIB, "*"), "FaultSend"]
        self.err = open(os.path.join(run_dir, "java.stderr"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     start_new_session=True)
        LIVE.add(self.proc)
        check(self._line(60) == "READY", "the Java producer did not start (see java.stderr)")

    def _line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        check(ready, "the Java producer did not answer within %ds" % timeout)
        return self.proc.stdout.readline().decode(errors="replace").rstrip("\n")

    def send(self, key):
        """(True, msgId) or (False, code, remark)."""
        self.proc.stdin.write(("send %s %s %s\n" % (TOPIC, key, body(key))).encode())
        self.proc.stdin.flush()
        line = self._line(60)
        if line.startswith("OK "):
            return True, line.split(" ", 2)[2]
        check(line.startswith("ERR "), "unexpected answer %r" % line)
        _, code, remark = (line.split(" ", 2) + [""])[:3]
        return False, int(code), remark


def body(key):
    return "%s-body-ü-€" % key


class Run:
    def __init__(self, broker, faults, sender, pull_ctx):
        self.broker, self.faults, self.sender, self.pull_ctx = broker, faults, sender, pull_ctx
        self.acked = []  # keys acknowledged
        self.maybe = []  # keys refused: after a failed sync they may still be stored
        self.n = 0

    def key(self, phase):
        self.n += 1
        return "%s-%d" % (phase, self.n)

    def send_ok(self, phase, count):
        for _ in range(count):
            k = self.key(phase)
            r = self.sender.send(k)
            check(r[0], "%s refused: %s" % (k, r[1:]))
            self.acked.append(k)

    def refused(self, phase, words, timeout=20):
        """Sends until one is refused (the broker notices some faults at its next check); it must
        be SERVICE_NOT_AVAILABLE (14) with `words` in the remark. Returns the remark."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            k = self.key(phase)
            r = self.sender.send(k)
            if r[0]:
                self.acked.append(k)
                time.sleep(0.3)
                continue
            self.maybe.append(k)
            _, code, remark = r
            check(code == 14 and all(w in remark for w in words),
                  "%s refused with %s %r, want 14 and %s" % (k, code, remark, words))
            return remark
        raise Fail("no send was refused with %s within %ds" % (words, timeout))

    def accepted_again(self, phase, timeout=20):
        """Sends until one is accepted; returns how many were refused first."""
        deadline = time.time() + timeout
        refused = 0
        while time.time() < deadline:
            k = self.key(phase)
            r = self.sender.send(k)
            if r[0]:
                self.acked.append(k)
                return refused
            check(r[1] == 14, "%s refused with %s %r" % (k, r[1], r[2]))
            self.maybe.append(k)
            refused += 1
            time.sleep(0.3)
        raise Fail("sends still refused %ds after the fault was lifted" % timeout)

    def pull_all(self, name):
        """Pulls the whole topic: every acknowledged message once and intact; a refused one at most
        once; nothing else. Returns how many were pulled."""
        p = self.pull_ctx.run(["pull", "--topic", TOPIC, "--group", "CG_%s" % name, "--timeout", "60",
                               "--max-num", "32", "--from-offset", "0"], name, 90)
        rc = p.wait()
        check(rc == 0, "%s: rc=%s %s" % (name, rc, p.summary()))
        seen = {}
        for m in p.messages():
            k = m.get("keys")
            check(m.get("body") == body(k), "%s: message %s has body %r" % (name, k, m.get("body")))
            seen[k] = seen.get(k, 0) + 1
        missing = [k for k in self.acked if k not in seen]
        check(not missing, "%s: %d acknowledged messages missing, e.g. %s" % (name, len(missing), missing[:5]))
        # An acknowledged message is stored once. A refused one may be stored by each attempt (the
        # client tries up to 3 times, on both shards) whose record reached the page cache before
        # the failed fdatasync: a process restart finds it there (at-least-once, as with RocketMQ).
        dups = [k for k, n in seen.items() if n > (1 if k in self.acked else 3)]
        check(not dups, "%s: pulled too often: %s" % (name, [(k, seen[k]) for k in dups[:5]]))
        stray = [k for k in seen if k not in self.acked and k not in self.maybe]
        check(not stray, "%s: messages never sent: %s" % (name, stray[:5]))
        return len(seen)


def scenario(run):
    notes = []
    run.send_ok("before", 30)
    run.faults.set("free %d" % (FLOOR // 2))
    remark = run.refused("floor", ["disk full", "diskMinFreeBytes"])
    run.faults.set("clear")
    n = run.accepted_again("floorfreed")
    run.send_ok("afterfloor", 10)
    notes.append("floor: 14 %r; accepted again after %d refusals, no restart" % (remark, n))

    run.faults.set("write-enospc")
    remark = run.refused("enospc", ["disk full"])
    run.faults.set("clear")
    n = run.accepted_again("enospcfreed")
    run.send_ok("afterenospc", 10)
    notes.append("ENOSPC: 14 %r; accepted again after %d refusals, no restart" % (remark, n))

    run.faults.set("sync-eio")
    remark = run.refused("eio", ["fdatasync"])
    r = run.sender.send(run.key("readonly"))
    check(not r[0] and r[1] == 14, "a send to the read-only store: %s" % (r,))
    n = run.pull_all("pull-readonly")
    notes.append("EIO: 14 %r; %d messages pulled from the read-only store" % (remark, n))
    return notes


def restart(run):
    run.faults.set("clear")
    run.broker.stop()
    run.broker.start()
    run.faults.set("clear")
    run.broker.wait_route(TOPIC)
    run.send_ok("restarted", 10)
    n = run.pull_all("pull-restarted")
    return "restart: sends accepted again; %d messages pulled back (%d acknowledged)" % (n, len(run.acked))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the run directory after a clean run")
    args = ap.parse_args()
    if not os.path.exists(base.CLIENTS[PULLER][0]):
        sys.exit("%s is not installed: run scripts/install-clients" % PULLER)
    if not os.path.isdir(JAVA_LIB):
        sys.exit("%s missing: run scripts/install-java" % JAVA_LIB)
    signal.signal(signal.SIGTERM, base._on_signal)
    signal.signal(signal.SIGINT, base._on_signal)
    run_dir = os.path.join(base.REPO, "target", "test-data", "e2e-faults-%d" % os.getpid())
    os.makedirs(run_dir, exist_ok=True)
    control = os.path.join(run_dir, "faults")
    os.environ["SATURN_TEST_FAULTS"] = control
    broker = Broker(run_dir, "broker")
    conf = os.path.join(run_dir, "broker.conf")
    with open(conf, "w") as f:
        f.write("diskMinFreeBytes=%d\n" % FLOOR)
    broker.extra_args = ["--flush", "SYNC_FLUSH", "-c", conf]
    t = time.time()
    ok = False
    try:
        broker.start()
        faults = Faults(control, len(broker.shards))
        faults.set("clear")
        broker.create_topic(TOPIC)
        broker.wait_route(TOPIC)
        sender = JavaSender(run_dir, broker.namesrv)
        run = Run(broker, faults, sender, Ctx(PULLER, broker, run_dir, 0))
        notes = scenario(run)
        notes.append(restart(run))
        for n in notes:
            log("PASS %s" % n)
        ok = True
    except Fail as e:
        log("FAIL %s (broker log %s)" % (e, broker.log_path))
    finally:
        broker.stop()
        kill_all()
    log("%s in %.1fs" % ("all passed" if ok else "FAILED", time.time() - t))
    if ok and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
