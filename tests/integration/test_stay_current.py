"""Staying current after the initial sync (issue #5): the webhook, and the
cron programs incremental_sync, renew_channel, reconcile and status, against
the simulator, a real PostgreSQL and the webhook behind nginx (fetch on).

Every test first runs batch/initial_sync, then:

  - a create, an edit and a delete made in the simulator reach the table
    through the webhook alone, as full records equal to the truth;
  - an expired channel: renew_channel re-enables it and opens a coverage
    gap; the changes made while notifications were not delivered are
    brought by incremental_sync, which closes the gap;
  - notifications dropped for a while: incremental_sync brings every change
    and every delete;
  - a delete made while the webhook was down is tombstoned by
    incremental_sync from the deleted-records API;
  - reconcile repairs a row changed behind our back and a row removed from
    the table; --dry-run changes nothing but reports the drift (stdout and
    zcrm.runs, outcome dry-run, details JSON);
  - two incremental_sync started together: one works, the other exits 75
    "already running";
  - ids left dirty by failed fetches (the simulator answers 500 for a while)
    are fetched later by the webhook's housekeeping: none dropped;
  - batch/status prints a table and --json with the watermark, channel
    expiry, dirty count, open gaps and last runs.

The field-by-field comparison with the simulator's truth is truth.py's. No
wall-clock limits: waits poll for a condition, bounded only so that a hang
fails instead of blocking the suite.
"""

import datetime as dt
import json
import signal
import time
import urllib.parse

import pytest

from harness import CHANNEL_ID, finish, scaled, start_program, wait_until
from harness import http as harness_http
from truth import diff_table, dump_truth, format_diffs

EX_TEMPFAIL = 75
MODULE = "Leads"


# ----------------------------------------------------------------- helpers

class Stack:
    """The simulator, nginx, the webhook behind it, and the config file the
    batch programs share with the webhook."""

    def __init__(self, sim, nginx, webhook, conf):
        self.sim, self.nginx, self.webhook, self.conf = sim, nginx, webhook, conf


