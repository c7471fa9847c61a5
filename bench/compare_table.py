#!/usr/bin/env python3
"""compare_table.py: the table of bench/compare.sh from its JSON lines.

    python3 bench/compare_table.py RESULTS.jsonl [--markdown]

Each line is one evsse-loadgen run tagged with "server" (evsse or nchan) and
"round", or the evsse-floor line (server "floor"). For every scenario and
figure it prints the median over the rounds for each server, the ratio
evsse/nchan, the target of issue 8 (issue 14 for the tls_ scenarios) and whether the median meets it. Runs
with an "error" field are left out of the medians and listed under the
table, as are runs that lost, duplicated or reordered events. Exits 1 when
the file has no run or a line that is not JSON.
"""
import json
import statistics
import sys

# (scenario, figure key, label, unit scale, digits, target)
# target: ("ratio", x) = evsse/nchan at most x; ("max", v) = evsse at most
# v; None = reported only. Every figure here is better when lower, except
# those whose label says "/s" (reported only).
FIGURES = [
    ("idle_10k", "server_rss_per_subscriber_bytes", "user-space RSS per idle subscriber (B)", 1, 0, ("max", 2048)),
    ("idle_10k", "server_cpu_connect_s", "server CPU to accept 10k (s)", 1, 2, None),
    ("live_1k_200eps", "latency_us_p99", "latency p99 (ms)", 1e-3, 2, ("ratio", 0.5)),
    ("live_1k_200eps", "latency_us_p50", "latency p50 (ms)", 1e-3, 2, None),
    ("live_1k_200eps", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, ("ratio", 0.8)),
    ("live_1k_200eps", "publish_rate_achieved", "events/s achieved (asked 200)", 1, 0, None),
    ("max_1k", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, ("ratio", 0.5)),
    ("max_1k", "deliveries_per_s", "deliveries/s", 1, 0, None),
    ("max_1k", "latency_us_p99", "latency p99 (ms)", 1e-3, 1, None),
    ("fan_10k_5eps", "latency_us_p99", "latency p99 (ms)", 1e-3, 2, ("ratio", 0.5)),
    ("fan_10k_5eps", "latency_us_p50", "latency p50 (ms)", 1e-3, 2, None),
    ("fan_10k_5eps", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, None),
    ("fan_10k_max", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, ("ratio", 0.6)),
    ("fan_10k_max", "deliveries_per_s", "deliveries/s", 1, 0, None),
    ("fan_10k_max", "server_rss_after_kb", "server RSS after (MB)", 1 / 1024, 1, None),
    ("topics_1000x10", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, ("ratio", 0.6)),
    ("topics_1000x10", "deliveries_per_s", "deliveries/s", 1, 0, None),
    ("topics_1000x10", "latency_us_p99", "latency p99 (ms)", 1e-3, 2, None),
    ("replay_5000", "replay_all_done_s", "all 100 replayed (ms)", 1e3, 1, ("ratio", 0.25)),
    ("replay_5000", "replay_catchup_ms_p50", "catch-up p50 (ms)", 1, 1, None),
    ("replay_5000", "server_cpu_replay_s", "server CPU for the replay (s)", 1, 2, None),
    ("redis_1k_max", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, ("ratio", 0.7)),
    ("redis_1k_max", "redis_cpu_us_per_publish", "Redis CPU per publish (us)", 1, 1, None),
    ("redis_1k_max", "deliveries_per_s", "deliveries/s", 1, 0, None),
    ("redis_1k_200eps", "latency_us_p99", "latency p99 (ms)", 1e-3, 2, None),
    ("redis_1k_200eps", "server_cpu_s_per_million_deliveries", "server CPU s per 10^6 deliveries", 1, 2, None),
    ("redis_1k_200eps", "redis_cpu_us_per_publish", "Redis CPU per publish (us)", 1, 1, None),
    ("redis_1k_200eps", "publish_rate_achieved", "events/s achieved (asked 200)", 1, 0, None),
    # Publishing as fast as 16 connections x 4 in flight are acknowledged
    # (issue 17: batched publish calls).
    ("redis_publish_max", "redis_cpu_us_per_publish", "Redis CPU per publish at max rate (us)", 1, 1, None),
    ("redis_publish_max", "publish_rate_achieved", "publishes/s at max rate", 1, 0, None),
    # TLS on the server (issue 14): both serve HTTPS with the same
    # certificate; evsse-loadgen --tls verifies it.
    ("tls_idle_10k", "server_rss_per_subscriber_bytes", "TLS: user-space RSS per idle subscriber (B)", 1, 0, ("ratio", 0.5)),
    ("tls_idle_10k", "server_cpu_connect_s", "TLS: server CPU to accept 10k (s)", 1, 2, None),
    ("tls_max_1k", "server_cpu_s_per_million_deliveries", "TLS: server CPU s per 10^6 deliveries", 1, 2, ("ratio", 0.5)),
    ("tls_max_1k", "deliveries_per_s", "TLS: deliveries/s", 1, 0, None),
    ("tls_max_1k", "latency_us_p99", "TLS: latency p99 (ms)", 1e-3, 1, None),
    ("tls_lone_1k", "server_cpu_s_per_million_deliveries", "TLS: server CPU s per 10^6 deliveries", 1, 2, None),
    ("tls_lone_1k", "latency_us_p99", "TLS: latency p99 (ms)", 1e-3, 2, None),
]

