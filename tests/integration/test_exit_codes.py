"""Exit codes of failures that retrying cannot fix (issue 14 item 8,
docs/errors.md): cron retries 75 ("temporary") forever, so only what may
pass by itself exits 75.

  - a conninfo libpq cannot parse -> 78 EX_CONFIG, naming [database] conninfo;
  - PostgreSQL refusing us (wrong password: 28P01; no such role: 28000;
    a password asked for and none given) -> 77 EX_NOPERM;
  - PostgreSQL down (nobody on the port) -> still 75 EX_TEMPFAIL;
  - Zoho refusing the refresh token (never valid, or revoked after a
    working run) -> 77;
  - a module with more fields than a PostgreSQL table can have columns
    (1,600) -> 65 EX_DATAERR, with a message naming the module and the
    count, before any column is added.
"""

import pytest

from harness import alloc_port

EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78
PROGRAMS = ["batch/initial_sync", "batch/incremental_sync", "batch/renew_channel",
            "batch/reconcile", "batch/status"]
PW_ROLE = "zcrm_exit_pw"
PW = "right-password-0123"


def conninfo_with(db, **kw):
    parts = dict(p.split("=", 1) for p in db.conninfo.split())
    parts.update(kw)
    return " ".join("%s=%s" % (k, v) for k, v in parts.items())


def run_all(run_program, cfg):
    return {p: run_program(p, [], config=cfg, timeout=60) for p in PROGRAMS}


@pytest.fixture
def password_role(db):
    """A role that must give a password over TCP (a pg_hba.conf line for it
    alone, first, so that the session's trust rules stay for the rest)."""
    pg = db.pg
    db.execute("DO $$BEGIN CREATE ROLE %s LOGIN PASSWORD '%s'; EXCEPTION"
               " WHEN duplicate_object THEN NULL; END$$" % (PW_ROLE, PW))
    db.execute("GRANT ALL ON DATABASE %s TO %s" % (db.name, PW_ROLE))
    hba = pg.data / "pg_hba.conf"
    text = hba.read_text()
    line = "host all %s 127.0.0.1/32 scram-sha-256\n" % PW_ROLE
    if line not in text:
        st = hba.stat()
        hba.write_text(line + text)
        if st.st_uid != hba.stat().st_uid:
            import os
            os.chown(hba, st.st_uid, st.st_gid)
    pg.value("SELECT pg_reload_conf()", dbname="postgres")
    # The reload is asynchronous: wait until the rule is in force.
    from harness import scaled, wait_until
    wait_until(lambda: pg.value("SELECT count(*) FROM pg_hba_file_rules WHERE %s = ANY(user_name)",
                                PW_ROLE, dbname="postgres") == 1,
               scaled(10), what="pg_hba.conf reloaded")
    return PW_ROLE


@pytest.mark.parametrize("conninfo", ["host=127.0.0.1 port", "host='127.0.0.1",
                                      "hots=127.0.0.1", "postgresql://[::1"])
def test_conninfo_syntax_error_is_a_config_error(db, config_factory, run_program, conninfo):
    cfg = config_factory({"database": {"conninfo": conninfo}})
    for prog, res in run_all(run_program, cfg).items():
        assert res.returncode == EX_CONFIG, (prog, res.returncode, res.stderr)
        assert "cannot connect to PostgreSQL" in res.stderr
        assert "[database] conninfo" in res.stderr, res.stderr


def test_wrong_password_is_permanent(db, config_factory, run_program, password_role):
    good = config_factory({"database": {"conninfo": conninfo_with(
        db, user=password_role, password=PW)}}, name="good")
    res = run_program("batch/status", [], config=good)
    assert res.returncode == 0, res.stderr
    bad = config_factory({"database": {"conninfo": conninfo_with(
        db, user=password_role, password="wrong")}}, name="bad")
    for prog, res in run_all(run_program, bad).items():
        assert res.returncode == EX_NOPERM, (prog, res.returncode, res.stderr)
        assert "28P01" in res.stderr and "password authentication failed" in res.stderr, \
            res.stderr
        assert "LOCATION" not in res.stderr
    # No password at all, where one is needed: the same.
    none = config_factory({"database": {"conninfo": conninfo_with(
        db, user=password_role, passfile="/nonexistent")}}, name="none")
    res = run_program("batch/status", [], config=none)
    assert res.returncode == EX_NOPERM, (res.returncode, res.stderr)