@pytest.fixture
def stack(db, sim_stack, run_program):
    """stack(records=600, *sim_args, cfg=None) -> Stack, after a successful
    batch/initial_sync and with every notification of it applied."""

    def make(records=600, *sim_args, cfg=None):
        sim, ng, wh, conf = sim_stack("--modules", "%s:%d" % (MODULE, records),
                                      "--bulk-polls", "1", *sim_args, cfg=cfg)
        r = run_program("batch/initial_sync", config=conf, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
        settle(sim, db)
        return Stack(sim, ng, wh, conf)

    return make


def settle(sim, db, timeout=60):
    """Every notification delivered, and the webhook done with them: the
    inbox processed and no id left dirty."""
    assert sim.control("POST", "/flush", {"timeout": scaled(timeout)})["idle"], \
        "simulator deliveries still pending"

    def done():
        pending = db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NULL")
        dirty = db.value("SELECT count(*) FROM zcrm.to_fetch WHERE module = %s", MODULE)
        return pending == 0 and dirty == 0

    wait_until(done, scaled(timeout), interval=0.1, what="webhook to apply every notification")


def truth_of(sim):
    return sim.control("GET", "/truth/%s" % MODULE)


def check_truth(sim, db, zcrm_env, tombstones="required"):
    """The table equals the simulator's truth, typed, every field."""
    truth = truth_of(sim)
    diffs = diff_table(db, truth, tombstones=tombstones)
    if diffs:
        path = zcrm_env.dir / "truth.json"
        dump_truth(truth, path)
        pytest.fail("zcrm.leads differs from the simulator's truth (truth in %s): %s"
                    % (path, format_diffs(diffs, 25)), pytrace=False)
    return truth


def wait_truth(sim, db, zcrm_env, timeout=60, tombstones="required"):
    """Poll until the table equals the truth; on timeout, show the diff."""
    last = {}

    def equal():
        last["diffs"] = diff_table(db, truth_of(sim), tombstones=tombstones, limit=50)
        return not last["diffs"]

    try:
        wait_until(equal, scaled(timeout), interval=0.2, what="table to equal the truth")
    except AssertionError as e:
        pytest.fail("%s: %s" % (e, format_diffs(last.get("diffs") or [], 25)), pytrace=False)
    return check_truth(sim, db, zcrm_env, tombstones)


def sync_state(db):
    cols = ("watermark", "channel_id", "channel_expiry", "channel_status", "bulk_kind",
            "bulk_page", "last_error")
    rows = db.query("SELECT %s FROM zcrm.sync_state WHERE module = %%s" % ", ".join(cols),
                    MODULE)
    assert rows, "no sync_state row for %s" % MODULE
    return dict(zip(cols, rows[0]))


def runs(db, kind=None):
    cols = ("id", "kind", "outcome", "pages", "rows_seen", "rows_applied", "rows_deleted",
            "details", "message", "finished_at")
    sql = "SELECT %s FROM zcrm.runs" % ", ".join(cols)
    if kind:
        return [dict(zip(cols, r)) for r in db.query(sql + " WHERE kind = %s ORDER BY id", kind)]
    return [dict(zip(cols, r)) for r in db.query(sql + " ORDER BY id")]


def gaps(db):
    cols = ("id", "gap_from", "gap_to", "reason", "opened_at", "closed_at", "closed_by")
    return [dict(zip(cols, r)) for r in db.query(
        "SELECT %s FROM zcrm.coverage_gaps WHERE module = %%s ORDER BY id" % ", ".join(cols),
        MODULE)]


def row(db, rid, cols="deleted_at, source, modified_time"):
    rows = db.query("SELECT %s FROM zcrm.leads WHERE id = %%s" % cols, int(rid))
    return rows[0] if rows else None


def live_ids(truth):
    return [r["id"] for r in truth["records"]]


def zoho_time(s):
    return dt.datetime.fromisoformat(s).astimezone(dt.timezone.utc)


def notifications_since(sim, index, kind="notify"):
    return [n for n in sim.control("GET", "/notifications?since=%d&kind=%s" % (index, kind))
            ["notifications"]]


def notify_index(sim):
    return sim.control("GET", "/notifications?since=0")["next"]


def make_changes(sim, ids, tag, seed, count=30):
    """A burst of /_sim/mutate (creates, updates, deletes) plus one explicit
    create, two edits and one delete. Returns {op: set(ids)}."""
    changed = {"create": set(), "update": set(), "delete": set()}
    res = sim.control("POST", "/mutate", {"module": MODULE, "count": count, "seed": seed,
                                          "mix": {"create": 0.3, "update": 0.5,
                                                  "delete": 0.2}})
    for c in res["changes"]:
        changed[c["op"]].add(c["id"])
    rec = sim.control("POST", "/records/%s" % MODULE, {"values": {
        "Last_Name": "Made %s, \"quoted\"" % tag, "Company": "Gap\nCo"}})
    changed["create"].add(rec["id"])
    for rid in (ids[3], ids[-4]):
        if rid not in changed["delete"]:
            sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                        {"values": {"Description": "edited: %s" % tag, "City": "Zürich"}})
            changed["update"].add(rid)
    victim = ids[7]
    if victim not in changed["delete"]:
        sim.control("DELETE", "/records/%s/%s" % (MODULE, victim))
        changed["delete"].add(victim)
    return changed


