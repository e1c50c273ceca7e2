#!/usr/bin/python3
"""bench/bench_credits.py — what zcrm-sync spends of the org's Zoho API
credits, read off the simulator's meter (GET /_sim/credits: Zoho's prices,
shared/zoho-api.md §8.1), each figure beside the least the same work could
cost, with its arithmetic.

For each module width (41 fields: Leads as the simulator has it; 120: Leads
padded with custom text fields, whose records take three Get Records calls
of 49 fields), on its own simulator, nginx, webhook (the shipped defaults)
and schema of one throwaway PostgreSQL:

  initial load      batch/initial_sync of --records records
  idle day          one incremental_sync, renew_channel and reconcile run on
                    an idle module, priced; the day is the shipped crontab's
                    runs of each (cron.d/zcrm-sync)
  single edits      --single records edited one at a time, --interval s
                    apart: one notification each, fetched by the webhook
  100-id batches    --changes (1,000) records edited as notifications of 100 ids
  outage            --changes records edited while no notification is delivered
                    (an hour of webhook outage), caught up by one
                    incremental_sync run
  reconcile         batch/reconcile over the --records records

Credits are exact (the meter counts calls, not time), so the figures do not
vary between runs of the same code; the time a scenario takes does.

    make bench-credits                            # 200,000 records, 1,000 single edits
    make bench-credits CREDITS_ARGS="--records 20000 --single 120"

Options: --records N (200000), --single N (1000), --interval S (1.0),
--changes N (1000), --widths 41,120, --keep, --json.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402  (the integration tests' process helpers)
from harness import (Nginx, Sim, Webhook, base_config, merge_overrides,  # noqa: E402
                     run_program_in, wait_until, write_ini)
from lag import pg_start, pg_stop  # noqa: E402  (bench/ is on sys.path: this script's folder)

MODULE = "Leads"
BULK_PAGE = 200000       # records in a Bulk Read page
IDS_PER_CALL = 100       # ids in a Get Records call
FIELDS_PER_CALL = 49     # fields in one (50, one of them Modified_Time)
LIST_PAGE = 200          # records in a page of a Get Records listing
CHECK_INTERVAL = 3600    # [notify] check_interval, the shipped default


def cron_runs_per_day():
    """{program: runs a day} from the shipped crontab's minute/hour fields."""
    out = {}
    for line in (REPO / "cron.d" / "zcrm-sync").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\S+)\s+(\S+)\s+\*\s+\*\s+\*\s+\S+\s+(zcrm-[a-z-]+)", line)
        if not m:
            continue
        minute, hour, prog = m.groups()

        def count(field, span):
            if field == "*":
                return span
            if field.startswith("*/"):
                return span // int(field[2:])
            return len(field.split(","))
        out[prog] = count(minute, 60) * count(hour, 24)   # runs an hour x hours a day
    return out


class Stack:
    """The simulator with one module of `width` fields, nginx, the webhook
    (shipped defaults, fetch on) and a config on schema zcrm<width>."""

    def __init__(self, work, conninfo, width, records, procs):
        self.work = work / ("w%d" % width)
        self.work.mkdir()
        self.width = width
        self.schema = "zcrm%d" % width
        spec = "%s:%d:%d" % (MODULE, records, width) if width > 41 else "%s:%d" % (MODULE, records)
        self.sim = Sim(self.work, args=["-q", "--modules", spec, "--bulk-polls", "1",
                                        "--bulk-step-ms", "0", "--seed", "11"], name="sim")
        procs.append(self.sim.proc)
        self.sim.start()
        sock = self.work / "webhook.sock"
        self.ng = Nginx(self.work / "nginx", fastcgi_socket=sock, access_log=False)
        procs.append(self.ng.proc)
        self.ng.start()
        cfg = base_config(conninfo, self.work, sim_url=self.sim.url,
                          notify_url=self.ng.url + "/zcrm/notify")
        cfg = merge_overrides(cfg, {"database": {"schema": self.schema},
                                    "webhook": {"fetch": True}})
        # The harness's test settings, not the product's: back to the defaults.
        for key in ("connect_timeout", "request_timeout", "max_retries", "retry_budget"):
            cfg["zoho"].pop(key, None)
        cfg["webhook"].pop("threads", None)
        cfg["sync"].pop("bulk_threshold", None)
        cfg["notify"].pop("check_interval", None)
        self.conf = write_ini(self.work / "zcrm.conf", cfg)
        os.chmod(self.conf, 0o600)
        self.wh = Webhook(self.work, self.conf, sock, args=["-q"])
        procs.append(self.wh.proc)
        self.wh.start()
        import psycopg2
        self.db = psycopg2.connect(conninfo)
        self.db.autocommit = True

    def execute(self, sql, *args):
        self.db.cursor().execute(sql, args)

    def value(self, sql, *args):
        cur = self.db.cursor()
        cur.execute(sql, args)
        row = cur.fetchone()
        return row[0] if row else None

    def run(self, program, timeout=3600):
        r = run_program_in(self.work, "batch/" + program, config=self.conf, timeout=timeout)
        if r.returncode:
            raise RuntimeError("%s failed (%d):\n%s" % (program, r.returncode, r.stderr[-3000:]))
        return r

    def reset(self):
        self.sim.control("DELETE", "/credits")

    def spent(self):
        m = self.sim.control("GET", "/credits")
        return m["spent_total"], {k: v for k, v in m["by_endpoint"].items() if v}

    def settle(self, timeout=600):
        """Every notification delivered and fetched."""
        assert self.sim.control("POST", "/flush", {"timeout": timeout})["idle"]
        wait_until(lambda: self.value(
            "SELECT count(*) FROM %s.inbox WHERE processed_at IS NULL" % self.schema) == 0
            and self.value("SELECT count(*) FROM %s.to_fetch" % self.schema) == 0,
            timeout, interval=0.2, what="the webhook to fetch every notified record")

    def close(self):
        self.db.close()


