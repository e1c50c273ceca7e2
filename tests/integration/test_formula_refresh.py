"""Formula and rollup fields refreshed on a schedule (issue 16): Zoho
recomputes them without moving Modified_Time and without a notification, so
reconcile re-reads them every [sync] formula_refresh seconds, in the Bulk
Read job it makes anyway for its id list.

  - initial_sync of a module with formulas (the simulator's --formulas: a
    double and a text formula, a currency rollup) gives typed columns equal
    to the truth;
  - the simulator recomputes (Modified_Time unchanged, no notification);
    reconcile with the refresh due makes every formula column equal to the
    truth, leaves modified_time, source and synced_at alone, and spends
    exactly what a reconcile without the refresh spends (one Bulk Read job);
    runs.details and the summary line carry the figures;
  - run again: not due, the export asks for id and Modified_Time only, and
    nothing is written; due again a little less than a day later (the
    nightly slack); --dry-run counts without writing; formula_refresh = 0
    turns it off;
  - a row fetched after the export job was created keeps its fetched
    (newer) formula values; the others take the export's.
"""

import json
import time

import pytest

from harness import Proc, clean_env, resolve_program, scaled, wait_until
from truth import diff_table, format_diffs

MODULE = "Leads"
FORMULAS = ("Age_Days", "Age_Label", "Rollup_Total")
COLS = ("age_days", "age_label", "rollup_total")


def start(sim_factory, config_factory, run_program, records=300, nginx=None, **over):
    """A simulator with formulas and a successful initial_sync (with nginx:
    notifications go to the webhook behind it, which fetches)."""
    sim = sim_factory("-q", "--modules", "%s:%d" % (MODULE, records), "--bulk-polls", "1",
                      "--formulas")
    conf = config_factory(over or None, sim=sim, nginx=nginx, name="zcrm")
    return sim, conf


def initial_sync(run_program, conf):
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    # Zoho gives a job's creation time in whole seconds, and a row written
    # in the second its export job is created counts as written after it
    # (kept, the conservative tie). A first load COPYed straight in ends
    # fast enough for the reconcile's job to fall in that second: let it
    # tick over, as hours do between a first load and a nightly reconcile.
    time.sleep(1.1)


def truth(sim):
    return sim.control("GET", "/truth/%s" % MODULE)


def check_truth(sim, db):
    diffs = diff_table(db, truth(sim), tombstones="required")
    assert not diffs, format_diffs(diffs, 20)


def formula_diffs(sim, db):
    return [d for d in diff_table(db, truth(sim), tombstones="required")
            if d.field in FORMULAS]


def spent(sim):
    m = sim.control("GET", "/credits")
    return {k: v for k, v in m["by_endpoint"].items() if v}


def system_columns(db):
    return db.query("SELECT id, modified_time, source, synced_at, deleted_at FROM zcrm.leads"
                    " ORDER BY id")


def last_details(db):
    d = db.value("SELECT details FROM zcrm.runs WHERE kind = 'reconcile' ORDER BY id DESC"
                 " LIMIT 1")
    return d if isinstance(d, dict) else json.loads(d)


