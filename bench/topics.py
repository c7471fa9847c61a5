#!/usr/bin/env python3
"""topics.py: a million one-shot topics on the default configuration.

    python3 bench/topics.py [--smoke] [--redis] [--build DIR] [--topics N]

Starts BUILD/examples/evhttp_hello on a free loopback port (with --redis,
also a private redis-server on a unix socket in a temp dir, no persistence,
and the node on it), publishes one event to each of N distinct topics
("order-<i>", as an order-tracking service does), pipelined on one
keep-alive connection, then resumes 100 subscribers on recent topics and
100 on the oldest ones with a cursor just before their event. It prints one
JSON line:

  accepted / refused   publishes answered 200 / anything else (must be 0)
  rss_*_kb             the server's VmRSS before, after the publishes, and
                       its peak (VmHWM)
  recent_exact         resumes on recent topics that got exactly their event
  recent_gap / old_gap resumes told of the gap (their topic was evicted)
  wrong                resumes that got anything else (must be 0)
  redis_*              --redis: Redis's used_memory and key count after the
                       publishes and once the keys expired (--ttl-s)

Exits 1 when a publish was refused or a resume was wrong. --smoke: 20,000
topics with --max-topics 5000, so that eviction happens (a few seconds).
Nothing but loopback and the temp dir is touched; every process it starts
is stopped by pid.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def publish_all(port, n, batch=500):
    """POSTs one event to order-0 .. order-<n-1>; returns (ids, refused)."""
    ids = [None] * n
    refused = 0
    first_error = ""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    i = 0
    while i < n:
        end = min(n, i + batch)
        reqs = []
        for k in range(i, end):
            body = b'{"order":%d,"status":"placed"}' % k
            reqs.append(b"POST /publish?topic=order-%d HTTP/1.1\r\nHost: b\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (k, len(body), body))
        s.sendall(b"".join(reqs))
        k = i
        while k < end:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the publish connection")
                buf += chunk
                continue
            head = buf[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(buf) < head_end + 4 + length:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the publish connection")
                buf += chunk
                continue
            body = buf[head_end + 4:head_end + 4 + length]
            buf = buf[head_end + 4 + length:]
            code = int(head.split(" ", 2)[1])
            if code == 200:
                ids[k] = json.loads(body)["id"]
            else:
                refused += 1
                if not first_error:
                    first_error = "%d %s" % (code, body.decode("latin-1"))
            k += 1
        i = end
    s.close()
    return ids, refused, first_error


def before(event_id):
    """A cursor just before `event_id` ("<epoch>.<pos>", pos "n" or "ms-seq")."""
    epoch, _, pos = event_id.partition(".")
    major = int(pos.split("-")[0])
    return "%s.%d" % (epoch, major - 1)


def resume(port, topic, cursor, timeout=10.0):
    """Subscribes with Last-Event-ID and returns the first event (type, id)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(("GET /events?topic=%s HTTP/1.1\r\nHost: b\r\n"
               "Last-Event-ID: %s\r\n\r\n" % (topic, cursor)).encode())
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            text = data.decode("latin-1")
            body = text.partition("\r\n\r\n")[2]
            # Chunked framing: keep the lines that are SSE fields.
            fields = {}
            for line in body.split("\n"):
                line = line.rstrip("\r")
                for name in ("event", "id", "data"):
                    if line.startswith(name + ": ") and name not in fields:
                        fields[name] = line[len(name) + 2:]
                if "id" in fields:
                    return fields.get("event", "message"), fields["id"]
    finally:
        s.close()
    return None, None