def incremental(run_program, conf, timeout=180):
    r = run_program("batch/incremental_sync", config=conf, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


# ------------------------------------------------------------------- tests

def test_webhook_alone_brings_create_edit_delete(db, stack, zcrm_env):
    """After the initial sync, a create, an edit and a delete in the
    simulator reach the table through the webhook alone: full records equal
    to the truth, the delete a tombstone; no batch program ran."""
    st = stack(500)
    truth0 = truth_of(st.sim)
    ids = live_ids(truth0)
    before = notify_index(st.sim)

    created = st.sim.control("POST", "/records/%s" % MODULE, {"values": {
        "Last_Name": "O'Brien, \"Jr\"", "Company": "Acme\r\nWidgets", "City": "Zürich",
        "Description": "tab\there, emoji \U0001F600, back\\slash"}})
    edited = ids[42]
    st.sim.control("PATCH", "/records/%s/%s" % (MODULE, edited), {"values": {
        "Description": "edited by the test", "Phone": "02108", "City": None}})
    regenerated = ids[99]
    st.sim.control("PATCH", "/records/%s/%s" % (MODULE, regenerated), {"values": {}})
    converted = next(r["id"] for r in truth0["records"][100:]
                     if not r.get("Converted__s"))
    st.sim.control("PATCH", "/records/%s/%s" % (MODULE, converted), {"convert": True})
    deleted = ids[7]
    st.sim.control("DELETE", "/records/%s/%s" % (MODULE, deleted))

    truth = wait_truth(st.sim, db, zcrm_env)
    # The changes came as notifications, and the webhook fetched full records.
    ops = {n["body"]["operation"] for n in notifications_since(st.sim, before)
           if isinstance(n.get("body"), dict)}
    assert {"insert", "update", "delete"} <= ops, ops
    assert row(db, created["id"])[:2] == (None, "fetch")
    assert row(db, edited)[:2] == (None, "fetch")
    assert row(db, regenerated)[:2] == (None, "fetch")
    assert row(db, converted)[:2] == (None, "fetch")
    deleted_at, source, _ = row(db, deleted)
    assert deleted_at is not None and source == "notify"
    assert db.value("SELECT last_name FROM zcrm.leads WHERE id = %s",
                    int(created["id"])) == "O'Brien, \"Jr\""
    assert len(truth["records"]) == 500
    # No batch program ran after the initial sync.
    assert [r["kind"] for r in runs(db)] == ["initial"]
    settle(st.sim, db)


def test_expired_channel_renewed_gap_closed_by_incremental(db, stack, zcrm_env, run_program):
    """The channel expires; changes made meanwhile are not notified.
    renew_channel re-enables it and records a coverage gap; incremental_sync
    brings the changes and closes the gap."""
    st = stack(600)
    wm0 = sync_state(db)["watermark"]
    ids = live_ids(truth_of(st.sim))
    # The last check Zoho said live, 0.9 s into a second: the lapse must not
    # be read back rounded up to the next second (it once was, 1 run in 3).
    checked = db.value("UPDATE zcrm.sync_state SET channel_checked ="
                       " date_trunc('second', now()) - interval '0.1 s'"
                       " WHERE module = %s RETURNING channel_checked", MODULE)
    st.sim.control("POST", "/channels/%s/expire" % CHANNEL_ID)
    before = notify_index(st.sim)
    expired_at = dt.datetime.now(dt.timezone.utc)

    changed = make_changes(st.sim, ids, "while expired", seed=21)
    assert st.sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]
    assert notifications_since(st.sim, before) == [], "an expired channel was notified"
    assert diff_table(db, truth_of(st.sim), limit=1), "the changes reached the table anyway"
    assert gaps(db) == []

    r = run_program("batch/renew_channel", config=st.conf)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-enabled" in r.stdout, r.stdout
    s = sync_state(db)
    assert s["channel_status"] == "active"
    assert s["channel_expiry"] > dt.datetime.now(dt.timezone.utc)
    live = [c for c in st.sim.control("GET", "/channels")["channels"]
            if str(c.get("channel_id")) == CHANNEL_ID and not c.get("expired")]
    assert live, st.sim.control("GET", "/channels")
    (gap,) = gaps(db)
    assert gap["closed_at"] is None
    assert gap["reason"] in ("channel expired", "channel missing"), gap
    # The gap starts no later than the lapse and ends at the re-enable.
    assert gap["gap_from"] <= checked <= expired_at, (gap, checked, expired_at)
    assert gap["gap_to"] is not None and gap["gap_to"] >= gap["gap_from"]

    r = incremental(run_program, st.conf)
    assert "1 gap(s) closed" in r.stdout, r.stdout
    (run,) = runs(db, "incremental")
    assert run["outcome"] == "ok"
    (gap,) = gaps(db)
    assert gap["closed_at"] is not None and gap["closed_by"] == run["id"], gap
    assert sync_state(db)["watermark"] >= wm0
    truth = check_truth(st.sim, db, zcrm_env)
    deleted = {e["id"] for e in truth["deleted"]}
    assert changed["delete"] <= deleted
    for rid in changed["delete"]:
        assert row(db, rid)[0] is not None, rid
    for rid in changed["update"] - changed["delete"]:
        assert row(db, rid)[0] is None, rid
    settle(st.sim, db)

    # A live channel far from expiry is left alone; --force renews it; no new gap.
    r = run_program("batch/renew_channel", config=st.conf)
    assert r.returncode == 0 and " live, expires " in r.stdout, r.stdout
    r = run_program("batch/renew_channel", args=["--force"], config=st.conf)
    assert r.returncode == 0 and " renewed, expires " in r.stdout, r.stdout
    assert len(gaps(db)) == 1 and sync_state(db)["channel_status"] == "active"


