#!/usr/bin/env python3
"""mqadmin (Apache RocketMQ's rocketmq-tools, 4.9.8 and 5.3.3) against a real saturn-broker.

    scripts/install-java && cargo build --release -p saturn-broker
    python3 tests/e2e_mqadmin.py [--versions 4.9.8,5.3.3] [--keep] [--dump]

Per tools version: a fresh `target/release/saturn-broker standalone --shards 2` (started as
tests/e2e_clients.py starts it, data under target/test-data/e2e-mqadmin-*), a small Java program
beside it with a producer that keeps sending and a push consumer that keeps consuming
(tests/java/admin/AdminClients.java), and one JVM running every mqadmin command line in turn
(tests/java/admin/AdminDriver.java calls MQAdminStartup.main0 per line and captures what it
prints). mqadmin exits 0 even when a command fails, so every check reads the printed answer and
compares it with what Saturn holds, asked over the remoting protocol: topics and queue counts,
offsets, message bodies and keys, group members, configs round-tripping, rates above zero while
traffic flows. --dump prints every command's output. Prints a PASS/FAIL table; exit status 1 when
anything failed. Every process started here is killed on the way out.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_clients as E  # noqa: E402  (the broker and remoting helpers)

REPO = E.REPO
JAVA_SRC = os.path.join(HERE, "java", "admin")
JAVA_CACHE = os.path.join(REPO, ".cache", "java")
CLUSTER = "DefaultCluster"
LIVE_TOPIC, QUIET_TOPIC, SPARE_TOPIC = "AdmLive", "AdmQuiet", "AdmSpare"
PG, CG, OFFLINE_G, SUB_G = "AdmPG", "AdmCG", "AdmOffline", "AdmSubGroup"

GET_ALL_TOPIC_CONFIG = 21
GET_TOPIC_CONFIG = 351
UPDATE_CONSUMER_OFFSET = 15
GET_KV_CONFIG = 101
GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201

log = E.log
check = E.check
Fail = E.Fail


# ------------------------------------------------------------------------------------------ java
def java_lib(version):
    return os.path.join(JAVA_CACHE, "client-%s" % version, "lib")


def compile_java(version, out):
    os.makedirs(out, exist_ok=True)
    srcs = [os.path.join(JAVA_SRC, f) for f in ("AdminDriver.java", "AdminClients.java")]
    subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-cp", java_lib(version) + "/*", "-d", out] + srcs,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def java_cmd(version, classes, home, main, props=()):
    logback = os.path.join(JAVA_SRC, "conf", "rmq.tools.logback.xml")
    cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Duser.home=" + home,
           "-Drocketmq.home.dir=" + JAVA_SRC, "-Drmq.logback.configurationFile=" + logback,
           "-Dlogback.configurationFile=" + os.path.join(JAVA_SRC, "conf", "logback_tools.xml"),
           "-Drocketmq.client.logRoot=" + os.path.join(home, "logs")] + list(props)
    return cmd + ["-cp", classes + ":" + java_lib(version) + "/*", main]


class Admin:
    """One JVM that runs mqadmin command lines (AdminDriver)."""

    def __init__(self, version, classes, home, namesrv, dump, transcript):
        cmd = java_cmd(version, classes, home, "AdminDriver", ["-Djava.security.manager=allow"])
        # cwd: consumerStatus writes the running info it fetched into <cwd>/<timestamp>/.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True, cwd=home)
        E.LIVE.add(self.proc)
        self.namesrv = namesrv
        self.dump = dump
        self.transcript = transcript
        self.lines_q = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines_q.append(raw.decode("utf-8", errors="replace"))
                self.cond.notify_all()
        with self.cond:
            self.lines_q.append(None)
            self.cond.notify_all()

    def run(self, *args, timeout=60):
        """Runs `mqadmin args -n namesrv`; returns what it printed."""
        argv = list(args) + ["-n", self.namesrv]
        self.proc.stdin.write(("\t".join(argv) + "\n").encode())
        self.proc.stdin.flush()
        out = []
        deadline = time.time() + timeout
        with self.cond:
            while True:
                while not self.lines_q:
                    left = deadline - time.time()
                    if left <= 0:
                        raise Fail("mqadmin %s: no answer in %ds" % (args[0], timeout))
                    self.cond.wait(left)
                line = self.lines_q.pop(0)
                if line is None:
                    raise Fail("mqadmin JVM exited during %s" % args[0])
                if line.startswith("@@END "):
                    break
                out.append(line)
        text = "".join(out)
        self.transcript.write("$ mqadmin %s\n%s\n" % (" ".join(argv), text))
        self.transcript.flush()
        if self.dump:
            sys.stderr.write("---- mqadmin %s\n%s" % (" ".join(args), text))
        return text

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        E.kill_proc(self.proc)


class LiveClients:
    """AdminClients: a producer and a push consumer that keep running."""

    def __init__(self, version, classes, home, namesrv, run_dir):
        cmd = java_cmd(version, classes, home, "AdminClients") + [namesrv, LIVE_TOPIC, PG, CG, "20"]
        self.err = open(os.path.join(run_dir, "clients.stderr"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     start_new_session=True)
        E.LIVE.add(self.proc)
        self.events = []
        self.keep = open(os.path.join(run_dir, "clients.jsonl"), "ab", buffering=0)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.keep.write(raw)
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if e.get("event") == kind]

    def wait_for(self, what, pred, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.2)
        raise Fail("live clients: %s not seen in %ds (events %d)" % (what, timeout, len(self.events)))

    def close(self):
        E.kill_proc(self.proc)
        self.err.close()


# ------------------------------------------------------------------------------------------ saturn
class Ctx:
    def __init__(self, version, broker, admin, clients):
        self.version = version
        self.broker = broker
        self.admin = admin
        self.clients = clients
        self.names = {}  # brokerName -> addr
        self.quiet = []  # (brokerName, queueId, queueOffset, uniqId, key, body) sent by sendMessage
        self.t0 = int(time.time() * 1000)

    def run(self, *args, **kw):
        return self.admin.run(*args, **kw)

    def addr(self, name):
        return self.names[name]

    def shard_topics(self, addr):
        code, _, remark, body = E.rpc(addr, GET_ALL_TOPIC_CONFIG)
        check(code == 0, "GET_ALL_TOPIC_CONFIG: %s %s" % (code, remark))
        return json.loads(body)["topicConfigTable"]

    def max_offset(self, addr, topic, q):
        code, ext, remark, _ = E.rpc(addr, E.GET_MAX_OFFSET, {"topic": topic, "queueId": q})
        check(code == 0, "GET_MAX_OFFSET: %s %s" % (code, remark))
        return int(ext["offset"])

    def committed(self, addr, topic, group, q):
        code, ext, _, _ = E.rpc(addr, E.QUERY_CONSUMER_OFFSET, {"topic": topic, "consumerGroup": group,
                                                                "queueId": q, "setZeroIfNotFound": "false"})
        return int(ext["offset"]) if code == 0 else None

    def shard_messages(self, addr):
        """Messages stored by a shard since it started: every queue's max offset (a fresh store)."""
        return sum(self.max_offset(addr, t, q) for t, c in self.shard_topics(addr).items()
                   for q in range(max(c["writeQueueNums"], c["readQueueNums"])))

    def client_id(self, group):
        ids = set()
        for addr in self.broker.shards:
            code, _, _, body = E.rpc(addr, E.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": group})
            if code == 0:
                ids.update(json.loads(body).get("consumerIdList", []))
        check(len(ids) == 1, "group %s: one client id expected, got %s" % (group, ids))
        return ids.pop()


def numbers(line):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", line)]


def rows_with(text, *needles):
    return [l for l in text.splitlines() if all(n in l for n in needles)]


def no_error(text, what):
    bad = [l for l in text.splitlines() if "Exception" in l or "ERROR" in l]
    check(not bad, "%s failed: %s" % (what, " | ".join(bad[:3])))


# ------------------------------------------------------------------------------------------ scenarios
def sc_cluster(c):
    out = c.run("clusterList")
    no_error(out, "clusterList")
    for name, addr in c.names.items():
        rows = rows_with(out, CLUSTER, name + " ", addr)
        check(len(rows) == 1, "clusterList: no row for %s at %s" % (name, addr))
        in_tps = float(re.search(r"\s(\d+\.\d+)\(", rows[0]).group(1))
        check(in_tps > 0, "clusterList: InTPS of %s is %s while the producer sends" % (name, in_tps))
    return "both shards listed with InTPS > 0"


def sc_broker_status(c):
    name, addr = sorted(c.names.items())[0]
    before = c.shard_messages(addr)
    out = c.run("brokerStatus", "-b", addr)
    after = c.shard_messages(addr)
    no_error(out, "brokerStatus")
    kv = dict((k.strip(), v.strip()) for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l))
    check(kv.get("brokerName") == name, "brokerStatus: brokerName %s" % kv.get("brokerName"))
    puts = int(kv["msgPutTotalTodayNow"])
    check(before <= puts <= after, "brokerStatus: msgPutTotalTodayNow %d not within stored %d..%d" %
          (puts, before, after))
    tps = numbers(kv["putTps"])
    check(len(tps) == 3 and tps[0] > 0 and tps[1] > 0, "brokerStatus: putTps %s" % kv["putTps"])
    got = numbers(kv["getTransferedTps" if c.version.startswith("4") else "getTransferredTps"])
    check(got[1] > 0, "brokerStatus: get TPS %s while the consumer consumes" % got)
    check(int(kv["commitLogMaxOffset"]) > 0, "brokerStatus: commitLogMaxOffset")
    return "msgPutTotalTodayNow %d (stored %d..%d), putTps %s" % (puts, before, after, kv["putTps"])


