#!/usr/bin/python3
"""bench_bulk.py — how fast one bulk page is merged, against its ceiling.

    make bench-bulk                       (BULK_ARGS="--records 50000 --repeat 1")
    /usr/bin/python3 bench/bench_bulk.py [--records N] [--repeat N] [--cache-dir D] [--keep]

Builds a realistic Leads page ZIP (tests/zoho_sim/make_zip.py: 43 fields,
~30 % empty cells, quoted commas, quotes and newlines) and a copy where every
tenth record has a later Modified_Time and a changed value, starts a
throwaway PostgreSQL (scripts/pg-temp), creates zcrm.leads from the
simulator's field metadata (tools/load_fields), then times each case
--repeat times, interleaved, and reports the fastest run (--stat median for
the median; the fastest is the least disturbed by other load):

  ceiling     unzip -p page.zip | psql -c "\\copy t FROM STDIN (FORMAT csv, HEADER)"
              into an UNLOGGED table of text columns: parsing and storing the
              bytes, nothing else
  initial     tools/load_page --zip page.zip into the empty table
  unchanged   the same page again over it (nothing applies; the rows are
              dropped before staging, common/prefilter.c)
  ties        the same page again, as from an export job created after every
              stored row was written (load_page --tie-before): each row is a
              tie the bulk rule compares by value, so each is staged and
              merged (nothing applies); no target, shown for what it costs
  10% newer   the second page over the first (a tenth applies)

and prints rows/s, the ratio of our time to the ceiling, and the peak RSS of
load_page (/usr/bin/time -v), then writes the table into docs/benchmarks.md
("Bulk merge"). Pages are cached in build/bench/ (generating 200,000 rows
takes about a minute; --cache-dir elsewhere). Not a test: the exit status says only whether the
benchmark ran; targets missed are marked in the table.
"""

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIM = REPO / "tests" / "zoho_sim"
sys.path.insert(0, str(SIM))
import bulkzip  # noqa: E402
import datagen  # noqa: E402

TOOLS = Path(os.environ.get("ZCRM_TOOLS") or (REPO / "build" / "normal" / "tools"))
PG_TEMP = REPO / "scripts" / "pg-temp"
TIME = "/usr/bin/time"
ANCHOR = 1767225600          # fixed: the same pages on every run
SEED = 1
TZ = "-08:00"
CACHE = REPO / "build" / "bench"

TARGETS = {"initial": 1.5, "newer": 1.3, "unchanged": 1.2, "ties": None}   # issue 19
RSS_TARGET_MIB = 64
LABELS = {"ceiling": "ceiling: unzip | psql \\copy (UNLOGGED, text)",
          "initial": "initial load, empty table",
          "newer": "re-load, 10% of rows newer",
          "unchanged": "re-load, nothing changed",
          "ties": "re-load, nothing changed, ties compared"}
CASES = ("ceiling", "initial", "newer", "unchanged", "ties")


def say(msg):
    sys.stderr.write("bench-bulk: %s\n" % msg)
    sys.stderr.flush()


def die(msg):
    say(msg)
    sys.exit(1)


# ------------------------------------------------------------------ pages

def make_page(records, path):
    """The simulator's first `records` Leads, as make_zip.py writes them."""
    subprocess.run([sys.executable, str(SIM / "make_zip.py"), "--module", "Leads",
                    "--records", str(records), "--seed", str(SEED), "--anchor", str(ANCHOR),
                    # one argument: argparse would take a separate "-08:00" for an option
                    "--tz-offset=" + TZ, "-q", "-o", str(path)], check=True)


def make_newer_page(records, path):
    """The same records, every tenth one edited an hour later (a later
    Modified_Time, a new City and Modified_By): what a re-export finds."""
    _, fdefs = datagen.build_fields("Leads")

    def gen():
        for i in range(records):
            rec = datagen.generate_record(SEED, "Leads", i, fdefs, ANCHOR)
            if i % 10 == 0:
                rec = dict(rec, Modified_Time=rec["Modified_Time"] + 3600,
                           City="Edited %d" % i, Modified_By=datagen.USER_IDS[i % 6])
            yield rec

    tmp = str(path) + ".tmp"
    bulkzip.write_zip(tmp, "5725767000000859032", gen(), fdefs, None, datagen.make_tz(TZ))
    os.replace(tmp, path)


