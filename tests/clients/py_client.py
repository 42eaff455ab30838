#!/usr/bin/env python3
"""Driver for the two Python RocketMQ clients used by Saturn's end-to-end tests.

Which client is used depends only on the interpreter that runs this file:
    .cache/clients/py-rocketmq/bin/python  tests/clients/py_client.py ...   # rocketmq 0.4.4
    .cache/clients/py-cvs/bin/python       tests/clients/py_client.py ...   # rocketmq-python-cvs 2.1.0.3
(both import as `rocketmq`; install with scripts/install-clients).

Subcommands (all print JSON lines on stdout, diagnostics on stderr):
    produce --namesrv H:P --topic T --count N --mode sync|async|oneway|orderly|batch
            [--tags TagA,TagB] [--keys-prefix k] [--body-prefix b] [--props a=1,b=2]
            [--group G] [--keep-going] [--timeout S] [--delay-level L] [--retries 0]
        one line per acknowledged send
          {"event":"sent","i":0,"msgId":..,"offsetMsgId":null,"queueId":null,"queueOffset":..,
           "key":..,"tag":..,"status":"OK"}
        (oneway: "event":"sent_oneway", nothing acknowledged), errors as {"event":"send_error",...},
        then {"event":"summary",...}. Stops at the first failure unless --keep-going. --retries N
        re-sends a failed sync send (an application-level retry; each one is reported as
        {"event":"send_retry",...}): rocketmq-client-cpp 1.x fails every attempt of a send, without
        reaching any broker, when it races its own heartbeat thread for the connection table at
        start ("GetTransport of:<addr> get timed_mutex timeout" in its log, then "No route info
        of this topic").
    consume --namesrv H:P --topic T --group G [--expr 'TagA || TagB'] [--model clustering|broadcasting]
            --expect N --timeout S [--prop-keys a,b] [--orderly] [--shutdown auto|always|never]
            [--trace off|open] [--linger 6] [--sleep-ms 0] [--grace 0]
        push consumer; one {"event":"message",...} line per delivered message, exits when N distinct
        msgIds were seen (plus --grace seconds, still recording, to catch late duplicates) or after
        S seconds; final {"event":"summary",...}. --sleep-ms makes the listener slow (per message).
    pull    --namesrv H:P --topic T --group G [--expr '*'] --timeout S [--max-num 32] [--expect N]
            [--from-offset 0]
        pull consumer: fetches the queues of T, reads every queue from --from-offset until
        NO_NEW_MSG (bounded by --timeout); prints {"event":"message",...} incl. brokerName/queueId,
        one {"event":"queue",...} line per queue, then a summary.
    probe   --namesrv H:P [--topic TopicTest] [--group G] [--seconds 5] [--batch]
        starts a producer and a push consumer together, tries one sync send (+ a batch of 2), runs --seconds,
        used by tests/clients/capture_fixtures.py.

Exit codes: 0 success (all sends acked / expected messages seen), 1 failure (send error, fewer
messages than expected), 2 usage / start error. Judge by the summary line. The cvs client
ALWAYS crashes (SIGSEGV, rc 139) inside PushConsumer.shutdown() when message trace is off (its
default): DefaultMQPushConsumerImpl::shutdownMessageTraceInnerProducer() dereferences the NULL
trace producer (seen with and without a broker connection). So by default (--shutdown auto) this
driver does not call shutdown() for cvs consumers (it lingers --linger seconds when messages were
consumed so the 5 s periodic offset persist runs; no UNREGISTER_CLIENT is sent, the broker sees the
TCP close); --trace open makes shutdown safe. All output is flushed before any shutdown.

Facts about the client APIs (read from the installed packages' client.py / ffi.py and the symbols
exported by their librocketmq.so; both flavours have the identical Python API except where noted):
  * import name `rocketmq` for both packages -> one venv each. Both ship a prebuilt librocketmq.so
    next to ffi.py (ctypes, no LD_LIBRARY_PATH needed): rocketmq 0.4.4 = rocketmq-client-cpp 1.x (exact version not stated in the wheel)
    (bundles its own libz), rocketmq-python-cvs 2.1.0.3 = rocketmq-client-cpp 2.1.0 (needs system
    libz.so.1 and libstdc++.so.6). Wire: language "CPP", version 63 (0.4.4) / 333 = V4_6_0 (cvs).
  * Producer(group, timeout=None, compress_level=None, max_message_size=None); set_namesrv_addr();
    set_group(); set_session_credentials(ak, sk, channel); start(); shutdown().
    send_sync(msg) -> SendResult(status, msg_id, offset): NO queueId and NO offsetMsgId exposed
    (the C struct only has sendStatus/msgId[256]/offset). msg_id is the client UNIQ_KEY.
    send_async(msg, on_success(SendResult), on_exception(exc)) - callbacks on C++ threads.
    send_oneway(msg) - NB on the wire the "oneway" SEND has flag 0 (no oneway bit), so the broker
    answers it and the client drops the answer; send_orderly(msg, arg, retry_times=3,
    queue_selector=hash) (queue = arg % n); send_oneway_orderly(msg, arg);
    send_batch([msg, ...]) -> one SendResult; on the wire a batch is SEND_MESSAGE (0.4.4) /
    SEND_MESSAGE_V2 (cvs) with batch "1" / m "1" (a STRING "1", which Java's Boolean.parseBoolean
    reads as false) and the SEND_BATCH_MESSAGE body layout - never request code 320.
    No transactional producer in the Python layer (cvs lib exports CreateTransactionProducer but
    client.py does not wrap it).
  * Message(topic): set_keys, set_tags, set_body (c_char_p: NUL-terminated, so bodies must not
    contain NUL bytes), set_property(k, v) (user properties), set_delay_time_level(n).
  * PushConsumer(group, orderly=False, message_model=MessageModel.CLUSTERING|BROADCASTING):
    set_namesrv_addr, subscribe(topic, callback, expression='*') (one callback for all topics;
    return normally = CONSUME_SUCCESS, raise = RECONSUME_LATER), set_thread_count,
    set_message_batch_max_size, set_instance_name, start, shutdown.
    No consumeFromWhere / consumeTimestamp setter: the C++ default CONSUME_FROM_LAST_OFFSET applies,
    so a new CLUSTERING group only sees old messages if the broker answers QUERY_CONSUMER_OFFSET
    with 0 (what the Java broker does while the queue's first message is still in memory); on
    QUERY_NOT_FOUND it asks GET_MAX_OFFSET and starts at the end. BROADCASTING consumers keep
    offsets in local files ($HOME/.rocketmq_offsets) and always start at the end on first start:
    they only see messages produced after they started (verified against the fake broker).
  * RecvMessage: id (msgId), topic, tags, keys, body (bytes, NUL-terminated), queue_id, queue_offset,
    reconsume_times, born_timestamp, store_timestamp, store_size, commit_log_offset,
    get_property(name) (user or system property; b"" if absent). brokerName is not exposed.
  * PullConsumer(group): start, shutdown, set_namesrv_addr, pull(topic, expression, max_num)
    (generator over all queues starting at offset 0 with an UNBOUNDED retry loop - this driver
    calls the underlying C functions FetchSubscriptionMessageQueues/Pull itself with a time bound).
    The pull path exposes the queue's brokerName. On the wire the C++ pull consumer's PULL_MESSAGE
    has sysFlag 4 (SUBSCRIPTION only, no SUSPEND: the broker must answer at once), subVersion "0",
    commitOffset "0", suspendTimeoutMillis "20000", and its HEART_BEAT has consumeType 0 and NO
    subscriptionDataSet key at all.
  * cvs only: set_log_root_path(dir) on Producer/PushConsumer/PullConsumer; logs otherwise go to
    $ROCKETMQ_CLIENT_LOG_DIR or "$ROCKETMQ_HOME/logs/rocketmq-client/" (i.e. /logs/... when
    ROCKETMQ_HOME is unset!). 0.4.4 logs to $HOME/logs/rocketmq-cpp/. Both keep broadcasting offsets
    under $HOME/.rocketmq_offsets. This driver points HOME and both log dirs at --client-home
    (default <repo>/.cache/clients/home).
"""
import argparse
import base64
import json
import os
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def out(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")
    sys.stdout.flush()


def err(msg):
    sys.stderr.write("[py_client] %s\n" % msg)
    sys.stderr.flush()


def flavour():
    try:
        import importlib.metadata as md
    except ImportError:  # pragma: no cover
        return "unknown"
    for dist in ("rocketmq-python-cvs", "rocketmq"):
        try:
            return "%s-%s" % (dist, md.version(dist))
        except md.PackageNotFoundError:
            continue
    return "unknown"


def setup_env(home):
    os.makedirs(home, exist_ok=True)
    os.environ["HOME"] = home
    os.environ.setdefault("ROCKETMQ_CLIENT_LOG_DIR", os.path.join(home, "logs", "rocketmq-client"))
    os.environ.setdefault("ROCKETMQ_HOME", home)


def text(v):
    if v is None:
        return None
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(v).decode("ascii")
    return v


def err_text(e):
    """Readable text of a rocketmq exception (async ones carry bytes, oneway ones often nothing)."""
    parts = []
    for x in getattr(e, "args", ()) or ():
        x = text(x) if isinstance(x, bytes) else x
        if x not in (None, ""):
            parts.append(str(x))
    return "%s: %s" % (type(e).__name__, "; ".join(parts) if parts else "(no message from client)")


def parse_props(s):
    props = {}
    for item in filter(None, (s or "").split(",")):
        k, _, v = item.partition("=")
        props[k] = v
    return props


def set_log_path(obj, home):
    if hasattr(obj, "set_log_root_path"):  # cvs only
        try:
            obj.set_log_root_path(os.path.join(home, "logs", "rocketmq-client"))
        except Exception as e:  # noqa: BLE001
            err("set_log_root_path failed: %r" % e)


# --------------------------------------------------------------------------- produce
def cmd_produce(a):
    from rocketmq.client import Producer, Message

    tags = [t for t in (a.tags or "").split(",") if t]
    props = parse_props(a.props)
    client = flavour()
    p = Producer(a.group, timeout=int(a.send_timeout * 1000))
    set_log_path(p, a.client_home)
    p.set_namesrv_addr(a.namesrv)
    try:
        p.start()
    except Exception as e:  # noqa: BLE001
        out({"event": "start_error", "client": client, "error": err_text(e)})
        return 2

    def build(i):
        m = Message(a.topic)
        key = "%s%d" % (a.keys_prefix, i) if a.keys_prefix else None
        tag = tags[i % len(tags)] if tags else None
        if key:
            m.set_keys(key)
        if tag:
            m.set_tags(tag)
        for k, v in props.items():
            m.set_property(k, v)
        m.set_property("i", str(i))
        if a.delay_level:
            m.set_delay_time_level(a.delay_level)
        m.set_body("%s%d" % (a.body_prefix, i))
        return m, key, tag

    ok = failed = retried = 0
    t0 = time.time()
    deadline = t0 + a.timeout

    def sent_line(i, key, tag, res):
        return {"event": "sent", "i": i, "msgId": res.msg_id, "offsetMsgId": None, "queueId": None,
                "queueOffset": res.offset, "key": key, "tag": tag, "status": res.status.name,
                "client": client}

    def error_line(i, key, tag, e):
        msg = err_text(e)
        hint = None
        if "route" in msg.lower():
            hint = "no route (topic unknown to the name server / no broker)"
        elif msg.endswith("(no message from client)"):
            hint = "the C++ client gave no error text (seen for oneway/async/batch sends without a route)"
        return {"event": "send_error", "i": i, "key": key, "tag": tag, "error": msg, "hint": hint,
                "client": client}

    if a.mode in ("sync", "orderly", "oneway"):
        for i in range(a.count):
            if time.time() > deadline:
                err("timeout after %d sends" % i)
                failed += a.count - i
                break
            m, key, tag = build(i)
            try:
                if a.mode == "sync":
                    while True:
                        try:
                            res = p.send_sync(m)
                            break
                        except Exception as e:  # noqa: BLE001
                            if retried >= a.retries:
                                raise
                            retried += 1
                            out(dict(error_line(i, key, tag, e), event="send_retry"))
                            time.sleep(0.2)
                    out(sent_line(i, key, tag, res))
                elif a.mode == "orderly":
                    out(sent_line(i, key, tag, p.send_orderly(m, i % max(1, a.order_keys))))
                else:
                    p.send_oneway(m)
                    out({"event": "sent_oneway", "i": i, "key": key, "tag": tag, "client": client})
                ok += 1
            except Exception as e:  # noqa: BLE001
                failed += 1
                out(error_line(i, key, tag, e))
                if not a.keep_going:
                    break
    elif a.mode == "batch":
        msgs = [build(i) for i in range(a.count)]
        try:
            res = p.send_batch([m for m, _, _ in msgs])
            out({"event": "sent_batch", "count": a.count, "msgId": res.msg_id, "queueOffset": res.offset,
                 "status": res.status.name, "keys": [k for _, k, _ in msgs], "client": client})
            ok = a.count
        except Exception as e:  # noqa: BLE001
            failed = a.count
            out(error_line(None, None, None, e))
    elif a.mode == "async":
        # The C API may report one failure twice: through the exception callback (often with an
        # empty message) AND as a failed status of SendMessageAsync. First report per i wins.
        lock = threading.Lock()
        done = threading.Event()
        result = {}  # i -> "ok" | "failed"
        st = {"launched": 0, "all_launched": False}
        keep = []  # keep Message objects alive until their callback ran

        def report(i, kind, line):
            with lock:
                if i in result:
                    return
                result[i] = kind
                out(line)
                if st["all_launched"] and len(result) >= st["launched"]:
                    done.set()

        for i in range(a.count):
            if time.time() > deadline:
                break
            m, key, tag = build(i)
            keep.append(m)
            with lock:
                st["launched"] += 1

            def on_ok(res, i=i, key=key, tag=tag):
                report(i, "ok", sent_line(i, key, tag, res))

            def on_exc(e, i=i, key=key, tag=tag):
                report(i, "failed", error_line(i, key, tag, e))
            try:
                p.send_async(m, on_ok, on_exc)
            except Exception as e:  # noqa: BLE001
                report(i, "failed", error_line(i, key, tag, e))
                if not a.keep_going:
                    break
        with lock:
            n_launched = st["launched"]
            st["all_launched"] = True
            if len(result) >= n_launched:
                done.set()
        done.wait(max(0.0, deadline - time.time()))
        with lock:
            ok = sum(1 for v in result.values() if v == "ok")
            failed = a.count - ok
            if len(result) < n_launched:
                err("%d async sends still unanswered at timeout" % (n_launched - len(result)))
    out({"event": "summary", "cmd": "produce", "mode": a.mode, "client": client, "requested": a.count,
         "acked": ok, "failed": failed, "retried": retried, "elapsed_ms": int((time.time() - t0) * 1000)})
    sys.stdout.flush()
    if a.mode == "async":
        time.sleep(0.2)  # let the C++ callback threads return before shutdown
    try:
        p.shutdown()
    except Exception as e:  # noqa: BLE001
        err("producer shutdown: %r" % e)
    sys.stdout.flush()
    os._exit(0 if failed == 0 and ok == a.count else 1)  # skip ctypes __del__ at exit


# --------------------------------------------------------------------------- consume
def msg_line(m, prop_keys, broker_name=None):
    props = {}
    for k in prop_keys:
        v = text(m.get_property(k))
        if v:
            props[k] = v
    return {"event": "message", "msgId": m.id, "topic": m.topic, "keys": text(m.keys), "tags": text(m.tags),
            "body": text(m.body), "props": props, "queueId": m.queue_id, "queueOffset": m.queue_offset,
            "reconsumeTimes": m.reconsume_times, "bornTimestamp": m.born_timestamp,
            "storeTimestamp": m.store_timestamp, "brokerName": broker_name,
            "uniqKey": text(m.get_property("UNIQ_KEY")) or None}


def cmd_consume(a):
    from rocketmq.client import PushConsumer
    from rocketmq.ffi import MessageModel

    client = flavour()
    model = MessageModel.BROADCASTING if a.model == "broadcasting" else MessageModel.CLUSTERING
    prop_keys = [k for k in (a.prop_keys or "").split(",") if k] + ["i"]
    seen = set()
    lock = threading.Lock()
    enough = threading.Event()
    counts = {"delivered": 0}

    def on_message(m):
        if a.sleep_ms > 0:
            time.sleep(a.sleep_ms / 1000.0)
        line = msg_line(m, prop_keys)
        # --fail-times n: RECONSUME_LATER (an exception) until the n-th redelivery.
        failing = m.reconsume_times < a.fail_times
        with lock:
            counts["delivered"] += 1
            line["duplicate"] = line["msgId"] in seen
            if not failing:
                seen.add(line["msgId"])
            out(line)
            if a.expect and len(seen) >= a.expect:
                enough.set()
        if failing:
            raise RuntimeError("--fail-times: reconsume later")

    c = PushConsumer(a.group, orderly=a.orderly, message_model=model)
    set_log_path(c, a.client_home)
    c.set_namesrv_addr(a.namesrv)
    if a.threads:
        c.set_thread_count(a.threads)
    c.subscribe(a.topic, on_message, a.expr)
    trace_open = False
    if a.trace == "open":
        # cvs only: SetPushConsumerMessageTrace(handle, OPEN=0). Creates the inner trace producer
        # (producer group = consumer group in heartbeats; traces go to RMQ_SYS_TRACE_TOPIC) and
        # makes shutdown() safe.
        from rocketmq.ffi import dll
        import ctypes
        if hasattr(dll, "SetPushConsumerMessageTrace"):
            dll.SetPushConsumerMessageTrace.argtypes = [ctypes.c_void_p, ctypes.c_int]
            trace_open = dll.SetPushConsumerMessageTrace(c._handle, 0) == 0
        else:
            err("--trace open: not available in this client (0.4.4 has no message trace)")
    t0 = time.time()
    try:
        c.start()
    except Exception as e:  # noqa: BLE001
        out({"event": "start_error", "client": client, "error": err_text(e)})
        sys.stdout.flush()
        os._exit(2)
    enough.wait(a.timeout)
    if enough.is_set() and a.grace > 0:
        time.sleep(min(a.grace, max(0.0, t0 + a.timeout - time.time())))
    with lock:
        n = len(seen)
        out({"event": "summary", "cmd": "consume", "client": client, "expected": a.expect, "distinct": n,
             "delivered": counts["delivered"], "timed_out": not enough.is_set(),
             "elapsed_ms": int((time.time() - t0) * 1000)})
    sys.stdout.flush()
    rc = 0 if (not a.expect or n >= a.expect) else 1
    cvs = client.startswith("rocketmq-python-cvs")
    if a.shutdown == "always" or (a.shutdown == "auto" and (not cvs or trace_open)):
        try:
            c.shutdown()  # persists offsets, sends UNREGISTER_CLIENT
        except Exception as e:  # noqa: BLE001
            err("consumer shutdown: %r" % e)
    else:
        # cvs (rocketmq-client-cpp 2.1.0): ShutdownPushConsumer -> shutdownMessageTraceInnerProducer()
        # dereferences the NULL trace producer when message trace is off (the default) -> SIGSEGV.
        # So exit without shutdown; linger first so the 5 s periodic offset persist can run.
        if n and a.linger > 0:
            err("cvs: skipping PushConsumer.shutdown() (SIGSEGV bug); lingering %.1fs so offsets "
                "get persisted by the periodic task" % a.linger)
            time.sleep(a.linger)
        else:
            err("cvs: skipping PushConsumer.shutdown() (SIGSEGV bug in rocketmq-client-cpp 2.1.0)")
    sys.stdout.flush()
    os._exit(rc)  # skip ctypes __del__ (double shutdown / destroy) at interpreter exit


# --------------------------------------------------------------------------- pull
def cmd_pull(a):
    import ctypes
    from ctypes import POINTER, c_int
    from rocketmq.client import PullConsumer, RecvMessage
    from rocketmq.ffi import dll, _CMessageQueue, _CPullStatus
    from rocketmq.exceptions import ffi_check

    client = flavour()
    c = PullConsumer(a.group)
    set_log_path(c, a.client_home)
    c.set_namesrv_addr(a.namesrv)
    t0 = time.time()
    deadline = t0 + a.timeout
    try:
        c.start()
    except Exception as e:  # noqa: BLE001
        out({"event": "start_error", "client": client, "error": err_text(e)})
        os._exit(2)
    mqs = POINTER(_CMessageQueue)()
    size = c_int()
    try:
        ffi_check(dll.FetchSubscriptionMessageQueues(c._handle, a.topic.encode(), ctypes.pointer(mqs),
                                                     ctypes.pointer(size)))
    except Exception as e:  # noqa: BLE001
        msg = err_text(e)
        out({"event": "fetch_queues_error", "client": client, "topic": a.topic, "error": msg,
             "hint": "no route (topic unknown to the name server / no broker)"})
        out({"event": "summary", "cmd": "pull", "client": client, "messages": 0, "queues": 0,
             "expected": a.expect, "error": msg})
        sys.stdout.flush()
        os._exit(1)
    if size.value == 0:
        out({"event": "fetch_queues_error", "client": client, "topic": a.topic, "error": "no message queues",
             "hint": "no route (topic unknown to the name server / no broker)"})
        out({"event": "summary", "cmd": "pull", "client": client, "messages": 0, "queues": 0,
             "expected": a.expect, "error": "no message queues for topic %s" % a.topic})
        sys.stdout.flush()
        os._exit(1)
    total = 0
    statuses = {0: "FOUND", 1: "NO_NEW_MSG", 2: "NO_MATCHED_MSG", 3: "OFFSET_ILLEGAL", 4: "BROKER_TIMEOUT"}
    for qi in range(size.value):
        mq = mqs[qi]
        broker = mq.brokerName.decode()
        offset = a.from_offset
        last = None
        n = 0
        while time.time() < deadline:
            res = dll.Pull(c._handle, ctypes.pointer(mq), a.expr.encode(), ctypes.c_longlong(offset), a.max_num)
            last = statuses.get(res.pullStatus, str(res.pullStatus))
            if res.pullStatus == _CPullStatus.FOUND:
                for j in range(int(res.size)):
                    out(msg_line(RecvMessage(res.msgFoundList[j]), [k for k in (a.prop_keys or "").split(",") if k] + ["i"],
                                 broker_name=broker))
                    n += 1
            next_off = res.nextBeginOffset
            status = res.pullStatus
            min_off, max_off = res.minOffset, res.maxOffset
            dll.ReleasePullResult(res)
            if status == _CPullStatus.BROKER_TIMEOUT:
                time.sleep(0.2)
                continue
            if status == _CPullStatus.NO_NEW_MSG or next_off <= offset and status != _CPullStatus.FOUND:
                break
            offset = next_off
        total += n
        out({"event": "queue", "topic": mq.topic.decode(), "brokerName": broker, "queueId": mq.queueId,
             "messages": n, "lastStatus": last, "nextOffset": offset, "minOffset": min_off if last else None,
             "maxOffset": max_off if last else None})
    dll.ReleaseSubscriptionMessageQueue(mqs)
    out({"event": "summary", "cmd": "pull", "client": client, "queues": size.value, "messages": total,
         "expected": a.expect, "elapsed_ms": int((time.time() - t0) * 1000),
         "timed_out": time.time() >= deadline})
    sys.stdout.flush()
    try:
        c.shutdown()
    except Exception as e:  # noqa: BLE001
        err("pull consumer shutdown: %r" % e)
    os._exit(0 if (not a.expect or total >= a.expect) else 1)


# --------------------------------------------------------------------------- probe
def cmd_probe(a):
    from rocketmq.client import Producer, PushConsumer, Message

    client = flavour()
    p = Producer(a.group + "_PG")
    set_log_path(p, a.client_home)
    p.set_namesrv_addr(a.namesrv)
    p.start()
    c = PushConsumer(a.group)
    set_log_path(c, a.client_home)
    c.set_namesrv_addr(a.namesrv)
    c.subscribe(a.topic, lambda m: out(msg_line(m, [])), "TagA || TagB")
    c.start()
    out({"event": "started", "client": client})
    m = Message(a.topic)
    m.set_tags("TagA")
    m.set_keys("probe-key-0")
    m.set_property("probeProp", "v1")
    m.set_body("probe body 0")
    try:
        r = p.send_sync(m)
        out({"event": "sent", "msgId": r.msg_id, "queueOffset": r.offset, "status": r.status.name})
    except Exception as e:  # noqa: BLE001
        out({"event": "send_error", "error": err_text(e)})
    if a.batch:
        batch = []
        for i in (1, 2):
            bm = Message(a.topic)
            bm.set_tags("TagB")
            bm.set_keys("probe-key-%d" % i)
            bm.set_body("probe body %d" % i)
            batch.append(bm)
        try:
            r = p.send_batch(batch)
            out({"event": "sent_batch", "msgId": r.msg_id, "queueOffset": r.offset, "status": r.status.name})
        except Exception as e:  # noqa: BLE001
            out({"event": "send_batch_error", "error": err_text(e)})
    time.sleep(a.seconds)
    out({"event": "summary", "cmd": "probe", "client": client})
    sys.stdout.flush()
    try:
        p.shutdown()  # safe in both flavours; sends UNREGISTER_CLIENT for the producer group
    except Exception as e:  # noqa: BLE001
        err("producer shutdown: %r" % e)
    if not client.startswith("rocketmq-python-cvs"):
        c.shutdown()  # the cvs consumer would SIGSEGV here (trace producer is NULL)
    sys.stdout.flush()
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client-home", default=os.environ.get("SATURN_CLIENT_HOME",
                                                              os.path.join(REPO, ".cache", "clients", "home")))
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(sp, group_default):
        sp.add_argument("--namesrv", default="127.0.0.1:9876")
        sp.add_argument("--topic", default="TopicTest")
        sp.add_argument("--group", default=group_default)
        sp.add_argument("--timeout", type=float, default=30.0, help="overall time bound, seconds")

    sp = sub.add_parser("produce")
    common(sp, "PG_saturn_py")
    sp.add_argument("--count", type=int, default=1)
    sp.add_argument("--mode", choices=["sync", "async", "oneway", "orderly", "batch"], default="sync")
    sp.add_argument("--tags", default="")
    sp.add_argument("--keys-prefix", default="k")
    sp.add_argument("--body-prefix", default="body-")
    sp.add_argument("--props", default="", help="user properties a=1,b=2")
    sp.add_argument("--order-keys", type=int, default=1, help="orderly: arg = i %% order-keys")
    sp.add_argument("--delay-level", type=int, default=0)
    sp.add_argument("--send-timeout", type=float, default=3.0)
    sp.add_argument("--keep-going", action="store_true")
    sp.add_argument("--retries", type=int, default=0,
                    help="sync: re-send a failed message after 0.2 s, at most this many times per run")
    sp.set_defaults(fn=cmd_produce)

    sp = sub.add_parser("consume")
    common(sp, "CG_saturn_py")
    sp.add_argument("--expr", default="*")
    sp.add_argument("--model", choices=["clustering", "broadcasting"], default="clustering")
    sp.add_argument("--expect", type=int, default=0)
    sp.add_argument("--prop-keys", default="")
    sp.add_argument("--orderly", action="store_true")
    sp.add_argument("--fail-times", type=int, default=0,
                    help="the listener fails (RECONSUME_LATER) while reconsumeTimes < this")
    sp.add_argument("--threads", type=int, default=0)
    sp.add_argument("--sleep-ms", type=float, default=0.0, help="listener sleeps this long per message")
    sp.add_argument("--grace", type=float, default=0.0,
                    help="after the expected count, keep consuming this many seconds")
    sp.add_argument("--shutdown", choices=["auto", "always", "never"], default="auto",
                    help="auto: shut down unless cvs with message trace off (it SIGSEGVs there)")
    sp.add_argument("--linger", type=float, default=6.0,
                    help="cvs without shutdown: wait this long after the last check so offsets persist")
    sp.add_argument("--trace", choices=["off", "open"], default="off",
                    help="cvs only: enable message trace (makes shutdown() safe, adds a trace producer)")
    sp.set_defaults(fn=cmd_consume)

    sp = sub.add_parser("pull")
    common(sp, "CG_saturn_py_pull")
    sp.add_argument("--expr", default="*")
    sp.add_argument("--max-num", type=int, default=32)
    sp.add_argument("--from-offset", type=int, default=0)
    sp.add_argument("--expect", type=int, default=0)
    sp.add_argument("--prop-keys", default="")
    sp.set_defaults(fn=cmd_pull)

    sp = sub.add_parser("probe")
    common(sp, "CG_saturn_probe")
    sp.add_argument("--seconds", type=float, default=5.0)
    sp.add_argument("--batch", action="store_true", help="also send a batch of 2 (TagB) after the single send")
    sp.set_defaults(fn=cmd_probe)

    a = ap.parse_args()
    setup_env(a.client_home)
    try:
        import rocketmq.client  # noqa: F401
    except Exception as e:  # noqa: BLE001
        out({"event": "start_error", "error": "cannot import rocketmq (run with a venv from "
             "scripts/install-clients): %r" % e})
        return 2
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
