#!/usr/bin/env python3
"""Self-test of the client drivers against the in-memory fake broker (capture_namesrv --store).

    scripts/install-clients && python3 tests/clients/selftest.py

Every client produces to one topic (all send modes it supports), then every client consumes it
back (push, with and without tag filter, broadcasting) and the Python clients pull it. Checks the
drivers' JSON output, not the broker. Loopback only; each step has a subprocess timeout.
Ends with a line "N passed, M failed"; exit 1 if anything failed.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from capture_namesrv import CaptureServer  # noqa: E402

CACHE = os.path.join(REPO, ".cache", "clients")
PY = {"rocketmq-0.4.4": os.path.join(CACHE, "py-rocketmq", "bin", "python"),
      "cvs": os.path.join(CACHE, "py-cvs", "bin", "python")}


def drv(client):
    if client == "ons":
        return ["node", os.path.join(HERE, "ons_client.js")]
    return [PY[client], os.path.join(HERE, "py_client.py")]


def run(client, args, timeout=60):
    env = dict(os.environ, SATURN_CLIENT_HOME=HOME)
    try:
        p = subprocess.run(drv(client) + args, capture_output=True, text=True, timeout=timeout, env=env)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = e.stdout or "", "timeout"
        if isinstance(out, bytes):
            out = out.decode()
    lines = []
    for l in out.splitlines():
        try:
            lines.append(json.loads(l))
        except ValueError:
            pass
    return rc, lines


RESULTS = []


def check(name, cond, detail=""):
    RESULTS.append(bool(cond))
    print("%s %s %s" % ("ok  " if cond else "FAIL", name, "" if cond else detail), flush=True)


def summary(lines):
    return next((l for l in lines if l.get("event") == "summary"), {})


def main():
    global HOME
    if not os.path.exists(PY["cvs"]):
        sys.exit("run scripts/install-clients first")
    tmp = tempfile.mkdtemp(prefix="saturn-client-selftest-")
    HOME = os.path.join(tmp, "home")
    srv = CaptureServer(os.path.join(tmp, "frames"), store=True).start()
    ns = srv.ns_addr
    T = "SelfTest%d" % (int(time.time()) % 100000)
    try:
        produced = []  # (key, tag)
        plan = [("rocketmq-0.4.4", "sync", 4, "TagA,TagB"), ("rocketmq-0.4.4", "oneway", 2, "TagC"),
                ("rocketmq-0.4.4", "orderly", 2, "TagA"), ("cvs", "async", 3, "TagA"),
                ("cvs", "batch", 2, "TagB"), ("cvs", "sync", 2, "TagB"), ("ons", "sync", 2, "TagA"),
                ("ons", "async", 3, "TagB")]
        for n, (client, mode, count, tags) in enumerate(plan):
            kp = "p%d-" % n
            rc, lines = run(client, ["produce", "--namesrv", ns, "--topic", T, "--count", str(count), "--mode", mode,
                                     "--tags", tags, "--keys-prefix", kp, "--props", "origin=%s" % client,
                                     "--timeout", "20"])
            s = summary(lines)
            check("produce %s %s" % (client, mode), rc == 0 and s.get("acked") == count, "rc=%s %s" % (rc, s))
            if mode in ("sync", "async", "orderly"):
                acks = [l for l in lines if l.get("event") == "sent"]
                check("produce %s %s: one 'sent' line per message with msgId" % (client, mode),
                      len(acks) == count and all(a.get("msgId") for a in acks), str(acks[:2]))
            tl = tags.split(",")
            produced += [("%s%d" % (kp, i), tl[i % len(tl)]) for i in range(count)]
        total = len(produced)
        n_ab = sum(1 for _, t in produced if t in ("TagA", "TagB"))
        n_a = sum(1 for _, t in produced if t == "TagA")
        for client in ("rocketmq-0.4.4", "cvs", "ons"):
            for expr, n_exp, extra in (("*", total, []), ("TagA", n_a, []), ("TagA || TagB", n_ab, [])):
                args = ["consume", "--namesrv", ns, "--topic", T, "--group", "G_%s_%d" % (client.replace(".", ""), len(expr)),
                        "--expr", expr, "--expect", str(n_exp), "--timeout", "20", "--prop-keys", "origin"] + extra
                if client == "ons":
                    args += ["--from", "first"]
                if client == "cvs":
                    args += ["--linger", "0"]
                rc, lines = run(client, args)
                msgs = [l for l in lines if l.get("event") == "message"]
                keys = sorted({m["keys"] for m in msgs})
                want = sorted(k for k, t in produced if expr == "*" or t in expr.split(" || "))
                check("consume %s expr=%r" % (client, expr), keys == want and rc == 0,
                      "rc=%s got %d keys, want %d; missing %s" % (rc, len(keys), len(want), sorted(set(want) - set(keys))[:5]))
                if expr == "*":
                    check("consume %s: user property + body + tags present" % client,
                          all(m.get("props", {}).get("origin") and m.get("body") and m.get("tags") for m in msgs),
                          str(msgs[:1]))
        rc, lines = run("ons", ["consume", "--namesrv", ns, "--topic", T, "--group", "G_ons_bc", "--model", "broadcasting",
                                "--from", "first", "--expect", str(total), "--timeout", "20"])
        check("consume ons broadcasting", rc == 0 and summary(lines).get("distinct") == total, str(summary(lines)))
        for client in ("rocketmq-0.4.4", "cvs"):
            # C++ broadcasting keeps offsets locally and starts at the queue END (CONSUME_FROM_LAST_OFFSET,
            # not settable from Python): only messages produced after start are seen.
            env = dict(os.environ, SATURN_CLIENT_HOME=HOME)
            cp = subprocess.Popen(drv(client) + ["consume", "--namesrv", ns, "--topic", T, "--group",
                                                 "G_bc_%s" % client.replace(".", ""), "--model", "broadcasting",
                                                 "--expect", "2", "--timeout", "25", "--linger", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
            time.sleep(6)
            run("ons", ["produce", "--namesrv", ns, "--topic", T, "--count", "2", "--keys-prefix", "bc-%s-" % client,
                        "--tags", "TagB"])
            try:
                out, _ = cp.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                cp.kill()
                out, _ = cp.communicate()
            lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
            keys = sorted(l["keys"] for l in lines if l.get("event") == "message")
            check("consume %s broadcasting (new messages only)" % client,
                  cp.returncode == 0 and keys == ["bc-%s-0" % client, "bc-%s-1" % client], "rc=%s %s" % (cp.returncode, keys))
            total += 2
            rc, lines = run(client, ["pull", "--namesrv", ns, "--topic", T, "--group", "G_pull_%s" % client.replace(".", ""),
                                     "--expect", str(total), "--timeout", "20"])
            s = summary(lines)
            check("pull %s" % client, rc == 0 and s.get("messages") == total and s.get("queues") == 4, str(s))
        rc, lines = run("ons", ["pull", "--namesrv", ns, "--topic", T])
        check("pull ons reports unsupported", rc == 2 and lines and lines[0].get("event") == "unsupported", str(lines))
        # clean failure without a route: nothing listens on the broker side for this topic
        for client in ("rocketmq-0.4.4", "cvs", "ons"):
            rc, lines = run(client, ["produce", "--namesrv", "127.0.0.1:1", "--topic", T, "--count", "1", "--timeout", "10"])
            err = next((l for l in lines if l.get("event") in ("send_error", "start_error")), {})
            check("produce %s without name server fails cleanly" % client, rc in (1, 2) and err.get("error"), str(lines))
    finally:
        srv.stop()
    passed = sum(RESULTS)
    print("%d passed, %d failed" % (passed, len(RESULTS) - passed))
    return 0 if passed == len(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