def pages(records, cache):
    cache.mkdir(parents=True, exist_ok=True)
    page = cache / ("leads-%d-s%d-a%d.zip" % (records, SEED, ANCHOR))
    newer = cache / ("leads-%d-s%d-a%d-newer10.zip" % (records, SEED, ANCHOR))
    todo = [p for p in (page, newer) if not p.exists()]
    if todo:
        say("generating %s (once; cached in %s)" % (", ".join(p.name for p in todo), cache))
        t0 = time.monotonic()
        procs = []
        if not page.exists():
            procs.append(multiprocessing.Process(target=make_page, args=(records, page)))
        if not newer.exists():
            procs.append(multiprocessing.Process(target=make_newer_page, args=(records, newer)))
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode:
                die("page generation failed")
        say("generated in %.0f s" % (time.monotonic() - t0))
    return page, newer


# --------------------------------------------------------------- postgres

class Pg:
    def __init__(self, directory):
        self.dir = directory
        out = subprocess.run([str(PG_TEMP), "start", str(directory)], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        self.conninfo = out.strip().splitlines()[-1]
        self.psql_bin = shutil.which("psql") or "psql"

    def backend_cpu(self):
        """CPU seconds of every backend that has exited so far: the kernel adds
        a reaped child's time to the postmaster's cutime/cstime."""
        pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")

    def psql(self, sql, stdin=None):
        r = subprocess.run([self.psql_bin, "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d",
                            self.conninfo, "-c", sql], stdin=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode:
            die("psql failed: %s\n%s" % (sql[:200], r.stderr))
        return r.stdout.strip()

    def stop(self, destroy=True):
        subprocess.run([str(PG_TEMP), "destroy" if destroy else "stop", str(self.dir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ----------------------------------------------------------------- timing

def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measured(pg, fn):
    """(wall seconds, CPU seconds of our children and of the backends they
    used, fn's result). CPU time hardly moves with other load on the
    machine; wall time does."""
    c0, b0 = children_cpu(), pg.backend_cpu()
    t0 = time.monotonic()
    out = fn()
    wall = time.monotonic() - t0
    c1 = children_cpu()
    # The backend exits just after its client; wait until it is reaped.
    b1, deadline = pg.backend_cpu(), time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.1)
        b = pg.backend_cpu()
        if b == b1 and b1 > b0:
            break
        b1 = b
    return wall, (c1 - c0) + (b1 - b0), out


def time_load_page(pg, conf, zip_path, extra=()):
    """(seconds, CPU seconds, peak RSS KiB, load_page's JSON) of one run."""
    secs, cpu, r = measured(pg, lambda: subprocess.run(
        [TIME, "-v", str(TOOLS / "load_page"), "--config", str(conf), "--module", "Leads",
         "--zip", str(zip_path)] + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True))
    if r.returncode:
        die("load_page failed:\n%s" % r.stderr[-3000:])
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return secs, cpu, int(m.group(1)) if m else 0, json.loads(r.stdout)


def time_ceiling(pg, zip_path):
    pg.psql("TRUNCATE ceil")
    pg.psql("CHECKPOINT")
    cmd = "set -o pipefail; unzip -p '%s' | '%s' -X -q -v ON_ERROR_STOP=1 -d '%s' -c " \
          "'\\copy ceil FROM STDIN (FORMAT csv, HEADER)'" % (zip_path, pg.psql_bin, pg.conninfo)
    secs, cpu, r = measured(pg, lambda: subprocess.run(
        ["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    if r.returncode:
        die("ceiling copy failed:\n%s" % r.stderr[-2000:])
    return secs, cpu


def csv_header(zip_path):
    import zipfile
    with zipfile.ZipFile(zip_path) as z:
        with z.open(z.infolist()[0]) as f:
            return f.readline().decode("utf-8").rstrip("\r\n").split(",")


# ------------------------------------------------------------------ report

def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "common", "batch", "tests/tools"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except OSError:
        return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def table(results, records):
    ceil = results["ceiling"]
    rows = []
    head = ("case", "rows", "applied", "seconds", "rows/s", "× ceiling", "CPU s",
            "CPU × ceiling", "target", "peak RSS", "")
    for key in CASES:
        r = results[key]
        ratio = r["secs"] / ceil["secs"]
        if key == "ceiling":
            target, ok, rss = "—", "", "—"
        else:
            target = "≤ %.1f×" % TARGETS[key] if TARGETS[key] else "—"
            rss_mib = r["rss_kib"] / 1024.0
            good = ratio <= (TARGETS[key] or ratio) and rss_mib <= RSS_TARGET_MIB
            ok = "ok" if good else "MISSED"
            rss = "%.1f MiB" % rss_mib
        rows.append((LABELS[key], "{:,}".format(records),
                     "—" if key == "ceiling" else "{:,}".format(r["applied"]),
                     "%.2f" % r["secs"], "{:,.0f}".format(records / r["secs"]),
                     "%.2f" % ratio, "%.2f" % r["cpu"], "%.2f" % (r["cpu"] / ceil["cpu"]),
                     target, rss, ok))
    return head, rows


def markdown(head, rows, meta):
    out = ["## Bulk merge", "",
           "One Bulk Read page through `tools/load_page --zip` (the code initial_sync runs",
           "after a download: inflate → drop the rows the rule refuses on their key → `COPY` the",
           "rest into text staging tables, chunk by chunk, each merged by one statement), against",
           "the ceiling of loading the same CSV with `psql \\copy` into an",
           "UNLOGGED all-text table. %s of %d runs (interleaved); `make bench-bulk` regenerates"
           % ("Fastest" if meta["stat"] == "min" else "Median", meta["repeat"]),
           "this section (`bench/bench_bulk.py`, see `bench/README.md`).", "",
           "| " + " | ".join(head[:-1]) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head) - 1)) + "|"]
    for r in rows:
        cells = [c.replace("|", "\\|") for c in r[:-1]]
        if r[-1] == "MISSED":
            cells[5] = "**%s** (missed)" % cells[5]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "Spread over the runs (seconds, fastest – slowest): " + "; ".join(
        "%s %.2f – %.2f" % (k, lo, hi) for k, (lo, hi) in meta["spread"].items()) + ".",
            "CPU s: user + system time of our processes (load_page; unzip and psql for the "
            "ceiling) plus that of the PostgreSQL backend that served them. The targets are "
            "judged on seconds.", "",
            "How a page goes in (since commit 868f02e): the CSV is cut between records into "
            "~8 MiB chunks; a second connection COPYs chunk k+1 into an UNLOGGED text table "
            "while the page's own connection merges chunk k, so two backends work at once and "
            "the module table still changes in one transaction. The merge is `MERGE`: new "
            "rows are plain inserts, where `INSERT … ON CONFLICT` makes each a speculative "
            "insertion (200,000 typed rows into an empty table: 0.96 s plain, 1.48 s with "
            "`ON CONFLICT`; the whole cast-and-merge from text: 1.71 s `MERGE`, 2.37 s `ON "
            "CONFLICT`). Per chunk, the stored rows are probed by primary key rather than "
            "hashed again (14,000 rows against 200,000 stored: 49 ms against 123 ms). "
            "`--loader-args=--one-connection` measures the single-table path for "
            "comparison.", "",
            "A first load (issue 19): into the empty table the page is not staged at all but "
            "COPYed straight into the typed table (`COPY … FROM STDIN (FORMAT csv, FORCE_NULL "
            "…)`, multi-select cells rewritten to array literals by the loader, under a "
            "savepoint: a page COPY refuses is staged and merged instead; "
            "docs/architecture.md). One backend parses, casts and inserts once, instead of "
            "two staging text and casting it again: measured 2026-12-07 on this machine, "
            "between other agents' builds, the initial case went from 2.14× and 2.48× the "
            "ceiling staged (`--loader-args=--staged`, two runs, CPU 1.99× and 2.06×) to "
            "1.45× (CPU 1.16×). The re-load cases take the merge as before (their spread "
            "between runs on the loaded machine, above, is as wide as their margins).", "",
            "Rows we hold (issue 19, common/prefilter.c): before a chunk is staged, its "
            "records' `id` and `Modified_Time` are read by the loader and one query on the "
            "stager — the merge's own rule on the key alone, a primary-key probe per row — "
            "names the rows no merge would write; only the others are COPYed and merged. "
            "The lookup runs while the loader inflates and scans the next chunk (about 40 "
            "ms for a chunk of 14,000 rows). Measured 2026-12-07 on this machine, quiet: "
            "unchanged 1.78× → 1.01× the ceiling, 10% newer 1.93× → 1.19× (fastest of 3; "
            "`--loader-args=--stage-all` turns it off). It cannot drop ties the bulk rule "
            "compares by value — a row whose stored copy was written before the export "
            "job — which is the \"ties compared\" row: every row staged and merged, as "
            "before it. That is a re-run of initial_sync over a loaded table, or the rows "
            "of an incremental page the webhook already fetched. Once a chunk's lookup "
            "refuses fewer than one row in four, the rest of the page goes without it: "
            "there it costs the first two chunks' lookups (2.16 s against 2.04 s with "
            "`--stage-all`; 2.92 s when it looked up every chunk).", "",
            "Where the time goes: with nothing to stage, the loader (inflating, ≈ 0.5 s, "
            "and scanning) and the lookups (≈ 0.55 s of one backend) overlap on the 2 "
            "vCPUs; the staging `COPY` of what is kept is about the ceiling's own work "
            "for those rows, and the merge of an initial page (casting 43 columns, ≈ 1 s "
            "per 200,000 rows, and inserting into a WAL-logged table with its primary "
            "key) runs beside it. The spread between runs (see above) is as large as "
            "some margins. History, fastest runs: the first merge form (`DISTINCT ON` "
            "over cast rows) 2.95× / 4.83× / 3.28× (initial / 10% newer / unchanged); one "
            "pass with the join before the casts 2.80× / 1.45× / 1.29×; chunks and "
            "`MERGE` 1.45× / 1.93× / 1.78× (2026-12-07, before the prefilter); this "
            "table.", "",
            "Targets (issue 19): initial ≤ 1.5× the ceiling, 10%% newer ≤ 1.3×, unchanged "
            "≤ 1.2×, peak RSS of the loader ≤ %d MiB (before: 2× / 1.5× / 1.3×)."
            % RSS_TARGET_MIB, "",
            "Page: %s records of Leads from the simulator's generator (seed %d), %.1f MB ZIP, "
            "%.1f MB CSV, %d columns." % ("{:,}".format(meta["records"]), SEED,
                                          meta["zip_mb"], meta["csv_mb"], meta["ncols"]),
            "Machine: %s, %d CPU(s); PostgreSQL %s from `scripts/pg-temp` (fsync, "
            "synchronous_commit and full_page_writes off; other settings default). "
            "Commit %s, %s." % (meta["cpu"], meta["ncpu"], meta["pg"], meta["rev"],
                                meta["date"]), ""]
    return "\n".join(out)


def write_docs(section, heading="Bulk merge"):
    """Put section in docs/benchmarks.md instead of the one under
    `## heading` (at the end if there is none)."""
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    m = re.search(r"^## %s\n.*?(?=^## |\Z)" % re.escape(heading), text, flags=re.S | re.M)
    if m:
        text = text[:m.start()] + section + ("\n" if m.end() < len(text) else "") + text[m.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
    return path


# -------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200000, help="rows in the page (200000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each case (5)")
    ap.add_argument("--stat", choices=("min", "median"), default="min",
                    help="which run to report: the fastest (default; least disturbed by "
                         "other load on the machine) or the median")
    ap.add_argument("--cache-dir", type=Path, default=CACHE,
                    help="where the generated pages are kept between runs (build/bench; "
                         "a new directory generates them afresh)")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL cluster")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--loader-args", default="",
                    help="extra load_page options, e.g. '--one-connection' or "
                         "'--chunk-bytes 4194304' (comparisons; implies --no-docs)")
    a = ap.parse_args()
    if a.loader_args:
        a.no_docs = True

    for exe in ("load_page", "load_fields"):
        if not (TOOLS / exe).exists():
            die("%s is not built: run make" % (TOOLS / exe))
    if not os.access(TIME, os.X_OK):
        die("%s is missing: install the 'time' package (apt-get install time)" % TIME)
    if not shutil.which("unzip"):
        die("unzip is missing (scripts/install-deps.sh installs it)")

    page, newer = pages(a.records, a.cache_dir)
    work = Path(tempfile.mkdtemp(prefix="zcrm-bench-bulk."))
    os.chmod(work, 0o755)
    pg = Pg(work / "pg")
    try:
        conf = work / "bench.conf"
        conf.write_text("[database]\nconninfo = %s\nschema = zcrm\n" % pg.conninfo)
        metas, _ = datagen.build_fields("Leads")
        fields = work / "fields.json"
        fields.write_text(json.dumps({"fields": metas}))
        subprocess.run([str(TOOLS / "load_fields"), "--config", str(conf), "--module", "Leads",
                        "--fields", str(fields)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        header = csv_header(page)
        pg.psql("CREATE UNLOGGED TABLE ceil (%s)"
                % ", ".join('"%s" text' % h.replace('"', '""') for h in header))

        pg.psql("ALTER SYSTEM SET autovacuum = off")   # no backends exiting meanwhile
        pg.psql("SELECT pg_reload_conf()")
        runs = {k: [] for k in CASES}
        cpus = {k: [] for k in runs}
        rss = {k: [] for k in runs}
        applied = {}
        expect = {"initial": a.records, "unchanged": 0, "ties": 0,
                  "newer": (a.records + 9) // 10}
        # An export job created after every stored row was written.
        later = ["--tie-before", str(int(time.time()) + 86400)]
        meta_csv = 0
        for i in range(a.repeat):
            say("run %d/%d" % (i + 1, a.repeat))
            secs, cpu = time_ceiling(pg, page)
            runs["ceiling"].append(secs)
            cpus["ceiling"].append(cpu)
            say("  %-9s %5.2f s  cpu %5.2f s" % ("ceiling", secs, cpu))
            pg.psql("TRUNCATE zcrm.leads")
            pg.psql("CHECKPOINT")
            for key, zp, extra in (("initial", page, []), ("unchanged", page, []),
                                   ("ties", page, later), ("newer", newer, [])):
                if key != "initial":
                    # Steady state: autovacuum would have visited a freshly
                    # loaded table; hint bits set, statistics known.
                    pg.psql("VACUUM (ANALYZE) zcrm.leads")
                    pg.psql("CHECKPOINT")
                secs, cpu, kib, js = time_load_page(pg, conf, zp,
                                                    a.loader_args.split() + extra)
                if js["applied"] != expect[key] or js["staged"] != a.records:
                    die("%s: staged %s applied %s, expected %d applied"
                        % (key, js["staged"], js["applied"], expect[key]))
                runs[key].append(secs)
                cpus[key].append(cpu)
                rss[key].append(kib)
                applied[key] = js["applied"]
                meta_csv = js["bytes_csv"]
                say("  %-9s %5.2f s  cpu %5.2f s  %d KiB" % (key, secs, cpu, kib))

        pick = min if a.stat == "min" else statistics.median
        results = {k: {"secs": pick(v), "cpu": pick(cpus[k]), "rss_kib": max(rss[k] or [0]),
                       "applied": applied.get(k, 0)} for k, v in runs.items()}
        head, rows = table(results, a.records)
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        print()
        for r in [head] + rows:
            print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        print()
        meta = {"repeat": a.repeat, "stat": a.stat, "records": a.records,
                "spread": {k: (min(v), max(v)) for k, v in runs.items()},
                "zip_mb": page.stat().st_size / 1e6, "csv_mb": meta_csv / 1e6,
                "ncols": len(header), "cpu": cpu_model(), "ncpu": os.cpu_count() or 0,
                "pg": pg.psql("SHOW server_version").split()[0], "rev": git_rev(),
                "date": dt.date.today().isoformat()}
        if not a.no_docs:
            say("wrote %s" % write_docs(markdown(head, rows, meta)))
        missed = [r[0] for r in rows if r[-1] == "MISSED"]
        if missed:
            say("targets missed: %s" % "; ".join(missed))
    finally:
        if a.keep:
            say("cluster kept: %s (scripts/pg-temp destroy %s)" % (pg.conninfo, work / "pg"))
        else:
            pg.stop(destroy=True)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