def redis_info(cli, sock):
    out = subprocess.run([cli, "-s", sock, "INFO", "memory"], check=True,
                         capture_output=True, text=True).stdout
    used = 0
    for line in out.splitlines():
        if line.startswith("used_memory:"):
            used = int(line.split(":")[1])
    keys = int(subprocess.run([cli, "-s", sock, "DBSIZE"], check=True,
                              capture_output=True, text=True).stdout)
    return used, keys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--topics", type=int, default=1000000)
    ap.add_argument("--resumers", type=int, default=100)
    ap.add_argument("--max-topics", type=int, default=0,
                    help="evhttp_hello --max-topics (0: its default)")
    ap.add_argument("--history-max-bytes", type=int, default=0,
                    help="evhttp_hello --history-max-bytes (0: its default)")
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--ttl-s", type=int, default=0,
                    help="--redis: evhttp_hello --history-max-age, which "
                    "the keys' TTL follows; the run waits for it")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.topics, a.max_topics = 20000, 5000
        if a.redis and a.ttl_s == 0:
            a.ttl_s = 2
    hello = os.path.join(a.build, "examples", "evhttp_hello")
    if not os.access(hello, os.X_OK):
        sys.exit("topics.py: %s is not built" % hello)

    tmp = tempfile.mkdtemp(prefix="evsse-topics.")
    procs = []
    result = {"scenario": "topics", "topics": a.topics,
              "mode": "redis" if a.redis else "memory"}
    try:
        args = [hello]
        if a.max_topics:
            args += ["--max-topics", str(a.max_topics)]
        if a.ttl_s:
            args += ["--history-max-age", str(a.ttl_s)]
        if a.history_max_bytes:
            args += ["--history-max-bytes", str(a.history_max_bytes)]
        if a.redis:
            sock = os.path.join(tmp, "redis.sock")
            redis = subprocess.Popen(
                ["redis-server", "--port", "0", "--unixsocket", sock,
                 "--unixsocketperm", "700", "--save", "", "--appendonly",
                 "no", "--dir", tmp, "--logfile", os.path.join(tmp, "log")])
            procs.append(redis)
            cli = shutil.which("redis-cli")
            for _ in range(200):
                if subprocess.run([cli, "-s", sock, "PING"],
                                  capture_output=True).stdout.strip() == b"PONG":
                    break
                time.sleep(0.05)
            args += ["--redis", "unix:" + sock]
        port = free_port()
        args += ["--port", str(port)]
        server = subprocess.Popen(args, stderr=open(os.path.join(tmp, "node.log"), "w"))
        procs.append(server)
        wait_port(port, server)
        result["rss_start_kb"] = status_kb(server.pid, "VmRSS")

        t0 = time.monotonic()
        ids, refused, first_error = publish_all(port, a.topics)
        result["publish_s"] = round(time.monotonic() - t0, 2)
        result["accepted"] = a.topics - refused
        result["refused"] = refused
        if first_error:
            result["first_refusal"] = first_error[:200]
        result["publishes_per_s"] = round(a.topics / result["publish_s"])
        time.sleep(0.5)
        result["rss_end_kb"] = status_kb(server.pid, "VmRSS")
        result["rss_peak_kb"] = status_kb(server.pid, "VmHWM")
        if a.redis:
            result["redis_used_memory"], result["redis_keys"] = redis_info(cli, sock)

        # Resumes: recent topics (the newest 5 %), and the oldest ones.
        n = a.resumers
        span = max(n, a.topics // 20)
        recent = [a.topics - 1 - (k * span) // n for k in range(n)]
        oldest = list(range(min(n, a.topics)))
        exact = gap_recent = gap_old = wrong = 0
        for i in recent:
            if ids[i] is None:
                continue
            kind, got = resume(port, "order-%d" % i, before(ids[i]))
            if kind == "message" and got == ids[i]:
                exact += 1
            elif kind == "gap":
                gap_recent += 1
            else:
                wrong += 1
        for i in oldest:
            if ids[i] is None:
                continue
            kind, got = resume(port, "order-%d" % i, before(ids[i]))
            if kind == "gap" or (kind == "message" and got == ids[i]):
                gap_old += kind == "gap"
            else:
                wrong += 1
        result.update(recent_exact=exact, recent_gap=gap_recent,
                      old_gap=gap_old, wrong=wrong)

        if a.redis and a.ttl_s:
            deadline = time.monotonic() + a.ttl_s + 30
            while time.monotonic() < deadline:
                used, keys = redis_info(cli, sock)
                if keys == 0:
                    break
                time.sleep(0.5)
            result["redis_used_memory_after_ttl"] = used
            result["redis_keys_after_ttl"] = keys
            if keys != 0:
                result["error"] = "keys left after the TTL"
        result["rss_final_kb"] = status_kb(server.pid, "VmRSS")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    bad = (result.get("refused", 1) != 0 or result.get("wrong", 1) != 0 or
           "error" in result or result.get("recent_exact", 0) == 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
