#!/usr/bin/env python3
"""Capture the first request frames of each third-party client and write them as fixtures.

    scripts/install-clients
    python3 tests/clients/capture_fixtures.py [--out protocol/tests/fixtures/clients] [--seconds 5]
                                              [--clients rocketmq-0.4.4,...] [--raw-dir DIR]

For every client it runs two passes, each with a fresh CaptureServer (capture_namesrv.py) on
ephemeral loopback ports and the client's driver in a subprocess (`probe` subcommand: a producer
and a push consumer in one process, one send to TopicTest with tag TagA, running --seconds):
  pass A "noroute": the name server answers TOPIC_NOT_EXIST (17) to everything;
  pass B "route":   GET_ROUTEINFO_BY_TOPIC gets a route to the fake broker, which answers
                    HEART_BEAT with SUCCESS, sends with SYSTEM_ERROR, pulls with PULL_NOT_FOUND...
Then it keeps the first few DISTINCT request frames (see select()) byte for byte as
<out>/<client>/<nn>-<code>-<what>.bin and (re)writes <out>/README.md with the decoded headers.
Raw captures of every frame stay in --raw-dir (default .cache/clients/capture).
Everything is loopback-only and time-bounded (subprocess timeout = seconds + 40).
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from capture_namesrv import CaptureServer, decode_frame, CODE_NAMES  # noqa: E402

CACHE = os.path.join(REPO, ".cache", "clients")
CLIENTS = {
    "rocketmq-0.4.4": [os.path.join(CACHE, "py-rocketmq", "bin", "python"), os.path.join(HERE, "py_client.py")],
    "rocketmq-python-cvs-2.1.0.3": [os.path.join(CACHE, "py-cvs", "bin", "python"), os.path.join(HERE, "py_client.py")],
    "ali-ons-3.12.0": ["node", os.path.join(HERE, "ons_client.js")],
}
GROUP = "CG_saturn_probe"


def run_pass(client, route, seconds, raw_dir, consumer_only=False):
    label = "consumer-only" if consumer_only else ("route" if route else "noroute")
    out_dir = os.path.join(raw_dir, client, label)
    shutil.rmtree(out_dir, ignore_errors=True)
    srv = CaptureServer(out_dir, route=route).start()
    if consumer_only:
        cmd = CLIENTS[client] + ["consume", "--namesrv", srv.ns_addr, "--topic", "TopicTest",
                                 "--group", GROUP + "_C", "--expr", "*", "--timeout", str(min(seconds, 3))]
    else:
        cmd = CLIENTS[client] + ["probe", "--namesrv", srv.ns_addr, "--topic", "TopicTest",
                                 "--group", GROUP, "--seconds", str(seconds)]
        if client.startswith("rocketmq"):
            cmd.append("--batch")
    env = dict(os.environ)
    env["SATURN_CLIENT_HOME"] = os.path.join(raw_dir, "home")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 40)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, stdout, stderr = "timeout", e.stdout or "", e.stderr or ""
    time.sleep(0.3)
    srv.stop()
    frames = [json.loads(l) for l in open(os.path.join(out_dir, "frames.jsonl"), encoding="utf-8")]
    print("[capture] %-28s %-7s rc=%s %4.1fs frames=%d stdout=%s" % (
        client, label, rc, time.time() - t0, len(frames),
        " | ".join(l for l in stdout.splitlines() if l)[:300]), file=sys.stderr)
    if stderr.strip():
        print("          stderr: " + stderr.strip().replace("\n", "\n                  ")[:800], file=sys.stderr)
    for f in frames:
        f["path"] = os.path.join(out_dir, f["file"])
        f["pass"] = label
    return frames, {"cmd": cmd, "rc": rc, "stdout": stdout}


def safe(s):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def hb_kind(f):
    b = f.get("body_json") or {}
    cons = [c.get("groupName") for c in b.get("consumerDataSet") or []]
    prods = [p.get("groupName") for p in b.get("producerDataSet") or []]
    subs = sorted(s.get("topic") for c in b.get("consumerDataSet") or [] for s in c.get("subscriptionDataSet") or [])
    what = "heartbeat" + ("-consumer" if cons else "") + ("-producer" if prods else "")
    return (tuple(cons), tuple(prods), tuple(subs)), what


def select(frames):
    """First distinct request frames, in arrival order (pass A before pass B)."""
    chosen, seen, names = [], set(), {}
    for f in frames:
        h = f.get("header") or {}
        code = f["code"]
        ext = h.get("extFields") or {}
        topic = ext.get("topic") or ext.get("b") or ""
        if code == 105:
            key, what = (105, topic), "route-" + safe(topic)
        elif code == 34:
            k, what = hb_kind(f)
            key = (34, k)
        elif code in (10, 310, 320):
            is_batch = code == 320 or str(ext.get("batch", ext.get("m", ""))) in ("1", "true", "True")
            key = ("send", is_batch)
            what = {10: "send-v1", 310: "send-v2", 320: "send-batch"}[code] + ("-batch" if is_batch and code != 320 else "")
        elif code in (11, 14):
            if topic.startswith("%RETRY%"):
                continue
            key, what = (code, topic), {11: "pull", 14: "query-offset"}[code] + "-" + safe(topic)
        elif code in (15, 30, 35, 38):
            key = (code,)
            what = {15: "update-offset", 30: "get-max-offset", 35: "unregister-client",
                    38: "get-consumer-list"}[code]
            if code == 35:
                g = "producer" if ext.get("producerGroup") else "consumer"
                key, what = (35, g), what + "-" + g
        else:
            key, what = (code,), "code-%s" % code
        if key in seen:
            continue
        seen.add(key)
        names[what] = names.get(what, 0) + 1
        if names[what] > 1:
            what = "%s-%d" % (what, names[what])
        chosen.append((f, what))
    return chosen


def fmt_header(raw):
    header, body, ser = decode_frame(raw)
    return header, body


def hexline(b):
    return " ".join("%02x" % x for x in b)


NOTES = r"""
## What the captures show (header peculiarities)

