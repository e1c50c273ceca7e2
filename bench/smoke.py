#!/usr/bin/python3
"""bench/smoke.py — every benchmark once, at a tiny size, so that none can rot
(make bench-smoke; make check runs it after the tests).

Each `make bench-X` target of the Makefile is run as an operator would run
it, with its *_ARGS variable making it tiny, from a fresh state (bench-bulk
generates its pages into a new directory instead of reusing build/bench/),
and writing nothing into docs/. No time is judged: a bench passes when it
exits 0 and its figures are on stdout (and nothing came back other than what
it expected). A bench target without an entry below fails the smoke pass,
so a new benchmark gets a tiny size when it is added.

    /usr/bin/python3 bench/smoke.py [--make make] [--keep-output DIR] [NAME...]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# target: (its variable, tiny arguments ({tmp}: a fresh directory),
#          regexes that must match its stdout: the figures it exists to print)
SMOKES = {
    "bench-bulk": ("BULK_ARGS", "--records 200 --repeat 1 --no-docs --cache-dir {tmp}/pages", [
        r"^ceiling: unzip .*\s200\s.*\d+\.\d\d\s",
        r"^initial load, empty table\s+200\s+200\s+\d+\.\d\d\s.*MiB",
        r"^re-load, 10% of rows newer\s+200\s+20\s+\d+\.\d\d\s.*MiB",
        r"^re-load, nothing changed\s+200\s+0\s+\d+\.\d\d\s.*MiB",
    ]),
    "bench-webhook": ("WEBHOOK_ARGS",
                      "--duration 1 --warmup 1 --conns 4 --threads 2 --rate 0 --no-docs", [
        # case, conns, req/s, p50, p99, p99.9, max, answers not 200 (none)
        r"^ceiling: nginx `return 204`\s+4\s+[\d,]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+0\s",
        r"^ceiling: pgbench, same SQL\s+4\s+[\d,]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+0\s",
        r"^ceiling: pgbench, batches of 16, 4 clients\s+4\s+[\d,]+\s",
        r"^webhook, 2 threads\s+4\s+[\d,]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+0\s"
        r"+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+ MiB",
    ]),
    "bench-lag": ("LAG_ARGS", "--records 50 --edits 10 --interval-ms 20 --no-target", [
        r"^p50\s+\d+\.\d{3}\s",
        r"^p99\s+\d+\.\d{3}\s",
        r"^arrived  10/10$",
    ]),
    "bench-credits": ("CREDITS_ARGS", "--records 300 --single 3 --interval 0.2 --changes 100 --widths 41", [
        r"^  initial load, 300 records\s+\d+\s+\d+\s",
        r"^  idle day .*\s\d+\s+\d+\s",
        r"^  outage: 100 edits, caught up\s+\d+\s+\d+\s",
        r"^result   ok: every scenario ran$",
    ]),
    "bench-first-load": ("FIRST_LOAD_ARGS", "--records 600 --pages 3 --job-s 1 --no-docs", [
        r"^0\s+1\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d\d$",
        r"^2\s+3\s+\d+\.\d\s",
        r"^floor\s+\d+\.\d s = job 1\.0 \+ downloads",
    ]),
}


def say(msg):
    sys.stderr.write("bench-smoke: %s\n" % msg)
    sys.stderr.flush()


def bench_targets():
    """Every `bench-X:` rule of the Makefile but this one."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"^(bench-[a-z-]+):", text, re.M)) - {"bench-smoke"})


def child_env():
    """The environment for `make bench-X`: the variables given to the make
    that runs us (WERROR=1…) stay, so `bench-X: all` finds the build up to
    date; its jobserver does not (its descriptors are not passed on)."""
    env = dict(os.environ)
    for name in ("MAKEFLAGS", "MFLAGS"):
        if name in env:
            env[name] = " ".join(w for w in env[name].split(" ")
                                 if not w.startswith(("-j", "--jobserver")))
    env.pop("MAKELEVEL", None)
    return env


def run_one(make, name, tmp, out_dir):
    var, args, figures = SMOKES[name]
    work = Path(tempfile.mkdtemp(prefix="%s." % name, dir=tmp))
    argv = [make, "--no-print-directory", "-C", str(REPO), name,
            "%s=%s" % (var, args.format(tmp=work))]
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=child_env())
    secs = time.monotonic() - t0
    if out_dir:
        (out_dir / ("%s.stdout" % name)).write_text(r.stdout)
        (out_dir / ("%s.stderr" % name)).write_text(r.stderr)
    missing = [f for f in figures if not re.search(f, r.stdout, re.M)]
    if r.returncode == 0 and not missing:
        say("%s: ok (%.0f s)" % (name, secs))
        return True
    say("%s: FAILED: %s\n  %s" % (name, " ".join(argv),
                                  "exit %d" % r.returncode if r.returncode else
                                  "figures missing from its output: %s" % missing))
    sys.stderr.write("---- stdout\n%s---- stderr (last 40 lines)\n%s\n"
                     % (r.stdout, "\n".join(r.stderr.splitlines()[-40:])))
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--make", default=os.environ.get("MAKE", "make"))
    ap.add_argument("--keep-output", type=Path, metavar="DIR",
                    help="write each bench's stdout and stderr into DIR")
    ap.add_argument("names", nargs="*", help="only these targets (default: every bench-*)")
    a = ap.parse_args()

    targets = bench_targets()
    unsized = [t for t in targets if t not in SMOKES]
    if unsized:
        say("no tiny size for %s: add it to SMOKES in bench/smoke.py" % ", ".join(unsized))
        return 1
    gone = sorted(set(SMOKES) - set(targets))
    if gone:
        say("SMOKES names targets the Makefile does not have: %s" % ", ".join(gone))
        return 1
    names = a.names or targets
    unknown = [n for n in names if n not in SMOKES]
    if unknown:
        ap.error("unknown bench target(s): %s" % ", ".join(unknown))
    if a.keep_output:
        a.keep_output.mkdir(parents=True, exist_ok=True)

    tmp = tempfile.mkdtemp(prefix="zcrm-bench-smoke.")
    os.chmod(tmp, 0o755)
    try:
        failed = [n for n in names if not run_one(a.make, n, tmp, a.keep_output)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        say("%d of %d failed: %s" % (len(failed), len(names), ", ".join(failed)))
        return 1
    say("all %d benchmarks ran" % len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