# Runs of the CI smoke (evsse only) get a generic list.
SMOKE_FIGURES = [
    "server_rss_per_subscriber_bytes", "deliveries_per_s", "latency_us_p99",
    "server_cpu_s_per_million_deliveries", "replay_all_done_s",
    "redis_cpu_us_per_publish",
]

SERVERS = ("evsse", "nchan")


def fmt(v, digits):
    if v is None:
        return "-"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def load(path):
    runs, floor, bad = [], None, []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                j = json.loads(line)
            except ValueError:
                bad.append("line %d is not JSON" % n)
                continue
            if j.get("server") == "floor":
                floor = j
            else:
                runs.append(j)
    return runs, floor, bad


def median_of(runs, scenario, server, key):
    vals = [r[key] for r in runs
            if r.get("name") == scenario and r.get("server") == server
            and "error" not in r and isinstance(r.get(key), (int, float))]
    # A replay that never finished reports -1.
    vals = [v for v in vals if v >= 0]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


def table(runs, floor, markdown):
    names = []
    for r in runs:
        if r.get("name") not in names:
            names.append(r.get("name"))
    rows = []
    figures = [f for f in FIGURES if f[0] in names]
    for name in names:
        if not any(f[0] == name for f in FIGURES):
            figures += [(name, k, k, 1, 3, None) for k in SMOKE_FIGURES
                        if any(k in r for r in runs if r.get("name") == name)]
    for scenario, key, label, scale, digits, target in figures:
        med = {}
        count = {}
        for s in SERVERS:
            v, c = median_of(runs, scenario, s, key)
            med[s] = None if v is None else v * scale
            count[s] = c
        e, n = med["evsse"], med["nchan"]
        ratio = e / n if e is not None and n not in (None, 0) else None
        tgt, met = "", ""
        if target and target[0] == "ratio":
            tgt = "<= %.2fx" % target[1]
            met = "-" if ratio is None else ("yes" if ratio <= target[1] else "NO")
        elif target and target[0] == "max":
            tgt = "evsse <= %s" % fmt(target[1], 0)
            met = "-" if e is None else ("yes" if e / scale <= target[1] else "NO")
        runs_txt = "%d/%d" % (count["evsse"], count["nchan"])
        rows.append([scenario, label, fmt(e, digits), fmt(n, digits),
                     "-" if ratio is None else "%.2f" % ratio, tgt, met,
                     runs_txt])
    head = ["scenario", "figure", "evsse", "nchan", "evsse/nchan", "target",
            "met?", "runs"]
    print_rows(head, rows, markdown)

    if floor and "error" not in floor:
        print()
        ns = floor["tcp"]["ns_per_send"]
        sock = floor["idle_tcp"]["slab_bytes_per_socket"]
        frows = [["floor: one 100 B send() to 1 of 1,000 loopback sockets",
                  "%.2f us CPU" % (ns / 1e3), "", ""],
                 ["floor: kernel slab per idle loopback socket",
                  "%s B" % fmt(sock, 0), "", ""]]
        for scenario in ("live_1k_200eps", "max_1k", "fan_10k_max",
                         "topics_1000x10", "redis_1k_max"):
            for s in SERVERS:
                v, _ = median_of(runs, scenario, s,
                                 "server_cpu_s_per_million_deliveries")
                if v is not None:
                    frows.append(["%s %s: server CPU per delivery" % (s, scenario),
                                  "%.2f us" % v, "%.2fx the send() floor"
                                  % (v * 1e3 / ns), ""])
        for s in SERVERS:
            v, _ = median_of(runs, "idle_10k", s,
                             "server_rss_per_subscriber_bytes")
            if v is not None:
                frows.append(["%s idle subscriber: user RSS + kernel socket" % s,
                              "%s + %s = %s B" % (fmt(v, 0), fmt(sock, 0),
                                                  fmt(v + sock, 0)),
                              "%.2fx the kernel floor" % ((v + sock) / sock),
                              ""])
        print_rows(["machine floor and ratios", "value", "ratio", ""],
                   [r[:3] + [""] for r in frows], markdown, cols=3)

    problems = []
    for r in runs:
        what = []
        if "error" in r:
            what.append("error=%s" % r["error"])
        for k in ("lost", "duplicated", "reordered", "gaps",
                  "subscribers_shed", "subscribers_failed",
                  "subscribers_closed_by_server", "publish_errors"):
            if r.get(k, 0):
                what.append("%s=%s" % (k, r[k]))
        if what:
            problems.append("round %s %s %s: %s" % (
                r.get("round"), r.get("server"), r.get("name"), ", ".join(what)))
    print()
    if problems:
        print("runs with problems (errors are left out of the medians):")
        for p in problems:
            print("  " + p)
    else:
        print("every run: no error, loss, duplicate, reorder, gap, shed or "
              "failed subscriber")


def print_rows(head, rows, markdown, cols=None):
    if cols:
        head, rows = head[:cols], [r[:cols] for r in rows]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for r in [head] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    runs, floor, bad = load(args[0])
    for b in bad:
        print("compare_table: " + b, file=sys.stderr)
    if not runs:
        print("compare_table: no runs in " + args[0], file=sys.stderr)
        return 1
    table(runs, floor, "--markdown" in sys.argv)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