def test_dropped_notifications_caught_up_by_incremental(db, stack, zcrm_env, run_program):
    """Every notification dropped for a while: incremental_sync brings every
    create, update and delete made meanwhile."""
    st = stack(600)
    ids = live_ids(truth_of(st.sim))
    st.sim.control("POST", "/faults", {"notify": {"drop": 1.0}, "seed": 4})
    before = notify_index(st.sim)
    changed = make_changes(st.sim, ids, "dropped", seed=31, count=40)
    assert st.sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]
    sent = notifications_since(st.sim, before)
    assert sent and all(n["dropped"] for n in sent), sent[:3]
    st.sim.control("DELETE", "/faults")
    missing = diff_table(db, truth_of(st.sim))
    assert missing, "the changes reached the table although every notification was dropped"

    r = incremental(run_program, st.conf)
    truth = check_truth(st.sim, db, zcrm_env)
    assert changed["delete"] <= {e["id"] for e in truth["deleted"]}
    for rid in changed["delete"]:
        assert row(db, rid)[0] is not None, rid
    for rid in changed["create"] - changed["delete"]:
        assert row(db, rid)[:2] == (None, "bulk"), rid
    (run,) = runs(db, "incremental")
    assert run["outcome"] == "ok" and run["rows_deleted"] >= len(changed["delete"]), run
    assert "0 gap(s) closed" in r.stdout
    settle(st.sim, db)


def test_delete_while_webhook_down_tombstoned_by_incremental(db, stack, zcrm_env, run_program):
    """A record deleted while the webhook is down (the notification fails at
    nginx) is tombstoned by incremental_sync from the deleted-records API —
    with a purged record and a silent mass delete beside it, so that the
    deleted list takes more than one page (200 a page)."""
    st = stack(700)
    ids = live_ids(truth_of(st.sim))
    victim, purged = ids[11], ids[12]
    st.webhook.stop()
    before = notify_index(st.sim)
    gone = st.sim.control("DELETE", "/records/%s/%s" % (MODULE, victim))
    st.sim.control("DELETE", "/records/%s/%s?permanent=1" % (MODULE, purged))
    mass = st.sim.control("POST", "/mutate", {"module": MODULE, "count": 230, "seed": 5,
                                              "mix": {"delete": 1.0}, "silent": True})
    mass_ids = {c["id"] for c in mass["changes"] if c["op"] == "delete"}
    assert len(mass_ids) == 230 and not mass_ids & {victim, purged}
    assert st.sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]
    sent = notifications_since(st.sim, before)
    assert len(sent) == 2 and all(n["status"] != 200 for n in sent), sent
    st.webhook.start()
    assert row(db, victim)[0] is None, "tombstoned without a notification?"
    assert db.value("SELECT count(*) FROM zcrm.inbox WHERE %s = ANY(ids)", int(victim)) == 0

    r = incremental(run_program, st.conf)
    assert "232 deletes seen (232 tombstoned)" in r.stdout, r.stdout
    deleted_at, source, _ = row(db, victim)
    assert deleted_at == zoho_time(gone["deleted_time"]), (deleted_at, gone)
    assert source == "fetch"
    assert row(db, purged)[0] is not None
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE deleted_at IS NOT NULL") == 232
    check_truth(st.sim, db, zcrm_env)
    # A second run finds nothing more to do.
    r = incremental(run_program, st.conf)
    assert "(0 tombstoned)" in r.stdout, r.stdout
    check_truth(st.sim, db, zcrm_env)


def table_snapshot(db):
    return db.query("SELECT t::text FROM zcrm.leads t ORDER BY id")


