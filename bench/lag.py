#!/usr/bin/python3
"""bench/lag.py — notification-to-row lag: how long after a change in Zoho
the row in PostgreSQL shows it, through nginx and the webhook alone.

Starts a PostgreSQL (scripts/pg-temp), the Zoho simulator, nginx and the
webhook behind it ([webhook] fetch = true), runs batch/initial_sync over
--records Leads, then makes --edits single-record edits in the simulator,
--interval-ms apart, each on a different record. For each edit the clock
starts when the simulator's PATCH returned (its Modified_Time is whole
seconds, so it cannot be the start) and stops when a poller sees the new
value in zcrm.leads. Prints p50/p95/p99/max beside the target (2 s), and
the API credits the edits cost (the simulator's meter) beside the least
they could (one Get Records call per 100 ids).

Exit status: 0 when every edit arrived and p99 <= --target (with
--no-target: whatever the lag), 1 otherwise, 2 on a setup failure.

    make bench-lag                         # normal build
    make bench-lag LAG_ARGS="--edits 500"  # more samples
    ZCRM_BIN_ROOT=$PWD/build/asan/ /usr/bin/python3 bench/lag.py

Options: --records N (2000), --edits N (200), --interval-ms MS (50),
--target S (2.0), --no-target, --threads N (webhook threads, 4), --poll-ms MS (5),
--fetch-delay MS ([webhook] fetch_delay; default: the product's default),
--timeout S (per edit, 60), --keep (leave the temp directory), --json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402  (the integration tests' process helpers)
from harness import (Nginx, Sim, Webhook, base_config, merge_overrides,  # noqa: E402
                     run_program_in, wait_until, write_ini)

PG_TEMP = REPO / "scripts" / "pg-temp"
MODULE = "Leads"


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


class Poller(threading.Thread):
    """Polls zcrm.leads for the expected Description of pending edits and
    records when each first shows up."""

    def __init__(self, conninfo, poll_s):
        super().__init__(daemon=True)
        import psycopg2
        self.conn = psycopg2.connect(conninfo)
        self.conn.autocommit = True
        self.poll_s = poll_s
        self.lock = threading.Lock()
        self.pending = {}   # id -> (expected, t0)
        self.seen = {}      # id -> lag seconds
        self.stop = False

    def expect(self, rid, value, t0):
        with self.lock:
            self.pending[int(rid)] = (value, t0)

    def run(self):
        cur = self.conn.cursor()
        while not self.stop:
            with self.lock:
                ids = list(self.pending)
            if ids:
                cur.execute("SELECT id, description FROM zcrm.leads WHERE id = ANY(%s)", (ids,))
                now = time.monotonic()
                with self.lock:
                    for rid, desc in cur.fetchall():
                        exp = self.pending.get(rid)
                        if exp and desc == exp[0]:
                            self.seen[rid] = now - exp[1]
                            del self.pending[rid]
            time.sleep(self.poll_s)
        self.conn.close()


def pg_start(directory):
    r = subprocess.run([str(PG_TEMP), "start", str(directory)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise RuntimeError("pg-temp start failed:\n%s%s" % (r.stdout, r.stderr))
    return r.stdout.strip().splitlines()[-1]


def pg_stop(directory, destroy):
    subprocess.run([str(PG_TEMP), "destroy" if destroy else "stop", str(directory)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tear_down(name, procs, pg_dir, work, keep):
    """Stop procs (newest first, their problems reported), then
    PostgreSQL; remove work unless keep."""
    for p in reversed(procs):
        p.stop()
        for problem in p.take_problems():
            print("%s: %s" % (name, problem), file=sys.stderr)
    pg_stop(pg_dir, destroy=not keep)
    if keep:
        print("%s: kept %s" % (name, work), file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="notification-to-row lag through nginx + webhook")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--fetch-delay", type=int, default=None,
                    help="[webhook] fetch_delay in ms (default: the product's)")
    ap.add_argument("--interval-ms", type=float, default=50)
    ap.add_argument("--target", type=float, default=2.0, help="seconds (p99 ceiling)")
    ap.add_argument("--no-target", action="store_true",
                    help="judge no time: exit 0 when every edit arrived (make bench-smoke)")
    ap.add_argument("--threads", type=int, default=4, help="webhook worker threads")
    ap.add_argument("--poll-ms", type=float, default=5)
    ap.add_argument("--timeout", type=float, default=60, help="seconds to wait for one edit")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = ap.parse_args()
    if args.edits > args.records:
        ap.error("--edits must not exceed --records (one record per edit)")

    work = Path(tempfile.mkdtemp(prefix="zcrm-bench-lag."))
    os.chmod(work, 0o755)
    procs = []
    pg_dir = work / "pg"
    pg_dir.mkdir()
    ok = False
    try:
        print("bench-lag: setting up in %s (binaries from %s)" % (work, harness.BIN_ROOT),
              file=sys.stderr)
        conninfo = pg_start(pg_dir)
        sim = Sim(work, args=["-q", "--modules", "%s:%d" % (MODULE, args.records),
                              "--bulk-polls", "1", "--seed", "3"], name="sim")
        procs.append(sim.proc)
        sim.start()
        sock = work / "webhook.sock"
        ng = Nginx(work / "nginx", fastcgi_socket=sock, access_log=False)
        procs.append(ng.proc)
        ng.start()
        cfg = base_config(conninfo, work, sim_url=sim.url, notify_url=ng.url + "/zcrm/notify")
        wh_cfg = {"fetch": True, "threads": args.threads}
        if args.fetch_delay is not None:
            wh_cfg["fetch_delay"] = args.fetch_delay
        cfg = merge_overrides(cfg, {"webhook": wh_cfg})
        conf = write_ini(work / "zcrm.conf", cfg)
        wh = Webhook(work, conf, sock, args=["-q"])
        procs.append(wh.proc)
        wh.start()

        t = time.monotonic()
        r = run_program_in(work, "batch/initial_sync", config=conf, timeout=600)
        if r.returncode:
            raise RuntimeError("initial_sync failed (%d):\n%s" % (r.returncode, r.stderr[-3000:]))
        print("bench-lag: initial sync of %d %s in %.1f s" % (args.records, MODULE,
                                                              time.monotonic() - t),
              file=sys.stderr)
        sim.control("POST", "/flush", {"timeout": 60})

        truth = sim.control("GET", "/truth/%s" % MODULE)
        ids = [rec["id"] for rec in truth["records"]]
        step = max(1, len(ids) // args.edits)
        targets = ids[::step][:args.edits]

        notes_from = sim.control("GET", "/notifications?since=0")["next"]
        credits0 = sim.control("GET", "/credits")
        poller = Poller(conninfo, args.poll_ms / 1000.0)
        poller.start()
        nonce = "%x" % int(time.time())
        t_first = time.monotonic()
        for i, rid in enumerate(targets):
            due = t_first + i * args.interval_ms / 1000.0
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            value = "lag %s #%d" % (nonce, i)
            sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                        {"values": {"Description": value}})
            poller.expect(rid, value, time.monotonic())
        try:
            wait_until(lambda: not poller.pending, args.timeout, interval=0.05,
                       what="every edit to reach PostgreSQL")
        except AssertionError:
            pass
        poller.stop = True
        poller.join(5)
        credits1 = sim.control("GET", "/credits")
        calls = (credits1["calls_by_endpoint"].get("records", 0)
                 - credits0["calls_by_endpoint"].get("records", 0))
        spent = credits1["spent_total"] - credits0["spent_total"]
        lost = len(poller.pending)
        lags = sorted(poller.seen.values())
        p50, p95, p99 = (percentile(lags, p) for p in (50, 95, 99))
        mx = lags[-1] if lags else float("nan")
        mean = sum(lags) / len(lags) if lags else float("nan")
        print("bench-lag: %d records, %d edits %.0f ms apart, webhook threads %d"
              % (args.records, len(targets), args.interval_ms, args.threads))
        print("%-8s %9s %9s" % ("", "lag (s)", "target"))
        for name, v in (("p50", p50), ("p95", p95), ("p99", p99)):
            print("%-8s %9.3f %9s" % (name, v, "-" if args.no_target else "%.3f" % args.target))
        print("%-8s %9.3f" % ("max", mx))
        print("%-8s %9.3f" % ("mean", mean))
        # Where the time went: the simulator's one sender thread (queue wait)
        # and the POST through nginx to the webhook's 200 (inbox write).
        notes = [n for n in sim.control("GET", "/notifications?since=%d&kind=notify"
                                        % notes_from)["notifications"] if not n.get("dropped")]
        qwait = sorted(max(0.0, n["time"] - n["queued_at"]) for n in notes)
        rtt = sorted(n.get("elapsed_ms", 0) / 1000.0 for n in notes)
        print("%-8s %9s %9s   (%d notifications)" % ("", "sim queue", "POST->200", len(notes)))
        for name, p in (("p50", 50), ("p99", 99)):
            print("%-8s %9.3f %9.3f" % (name, percentile(qwait, p), percentile(rtt, p)))
        print("credits  %d (%d Get Records calls for %d edits; at least %d: 100 ids a call)"
              % (spent, calls, len(targets), (len(targets) + 99) // 100))
        print("arrived  %d/%d%s" % (len(lags), len(targets),
                                   "" if not lost else "  (%d never arrived)" % lost))
        ok = lost == 0 and (args.no_target or p99 <= args.target)
        print("result   %s" % ("FAIL: edits lost" if lost else
                               "ok: every edit arrived (no target)" if args.no_target else
                               "ok: p99 within the target" if ok else
                               "FAIL: p99 above the target"))
        if args.json:
            print(json.dumps({"records": args.records, "edits": len(targets),
                              "interval_ms": args.interval_ms, "threads": args.threads,
                              "p50": p50, "p95": p95, "p99": p99, "max": mx, "mean": mean,
                              "lost": lost, "target": args.target, "ok": ok,
                              "credits": spent, "get_records_calls": calls}))
    except Exception as e:  # noqa: BLE001 — report and clean up
        print("bench-lag: %s" % e, file=sys.stderr)
        args.keep = True
        return 2
    finally:
        tear_down("bench-lag", procs, pg_dir, work, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
