"""What the batch programs spend in Zoho API credits (issue 15, items 2 and
4), measured exactly with the simulator's meter (GET /_sim/credits):

  - one idle run of each cron program costs a fixed, asserted number of
    credits; one idle day of the shipped crontab (cron.d/zcrm-sync) is
    arithmetic over those figures and stays within 700 credits;
  - a one-hour webhook outage with 1,000 changes is caught up by
    incremental_sync by REST (a listing of ids and Modified_Time, then the
    newer ids fetched 100 a call) within 20 credits, and the table equals
    the truth;
  - [sync] bulk_threshold decides when a Bulk Read job is cheaper, and a
    listing page whose records all share one second falls back to one;
  - reconcile reads the deleted records since its last good run.

Every test starts from the shipped defaults (harness.SHIPPED_COSTS), not
the old habits the other tests keep.
"""

import datetime as dt

from harness import SHIPPED_COSTS
from truth import diff_table, format_diffs

MODULE = "Leads"
# cron.d/zcrm-sync: incremental_sync */5, renew_channel */10, reconcile daily
CRON_RUNS_PER_DAY = {"incremental_sync": 24 * 12, "renew_channel": 24 * 6, "reconcile": 1}


def conf(config_factory, sim, **over):
    o = dict(SHIPPED_COSTS)
    o.update(over)
    return config_factory(o, sim=sim, name="zcrm")


def spent(sim):
    """Credits spent since the last reset, by endpoint (zeros left out)."""
    m = sim.control("GET", "/credits")
    return {k: v for k, v in m["by_endpoint"].items() if v}


def reset(sim):
    sim.control("DELETE", "/credits")


