#!/usr/bin/env python3
"""saturn-admin (the mqadmin-compatible CLI) against a real `saturn-broker standalone --shards 2`.

    cargo build --profile test-opt -p saturn-broker -p saturn-admin
    SATURN_BROKER_BIN=target/test-opt/saturn-broker python3 tests/e2e_admin.py [--keep]

Runs every saturn-admin command (mostly with --json) and checks its answer against what the broker
holds, asked over the remoting protocol (tests/e2e_clients.py's rpc); for the commands that change
something, checks the broker or the name server afterwards. A real client (rocketmq 0.4.4, the
Python client's `probe`: a producer and a push consumer) stays online for the connection and
online-reset commands. Prints a PASS/FAIL line per check; exit status 1 when anything failed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_clients as E  # noqa: E402

# SATURN_ADMIN_BIN, else the saturn-admin beside the broker binary, else the test-opt build.
ADMIN_BIN = os.environ.get("SATURN_ADMIN_BIN") or next(
    (p for p in (os.path.join(os.path.dirname(E.BROKER_BIN), "saturn-admin"),
                 os.path.join(E.REPO, "target", "test-opt", "saturn-admin")) if os.path.exists(p)), "saturn-admin")
CLUSTER = "DefaultCluster"
TOPIC, GONE_TOPIC, GROUP = "AdmCliT", "AdmCliGone", "AdmCliG"
TRACE_TOPIC, TRACED = "RMQ_SYS_TRACE_TOPIC", "AdmTraced"
JAVA_LIB = os.path.join(E.REPO, ".cache", "java", "client-4.9.8", "lib")
TRACE_SRC = os.path.join(HERE, "java", "trace", "TraceProbe.java")
GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201
GET_BROKER_CONFIG = 26
QUERY_CONSUMER_OFFSET = 14
RESULTS = []


class Cli:
    def __init__(self, namesrv):
        self.namesrv = namesrv

    def run(self, *args, json_out=True, ok=True):
        cmd = [ADMIN_BIN] + list(args) + ["-n", self.namesrv] + (["--json"] if json_out else [])
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out, err = p.stdout.decode(), p.stderr.decode()
        if ok and p.returncode != 0:
            raise E.Fail("%s: exit %d: %s" % (" ".join(args), p.returncode, err.strip()))
        if not ok:
            return p.returncode, out, err
        return json.loads(out) if json_out else out


def step(name, fn):
    t = time.time()
    try:
        fn()
        RESULTS.append((name, "PASS", ""))
        E.log("PASS %s (%.1fs)" % (name, time.time() - t))
    except (E.Fail, ValueError, KeyError, IndexError, TypeError, AttributeError, OSError,
            subprocess.TimeoutExpired) as e:
        RESULTS.append((name, "FAIL", str(e)))
        E.log("FAIL %s: %s" % (name, e))


def groups_on(addr):
    code, _, remark, body = E.rpc(addr, GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
    E.check(code == 0, "201 on %s: %s %s" % (addr, code, remark))
    # Saturn writes standard JSON here (no MessageQueue keys).
    return json.loads(body)["subscriptionGroupTable"]


def broker_config(addr):
    code, _, _, body = E.rpc(addr, GET_BROKER_CONFIG)
    E.check(code == 0, "GET_BROKER_CONFIG on %s: %s" % (addr, code))
    return dict(l.split("=", 1) for l in body.decode().splitlines() if "=" in l)


def committed(broker, shard_addr, queue):
    code, ext, _, _ = E.rpc(shard_addr, QUERY_CONSUMER_OFFSET, {"consumerGroup": GROUP, "topic": TOPIC, "queueId": queue})
    return int(ext["offset"]) if code == 0 else None


def scrape(port):
    """{(family, frozenset(labels)): value} from the broker's Prometheus endpoint."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, rest = name_labels.partition("{")
        pairs = [kv.split("=", 1) for kv in rest.rstrip("}").split('",') if kv]
        out[(name, frozenset((k, v.strip('"')) for k, v in pairs))] = float(value)
    return out


def metric(samples, family, **want):
    """Sum of a family's samples whose labels include `want`."""
    return sum(v for (f, labels), v in samples.items()
               if f == family and all((k, w) in labels for k, w in want.items()))


