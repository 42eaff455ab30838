#!/usr/bin/env python3
"""saturn-admin against Apache RocketMQ 4.9.7 (Java name server + broker from Maven Central).

    scripts/install-java ref-4.9.7 && cargo build --profile test-opt -p saturn-admin
    python3 tests/e2e_admin_rmq.py [--keep]

Starts RocketMQ 4.9.7's NamesrvStartup and BrokerStartup from .cache/java/ref-4.9.7/lib as
scripts/bench-peer does (JDK 17 opens, logback files for 4.9.x, loopback, free ports, store under
target/test-data), then runs the saturn-admin commands that apply to a RocketMQ broker and checks
their answers against what the broker then holds. Not in scripts/test (two JVMs take a while on a
small machine); run by hand. Prints PASS/FAIL per step; exit status 1 when anything failed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_clients as E  # noqa: E402
from e2e_admin import Cli, step, RESULTS  # noqa: E402

LIB = os.path.join(E.REPO, ".cache", "java", "ref-4.9.7", "lib")
JDK17 = ["--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
         "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED", "--add-opens=java.base/java.lang=ALL-UNNAMED",
         "--add-opens=java.base/java.util=ALL-UNNAMED", "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
         "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED"]
TOPIC, GROUP, BROKER = "AdmRmqT", "AdmRmqG", "ref-4.9.7"


def logback(home):
    for name in ("namesrv", "broker", "tools"):
        with open(os.path.join(home, "conf", "logback_%s.xml" % name), "w") as f:
            f.write('<configuration><appender name="F" class="ch.qos.logback.core.FileAppender">'
                    '<file>%s/logs/%s.log</file><encoder><pattern>%%d %%p %%c - %%m%%n</pattern></encoder>'
                    '</appender><root level="INFO"><appender-ref ref="F"/></root></configuration>' % (home, name))


def start(home, ns_port, port):
    os.makedirs(os.path.join(home, "conf"))
    os.makedirs(os.path.join(home, "logs"))
    logback(home)
    with open(os.path.join(home, "conf", "namesrv.conf"), "w") as f:
        f.write("listenPort=%d\nbindAddress=127.0.0.1\n" % ns_port)
    with open(os.path.join(home, "conf", "broker.conf"), "w") as f:
        f.write("brokerClusterName=DefaultCluster\nbrokerName=%s\nbrokerId=0\nbrokerRole=ASYNC_MASTER\n"
                "flushDiskType=ASYNC_FLUSH\nnamesrvAddr=127.0.0.1:%d\nbrokerIP1=127.0.0.1\nlistenPort=%d\n"
                "haListenPort=%d\nstorePathRootDir=%s/store\nstorePathCommitLog=%s/store/commitlog\n"
                "mappedFileSizeCommitLog=67108864\nautoCreateTopicEnable=true\nautoCreateSubscriptionGroup=true\n"
                % (BROKER, ns_port, port, port + 1, home, home))
    env = dict(os.environ, ROCKETMQ_HOME=home)

    def out(name):
        return open(os.path.join(home, "logs", "%s.out" % name), "wb")

    # diskSpaceWarningLevelRatio: RocketMQ refuses sends above 90 % disk use by default (as "disk
    # full"); a shared test machine's disk may be fuller than that.
    base = ["java", "-server", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Drocketmq.broker.diskSpaceWarningLevelRatio=0.99"] + JDK17 + ["-Duser.home=" + home,
                                                                                        "-cp", LIB + "/*"]
    ns = subprocess.Popen(base[:2] + ["-Xmx256m"] + base[2:] + ["org.apache.rocketmq.namesrv.NamesrvStartup", "-c",
                          os.path.join(home, "conf", "namesrv.conf")], env=env, stdout=out("namesrv"),
                          stderr=subprocess.STDOUT, start_new_session=True)
    E.LIVE.add(ns)
    br = subprocess.Popen(base[:2] + ["-Xmx512m", "-XX:MaxDirectMemorySize=256m"] + base[2:] + [
        "org.apache.rocketmq.broker.BrokerStartup", "-c", os.path.join(home, "conf", "broker.conf")], env=env,
        stdout=out("broker"), stderr=subprocess.STDOUT, start_new_session=True)
    E.LIVE.add(br)


class Rmq:
    def __init__(self, cli, addr, ns_port):
        self.cli, self.addr, self.sent, self.ns_port = cli, addr, [], ns_port

    def cluster(self):
        E.wait_for(lambda: all(r["Version"] for r in self.cli.run("clusterList")), 30, step=1)
        rows = self.cli.run("clusterList")
        E.check([(r["Broker Name"], r["Addr"]) for r in rows] == [(BROKER, self.addr)], "clusterList %s" % rows)
        E.check(rows[0]["Version"].startswith("V4_9_7"), "version %s" % rows[0])
        st = self.cli.run("brokerStatus", "-b", self.addr)
        E.check(st["brokerVersionDesc"].startswith("V4_9_7"), "brokerStatus %s" % st.get("brokerVersionDesc"))
        cfg = self.cli.run("getBrokerConfig", "-b", self.addr)
        E.check(cfg["brokerName"] == BROKER, "getBrokerConfig")
        self.cli.run("updateBrokerConfig", "-b", self.addr, "-k", "maxMessageSize", "-v", "2097152")
        E.check(self.cli.run("getBrokerConfig", "-b", self.addr)["maxMessageSize"] == "2097152", "updateBrokerConfig")
        ns = self.cli.run("getNamesrvConfig")
        E.check(ns.get("listenPort") == str(self.ns_port), "getNamesrvConfig listenPort %s" % ns.get("listenPort"))

    def topics(self):
        self.cli.run("updateTopic", "-c", "DefaultCluster", "-t", TOPIC, "-r", "4", "-w", "4")
        E.wait_for(lambda: self.cli.run("topicRoute", "-t", TOPIC, ok=False)[0] == 0, 20)
        r = self.cli.run("topicRoute", "-t", TOPIC)
        E.check([(q["Broker Name"], q["Write Queues"]) for q in r["queueDatas"]] == [(BROKER, 4)], "route %s" % r)
        E.check(TOPIC in [t["Topic"] for t in self.cli.run("topicList")], "topicList")
        for i in range(4):
            s = self.cli.run("sendMessage", "-t", TOPIC, "-p", "rmq-body-%d" % i, "-k", "rmq-k%d" % i, "-c", "TagA")
            E.check(s["Send Result"] == "SEND_OK", "send %s" % s)
            self.sent.append(s)
        # RocketMQ fills its consume queues in the background: poll a little.
        E.wait_for(lambda: sum(r["Max Offset"] for r in self.cli.run("topicStatus", "-t", TOPIC)) == 4, 10)
        rows = self.cli.run("topicStatus", "-t", TOPIC)
        E.check(sum(r["Max Offset"] for r in rows) == 4, "topicStatus %s" % rows)

    def messages(self):
        s = self.sent[2]
        m = self.cli.run("queryMsgById", "-i", s["OffsetID"])
        E.check(m["Message Body"] == "rmq-body-2", "queryMsgById %s" % m)
        # The index is built in the background: poll the key look-up a little.
        E.wait_for(lambda: len(self.cli.run("queryMsgByKey", "-t", TOPIC, "-k", "rmq-k2")) == 1, 10)
        rows = self.cli.run("queryMsgByKey", "-t", TOPIC, "-k", "rmq-k2")
        E.check([r["Message ID"] for r in rows] == [s["MsgId"]], "queryMsgByKey %s" % rows)
        m = self.cli.run("queryMsgByUniqueKey", "-t", TOPIC, "-i", s["MsgId"])
        E.check(m["Message Body"] == "rmq-body-2", "queryMsgByUniqueKey")
        m = self.cli.run("queryMsgByOffset", "-t", TOPIC, "-b", BROKER, "-i", str(s["Queue ID"]),
                         "-o", str(s["Queue Offset"]))
        E.check(m["Message Body"] == "rmq-body-2", "queryMsgByOffset")
        rows = self.cli.run("printMsg", "-t", TOPIC)
        E.check(sorted(r["Body"] for r in rows) == ["rmq-body-%d" % i for i in range(4)], "printMsg %s" % rows)

    def groups(self):
        self.cli.run("updateSubGroup", "-b", self.addr, "-g", GROUP, "-r", "5")
        rows = self.cli.run("consumeMessage", "-t", TOPIC, "-g", GROUP)
        E.check(len(rows) == 4, "consumeMessage %s" % rows)
        # A group with committed offsets (as a consumer would leave them), all at 0, offline.
        for q in range(4):
            code, _, remark, _ = E.rpc(self.addr, 15, {"consumerGroup": GROUP, "topic": TOPIC, "queueId": q,
                                                       "commitOffset": 0})
            E.check(code == 0, "UPDATE_CONSUMER_OFFSET: %s %s" % (code, remark))
        rows = self.cli.run("consumerProgress", "-g", GROUP)
        E.check(sum(r["Diff"] for r in rows) == 4, "consumerProgress before skip %s" % rows)
        rows = self.cli.run("skipAccumulatedMessage", "-g", GROUP, "-t", TOPIC)
        E.check(len(rows) == 4 and all(r["Path"] == "offline" for r in rows), "offline reset %s" % rows)
        rows = self.cli.run("consumerProgress", "-g", GROUP)
        E.check(len(rows) == 4 and sum(r["Diff"] for r in rows) == 0, "consumerProgress %s" % rows)
        stats = [r for r in self.cli.run("statsAll", "-t", TOPIC) if r["Consumer Group"] == GROUP]
        E.check(len(stats) == 1, "statsAll %s" % stats)
        self.cli.run("brokerConsumeStats", "-b", self.addr)
        self.cli.run("deleteSubGroup", "-b", self.addr, "-g", GROUP)

    def perms(self):
        self.cli.run("wipeWritePerm", "-b", BROKER)
        r = self.cli.run("topicRoute", "-t", TOPIC)
        E.check(r["queueDatas"][0]["Perm"] == 4, "perm after wipe %s" % r)
        self.cli.run("addWritePerm", "-b", BROKER)
        E.check(self.cli.run("topicRoute", "-t", TOPIC)["queueDatas"][0]["Perm"] == 6, "perm after add")
        self.cli.run("deleteTopic", "-c", "DefaultCluster", "-t", TOPIC)
        code, _, err = self.cli.run("topicRoute", "-t", TOPIC, ok=False)
        E.check(code == 1 and "TOPIC_NOT_EXIST" in err, "route after deleteTopic: %s" % err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(LIB):
        print("no %s: scripts/install-java ref-4.9.7" % LIB)
        return 1
    home = os.path.join(E.REPO, "target", "test-data", "e2e-admin-rmq-%d" % os.getpid())
    block = E.free_port_block(25120, 8)
    ns_port, port = block, block + 4  # the broker also binds port - 2 (VIP) and port + 1 (HA)
    try:
        start(home, ns_port, port)
        cli = Cli("127.0.0.1:%d" % ns_port)
        up = E.wait_for(lambda: cli.run("clusterList", ok=False)[1].count("127.0.0.1:%d" % port) > 0, 120, step=1)
        E.log("RocketMQ 4.9.7 %s (name server :%d, broker :%d)" % ("up" if up else "NOT UP", ns_port, port))
        r = Rmq(cli, "127.0.0.1:%d" % port, ns_port)
        for name in ("cluster", "topics", "messages", "groups", "perms"):
            step(name, getattr(r, name))
    finally:
        E.kill_all()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    failed = [x for x in RESULTS if x[1] != "PASS"]
    print("\nsaturn-admin against RocketMQ 4.9.7: %d steps, %d failed" % (len(RESULTS), len(failed)))
    for name, res, why in RESULTS:
        print("  %-10s %s %s" % (name, res, why[:400]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
