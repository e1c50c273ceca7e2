#!/usr/bin/python3
"""bench/bench_first_load.py — a first load at scale: batch/initial_sync of
--records Leads in --pages Bulk Read pages whose jobs take --job-s seconds
of wall time at the simulator (a real job takes minutes), beside its floor.

    make bench-first-load                          (1,000,000 records, 5 pages, 30 s jobs)
    make bench-first-load FIRST_LOAD_ARGS="--records 20000 --pages 5 --job-s 3"

One simulator (--bulk-job-ms, tests/zoho_sim/README.md), nginx and a
throwaway PostgreSQL; for each [sync] bulk_jobs_ahead of --ahead (default
0, 1 and pages - 1), a fresh schema, a webhook on it (Zoho's job callbacks
end the waits) and one initial_sync run into its empty table. Printed per
run: the wall time of initial_sync, the sum of its pages' downloads and
merges (its "page merged" log lines), the most jobs the simulator had at
work at once, and the ratio to the floor:

  floor = the longest job + the downloads and merges it cannot overlap

With every page's job asked for at once, all of them end about together,
so no download or merge can overlap any job: the floor is one job's time
plus every page's download and merge, measured in the same run. One page
at a time (bulk_jobs_ahead = 0) costs a job's time per page instead.

Options: --records N (1000000), --pages N (5), --job-s S (30), --ahead
LIST, --also MODULE:N,... (more modules, exported after Leads in that order,
each in one page: the next modules' first pages are asked for ahead within
the same budget), --keep, --no-docs (else the table goes into
docs/benchmarks.md, "First load"). The simulator holds every record in memory: about 2.5 GB
for 1,000,000 Leads, and a minute to generate them.
"""

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402
from harness import Nginx, Sim, Webhook, base_config, merge_overrides, write_ini  # noqa: E402
from bench_bulk import write_docs  # noqa: E402  (bench/ is on sys.path: this script's folder)
from lag import pg_start, tear_down  # noqa: E402

MODULE = "Leads"
READING = (
    "Reading it: one page at a time waits for five jobs in a row (5 × 30 s) and its "
    "downloads and merges on top; with the next page's job asked for while a page is merged "
    "(the default, 1) two jobs overlap; with every page's job asked for at once (4: the "
    "record count says 5 pages) the load takes about one job's time plus the downloads and "
    "merges - what is left over the floor is the program's start, the fields and channel "
    "calls, the record count, the poll after Zoho's callback and the page-boundary count "
    "check. The downloads are the simulator's: it writes a page's ZIP when it is first "
    "downloaded, in Python, 7-11 s for 200,000 records and slower while it serves other "
    "jobs (Zoho prepares the file during the job); the merges are COPYs straight into the "
    "table (docs/architecture.md), 2-4 s a page on the shared CPUs. Modules are exported "
    "one after another, but the first pages of the modules after one are asked for within "
    "the same budget while it is exported (`--also` measures that: \"First load, several "
    "modules\").")


READING_MODULES = (
    "Reading it: the modules are exported one after another, and with room in "
    "`bulk_jobs_ahead` once a module's own pages all have their jobs, the first pages of the "
    "modules after it are asked for while it waits (each channel enabled first; "
    "docs/architecture.md). One job at a time waits for every module's job in a row; with "
    "1 (the default) each module asks for the next one's while it waits for its own, so two "
    "jobs overlap; with a job ahead for every page after the first, all of them run at "
    "once and the load takes about one job's time plus the downloads and merges.")


def say(msg):
    sys.stderr.write("bench-first-load: %s\n" % msg)
    sys.stderr.flush()


def one_run(work, conninfo, sim, ng, ahead, procs, modules=(MODULE,)):
    """initial_sync with bulk_jobs_ahead = ahead into a fresh schema."""
    d = work / ("a%d" % ahead)
    d.mkdir()
    schema = "zcrm_a%d" % ahead
    cfg = base_config(conninfo, d, sim_url=sim.url, notify_url=ng.url + "/zcrm/notify")
    cfg = merge_overrides(cfg, {"database": {"schema": schema},
                                "sync": {"bulk_jobs_ahead": str(ahead),
                                         "modules": ", ".join(modules)}})
    for key in ("connect_timeout", "request_timeout", "max_retries", "retry_budget"):
        cfg["zoho"].pop(key, None)
    cfg["sync"].pop("bulk_threshold", None)
    conf = write_ini(d / "zcrm.conf", cfg)
    os.chmod(conf, 0o600)
    wh = Webhook(d, conf, work / "webhook.sock", args=["-q"])
    procs.append(wh.proc)
    wh.start()
    try:
        exe = harness.resolve_program("batch/initial_sync")
        t0 = time.monotonic()
        r = subprocess.run([str(exe), "--config", str(conf)], cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=harness.clean_env())
        wall = time.monotonic() - t0
    finally:
        wh.stop()
        procs.remove(wh.proc)
    if r.returncode:
        raise RuntimeError("initial_sync (ahead %d) failed (%d):\n%s"
                           % (ahead, r.returncode, r.stderr[-3000:]))
    pages = [(int(m.group(1)), int(m.group(2)))
             for m in re.finditer(r"page merged.* download_ms=(\d+) merge_ms=(\d+)", r.stderr)]
    return {"ahead": ahead, "wall": wall, "pages": len(pages),
            "download_s": sum(p[0] for p in pages) / 1e3,
            "merge_s": sum(p[1] for p in pages) / 1e3,
            "running_max": sim.control("GET", "/stats")["jobs_running_max"]}