def scenario_rows(st, args, runs_per_day):
    """[(work, ours, minimum, arithmetic, by endpoint)] for one stack."""
    rows = []
    width, n = st.width, args.records
    cpf = math.ceil((width - 1) / FIELDS_PER_CALL)       # Get Records calls per 100 ids
    pages = max(1, math.ceil(n / BULK_PAGE))
    bulk_job = 50 + 1 + 1                                 # create, one status poll, download

    def line(work, spent, least, arithmetic):
        rows.append({"width": width, "work": work, "credits": spent[0], "minimum": least,
                     "arithmetic": arithmetic, "by_endpoint": spent[1]})
        print("  %-44s %7d  %7d  %s" % (work, spent[0], least, arithmetic), flush=True)

    st.reset()
    st.run("initial_sync")
    st.settle()
    line("initial load, %d records" % n, st.spent(), 2 + pages * bulk_job,
         "fields 1 + watch 1 + %d page(s) x (job 50 + poll 1 + download 1)" % pages)

    # Idle: one run of each cron program on a module where nothing changed.
    # renew_channel's runs differ: most ask Zoho nothing, one an hour
    # ([notify] check_interval) checks the channel is live, and a renewal
    # (within renew_margin of the expiry) re-asks for a day: each priced.
    idle = {}
    for prog in ("incremental_sync", "renew_channel", "reconcile"):
        st.reset()
        st.run(prog)
        idle[prog] = st.spent()
    st.execute("UPDATE %s.sync_state SET channel_checked = now() - interval '1 day'" % st.schema)
    st.reset()
    st.run("renew_channel")
    check = st.spent()
    st.reset()
    run_program_in(st.work, "batch/renew_channel", args=["--force"], config=st.conf)
    renewal = st.spent()
    inc, ren, rec = (runs_per_day.get("zcrm-" + p.replace("_", "-"), 0)
                     for p in ("incremental_sync", "renew_channel", "reconcile"))
    checks = min(ren, 86400 // CHECK_INTERVAL)
    # The channel lives a day less 5 minutes and is renewed 12 h before its
    # end: a renewal at most every 42,900 s, 3 in a day counting both ends.
    renewals = 3
    renew_day = (ren - checks) * idle["renew_channel"][0] + (checks - renewals) * check[0] + \
        renewals * renewal[0]
    day = inc * idle["incremental_sync"][0] + renew_day + rec * idle["reconcile"][0]
    by = {}
    for part, k in ((idle["incremental_sync"], inc), (idle["reconcile"], rec),
                    (idle["renew_channel"], ren - checks), (check, checks - renewals),
                    (renewal, renewals)):
        for ep, c in part[1].items():
            by[ep] = by.get(ep, 0) + k * c
    least_rec = 1 + pages * bulk_job
    line("idle day (%d inc x %d, renew %d, %d reconcile x %d)"
         % (inc, idle["incremental_sync"][0], renew_day, rec, idle["reconcile"][0]),
         (day, by), inc * 1 + 2 + rec * least_rec,
         "%d x 1 (did anything change?) + a renewal 2 + %d x reconcile %d; renew: %d runs x %d,"
         " %d checks x %d, %d renewals x %d" % (inc, rec, least_rec, ren - checks,
                                               idle["renew_channel"][0], checks - renewals,
                                               check[0], renewals, renewal[0]))
    line("reconcile, %d records" % n, idle["reconcile"], least_rec,
         "count 1 + %d page(s) x (id export 50 + poll 1 + download 1)" % pages)

    # An hour without notifications, then one incremental_sync: first, so that
    # its listing (from the watermark less [sync] overlap) holds only these.
    # The hour is made as test_credits.py makes it: the watermark an hour
    # back, and the changes spread over that hour (Modified_Time set).
    c = args.changes
    wm = int(st.value("SELECT floor(extract(epoch FROM watermark)) FROM %s.sync_state"
                      " WHERE module = %%s" % st.schema, MODULE))
    st.execute("UPDATE %s.sync_state SET watermark = watermark - interval '3600 seconds'"
               % st.schema)
    truth_ids = sorted(r["id"] for r in st.sim.control("GET", "/truth/%s" % MODULE)["records"])
    for i, rid in enumerate(truth_ids[-c:]):
        t = wm - 3590 + i * 3590 // c
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid), {
            "values": {"Description": "changed during the outage",
                       "Modified_Time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))},
            "silent": True})
    st.reset()
    st.run("incremental_sync")
    listing = math.ceil(c / LIST_PAGE)
    least_rest = listing + math.ceil(c / IDS_PER_CALL) * cpf + 1
    least_bulk = bulk_job + 1
    line("outage: %d edits, caught up" % c, st.spent(), min(least_rest, least_bulk),
         "list %d pages + fetch %d x %d + deleted 1 = %d; by Bulk Read: job 52 + deleted 1 = %d"
         % (listing, math.ceil(c / IDS_PER_CALL), cpf, least_rest, least_bulk))

    # Single edits, one notification each, --interval s apart.
    ids = [r["id"] for r in st.sim.control("GET", "/truth/%s" % MODULE)["records"][:args.single]]
    st.reset()
    t0 = time.monotonic()
    for i, rid in enumerate(ids):
        due = t0 + i * args.interval
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                       {"values": {"Description": "single edit %d" % i}})
    st.settle()
    k = len(ids)
    line("%d single-id edits, %.1f s apart" % (k, args.interval), st.spent(),
         math.ceil(k / 2) * cpf,
         "every id within 2 s: ceil(%d / 2) calls x %d (%d with no bound on lag: ceil(%d/100) x %d)"
         % (k, cpf, math.ceil(k / IDS_PER_CALL) * cpf, k, cpf))

    # Notifications of 100 ids.
    st.reset()
    st.sim.control("POST", "/mutate", {"module": MODULE, "count": c, "seed": 21,
                                       "mix": {"update": 1}, "batch_max": 100,
                                       "batch_exact": True})
    st.settle()
    line("%d edits as 100-id notifications" % c, st.spent(), math.ceil(c / 100) * cpf,
         "%d calls of 100 ids x %d" % (math.ceil(c / 100), cpf))

    return rows