def reconcile(run_program, conf, env=None):
    r = run_program("batch/reconcile", config=conf, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def last_job_fields(sim):
    jobs = [j for j in sim.control("GET", "/jobs")["jobs"] if j["module"] == MODULE]
    return jobs[-1]["fields"]


def test_reconcile_refreshes_formulas_in_its_own_export(db, sim_factory, config_factory,
                                                        run_program):
    sim, conf = start(sim_factory, config_factory, run_program)
    initial_sync(run_program, conf)
    types = dict(db.query("SELECT column_name, data_type FROM information_schema.columns"
                          " WHERE table_schema = 'zcrm' AND table_name = 'leads'"
                          " AND column_name = ANY(%s)", list(COLS)))
    assert types == {"age_days": "numeric", "age_label": "text", "rollup_total": "numeric"}
    check_truth(sim, db)
    before = system_columns(db)
    old_truth = truth(sim)
    queued = sim.control("GET", "/stats").get("notifications_queued", 0)

    out = sim.control("POST", "/formulas/recompute", {})
    assert out["records"] == 300
    new_truth = truth(sim)
    assert [(r["id"], r["Modified_Time"]) for r in new_truth["records"]] == \
        [(r["id"], r["Modified_Time"]) for r in old_truth["records"]]
    assert sim.control("GET", "/stats").get("notifications_queued", 0) == queued
    stale = formula_diffs(sim, db)
    assert len(stale) == 3 * 300, format_diffs(stale, 5)

    sim.control("DELETE", "/credits")
    r = reconcile(run_program, conf)
    refresh_cost = spent(sim)
    assert "missing=0 older=0 gone=0" in r.stdout, r.stdout
    assert "formulas_refreshed=300 formulas_kept=0" in r.stdout, r.stdout
    assert last_job_fields(sim) == ["Modified_Time", *FORMULAS]
    check_truth(sim, db)
    assert system_columns(db) == before, "the refresh touched modified_time/source/synced_at"
    assert last_details(db)["formulas"] == {"fields": 3, "due": True, "exported": 300,
                                            "refreshed": 300, "kept": 0}
    assert db.value("SELECT formula_refreshed_at IS NOT NULL FROM zcrm.sync_state"
                    " WHERE module = %s", MODULE)

    # Not due now: the export is reconcile's own (id and Modified_Time), no
    # row is written, and the refresh above cost no more than this.
    sim.control("POST", "/formulas/recompute", {})
    sim.control("DELETE", "/credits")
    r = reconcile(run_program, conf)
    plain_cost = spent(sim)
    assert "formulas=not-due" in r.stdout, r.stdout
    assert last_job_fields(sim) == ["Modified_Time"]
    assert last_details(db)["formulas"] == {"fields": 3, "due": False, "exported": 0,
                                            "refreshed": 0, "kept": 0}
    assert len(formula_diffs(sim, db)) == 3 * 300
    assert system_columns(db) == before
    # Bulk status polls vary with timing (1..3); every other call is the same
    # (the fields metadata, read by every reconcile since issue 16, too).
    assert {k: v for k, v in refresh_cost.items() if k != "bulk_status"} == \
        {k: v for k, v in plain_cost.items() if k != "bulk_status"} == \
        {"fields": 1, "count": 1, "bulk_create": 50, "bulk_result": 1, "deleted": 1}, \
        (refresh_cost, plain_cost)
    assert refresh_cost["bulk_create"] == 50

    # A day later less half an hour (within the nightly slack): due again.
    db.execute("UPDATE zcrm.sync_state SET formula_refreshed_at = now()"
               " - interval '86400 seconds' + interval '30 minutes'")
    r = reconcile(run_program, conf)
    assert "formulas_refreshed=300" in r.stdout, r.stdout
    check_truth(sim, db)
    assert system_columns(db) == before

    # --dry-run: counts what a refresh would write, writes and records nothing.
    sim.control("POST", "/formulas/recompute", {})
    db.execute("UPDATE zcrm.sync_state SET formula_refreshed_at = NULL")
    r = run_program("batch/reconcile", args=["--dry-run"], config=conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "dry run" in r.stdout and "formulas_refreshed=300" in r.stdout, r.stdout
    assert len(formula_diffs(sim, db)) == 3 * 300
    assert db.value("SELECT formula_refreshed_at FROM zcrm.sync_state WHERE module = %s",
                    MODULE) is None

    # formula_refresh = 0: never, whatever the last refresh.
    r = reconcile(run_program, conf, env={"ZCRM_SYNC_FORMULA_REFRESH": "0"})
    assert "formulas=not-due" in r.stdout, r.stdout
    assert len(formula_diffs(sim, db)) == 3 * 300


def test_row_fetched_after_the_job_keeps_its_values(db, sim_factory, config_factory,
                                                    nginx_factory, webhook_factory,
                                                    run_program, zcrm_env):
    """The export is read after one recompute and before another; a row
    fetched by id after the job was created (so with the second's values)
    keeps them; every other row takes the export's."""
    ng = nginx_factory()
    sim, conf = start(sim_factory, config_factory, run_program, records=120, nginx=ng,
                      **{"zoho.max_retries": 50, "zoho.retry_budget": 900,
                         "webhook.fetch": True, "webhook.fetch_delay": 0})
    webhook_factory(config=conf, nginx=ng)
    initial_sync(run_program, conf)
    assert sim.control("POST", "/flush", {"timeout": scaled(60)})["idle"]
    # Zoho stamps a job's creation in whole seconds: a row written in the
    # second the job is created counts as written after it (and is kept).
    # Here only the fetched row must be; the rest were loaded a second ago.
    wait_until(lambda: db.value("SELECT clock_timestamp() >= date_trunc('second',"
                                " max(synced_at)) + interval '1 second' FROM zcrm.leads"),
               scaled(10), what="a second after the load")
    sim.control("POST", "/formulas/recompute", {})
    exported_truth = {r["id"]: r for r in truth(sim)["records"]}
    ids = sorted(exported_truth)
    fetched = ids[7]
    # Jobs advance by time alone (snapshot, then completed); the program
    # cannot see it until the 429s stop.
    sim.control("POST", "/config", {"bulk_polls": 2, "bulk_step_ms": 200})
    sim.control("POST", "/faults", {"rules": [{"match": "/crm/bulk/v6/read/", "method": "GET",
                                               "status": 429, "count": -1, "retry_after": 1}]})
    exe = resolve_program("batch/reconcile")
    proc = Proc("reconcile-bg", [exe, "--config", conf], zcrm_env.dir, env=clean_env(),
                marker=str(conf) + " reconcile-bg")
    zcrm_env.add_log("reconcile-bg stderr", proc.stderr_path, since=0)
    proc.start()
    try:
        def snapshot_taken():
            jobs = [j for j in sim.control("GET", "/jobs")["jobs"] if j["module"] == MODULE]
            return jobs and jobs[-1]["state"] == "COMPLETED" and \
                jobs[-1]["fields"] == ["Modified_Time", *FORMULAS]

        wait_until(snapshot_taken, scaled(60), what="the export's snapshot", proc=proc)
        sim.control("POST", "/formulas/recompute", {})
        # A fetch by id after the job was created: Zoho notifies an edit
        # that leaves Modified_Time (and every value) as it was, and the
        # webhook fetches the record, recomputed formulas included.
        sim.control("PATCH", "/records/%s/%s" % (MODULE, fetched),
                    {"values": {"Modified_Time": exported_truth[fetched]["Modified_Time"]}})

        def was_fetched():
            return db.value("SELECT source FROM zcrm.leads WHERE id = %s", int(fetched)) == \
                "fetch"

        wait_until(was_fetched, scaled(60), what="the webhook to fetch the record")
        sim.control("DELETE", "/faults")
        proc.wait(timeout=scaled(180))
        assert proc.stop() == 0
    except Exception:
        proc.stop()
        raise
    zcrm_env.fail(proc.take_problems())
    d = last_details(db)
    assert d["formulas"] == {"fields": 3, "due": True, "exported": 120, "refreshed": 119,
                             "kept": 1}, d
    now_truth = {r["id"]: r for r in truth(sim)["records"]}
    got = {str(i): (float(a), b, float(c)) for i, a, b, c in
           db.query("SELECT id, age_days, age_label, rollup_total FROM zcrm.leads")}
    # The fetched row: the recomputed values, as Zoho now has them.
    t = now_truth[fetched]
    assert got[fetched] == (pytest.approx(t["Age_Days"]), t["Age_Label"],
                            pytest.approx(t["Rollup_Total"])), got[fetched]
    assert t["Age_Label"] != exported_truth[fetched]["Age_Label"]
    # The others: the export's (read before the recompute).
    for rid in ids:
        if rid != fetched:
            e = exported_truth[rid]
            assert got[rid] == (pytest.approx(e["Age_Days"]), e["Age_Label"],
                                pytest.approx(e["Rollup_Total"])), (rid, got[rid], e)
