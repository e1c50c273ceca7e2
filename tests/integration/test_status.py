"""zcrm-status tells the truth it can know (issue 14 item 11).

  - PostgreSQL down: the text and --json still say what is known without
    it (the config, the spool count of [sync] spool_dir, the database
    error), and the exit status is 75;
  - a run killed -9 is not "running": its row names a session
    (runs.backend_pid) that holds the job's advisory lock while the run
    lives; a row whose session holds none shows as "abandoned", and the
    next run of its kind writes "abandoned" into it;
  - a channel whose stored expiry has passed shows "expired", not
    "active", before renew_channel has run.
"""

import json
import signal

import pytest

from harness import alloc_port, scaled, start_program, wait_until

EX_TEMPFAIL = 75
MODULE = "Leads"


def status(run_program, cfg, *args):
    return run_program("batch/status", list(args), config=cfg, timeout=60)


# ------------------------------------------------------- PostgreSQL down

def test_status_without_postgres(db, config_factory, run_program, zcrm_env):
    cfg = config_factory({"database": {"conninfo": "host=127.0.0.1 port=%d dbname=zcrm "
                                                   "connect_timeout=2" % alloc_port()},
                          "sync": {"modules": "Leads, Contacts"}})
    spool = zcrm_env.dir / "spool"
    for i in range(3):
        (spool / ("1733500000.%d.json" % i)).write_text("{}")
    (spool / "not-a-spool-file.tmp").write_text("x")

    res = status(run_program, cfg)
    assert res.returncode == EX_TEMPFAIL, (res.returncode, res.stdout, res.stderr)
    assert "cannot connect to PostgreSQL" in res.stderr
    out = res.stdout
    assert "config: %s (schema zcrm; modules Leads, Contacts)" % cfg in out, out
    assert "database: UNAVAILABLE: " in out and "127.0.0.1" in out, out
    assert "spool: 3 file(s) waiting in %s" % spool in out, out

    res = status(run_program, cfg, "--json")
    assert res.returncode == EX_TEMPFAIL, (res.returncode, res.stdout, res.stderr)
    doc = json.loads(res.stdout)
    assert doc["database"]["ok"] is False
    assert "127.0.0.1" in doc["database"]["error"], doc
    assert doc["spool_files"] == 3
    assert doc["spool_dir"] == str(spool)
    assert doc["config"] == str(cfg)
    assert doc["modules"] is None
    assert doc["configured_modules"] == ["Leads", "Contacts"]


def test_status_with_postgres_says_so(db, config_factory, run_program):
    res = status(run_program, config_factory(), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["database"] == {"ok": True}
    assert [m["module"] for m in doc["modules"]] == [MODULE]


# ------------------------------------------------------------ killed runs

def last_run(run_program, cfg, kind):
    res = status(run_program, cfg, "--json")
    assert res.returncode == 0, res.stderr
    (m,) = json.loads(res.stdout)["modules"]
    return m.get("last_runs", {}).get(kind)


def test_killed_run_is_abandoned(db, config_factory, run_program, sim_factory, zcrm_env):
    sim = sim_factory("-q", "--modules", "Leads:20")
    cfg = config_factory(sim=sim)
    # The export's job creation hangs: the run is in the middle of its work.
    sim.control("POST", "/faults", {"rules": [
        {"match": "/crm/bulk/v6/read", "method": "POST", "delay_ms": 120000, "count": 1}]})
    proc = start_program(zcrm_env, "batch/initial_sync", cfg, ["--no-channel"])
    # Running, and as far as the hanging job creation: the module's
    # sync_state row (which status reports runs under) exists by then.
    wait_until(lambda: db.value("SELECT to_regclass('zcrm.runs') IS NOT NULL") and
               db.value("SELECT count(*) FROM zcrm.runs WHERE outcome = 'running'") == 1 and
               db.value("SELECT count(*) FROM zcrm.sync_state"
                        " WHERE module = 'Leads' AND bulk_page IS NOT NULL") == 1,
               scaled(60), interval=0.05, what="a running run", proc=proc)
    assert db.value("SELECT backend_pid IS NOT NULL FROM zcrm.runs") is True
    # Alive: running.
    assert last_run(run_program, cfg, "initial")["outcome"] == "running"

    proc.kill(signal.SIGKILL)
    proc.wait(timeout=scaled(10))
    proc.stop()
    zcrm_env.fail(proc.take_problems())
    pid = db.value("SELECT backend_pid FROM zcrm.runs")
    wait_until(lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid) == 0,
               scaled(30), interval=0.05, what="the killed program's session to end")

    # Dead: the row still says running, status says what it is.
    assert db.value("SELECT outcome FROM zcrm.runs") == "running"
    run = last_run(run_program, cfg, "initial")
    assert run["outcome"] == "abandoned", run
    res = status(run_program, cfg)
    line = [ln for ln in res.stdout.splitlines() if ln.split()[:1] == ["initial"]]
    assert line and line[0].split()[1] == "abandoned", res.stdout

    # The next run of its kind records it.
    sim.control("DELETE", "/faults")
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = db.query("SELECT outcome, message FROM zcrm.runs ORDER BY id")
    assert rows[0][0] == "abandoned" and "killed" in rows[0][1], rows
    assert rows[1][0] == "ok", rows
    assert last_run(run_program, cfg, "initial")["outcome"] == "ok"


def test_a_live_lock_holder_keeps_a_run_running(db, config_factory, run_program):
    """The rule read at status time: a row whose session holds an advisory
    lock is running; once that session ends it is abandoned (a session
    standing in for a program, so the moment of its end is the test's)."""
    cfg = config_factory()
    assert status(run_program, cfg).returncode == 0     # migrates
    conn = db.connect()
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_lock(hashtext('zcrm-sync:reconcile'), hashtext('Leads'))")
        cur.execute("INSERT INTO zcrm.runs (kind, module, backend_pid)"
                    " VALUES ('reconcile', 'Leads', pg_backend_pid())")
        cur.execute("INSERT INTO zcrm.sync_state (module) VALUES ('Leads')")
        assert last_run(run_program, cfg, "reconcile")["outcome"] == "running"
    finally:
        conn.close()
    wait_until(lambda: db.value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0,
               scaled(30), interval=0.05, what="the session's locks to go")
    assert last_run(run_program, cfg, "reconcile")["outcome"] == "abandoned"


# --------------------------------------------------------- expired channel

@pytest.mark.parametrize("offset,shown", [("-1 minute", "expired"), ("+1 hour", "active")])
def test_channel_past_its_expiry_is_expired(db, config_factory, run_program, offset, shown):
    cfg = config_factory()
    assert status(run_program, cfg).returncode == 0     # migrates
    db.execute("INSERT INTO zcrm.sync_state (module, channel_id, channel_expiry, channel_status)"
               " VALUES ('Leads', 1000000068001, now() + interval '%s', 'active')" % offset)
    res = status(run_program, cfg, "--json")
    (m,) = json.loads(res.stdout)["modules"]
    assert m["channel_status"] == shown, m
    res = status(run_program, cfg)
    cells = res.stdout.splitlines()[1].split()
    assert cells[0] == MODULE and cells[3] == shown, res.stdout
    # What renew_channel last saw is left as it was.
    assert db.value("SELECT channel_status FROM zcrm.sync_state") == "active"