def run_ok(run_program, path, config, args=()):
    r = run_program(path, args=args, config=config, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def start(sim_factory, config_factory, run_program, records=1500, **over):
    """A simulator whose records were all last modified days ago, and a
    successful initial_sync (no webhook: notifications go nowhere)."""
    anchor = int(dt.datetime.now(dt.timezone.utc).timestamp()) - 3 * 86400
    sim = sim_factory("-q", "--modules", "%s:%d" % (MODULE, records), "--bulk-polls", "1",
                      "--anchor", str(anchor))
    c = conf(config_factory, sim, **over)
    run_ok(run_program, "batch/initial_sync", c)
    return sim, c


def check_truth(sim, db):
    diffs = diff_table(db, sim.control("GET", "/truth/%s" % MODULE), tombstones="required")
    assert not diffs, format_diffs(diffs, 20)


def iso(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def edit_at(sim, ids, times):
    """Silent edits (no notification) with the given Modified_Time each."""
    for rid, t in zip(ids, times):
        sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                    {"values": {"Description": "edited at %d" % t, "Modified_Time": iso(t)},
                     "silent": True})


def live_ids(sim):
    return sorted(r["id"] for r in sim.control("GET", "/truth/%s" % MODULE)["records"])


def watermark(db):
    return db.value("SELECT floor(extract(epoch FROM watermark))::bigint FROM zcrm.sync_state"
                    " WHERE module = %s", MODULE)


def test_idle_runs_and_day(db, sim_factory, config_factory, run_program):
    """Each cron program's idle run costs exactly: incremental_sync 2
    (a 304 listing, an empty deleted-records page; 3 once an hour, with the
    fields metadata), renew_channel 0 while
    the channel was confirmed within check_interval, 1 past it, 2 when it
    renews; reconcile one id export. The shipped crontab's idle day is
    arithmetic over these, and within 700 credits."""
    sim, c = start(sim_factory, config_factory, run_program, records=300)
    day = {}  # credits a day, by program

    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    assert "0 changes listed in 1 page(s)" in r.stdout, r.stdout
    assert spent(sim) == {"records": 1, "deleted": 1}
    day["incremental_sync"] = CRON_RUNS_PER_DAY["incremental_sync"] * 2
    # The fields metadata (issue 16): read when [sync] schema_check (an
    # hour) has passed since the last read - initial_sync's, moments ago
    # here. Past it, one more credit; a day holds 24 such reads.
    db.execute("UPDATE zcrm.sync_state SET fields_checked = now() - interval '3601 seconds'")
    reset(sim)
    run_ok(run_program, "batch/incremental_sync", c)
    assert spent(sim) == {"records": 1, "deleted": 1, "fields": 1}
    run_ok(run_program, "batch/incremental_sync", c)
    assert spent(sim) == {"records": 2, "deleted": 2, "fields": 1}
    day["schema_check"] = 24 * 1

    # Confirmed live by initial_sync moments ago: Zoho is not asked.
    reset(sim)
    r = run_ok(run_program, "batch/renew_channel", c)
    assert "live (confirmed" in r.stdout, r.stdout
    assert spent(sim) == {}
    # Confirmed longer ago than check_interval (3600 s): one GET.
    db.execute("UPDATE zcrm.sync_state SET channel_checked = now() - interval '3601 seconds'")
    r = run_ok(run_program, "batch/renew_channel", c)
    assert " live, expires " in r.stdout, r.stdout
    assert spent(sim) == {"watch": 1}
    # A renewal (here forced: the channel is a day from its end): GET and PUT.
    reset(sim)
    r = run_ok(run_program, "batch/renew_channel", c, args=["--force"])
    assert " renewed, expires " in r.stdout, r.stdout
    assert spent(sim) == {"watch": 2}
    # A day of */10 runs (144): 0 credits each, but at most one check an
    # hour (24 GETs; a renewal's GET is one of them) and a PUT at each
    # renewal: the channel lives 86,100 s and is renewed 43,200 s before it
    # ends, so at most every 42,900 s (3 in a day, counting one at each end).
    day["renew_channel"] = 24 * 1 + 3 * 1

    reset(sim)
    r = run_ok(run_program, "batch/reconcile", c)
    m = spent(sim)
    # the fields metadata, count, one Bulk Read job of ids (create, status
    # polls, download), and the deleted records (no good run yet: all of
    # them, one empty page)
    assert m == {"fields": 1, "count": 1, "bulk_create": 50, "bulk_status": m.get("bulk_status"),
                 "bulk_result": 1, "deleted": 1}, m
    assert 1 <= m["bulk_status"] <= 3, m
    day["reconcile"] = CRON_RUNS_PER_DAY["reconcile"] * sum(m.values())

    total = sum(day.values())
    print("idle day per module: 288 x 2 (incremental_sync) + 24 x 1 (fields metadata)"
          " + 24 x 1 + 3 x 1 (renew_channel) + 1 x %d (reconcile) = %d"
          % (day["reconcile"], total))
    assert total <= 700, (total, day)


def test_outage_of_an_hour_caught_up_by_rest(db, sim_factory, config_factory, run_program):
    """The webhook misses an hour: 1,000 records changed 3 s apart. One
    incremental_sync lists them in 6 pages (200 a page, each page re-reading
    the second the last one ended on) and fetches them in 10 calls of 100
    ids: 16 Get Records calls, 1 deleted-records call, no Bulk Read job."""
    sim, c = start(sim_factory, config_factory, run_program, records=1500)
    wm = watermark(db)
    db.execute("UPDATE zcrm.sync_state SET watermark = watermark - interval '3600 seconds'")
    ids = live_ids(sim)[:1000]
    edit_at(sim, ids, [wm - 3590 + 3 * i for i in range(1000)])

    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    assert "1000 changes listed in 6 page(s), 1000 newer than ours" in r.stdout, r.stdout
    assert spent(sim) == {"records": 16, "deleted": 1}
    assert sum(spent(sim).values()) <= 20
    check_truth(sim, db)
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE source = 'fetch'") == 1000
    assert watermark(db) >= wm

    # Caught up: the next run lists nothing (304).
    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    assert "0 changes listed in 1 page(s)" in r.stdout, r.stdout
    assert spent(sim) == {"records": 1, "deleted": 1}


def test_bulk_threshold_decides(db, sim_factory, config_factory, run_program):
    """With bulk_threshold 5, listing stops once the REST path is projected
    past 5 credits (after 2 pages: 3 pages + 4 fetch calls) and one Bulk
    Read job exports the changes."""
    sim, c = start(sim_factory, config_factory, run_program, records=1500,
                   **{"sync.bulk_threshold": 5})
    wm = watermark(db)
    db.execute("UPDATE zcrm.sync_state SET watermark = watermark - interval '3600 seconds'")
    ids = live_ids(sim)[:1000]
    edit_at(sim, ids, [wm - 3590 + 3 * i for i in range(1000)])
    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    m = spent(sim)
    assert m == {"records": 2, "bulk_create": 50, "bulk_status": m.get("bulk_status"),
                 "bulk_result": 1, "deleted": 1}, m
    assert "1000 changed records exported" in r.stdout, r.stdout
    check_truth(sim, db)
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE source = 'bulk'"
                    " AND description LIKE 'edited at %%'") == 1000


def test_page_in_one_second_falls_back_to_bulk(db, sim_factory, config_factory, run_program):
    """201 records modified in the same second: a listing page cannot move
    its If-Modified-Since cursor past them, so the run exports with Bulk
    Read after one listing call."""
    sim, c = start(sim_factory, config_factory, run_program, records=600)
    wm = watermark(db)
    db.execute("UPDATE zcrm.sync_state SET watermark = watermark - interval '3600 seconds'")
    ids = live_ids(sim)[:201]
    edit_at(sim, ids, [wm - 1800] * 201)
    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    m = spent(sim)
    assert m == {"records": 1, "bulk_create": 50, "bulk_status": m.get("bulk_status"),
                 "bulk_result": 1, "deleted": 1}, m
    assert "201 changed records exported" in r.stdout, r.stdout
    check_truth(sim, db)