def sc_update_topic(c):
    out = c.run("updateTopic", "-c", CLUSTER, "-t", QUIET_TOPIC, "-r", "4", "-w", "4")
    for addr in c.names.values():
        check("create topic to %s success" % addr in out, "updateTopic -c: no success for %s: %s" % (addr, out))
    first = sorted(c.names.values())[0]
    out = c.run("updateTopic", "-b", first, "-t", SPARE_TOPIC, "-r", "2", "-w", "2")
    check("create topic to %s success" % first in out, "updateTopic -b: %s" % out)
    for topic, queues in ((QUIET_TOPIC, 4), (SPARE_TOPIC, 2)):
        route = c.broker.wait_route(topic)
        qd = {q["brokerName"]: (q["readQueueNums"], q["writeQueueNums"]) for q in route["queueDatas"]}
        check(all(v == (queues, queues) for v in qd.values()) and len(qd) == 2,
              "updateTopic %s: route queue counts %s" % (topic, qd))
    return "%s 4/4 on both shards (-c), %s 2/2 (-b; a Saturn topic spans its shards)" % (QUIET_TOPIC, SPARE_TOPIC)


def sc_send_message(c):
    """sendMessage: 8 messages into the quiet topic, some to a chosen queue."""
    names = sorted(c.names)
    for i in range(8):
        args = ["sendMessage", "-t", QUIET_TOPIC, "-p", "quiet-body-%d" % i, "-k", "qkey-%d" % (i % 2),
                "-c", "TagQ"]
        if i < 4:
            args += ["-b", names[i % 2], "-i", str(i % 2)]
        out = c.run(*args)
        rows = [l.split() for l in out.splitlines() if "SEND_OK" in l]
        check(len(rows) == 1, "sendMessage %d: %s" % (i, out.strip()))
        row = rows[0]
        # #Broker Name #QID #Send Result #MsgId
        broker, qid, msg_id = row[0], int(row[1]), row[3]
        if i < 4:
            check((broker, qid) == (names[i % 2], i % 2), "sendMessage -b -i went to %s/%d" % (broker, qid))
        c.quiet.append({"broker": broker, "queue": qid, "uniq": msg_id, "key": "qkey-%d" % (i % 2),
                        "body": "quiet-body-%d" % i})
    # Queue offsets as Saturn holds them: the i-th message to a queue has offset i.
    per_queue = {}
    for m in c.quiet:
        k = (m["broker"], m["queue"])
        m["offset"] = per_queue.get(k, 0)
        per_queue[k] = m["offset"] + 1
    for (broker, q), n in per_queue.items():
        got = c.max_offset(c.addr(broker), QUIET_TOPIC, q)
        check(got == n, "sendMessage: %s queue %d holds %d, %d sent" % (broker, q, got, n))
    return "8 SEND_OK, stored where mqadmin said"