def heading(args):
    return "First load, several modules" if args.also else "First load"


def markdown(rows, args, floor, when):
    also = "".join(", then %s %s in one page" % ("{:,}".format(n), m) for m, n in args.also)
    pages = "1 Bulk Read page" if args.pages == 1 else "%d Bulk Read pages" % args.pages
    out = ["## " + heading(args), "",
           "`make bench-first-load` (bench/bench_first_load.py): `initial_sync` of %s Leads in %s"
           "%s, each job taking %g s of wall time at the simulator"
           " (`--bulk-job-ms`), Zoho's callbacks delivered through nginx to the webhook."
           " Floor: the longest job plus the downloads and merges it cannot overlap"
           " (every job asked for at once ends with the others: one job's time plus every"
           " page's download and merge, measured in the run with every job ahead)."
           " Measured %s on %d CPUs." % ("{:,}".format(args.records), pages, also,
                                        args.job_s, when, os.cpu_count() or 0), "",
           "| `bulk_jobs_ahead` | jobs at once | wall s | downloads s | merges s | floor s |"
           " × floor |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f |" % (
            r["ahead"], r["jobs_at_once"], r["wall"], r["download_s"], r["merge_s"], floor,
            r["wall"] / floor))
    out += ["", READING_MODULES if args.also else READING]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--job-s", type=float, default=30.0, help="wall time of one job (30)")
    ap.add_argument("--ahead", default=None, help="bulk_jobs_ahead values (0,1,pages-1)")
    ap.add_argument("--also", default="", help="more modules after Leads, MODULE:N,... "
                    "(one page each; e.g. Contacts:20000,Deals:20000)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    if args.records < args.pages or args.pages < 1:
        ap.error("--records must be at least --pages, and --pages at least 1")
    args.also = [(m.split(":")[0].strip(), int(m.split(":")[1])) for m in args.also.split(",")
                 if m.strip()]
    page_size = -(-args.records // args.pages)
    if any(n > page_size for _, n in args.also):
        ap.error("each --also module must fit in one page (%d records)" % page_size)
    pages = args.pages + len(args.also)
    aheads = [int(a) for a in (args.ahead or "0,1,%d" % min(8, pages - 1)).split(",")]
    aheads = sorted(set(aheads))
    modules = [MODULE] + [m for m, _ in args.also]

    work = Path(tempfile.mkdtemp(prefix="zcrm-bench-first-load."))
    os.chmod(work, 0o755)
    procs = []
    pg_dir = work / "pg"
    pg_dir.mkdir()
    os.environ.setdefault("ZCRM_TIMEOUT_SCALE", str(max(1, args.records // 20000)))
    try:
        say("setting up in %s (binaries from %s)" % (work, harness.BIN_ROOT))
        conninfo = pg_start(pg_dir)
        sim = Sim(work, args=["-q", "--modules", ",".join(
                      ["%s:%d" % (MODULE, args.records)] + ["%s:%d" % a for a in args.also]),
                              "--page-size", str(page_size), "--bulk-polls", "1",
                              "--bulk-step-ms", "0", "--bulk-job-ms", str(int(args.job_s * 1000)),
                              "--seed", "19"], name="sim")
        procs.append(sim.proc)
        t = time.monotonic()
        sim.start()
        say("simulator up with %d records in %.0f s" % (args.records, time.monotonic() - t))
        ng = Nginx(work / "nginx", fastcgi_socket=work / "webhook.sock", access_log=False)
        procs.append(ng.proc)
        ng.start()
        rows, before = [], 0
        for a in aheads:
            say("initial_sync with bulk_jobs_ahead = %d" % a)
            r = one_run(work, conninfo, sim, ng, a, procs, modules)
            if r["pages"] != pages:
                raise RuntimeError("%d pages merged, not %d" % (r["pages"], pages))
            # jobs_running_max only grows: a run that did not raise it had
            # at most as many at once as the run before (runs go 0, 1, ...).
            r["jobs_at_once"] = max(r["running_max"], 1) if r["running_max"] > before else \
                min(a + 1, pages)
            before = max(before, r["running_max"])
            rows.append(r)
        full = [r for r in rows if r["ahead"] >= pages - 1] or rows[-1:]
        floor = args.job_s + full[0]["download_s"] + full[0]["merge_s"]
        print("%-18s %6s %9s %12s %9s %9s %8s" % ("bulk_jobs_ahead", "jobs", "wall s",
                                                  "downloads s", "merges s", "floor s",
                                                  "x floor"))
        for r in rows:
            print("%-18d %6d %9.1f %12.1f %9.1f %9.1f %8.2f" % (
                r["ahead"], r["jobs_at_once"], r["wall"], r["download_s"], r["merge_s"], floor,
                r["wall"] / floor))
        print("floor    %.1f s = job %.1f + downloads %.1f + merges %.1f" % (
            floor, args.job_s, full[0]["download_s"], full[0]["merge_s"]))
        if not args.no_docs:
            when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
            say("wrote %s" % write_docs(markdown(rows, args, floor, when), heading(args)))
        return 0
    except Exception as e:  # noqa: BLE001 — report and clean up
        say("%s" % e)
        args.keep = True
        return 2
    finally:
        tear_down("bench-first-load", procs, pg_dir, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