def test_reconcile_repairs_drift_dry_run_changes_nothing(db, stack, zcrm_env, run_program):
    """A row changed behind our back (a field, and an older modified_time),
    a row removed from the table, and a record deleted in Zoho without any
    notification: reconcile --dry-run reports them and changes nothing;
    reconcile repairs them."""
    st = stack(700)
    ids = live_ids(truth_of(st.sim))
    changed, removed, silently_deleted = ids[5], ids[250], ids[600]
    n = db.execute("UPDATE zcrm.leads SET city = 'Drifted', modified_time = modified_time"
                   " - interval '3 days' WHERE id = %s", int(changed))
    assert n == 1
    assert db.execute("DELETE FROM zcrm.leads WHERE id = %s", int(removed)) == 1
    st.sim.control("DELETE", "/records/%s/%s?silent=1" % (MODULE, silently_deleted))
    snap = table_snapshot(db)
    state = db.query("SELECT watermark, channel_status, table_ready FROM zcrm.sync_state")

    r = run_program("batch/reconcile", args=["--dry-run"], config=st.conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for part in ("zoho_count=699", "exported=699", "ours_live=699", "missing=1", "older=1",
                 "gone=1", "dry run", "fetched=0", "tombstoned=0"):
        assert part in out, (part, out)
    assert table_snapshot(db) == snap, "--dry-run changed the table"
    assert db.query("SELECT watermark, channel_status, table_ready FROM zcrm.sync_state") == state
    (dry,) = runs(db, "reconcile")
    assert dry["outcome"] == "dry-run" and dry["finished_at"] is not None, dry
    d = dry["details"] if isinstance(dry["details"], dict) else json.loads(dry["details"])
    assert d == {"zoho_count": 699, "exported": 699, "ours_live": 699, "missing": 1,
                 "older": 1, "gone": 1, "fetched": 0, "tombstoned": 0, "unexplained": 0, "lines_stale": 0}, d

    r = run_program("batch/reconcile", config=st.conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "missing=1 older=1 gone=1" in r.stdout and "dry run" not in r.stdout, r.stdout
    runs_ = runs(db, "reconcile")
    assert [x["outcome"] for x in runs_] == ["dry-run", "ok"]
    d = runs_[1]["details"]
    d = d if isinstance(d, dict) else json.loads(d)
    assert (d["missing"], d["older"], d["gone"], d["fetched"], d["tombstoned"],
            d["unexplained"]) == (1, 1, 1, 2, 1, 0), d
    assert row(db, changed)[:2] == (None, "fetch")
    assert row(db, removed)[:2] == (None, "fetch")
    assert row(db, silently_deleted)[0] is not None
    check_truth(st.sim, db, zcrm_env)

    # Nothing left to repair.
    r = run_program("batch/reconcile", args=["--dry-run"], config=st.conf, timeout=180)
    assert r.returncode == 0
    assert "missing=0 older=0 gone=0" in r.stdout, r.stdout


def test_two_incremental_runs_one_works(db, stack, zcrm_env):
    """Two incremental_sync at once, the export slowed down so they overlap:
    one does the work, the other exits 75 "already running"."""
    st = stack(500)
    ids = live_ids(truth_of(st.sim))
    for rid in ids[:5]:
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                       {"values": {"Description": "silent edit"}, "silent": True})
    # A job now needs 3 polls (1 s, 2 s, 4 s apart) and never completes by time.
    st.sim.control("POST", "/config", {"bulk_polls": 3, "bulk_step_ms": 0})
    a = start_program(zcrm_env, "batch/incremental_sync", st.conf, name="incremental-a",
                      marker=True)
    b = start_program(zcrm_env, "batch/incremental_sync", st.conf, name="incremental-b",
                      marker=True)
    ra, rb = finish(zcrm_env, a), finish(zcrm_env, b)
    assert sorted([ra, rb]) == [0, EX_TEMPFAIL], (ra, rb, a.stderr_text()[-2000:],
                                                 b.stderr_text()[-2000:])
    loser = b if rb == EX_TEMPFAIL else a
    assert "already running" in loser.stderr_text()
    (run,) = runs(db, "incremental")
    assert run["outcome"] == "ok", run
    # The initial export's job and the winner's: the loser created none.
    assert len(st.sim.control("GET", "/jobs")["jobs"]) == 2
    check_truth(st.sim, db, zcrm_env)


def test_dirty_ids_after_failed_fetch_fetched_later(db, stack, zcrm_env):
    """The records API answers 500 for a while: the notified ids stay dirty
    with the error recorded; once it answers again, the webhook's
    housekeeping fetches them all — none dropped."""
    st = stack(500, cfg={"zoho": {"max_retries": 1}})
    ids = live_ids(truth_of(st.sim))
    st.sim.control("POST", "/faults", {"rules": [
        {"match": "/crm/v6/%s" % MODULE, "status": 500, "count": -1}]})
    edited = ids[20:32]
    for rid in edited:
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                       {"values": {"Description": "edited while fetches fail"}})
    created = [st.sim.control("POST", "/records/%s" % MODULE,
                              {"values": {"Last_Name": "New %d" % i}})["id"] for i in range(3)]
    marked = {int(x) for x in edited + created}
    assert st.sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]

    def all_failed():
        rows = db.query("SELECT id, attempts, last_error FROM zcrm.to_fetch WHERE module = %s",
                        MODULE)
        return ({r[0] for r in rows} == marked
                and all(r[1] >= 1 and r[2] for r in rows))

    wait_until(all_failed, scaled(60), interval=0.2,
               what="every notified id to fail its fetch and stay dirty")
    # They moved from the queue into dirty, with their attempts and error.
    assert db.value("SELECT count(*) FROM zcrm.fetch_queue") == 0
    assert {r[0] for r in db.query("SELECT id FROM zcrm.dirty WHERE attempts >= 1")} == marked
    # Still failing a while later: nothing was dropped meanwhile.
    time.sleep(1.0)
    assert {r[0] for r in db.query("SELECT id FROM zcrm.to_fetch")} == marked
    assert diff_table(db, truth_of(st.sim), limit=1)
    failed = [r for r in st.sim.control("GET", "/requests")["requests"]
              if r["path"] == "/crm/v6/%s" % MODULE and r["status"] == 500]
    assert failed

    st.sim.control("DELETE", "/faults")
    wait_until(lambda: db.value("SELECT count(*) FROM zcrm.to_fetch") == 0, scaled(120),
               interval=0.5, what="the dirty ids to be fetched after the fault cleared")
    check_truth(st.sim, db, zcrm_env)
    for rid in marked:
        assert row(db, rid)[:2] == (None, "fetch"), rid
    assert runs(db, "incremental") == []