def sc_topic_list(c):
    code, _, remark, body = E.rpc(c.broker.namesrv, 206)
    check(code == 0, "GET_ALL_TOPIC_LIST_FROM_NAMESERVER: %s %s" % (code, remark))
    held = set(json.loads(body)["topicList"])
    out = c.run("topicList")
    listed = set(l.strip() for l in out.splitlines() if l.strip())
    check(listed == held, "topicList: printed %s, the name server holds %s" % (sorted(listed), sorted(held)))
    out = c.run("topicList", "-c")
    check(rows_with(out, CLUSTER, LIVE_TOPIC, CG), "topicList -c: no row %s %s %s" % (CLUSTER, LIVE_TOPIC, CG))
    check(rows_with(out, CLUSTER, QUIET_TOPIC), "topicList -c: no row for %s" % QUIET_TOPIC)
    return "%d topics as the name server holds them; -c shows %s consumed by %s" % (len(held), LIVE_TOPIC, CG)


def sc_topic_route(c):
    out = c.run("topicRoute", "-t", QUIET_TOPIC)
    route = c.broker.route(QUIET_TOPIC)
    for bd in route["brokerDatas"]:
        check('"brokerName":"%s"' % bd["brokerName"] in out and bd["brokerAddrs"]["0"] in out,
              "topicRoute: %s at %s missing" % (bd["brokerName"], bd["brokerAddrs"]["0"]))
    check(out.count('"readQueueNums":4') == 2 and out.count('"writeQueueNums":4') == 2 and
          out.count('"perm":6') == 2, "topicRoute: queue data differs from %s" % route["queueDatas"])
    out = c.run("topicClusterList", "-t", QUIET_TOPIC)
    check([l.strip() for l in out.splitlines() if l.strip()] == [CLUSTER], "topicClusterList: %r" % out)
    return "brokers, addresses, 4/4 queues and perm 6 as routed; topicClusterList %s" % CLUSTER


