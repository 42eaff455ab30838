#!/usr/bin/env python3
"""The built-in dashboard (admin::dash) of a real `saturn-broker standalone --shards 2`.

    cargo build --profile test-opt -p saturn-broker -p saturn-admin -p saturn-namesrv
    SATURN_BROKER_BIN=target/test-opt/saturn-broker python3 tests/e2e_dashboard.py [--keep]

Starts standalone with `--dashboard-listen` and admin/viewer passwords, sends with a real client
(rocketmq 0.4.4, tests/clients/py_client.py) and saturn-admin, and checks the JSON API's answers
against what the broker holds (remoting calls, saturn-admin), the actions' effects (topic create
and delete, offset reset with its preview, group delete, re-send, DLQ re-drive), the login gate
(401 without credentials, 403 for the viewer's changes, refusal to listen beyond loopback without
a password) and that the page and its assets are served. Prints PASS/FAIL per check; exit 1 on
any failure.

The pages over time run with `--history-interval 1 --alert-lag 3 --alert-webhook <a local HTTP
receiver>`: the history's put counts add up to what was sent, the live tail returns exactly the
messages sent after it started (and commits nothing), the producers page lists a running Python
producer's group without being told its name, and the lag alert fires and then resolves (the
webhook receiver gets both) when a group's lag rises over 3 and is consumed; a second broker
killed and started again fires and resolves the broker-down alert. `saturn-namesrv
--dashboard-listen` serves the same dashboard for the brokers registered with it.
"""
import argparse
import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_clients as E  # noqa: E402
import e2e_admin as A  # noqa: E402

TOPIC, GONE, GROUP, TAIL = "DashT", "DashGone", "DashG", "DashTail"
ALERT_LAG = 3
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