Common: every client frames requests as `int32 totalLength, int32 headerLength (type byte 0 = JSON),
JSON header, body`, and all three read only JSON responses. Our responses in these captures are
`{"code":..,"extFields":{..strings..},"flag":1,"language":"JAVA","opaque":<same>,"remark":..,
"serializeTypeCurrentRPC":"JSON","version":409}`, which all three accepted.

### rocketmq 0.4.4 (rocketmq-client-cpp 1.x (exact version not stated in the wheel), Python ctypes wrapper)
* `"language":"CPP"`, **`"version":63`** (= V3_1_8 in the ordinal table; cpp 2.x sends 333), opaque
  starts at **0**, `"remark":""` is always present, **no `serializeTypeCurrentRPC`**.
* The JSON header text ends with a **newline** (`...}\n`, jsoncpp writer) and the newline is counted
  in headerLength. Heartbeat bodies end with `\n` too.
* extFields always carry `"AccessKey":""`, `"OnsChannel":"ALIYUN"` and a non-empty `"Signature"`
  (HMAC over the fields with an empty secret) even though no credentials were configured.
* Numbers in extFields: some values are JSON **numbers** (`queueId`, `sysFlag`, `flag`,
  `defaultTopicQueueNums`, `maxMsgNums`), others strings (`bornTimestamp`, `queueOffset`,
  `commitOffset`, `subVersion`, `suspendTimeoutMillis`, `reconsumeTimes`); booleans as `"0"`/`"1"`
  strings (`unitMode`, `batch`).
* The producer sends **SEND_MESSAGE (code 10) with the long V1 header** (`producerGroup`, `topic`,
  `defaultTopic`, `defaultTopicQueueNums`, `queueId`, `sysFlag`, `bornTimestamp`, `flag`,
  `properties`, `reconsumeTimes`, `unitMode`, `batch`), not SEND_MESSAGE_V2. Sync send retries
  3 times (different queues); when every attempt fails the error text is still
  "No route info of this topic" even though the route was fine (the broker said SYSTEM_ERROR).
