#!/usr/bin/python3
"""bench_webhook.py — notifications per second through nginx → webhook →
PostgreSQL, against its two ceilings, in one run.

    make bench-webhook                    (WEBHOOK_ARGS="--duration 5 --threads 16")
    /usr/bin/python3 bench/bench_webhook.py [--duration S] [--conns 16,64]
        [--threads 4,16,64] [--rate R] [--repeat N] [--binary [LABEL=]PATH]...
        [--no-keepalive LABEL]... [--nginx-workers N] [--pg-socket tcp|unix] [--pgbench current|both]
        [--pgss] [--keep] [--no-docs] [--json F] [--docs-from F]

Starts a throwaway PostgreSQL (scripts/pg-temp: fsync, synchronous_commit
and full_page_writes off), creates zcrm.leads from the simulator's Leads
field metadata (tools/load_fields) and the pgbench ceiling's bodies
(bench/pgbench_bodies.sql), starts nginx from the integration tests'
template (tests/integration/harness.py; access_log off, worker_processes
--nginx-workers) and, per measured case, a fresh webhook ([webhook] fetch =
false, threads N) behind it. Then, for each concurrency in --conns
(interleaved, so that all cases see the same background load and the same
table sizes):

  nginx     wrk against `location = /zcrm-harness-check { return 204; }`,
            same bodies: HTTP parsing and the bytes on the wire, no FastCGI
  pgbench   pgbench -n -M prepared -c C -j 2 -T S with
            bench/pgbench_notify_dirty.sql@90 and pgbench_notify_delete.sql@10:
            the statements the webhook runs for a notification on its own,
            straight to PostgreSQL (the ceiling of the target)
  batched   pgbench -c 4 -D batch=16 with bench/pgbench_notify_batch.sql:
            what the webhook runs for 16 requests that wait together (one
            statement, then the deletes' tombstones), a client per default
            webhook thread; req/s counts notifications
  webhook   wrk -t2 -c C --latency -s bench/wrk_webhook.lua against
            /zcrm/notify, once per --threads value (and per --binary;
            the labels of --no-keepalive behind a second nginx whose
            snippet has no upstream keepalive: a connection per request)
  paced     at the highest concurrency, the webhook again with the
            connections paced to offer --rate notifications/s in all

Every run is preceded by --warmup seconds of the same load (not counted),
an ANALYZE and a CHECKPOINT. The mix (wrk_webhook.lua): insert 20 %, update
70 %, delete 10 %; 1 id 70 %, 2–10 ids 20 %, 11–100 ids 10 %; every body
distinct. Prints requests/s, p50/p99/p99.9, answers that were not 200
{"status":"applied"}, the peak RSS of the webhook (VmHWM of the process,
started fresh for each case), CPU time per request of each process (webhook,
nginx, PostgreSQL, load generator), the share of notifications recorded in
batches, and the ratios webhook/pgbench, webhook/batched and webhook/nginx; then rewrites the "Webhook" section of docs/benchmarks.md
(--no-docs to skip), keeping the notes written by hand below its
NOTES_MARK line.

Targets (issue #9): at 64 connections ≥ 80 % of the pgbench ceiling, p99 ≤
20 ms, no answer other than 200. Not a test: the exit status says only
whether the benchmark ran; missed targets are marked in the table.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "zoho_sim"))

import datagen  # noqa: E402  (the simulator's field metadata)
import harness  # noqa: E402  (the integration tests' nginx and webhook)

TOOLS = Path(os.environ.get("ZCRM_TOOLS") or (REPO / "build" / "normal" / "tools"))
PG_TEMP = REPO / "scripts" / "pg-temp"
LUA = BENCH / "wrk_webhook.lua"
PGB_DIRTY = BENCH / "pgbench_notify_dirty.sql"
PGB_DELETE = BENCH / "pgbench_notify_delete.sql"
PGB_BATCH = BENCH / "pgbench_notify_batch.sql"
BATCH = 16                 # webhook/webhook.h WEBHOOK_BATCH_MAX
BATCH_CLIENTS = 4          # the default [webhook] threads: a batch each
PGB_BODIES = BENCH / "pgbench_bodies.sql"
PGB_BEFORE_DIRTY = BENCH / "pgbench_before_dirty.sql"
PGB_BEFORE_DELETE = BENCH / "pgbench_before_delete.sql"
CLK = os.sysconf("SC_CLK_TCK")

TARGET_RATIO = 0.80        # of the pgbench ceiling, at the highest concurrency
TARGET_P99_MS = 20.0


def say(msg):
    sys.stderr.write("bench-webhook: %s\n" % msg)
    sys.stderr.flush()


def die(msg):
    say(msg)
    sys.exit(1)


# ------------------------------------------------------------ CPU time

def proc_cpu(pid):
    """(utime + stime, cutime + cstime) of a process in seconds, or (0, 0)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(rest[11]) + int(rest[12])) / CLK, (int(rest[13]) + int(rest[14])) / CLK