class Scenario:
    def __init__(self, broker, run_dir, metrics_port):
        self.metrics_port = metrics_port
        self.b = broker
        self.cli = Cli(broker.namesrv)
        self.run_dir = run_dir
        self.sent = []  # the records sendMessage printed
        self.client = None

    # ------------------------------------------------------------------ cluster and topics
    def cluster_list(self):
        E.wait_for(lambda: len(self.cli.run("clusterList")) == 2, 20)
        rows = self.cli.run("clusterList")
        E.check(sorted(r["Addr"] for r in rows) == sorted(self.b.shards), "clusterList addrs %s" % rows)
        E.check(all(r["Cluster Name"] == CLUSTER and r["BID"] == 0 for r in rows), "clusterList rows %s" % rows)
        E.check(all(r["Version"] for r in rows), "clusterList versions %s" % rows)
        text = self.cli.run("clusterList", json_out=False)
        E.check(text.startswith("#Cluster Name") and "saturn-1" in text, "clusterList table:\n%s" % text)

    def trace_topic(self):
        # Created by the broker itself (traceTopicEnable, on by default), with topic auto-creation
        # off in this run's broker.conf: one queue per shard, readable and writable.
        route = self.b.wait_route(TRACE_TOPIC)
        E.check(sorted((q["brokerName"], q["writeQueueNums"], q["perm"]) for q in route["queueDatas"])
                == [("saturn-0", 1, 6), ("saturn-1", 1, 6)], "route of %s: %s" % (TRACE_TOPIC, route))

    def java_trace(self):
        """The Java client with enableMsgTrace=true and nothing else set up: its Pub and SubAfter
        traces land in RMQ_SYS_TRACE_TOPIC and are found by message id (the trace messages' key)."""
        classes = os.path.join(self.run_dir, "trace-classes")
        os.makedirs(classes, exist_ok=True)
        subprocess.run(["javac", "-nowarn", "-cp", JAVA_LIB + "/*", "-d", classes, TRACE_SRC], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        self.cli.run("updateTopic", "-c", CLUSTER, "-t", TRACED, "-r", "2", "-w", "2")
        self.b.wait_route(TRACED)
        home = os.path.join(self.run_dir, "java-home")
        cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Duser.home=" + home,
               "-Drocketmq.client.logRoot=" + os.path.join(home, "logs"), "-cp", classes + ":" + JAVA_LIB + "/*",
               "TraceProbe", self.b.namesrv, TRACED, "3"]
        jvm = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        E.LIVE.add(jvm)
        try:
            sent = []
            for raw in jvm.stdout:
                line = raw.decode().split()
                if line and line[0] == "SENT":
                    sent.append(line[1])
                if line and line[0] in ("ALL_CONSUMED", "NOT_ALL_CONSUMED"):
                    E.check(line[0] == "ALL_CONSUMED" and len(sent) == 3, "java trace probe: %s %s" % (line, sent))
                    break
            found = {}
            E.wait_for(lambda: self.traces_of(sent, found), 30, step=1.0)
            E.check(len(found) == 3, "traces found for %d of 3 messages: %s" % (len(found), found))
            rows = self.cli.run("queryMsgTraceById", "-i", sent[0])
            kinds = [r["Type"] for r in rows]
            E.check("Pub" in kinds and "SubAfter" in kinds, "queryMsgTraceById %s" % rows)
            pub = [r for r in rows if r["Type"] == "Pub"][0]
            E.check(pub["Topic"] == TRACED and pub["Group"] == "TraceProbePG" and pub["Status"] == "true",
                    "queryMsgTraceById Pub %s" % pub)
            sub = [r for r in rows if r["Type"] == "SubAfter"][0]
            E.check(sub["Status"] == "true", "queryMsgTraceById SubAfter %s" % sub)
            code, _, err = self.cli.run("queryMsgTraceById", "-i", "00" * 16, ok=False)
            E.check(code == 1 and "tracing is off" in err, "queryMsgTraceById of an untraced id: %s" % err)
        finally:
            jvm.stdin.close()
            E.kill_proc(jvm, grace=10)

    def traces_of(self, msg_ids, found):
        """Fills found[msgId] with the trace record types seen; true once each has Pub and SubAfter."""
        for mid in msg_ids:
            kinds = set()
            for row in self.cli.run("queryMsgByKey", "-t", TRACE_TOPIC, "-k", mid):
                body = self.cli.run("queryMsgById", "-i", row["OffsetID"])["Message Body"]
                for rec in body.split("\u0002"):
                    f = rec.split("\u0001")
                    if f[0] == "Pub" and len(f) > 13 and f[5] == mid and f[4] == TRACED and f[13] == "true":
                        kinds.add("Pub")
                    if f[0] == "SubAfter" and len(f) > 4 and f[2] == mid and f[4] == "true":
                        kinds.add("SubAfter")
            if kinds == {"Pub", "SubAfter"}:
                found[mid] = sorted(kinds)
        return len(found) == len(msg_ids)

    def update_topic(self):
        rows = self.cli.run("updateTopic", "-c", CLUSTER, "-t", TOPIC, "-r", "4", "-w", "4")
        E.check(len(rows) == 2 and all(r["Result"] == "OK" for r in rows), "updateTopic %s" % rows)
        route = self.b.wait_route(TOPIC)
        E.check(sorted((q["brokerName"], q["readQueueNums"], q["writeQueueNums"]) for q in route["queueDatas"])
                == [("saturn-0", 4, 4), ("saturn-1", 4, 4)], "route after updateTopic %s" % route)
        shown = self.cli.run("topicRoute", "-t", TOPIC)
        E.check(sorted(r["Addr"] for r in shown["brokerDatas"]) == sorted(self.b.shards), "topicRoute %s" % shown)
        E.check(TOPIC in [r["Topic"] for r in self.cli.run("topicList")], "topicList lacks %s" % TOPIC)
        E.check(self.cli.run("topicClusterList", "-t", TOPIC) == [{"Cluster Name": CLUSTER}], "topicClusterList")

    def send(self):
        for i in range(6):
            r = self.cli.run("sendMessage", "-t", TOPIC, "-p", "adm-body-%d" % i, "-k", "adm-k%d" % i, "-c", "TagA")
            E.check(r["Send Result"] == "SEND_OK" and r["OffsetID"] and r["MsgId"], "sendMessage %s" % r)
            self.sent.append(r)
        rows = self.cli.run("topicStatus", "-t", TOPIC)
        maxes = self.b.max_offsets(TOPIC)
        E.check(len(rows) == 8, "topicStatus rows %s" % rows)
        for r in rows:
            E.check(r["Max Offset"] == maxes[r["Broker Name"]][r["QID"]], "topicStatus %s vs %s" % (r, maxes))
        E.check(sum(r["Max Offset"] for r in rows) == 6, "topicStatus total %s" % rows)

    def metrics_in(self):
        m = scrape(self.metrics_port)
        maxes = self.b.max_offsets(TOPIC)
        for name, offs in maxes.items():
            got = metric(m, "rocketmq_messages_in_total", topic=TOPIC, node_id=name, cluster=CLUSTER)
            E.check(got == sum(offs), "messages_in_total of %s on %s: %s, stored %s" % (TOPIC, name, got, sum(offs)))
        body = sum(len("adm-body-%d" % i) for i in range(6))
        E.check(metric(m, "rocketmq_throughput_in_total", topic=TOPIC) == body, "throughput_in_total")
        E.check(metric(m, "saturn_messages_put_total") >= 6, "saturn_messages_put_total")
        E.check(metric(m, "rocketmq_topic_number", node_id="saturn-0") >= 1, "topic_number")
        sends = metric(m, "saturn_append_latency_seconds_count")
        E.check(sends >= 6 and metric(m, "saturn_append_latency_seconds_bucket", le="+Inf") == sends
                and metric(m, "saturn_append_latency_seconds_sum") > 0, "append latency histogram (%s sends)" % sends)
        # ASYNC_FLUSH: no send waits for durability.
        E.check(metric(m, "saturn_flush_wait_seconds_count") == 0, "flush wait histogram under ASYNC_FLUSH")

    # ------------------------------------------------------------------ messages
    def queries(self):
        s = self.sent[3]
        rows = self.cli.run("queryMsgByKey", "-t", TOPIC, "-k", "adm-k3")
        E.check([r["Message ID"] for r in rows] == [s["MsgId"]], "queryMsgByKey %s" % rows)
        m = self.cli.run("queryMsgById", "-i", s["OffsetID"])
        E.check(m["Message Body"] == "adm-body-3" and m["Keys"] == "adm-k3" and m["Tags"] == "TagA", "byId %s" % m)
        m = self.cli.run("queryMsgByUniqueKey", "-t", TOPIC, "-i", s["MsgId"])
        E.check(m["Message Body"] == "adm-body-3" and m["OffsetID"] == s["OffsetID"], "byUniqueKey %s" % m)
        m = self.cli.run("queryMsgByOffset", "-t", TOPIC, "-b", s["Broker Name"], "-i", str(s["Queue ID"]),
                         "-o", str(s["Queue Offset"]))
        E.check(m["Message Body"] == "adm-body-3", "byOffset %s" % m)
        rows = self.cli.run("printMsg", "-t", TOPIC)
        E.check(sorted(r["Body"] for r in rows) == ["adm-body-%d" % i for i in range(6)], "printMsg %s" % rows)
        on0 = [x for x in self.sent if x["Broker Name"] == "saturn-0"]
        rows = self.cli.run("consumeMessage", "-t", TOPIC, "-b", "saturn-0")
        E.check(len(rows) == len(on0) and all(r["Broker"] == self.b.shards[0] for r in rows),
                "consumeMessage -b saturn-0: %s (sent there: %d)" % (rows, len(on0)))
        code, _, err = self.cli.run("queryMsgByUniqueKey", "-t", TOPIC, "-i", "0" * 32, ok=False)
        E.check(code == 1 and "no message" in err, "unknown id: %s %s" % (code, err))

    # ------------------------------------------------------------------ groups and clients
    def sub_group(self):
        rows = self.cli.run("updateSubGroup", "-c", CLUSTER, "-g", GROUP, "-r", "3", "-q", "1")
        E.check(len(rows) == 2, "updateSubGroup %s" % rows)
        for addr in self.b.shards:
            g = groups_on(addr).get(GROUP)
            E.check(g and g["retryMaxTimes"] == 3, "group on %s after updateSubGroup: %s" % (addr, g))

    def start_client(self):
        home = os.path.join(self.run_dir, "client-home")
        os.makedirs(home, exist_ok=True)
        env = dict(os.environ, SATURN_CLIENT_HOME=home)
        cmd = E.CLIENTS["rocketmq-0.4.4"] + ["probe", "--namesrv", self.b.namesrv, "--topic", TOPIC,
                                             "--group", GROUP, "--seconds", "60"]
        self.client_out = open(os.path.join(self.run_dir, "probe.jsonl"), "wb")
        self.client = subprocess.Popen(cmd, stdout=self.client_out, stderr=subprocess.DEVNULL, env=env, cwd=E.REPO,
                                       start_new_session=True)
        E.LIVE.add(self.client)
        ok = E.wait_for(lambda: self.client_lines("message") and self.consumed_all(), 60)
        E.check(ok, "the probe client did not consume the 7 messages in 60 s")

    def client_lines(self, kind):
        self.client_out.flush()
        with open(self.client_out.name) as f:
            lines = [json.loads(l) for l in f if l.startswith("{")]
        return [l for l in lines if l.get("event") == kind]

    def consumed_all(self):
        rows = self.cli.run("consumerProgress", "-g", GROUP, "-t", TOPIC)
        return len(rows) == 8 and sum(r["Consumer Offset"] for r in rows) >= 7  # 6 + the probe's send

    def connections(self):
        c = self.cli.run("consumerConnection", "-g", GROUP)
        E.check(len(c["connections"]) == 1 and c["connections"][0]["Language"] == "CPP", "consumerConnection %s" % c)
        E.check(TOPIC in [s["Topic"] for s in c["subscriptions"]] and c["settings"]["MessageModel"] == "CLUSTERING",
                "consumerConnection subscriptions %s" % c)
        p = self.cli.run("producerConnection", "-g", GROUP + "_PG", "-t", TOPIC)
        E.check(len(p) >= 1 and all(r["Language"] == "CPP" for r in p), "producerConnection %s" % p)
        code, _, err = self.cli.run("producerConnection", "-g", "NoSuchPG", "-t", TOPIC, ok=False)
        E.check(code == 1 and "no producer" in err, "producerConnection unknown group: %s" % err)

    def progress(self):
        rows = self.cli.run("consumerProgress", "-g", GROUP)
        maxes = self.b.max_offsets(TOPIC)
        for r in rows:
            E.check(r["Broker Offset"] == maxes[r["Broker Name"]][r["QID"]] and r["Diff"] == 0, "progress %s" % r)
        summary = {r["Group"]: r for r in self.cli.run("consumerProgress")}
        E.check(summary[GROUP]["Count"] == 1 and summary[GROUP]["Diff Total"] == 0, "progress summary %s" % summary)
        stats = [r for r in self.cli.run("statsAll", "-t", TOPIC) if r["Consumer Group"] == GROUP]
        E.check(len(stats) == 1 and stats[0]["Accumulation"] == 0 and stats[0]["InMsg24Hour"] == 7,
                "statsAll %s" % stats)
        bcs = [r for r in self.cli.run("brokerConsumeStats", "-b", self.b.shards[0]) if r["Group"] == GROUP]
        E.check(len(bcs) == 4 and all(r["Diff"] == 0 for r in bcs), "brokerConsumeStats %s" % bcs)

    def metrics_out(self):
        m = scrape(self.metrics_port)
        out = metric(m, "rocketmq_messages_out_total", topic=TOPIC, consumer_group=GROUP)
        E.check(out >= 7, "messages_out_total of %s: %s, 7 consumed" % (GROUP, out))
        E.check(metric(m, "rocketmq_messages_in_total", topic=TOPIC) == 7, "messages_in_total after the probe's send")
        E.check(metric(m, "rocketmq_consumer_lag_messages", topic=TOPIC, consumer_group=GROUP) == 0, "lag not 0")
        E.check(metric(m, "rocketmq_consumer_connections", consumer_group=GROUP, language="CPP") >= 1,
                "consumer_connections %s" % [k for k in m if k[0] == "rocketmq_consumer_connections"])
        E.check(metric(m, "rocketmq_producer_connections", language="CPP") >= 1, "producer_connections")
        E.check(metric(m, "saturn_connections") >= 2, "saturn_connections")

    def reset_online(self):
        # The group is online: each shard resets it itself (INVOKE_BROKER_TO_RESET_OFFSET) and pushes
        # the offsets to the consumer. rocketmq 0.4.4 (client-cpp) does not act on that push, so
        # re-consumption is not checked here; tests/e2e_mqadmin.py checks it with the Java client.
        rows = self.cli.run("resetOffsetByTime", "-g", GROUP, "-t", TOPIC, "-s", "0")
        E.check(len(rows) == 8 and all(r["Offset"] == 0 and r["Path"] == "broker" for r in rows), "reset %s" % rows)
        text = self.cli.run("resetOffsetByTime", "-g", GROUP, "-t", TOPIC, "-s", "now", json_out=False)
        E.check(text.startswith("#Broker Name") and text.count("broker") == 8, "reset table:\n%s" % text)

    def skip_offline(self):
        E.kill_proc(self.client, grace=10)
        self.client_out.close()
        for i in range(3):
            self.cli.run("sendMessage", "-t", TOPIC, "-p", "late-%d" % i, "-c", "TagA")
        rows = self.cli.run("consumerProgress", "-g", GROUP)
        E.check(sum(r["Diff"] for r in rows) == 3, "backlog before skip %s" % rows)
        lag = metric(scrape(self.metrics_port), "rocketmq_consumer_lag_messages", topic=TOPIC, consumer_group=GROUP)
        E.check(lag == 3, "consumer_lag_messages before skip: %s" % lag)
        code, _, err = self.cli.run("resetOffsetByTime", "-g", "NoSuchGroup", "-t", TOPIC, "-s", "now", ok=False)
        E.check(code == 1 and "SYSTEM_ERROR" in err, "reset of an unknown group: %s" % err)
        rows = self.cli.run("skipAccumulatedMessage", "-g", GROUP, "-t", TOPIC)
        # The broker resets an offline group's offsets itself (as 5.x's broker-side reset does):
        # every queue answered by the broker, none through saturn-admin's offline fallback.
        E.check(len(rows) == 8 and all(r["Path"] == "broker" for r in rows), "skip %s" % rows)
        rows = self.cli.run("consumerProgress", "-g", GROUP)
        E.check(sum(r["Diff"] for r in rows) == 0, "backlog after skip %s" % rows)
        lag = metric(scrape(self.metrics_port), "rocketmq_consumer_lag_messages", topic=TOPIC, consumer_group=GROUP)
        E.check(lag == 0, "consumer_lag_messages after skip: %s" % lag)

    # ------------------------------------------------------------------ brokers and name server
    def broker_cmds(self):
        st = self.cli.run("brokerStatus", "-b", self.b.shards[0])
        E.check(st["brokerName"] == "saturn-0" and int(st["msgPutTotalTodayNow"]) > 0, "brokerStatus %s" % st)
        cfg = self.cli.run("getBrokerConfig", "-b", self.b.shards[1])
        E.check(cfg["brokerClusterName"] == CLUSTER, "getBrokerConfig %s" % cfg)
        rows = self.cli.run("updateBrokerConfig", "-c", CLUSTER, "-k", "maxMessageSize", "-v", "2097152")
        E.check(len(rows) == 2, "updateBrokerConfig %s" % rows)
        for addr in self.b.shards:
            E.check(broker_config(addr).get("maxMessageSize") == "2097152", "maxMessageSize on %s" % addr)
        code, _, err = self.cli.run("updateBrokerConfig", "-b", self.b.shards[0], "-k", "brokerName", "-v", "x",
                                    ok=False)
        E.check(code == 1 and "answered" in err, "updateBrokerConfig of a fixed key: %s" % err)
        ns = self.cli.run("getNamesrvConfig")
        E.check(len(ns) > 0, "getNamesrvConfig %s" % ns)

    def write_perm(self):
        rows = self.cli.run("wipeWritePerm", "-b", "saturn-1")
        E.check(rows[0]["Topics"] > 0, "wipeWritePerm %s" % rows)
        perms = {q["brokerName"]: q["perm"] for q in self.b.route(TOPIC)["queueDatas"]}
        E.check(perms == {"saturn-0": 6, "saturn-1": 4}, "perms after wipe %s" % perms)
        self.cli.run("addWritePerm", "-b", "saturn-1")
        perms = {q["brokerName"]: q["perm"] for q in self.b.route(TOPIC)["queueDatas"]}
        E.check(perms == {"saturn-0": 6, "saturn-1": 6}, "perms after add %s" % perms)

    def deletes(self):
        self.cli.run("updateTopic", "-c", CLUSTER, "-t", GONE_TOPIC, "-r", "2", "-w", "2")
        self.b.wait_route(GONE_TOPIC)
        self.cli.run("deleteTopic", "-c", CLUSTER, "-t", GONE_TOPIC)
        E.check(self.b.route(GONE_TOPIC) is None, "route of %s after deleteTopic" % GONE_TOPIC)
        code, _, err = self.cli.run("topicRoute", "-t", GONE_TOPIC, ok=False)
        E.check(code == 1 and "TOPIC_NOT_EXIST" in err, "topicRoute of a deleted topic: %s" % err)
        self.cli.run("deleteSubGroup", "-c", CLUSTER, "-g", GROUP)
        for addr in self.b.shards:
            E.check(GROUP not in groups_on(addr), "group still on %s" % addr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    run_dir = os.path.join(E.REPO, "target", "test-data", "e2e-admin-%d" % os.getpid())
    os.makedirs(run_dir, exist_ok=True)
    broker = E.Broker(run_dir, "broker")
    # The Prometheus endpoint on a port of the broker's free block (shard 1 ends at +9).
    metrics_port = broker.namesrv_port + 14
    conf = os.path.join(run_dir, "broker.conf")
    with open(conf, "w") as f:
        f.write("metricsExporterType=PROM\nmetricsPromExporterPort=%d\nmetricsPromExporterHost=127.0.0.1\n"
                "autoCreateTopicEnable=false\n" % metrics_port)
    broker.extra_args = ["-c", conf]
    try:
        broker.start()
        s = Scenario(broker, run_dir, metrics_port)
        steps = ["cluster_list", "trace_topic", "update_topic", "send", "metrics_in", "queries", "sub_group", "start_client",
                 "connections", "progress", "metrics_out", "reset_online", "skip_offline", "broker_cmds", "write_perm",
                 "deletes"]
        if os.environ.get("SATURN_SKIP_JAVA") == "1" or not os.path.isdir(JAVA_LIB):
            E.log("java_trace skipped (SATURN_SKIP_JAVA=1 or no %s: scripts/install-java)" % JAVA_LIB)
        else:
            steps.insert(2, "java_trace")
        for name in steps:
            step(name, getattr(s, name))
    finally:
        E.kill_all()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    failed = [r for r in RESULTS if r[1] != "PASS"]
    print("\nsaturn-admin e2e: %d checks, %d failed" % (len(RESULTS), len(failed)))
    for name, res, why in RESULTS:
        print("  %-14s %s %s" % (name, res, why[:300]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