def test_queued_ids_fetched_once_deleted_ones_not_at_all(db, stack, zcrm_env, run_program):
    """With the webhook not fetching, notified ids wait in fetch_queue; an id
    deleted after its edit was notified is tombstoned and never fetched; the
    others are fetched (by incremental_sync here) once each, and nothing is
    left waiting."""
    st = stack(300, cfg={"webhook": {"fetch": False}})
    ids = live_ids(truth_of(st.sim))
    edited, doomed = ids[10:16], ids[16:18]
    for rid in edited + doomed:
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                       {"values": {"Description": "edited, then maybe deleted"}})
    assert st.sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]
    for rid in doomed:
        st.sim.control("DELETE", "/records/%s/%s" % (MODULE, rid))
    assert st.sim.control("POST", "/flush", {"timeout": scaled(30)})["idle"]
    queued = {r[0] for r in db.query("SELECT unnest(ids) FROM zcrm.fetch_queue")}
    assert queued == {int(x) for x in edited + doomed}
    assert db.value("SELECT count(*) FROM zcrm.dirty") == 0
    for rid in doomed:
        assert row(db, rid)[0] is not None, rid

    since = st.sim.control("GET", "/requests")["next"]
    incremental(run_program, st.conf)
    asked = [r["query"] for r in st.sim.control("GET", "/requests?since=%d" % since)["requests"]
             if r["path"] == "/crm/v6/%s" % MODULE and "ids=" in (r["query"] or "")]
    asked_ids = [int(x) for q in asked
                 for x in urllib.parse.parse_qs(q)["ids"][0].split(",")]
    assert sorted(asked_ids) == sorted(int(x) for x in edited), asked
    assert db.value("SELECT count(*) FROM zcrm.to_fetch") == 0
    for rid in edited:
        assert row(db, rid)[1] == "fetch", rid
    for rid in doomed:
        assert row(db, rid)[0] is not None, rid
    check_truth(st.sim, db, zcrm_env)


def test_notified_ids_share_get_records_calls(db, stack, zcrm_env):
    """Issue 15 item 3: ids notified close together wait [webhook]
    fetch_delay for each other and share one Get Records call (1 credit for
    up to 100 ids): ten single-record edits, notified one by one within the
    delay, cost one call, not ten. The rows are the truth."""
    st = stack(300, cfg={"webhook": {"fetch": True, "threads": 2, "fetch_delay": 5000}})
    ids = live_ids(truth_of(st.sim))[20:30]
    before = st.sim.control("GET", "/credits")
    for rid in ids:
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                       {"values": {"Description": "edited one by one"}})
    settle(st.sim, db)
    after = st.sim.control("GET", "/credits")
    calls = (after["calls_by_endpoint"].get("records", 0)
             - before["calls_by_endpoint"].get("records", 0))
    assert calls == 1, (before, after)
    assert after["spent_total"] - before["spent_total"] == 1, (before, after)
    for rid in ids:
        assert row(db, rid)[1] == "fetch", rid
    check_truth(st.sim, db, zcrm_env)


