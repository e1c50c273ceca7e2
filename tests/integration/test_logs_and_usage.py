"""Log lines and command-line messages (issue 14 item 15):

  - across a run of every program (the webhook behind nginx included), no
    log line carries a key twice (module= was written both by the logger's
    module context and by callers that add module= themselves);
  - usage errors name the program as it was invoked ("Try 'zcrm-status
    --help'" for the installed zcrm-status), for every program;
  - "already running" (another run holds the job's lock) is a warning, not
    an error, and exits 75 as docs/errors.md says.
"""

import os
import re
import subprocess

import pytest

from harness import BIN_ROOT, clean_env, scaled

EX_USAGE = 64
EX_TEMPFAIL = 75
# build path: installed name (Makefile INSTALL_PROGS)
PROGRAMS = {
    "batch/initial_sync": "zcrm-initial-sync",
    "batch/incremental_sync": "zcrm-incremental-sync",
    "batch/renew_channel": "zcrm-renew-channel",
    "batch/reconcile": "zcrm-reconcile",
    "batch/status": "zcrm-status",
    "webhook/zcrm_webhook": "zcrm-webhook",
}
PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def duplicate_keys(line):
    keys = [m.group(1) for m in PAIR.finditer(line)]
    return sorted({k for k in keys if keys.count(k) > 1})


def check_lines(text, where):
    lines = [ln for ln in text.splitlines() if ln.startswith("ts=")]
    bad = [(ln, duplicate_keys(ln)) for ln in lines if duplicate_keys(ln)]
    assert not bad, "%s: log lines with a key twice:\n%s" % (
        where, "\n".join("%s  <- %s" % (keys, ln) for ln, keys in bad[:10]))
    return lines


def test_duplicate_key_detector():
    assert duplicate_keys('ts=1 level=info module=Leads msg="a module=x" module=Leads') == \
        ["module"]
    assert duplicate_keys('ts=1 level=info msg="module=x b=2" b=3') == []
    assert duplicate_keys('ts=1 a=1 b="x y" b=3') == ["b"]
    assert duplicate_keys('ts=1 module=Leads msg="x" err="module=y"') == []


def test_no_log_line_repeats_a_key(db, sim_factory, nginx_factory, webhook_factory,
                                   config_factory, run_program):
    sim = sim_factory("-q", "--modules", "Leads:30")
    ng = nginx_factory()
    overrides = {"webhook": {"fetch": True, "threads": 2}}
    wh = webhook_factory(overrides, sim=sim, nginx=ng)
    cfg = config_factory(overrides, sim=sim, nginx=ng)
    seen = 0
    for prog in ["batch/initial_sync", "batch/incremental_sync", "batch/renew_channel",
                 "batch/reconcile", "batch/status"]:
        res = run_program(prog, ["--verbose"], config=cfg, timeout=120)
        assert res.returncode == 0, (prog, res.returncode, res.stderr)
        lines = check_lines(res.stderr, prog)
        assert any("module=Leads" in ln for ln in lines) or prog == "batch/status", prog
        seen += len(lines)
    # Notifications the runs caused, applied by the webhook.
    sim.control("POST", "/mutate", {"module": "Leads", "count": 5, "seed": 3})
    assert sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]
    # A second, already-running copy.
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext('zcrm-sync:incremental_sync'),"
                        " hashtext('Leads'))")
        res = run_program("batch/incremental_sync", [], config=cfg)
        assert res.returncode == EX_TEMPFAIL
        check_lines(res.stderr, "incremental_sync, already running")
    finally:
        conn.close()
    wh.stop()
    seen += len(check_lines(wh.stderr_text(), "webhook"))
    assert seen > 20, "too few log lines to judge (%d)" % seen


@pytest.mark.parametrize("build", sorted(PROGRAMS))
def test_usage_errors_name_the_program_as_invoked(build, zcrm_env):
    exe = BIN_ROOT / build
    if not exe.exists():
        pytest.fail("%s is not built (run make)" % exe, pytrace=False)
    installed = PROGRAMS[build]
    link = zcrm_env.dir / installed
    os.symlink(exe, link)
    for path, name in [(link, installed), (exe, exe.name)]:
        for args in (["--no-such-option"], ["stray-argument"]):
            r = subprocess.run([str(path)] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=clean_env(),
                               timeout=scaled(30))
            assert r.returncode == EX_USAGE, (path, args, r.returncode, r.stderr)
            # Every program it names is itself.
            named = set(re.findall(r"[\w-]+(?= --help|: unexpected| \[OPTION\])", r.stderr))
            assert named == {name}, (path, args, r.stderr)
        r = subprocess.run([str(path), "--version"], stdout=subprocess.PIPE, text=True,
                           env=clean_env(), timeout=scaled(30))
        assert r.returncode == 0 and r.stdout.split()[0] == name, (path, r.stdout)


def test_already_running_is_a_warning(db, config_factory, run_program):
    cfg = config_factory()
    assert run_program("batch/status", [], config=cfg).returncode == 0  # migrates
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext('zcrm-sync:incremental_sync'),"
                        " hashtext('Leads'))")
        res = run_program("batch/incremental_sync", [], config=cfg)
    finally:
        conn.close()
    assert res.returncode == EX_TEMPFAIL, (res.returncode, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if "already running" in ln]
    assert len(lines) == 1, res.stderr
    assert " level=warn " in lines[0], lines[0]
    assert "level=error" not in res.stderr, res.stderr
