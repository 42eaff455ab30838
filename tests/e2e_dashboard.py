#!/usr/bin/env python3
"""The built-in dashboard (admin::dash) of a real `saturn-broker standalone --shards 2`.

    cargo build --profile test-opt -p saturn-broker -p saturn-admin
    SATURN_BROKER_BIN=target/test-opt/saturn-broker python3 tests/e2e_dashboard.py [--keep]

Starts standalone with `--dashboard-listen` and admin/viewer passwords, sends with a real client
(rocketmq 0.4.4, tests/clients/py_client.py) and saturn-admin, and checks the JSON API's answers
against what the broker holds (remoting calls, saturn-admin), the actions' effects (topic create
and delete, offset reset with its preview, group delete, re-send, DLQ re-drive), the login gate
(401 without credentials, 403 for the viewer's changes, refusal to listen beyond loopback without
a password) and that the page and its assets are served. Prints PASS/FAIL per check; exit 1 on
any failure.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_clients as E  # noqa: E402
import e2e_admin as A  # noqa: E402

TOPIC, GONE, GROUP = "DashT", "DashGone", "DashG"
ADMIN_PW, VIEW_PW = "adm-s3cret", "view-s3cret"
CONSUMER_SEND_MSG_BACK = 36
RESULTS = A.RESULTS


class Http:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, path, body=None, user="admin", ctype="application/json"):
        """(status, headers, parsed JSON or text)."""
        pw = {"admin": ADMIN_PW, "viewer": VIEW_PW}.get(user)
        req = urllib.request.Request(self.base + path, data=None if body is None else json.dumps(body).encode())
        if body is not None:
            req.add_header("Content-Type", ctype)
        if pw:
            req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, headers, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        text = raw.decode()
        if headers.get("Content-Type", "").startswith("application/json"):
            return status, headers, json.loads(text)
        return status, headers, text

    def ok(self, path, body=None):
        status, _, v = self.call(path, body)
        E.check(status == 200, "%s: HTTP %d %s" % (path, status, v))
        return v


class Scenario:
    def __init__(self, broker, run_dir, port):
        self.b, self.run_dir, self.h = broker, run_dir, Http(port)
        self.cli = A.Cli(broker.namesrv)
        self.sent = {}

    def assets(self):
        status, headers, page = self.h.call("/")
        E.check(status == 200 and '<script src="/app.js">' in page and "Saturn" in page, "index %d" % status)
        E.check("default-src 'self'" in headers.get("Content-Security-Policy", ""), "CSP %s" % headers)
        for path, want in (("/app.js", "/api/cluster"), ("/style.css", "table")):
            status, headers, text = self.h.call(path)
            E.check(status == 200 and want in text, "%s: %d" % (path, status))
        E.check("http" not in page.replace('href="#', ""), "the page fetches nothing from outside")

    def login_gate(self):
        status, headers, v = self.h.call("/api/cluster", user=None)
        E.check(status == 401 and "Basic" in headers.get("WWW-Authenticate", ""), "no credentials: %d" % status)
        status, _, _ = self.h.call("/", user=None)
        E.check(status == 401, "the page without credentials: %d" % status)
        status, _, v = self.h.call("/api/whoami", user="viewer")
        E.check(status == 200 and v["role"] == "viewer", "viewer whoami %s" % v)
        status, _, v = self.h.call("/api/topic/update", {"topic": "ViewerT"}, user="viewer")
        E.check(status == 403, "viewer change: %d %s" % (status, v))
        status, _, v = self.h.call("/api/topic/update", {"topic": "CsrfT"}, ctype="text/plain")
        E.check(status == 415, "a change without a JSON content type: %d %s" % (status, v))
        E.check(self.b.route("ViewerT") is None and self.b.route("CsrfT") is None, "refused changes made topics")
        p = subprocess.run([E.BROKER_BIN, "standalone", "--namesrv-port", "0", "--port", "0",
                            "--data-dir", os.path.join(self.run_dir, "refused"), "--dashboard-listen", "0.0.0.0:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           env={k: v for k, v in os.environ.items() if not k.startswith("SATURN_DASHBOARD")})
        E.check(p.returncode == 1 and b"beyond loopback" in p.stderr, "no password beyond loopback: %d %s"
                % (p.returncode, p.stderr[-300:]))

    def cluster(self):
        c = self.h.ok("/api/cluster")
        E.check(c["namesrv"] == [self.b.namesrv], "namesrv %s" % c["namesrv"])
        rows = c["brokers"]
        E.check(sorted(r["addr"] for r in rows) == sorted(self.b.shards), "brokers %s" % rows)
        for r in rows:
            E.check(r["role"] == "MASTER" and r["online"] and r["version"] and r["uptimeMs"] > 0
                    and 0 <= r["diskRatio"] <= 1, "broker row %s" % r)

    def create_topic(self):
        rows = self.h.ok("/api/topic/update", {"topic": TOPIC, "readQueues": 4, "writeQueues": 4})
        E.check(len(rows) == 2 and all(r["Result"] == "OK" for r in rows), "create %s" % rows)
        route = self.b.wait_route(TOPIC)
        E.check(sorted((q["brokerName"], q["readQueueNums"]) for q in route["queueDatas"])
                == [("saturn-0", 4), ("saturn-1", 4)], "route %s" % route)
        status, _, v = self.h.call("/api/topic/update", {"topic": TOPIC, "readQueues": 0})
        E.check(status == 400 and "1 to 1024" in v["error"], "bad queue count: %d %s" % (status, v))
        E.check(TOPIC in [t["Topic"] for t in self.h.ok("/api/topics")], "topics list")

    def send(self):
        home = os.path.join(self.run_dir, "client-home")
        os.makedirs(home, exist_ok=True)
        cmd = E.CLIENTS["rocketmq-0.4.4"] + ["produce", "--namesrv", self.b.namesrv, "--topic", TOPIC,
                                             "--group", "DashPG", "--count", "6", "--keys-prefix", "dk",
                                             "--body-prefix", "body-"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=90,
                           env=dict(os.environ, SATURN_CLIENT_HOME=home), cwd=E.REPO)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.startswith("{")]
        sent = [l for l in lines if l.get("event") == "sent" and l["status"] in ("OK", "SEND_OK")]
        E.check(len(sent) == 6, "the client sent %d of 6: %s" % (len(sent), lines[-2:]))
        rec = self.cli.run("sendMessage", "-t", TOPIC, "-p", '{"n": 7, "ok": true}', "-k", "jsonkey")
        E.check(rec["Send Result"] == "SEND_OK", "saturn-admin send %s" % rec)

    def topic_view(self):
        t = self.h.ok("/api/topic?topic=" + TOPIC)
        maxes = self.b.max_offsets(TOPIC)
        for q in t["queues"]:
            E.check(q["Max Offset"] == maxes[q["Broker Name"]][q["QID"]] and q["Min Offset"] == 0, "queue %s" % q)
        E.check(sum(q["Max Offset"] for q in t["queues"]) == 7, "7 messages in %s" % t["queues"])
        E.check(sorted(b["Addr"] for b in t["route"]["brokerDatas"]) == sorted(self.b.shards), "route %s" % t)
        status, _, v = self.h.call("/api/topic?topic=NoSuchTopic")
        E.check(status == 404 and "TOPIC_NOT_EXIST" in v["error"], "unknown topic: %d %s" % (status, v))
        status, _, v = self.h.call("/api/topic")
        E.check(status == 400 and "missing parameter topic" in v["error"], "no topic: %d %s" % (status, v))

    def messages(self):
        found = self.h.ok("/api/message?topic=%s&key=dk3" % TOPIC)["messages"]
        E.check(len(found) == 1, "by key %s" % found)
        m = found[0]
        E.check(m["Body"]["text"] == "body-3" and m["Body"]["hex"] == b"body-3".hex() and m["Body"]["json"] is None
                and m["Properties"]["i"] == "3" and m["Keys"] == "dk3", "by key: %s" % m)
        by_id = self.h.ok("/api/message?id=" + m["OffsetID"])["messages"]
        E.check(by_id == [m], "by offsetMsgId %s" % by_id)
        by_uniq = self.h.ok("/api/message?topic=%s&id=%s" % (TOPIC, m["Msg ID"]))["messages"]
        E.check([x["OffsetID"] for x in by_uniq] == [m["OffsetID"]], "by UNIQ_KEY %s" % by_uniq)
        broker = [n for n, a in self.b.shard_names(TOPIC).items() if a == m["Store Host"]][0]
        q = "/api/message?topic=%s&broker=%s&queue=%d&offset=%d" % (TOPIC, broker, m["Queue ID"], m["Queue Offset"])
        E.check(self.h.ok(q)["messages"] == [m], "by queue offset")
        status, _, v = self.h.call("/api/message?id=" + m["Msg ID"])
        E.check(status == 400 and "not a broker of this cluster" in v["error"], "a UNIQ_KEY alone: %s" % v)
        j = self.h.ok("/api/message?topic=%s&key=jsonkey" % TOPIC)["messages"][0]
        E.check(j["Body"]["json"] == {"n": 7, "ok": True}, "JSON body %s" % j["Body"])
        shown = self.cli.run("queryMsgById", "-i", m["OffsetID"])
        E.check(shown["Message Body"] == "body-3", "saturn-admin sees %s" % shown)
        status, _, v = self.h.call("/api/message?topic=%s&key=nokey" % TOPIC)
        E.check(status == 400 and "no message" in v["error"], "no match: %d %s" % (status, v))
        self.sent["dk3"] = m
        now = int(time.time() * 1000)
        every = self.h.ok("/api/messages?topic=%s&begin=%d&end=%d" % (TOPIC, now - 600000, now + 60000))["messages"]
        E.check(sorted(x["Keys"] for x in every) == sorted(["dk%d" % i for i in range(6)] + ["jsonkey"]),
                "by time: %s" % [x["Keys"] for x in every])
        E.check(len(self.h.ok("/api/messages?topic=%s&max=3" % TOPIC)["messages"]) == 3, "max=3")
        E.check(self.h.ok("/api/messages?topic=%s&end=%d" % (TOPIC, now - 600000))["messages"] == [], "before")

    def consume(self):
        cmd = E.CLIENTS["rocketmq-0.4.4"] + ["consume", "--namesrv", self.b.namesrv, "--topic", TOPIC,
                                             "--group", GROUP, "--expect", "7", "--timeout", "60", "--grace", "6"]
        home = os.path.join(self.run_dir, "client-home")
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120,
                           env=dict(os.environ, SATURN_CLIENT_HOME=home), cwd=E.REPO)
        E.check(p.returncode == 0, "consumer exit %d" % p.returncode)
        E.wait_for(lambda: self.h.ok("/api/group?group=" + GROUP)["totalLag"] == 0
                   and len(self.h.ok("/api/group?group=" + GROUP)["lag"]) == 8, 20)
        g = self.h.ok("/api/group?group=" + GROUP)
        E.check(g["totalLag"] == 0 and sum(r["Consumer Offset"] for r in g["lag"]) == 7, "group %s" % g)
        E.check("offline" in g["members"], "members after the consumer left %s" % g["members"])
        E.check(GROUP in [r["Group"] for r in self.h.ok("/api/groups")], "groups list")

    def reset(self):
        pv = self.h.ok("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "earliest", "preview": True})
        E.check(pv["preview"] and pv["totalMoves"] == -7 and len(pv["queues"]) == 8, "preview %s" % pv)
        E.check(self.h.ok("/api/group?group=" + GROUP)["totalLag"] == 0, "a preview changed nothing")
        self.h.ok("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "earliest"})
        offs = self.b.committed_offsets(TOPIC, GROUP)
        E.check(all(o == 0 for per in offs.values() for o in per), "committed after reset %s" % offs)
        E.check(self.h.ok("/api/group?group=" + GROUP)["totalLag"] == 7, "lag after reset to earliest")
        later = int(time.time() * 1000) + 60000
        pv = self.h.ok("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "time", "time": later,
                                            "preview": True})
        E.check(pv["totalMoves"] == 7, "preview to a later time %s" % pv)
        self.h.ok("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "latest"})
        E.check(self.h.ok("/api/group?group=" + GROUP)["totalLag"] == 0, "lag after reset to latest")
        status, _, v = self.h.call("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "yesterday"})
        E.check(status == 400 and "earliest, latest or time" in v["error"], "bad target: %d %s" % (status, v))

    def resend(self):
        m = self.sent["dk3"]
        r = self.h.ok("/api/message/resend", {"id": m["OffsetID"]})
        E.check(r["topic"] == TOPIC and r["offsetMsgId"], "resend %s" % r)
        rows = self.cli.run("queryMsgByKey", "-t", TOPIC, "-k", "dk3")
        E.check(len(rows) == 2, "dk3 twice after the re-send: %s" % rows)
        new = self.cli.run("queryMsgById", "-i", r["offsetMsgId"])
        E.check(new["Message Body"] == "body-3" and new["Properties"]["SATURN_RESENT_FROM"] == m["OffsetID"]
                and new["Properties"]["i"] == "3" and new["Msg ID"] != m["Msg ID"], "re-sent message %s" % new)
        E.check(sum(sum(v) for v in self.b.max_offsets(TOPIC).values()) == 8, "8 messages after the re-send")

    def dlq(self):
        m = self.sent["dk3"]
        code, _, remark, _ = E.rpc(m["Store Host"], CONSUMER_SEND_MSG_BACK, {
            "offset": m["CommitLog Offset"], "group": GROUP, "delayLevel": -1, "originMsgId": m["Msg ID"],
            "originTopic": TOPIC, "unitMode": "false", "maxReconsumeTimes": 16})
        E.check(code == 0, "send back to the DLQ: %s %s" % (code, remark))
        d = self.h.ok("/api/dlq?group=" + GROUP)
        E.check(d["topic"] == "%DLQ%" + GROUP and len(d["messages"]) == 1, "dlq %s" % d)
        dead = d["messages"][0]
        E.check(dead["Body"]["text"] == "body-3" and dead["Properties"]["RETRY_TOPIC"] == TOPIC, "dead %s" % dead)
        r = self.h.ok("/api/message/resend", {"id": dead["OffsetID"]})
        E.check(r["topic"] == TOPIC, "re-drive went to %s" % r)
        E.check(len(self.cli.run("queryMsgByKey", "-t", TOPIC, "-k", "dk3")) == 3, "dk3 re-driven")
        empty = self.h.ok("/api/dlq?group=NoDeadLetters")
        E.check(empty["messages"] == [] and empty["queues"] == [], "no DLQ %s" % empty)

    def trace(self):
        """/api/trace without traced clients (the browser test has them): the Python client does
        not trace, so each message of a key answers traced false; bad parameters answer 400."""
        t = self.h.ok("/api/trace?topic=%s&key=dk3" % TOPIC)
        E.check(t["traceTopic"] == "RMQ_SYS_TRACE_TOPIC" and len(t["messages"]) == 3
                and all(m["traced"] is False and m["events"] == [] and m["keys"] == "dk3" for m in t["messages"]),
                "trace of dk3 %s" % t)
        one = self.h.ok("/api/trace?id=" + self.sent["dk3"]["Msg ID"])
        E.check([m["traced"] for m in one["messages"]] == [False], "trace by id %s" % one)
        for q, want in (("", "missing parameter topic"), ("?topic=%s" % TOPIC, "missing parameter key"),
                        ("?topic=%s&key=nokey" % TOPIC, "no message of")):
            status, _, v = self.h.call("/api/trace" + q)
            E.check(status == 400 and want in v["error"], "/api/trace%s: %d %s" % (q, status, v))

    def admin_dashboard(self):
        """`saturn-admin dashboard`: the same pages for a name server's cluster, from its own process."""
        port = self.b.namesrv_port + 15
        p = subprocess.Popen([A.ADMIN_BIN, "dashboard", "-n", self.b.namesrv, "--listen", "127.0.0.1:%d" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("SATURN_DASHBOARD")})
        E.LIVE.add(p)
        try:
            line = p.stdout.readline().decode()
            E.check("saturn-dashboard listening on http://127.0.0.1:%d/" % port in line, "first line %r" % line)
            status, _, c = Http(port).call("/api/cluster", user=None)
            E.check(status == 200 and sorted(b["addr"] for b in c["brokers"]) == sorted(self.b.shards), "%s" % c)
        finally:
            E.kill_proc(p)

    def deletes(self):
        self.h.ok("/api/topic/update", {"topic": GONE, "readQueues": 2})
        self.b.wait_route(GONE)
        self.h.ok("/api/topic/delete", {"topic": GONE})
        E.check(E.wait_for(lambda: self.b.route(GONE) is None, 10), "route of %s after delete" % GONE)
        E.check(any(GROUP in A.groups_on(a) for a in self.b.shards), "group exists before delete")
        self.h.ok("/api/group/delete", {"group": GROUP})
        for addr in self.b.shards:
            E.check(GROUP not in A.groups_on(addr), "group still on %s" % addr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    run_dir = os.path.join(E.REPO, "target", "test-data", "e2e-dashboard-%d" % os.getpid())
    os.makedirs(run_dir, exist_ok=True)
    broker = E.Broker(run_dir, "broker")
    port = broker.namesrv_port + 14  # in the broker's free block (shard 1 ends at +9)
    broker.extra_args = ["--dashboard-listen", "127.0.0.1:%d" % port]
    os.environ["SATURN_DASHBOARD_PASSWORD"] = ADMIN_PW
    os.environ["SATURN_DASHBOARD_READONLY_PASSWORD"] = VIEW_PW
    try:
        try:
            broker.start()
        except E.Fail:
            with open(broker.log_path, errors="replace") as f:
                sys.stderr.write("broker log tail:\n" + "".join(f.readlines()[-20:]))
            raise
        s = Scenario(broker, run_dir, port)
        for name in ["assets", "login_gate", "cluster", "create_topic", "send", "topic_view", "messages", "consume",
                     "reset", "resend", "dlq", "trace", "admin_dashboard", "deletes"]:
            A.step(name, getattr(s, name))
    finally:
        E.kill_all()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    failed = [r for r in RESULTS if r[1] != "PASS"]
    print("\ndashboard e2e: %d checks, %d failed" % (len(RESULTS), len(failed)))
    for name, res, why in RESULTS:
        print("  %-14s %s %s" % (name, res, why[:300]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
