#!/usr/bin/env python3
"""Tiny capture name server (+ optional fake broker) for RocketMQ remoting clients.

Stdlib only; listens on loopback only; every loop is bounded by --duration.

Frame format (see shared/reference/rocketmq-remoting.md §1):
    int32 BE totalLength (= 4 + headerLength + bodyLength, not counting itself)
    int32 BE headerLengthAndType (high byte = serialization type, 0 = JSON)
    header (JSON text), body (rest of the frame)

Every request frame received is written verbatim (including the 4-byte total
length prefix) to OUT/NNNN-<role>-<code>.bin and described in OUT/frames.jsonl
(one JSON object per frame: seq, role, conn, peer, code, header, body_len, file).

Name server (role "ns"): answers every request with a JSON response
    {"code":17,"extFields":{},"flag":1,"language":"JAVA","opaque":<same>,
     "remark":"...","serializeTypeCurrentRPC":"JSON","version":409}
(TOPIC_NOT_EXIST) - unless --route is given, in which case GET_ROUTEINFO_BY_TOPIC
(105) gets SUCCESS with a TopicRouteData body that points every topic at the fake
broker (one broker "capture-broker", 4 read/write queues, perm 6).

Fake broker (role "broker", only with --route): answers
    HEART_BEAT (34)                  -> SUCCESS
    SEND_MESSAGE(10)/_V2(310)/BATCH  -> SYSTEM_ERROR (1) "capture broker does not store messages"
    GET_CONSUMER_LIST_BY_GROUP (38)  -> SUCCESS {"consumerIdList":[<clientIDs of the group's heartbeats
                                        on still-open connections>]}
    QUERY_CONSUMER_OFFSET (14)       -> QUERY_NOT_FOUND (22)
    GET_MAX_OFFSET (30) / GET_MIN_OFFSET (31) / SEARCH_OFFSET_BY_TIMESTAMP (29)
                                     -> SUCCESS offset "0"
    PULL_MESSAGE (11)                -> after 1 s: PULL_NOT_FOUND (19) with
                                        nextBeginOffset/minOffset/maxOffset "0", suggestWhichBrokerId "0"
    UNREGISTER_CLIENT (35)           -> SUCCESS
    anything else                    -> REQUEST_CODE_NOT_SUPPORTED (3)
    oneway requests (flag & 2)       -> no response

With --store (implies --route) the fake broker becomes a tiny in-memory broker so the client
drivers can be exercised end to end without Saturn: sends (incl. C++ batches) are stored and
answered SUCCESS with msgId/queueId/queueOffset, PULL returns stored messages (V1 layout, tag
filter on the subscription string) or PULL_NOT_FOUND after 1 s, consumer offsets are kept
(QUERY_CONSUMER_OFFSET of an unknown group answers offset 0 like a Java broker whose first message
is still in memory), GET_MAX_OFFSET answers the queue length. Not a reference for anything.

Usage:
    capture_namesrv.py --out DIR [--port 0] [--route|--store] [--broker-port 0] [--duration 30]
Prints one line "READY ns=127.0.0.1:P1 broker=127.0.0.1:P2" on stdout when listening.
Can also be imported: CaptureServer(out_dir, route=...).start() / .stop().
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
import zlib

LOOPBACK = "127.0.0.1"
RESPONSE_VERSION = 409  # V4_9_8

CODE_NAMES = {
    10: "SEND_MESSAGE", 11: "PULL_MESSAGE", 14: "QUERY_CONSUMER_OFFSET",
    15: "UPDATE_CONSUMER_OFFSET", 29: "SEARCH_OFFSET_BY_TIMESTAMP", 30: "GET_MAX_OFFSET",
    31: "GET_MIN_OFFSET", 34: "HEART_BEAT", 35: "UNREGISTER_CLIENT", 36: "CONSUMER_SEND_MSG_BACK",
    38: "GET_CONSUMER_LIST_BY_GROUP", 41: "LOCK_BATCH_MQ", 42: "UNLOCK_BATCH_MQ",
    101: "GET_KV_CONFIG", 105: "GET_ROUTEINFO_BY_TOPIC", 310: "SEND_MESSAGE_V2",
    320: "SEND_BATCH_MESSAGE",
}


def encode_frame(header, body=b""):
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return struct.pack(">ii", 4 + len(h) + len(body), len(h)) + h + body


def decode_frame(raw):
    """raw = full frame incl. the 4-byte length prefix -> (header dict|None, body bytes, ser_type)."""
    word = struct.unpack(">I", raw[4:8])[0]
    ser_type, hlen = word >> 24, word & 0xFFFFFF
    hdr_bytes = raw[8:8 + hlen]
    body = raw[8 + hlen:]
    header = None
    if ser_type == 0:
        try:
            header = json.loads(hdr_bytes.decode("utf-8"))
        except ValueError:
            header = None
    return header, body, ser_type


def response(request_header, code, remark=None, ext=None):
    h = {
        "code": code,
        "extFields": {k: str(v) for k, v in (ext or {}).items()},
        "flag": 1,
        "language": "JAVA",
        "opaque": request_header.get("opaque", 0),
        "serializeTypeCurrentRPC": "JSON",
        "version": RESPONSE_VERSION,
    }
    if remark is not None:
        h["remark"] = remark
    return h


class CaptureServer:
    def __init__(self, out_dir, route=False, ns_port=0, broker_port=0, pull_delay=1.0,
                 broker_name="capture-broker", queues=4, log=None, store=False):
        self.out_dir = out_dir
        self.store = MiniStore() if store else None
        route = route or store
        self.route = route
        self.pull_delay = pull_delay
        self.broker_name = broker_name
        self.queues = queues
        self.log = log or (lambda *a: None)
        os.makedirs(out_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0
        self._conn_seq = 0
        self._stop = threading.Event()
        self._threads = []
        self._socks = []
        self.group_clients = {}  # consumer group -> {clientID: broker connection id}
        self._index = open(os.path.join(out_dir, "frames.jsonl"), "a", encoding="utf-8")
        self.ns_sock = self._listen(ns_port)
        self.ns_addr = "%s:%d" % self.ns_sock.getsockname()
        self.broker_sock = self._listen(broker_port) if route else None
        self.broker_addr = ("%s:%d" % self.broker_sock.getsockname()) if self.broker_sock else None

    def _listen(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, port))
        s.listen(16)
        s.settimeout(0.2)
        self._socks.append(s)
        return s

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._spawn(self._accept_loop, self.ns_sock, "ns")
        if self.broker_sock:
            self._spawn(self._accept_loop, self.broker_sock, "broker")
        return self

    def stop(self):
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=3)
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        with self._lock:
            self._index.close()

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self, lsock, role):
        while not self._stop.is_set():
            try:
                conn, peer = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._conn_seq += 1
                cid = self._conn_seq
            self.log("accept %s conn=%d from %s:%d" % (role, cid, peer[0], peer[1]))
            self._spawn(self._conn_loop, conn, role, cid, "%s:%d" % peer)

    # ------------------------------------------------------------ per connection
    def _conn_loop(self, conn, role, cid, peer):
        conn.settimeout(0.2)
        buf = b""
        wlock = threading.Lock()
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 4:
                    total = struct.unpack(">i", buf[:4])[0]
                    if total < 4 or total > 16 * 1024 * 1024:
                        self.log("bad frame length %d on %s conn=%d, closing" % (total, role, cid))
                        return
                    if len(buf) < 4 + total:
                        break
                    raw, buf = buf[:4 + total], buf[4 + total:]
                    self._handle(conn, wlock, role, cid, peer, raw, cid)
        finally:
            with self._lock:  # a closed connection drops its clients from every group
                for members in self.group_clients.values():
                    for k in [k for k, v in members.items() if v == cid]:
                        del members[k]
            try:
                conn.close()
            except OSError:
                pass

    def _record(self, role, cid, peer, raw, header, body):
        with self._lock:
            self._seq += 1
            seq = self._seq
            code = header.get("code") if header else "bin"
            name = "%04d-%s-%s.bin" % (seq, role, code)
            with open(os.path.join(self.out_dir, name), "wb") as f:
                f.write(raw)
            entry = {"seq": seq, "role": role, "conn": cid, "peer": peer, "t": time.time(),
                     "code": code, "header": header, "body_len": len(body), "file": name}
            if body and header and header.get("code") == 34:
                try:
                    entry["body_json"] = json.loads(body.decode("utf-8"))
                except ValueError:
                    pass
            self._index.write(json.dumps(entry) + "\n")
            self._index.flush()
        return seq

    def _send(self, conn, wlock, frame):
        with wlock:
            try:
                conn.sendall(frame)
            except OSError:
                pass

    def _handle(self, conn, wlock, role, cid, peer, raw, conn_id=None):
        header, body, ser_type = decode_frame(raw)
        seq = self._record(role, cid, peer, raw, header, body)
        if header is None:
            self.log("#%d %s: non-JSON header (serialization type %d), not answered" % (seq, role, ser_type))
            return
        code = header.get("code")
        ext = header.get("extFields") or {}
        flag = header.get("flag", 0)
        self.log("#%d %s conn=%d code=%s(%s) flag=%s ext=%s body=%dB" % (
            seq, role, cid, code, CODE_NAMES.get(code, "?"), flag, json.dumps(ext), len(body)))
        if flag & 1:
            return  # a response from the client (to a broker->client request); never expected here
        if flag & 2:
            return  # oneway: no response
        if role == "ns":
            resp, rbody = self._ns_answer(header, ext)
            self._send(conn, wlock, encode_frame(resp, rbody))
        else:
            self._broker_answer(conn, wlock, header, ext, body, conn_id)

    # ------------------------------------------------------------ name server
    def _route_body(self, topic):
        route = {
            "brokerDatas": [{"brokerAddrs": {"0": self.broker_addr}, "brokerName": self.broker_name,
                             "cluster": "CaptureCluster"}],
            "filterServerTable": {},
            "queueDatas": [{"brokerName": self.broker_name, "perm": 6, "readQueueNums": self.queues,
                            "topicSysFlag": 0, "writeQueueNums": self.queues}],
        }
        return json.dumps(route, separators=(",", ":")).encode("utf-8")

    def _ns_answer(self, header, ext):
        code = header.get("code")
        topic = ext.get("topic")
        if code == 105 and self.route:
            return response(header, 0), self._route_body(topic)
        if code == 105:
            remark = "No topic route info in name server for the topic: %s (capture name server)" % topic
        else:
            remark = "capture name server answers TOPIC_NOT_EXIST to request code %s" % code
        return response(header, 17, remark), b""

    # ------------------------------------------------------------ fake broker
    def _broker_answer(self, conn, wlock, header, ext, body, conn_id=None):
        code = header.get("code")
        if self.store is not None and code in (10, 310, 11, 14, 15, 30, 36):
            r, rbody, delay = self.store.handle(code, header, ext, body, self.broker_addr)
            frame = encode_frame(r, rbody)
            if delay:
                def later():
                    if not self._stop.wait(self.pull_delay):
                        self._send(conn, wlock, frame)
                self._spawn(later)
            elif not header.get("flag", 0) & 2:
                self._send(conn, wlock, frame)
            return
        if code == 34:
            try:
                hb = json.loads(body.decode("utf-8"))
                with self._lock:
                    for cd in hb.get("consumerDataSet") or []:
                        self.group_clients.setdefault(cd.get("groupName"), {})[hb.get("clientID")] = conn_id
            except (ValueError, AttributeError):
                pass
            r = response(header, 0)
        elif code in (10, 310, 320):
            r = response(header, 1, "capture broker does not store messages")
        elif code == 38:
            with self._lock:
                ids = sorted(self.group_clients.get(ext.get("consumerGroup"), {}))
            rb = json.dumps({"consumerIdList": ids}).encode("utf-8")
            self._send(conn, wlock, encode_frame(response(header, 0), rb))
            return
        elif code == 14:
            r = response(header, 22, "capture broker: no stored offset")
        elif code in (29, 30, 31):
            r = response(header, 0, ext={"offset": "0"})
        elif code == 11:
            r = response(header, 19, "capture broker: no message", ext={
                "nextBeginOffset": "0", "minOffset": "0", "maxOffset": "0", "suggestWhichBrokerId": "0"})
            frame = encode_frame(r)

            def later():
                if not self._stop.wait(self.pull_delay):
                    self._send(conn, wlock, frame)
            self._spawn(later)
            return
        elif code in (35, 15, 41, 42):
            r = response(header, 0)
        else:
            r = response(header, 3, " request type %s not supported" % code)
        self._send(conn, wlock, encode_frame(r))


def _s(v, default=None):
    """ext values arrive as strings (Java/C++) or raw JSON numbers/booleans (C++, ali-ons)."""
    if v is None:
        return default
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _props(s):
    out = {}
    for item in (s or "").split("\x02"):
        if "\x01" in item:
            k, v = item.split("\x01", 1)
            out[k] = v
    return out


class MiniStore:
    """In-memory stand-in for a broker, just enough for the client drivers' self-test."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queues = {}   # (topic, qid) -> [record bytes]
        self.tags = {}     # (topic, qid) -> [tag]
        self.offsets = {}  # (group, topic, qid) -> offset
        self.phys = 0
        self.seq = 0

    def _encode(self, topic, qid, qoff, flag, sysflag, born_ts, body, props, store_host):
        ip, port = store_host.split(":")
        host = bytes(int(x) for x in ip.split(".")) + struct.pack(">i", int(port))
        t = topic.encode()
        pr = props.encode()
        size = 91 + len(body) + len(t) + len(pr)
        rec = struct.pack(">iiiiiqqiq", size, -626843481, zlib.crc32(body) & 0x7FFFFFFF, qid, flag, qoff,
                          self.phys, sysflag, born_ts)
        rec += host + struct.pack(">q", int(time.time() * 1000)) + host
        rec += struct.pack(">iq", 0, 0) + struct.pack(">i", len(body)) + body
        rec += struct.pack(">B", len(t)) + t + struct.pack(">h", len(pr)) + pr
        assert len(rec) == size
        msg_id = "%s%08X%016X" % ("".join("%02X" % b for b in host[:4]), int(port), self.phys)
        self.phys += size
        return rec, msg_id

    def _uniq(self):
        self.seq += 1
        return "7F000001%04X%08X%012X" % (os.getpid() & 0xFFFF, 0x5A7, self.seq)

    def handle(self, code, header, ext, body, store_host):
        with self.lock:
            return self._handle(code, header, ext, body, store_host)

    def _handle(self, code, header, ext, body, store_host):
        if code in (10, 310):
            v2 = code == 310
            g = (lambda k1, k2: ext.get(k2) if v2 else ext.get(k1))
            topic = _s(g("topic", "b"))
            qid = max(0, int(_s(g("queueId", "e"), "0")))
            flag = int(_s(g("flag", "h"), "0"))
            sysflag = int(_s(g("sysFlag", "f"), "0"))
            born = int(_s(g("bornTimestamp", "g"), "0"))
            batch = _s(g("batch", "m"), "false") in ("1", "true", "True")
            entries = []
            if batch:
                pos = 0
                while pos + 20 <= len(body):
                    total, _magic, _crc, mflag, blen = struct.unpack(">iiiii", body[pos:pos + 20])
                    b = body[pos + 20:pos + 20 + blen]
                    plen = struct.unpack(">h", body[pos + 20 + blen:pos + 22 + blen])[0]
                    pstr = body[pos + 22 + blen:pos + 22 + blen + plen].decode()
                    entries.append((mflag, b, pstr))
                    pos += total
            else:
                entries.append((flag, body, _s(g("properties", "i"), "")))
            key = (topic, qid)
            q = self.queues.setdefault(key, [])
            tags = self.tags.setdefault(key, [])
            ids, first = [], len(q)
            for mflag, b, pstr in entries:
                if "UNIQ_KEY\x01" not in pstr:
                    pstr += "UNIQ_KEY\x01%s\x02" % self._uniq()
                rec, mid = self._encode(topic, qid, len(q), mflag, sysflag, born, b, pstr, store_host)
                q.append(rec)
                tags.append(_props(pstr).get("TAGS"))
                ids.append(mid)
            return response(header, 0, None, {"msgId": ",".join(ids), "queueId": qid, "queueOffset": first,
                                               "MSG_REGION": "DefaultRegion", "TRACE_ON": "false"}), b"", False
        topic = _s(ext.get("topic"))
        qid = int(_s(ext.get("queueId"), "0"))
        key = (topic, qid)
        q = self.queues.get(key, [])
        if code == 11:
            off = int(_s(ext.get("queueOffset"), "0"))
            maxn = int(_s(ext.get("maxMsgNums"), "32"))
            sub = (_s(ext.get("subscription"), "*") or "*").strip()
            want = None if sub in ("*", "") else {t.strip() for t in sub.split("||") if t.strip()}
            hdr = {"minOffset": 0, "maxOffset": len(q), "suggestWhichBrokerId": 0}
            if off >= len(q):
                hdr["nextBeginOffset"] = min(off, len(q))
                return response(header, 19, "OFFSET_OVERFLOW_ONE", hdr), b"", True
            tags = self.tags.get(key, [])
            recs, i = [], off
            while i < len(q) and len(recs) < maxn:
                if want is None or tags[i] in want:
                    recs.append(q[i])
                i += 1
            hdr["nextBeginOffset"] = i
            if not recs:
                return response(header, 20, "NO_MATCHED_MESSAGE", hdr), b"", False
            return response(header, 0, "FOUND", hdr), b"".join(recs), False
        if code == 14:
            o = self.offsets.get((_s(ext.get("consumerGroup")), topic, qid), 0)
            return response(header, 0, None, {"offset": o}), b"", False
        if code == 15:
            o = int(_s(ext.get("commitOffset"), "-1"))
            if o >= 0:
                self.offsets[(_s(ext.get("consumerGroup")), topic, qid)] = o
            return response(header, 0), b"", False
        if code == 30:
            return response(header, 0, None, {"offset": len(q)}), b"", False
        return response(header, 0), b"", False  # 36 CONSUMER_SEND_MSG_BACK: accept


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for captured frames")
    ap.add_argument("--port", type=int, default=0, help="name server port (0 = ephemeral)")
    ap.add_argument("--route", action="store_true", help="answer routes, run the fake broker")
    ap.add_argument("--store", action="store_true", help="fake broker stores and delivers messages (implies --route)")
    ap.add_argument("--broker-port", type=int, default=0)
    ap.add_argument("--duration", type=float, default=30.0, help="exit after this many seconds")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    log = (lambda *x: None) if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    srv = CaptureServer(a.out, route=a.route, ns_port=a.port, broker_port=a.broker_port, log=log,
                        store=a.store).start()
    print("READY ns=%s broker=%s" % (srv.ns_addr, srv.broker_addr or "-"), flush=True)
    try:
        time.sleep(max(0.0, a.duration))
    except KeyboardInterrupt:
        pass
    srv.stop()


if __name__ == "__main__":
    main()