def test_reconcile_reads_deleted_since_last_good_run(db, sim_factory, config_factory,
                                                      run_program):
    """250 records deleted without notifications: the first reconcile (no
    good run before) reads the whole deleted list (2 pages) and tombstones
    them; the next reads only what was deleted since the first began (an
    empty page)."""
    sim, c = start(sim_factory, config_factory, run_program, records=600,
                   **{"sync.overlap": 0})
    sim.control("POST", "/mutate", {"module": MODULE, "count": 250, "seed": 7,
                                    "mix": {"delete": 1.0}, "silent": True})
    reset(sim)
    r = run_ok(run_program, "batch/reconcile", c)
    assert "gone=250" in r.stdout, r.stdout
    assert spent(sim)["deleted"] == 2
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE deleted_at IS NOT NULL") == 250
    check_truth(sim, db)

    reset(sim)
    r = run_ok(run_program, "batch/reconcile", c)
    assert "missing=0 older=0 gone=0" in r.stdout, r.stdout
    assert spent(sim)["deleted"] == 1
    check_truth(sim, db)


def test_silent_lapse_found_and_gap_closed_by_rest(db, sim_factory, config_factory,
                                                   run_program):
    """The channel lapses silently (Zoho drops it early). renew_channel
    does not see it while the last confirmation is recent (0 credits); once
    check_interval has passed it asks (1), finds it gone and re-enables it
    with a coverage gap (+1). incremental_sync catches up the changes made
    meanwhile by REST and closes the gap: 1 listing page, 1 fetch call, 1
    deleted-records page."""
    sim, c = start(sim_factory, config_factory, run_program, records=300)
    sim.control("POST", "/channels/1000000068001/expire")
    ids = live_ids(sim)[:7]
    for rid in ids:
        sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                    {"values": {"Description": "while lapsed"}, "silent": True})

    reset(sim)
    r = run_ok(run_program, "batch/renew_channel", c)
    assert "live (confirmed" in r.stdout, r.stdout
    assert spent(sim) == {}
    db.execute("UPDATE zcrm.sync_state SET channel_checked = now() - interval '3601 seconds'")
    r = run_ok(run_program, "batch/renew_channel", c)
    assert "re-enabled" in r.stdout, r.stdout
    assert spent(sim) == {"watch": 2}
    assert db.value("SELECT count(*) FROM zcrm.coverage_gaps WHERE closed_at IS NULL") == 1

    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    assert "7 changes listed in 1 page(s), 7 newer than ours" in r.stdout, r.stdout
    assert "1 gap(s) closed" in r.stdout, r.stdout
    assert spent(sim) == {"records": 2, "deleted": 1}
    assert db.value("SELECT count(*) FROM zcrm.coverage_gaps WHERE closed_at IS NULL") == 0
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE description = 'while lapsed'"
                    " AND source = 'fetch'") == 7
    check_truth(sim, db)


def test_listing_of_changes_already_held_stays_rest(db, sim_factory, config_factory,
                                                    run_program):
    """What the cost projection counts is the ids newer than ours, not the
    ids listed: a busy module's listing is mostly what the webhook already
    fetched. With bulk_threshold 12 and 1,000 changes, the first run stops
    listing after 4 pages (projected 5 pages + 8 fetch calls = 13) and
    exports; listed again once held, the same 1,000 cost 6 pages and no
    fetch."""
    sim, c = start(sim_factory, config_factory, run_program, records=1500,
                   **{"sync.bulk_threshold": 12})
    wm = watermark(db)
    db.execute("UPDATE zcrm.sync_state SET watermark = watermark - interval '3600 seconds'")
    edit_at(sim, live_ids(sim)[:1000], [wm - 3590 + 3 * i for i in range(1000)])
    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    m = spent(sim)
    assert m["records"] == 4 and m["bulk_create"] == 50, m
    assert "1000 changed records exported" in r.stdout, r.stdout

    db.execute("UPDATE zcrm.sync_state SET watermark = to_timestamp(%s) - interval '3600 seconds'",
               wm)
    reset(sim)
    r = run_ok(run_program, "batch/incremental_sync", c)
    assert "1000 changes listed in 6 page(s), 0 newer than ours" in r.stdout, r.stdout
    assert spent(sim) == {"records": 6, "deleted": 1}
    check_truth(sim, db)
