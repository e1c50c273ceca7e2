"""The first load at scale (issue 19): bulk_export asks for the jobs of the
next pages ([sync] bulk_jobs_ahead) while a page is downloaded and merged.

  - an export with jobs ahead ends equal to the simulator's truth, with
    one job per page, each page downloaded and merged once, in order, no
    more jobs at work at once than the key allows, and the watermark the
    first page's job's creation time; 0 is the old one-page-at-a-time;
  - a run killed -9 while it waits for a page with jobs ahead recorded,
    or while it downloads and merges a page, resumes at its page, reuses
    every job Zoho still has (the page's and those ahead: no page gets a
    second job), never merges a page twice (the two runs' pages add up to
    the export's) and converges to the truth;
  - with room in the key, the next module's first page is asked for while
    a module's export waits, and that module's export takes the job up.

No wall-clock limits: every wait is for a condition.
"""

import re

import pytest

from harness import scaled, wait_until
from test_line_items import our_credits, sim_credits
from truth import diff_table, format_diffs
from test_initial_sync import (MODULE, bulk_creations, check_truth, finish, jobs,  # noqa: F401
                               jobs_per_page, killed, parse_zoho_time, runs, settle,
                               stack, start_program, sync_state, table_exists)

RECORDS, PAGE = 2500, 500
PAGES = RECORDS // PAGE


def ahead_pairs(db):
    v = db.value("SELECT bulk_ahead FROM zcrm.sync_state WHERE module = %s", MODULE)
    return list(zip(v[0::2], v[1::2])) if v else []


def downloads(sim):
    """Result downloads served, in order; not one a fault held open (it is
    logged when it ends, whenever that is)."""
    return [r["path"] for r in sim.control("GET", "/requests")["requests"]
            if r["method"] == "GET" and r["path"].endswith("/result") and r.get("status") == 200
            and "fault" not in r]


@pytest.mark.parametrize("ahead", [0, 2])
def test_jobs_ahead_export_equal_truth(db, stack, zcrm_env, run_program, ahead):
    sim, conf = stack("--modules", "%s:%d" % (MODULE, RECORDS), "--page-size", str(PAGE),
                      "--bulk-polls", "2", "--seed", "19",
                      cfg={"sync": {"bulk_jobs_ahead": ahead}})
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "%d records in %d page(s)" % (RECORDS, PAGES) in r.stdout, r.stdout
    # A first load: every page COPYed straight into the table (bulkload.h).
    assert len(re.findall(r"page merged\".* direct=1 ", r.stderr)) == PAGES, r.stderr[-3000:]
    settle(sim, db)
    check_truth(sim, db, zcrm_env, tombstones="allowed")

    per_page = jobs_per_page(sim)
    assert sorted(per_page) == list(range(1, PAGES + 1))
    assert all(len(v) == 1 for v in per_page.values()), per_page
    assert len(bulk_creations(sim)) == PAGES
    # Each page downloaded once, in page order.
    order = {j["id"]: j["page"] for j in jobs(sim)}
    got = [order[p.split("/")[-2]] for p in downloads(sim)]
    assert got == list(range(1, PAGES + 1)), got
    stats = sim.control("GET", "/stats")
    assert stats["downloads"] == PAGES and stats["downloads_throttled"] == 0
    # At most the page in progress and `ahead` more at work at once; with
    # jobs ahead, some did run side by side.
    assert stats["jobs_running_max"] <= ahead + 1, stats
    if ahead:
        assert stats["jobs_running_max"] >= 2, stats
    (run,) = runs(db)
    assert (run["outcome"], run["pages"], run["rows_seen"]) == ("ok", PAGES, RECORDS)
    st = sync_state(db)
    page1 = [j for j in jobs(sim) if j["page"] == 1][0]
    assert st["watermark"] == parse_zoho_time(page1["created_time"])
    assert st["bulk_page"] is None and ahead_pairs(db) == []


