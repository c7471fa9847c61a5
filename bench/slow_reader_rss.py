#!/usr/bin/env python3
"""slow_reader_rss: the memory evsse-alerts holds per subscriber that stops
reading, against max_queued_bytes, and whether it comes back after the
write-stall closes. Loopback only.

usage: slow_reader_rss.py EVSSE_ALERTS [SUBSCRIBERS] [TITLE_BYTES]

Starts evsse-alerts twice (no slow subscriber, then SUBSCRIBERS of them,
each with a 4 KiB receive buffer, reading only the response head), publishes
the same events to both (enough to fill every queue), and prints the RSS
(VmRSS) of each run, the difference per subscriber while they are all still
connected (checked on /metrics), and the RSS after the write-stall timeout
(STALL_S, 30 s by default) closed them. The stall timeout must outlast the
publishing, or the readers are gone before "held" is measured (which is
what an earlier version with 5 s measured: heap the closes had freed).
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ALERTS = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20
TITLE = int(sys.argv[3]) if len(sys.argv) > 3 else 150
TOKEN = "slow-reader-rss-token"
QUEUE = 1 << 20
STALL_S = int(os.environ.get("STALL_S", "30"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def slow_round(p, port, subscribers, events):
    """Connects the readers, publishes, waits for the closes."""
    socks = []
    for _ in range(subscribers):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /alerts/stream?topic=ops HTTP/1.1\r\n"
                  b"Host: x\r\n\r\n")
        socks.append(s)
    while metric(port, "evsse_connections_active") != subscribers:
        time.sleep(0.05)
    for s in socks:
        s.recv(4096)  # the head; nothing more is ever read
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"severity": "info", "title": "t" * TITLE,
                       "body": "-", "team": "ops"})
    hdrs = {"Authorization": "Bearer " + TOKEN,
            "Content-Type": "application/json"}
    for i in range(events):
        c.request("POST", "/alerts", body, hdrs)
        c.getresponse().read()
    time.sleep(1)
    held = rss_kb(p.pid)
    active = metric(port, "evsse_connections_active")
    if active != subscribers:
        sys.exit("only %d of %d readers still connected when RSS was read: "
                 "raise STALL_S" % (active, subscribers))
    deadline = time.time() + STALL_S + 30
    while (metric(port, "evsse_connections_active") != 0 and
           time.time() < deadline):
        time.sleep(0.2)
    # The hub returns freed heap 200 ms after such closes (malloc_trim).
    time.sleep(1.5)
    after = rss_kb(p.pid)
    stalls = "%s stall, %s slow-consumer, %s delivered" % (
        metric(port, "evsse_stall_closes_total"),
        metric(port, "evsse_slow_consumer_closes_total"),
        metric(port, "evsse_events_delivered_total"))
    for s in socks:
        s.close()
    return held, after, stalls


def run(subscribers, events):
    port = free_port()
    d = tempfile.mkdtemp()
    conf = os.path.join(d, "a.conf")
    with open(conf, "w") as f:
        f.write("""log_level warning;
server {
    listen 127.0.0.1:%d;
    history_max_events %d;
    max_event_bytes 64k;
    max_alert_bytes 64k;
    max_title_length 4096;
    max_connections 10000;
    endpoint subscribe /alerts/stream {
        write_stall_timeout %ds;
        max_queued_bytes %d;
    }
    endpoint metrics /metrics { }
}
""" % (port, events, STALL_S, QUEUE))
    env = dict(os.environ, ALERTS_TOKEN=TOKEN)
    p = subprocess.Popen([ALERTS, "--config", conf], env=env)
    try:
        for _ in range(100):
            try:
                metric(port, "evsse_connections_active")
                break
            except OSError:
                time.sleep(0.05)
        start_rss = rss_kb(p.pid)
        rounds = []
        for _ in range(2 if subscribers else 1):
            rounds.append(slow_round(p, port, subscribers, events))
        return (start_rss,) + rounds[0] + tuple(r[1] for r in rounds[1:])
    finally:
        p.terminate()
        p.wait()


def main():
    wire = TITLE + 200  # the event as written: JSON, id, event type, framing
    # On loopback the kernel send buffer grows to tcp_wmem[2] (4 MiB) before
    # anything stays in evsse's queue: publish past both.
    events = int((QUEUE + (5 << 20)) / wire) + 1000
    base = run(0, events)
    slow = run(N, events)
    print("events: %d of about %d bytes on the wire" % (events, wire))
    print("no subscriber:   RSS before %d KiB, after publishing %d KiB" %
          base[:2])
    print("%d slow readers: RSS before %d KiB, held %d KiB, after their "
          "stall closes (%s) %d KiB; after a second identical round %d KiB" %
          (N, slow[0], slow[1], slow[3], slow[2], slow[4]))
    print("per slow reader: %.0f KiB held (max_queued_bytes %d KiB); "
          "%.0f KiB still not returned after the closes" %
          ((slow[1] - base[1]) / N, QUEUE // 1024, (slow[2] - base[1]) / N))


if __name__ == "__main__":
    main()