def main():
    ap = argparse.ArgumentParser(description="Zoho API credits per piece of work, beside the least")
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--single", type=int, default=1000, help="single-id edits")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between single edits")
    ap.add_argument("--changes", type=int, default=1000,
                    help="records edited in the 100-id and the outage scenarios")
    ap.add_argument("--widths", default="41,120")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",") if w]
    if args.single > args.records:
        ap.error("--single must not exceed --records")

    work = Path(tempfile.mkdtemp(prefix="zcrm-bench-credits."))
    os.chmod(work, 0o755)
    procs, stacks, rows = [], [], []
    pg_dir = work / "pg"
    pg_dir.mkdir()
    try:
        print("bench-credits: setting up in %s (binaries from %s)" % (work, harness.BIN_ROOT),
              file=sys.stderr)
        conninfo = pg_start(pg_dir)
        per_day = cron_runs_per_day()
        print("bench-credits: %d records; the shipped crontab runs a day: %s" % (
            args.records, ", ".join("%s %d" % kv for kv in sorted(per_day.items()))))
        print("  %-44s %7s  %7s  %s" % ("work", "credits", "least", "the least, worked out"))
        for w in widths:
            print("%d fields:" % w, flush=True)
            st = Stack(work, conninfo, w, args.records, procs)
            stacks.append(st)
            rows += scenario_rows(st, args, per_day)
        if args.json:
            print(json.dumps(rows))
        print("result   ok: every scenario ran")
        return 0
    except Exception as e:  # noqa: BLE001 — report and clean up
        print("bench-credits: %s" % e, file=sys.stderr)
        args.keep = True
        return 2
    finally:
        for st in stacks:
            st.close()
        for p in reversed(procs):
            p.stop()
            for problem in p.take_problems():
                print("bench-credits: %s" % problem, file=sys.stderr)
        pg_stop(pg_dir, destroy=not args.keep)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)])
        else:
            print("bench-credits: kept %s" % work, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