class Hook:
    """A local HTTP receiver for the alert webhook: keeps (time, path, JSON body) per POST."""

    def __init__(self):
        self.events = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.events.append((time.time(), self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def of(self, alert_id, event, since):
        return [e for t, path, e in self.events
                if t >= since and path == "/hook" and e["event"] == event and e["alert"]["id"] == alert_id]


class Scenario:
    def __init__(self, broker, run_dir, port, hook=None):
        self.b, self.run_dir, self.h, self.hook = broker, run_dir, Http(port), hook
        self.cli = A.Cli(broker.namesrv)
        self.sent = {}

    def assets(self):
        status, headers, page = self.h.call("/")
        E.check(status == 200 and '<script src="/app.js">' in page and "Saturn" in page, "index %d" % status)
        E.check("default-src 'self'" in headers.get("Content-Security-Policy", ""), "CSP %s" % headers)
        E.check('<script src="/charts.js">' in page and '<script src="/watch.js">' in page, "page scripts")
        for path, want in (("/app.js", "/api/cluster"), ("/style.css", "table"), ("/charts.js", "polyline"),
                           ("/watch.js", "/api/tail")):
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
        # Refused before anything starts: no name server or broker line on stdout.
        E.check(p.returncode == 1 and b"beyond loopback" in p.stderr and p.stdout == b"",
                "no password beyond loopback: %d %s %r" % (p.returncode, p.stderr[-300:], p.stdout))

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

    def history_mark(self):
        """The time of the newest sample (the sampler runs every second)."""
        E.check(E.wait_for(lambda: any(s["brokers"] for s in self.h.ok("/api/history")["samples"]), 15),
                "no sample with brokers: %s" % self.h.ok("/api/history"))
        return self.h.ok("/api/history")["samples"][-1]["t"]

    def send(self):
        self.hist_from = self.history_mark()
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
        self.hist_to = time.time() * 1000

    def history(self):
        """/api/history: the samples' put counts since before `send` add up to the 7 it stored,
        per broker and per topic, and each rate is its count over the time between samples."""
        E.check(E.wait_for(lambda: self.h.ok("/api/history")["samples"][-1]["t"] > self.hist_to + 1500, 15),
                "no sample after the sends")
        h = self.h.ok("/api/history?since=%d" % self.hist_from)
        E.check(h["intervalMs"] == 1000 and len(h["samples"]) >= 2, "history %s" % h)
        puts = 0
        for s in h["samples"]:
            E.check(sorted(b["addr"] for b in s["brokers"].values()) == sorted(self.b.shards), "brokers %s" % s)
            for b in s["brokers"].values():
                E.check(b["online"] and b["puts"] is not None and 0 < b["diskRatio"] <= 1, "sample %s" % s)
                E.check(abs(b["putRate"] - b["puts"] / s["dt"]) < 0.01, "rate of %s" % s)
                puts += b["puts"]
        E.check(puts == 7, "the samples count %d puts, 7 were sent" % puts)
        t = self.h.ok("/api/history?topic=%s&since=%d" % (TOPIC, self.hist_from))["samples"]
        E.check(sum(s["in"] or 0 for s in t) == 7 and t[-1]["stored"] == 7, "topic history %s" % t)
        E.check(all(s["inRate"] > 0 for s in t if s["in"]), "in rates %s" % t)
        status, _, v = self.h.call("/api/history?since=yesterday")
        E.check(status == 400 and "since" in v["error"], "bad since: %d %s" % (status, v))
        c = self.h.ok("/api/history")
        E.check(c["capacity"] == 360 and len(c["samples"]) <= 360, "bounded %d" % len(c["samples"]))

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
        rng = {"topic": TOPIC, "begin": now - 600000, "end": now + 60000, "max": 2}
        pages = self.pages(rng)
        E.check([len(p) for p in pages] == [2, 2, 2, 1] and [x for p in pages for x in p] == every,
                "pages of 2 concatenated are the range: %s" % [[x["Keys"] for x in p] for p in pages])
        status, _, v = self.h.call("/api/messages?" + urllib.parse.urlencode(dict(rng, cursor="x/0/1")))
        E.check(status == 400 and "not a queue of" in v["error"], "a cursor of another topic: %d %s" % (status, v))
        status, _, v = self.h.call("/api/messages?" + urllib.parse.urlencode(dict(rng, cursor="nonsense")))
        E.check(status == 400 and "bad cursor" in v["error"], "a bad cursor: %d %s" % (status, v))
        E.check(self.h.ok("/api/messages?topic=%s&end=%d" % (TOPIC, now - 600000))["messages"] == [], "before")

    def pages(self, q, limit=100):
        """/api/messages page after page (each page's cursor into the next) until the cursor is null."""
        pages, cursor = [], None
        for _ in range(limit):
            r = self.h.ok("/api/messages?" + urllib.parse.urlencode(dict(q, **({"cursor": cursor} if cursor else {}))))
            pages.append(r["messages"])
            cursor = r["cursor"]
            if cursor is None:
                return pages
        E.check(False, "still a cursor after %d pages" % limit)
        return pages

    def browse_pages(self):
        """DashBurst's 500 messages on 2 queues (tail_burst) in pages of 64 by time range: every
        page full but the last, every stored message once, in queue order, nothing else."""
        burst, now = "DashBurst", int(time.time() * 1000)
        maxes = self.b.max_offsets(burst, queues=1)
        total = sum(per[0] for per in maxes.values())
        pages = self.pages({"topic": burst, "begin": now - 600000, "end": now + 60000, "max": 64})
        want_pages = (total + 63) // 64
        E.check(total >= 500 and len(pages) == want_pages and all(len(p) == 64 for p in pages[:-1]),
                "%d messages in %s pages" % (total, [len(p) for p in pages]))
        got = [(m["Store Host"], m["Queue ID"], m["Queue Offset"]) for p in pages for m in p]
        addrs = self.b.shard_names(burst)
        want = [(addrs[b], 0, o) for b in maxes for o in range(maxes[b][0])]
        E.check(sorted(got) == sorted(want) and len(set(got)) == len(got), "pages hold every message once")
        E.check(len({m["OffsetID"] for p in pages for m in p}) == total, "distinct ids")
        status, _, v = self.h.call("/api/messages?topic=%s&max=x" % burst)
        E.check(status == 400 and "max is not a number" in v["error"], "bad max: %d %s" % (status, v))

    def run_consumer(self):
        cmd = E.CLIENTS["rocketmq-0.4.4"] + ["consume", "--namesrv", self.b.namesrv, "--topic", TOPIC,
                                             "--group", GROUP, "--expect", "7", "--timeout", "60", "--grace", "6"]
        home = os.path.join(self.run_dir, "client-home")
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120,
                           env=dict(os.environ, SATURN_CLIENT_HOME=home), cwd=E.REPO)
        E.check(p.returncode == 0, "consumer exit %d" % p.returncode)

    def consume(self):
        self.run_consumer()
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
        E.check(status == 400 and "earliest, latest, time or offset" in v["error"], "bad target: %d %s" % (status, v))

    def reset_queue(self):
        """One queue to a given offset (resetOffsetByQueueId): the preview tells what moves and
        changes nothing, the reset moves that queue alone, an offset beyond the queue is clamped
        to [min, max] and the preview says so; bad queues, brokers and offsets are refused."""
        maxes = self.b.max_offsets(TOPIC)
        # Any queue holding a message: which ones do depends on where the clients' round robins
        # started (7 messages over 8 queues), so the target is the queue's end minus one.
        broker, qid = next((b, q) for b, per in sorted(maxes.items()) for q, m in enumerate(per) if m >= 1)
        top = maxes[broker][qid]
        low = top - 1
        before = self.b.committed_offsets(TOPIC, GROUP)
        E.check(before[broker][qid] == top, "the group is at the end %s" % before)
        body = {"group": GROUP, "topic": TOPIC, "to": "offset", "broker": broker, "queue": qid, "offset": low}
        pv = self.h.ok("/api/group/reset", dict(body, preview=True))
        E.check(pv["preview"] and pv["totalMoves"] == low - top and pv["clamped"] is False and pv["note"] is None
                and [(r["broker"], r["queue"], r["current"], r["target"]) for r in pv["queues"]]
                == [(broker, qid, top, low)], "preview %s" % pv)
        E.check(self.b.committed_offsets(TOPIC, GROUP) == before, "a preview changed nothing")
        done = self.h.ok("/api/group/reset", body)
        E.check(not done["preview"] and done["result"]["offset"] == low and done["result"]["path"] == "broker",
                "reset %s" % done)
        want = {b: list(per) for b, per in before.items()}
        want[broker][qid] = low
        E.check(self.b.committed_offsets(TOPIC, GROUP) == want, "only that queue moved: %s" % want)
        E.check(self.h.ok("/api/group?group=" + GROUP)["totalLag"] == top - low, "lag after the queue reset")
        pv = self.h.ok("/api/group/reset", dict(body, offset=10 ** 9, preview=True))
        E.check(pv["clamped"] and pv["queues"][0]["target"] == top and pv["totalMoves"] == top - low
                and "clamped to %d" % top in pv["note"], "clamped to max %s" % pv)
        done = self.h.ok("/api/group/reset", dict(body, offset=-5))
        E.check(done["clamped"] and done["result"]["offset"] == 0 and "clamped to 0" in done["note"], "to min %s" % done)
        E.check(self.b.committed_offsets(TOPIC, GROUP)[broker][qid] == 0, "clamped reset committed 0")
        for bad, why in (({"queue": 99}, "queue 99 is not a queue"), ({"broker": "nosuch-0"}, "no queues on broker"),
                         ({"offset": None}, "needs an offset"), ({"offset": "x"}, "not a number")):
            status, _, v = self.h.call("/api/group/reset", dict(body, **bad))
            E.check(status == 400 and why in v["error"], "%s: %d %s" % (bad, status, v))
        self.h.ok("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "latest"})
        E.check(self.b.committed_offsets(TOPIC, GROUP) == before, "back at the end")

    def alerts(self):
        """Lag over 3 (a reset to the earliest: 7): the alert fires, the webhook gets it; a real
        consumer takes the lag to 0: it resolves, the webhook gets that too; the history shows it."""
        mark = time.time()
        lag_id = "lag:" + GROUP
        self.h.ok("/api/group/reset", {"group": GROUP, "topic": TOPIC, "to": "earliest"})
        E.check(E.wait_for(lambda: self.hook.of(lag_id, "fire", mark), 15), "no fire: %s" % self.hook.events[-3:])
        fire = self.hook.of(lag_id, "fire", mark)[0]["alert"]
        # A sample may fall between the two shards' resets: over 3 at once, 7 on the page soon after.
        E.check(fire["value"] > ALERT_LAG and fire["threshold"] == ALERT_LAG and fire["state"] == "firing"
                and fire["kind"] == "lag" and fire["firedAt"] >= mark * 1000 - 1000, "fired %s" % fire)
        firing = lambda: [x for x in self.h.ok("/api/alerts")["firing"] if x["id"] == lag_id]
        E.check(E.wait_for(lambda: [x["value"] for x in firing()] == [7], 10), "firing %s" % firing())
        E.check([x["firedAt"] for x in firing()] == [fire["firedAt"]], "firing %s" % firing())
        a = self.h.ok("/api/alerts")
        E.check(a["rules"]["lag"] == ALERT_LAG and a["webhook"].endswith("/hook"), "rules %s" % a)
        self.run_consumer()
        E.check(E.wait_for(lambda: self.hook.of(lag_id, "resolve", mark), 20), "no resolve: %s" % self.hook.events[-3:])
        res = self.hook.of(lag_id, "resolve", mark)[0]["alert"]
        E.check(res["state"] == "resolved" and res["firedAt"] == fire["firedAt"]
                and res["resolvedAt"] > res["firedAt"], "resolved %s" % res)
        events = [e["event"] for t, _, e in self.hook.events if t >= mark and e["alert"]["id"] == lag_id]
        E.check(events == ["fire", "resolve"], "webhook events %s" % events)
        a = self.h.ok("/api/alerts")
        E.check(not [x for x in a["firing"] if x["id"] == lag_id]
                and [x["resolvedAt"] for x in a["resolved"] if x["id"] == lag_id][0] == res["resolvedAt"], "%s" % a)
        E.check(any(d["ok"] and d["event"] == "resolve" and d["attempts"] == 1 for d in a["webhookDeliveries"]),
                "deliveries %s" % a["webhookDeliveries"])
        h = self.h.ok("/api/history?group=%s&since=%d" % (GROUP, mark * 1000))["samples"]
        E.check(max(s["lag"] or 0 for s in h) == 7 and h[-1]["lag"] == 0
                and any((s["consumeRate"] or 0) > 0 for s in h), "group history %s" % h)

    def tail_and_producers(self):
        """The live tail returns what is sent after it started, once, and commits nothing; the
        producers page finds a running Python producer's group without being given its name."""
        self.h.ok("/api/topic/update", {"topic": TAIL, "readQueues": 2, "writeQueues": 2})
        self.b.wait_route(TAIL)
        self.cli.run("sendMessage", "-t", TAIL, "-p", "before", "-k", "tail-before")
        start = self.h.ok("/api/tail?topic=" + TAIL)
        E.check(start["messages"] == [] and len(start["cursor"].split(",")) == 4, "tail start %s" % start)
        home = os.path.join(self.run_dir, "client-home")
        probe = subprocess.Popen(E.CLIENTS["rocketmq-0.4.4"] + ["probe", "--namesrv", self.b.namesrv, "--topic", TAIL,
                                                                 "--group", "DashProbe", "--seconds", "25"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=E.REPO,
                                 env=dict(os.environ, SATURN_CLIENT_HOME=home), start_new_session=True)
        E.LIVE.add(probe)
        try:
            for i in range(3):
                self.cli.run("sendMessage", "-t", TAIL, "-p", "tail-%d" % i, "-k", "tail%d" % i)
            seen, cursor = [], [start["cursor"]]

            def poll():
                r = self.h.ok("/api/tail?" + urllib.parse.urlencode({"topic": TAIL, "cursor": cursor[0]}))
                cursor[0] = r["cursor"]
                seen.extend(r["messages"])
                return {"tail0", "tail1", "tail2", "probe-key-0"} <= {m["keys"] for m in seen}
            E.check(E.wait_for(poll, 25, step=1.0), "the tail saw %s" % [m["keys"] for m in seen])
            keys = sorted(m["keys"] for m in seen)
            E.check(keys == ["probe-key-0", "tail0", "tail1", "tail2"], "tail once each, nothing before: %s" % keys)
            t1 = [m for m in seen if m["keys"] == "tail1"][0]
            E.check(t1["body"] == "tail-1" and t1["offsetMsgId"], "tail message %s" % t1)
            again = self.h.ok("/api/tail?" + urllib.parse.urlencode({"topic": TAIL, "cursor": cursor[0]}))
            E.check(again["messages"] == [] and again["cursor"] == cursor[0] and again["skipped"] == 0,
                    "nothing new %s" % again)

            def group():
                g = [x for x in self.h.ok("/api/producers")["groups"] if x["group"] == "DashProbe_PG"]
                return g[0] if g else None
            E.check(E.wait_for(group, 25), "producers %s" % self.h.ok("/api/producers"))
            conns = group()["connections"]
            E.check(all(c["language"] == "CPP" and c["clientAddr"].startswith("127.0.0.1:") and c["brokers"]
                        and c["version"] > 0 for c in conns), "connections %s" % conns)
            rows = self.cli.run("producerConnection", "-g", "DashProbe_PG", "-t", TAIL)
            E.check({r["ClientId"] for r in rows} == {c["clientId"] for c in conns}, "saturn-admin: %s" % rows)
        finally:
            E.kill_proc(probe)
        offs = self.b.committed_offsets(TAIL, "TOOLS_CONSUMER", queues=2)
        E.check(all(o is None for per in offs.values() for o in per), "the tail committed %s" % offs)

    def tail_burst(self):
        """500 messages on 2 queues between two polls: the tail jumps each queue to its last 200
        and says how many it skipped; what it shows and skips adds up to 500, none twice."""
        burst = "DashBurst"
        self.h.ok("/api/topic/update", {"topic": burst, "readQueues": 1, "writeQueues": 1})
        self.b.wait_route(burst)
        cursor = self.h.ok("/api/tail?topic=" + burst)["cursor"]
        home = os.path.join(self.run_dir, "client-home")
        p = subprocess.run(E.CLIENTS["rocketmq-0.4.4"] + ["produce", "--namesrv", self.b.namesrv, "--topic", burst,
                                                           "--group", "DashBurstP", "--count", "500",
                                                           "--keys-prefix", "bk"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120, cwd=E.REPO,
                           env=dict(os.environ, SATURN_CLIENT_HOME=home))
        E.check(p.stdout.count(b'"event": "sent"') == 500, "sent %d of 500" % p.stdout.count(b'"event": "sent"'))
        per_queue = [o for per in self.b.max_offsets(burst, queues=1).values() for o in per]
        got, skipped = [], 0
        for _ in range(40):
            r = self.h.ok("/api/tail?" + urllib.parse.urlencode({"topic": burst, "cursor": cursor}))
            cursor, skipped = r["cursor"], skipped + r["skipped"]
            got.extend(r["messages"])
            if got and not r["messages"]:
                break
        keys = [m["keys"] for m in got]
        want_skip = sum(max(0, n - 32 - 200) for n in per_queue)
        E.check(skipped == want_skip > 0 and len(got) + skipped == 500 and len(set(keys)) == len(keys)
                and "bk499" in keys, "queues %s: %d shown, %d skipped (want %d)" % (per_queue, len(got), skipped,
                                                                                   want_skip))

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
            status, _, v = Http(port).call("/api/alerts", user=None)
            E.check(status == 200 and v["rules"]["lag"] is None and v["webhook"] is None, "alerts %s" % v)
        finally:
            E.kill_proc(p)
        bad = subprocess.run([A.ADMIN_BIN, "dashboard", "-n", self.b.namesrv, "--listen", "127.0.0.1:%d" % port,
                              "--alert-webhook", "https://hooks.example/x"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=30)
        E.check(bad.returncode == 1 and b"only http://" in bad.stderr, "https webhook: %d %s"
                % (bad.returncode, bad.stderr))
        bad = subprocess.run([E.BROKER_BIN, "standalone", "--namesrv-port", "0", "--port", "0", "--data-dir",
                              os.path.join(self.run_dir, "nodash"), "--alert-lag", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        E.check(bad.returncode == 1 and b"--alert-lag is a dashboard setting" in bad.stderr,
                "an alert flag without a dashboard: %d %s" % (bad.returncode, bad.stderr[-300:]))

    def namesrv_dashboard(self):
        """`saturn-namesrv --dashboard-listen`: the name server's own dashboard lists a broker
        registered with it; beyond loopback without a password it refuses to start."""
        base = E.free_port_block(self.b.namesrv_port + 16, 8)
        ns_bin = os.path.join(os.path.dirname(E.BROKER_BIN), "saturn-namesrv")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SATURN_DASHBOARD")}
        ns = subprocess.Popen([ns_bin, "--listen", "127.0.0.1:%d" % base, "--dashboard-listen",
                               "127.0.0.1:%d" % (base + 1), "--history-interval", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        E.LIVE.add(ns)
        broker = None
        try:
            lines = [ns.stdout.readline().decode() for _ in range(2)]
            E.check(lines[0].startswith("saturn-namesrv listening on 127.0.0.1:%d" % base)
                    and "saturn-dashboard listening on http://127.0.0.1:%d/" % (base + 1) in lines[1], "%r" % lines)
            broker = subprocess.Popen([E.BROKER_BIN, "--namesrv", "127.0.0.1:%d" % base, "--port", str(base + 4),
                                       "--shards", "1", "--no-pin", "--broker-ip", "127.0.0.1", "--broker-name",
                                       "nsdash", "--segment-size", str(64 << 20), "--data-dir",
                                       os.path.join(self.run_dir, "nsdash")],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            E.LIVE.add(broker)
            E.check(broker.stdout.readline().decode().startswith("saturn-broker ready"), "nsdash broker")
            h = Http(base + 1)
            listed = lambda: [(b["broker"], b["addr"]) for b in h.call("/api/cluster", user=None)[2]["brokers"]]
            want = [("nsdash-0", "127.0.0.1:%d" % (base + 4))]
            E.check(E.wait_for(lambda: listed() == want, 15), "cluster %s" % listed())
            c = h.call("/api/cluster", user=None)[2]
            E.check(c["namesrv"] == ["127.0.0.1:%d" % base] and c["brokers"][0]["online"], "cluster %s" % c)
            E.check(E.wait_for(lambda: h.call("/api/history", user=None)[2]["samples"], 10), "the sampler runs")
        finally:
            if broker is not None:
                E.kill_proc(broker)
            E.kill_proc(ns)
        bad = subprocess.run([ns_bin, "--listen", "127.0.0.1:0", "--dashboard-listen", "0.0.0.0:0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=env)
        E.check(bad.returncode == 1 and b"beyond loopback" in bad.stderr and bad.stdout == b"",
                "no password beyond loopback: %d %s %r" % (bad.returncode, bad.stderr[-300:], bad.stdout))
        bad = subprocess.run([ns_bin, "--listen", "127.0.0.1:0", "--alert-lag", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=env)
        E.check(bad.returncode == 1 and b"--alert-lag is a dashboard setting" in bad.stderr,
                "an alert flag without a dashboard: %d %s" % (bad.returncode, bad.stderr[-300:]))

    def deletes(self):
        self.h.ok("/api/topic/update", {"topic": GONE, "readQueues": 2})
        self.b.wait_route(GONE)
        self.h.ok("/api/topic/delete", {"topic": GONE})
        E.check(E.wait_for(lambda: self.b.route(GONE) is None, 10), "route of %s after delete" % GONE)
        E.check(any(GROUP in A.groups_on(a) for a in self.b.shards), "group exists before delete")
        self.h.ok("/api/group/delete", {"group": GROUP})
        for addr in self.b.shards:
            E.check(GROUP not in A.groups_on(addr), "group still on %s" % addr)


    def start_extra(self):
        """A one-shard broker `extra` registered with the same name server (ports +10..+13 of
        the block: VIP, -, shard 0, HA)."""
        port = self.b.namesrv_port + 12
        p = subprocess.Popen([E.BROKER_BIN, "--namesrv", self.b.namesrv, "--port", str(port), "--shards", "1",
                              "--no-pin", "--broker-ip", "127.0.0.1", "--broker-name", "extra",
                              "--segment-size", str(64 << 20), "--data-dir", os.path.join(self.run_dir, "extra")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        E.LIVE.add(p)
        line = p.stdout.readline().decode()
        E.check(line.startswith("saturn-broker ready"), "extra broker: %r" % line)
        return p

    def broker_down(self):
        """A broker killed (the name server drops it when its connection closes) fires
        broker-down after two samples without it; back, it resolves; the webhook gets both."""
        down_id = "broker-down:extra-0/0"
        extra = self.start_extra()
        online = lambda: any(v["online"] for k, v in self.h.ok("/api/history")["samples"][-1]["brokers"].items()
                             if k == "extra-0/0")
        E.check(E.wait_for(online, 20), "the sampler never saw the extra broker")
        mark = time.time()
        E.kill_proc(extra)
        E.check(E.wait_for(lambda: self.hook.of(down_id, "fire", mark), 15), "no fire %s" % self.hook.events[-3:])
        fire = self.hook.of(down_id, "fire", mark)[0]["alert"]
        E.check(fire["message"].endswith("for two samples"), "fired %s" % fire)
        h = self.h.ok("/api/history?since=%d" % (mark * 1000 - 1000))["samples"]
        before = [x["t"] for x in h if x["t"] < fire["firedAt"] and not x["brokers"].get("extra-0/0", {}).get("online")]
        E.check(before, "fired on the first sample without it: %s %s" % (fire, h))
        E.check([x["id"] for x in self.h.ok("/api/alerts")["firing"] if x["kind"] == "broker-down"] == [down_id],
                "firing %s" % self.h.ok("/api/alerts")["firing"])
        extra = self.start_extra()
        try:
            E.check(E.wait_for(lambda: self.hook.of(down_id, "resolve", mark), 15), "no resolve")
            res = self.hook.of(down_id, "resolve", mark)[0]["alert"]
            E.check(res["firedAt"] == fire["firedAt"] and res["resolvedAt"] > fire["firedAt"], "resolved %s" % res)
        finally:
            E.kill_proc(extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    run_dir = os.path.join(E.REPO, "target", "test-data", "e2e-dashboard-%d" % os.getpid())
    os.makedirs(run_dir, exist_ok=True)
    broker = E.Broker(run_dir, "broker")
    port = broker.namesrv_port + 14  # in the broker's free block (shard 1 ends at +9)
    hook = Hook()
    broker.extra_args = ["--dashboard-listen", "127.0.0.1:%d" % port, "--history-interval", "1",
                         "--alert-lag", str(ALERT_LAG), "--alert-webhook", "http://127.0.0.1:%d/hook" % hook.port]
    os.environ["SATURN_DASHBOARD_PASSWORD"] = ADMIN_PW
    os.environ["SATURN_DASHBOARD_READONLY_PASSWORD"] = VIEW_PW
    try:
        try:
            broker.start()
        except E.Fail:
            with open(broker.log_path, errors="replace") as f:
                sys.stderr.write("broker log tail:\n" + "".join(f.readlines()[-20:]))
            raise
        s = Scenario(broker, run_dir, port, hook)
        for name in ["assets", "login_gate", "cluster", "create_topic", "send", "history", "topic_view", "messages",
                     "consume", "reset", "reset_queue", "alerts", "tail_and_producers", "tail_burst", "browse_pages", "resend", "dlq", "trace", "admin_dashboard", "namesrv_dashboard",
                     "deletes", "broker_down"]:
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