@pytest.mark.parametrize("cap", [2, 0])
def test_calls_in_flight_stay_under_max_concurrency(db, stack, zcrm_env, cap):
    """Issue 15 item 3: Zoho answers 429 past a number of calls in flight per
    org. The webhook's four threads, each fetching right after its reply
    while Zoho takes 300 ms a call, keep at most [zoho] max_concurrency calls
    in flight (cap 2); without a cap (0) they exceed it. The rows are the
    truth either way."""
    st = stack(300, cfg={"webhook": {"fetch": True, "threads": 4, "fetch_delay": 0},
                         "zoho": {"max_concurrency": cap}})
    ids = live_ids(truth_of(st.sim))[40:70]
    st.sim.control("DELETE", "/credits")
    st.sim.control("POST", "/faults", {"rules": [
        {"match": "/crm/v6/%s" % MODULE, "method": "GET", "delay_ms": 300, "count": -1}]})
    for rid in ids:
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid),
                       {"values": {"Description": "fetched while Zoho is slow"}})
    settle(st.sim, db)
    st.sim.control("POST", "/faults", {"rules": []})
    meter = st.sim.control("GET", "/credits")
    assert meter["calls_by_endpoint"].get("records", 0) >= 3, meter
    if cap:
        assert meter["max_in_flight"] <= cap, meter
    else:
        assert meter["max_in_flight"] > 2, meter
    check_truth(st.sim, db, zcrm_env)


def webhook_credit_metrics(st):
    """{endpoint: credits} from the webhook's /zcrm/metrics."""
    import re
    status, _, raw = harness_http("GET", st.nginx.url + "/zcrm/metrics")
    assert status == 200
    out = {}
    for m in re.finditer(r'^zcrm_zoho_credits_spent_total\{webhook="[^"]*",endpoint="(\w+)"\}'
                         r' (\d+)$', raw.decode(), re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def test_credits_counted_shown_and_guarded(db, stack, zcrm_env, run_program):
    """Issue 15 item 5: every call is counted by its price, as Zoho's meter
    counts it (the simulator's, exactly): per endpoint in zcrm-status and in
    the webhook's /zcrm/metrics. Once Zoho says fewer credits than
    [zoho] credit_floor remain, reconcile defers its bulk export (exit 75, a
    clear warning, no job created) while the webhook's fetches go on."""
    st = stack(300, cfg={"webhook": {"fetch": True, "threads": 2, "fetch_delay": 0}})
    # Everything so far (initial sync, the webhook's fetches) was counted.
    meter = st.sim.control("GET", "/credits")
    r = run_program("batch/status", args=["--json"], config=st.conf)
    assert r.returncode == 0, r.stderr
    credits = json.loads(r.stdout)["credits"]
    assert credits["spent_24h"] == meter["spent_total"], (credits, meter)
    assert credits["by_endpoint"] == {k: v for k, v in meter["by_endpoint"].items() if v}, \
        (credits, meter)
    assert credits["by_endpoint"]["bulk_create"] == 50
    assert credits["remaining"] is None            # no budget: Zoho sends no figure

    m0 = webhook_credit_metrics(st)
    st.sim.control("DELETE", "/credits")
    for rid in live_ids(truth_of(st.sim))[:3]:
        st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid), {"values": {"City": "Oslo"}})
    settle(st.sim, db)
    meter = st.sim.control("GET", "/credits")
    m1 = webhook_credit_metrics(st)
    assert meter["by_endpoint"].get("records", 0) >= 1
    assert m1["records"] - m0.get("records", 0) == meter["by_endpoint"]["records"], (m0, m1, meter)

    # Half the budget used: Zoho says what is left, and it is below the floor.
    st.sim.control("DELETE", "/credits")
    st.sim.control("POST", "/config", {"credit_budget": 2})
    r = run_program("batch/reconcile", config=st.conf, env={"ZCRM_ZOHO_CREDIT_FLOOR": "5"},
                    timeout=120)
    assert r.returncode == EX_TEMPFAIL, r.stderr[-3000:]
    assert "credits below [zoho] credit_floor" in r.stderr, r.stderr[-3000:]
    assert st.sim.control("GET", "/credits")["by_endpoint"].get("bulk_create", 0) == 0
    r = run_program("batch/status", args=["--json"], config=st.conf)
    assert json.loads(r.stdout)["credits"]["remaining"] == 1
    text = run_program("batch/status", config=st.conf).stdout
    assert "Zoho said 1 left at" in text, text
    # Fetches go on.
    st.sim.control("POST", "/config", {"credit_budget": 1000})
    rid = live_ids(truth_of(st.sim))[5]
    st.sim.control("PATCH", "/records/%s/%s" % (MODULE, rid), {"values": {"City": "Bergen"}})
    settle(st.sim, db)
    assert db.value("SELECT city FROM zcrm.leads WHERE id = %s", int(rid)) == "Bergen"
    st.sim.control("POST", "/config", {"credit_budget": 0})