def test_unknown_role_is_permanent(db, config_factory, run_program):
    cfg = config_factory({"database": {"conninfo": conninfo_with(db, user="zcrm_no_such_role")}})
    res = run_program("batch/status", [], config=cfg)
    assert res.returncode == EX_NOPERM, (res.returncode, res.stderr)
    assert "28000" in res.stderr and "zcrm_no_such_role" in res.stderr


def test_postgres_down_stays_temporary(db, config_factory, run_program):
    cfg = config_factory({"database": {"conninfo": conninfo_with(db, port=alloc_port(),
                                                                 connect_timeout=2)}})
    for prog, res in run_all(run_program, cfg).items():
        assert res.returncode == EX_TEMPFAIL, (prog, res.returncode, res.stderr)
        assert "cannot connect to PostgreSQL" in res.stderr


def test_zoho_refresh_token_refused_is_permanent(db, config_factory, run_program, sim_factory):
    sim = sim_factory("-q", "--modules", "Leads:5")
    cfg = config_factory({"zoho": {"refresh_token": "1000.wrong.refresh-token"}}, sim=sim)
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg)
    assert res.returncode == EX_NOPERM, (res.returncode, res.stderr)
    assert "invalid_code" in res.stderr
    assert db.value("SELECT to_regclass('zcrm.leads')") is None


def test_zoho_refresh_token_revoked_is_permanent(db, config_factory, run_program, sim_factory):
    """A working deployment whose refresh token is revoked: the cached
    access token stops working, the refresh is refused -> 77, run after run."""
    sim = sim_factory("-q", "--modules", "Leads:5")
    cfg = config_factory(sim=sim)
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg)
    assert res.returncode == 0, res.stderr
    sim.control("POST", "/expire_tokens")
    sim.control("POST", "/faults", {"rules": [
        {"match": "/oauth/v2/token", "status": 200, "body": {"error": "invalid_code"},
         "count": -1}]})
    for prog in ["batch/incremental_sync", "batch/incremental_sync", "batch/reconcile",
                 "batch/renew_channel", "batch/initial_sync"]:
        res = run_program(prog, [], config=cfg)
        assert res.returncode == EX_NOPERM, (prog, res.returncode, res.stderr)
        assert "invalid_code" in res.stderr


def fields_body(n):
    fields = [{"api_name": "id", "data_type": "bigint", "json_type": "string", "id": "1"},
              {"api_name": "Modified_Time", "data_type": "datetime", "json_type": "string",
               "id": "2"}]
    fields += [{"api_name": "F%04d" % i, "data_type": "text", "json_type": "string",
                "id": str(100 + i)} for i in range(n - len(fields))]
    return {"fields": fields}


def test_too_many_fields_is_permanent(db, config_factory, run_program, sim_factory):
    sim = sim_factory("-q", "--modules", "Leads:5")
    sim.control("POST", "/faults", {"rules": [
        {"match": "/crm/v6/settings/fields", "status": 200, "body": fields_body(1601),
         "count": -1}]})
    cfg = config_factory(sim=sim)
    for _ in range(2):
        res = run_program("batch/initial_sync", ["--no-channel"], config=cfg)
        assert res.returncode == EX_DATAERR, (res.returncode, res.stderr)
        line = [ln for ln in res.stderr.splitlines() if "more fields than" in ln]
        assert line, res.stderr
        assert "module=Leads" in line[0] and "fields=1601" in line[0], line
        # Refused before the table was touched.
        assert db.value("SELECT to_regclass('zcrm.leads')") is None