* `send_batch` is **not** SEND_BATCH_MESSAGE (320): it is SEND_MESSAGE (10) with `"batch":"1"`
  (the string "1"; Java's Boolean.parseBoolean would read false - accept "1" and "true") and the
  batch body layout (per message: int totalSize, int magic 0, int bodyCRC 0, int flag,
  int bodyLen + body, short propLen + properties incl. its own UNIQ_KEY/KEYS/TAGS); the header's
  `properties` then holds only `WAIT\u0001true\u0002`. Same for cvs with SEND_MESSAGE_V2 `"m":"1"`.
* `send_oneway` requests carry **flag 0** (the oneway bit is not set), so a broker answers them.
* clientID looks like `<pid>-<ip>@DEFAULT` (e.g. `12345-127.0.0.1@DEFAULT`); the ip is the
  address used to reach the name server (127.0.0.1 here). UNIQ_KEY = 32 hex chars starting with the
  ip in **reverse byte order** for 127.0.0.1 (`0100007F...`).
* A new topic: GET_ROUTEINFO(TopicTest) -> 17 -> GET_ROUTEINFO(TBW102) -> 17, repeated per retry.
  The push consumer asks `%RETRY%<group>` first, then the topic.
* HEART_BEAT body: enums as **integers** (`consumeType:1`, `messageModel:1`, `consumeFromWhere:0`),
  `subVersion` as a **string**; a subscription carries only `topic`, `subString`, `subVersion`
  and, for a tag expression, `tagsSet` plus **`codeSet` full of zeros** (`[0,0]` for
  `TagA || TagB`: the C++ client never computes the tag hashes, so a broker must hash the tags
  itself and never trust codeSet); `"*"` subscriptions have no tagsSet/codeSet keys at all;
  no `classFilterMode`/`expressionType`/`unitMode`; `producerDataSet` is **omitted** (not `[]`)
  in a consumer-only process; a producer and a consumer in one process share one clientID, so one
  heartbeat lists both.
* The C++ *pull* consumer (not in these fixtures, seen with `py_client.py pull`): HEART_BEAT with
  `consumeType:0` and **no `subscriptionDataSet` key**; PULL_MESSAGE with `sysFlag:4` (no
  SUSPEND), `subVersion:"0"`, `commitOffset:"0"`, `suspendTimeoutMillis:"20000"`.
* Consumer startup against a new group: QUERY_CONSUMER_OFFSET (answered 22 QUERY_NOT_FOUND) is
  followed by GET_MAX_OFFSET for normal topics (CONSUME_FROM_LAST_OFFSET, not settable from
  Python); `%RETRY%` queues start at 0. PULL_MESSAGE uses `sysFlag` 6 (SUSPEND|SUBSCRIPTION),
  `commitOffset:"-1"` when nothing was consumed, `suspendTimeoutMillis:"15000"`.

### rocketmq-python-cvs 2.1.0.3 (rocketmq-client-cpp 2.1.0)
* Same as 0.4.4 (CPP, opaque from 0, `remark:""`, trailing newline, AccessKey/OnsChannel/Signature,
  mixed number/string ext values, heartbeat enums as ints) except:
  **`"version":333`** (V4_6_0); the producer sends **SEND_MESSAGE_V2 (310)** with one-letter keys
  (`a`..`m`; `d`,`e`,`f`,`h`,`l` as numbers, `g`,`j`,`k`,`m` as strings, `k`/`m` = `"0"`), and it
  always sends `l` (maxReconsumeTimes, 16); clientID is `<ip>@<pid>#DEFAULT`; UNIQ_KEY starts with
  the ip in normal order (`7F000001...`).
* `PushConsumer.shutdown()` SIGSEGVs (NULL trace producer) unless message trace is enabled; with
  trace enabled the heartbeat also lists a producer group named like the consumer group.

### ali-ons 3.12.0 (Node)
* `"language":"JAVA"`, **`"version":121`** (V3_4_9), opaque from 1, **no `remark` key**, no
  `serializeTypeCurrentRPC`, no trailing newline; key order code, language, opaque, flag, version,
  extFields.
* extFields are raw JS values: numbers stay numbers (`queueId`, `queueOffset`, `commitOffset`,
  `sysFlag`, `g` bornTimestamp, `j`...), booleans stay booleans (`"k":false`). No AccessKey/
  Signature/OnsChannel unless accessKeyId/accessKeySecret are configured.
* SEND_MESSAGE_V2 carries `a`..`k` (+`l` only for retry topics); properties contain TAGS/KEYS and
  user properties but **no UNIQ_KEY** (the broker has to generate one; ali-ons uses the broker's
  msgId = offsetMsgId as message id).
* ali-ons never falls back to TBW102: TOPIC_NOT_EXIST on the topic fails the send immediately
  (so a topic must have a route before ali-ons can produce to it). When the broker answers a send
  with an error, send() gives up after one frame per broker name ("Send [4] times, still failed")
  and the broker's remark is lost.
* HEART_BEAT body: enums as **names**, `subVersion` a number, subscriptions have `classFilterMode`,
  `tagsSet`, `codeSet` (real Java String.hashCode values) but **no `expressionType`** (unless an
  SQL92 subscription is used), `subString` is the user's text verbatim (`"TagA || TagB"`),
  `unitMode` present. `producerDataSet` lists the producer groups of the same process (producer and
  consumer share the client, clientID `<ip>@<pid>`) and is `[]` in a consumer-only process; the
  internal CLIENT_INNER_PRODUCER has its own client (`<ip>@DEFAULT`) that heartbeats only once it
  knows a broker. The first heartbeat lacks `%RETRY%<group>`; it is added in the next one.
* UNREGISTER_CLIENT omits the absent group key (C++ sends it as `""`).
* clientID `<ip>@<pid>` where ip is the host's first non-loopback IPv4 (module `address`), even when
  talking to 127.0.0.1.
* UPDATE_CONSUMER_OFFSET is sent with **flag 0** (ali-ons' invokeOneway does not set the oneway
  bit; the response is ignored) and may carry `commitOffset:-1`; PULL_MESSAGE may carry
  `commitOffset:-1` too. QUERY_CONSUMER_OFFSET -> 22 is surfaced as an 'error' event
  ("RemoteBrokerOffsetStore.readOffset failed") before GET_MAX_OFFSET.
"""


def write_readme(out_root, results, cmdline):
    lines = ["# Captured client request frames", "",
             "Raw request frames (exact bytes as received, including the 4-byte total-length prefix) sent by",
             "the third-party RocketMQ clients Saturn is tested against. Generated by:", "",
             "```", "scripts/install-clients", cmdline, "```", "",
             "`tests/clients/capture_fixtures.py` runs each client's driver (`tests/clients/py_client.py` with",
             "the matching venv, `tests/clients/ons_client.js`) with the `probe` subcommand: one process with a",
             "producer (group `%s_PG`) and a push consumer (group `%s`, subscription `TopicTest` /" % (GROUP, GROUP),
             "`TagA || TagB`), one send of a TagA message (keys `probe-key-0`, user property `probeProp=v1`,",
             "body `probe body 0`; the Python clients then also `send_batch` two TagB messages), then ~5 s of running. Three passes per client, each against",
             "`tests/clients/capture_namesrv.py` on ephemeral 127.0.0.1 ports:",
             "", "* **noroute**: the name server answers every request with code 17 TOPIC_NOT_EXIST;",
             "* **route**: GET_ROUTEINFO_BY_TOPIC answers SUCCESS with a route to a fake broker (`capture-broker`,",
             "  4 queues) that answers HEART_BEAT 0, sends 1 SYSTEM_ERROR, GET_CONSUMER_LIST_BY_GROUP with the",
             "  heartbeat's clientID, QUERY_CONSUMER_OFFSET 22, GET_MAX_OFFSET 0 `offset:\"0\"`, PULL 19 after 1 s.",
             "* **consumer-only** (route mode): `consume --group %s_C --expr '*'` alone for 3 s; only its first" % GROUP,
             "  HEART_BEAT is kept (shows the heartbeat of a process without a producer).",
             "", "Only the first frame of each distinct kind is kept (per topic for routes / pulls / offset queries, per",
             "group set for heartbeats). Files are `<nn>-<request code>-<what>.bin`. Values such as timestamps,",
             "opaques, pids, clientIDs, UNIQ_KEYs and Signatures differ on every capture.", "",
             "The drivers themselves are checked end to end (produce / consume / pull, every client) against an",
             "in-memory fake broker by `python3 tests/clients/selftest.py`.", ""]
    lines.append(NOTES.strip("\n"))
    lines.append("")
    for client, chosen in results.items():
        lines += ["", "## %s" % client, "", "| file | pass | bytes | first 8 bytes | request |", "|---|---|---|---|---|"]
        for name, f, raw in chosen:
            lines.append("| `%s` | %s | %d | `%s` | %s %s |" % (name, f["pass"], len(raw), hexline(raw[:8]),
                                                               f["code"], CODE_NAMES.get(f["code"], "?")))
        for name, f, raw in chosen:
            header, body = fmt_header(raw)
            hl = struct.unpack(">I", raw[4:8])[0] & 0xFFFFFF
            hdr_text = raw[8:8 + hl].decode("utf-8", "replace")
            lines += ["", "### `%s`" % name, "",
                      "totalLength %d (0x%08x), headerLength %d, body %d bytes. Header text as sent%s:" % (
                          struct.unpack(">i", raw[:4])[0], struct.unpack(">I", raw[:4])[0], hl, len(body),
                          " (ends with a newline)" if hdr_text.endswith("\n") else ""),
                      "", "```json", hdr_text.rstrip("\n"), "```"]
            if body:
                try:
                    b = body.decode("utf-8")
                    if any(ord(ch) < 32 and ch != "\n" for ch in b):
                        raise UnicodeDecodeError("utf-8", body, 0, 1, "control characters")
                    lines += ["", "Body%s:" % (" (ends with a newline)" if b.endswith("\n") else ""), "",
                              "```", b.rstrip("\n"), "```"]
                except UnicodeDecodeError:
                    lines += ["", "Body (binary, %d bytes; hex):" % len(body), "", "```"]
                    lines += [hexline(body[i:i + 32]) for i in range(0, len(body), 32)]
                    lines += ["```"]
    with open(os.path.join(out_root, "README.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "protocol", "tests", "fixtures", "clients"))
    ap.add_argument("--raw-dir", default=os.path.join(CACHE, "capture"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", default=",".join(CLIENTS))
    a = ap.parse_args()
    results = {}
    for client in [c for c in a.clients.split(",") if c]:
        exe = CLIENTS[client][0]
        if exe != "node" and not os.path.exists(exe):
            sys.exit("missing %s: run scripts/install-clients first" % exe)
        frames_a, _ = run_pass(client, False, a.seconds, a.raw_dir)
        frames_b, _ = run_pass(client, True, a.seconds, a.raw_dir)
        frames_c, _ = run_pass(client, True, a.seconds, a.raw_dir, consumer_only=True)
        chosen = select(frames_a + frames_b + [f for f in frames_c if f["code"] == 34][:1])
        cdir = os.path.join(a.out, client)
        shutil.rmtree(cdir, ignore_errors=True)
        os.makedirs(cdir)
        kept = []
        for n, (f, what) in enumerate(chosen, 1):
            raw = open(f["path"], "rb").read()
            name = "%02d-%s-%s.bin" % (n, f["code"], what)
            with open(os.path.join(cdir, name), "wb") as fh:
                fh.write(raw)
            kept.append((name, f, raw))
        results[client] = kept
        print("[capture] %s: kept %d frames in %s" % (client, len(kept), os.path.relpath(cdir, REPO)), file=sys.stderr)
    cmdline = "python3 tests/clients/capture_fixtures.py" + (
        "" if a.clients == ",".join(CLIENTS) else " --clients " + a.clients)
    if set(results) == set(CLIENTS):
        write_readme(a.out, results, cmdline)
    else:
        print("[capture] partial run: README.md not rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
