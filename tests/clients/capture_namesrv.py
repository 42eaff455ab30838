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
    GET_CONSUMER_LIST_BY_GROUP (38)  -> SUCCESS {"consumerIdList":[<clientIDs seen in heartbeats>]}
    QUERY_CONSUMER_OFFSET (14)       -> QUERY_NOT_FOUND (22)
    GET_MAX_OFFSET (30) / GET_MIN_OFFSET (31) / SEARCH_OFFSET_BY_TIMESTAMP (29)
                                     -> SUCCESS offset "0"
    PULL_MESSAGE (11)                -> after 1 s: PULL_NOT_FOUND (19) with
                                        nextBeginOffset/minOffset/maxOffset "0", suggestWhichBrokerId "0"
    UNREGISTER_CLIENT (35)           -> SUCCESS
    anything else                    -> REQUEST_CODE_NOT_SUPPORTED (3)
    oneway requests (flag & 2)       -> no response

Usage:
    capture_namesrv.py --out DIR [--port 0] [--route] [--broker-port 0] [--duration 30]
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
                 broker_name="capture-broker", queues=4, log=None):
        self.out_dir = out_dir
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
        self.client_ids = []
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
                    self._handle(conn, wlock, role, cid, peer, raw)
        finally:
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

    def _handle(self, conn, wlock, role, cid, peer, raw):
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
            self._broker_answer(conn, wlock, header, ext, body)

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
    def _broker_answer(self, conn, wlock, header, ext, body):
        code = header.get("code")
        if code == 34:
            try:
                cid = json.loads(body.decode("utf-8")).get("clientID")
                if cid and cid not in self.client_ids:
                    self.client_ids.append(cid)
            except (ValueError, AttributeError):
                pass
            r = response(header, 0)
        elif code in (10, 310, 320):
            r = response(header, 1, "capture broker does not store messages")
        elif code == 38:
            rb = json.dumps({"consumerIdList": self.client_ids}).encode("utf-8")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for captured frames")
    ap.add_argument("--port", type=int, default=0, help="name server port (0 = ephemeral)")
    ap.add_argument("--route", action="store_true", help="answer routes, run the fake broker")
    ap.add_argument("--broker-port", type=int, default=0)
    ap.add_argument("--duration", type=float, default=30.0, help="exit after this many seconds")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    log = (lambda *x: None) if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    srv = CaptureServer(a.out, route=a.route, ns_port=a.port, broker_port=a.broker_port, log=log).start()
    print("READY ns=%s broker=%s" % (srv.ns_addr, srv.broker_addr or "-"), flush=True)
    try:
        time.sleep(max(0.0, a.duration))
    except KeyboardInterrupt:
        pass
    srv.stop()


if __name__ == "__main__":
    main()