def test_status_table_and_json(db, stack, zcrm_env, run_program):
    """status --json: watermark, channel expiry, dirty count, open gaps and
    last runs as stored; the table shows the same."""
    st = stack(300)
    ids = live_ids(truth_of(st.sim))
    incremental(run_program, st.conf)
    # An open gap: the channel lapsed and was re-enabled.
    st.sim.control("POST", "/channels/%s/expire" % CHANNEL_ID)
    r = run_program("batch/renew_channel", config=st.conf)
    assert r.returncode == 0 and "re-enabled" in r.stdout, r.stdout + r.stderr[-2000:]
    # A dirty id: its fetch fails.
    st.sim.control("POST", "/faults", {"rules": [
        {"match": "/crm/v6/%s" % MODULE, "status": 500, "count": -1}]})
    st.sim.control("PATCH", "/records/%s/%s" % (MODULE, ids[3]), {"values": {"City": "Oslo"}})
    wait_until(lambda: db.value("SELECT count(*) FROM zcrm.to_fetch WHERE attempts > 0"
                                " AND last_error IS NOT NULL") == 1,
               scaled(60), interval=0.2, what="a failed fetch")

    r = run_program("batch/status", args=["--json"], config=st.conf)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (m,) = doc["modules"]
    s = sync_state(db)

    def iso(t):
        return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert m["module"] == MODULE and m["initialised"] is True
    assert m["watermark"] == iso(s["watermark"])
    assert m["channel_expiry"] == iso(s["channel_expiry"])
    assert m["channel_status"] == "active"
    assert m["channel_id"] == CHANNEL_ID
    assert 0 < m["channel_seconds_left"] <= 86400
    assert m["lag_seconds"] >= 0
    assert m["dirty"] == 1 and m["dirty_retrying"] == 1
    assert m["inbox_pending"] == 0
    assert m["open_gaps"] == 1
    (gap,) = gaps(db)
    assert m["oldest_gap_from"] == iso(gap["gap_from"])
    live = db.value("SELECT count(*) FROM zcrm.leads WHERE deleted_at IS NULL")
    assert m["rows_live"] == live == 300
    assert m["rows_tombstoned"] == 0
    lr = m["last_runs"]
    assert set(lr) == {"initial", "incremental"}, lr
    (init,) = runs(db, "initial")
    (inc,) = runs(db, "incremental")
    assert lr["initial"]["outcome"] == "ok" and lr["initial"]["rows_seen"] == 300
    assert lr["initial"]["finished"] == iso(init["finished_at"])
    assert lr["incremental"]["outcome"] == "ok"
    assert lr["incremental"]["finished"] == iso(inc["finished_at"])
    assert doc["spool_files"] == 0

    r = run_program("batch/status", config=st.conf)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["MODULE", "WATERMARK", "LAG", "CHANNEL", "EXPIRES", "DIRTY",
                                "INBOX", "GAPS", "LIVE", "DELETED"], lines[0]
    cells = lines[1].split()
    assert cells[0] == MODULE and cells[1] == m["watermark"] and cells[3] == "active"
    assert cells[5:] == ["1", "0", "1", "300", "0"], lines[1]
    assert any(l.split()[:2] == ["initial", "ok"] for l in lines), r.stdout
    assert any(l.split()[:2] == ["incremental", "ok"] for l in lines), r.stdout
    st.sim.control("DELETE", "/faults")


def test_restore_soon_after_delete_brings_record_back(db, stack, zcrm_env, run_program):
    """A record deleted and restored from the recycle bin while the delete's
    notification is still on its way (Zoho's server_time is when it *sent*
    the notification, here 1.5 s after the delete): the restore is newer
    than the delete, so the row must end live — through the webhook, or at
    the latest after incremental_sync and reconcile."""
    st = stack(300)
    ids = live_ids(truth_of(st.sim))
    victim = ids[9]
    st.sim.control("POST", "/faults", {"notify": {"delay_ms": [1500, 1500]}})
    st.sim.control("DELETE", "/records/%s/%s" % (MODULE, victim))
    st.sim.control("POST", "/records/%s/%s/restore" % (MODULE, victim), {})
    settle(st.sim, db)
    st.sim.control("DELETE", "/faults")
    assert victim in live_ids(truth_of(st.sim))
    # The proof that the row lives after its tombstone is a read that began
    # after the delete: Zoho gives job creation times in whole seconds and
    # a fetch allows 2 s of clock skew, so let that much time pass (a real
    # reconcile runs hours later).
    time.sleep(3)
    incremental(run_program, st.conf)
    r = run_program("batch/reconcile", config=st.conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert row(db, victim)[0] is None, "restored in Zoho, still a tombstone here: %r" % (
        row(db, victim),)
    check_truth(st.sim, db, zcrm_env)
