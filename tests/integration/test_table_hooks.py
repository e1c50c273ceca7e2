"""What the legacy application may ask of the module tables besides their
rows (issue 19), both off by default:

  - [database] notify_changes: NOTIFY "<schema>.<table>" with the ids each
    transaction wrote, so the application LISTENs instead of polling;
  - [database] history: every version a row had, with its validity
    interval, in <table>_history (and <table>_versions with the current
    rows).
"""
import select
import time

import psycopg2

from harness import scaled

MODULE = "Leads"
EX_OK = 0


def make_org(db, sim_factory, config_factory, run_program, records=900, **keys):
    sim = sim_factory("-q", "--modules", "%s:%d" % (MODULE, records), "--bulk-polls", "1")
    conf = config_factory({"database": {k: ("true" if v else "false") for k, v in keys.items()},
                           "sync": {"overlap": "300"}}, sim=sim, name="zcrm")
    sim.control("POST", "/faults", {"notify": {"drop": 1.0}, "seed": 1})
    return sim, conf


def listener(db):
    conn = db.connect()
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    conn.cursor().execute('LISTEN "zcrm.leads"')
    return conn


def drain(conn, want=None, timeout=30):
    """Notifications received until want ids are all in (or a quiet while)."""
    ids, payloads = set(), []
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        select.select([conn], [], [], 0.5)
        conn.poll()
        while conn.notifies:
            n = conn.notifies.pop(0)
            assert n.channel == "zcrm.leads"
            payloads.append(n.payload)
            ids |= {int(x) for x in n.payload.split(",")}
        if want is not None and want <= ids:
            break
    return ids, payloads


def triggers(db):
    return sorted(r[0] for r in db.query(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'zcrm.leads'::regclass AND NOT tgisinternal"))


def edit(sim, rid, values):
    sim.control("PATCH", "/records/%s/%s" % (MODULE, rid), {"values": values})


def test_off_by_default(db, sim_factory, config_factory, run_program):
    sim, conf = make_org(db, sim_factory, config_factory, run_program, records=20)
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == EX_OK, r.stderr[-3000:]
    assert triggers(db) == []
    assert db.value("SELECT to_regclass('zcrm.leads_history')") is None


def test_notify_changes_carries_every_id_written(db, sim_factory, config_factory, run_program):
    sim, conf = make_org(db, sim_factory, config_factory, run_program, notify_changes=True)
    # The first load creates the table and its triggers before the export's
    # merge: a listener that is there from the start sees every id.
    conn = db.connect()
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == EX_OK, r.stderr[-3000:]
    assert triggers(db) == ["zcrm_notify_insert", "zcrm_notify_update"]
    conn.close()
    truth = [int(x["id"]) for x in sim.control("GET", "/truth/%s" % MODULE)["records"]]
    # A re-load changes nothing: no notification. Then two edits, brought
    # by incremental_sync: one notification with exactly those two ids.
    conn = listener(db)
    edited = truth[5:7]
    for rid in edited:
        edit(sim, str(rid), {"Description": "changed for the listener"})
    r = run_program("batch/incremental_sync", config=conf, timeout=180)
    assert r.returncode == EX_OK, r.stderr[-3000:]
    ids, payloads = drain(conn, want=set(edited))
    assert ids == set(edited), payloads
    # A bulk write of many rows: at most 400 ids a notification, all of them.
    db.execute("UPDATE zcrm.leads SET synced_at = now()")
    ids, payloads = drain(conn, want=set(truth))
    assert ids == set(truth)
    assert len(payloads) == -(-len(truth) // 400), [len(p.split(",")) for p in payloads]
    assert all(len(p) < 8000 for p in payloads)
    conn.close()


def test_history_keeps_every_version(db, sim_factory, config_factory, run_program):
    sim, conf = make_org(db, sim_factory, config_factory, run_program, records=30, history=True)
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == EX_OK, r.stderr[-3000:]
    assert triggers(db) == ["zcrm_history_delete", "zcrm_history_update"]
    rid = sim.control("GET", "/truth/%s" % MODULE)["records"][3]["id"]
    first = db.value("SELECT description FROM zcrm.leads WHERE id = %s", int(rid))
    for text in ("second version", "third version"):
        # Zoho's Modified_Time has whole seconds: two versions a second
        # apart, as two real edits would be.
        time.sleep(1.1)
        edit(sim, rid, {"Description": text})
        r = run_program("batch/incremental_sync", config=conf, timeout=180)
        assert r.returncode == EX_OK, r.stderr[-3000:]
    rows = db.query("SELECT version->>'description', valid_from, valid_to, source"
                    " FROM zcrm.leads_history WHERE id = %s ORDER BY valid_to", int(rid))
    assert [r[0] for r in rows] == [first, "second version"], rows
    assert rows[0][2] <= rows[1][1] <= rows[1][2]   # intervals follow each other
    assert rows[0][3] == "bulk" and rows[1][3] in ("bulk", "fetch")   # who wrote each version
    versions = db.query("SELECT version->>'description', valid_to FROM zcrm.leads_versions"
                        " WHERE id = %s ORDER BY valid_to NULLS LAST", int(rid))
    assert [v[0] for v in versions] == [first, "second version", "third version"]
    assert versions[-1][1] is None
    # Rows no transaction changed have no history.
    assert db.value("SELECT count(DISTINCT id) FROM zcrm.leads_history") == 1

    # Turned off (here by the environment): at the next program's start
    # the triggers go; the history stays.
    r = run_program("batch/status", config=conf, args=["--json"],
                    env={"ZCRM_DATABASE_HISTORY": "false"})
    assert r.returncode == EX_OK, r.stderr[-3000:]
    assert triggers(db) == []
    assert db.value("SELECT count(*) FROM zcrm.leads_history") == 2
    db.execute("UPDATE zcrm.leads SET description = 'not kept' WHERE id = %s", int(rid))
    assert db.value("SELECT count(*) FROM zcrm.leads_history") == 2