def children_of(ppid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == ppid:
            out.append(int(name))
    return out


def tree_cpu(pid):
    """CPU seconds of a process, its live children, and its reaped ones."""
    own, reaped = proc_cpu(pid)
    return own + reaped + sum(proc_cpu(c)[0] for c in children_of(pid))


def machine_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return (total - idle) / CLK, total / CLK


def vm_status(pid):
    """{VmHWM, VmRSS} in KiB of a live process."""
    out = {}
    try:
        for line in open("/proc/%d/status" % pid):
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class Meter:
    """CPU seconds of the processes of one run, and of the whole machine."""

    def __init__(self, pids):
        self.pids = pids   # {"webhook": pid, "nginx": pid, "postgres": pid}

    def sample(self):
        s = {k: tree_cpu(p) if p else 0.0 for k, p in self.pids.items()}
        s["machine"], s["machine_total"] = machine_busy()
        s["t"] = time.monotonic()
        return s

    @staticmethod
    def delta(a, b):
        d = {k: b[k] - a[k] for k in a}
        ours = sum(d[k] for k in d if k not in ("machine", "machine_total", "t"))
        d["others"] = max(0.0, d["machine"] - ours)
        return d


# ------------------------------------------------------------ postgres

class Pg:
    def __init__(self, directory, pgss=False):
        self.dir = directory
        self.conninfo = self._start()
        self.psql_bin = shutil.which("psql") or "psql"
        if pgss:
            self.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            subprocess.run([str(PG_TEMP), "stop", str(directory)], check=True,
                           stdout=subprocess.DEVNULL)
            self.conninfo = self._start()
            self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def _start(self):
        out = subprocess.run([str(PG_TEMP), "start", str(self.dir)], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        return out.strip().splitlines()[-1]

    def use_unix_socket(self):
        """Point conninfo at the cluster's Unix socket (pg-temp puts it in
        the cluster's directory) instead of 127.0.0.1."""
        port = re.search(r"port=(\d+)", self.conninfo).group(1)
        sockdir = (self.dir / "data").resolve().parent
        if not (sockdir / (".s.PGSQL.%s" % port)).exists():
            die("no Unix socket in %s" % sockdir)
        self.conninfo = re.sub(r"host=\S+", "host=%s" % sockdir, self.conninfo)

    def postmaster(self):
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def psql(self, sql):
        r = subprocess.run([self.psql_bin, "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d",
                            self.conninfo, "-c", sql], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode:
            die("psql failed: %s\n%s" % (sql[:200], r.stderr))
        return r.stdout.strip()

    def stop(self, destroy=True):
        subprocess.run([str(PG_TEMP), "destroy" if destroy else "stop", str(self.dir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- runs

def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def paced_script(work, conns, rate):
    """wrk_webhook.lua with a delay() that paces each connection so that
    the connections together offer about `rate` requests/s (an open-ish
    load: what a sender that is not waiting for us would do). wrk asks the
    main script whether delay() exists, so it lives in a wrapper, and the
    saturated runs keep their tight loop."""
    path = work / ("wrk_paced_%d_%d.lua" % (conns, rate))
    path.write_text('dofile("%s")\nfunction delay()\n   return %.3f\nend\n'
                    % (LUA, conns * 1000.0 / rate))
    return path


# The server_time the next wrk run starts at: after every body sent so far
# (wrk_webhook.lua), so that no run repeats an earlier run's body - a
# repeat is answered "duplicate" and would count as not 200.
_next_start_ms = [int(time.time() * 1000)]


def run_wrk(url, conns, seconds, expect, threads, script=LUA):
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
            "--timeout", "10s", "-s", str(script), url, "--", expect,
            harness.TOKEN, harness.CHANNEL_ID, "Leads", str(_next_start_ms[0])]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"^WRKJSON (.*)$", r.stdout, re.M)
    if r.returncode or not m:
        die("wrk failed (%d):\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-2000:]))
    js = json.loads(m.group(1))
    if expect == "applied":
        # Only runs against the webhook move it on: the nginx-alone ceiling
        # sends ~20x as many bodies, and would carry server_time past the
        # day ahead of the clock that the webhook refuses.
        _next_start_ms[0] = max(_next_start_ms[0], js["last_ms"] + 1000)
    secs = js["duration_us"] / 1e6
    errors = sum(js[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    return {"requests": js["requests"], "secs": secs, "rps": js["requests"] / secs,
            "p50": js["p50_us"] / 1000, "p99": js["p99_us"] / 1000,
            "p999": js["p999_us"] / 1000, "max": js["max_us"] / 1000,
            "bad": js["bad_status"] + errors, "not_applied": js["not_applied"],
            "ids": js["sent_ids"], "ops": (js["ops_insert"], js["ops_update"], js["ops_delete"]),
            "raw": js}


def run_pgbench(pg, work, conns, seconds, jobs, tag, scripts=(PGB_DIRTY, PGB_DELETE),
                batch=0):
    """scripts at 90 % and 10 %, one notification a transaction; or, with
    batch, PGB_BATCH alone: batch notifications a transaction (req/s counts
    notifications, the latencies are the transactions')."""
    logdir = work / ("pgbench-%s" % tag)
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir()
    argv = ["pgbench", "-n", "-M", "prepared", "-c", str(conns), "-j", str(min(jobs, conns)),
            "-T", str(seconds)]
    if batch:
        argv += ["-D", "batch=%d" % batch, "-f", str(PGB_BATCH)]
    else:
        argv += ["-f", "%s@90" % scripts[0], "-f", "%s@10" % scripts[1]]
    if tag != "warmup":
        argv += ["-l", "--log-prefix", str(logdir / "tx")]
    argv.append(pg.conninfo)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode or "aborted" in r.stderr:
        die("pgbench failed (%d):\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    if tag == "warmup":
        return None
    m = re.search(r"number of failed transactions: (\d+)", r.stdout)
    failed = int(m.group(1)) if m else 0
    lat = []
    t_first, t_last = None, None
    for f in logdir.iterdir():
        for line in f.read_text().splitlines():
            parts = line.split()
            # client_id transaction_no time script_no time_epoch time_us
            if len(parts) >= 6 and parts[2] not in ("failed", "skipped"):
                lat.append(int(parts[2]) / 1000.0)
                t = int(parts[4]) + int(parts[5]) / 1e6
                t_first = t if t_first is None else min(t_first, t)
                t_last = t if t_last is None else max(t_last, t)
    lat.sort()
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", r.stdout)
    tps = float(m.group(1)) if m else len(lat) / seconds
    shutil.rmtree(logdir, ignore_errors=True)
    if batch:
        tps *= batch
    return {"requests": len(lat) * max(batch, 1), "secs": seconds, "rps": tps,
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99), "p999": percentile(lat, 99.9),
            "max": lat[-1] if lat else float("nan"), "bad": failed, "not_applied": 0}


# -------------------------------------------------------------- report

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "common", "webhook"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except OSError:
        return "?"


def tool_version(argv, pattern):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError:
        return "?"
    m = re.search(pattern, r.stdout)
    return m.group(1) if m else "?"


def fmt_ms(v):
    return "%.2f" % v if v == v else "—"


def case_label(r):
    if r["kind"] == "webhook":
        return "webhook%s, %d threads%s%s" % (" (%s)" % r["label"] if r.get("label") else "",
                                              r["threads"],
                                              "" if r.get("keepalive", True)
                                              else ", no keepalive",
                                              ", paced to %d/s" % r["rate"] if r.get("rate")
                                              else "")
    return {"nginx": "ceiling: nginx `return 204`",
            "pgbench": "ceiling: pgbench, same SQL",
            "pgbench_batch": "ceiling: pgbench, batches of %d, %d clients"
                             % (BATCH, r.get("clients", 0)),
            "pgbench_before": "pgbench, the SQL before"}[r["kind"]]


def case_key(r):
    return r["kind"], r["conns"], r.get("threads"), r.get("label"), r.get("rate")


def best_of(results):
    """One result per case: the round with the most requests/s, with the
    spread of requests/s over the rounds."""
    by = {}
    for r in results:
        by.setdefault(case_key(r), []).append(r)
    out = []
    for runs in by.values():
        best = dict(max(runs, key=lambda x: x["rps"]))
        best["rounds"] = [x["rps"] for x in runs]
        out.append(best)
    order = {id(x): i for i, x in enumerate(results)}
    first = {k: min(order[id(x)] for x in v) for k, v in by.items()}
    out.sort(key=lambda b: first[case_key(b)])
    return out


def build_rows(results, conns_list):
    """Table rows (list of dict) with ratios and target marks."""
    rows = []
    top = max(conns_list)
    for c in conns_list:
        ceil = {r["kind"]: r for r in results if r["conns"] == c and r["kind"] != "webhook"}
        for r in [x for x in results if x["conns"] == c]:
            row = dict(r)
            row["label"] = case_label(r)
            if r["kind"] == "webhook":
                # A paced run's throughput is what it was offered: no ratio.
                paced = bool(r.get("rate"))
                row["vs_pgbench"] = (r["rps"] / ceil["pgbench"]["rps"]
                                     if "pgbench" in ceil and not paced else None)
                row["vs_nginx"] = (r["rps"] / ceil["nginx"]["rps"]
                                   if "nginx" in ceil and not paced else None)
                row["vs_batch"] = (r["rps"] / ceil["pgbench_batch"]["rps"]
                                   if "pgbench_batch" in ceil and not paced else None)
                miss = []
                if r["bad"] or r["not_applied"]:
                    miss.append("non-200")
                if c == top:
                    if row["vs_pgbench"] is not None and row["vs_pgbench"] < TARGET_RATIO:
                        miss.append("< %.0f%% of pgbench" % (TARGET_RATIO * 100))
                    if r["p99"] > TARGET_P99_MS:
                        miss.append("p99 > %.0f ms" % TARGET_P99_MS)
                row["missed"] = miss
            rows.append(row)
    return rows


def cpu_cell(r):
    d = r.get("cpu")
    if not d or not r["requests"]:
        return "—"
    per = lambda k: d.get(k, 0.0) * 1e6 / r["requests"]  # noqa: E731
    if r["kind"] == "webhook":
        return "%.0f = %.0f + %.0f + %.0f + %.0f" % (
            per("webhook") + per("nginx") + per("postgres") + per("client"),
            per("webhook"), per("nginx"), per("postgres"), per("client"))
    if r["kind"] == "nginx":
        return "%.0f = nginx %.0f + wrk %.0f" % (per("nginx") + per("client"), per("nginx"),
                                                per("client"))
    return "%.0f = PostgreSQL %.0f + pgbench %.0f" % (per("postgres") + per("client"),
                                                      per("postgres"), per("client"))


def print_table(rows):
    head = ("case", "conns", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "not 200",
            "× pgbench", "× batched", "× nginx", "peak RSS", "CPU µs/req", "other load", "")
    out = [head]
    for r in rows:
        out.append((r["label"], str(r["conns"]), "{:,.0f}".format(r["rps"]), fmt_ms(r["p50"]),
                    fmt_ms(r["p99"]), fmt_ms(r["p999"]), fmt_ms(r["max"]),
                    str(r["bad"] + r["not_applied"]),
                    "%.2f" % r["vs_pgbench"] if r.get("vs_pgbench") else "",
                    "%.2f" % r["vs_batch"] if r.get("vs_batch") else "",
                    "%.2f" % r["vs_nginx"] if r.get("vs_nginx") else "",
                    "%.1f MiB" % (r["hwm_kib"] / 1024.0) if r.get("hwm_kib") else "",
                    cpu_cell(r), "%.2f CPU" % r["others"] if "others" in r else "",
                    "MISSED: " + ", ".join(r["missed"]) if r.get("missed") else ""))
    widths = [max(len(x[i]) for x in out) for i in range(len(head))]
    for x in out:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(x, widths))).rstrip())


def markdown(rows, meta):
    out = ["## Webhook", "",
           "Notifications through nginx → `webhook/zcrm_webhook` → PostgreSQL, driven by wrk "
           "with a realistic mix (`bench/wrk_webhook.lua`: insert 20 %%, update 70 %%, delete "
           "10 %%; 1 id 70 %%, 2–10 ids 20 %%, 11–100 ids 10 %%, mean 7.45; every body "
           "distinct), "
           "against three ceilings measured in the same run: nginx answering `return 204` to "
           "the same requests; pgbench running the SQL the webhook runs for a notification on "
           "its own (`bench/pgbench_notify_dirty.sql@90`, `bench/pgbench_notify_delete.sql@10`, "
           "`-M prepared -j %d`; bodies of the same mix made beforehand by "
           "`bench/pgbench_bodies.sql`) at the same concurrency, the ceiling of the target; "
           "and pgbench running what the webhook runs for requests that wait together "
           "(`bench/pgbench_notify_batch.sql`: %d notifications a statement, the deletes' "
           "tombstones after it, one transaction) at %d clients, one per webhook thread "
           "(\"× batched\"). %d s per case after %d s of "
           "warm-up, an `ANALYZE` and a `CHECKPOINT`; a "
           "fresh webhook per case (so its peak RSS is that case's). `make bench-webhook` "
           "regenerates this section (`bench/bench_webhook.py`, see `bench/README.md`)."
           % (meta["pgbench_jobs"], BATCH, BATCH_CLIENTS, meta["duration"], meta["warmup"]),
           "",
           "| case | conns | req/s | p50 ms | p99 ms | p99.9 ms | not 200 | × pgbench "
           "| × batched | × nginx | webhook peak RSS | CPU µs/req | other load |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        ratio = "%.2f" % r["vs_pgbench"] if r.get("vs_pgbench") else "—"
        if r.get("missed") and any("pgbench" in m for m in r["missed"]):
            ratio = "**%s** (missed)" % ratio
        p99 = fmt_ms(r["p99"])
        if r.get("missed") and any("p99" in m for m in r["missed"]):
            p99 = "**%s** (missed)" % p99
        bad = str(r["bad"] + r["not_applied"])
        if r.get("missed") and "non-200" in r["missed"]:
            bad = "**%s**" % bad
        out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["label"], r["conns"], "{:,.0f}".format(r["rps"]), fmt_ms(r["p50"]), p99,
            fmt_ms(r["p999"]), bad, ratio,
            "%.2f" % r["vs_batch"] if r.get("vs_batch") else "—",
            "%.2f" % r["vs_nginx"] if r.get("vs_nginx") else "—",
            "%.1f MiB" % (r["hwm_kib"] / 1024.0) if r.get("hwm_kib") else "—",
            cpu_cell(r).replace("|", "\\|"),
            "%.2f CPU" % r["others"] if "others" in r else "—"))
    spread = ["%s at %d: %s" % (r["label"], r["conns"], " / ".join("{:,.0f}".format(x)
                                                              for x in r["rounds"]))
              for r in rows if len(r.get("rounds", [])) > 1]
    if spread:
        out += ["", "Best of %d interleaved rounds; req/s of each round: %s."
                % (meta["repeat"], "; ".join(spread))]
    out += ["",
            "CPU µs/req: CPU time per answered request, total = webhook + nginx + PostgreSQL "
            "(postmaster and backends) + wrk for the webhook rows; read from /proc around each "
            "run. Other load: CPUs busy with processes not in the run (the machine is shared); "
            "a row with much of it is not a clean measurement. not 200: answers other than "
            "200 `{\"status\":\"applied\"}` plus socket errors and timeouts (pgbench: failed "
            "transactions).", "",
            "Targets (issue #9): at %d connections ≥ %.0f %% of the pgbench ceiling, "
            "p99 ≤ %.0f "
            "ms, no answer other than 200." % (meta["top"], TARGET_RATIO * 100, TARGET_P99_MS),
            "",
            "Setup: nginx %s, `worker_processes %d`, `access_log off`, the project's "
            "`nginx/zcrm-sync.conf` and `nginx/zcrm-sync-upstream.conf` (FastCGI keepalive; "
            "\"no keepalive\": the snippet without the upstream, a connection per request) in "
            "the harness template; webhook `[webhook] fetch = false`, "
            "`-q`; wrk %s, `-t%d --timeout 10s`; PostgreSQL %s from `scripts/pg-temp` (fsync, "
            "synchronous_commit and full_page_writes off; the same server for the pgbench "
            "ceiling), reached over %s; zcrm.leads from the simulator's 43 Leads fields. "
            "Machine: %s, %d CPU(s) "
            "(nproc), Linux %s — every process of the run (wrk, nginx, webhook, PostgreSQL) "
            "shares them. Commit %s, %s."
            % (meta["nginx"], meta["nginx_workers"], meta["wrk"], meta["wrk_threads"],
               meta["pg"], "its Unix socket" if meta["pg_socket"] == "unix" else "TCP (127.0.0.1)",
               meta["cpu"], meta["ncpu"], meta["kernel"], meta["rev"], meta["date"]),
            ""]
    return "\n".join(out)


NOTES_MARK = "<!-- bench-webhook: notes below are kept when the table is regenerated -->"


def write_docs(section):
    """Replace the "## Webhook" section of docs/benchmarks.md (up to the next
    "## " heading) or append it. Text after NOTES_MARK inside the old section
    (the analysis, written by hand) is kept."""
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    m = re.search(r"^## Webhook\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if m:
        old = m.group(0)
        i = old.find(NOTES_MARK)
        if i >= 0:
            section = section.rstrip("\n") + "\n\n" + old[i:].rstrip("\n") + "\n"
        text = text[:m.start()] + section + ("\n" if m.end() < len(text) else "") + text[m.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
    return path


# ---------------------------------------------------------------- main

def parse_list(s):
    return [int(x) for x in s.split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=15, help="seconds per case (15)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of load before each case (3)")
    ap.add_argument("--conns", default="16,64", help="HTTP connections / pgbench clients (16,64)")
    ap.add_argument("--threads", default="4,16,64", help="webhook threads to try (4,16,64)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of every case, interleaved; the fastest of each is reported "
                         "(the least disturbed by other load), the spread beside it (1)")
    ap.add_argument("--rate", type=int, default=1000,
                    help="also run the webhook at the highest concurrency with the "
                         "connections paced to offer about this many requests/s in all, "
                         "for its latency below saturation (1000; 0: no)")
    ap.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes (1)")
    ap.add_argument("--wrk-threads", type=int, default=2, help="wrk -t (2)")
    ap.add_argument("--pgbench-jobs", type=int, default=2, help="pgbench -j (2)")
    ap.add_argument("--binary", action="append", default=[], metavar="[LABEL=]PATH",
                    help="the webhook to measure (default: the build's); give it more than "
                         "once, with labels, to compare builds in one interleaved run")
    ap.add_argument("--no-keepalive", action="append", default=[], metavar="LABEL",
                    help="measure the --binary of this label behind nginx without FastCGI "
                         "keepalive (the snippet as it was before nginx/zcrm-sync-upstream.conf: "
                         "fastcgi_pass unix:…, a connection per request), as a build from "
                         "before keepalive needs; once per label")
    ap.add_argument("--pgbench", choices=("current", "both"), default="current",
                    help="pgbench ceiling: the webhook's SQL now (bench/pgbench_notify_*.sql; "
                         "default), or also the six-statement transaction it ran before "
                         "(bench/pgbench_before_*.sql; not used for the ratios)")
    ap.add_argument("--only", choices=("all", "webhook", "ceilings"), default="all")
    ap.add_argument("--pgss", action="store_true",
                    help="load pg_stat_statements and print the top statements of each case")
    ap.add_argument("--pg-socket", choices=("tcp", "unix"), default="tcp",
                    help="how the webhook and pgbench reach PostgreSQL: 127.0.0.1 (default, "
                         "as scripts/pg-temp prints it) or its Unix socket")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and cluster")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--docs-from", metavar="JSON",
                    help="write docs/benchmarks.md from a --json file of an earlier run, "
                         "without running anything")
    a = ap.parse_args()
    conns_list, threads_list = parse_list(a.conns), parse_list(a.threads)
    if a.docs_from:
        saved = json.loads(Path(a.docs_from).read_text())
        say("wrote %s" % write_docs(markdown(saved["rows"], saved["meta"])))
        return 0

    binaries = []
    for b in a.binary or [str(harness.BIN_ROOT / "webhook" / "zcrm_webhook")]:
        label, _, path = b.rpartition("=") if "=" in b else ("", "", b)
        binaries.append((label if len(a.binary) > 1 or label else "", Path(path)))
    unknown = set(a.no_keepalive) - {label for label, _ in binaries}
    if unknown:
        die("--no-keepalive %s: no --binary with that label" % ", ".join(sorted(unknown)))
    for exe in [b for _, b in binaries] + [TOOLS / "load_fields"]:
        if not Path(exe).exists():
            die("%s is not built: run make" % exe)
    for tool in ("wrk", "pgbench", "psql"):
        if not shutil.which(tool):
            die("%s is missing (wrk: apt-get install wrk; pgbench, psql: postgresql-client)"
                % tool)

    work = Path(tempfile.mkdtemp(prefix="zcrm-bench-webhook."))
    os.chmod(work, 0o755)
    (work / "pg").mkdir()
    say("setting up in %s (webhook %s)" % (work, ", ".join(str(b) for _, b in binaries)))
    pg = Pg(work / "pg", pgss=a.pgss)
    if a.pg_socket == "unix":
        pg.use_unix_socket()
    nginx = nginx_plain = None
    results = []
    try:
        cfg = harness.base_config(pg.conninfo, work)
        conf = harness.write_ini(work / "bench.conf", cfg)
        metas, _ = datagen.build_fields("Leads")
        (work / "fields.json").write_text(json.dumps({"fields": metas}))
        subprocess.run([str(TOOLS / "load_fields"), "--config", str(conf), "--module", "Leads",
                        "--fields", str(work / "fields.json")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The pgbench ceiling's bodies (bench.*, beside zcrm).
        r = subprocess.run([pg.psql_bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.conninfo,
                            "-f", str(PGB_BODIES)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode:
            die("%s failed:\n%s" % (PGB_BODIES, r.stderr))
        sock = work / "webhook.sock"
        nginx = harness.Nginx(work / "nginx", fastcgi_socket=sock, access_log=False,
                              workers=a.nginx_workers)
        nginx.start()
        if a.no_keepalive:
            # The same socket, the snippet without keepalive; idle but for
            # the cases of those labels (whose CPU it is measured for).
            nginx_plain = harness.Nginx(work / "nginx-plain", fastcgi_socket=sock,
                                        access_log=False, workers=a.nginx_workers,
                                        keep_conn=False)
            nginx_plain.start()
        base_pids = {"nginx": nginx.proc.pid, "postgres": pg.postmaster()}

        def measure(kind, conns, fn, extra_pids=None, stop=None):
            # Steady state: statistics as autovacuum would have them by now
            # (a fresh, fast-growing table otherwise gets plans made for an
            # empty one), and no checkpoint half done.
            pg.psql("ANALYZE zcrm.inbox, zcrm.fetch_queue, zcrm.dirty, zcrm.leads")
            pg.psql("CHECKPOINT")
            if a.pgss:
                pg.psql("SELECT pg_stat_statements_reset()")
            meter = Meter(dict(base_pids, **(extra_pids or {})))
            s0 = meter.sample()
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = fn()
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            hwm = vm_status(extra_pids["webhook"]) if extra_pids else {}
            # Its CPU time now: once stopped, /proc has nothing to say.
            wh_cpu = tree_cpu(extra_pids["webhook"]) if extra_pids else 0.0
            if stop:
                stop()
                time.sleep(0.3)   # backends exit and are reaped
            s1 = meter.sample()
            if extra_pids:
                s1["webhook"] = wh_cpu
            d = Meter.delta(s0, s1)
            # The load generator (wrk or pgbench): the only child reaped in fn().
            d["client"] = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
            d["others"] = max(0.0, d["others"] - d["client"])
            r.update(kind=kind, conns=conns, cpu=d, others=d["others"] / max(d["t"], 1e-9),
                     hwm_kib=hwm.get("VmHWM"))
            if a.pgss:
                r["pgss"] = pg.psql(
                    "SELECT calls || ' calls, ' || round(mean_exec_time::numeric, 3)"
                    " || ' ms mean, '"
                    " || round(total_exec_time::numeric) || ' ms total: ' ||"
                    " left(regexp_replace(query, '\\s+', ' ', 'g'), 100)"
                    " FROM pg_stat_statements WHERE calls > 10"
                    " ORDER BY total_exec_time DESC LIMIT 8")
            return r

        def show(r):
            say("  %-28s c=%-3d %8.0f req/s  p50 %6.2f  p99 %7.2f  p99.9 %7.2f ms  bad %d%s%s%s%s"
                % (case_label(r), r["conns"], r["rps"], r["p50"], r["p99"], r["p999"],
                   r["bad"] + r["not_applied"],
                   "  VmHWM %.1f MiB" % (r["hwm_kib"] / 1024.0) if r.get("hwm_kib") else "",
                   "  FastCGI connections %d" % r["accepted"] if r.get("accepted") else "",
                   "  batched %.0f %% (%.1f per statement)"
                   % (100.0 * r["batched"] / max(r["recorded"], 1),
                      r["batched"] / r["batches"]) if r.get("batches") else "",
                   "  others %.2f CPU" % r["others"]))
            if r["bad"] and r.get("raw"):
                say("      not 200: %s" % ", ".join(
                    "%s %d" % (k, r["raw"][k]) for k in ("bad_status", "err_connect", "err_read",
                                                        "err_write", "err_timeout")
                    if r["raw"][k]))
            if r.get("pgss"):
                for line in r["pgss"].splitlines():
                    say("      " + line)

        check_url = nginx.url + "/zcrm-harness-check"

        def webhook_case(label, binary, threads, conns, rate=0):
            ng = nginx_plain if label in a.no_keepalive else nginx
            notify_url = ng.url + "/zcrm/notify"
            wcfg = harness.merge_overrides(cfg, {"webhook": {"fetch": False, "threads": threads}})
            wconf = harness.write_ini(work / ("webhook-%d.conf" % threads), wcfg)
            wh = harness.Webhook(work, wconf, sock, args=["-q"], binary=binary)
            wh.start()
            accepted, batching = [], []

            def stop():
                # Over the whole case (warm-up included), if the binary
                # counts them: the FastCGI connections the webhook
                # accepted, and the statements that recorded several
                # requests' notifications at once (with how many in all).
                text = harness.http("GET", ng.url + "/zcrm/metrics")[2].decode()

                def counter(name):
                    m = re.search(r"^zcrm_webhook_%s_total(?:\{[^}]*\})? (\d+)$" % name, text, re.M)
                    return int(m.group(1)) if m else None

                accepted.append(counter("connections_accepted"))
                batching.append((counter("batches"), counter("batched"),
                                 counter("inbox_applied")))
                wh.proc.stop()

            try:
                script = paced_script(work, conns, rate) if rate else LUA
                run_wrk(notify_url, conns, a.warmup, "applied", a.wrk_threads, script)
                r = measure("webhook", conns,
                            lambda: run_wrk(notify_url, conns, a.duration, "applied",
                                            a.wrk_threads, script),
                            extra_pids={"webhook": wh.pid, "nginx": ng.proc.pid}, stop=stop)
            finally:
                wh.proc.stop()
                for p in wh.take_problems():
                    say(p)
            r.update(threads=threads, label=label, binary=str(binary), rate=rate,
                     keepalive=ng is nginx, accepted=accepted[0] if accepted else None)
            if batching and None not in batching[0]:
                batches, batched, applied = batching[0]
                r.update(batches=batches, batched=batched, recorded=applied)
            return r

        for rep in range(a.repeat):
            for conns in conns_list:
                say("%d connections%s" % (conns, "" if a.repeat == 1 else
                                          " (round %d/%d)" % (rep + 1, a.repeat)))
                if a.only in ("all", "ceilings"):
                    run_wrk(check_url, conns, a.warmup, "204", a.wrk_threads)
                    r = measure("nginx", conns,
                                lambda: run_wrk(check_url, conns, a.duration, "204", a.wrk_threads))
                    results.append(r)
                    show(r)
                    run_pgbench(pg, work, conns, a.warmup, a.pgbench_jobs, "warmup")
                    r = measure("pgbench", conns,
                                lambda: run_pgbench(pg, work, conns, a.duration, a.pgbench_jobs,
                                                    "c%d" % conns))
                    results.append(r)
                    show(r)
                    clients = min(conns, BATCH_CLIENTS)
                    run_pgbench(pg, work, clients, a.warmup, a.pgbench_jobs, "warmup",
                                batch=BATCH)
                    r = measure("pgbench_batch", conns,
                                lambda: run_pgbench(pg, work, clients, a.duration,
                                                    a.pgbench_jobs, "batch%d" % conns,
                                                    batch=BATCH))
                    r["clients"] = clients
                    results.append(r)
                    show(r)
                    if a.pgbench == "both":
                        before = (PGB_BEFORE_DIRTY, PGB_BEFORE_DELETE)
                        run_pgbench(pg, work, conns, a.warmup, a.pgbench_jobs, "warmup", before)
                        r = measure("pgbench_before", conns,
                                    lambda: run_pgbench(pg, work, conns, a.duration,
                                                        a.pgbench_jobs, "b%d" % conns, before))
                        results.append(r)
                        show(r)
                if a.only in ("all", "webhook"):
                    for threads in threads_list:
                        for label, binary in binaries:
                            r = webhook_case(label, binary, threads, conns)
                            results.append(r)
                            show(r)
                if a.rate and conns == max(conns_list) and a.only in ("all", "webhook"):
                    for threads in threads_list:
                        r = webhook_case(binaries[0][0], binaries[0][1], threads, conns, a.rate)
                        results.append(r)
                        show(r)
        print()
        results = best_of(results)
        rows = build_rows(results, conns_list)
        print_table(rows)
        print()
        inbox = pg.psql("SELECT count(*) || ' inbox rows, ' || count(*) FILTER (WHERE processed_at"
                        " IS NULL) || ' unprocessed' FROM zcrm.inbox")
        say("after the run: %s; %s notifications queued for a fetch; %s tombstones" % (
            inbox, pg.psql("SELECT count(*) FROM zcrm.fetch_queue"),
            pg.psql("SELECT count(*) FROM zcrm.leads WHERE deleted_at IS NOT NULL")))
        meta = {"duration": a.duration, "warmup": a.warmup, "repeat": a.repeat,
                "pgbench_jobs": a.pgbench_jobs,
                "top": max(conns_list), "nginx_workers": a.nginx_workers,
                "wrk_threads": a.wrk_threads, "pg_socket": a.pg_socket, "cpu": cpu_model(),
                "ncpu": os.cpu_count() or 0,
                "kernel": platform.release(),
                "pg": pg.psql("SHOW server_version").split()[0],
                "nginx": tool_version(["nginx", "-v"], r"nginx/(\S+)"),
                "wrk": tool_version(["wrk", "-v"], r"wrk (\S+)"),
                "rev": git_rev(), "date": dt.date.today().isoformat()}
        if a.json:
            Path(a.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1,
                                               default=str))
        if not a.no_docs and a.only == "all":
            say("wrote %s" % write_docs(markdown(rows, meta)))
        missed = ["%s at %d: %s" % (r["label"], r["conns"], ", ".join(r["missed"]))
                  for r in rows if r.get("missed")]
        if missed:
            say("targets missed: %s" % "; ".join(missed))
    finally:
        for ng in (nginx, nginx_plain):
            if ng is not None:
                ng.stop()
        if a.keep:
            say("kept %s (cluster: %s; scripts/pg-temp destroy %s)" % (work, pg.conninfo,
                                                                     work / "pg"))
        else:
            pg.stop(destroy=True)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