@pytest.mark.parametrize("stage", ["waiting", "merging"])
def test_kill_9_with_jobs_ahead_resumes(db, stack, zcrm_env, run_program, stage):
    """kill -9 at page 3 with the jobs of pages 4 and 5 asked for: while
    page 3's job runs (waiting), or once its ZIP is being downloaded
    (merging). The re-run reuses all of them and merges each page once."""
    sim, conf = stack("--modules", "%s:%d" % (MODULE, RECORDS), "--page-size", str(PAGE),
                      # waiting: a job moves only when polled, so page 3's runs
                      # until page 3 is in progress and polled three times.
                      *(("--bulk-polls", "3", "--bulk-step-ms", "0") if stage == "waiting"
                        else ("--bulk-polls", "2")), "--seed", "20",
                      cfg={"sync": {"bulk_jobs_ahead": 2}})
    proc = start_program(zcrm_env, "batch/initial_sync", conf)

    if stage == "merging":
        # Page 3's download is held open for 30 s once it starts, so that
        # the kill finds it in progress (it took ~0.1 s: a poll could miss
        # it). Its job is asked for ahead, seconds before its turn.
        def page3_job():
            return [j["id"] for j in jobs(sim) if j["page"] == 3]
        wait_until(lambda: page3_job() or not proc.alive(), scaled(60), interval=0.005,
                   what="page 3's job")
        sim.control("POST", "/faults", {"rules": [
            {"match": "/crm/bulk/v6/read/%s/result" % page3_job()[0], "method": "GET",
             "delay_ms": 30000, "count": 1}]})

    def at_stage():
        if not table_exists(db):
            return False
        st = sync_state(db)
        # Every page's job asked for and recorded: no creation in flight.
        if (st["bulk_page"] or 0) != 3 or st["bulk_job_id"] is None or \
                [p for p, _ in ahead_pairs(db)] != [4, 5]:
            return False
        if stage == "waiting":
            return True
        # The held download has begun.
        return sim.control("GET", "/stats")["faults_injected"].get("delay", 0) == 1

    wait_until(at_stage, scaled(60), interval=0.005, what="page 3 %s" % stage, proc=proc,
               log=proc.stderr_path)
    killed(zcrm_env, db, proc)
    merged = db.value("SELECT count(*) FROM zcrm.leads")
    assert merged in ((2 * PAGE, 3 * PAGE) if stage == "merging" else (2 * PAGE,)), merged
    before = jobs_per_page(sim)
    assert sorted(before) == list(range(1, PAGES + 1))

    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming export" in r.stderr
    if merged == 2 * PAGE:
        assert "reusing the jobs asked for ahead by a killed run" in r.stderr
    settle(sim, db)
    check_truth(sim, db, zcrm_env, tombstones="allowed")

    after = jobs_per_page(sim)
    assert after == before, "a page got a second job: %s" % after
    assert len(bulk_creations(sim)) == PAGES
    first, second = runs(db)
    assert first["outcome"] == "abandoned" and second["outcome"] == "ok"
    # No page merged twice: the killed run's pages and the re-run's add up.
    assert (first["pages"] or 0) + second["pages"] == PAGES, (first, second)
    assert (first["rows_seen"] or 0) + second["rows_seen"] == RECORDS, (first, second)
    assert second["pages"] == PAGES - merged // PAGE
    # Each page downloaded once by the run that merged it; a page whose
    # download the kill cut short is downloaded again.
    order = {j["id"]: j["page"] for j in jobs(sim)}
    got = [order[p.split("/")[-2]] for p in downloads(sim)]
    assert got[:2] == [1, 2] and got[-2:] == [4, 5], got
    page1 = [j for j in jobs(sim) if j["page"] == 1][0]
    assert sync_state(db)["watermark"] == parse_zoho_time(page1["created_time"])


@pytest.mark.parametrize("ahead", [0, 1, 2])
def test_next_modules_first_pages_asked_for_ahead(db, stack, zcrm_env, run_program, ahead):
    """initial_sync of three one-page modules: the budget of [sync]
    bulk_jobs_ahead that a module's own pages leave goes to the first pages
    of the modules after it, each asked for (its channel enabled first)
    while the module before waits for its own job, so their minutes at
    Zoho overlap: with 1, two jobs at work at once, with 2 all three. Each
    module's export takes its job up (one job per module, no credit spent
    twice), the credits line says what was spent ahead, and every table
    equals the truth. 0 keeps one job at a time."""
    mods = ["Leads", "Contacts", "Deals"]
    sim, conf = stack("--modules", "Leads:300,Contacts:200,Deals:100", "--bulk-polls", "2",
                      "--seed", "23",
                      cfg={"sync": {"bulk_jobs_ahead": ahead, "modules": ", ".join(mods)}})
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(j["module"] for j in jobs(sim)) == sorted(mods)
    assert len(bulk_creations(sim)) == 3
    stats = sim.control("GET", "/stats")
    assert stats["jobs_running_max"] == ahead + 1, stats
    asked = {m.group(1): m for m in re.finditer(
        r'module=(\w+) msg="first page asked for ahead" during=(\w+)', r.stderr)}
    if ahead == 0:
        assert not asked and "asked for ahead)" not in r.stdout, r.stdout
    else:
        assert sorted(asked) == ["Contacts", "Deals"], r.stderr[-3000:]
        # Leads asks for Contacts (and with 2 for Deals too) before its own
        # page is merged; with 1, Contacts asks for Deals in its turn.
        assert asked["Contacts"].group(2) == "Leads"
        assert asked["Deals"].group(2) == ("Leads" if ahead == 2 else "Contacts")
        assert asked["Contacts"].start() < r.stderr.index("page merged"), r.stderr
        # Each job (50) after its module's channel (1).
        for mod, m in asked.items():
            on = re.search(r'module=%s msg="notification channel enabled"' % mod, r.stderr)
            assert on and on.start() < m.start(), r.stderr
        leads_ahead = 51 * (2 if ahead == 2 else 1)
        assert re.search(r"credits spent: \d+ \(%d of them on the next modules' first pages,"
                         r" asked for ahead\)" % leads_ahead, r.stdout), r.stdout
    assert our_credits(db) == sim_credits(sim)
    for module in mods:
        d = diff_table(db, sim.control("GET", "/truth/%s" % module), tombstones="allowed")
        assert not d, "%s: %s" % (module, format_diffs(d, 25))
    assert db.value("SELECT count(*) FROM zcrm.sync_state WHERE bulk_page IS NOT NULL") == 0