def sc_topic_status(c):
    out = c.run("topicStatus", "-t", QUIET_TOPIC)
    rows = [l.split() for l in out.splitlines() if l.startswith("saturn-")]
    check(len(rows) == 8, "topicStatus: %d rows, 8 queues" % len(rows))
    for r in rows:
        name, q, lo, hi = r[0], int(r[1]), int(r[2]), int(r[3])
        want = c.max_offset(c.addr(name), QUIET_TOPIC, q)
        check((lo, hi) == (0, want), "topicStatus %s/%d: %d..%d, Saturn holds 0..%d" % (name, q, lo, hi, want))
        check((len(r) > 4) == (want > 0), "topicStatus %s/%d: last-updated column %s" % (name, q, r[4:]))
    return "min/max offsets of all 8 queues as stored"


def parse_print(out):
    """printMsg / consumeMessage lines: body -> (brokerName, queueId, queueOffset, commitLogOffset)."""
    found = {}
    for l in out.splitlines():
        m = re.search(r"brokerName=([^,]+), queueId=(\d+),.*queueOffset=(\d+),.*commitLogOffset=(\d+),.*BODY: (.*)$", l)
        if m:
            found.setdefault(m.group(5), []).append((m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return found


def sc_print_msg(c):
    out = c.run("printMsg", "-t", QUIET_TOPIC, "-d", "true")
    found = parse_print(out)
    for m in c.quiet:
        got = found.get(m["body"], [])
        check(len(got) == 1, "printMsg: %s printed %d times" % (m["body"], len(got)))
        check(got[0][:3] == (m["broker"], m["queue"], m["offset"]), "printMsg: %s at %s, sent to %s/%d/%d" % (
            m["body"], got[0], m["broker"], m["queue"], m["offset"]))
        m["phys"] = got[0][3]
    check(len(found) == len(c.quiet), "printMsg: extra bodies %s" % sorted(found))
    m = c.quiet[0]
    out = c.run("printMsgByQueue", "-t", QUIET_TOPIC, "-a", m["broker"], "-i", str(m["queue"]), "-p", "true",
                "-d", "true")
    want = sorted(x["body"] for x in c.quiet if (x["broker"], x["queue"]) == (m["broker"], m["queue"]))
    got = sorted(b for b, v in parse_print(out).items() for _ in v)
    check(got == want, "printMsgByQueue %s/%d: %s, stored %s" % (m["broker"], m["queue"], got, want))
    return "every body once, at the queue and offset stored; printMsgByQueue %d bodies" % len(want)


def sc_consume_message(c):
    m = c.quiet[0]
    out = c.run("consumeMessage", "-t", QUIET_TOPIC, "-b", m["broker"], "-i", str(m["queue"]), "-o", "0", "-c", "10")
    want = sorted(x["body"] for x in c.quiet if (x["broker"], x["queue"]) == (m["broker"], m["queue"]))
    got = sorted(b for b, v in parse_print(out).items() for _ in v)
    check(got == want, "consumeMessage: %s, stored %s" % (got, want))
    return "%d bodies of %s/%d from offset 0" % (len(got), m["broker"], m["queue"])


def offset_msg_id(addr, phys):
    host, port = addr.rsplit(":", 1)
    return "".join("%02X" % int(x) for x in host.split(".")) + "%08X" % int(port) + "%016X" % phys


def msg_fields(out):
    return dict((k.strip(), v.strip()) for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l))


def sc_query_msg(c):
    m = c.quiet[5]
    out = c.run("queryMsgByUniqueKey", "-t", QUIET_TOPIC, "-i", m["uniq"])
    f = msg_fields(out)
    check(f.get("Topic") == QUIET_TOPIC and f.get("Keys") == "[%s]" % m["key"] and
          f.get("Queue ID") == str(m["queue"]) and f.get("Queue Offset") == str(m["offset"]) and
          f.get("CommitLog Offset") == str(m["phys"]) and f.get("Store Host") == c.addr(m["broker"]),
          "queryMsgByUniqueKey: %s" % f)
    oid = offset_msg_id(c.addr(m["broker"]), m["phys"])
    args = ["queryMsgById", "-i", oid] + (["-t", QUIET_TOPIC] if c.version.startswith("5") else [])
    f = msg_fields(c.run(*args))
    check(f.get("Topic") == QUIET_TOPIC and f.get("Keys") == "[%s]" % m["key"] and
          f.get("Queue Offset") == str(m["offset"]), "queryMsgById %s: %s" % (oid, f))
    f = msg_fields(c.run("queryMsgByOffset", "-t", QUIET_TOPIC, "-b", m["broker"], "-i", str(m["queue"]),
                         "-o", str(m["offset"])))
    check(f.get("OffsetID") == oid and f.get("Keys") == "[%s]" % m["key"], "queryMsgByOffset: %s" % f)
    out = c.run("queryMsgByKey", "-t", QUIET_TOPIC, "-k", "qkey-1")
    want = sorted((x["queue"], x["offset"]) for x in c.quiet if x["key"] == "qkey-1")
    got = sorted((int(r[1]), int(r[2])) for r in (l.split() for l in out.splitlines())
                 if len(r) >= 3 and re.fullmatch(r"[0-9A-F]{32,}", r[0]))
    check(got == want, "queryMsgByKey qkey-1: (queue, offset) %s, stored %s" % (got, want))
    return "by unique key, offset id %s, queue offset and key: the stored message; key qkey-1: %d" % (oid, len(got))


def sc_connections(c):
    cid = c.client_id(CG)
    out = c.run("consumerConnection", "-g", CG)
    check(rows_with(out, cid, "JAVA"), "consumerConnection: no row for %s" % cid)
    check(rows_with(out, LIVE_TOPIC, "*") and "CONSUME_FROM_FIRST_OFFSET" in out and "CLUSTERING" in out,
          "consumerConnection: subscription/model missing")
    code, _, remark, body = E.rpc(sorted(c.names.values())[0], 204, {"producerGroup": PG})
    check(code == 0, "GET_PRODUCER_CONNECTION_LIST: %s %s" % (code, remark))
    pid = json.loads(body)["connectionSet"][0]["clientId"]
    out = c.run("producerConnection", "-g", PG, "-t", LIVE_TOPIC)
    check(rows_with(out, pid, "JAVA"), "producerConnection: no row for %s: %r" % (pid, out))
    out = c.run("producer", "-b", sorted(c.names.values())[0])
    check(PG in out and pid in out, "producer: %s / %s missing: %r" % (PG, pid, out))
    return "consumer %s, producer %s (also in `producer`)" % (cid, pid)


def live_offsets(c, group):
    out = {}
    for name, addr in c.names.items():
        for q in range(4):
            out[(name, q)] = (c.committed(addr, LIVE_TOPIC, group, q), c.max_offset(addr, LIVE_TOPIC, q))
    return out


def sc_consumer_progress(c):
    before = live_offsets(c, CG)
    out = c.run("consumerProgress", "-g", CG)
    after = live_offsets(c, CG)
    rows = [l.split() for l in out.splitlines() if l.startswith(LIVE_TOPIC + " ")]
    check(len(rows) == 8, "consumerProgress -g: %d rows for %s" % (len(rows), LIVE_TOPIC))
    for r in rows:
        k = (r[1], int(r[2]))
        bo, co = int(r[3]), int(r[4])
        check(before[k][1] <= bo <= after[k][1], "consumerProgress %s: broker offset %d not in %d..%d" % (
            k, bo, before[k][1], after[k][1]))
        check(before[k][0] <= co <= after[k][0], "consumerProgress %s: consumer offset %d not in %d..%d" % (
            k, co, before[k][0], after[k][0]))
    tps = float(re.search(r"Consume TPS: ([\d.]+)", out).group(1))
    check(tps > 0, "consumerProgress: Consume TPS %s while consuming" % tps)
    out = c.run("consumerProgress")
    rows = rows_with(out, CG + " ", "PUSH", "CLUSTERING")
    check(len(rows) == 1, "consumerProgress: no row for %s: %r" % (CG, out))
    r = rows[0].split()
    check(int(r[1]) == 1 and float(r[5]) > 0, "consumerProgress: count/TPS %s" % r)
    return "8 queues' offsets as Saturn holds them, Consume TPS %.2f" % tps


def sc_consumer_status(c):
    cid = c.client_id(CG)
    out = c.run("consumerStatus", "-g", CG)
    check(rows_with(out, cid) and "Rebalance OK" in out, "consumerStatus: %r" % out)
    out = c.run("consumerStatus", "-g", CG, "-i", cid)
    f = msg_fields(out)
    check(f.get("consumerGroup") == CG and f.get("consumeFromWhere") == "CONSUME_FROM_FIRST_OFFSET",
          "consumerStatus -i: running info not relayed: %r" % out[:400])
    check(re.search(r"Topic: %s\s" % LIVE_TOPIC, out), "consumerStatus -i: subscription missing")
    return "GET_CONSUMER_RUNNING_INFO answered by the live consumer %s" % cid


def sc_consume_directly(c):
    cid = c.client_id(CG)
    first = c.clients.of("consumed")[0]
    oid = first["offsetMsgId"]
    args = ["queryMsgById", "-i", oid, "-g", CG, "-d", cid] + (["-t", LIVE_TOPIC] if c.version.startswith("5") else [])
    # The directly consumed message reaches the listener as a plain MessageExt (msgId = offset id).
    seen = lambda: sum(1 for e in c.clients.of("consumed") if oid in (e["offsetMsgId"], e["msgId"]))  # noqa: E731
    before = seen()
    out = c.run(*args)
    check("CR_SUCCESS" in out, "queryMsgById -g -d: %r" % out[-600:])
    c.clients.wait_for("the message consumed again", lambda: seen() > before, timeout=15)
    return "CONSUME_MESSAGE_DIRECTLY reached the consumer (CR_SUCCESS, its listener ran again)"


def sc_stats(c):
    out = c.run("statsAll")
    live = rows_with(out, LIVE_TOPIC + " ", CG)
    check(len(live) == 1, "statsAll: no %s/%s row" % (LIVE_TOPIC, CG))
    n = live[0].split()
    check(float(n[3]) > 0 and float(n[4]) > 0 and int(n[5]) > 0 and int(n[6]) > 0,
          "statsAll %s: in/out TPS and 24h counts %s" % (LIVE_TOPIC, n[2:]))
    quiet = rows_with(out, QUIET_TOPIC + " ")
    check(len(quiet) == 1 and quiet[0].split()[-2] == str(len(c.quiet)) and "NO_CONSUMER" in quiet[0],
          "statsAll %s: %r (%d sent)" % (QUIET_TOPIC, quiet, len(c.quiet)))
    first_name, first = sorted(c.names.items())[0]
    out = c.run("brokerConsumeStats", "-b", first)
    rows = [l.split() for l in out.splitlines() if l.startswith(LIVE_TOPIC + " ")]
    check(len(rows) == 4 and all(r[1] == CG and r[2] == first_name for r in rows),
          "brokerConsumeStats: rows %s" % rows)
    check(all(int(r[4]) - int(r[5]) == int(r[6]) for r in rows), "brokerConsumeStats: diff column")
    total = int(re.search(r"Diff Total: (\d+)", out).group(1))
    check(total == sum(int(r[6]) for r in rows), "brokerConsumeStats: Diff Total %d" % total)
    return "%s in %s/s out %s/s; %s: %d in; brokerConsumeStats 4 queues" % (
        LIVE_TOPIC, n[3], n[4], QUIET_TOPIC, len(c.quiet))


def sc_query_cq(c):
    m = c.quiet[0]
    addr = c.addr(m["broker"])
    out = c.run("queryCq", "-t", QUIET_TOPIC, "-q", str(m["queue"]), "-i", "0", "-c", "10", "-b", addr)
    want = [x["phys"] for x in sorted(c.quiet, key=lambda x: x["offset"])
            if (x["broker"], x["queue"]) == (m["broker"], m["queue"])]
    got = [int(x) for x in re.findall(r"physicOffset=(\d+)", out)]
    check(got == want, "queryCq: physic offsets %s, stored %s" % (got, want))
    check(re.search(r"max: %d, min: 0" % len(want), out), "queryCq: max/min line")
    tags = set(re.findall(r"tagsCode=(-?\d+)", out))
    check(tags == {str(java_hash("TagQ"))}, "queryCq: tags codes %s" % tags)
    return "%d entries: commit-log offsets and tag hash as stored" % len(got)


def java_hash(s):
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def sc_cluster_rt(c):
    out = c.admin.run("@@TIMEBOX", "6000", "clusterRT", "-a", "3", "-s", "64", "-c", CLUSTER, "-i", "60")
    for name in c.names:
        rows = [l.split() for l in out.splitlines() if l.startswith(CLUSTER) and l.split()[1] == name]
        check(rows and rows[0][3] == "3" and rows[0][4] == "0", "clusterRT %s: %s" % (name, rows))
    return "3 sends to each shard, none failed"


def config_of(text):
    return dict((k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in text.splitlines()
                                                    if "=" in l and not l.startswith("=")))


def sc_broker_config(c):
    (n0, a0), (n1, a1) = sorted(c.names.items())
    f = config_of(c.run("getBrokerConfig", "-b", a0))
    check(f.get("brokerName") == n0 and f.get("listenPort") == a0.rsplit(":", 1)[1], "getBrokerConfig: %s" % f)
    old = f["maxMessageSize"]
    out = c.run("updateBrokerConfig", "-b", a0, "-k", "maxMessageSize", "-v", "1048576")
    check("success" in out, "updateBrokerConfig: %r" % out)
    check(config_of(c.run("getBrokerConfig", "-b", a0)).get("maxMessageSize") == "1048576",
          "getBrokerConfig after update")
    check(config_of(c.run("getBrokerConfig", "-b", a1)).get("maxMessageSize") == old, "other shard changed")
    out = c.run("updateBrokerConfig", "-b", a0, "-k", "flushDiskType", "-v", "SYNC_FLUSH")
    check("CODE: 16" in out and "cannot change while Saturn runs" in out, "updateBrokerConfig refusal: %r" % out)
    c.run("updateBrokerConfig", "-b", a0, "-k", "maxMessageSize", "-v", old)
    return "maxMessageSize %s -> 1048576 -> %s round-trips; flushDiskType refused (code 16)" % (old, old)


def sc_namesrv_config(c):
    f = config_of(c.run("getNamesrvConfig"))
    code, _, _, body = E.rpc(c.broker.namesrv, 319)
    held = config_of(body.decode())
    check(f == held and "orderMessageEnable" in f, "getNamesrvConfig %s, name server %s" % (f, held))
    c.run("updateKvConfig", "-s", "AdmNs", "-k", "k1", "-v", "v1")
    code, ext, _, _ = E.rpc(c.broker.namesrv, GET_KV_CONFIG, {"namespace": "AdmNs", "key": "k1"})
    check(code == 0 and ext.get("value") == "v1", "updateKvConfig: GET_KV_CONFIG %s %s" % (code, ext))
    c.run("deleteKvConfig", "-s", "AdmNs", "-k", "k1")
    code, _, _, _ = E.rpc(c.broker.namesrv, GET_KV_CONFIG, {"namespace": "AdmNs", "key": "k1"})
    check(code == 22, "deleteKvConfig: GET_KV_CONFIG code %s" % code)
    return "getNamesrvConfig as held; kv AdmNs/k1 put then deleted"


def perms(c, topic):
    return {q["brokerName"]: q["perm"] for q in (c.broker.route(topic) or {}).get("queueDatas", [])}


def sc_topic_perm_delete(c):
    out = c.run("updateTopicPerm", "-t", SPARE_TOPIC, "-p", "4", "-c", CLUSTER)
    check(perms(c, SPARE_TOPIC) == {n: 4 for n in c.names}, "updateTopicPerm: %s (%r)" % (
        perms(c, SPARE_TOPIC), out))
    c.run("deleteTopic", "-t", SPARE_TOPIC, "-c", CLUSTER)
    check(c.broker.route(SPARE_TOPIC) is None, "deleteTopic: still routed")
    for addr in c.names.values():
        code, _, _, _ = E.rpc(addr, GET_TOPIC_CONFIG, {"topic": SPARE_TOPIC})
        check(code == 17, "deleteTopic: %s still has it (code %s)" % (addr, code))
    return "perm 4 on both shards; then gone from the name server and both shards"


def groups_of(addr):
    code, _, _, body = E.rpc(addr, GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
    check(code == 0, "GET_ALL_SUBSCRIPTIONGROUP_CONFIG %s" % code)
    return json.loads(body)["subscriptionGroupTable"]


def sc_sub_group(c):
    c.run("updateSubGroup", "-c", CLUSTER, "-g", SUB_G, "-r", "5", "-q", "2")
    for addr in c.names.values():
        g = groups_of(addr).get(SUB_G)
        check(g and g["retryMaxTimes"] == 5 and g["retryQueueNums"] == 2, "updateSubGroup at %s: %s" % (addr, g))
    c.run("deleteSubGroup", "-c", CLUSTER, "-g", SUB_G)
    for addr in c.names.values():
        check(SUB_G not in groups_of(addr), "deleteSubGroup: %s still at %s" % (SUB_G, addr))
    return "retryMaxTimes 5, retryQueueNums 2 on both shards; then deleted"


def sc_reset_online(c):
    out = c.run("resetOffsetByTime", "-g", CG, "-t", LIVE_TOPIC, "-s", str(c.t0))
    rows = [l.split() for l in out.splitlines() if l.startswith("saturn-")]
    check(len(rows) == 8 and all(r[-1] == "0" for r in rows), "resetOffsetByTime online: %r" % out)
    first = [e for e in c.clients.of("consumed") if e["body"] == "live-body-0"]
    c.clients.wait_for("live-body-0 consumed again after the reset", lambda: len(
        [e for e in c.clients.of("consumed") if e["body"] == "live-body-0"]) > len(first), timeout=30)
    return "8 queues back to 0, pushed to the consumer, which consumed from the start again"


def sc_reset_offline(c):
    for name, addr in c.names.items():
        for q in range(4):
            E.rpc(addr, UPDATE_CONSUMER_OFFSET, {"topic": QUIET_TOPIC, "consumerGroup": OFFLINE_G, "queueId": q,
                                                 "commitOffset": c.max_offset(addr, QUIET_TOPIC, q)})
    check(any(c.committed(a, QUIET_TOPIC, OFFLINE_G, q) for a in c.names.values() for q in range(4)),
          "resetOffsetByTime offline: nothing committed to reset")
    out = c.run("resetOffsetByTime", "-g", OFFLINE_G, "-t", QUIET_TOPIC, "-s", str(c.t0))
    rows = [l.split() for l in out.splitlines() if l.startswith("saturn-")]
    check(len(rows) == 8 and all(r[-1] == "0" for r in rows), "resetOffsetByTime offline: table %r" % out)
    for name, addr in c.names.items():
        for q in range(4):
            got = c.committed(addr, QUIET_TOPIC, OFFLINE_G, q)
            check(got == 0, "resetOffsetByTime offline: %s/%d at %s (%r)" % (name, q, got, out[-400:]))
    return "no consumer online: the broker stored the 8 offsets (0) itself and answered the table"


def sc_reset_to_offset(c):
    """5.x's resetOffsetByTime -b -q -o: one queue of the running group back to a given offset."""
    if not c.version.startswith("5"):
        return "n/a: %s's resetOffsetByTime has no -q/-o" % c.version
    name = sorted(c.names)[0]
    addr = c.addr(name)
    check(c.max_offset(addr, LIVE_TOPIC, 0) >= 2, "queue 0 of %s has fewer than 2 messages" % name)
    again = lambda: len([e for e in c.clients.of("consumed")  # noqa: E731
                         if e["broker"] == name and e["queueId"] == 0 and e["queueOffset"] == 1])
    before = again()
    out = c.run("resetOffsetByTime", "-g", CG, "-t", LIVE_TOPIC, "-s", "now", "-b", addr, "-q", "0", "-o", "1")
    check("reset consumer offset to 1" in out, "resetOffsetByTime -o 1: %r" % out)
    c.clients.wait_for("%s/0 offset 1 consumed again after the reset" % name, lambda: again() > before, timeout=30)
    return "%s queue 0 set to offset 1; the running consumer consumed offset 1 again" % name


def sc_write_perm(c):
    name = sorted(c.names)[0]
    out = c.run("wipeWritePerm", "-b", name)
    check("OK" in out, "wipeWritePerm: %r" % out)
    p = perms(c, LIVE_TOPIC)
    check(p[name] & 2 == 0 and all(v & 2 for n, v in p.items() if n != name), "wipeWritePerm: perms %s" % p)
    out = c.run("addWritePerm", "-b", name)
    check("OK" in out, "addWritePerm: %r" % out)
    p = perms(c, LIVE_TOPIC)
    check(all(v & 2 for v in p.values()), "addWritePerm: perms %s" % p)
    return "%s lost and regained the write bit in the route" % name


SCENARIOS = [("clusterList", sc_cluster), ("brokerStatus", sc_broker_status), ("updateTopic", sc_update_topic),
             ("sendMessage", sc_send_message), ("topicList", sc_topic_list), ("topicRoute", sc_topic_route),
             ("topicStatus", sc_topic_status), ("printMsg", sc_print_msg), ("consumeMessage", sc_consume_message),
             ("queryMsg", sc_query_msg), ("connections", sc_connections), ("consumerProgress", sc_consumer_progress),
             ("consumerStatus", sc_consumer_status), ("consumeDirectly", sc_consume_directly),
             ("stats", sc_stats), ("queryCq", sc_query_cq), ("clusterRT", sc_cluster_rt),
             ("brokerConfig", sc_broker_config), ("namesrvConfig", sc_namesrv_config),
             ("topicPermDelete", sc_topic_perm_delete), ("subGroup", sc_sub_group),
             ("resetOnline", sc_reset_online), ("resetOffline", sc_reset_offline),
             ("resetToOffset", sc_reset_to_offset), ("writePerm", sc_write_perm)]

def run_version(version, args, run_root):
    run_dir = os.path.join(run_root, version)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    classes = os.path.join(run_dir, "classes")
    compile_java(version, classes)
    home = os.path.join(run_dir, "home")
    os.makedirs(home)
    broker = E.Broker(run_dir, "broker")
    broker.start()
    results = []
    admin = clients = None
    transcript = open(os.path.join(run_dir, "mqadmin.txt"), "w")
    try:
        broker.create_topic(LIVE_TOPIC, 4)
        t0 = int(time.time() * 1000)
        clients = LiveClients(version, classes, home, broker.namesrv, run_dir)
        admin = Admin(version, classes, home, broker.namesrv, args.dump, transcript)
        c = Ctx(version, broker, admin, clients)
        c.names = broker.shard_names(LIVE_TOPIC)
        c.t0 = t0
        clients.wait_for("consumed messages on both shards",
                         lambda: len({e["broker"] for e in clients.of("consumed")}) == 2)
        for name, fn in SCENARIOS:
            if args.only and name not in args.only:
                continue
            t = time.time()
            try:
                note = fn(c)
                results.append((name, "PASS", note, time.time() - t))
            except Fail as e:
                results.append((name, "FAIL", str(e), time.time() - t))
            except Exception as e:  # a broken check is a failure too, with its type
                results.append((name, "FAIL", "%s: %s" % (type(e).__name__, e), time.time() - t))
            log("%s %s: %s" % (version, name, results[-1][1]))
    finally:
        if admin:
            admin.close()
        if clients:
            clients.close()
        broker.stop()
        transcript.close()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", default="4.9.8,5.3.3")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--dump", action="store_true", help="print every command's output")
    args = ap.parse_args()
    args.only = [s for s in args.only.split(",") if s]
    import signal
    signal.signal(signal.SIGTERM, E._on_signal)
    signal.signal(signal.SIGINT, E._on_signal)
    for v in args.versions.split(","):
        if not os.path.isdir(java_lib(v)):
            print("rocketmq-tools %s is not installed: run scripts/install-java" % v)
            return 1
    run_root = os.path.join(REPO, "target", "test-data", "e2e-mqadmin")
    table = []
    t0 = time.time()
    for v in args.versions.split(","):
        table += [(v,) + r for r in run_version(v, args, run_root)]
    print("\n%-6s %-22s %-5s %6s  %s" % ("tools", "command", "", "s", "what was checked / why it failed"))
    for v, name, status, note, secs in table:
        print("%-6s %-22s %-5s %6.1f  %s" % (v, name, status, secs, note))
    failed = [r for r in table if r[2] != "PASS"]
    print("\n%d checks, %d failed, %.0f s" % (len(table), len(failed), time.time() - t0))
    if not failed and not args.keep:
        shutil.rmtree(run_root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
