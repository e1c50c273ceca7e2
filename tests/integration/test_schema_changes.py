"""Zoho's fields change while we run (issue 16): one test per change kind,
against the simulator's POST /_sim/fields, a real PostgreSQL and the webhook
behind nginx (fetch on). Each test first runs batch/initial_sync.

  - added: incremental_sync adds the column while the webhook serves, and
    back-fills the records we hold with Zoho's values (by REST for a few, by
    a Bulk Read of id, Modified_Time and the new fields for many), without
    moving modified_time;
  - removed: the column stays with its values, fields.removed_at is set,
    exports lacking it still merge (no "lacks known columns" deferral), and
    the webhook's fetches (which asked for it) recover;
  - renamed: the same column keeps getting updates, fields shows the new
    API name (previous_api_names the old), logged once;
  - retyped losslessly (integer → double): converted in place;
  - retyped lossily (text → double): a new column beside, the old row
    superseded, a warning, and no failed page;
  - a data type we do not know: a jsonb column and a warning naming
    module, field and type;
  - a notification naming a field we do not know makes the next
    incremental_sync read the fields, whatever [sync] schema_check says.
"""

import re

import pytest

from harness import scaled, wait_until
from test_initial_sync import finish, start_program
from test_stay_current import MODULE, settle, stack, truth_of, wait_truth  # noqa: F401

# Read the metadata at every incremental_sync run (the default waits an hour).
EVERY_RUN = {"sync": {"schema_check": 0}}


def fields_change(sim, *changes, touch=False):
    return sim.control("POST", "/fields", {"module": MODULE, "changes": list(changes),
                                           "touch": touch})


def incremental(run_program, s):
    r = run_program("batch/incremental_sync", config=s.conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def field_row(db, api_name, current=True):
    cols = ("api_name", "column_name", "data_type", "pg_type", "field_id", "removed_at",
            "superseded_at", "previous_api_names", "backfill_due")
    rows = db.query("SELECT %s FROM zcrm.fields WHERE module = %%s AND api_name = %%s%s"
                    " ORDER BY first_seen" % (", ".join(cols),
                                              " AND superseded_at IS NULL" if current else ""),
                    MODULE, api_name)
    return [dict(zip(cols, r)) for r in rows]


def column_type(db, column):
    return db.value("SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = 'zcrm.leads'::regclass AND attname = %s"
                    " AND NOT attisdropped", column)


def times(db):
    return dict(db.query("SELECT id, modified_time FROM zcrm.leads"))


def edit(sim, rid, values):
    return sim.control("PATCH", "/records/%s/%s" % (MODULE, rid), {"values": values})


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_added_field_backfilled_while_webhook_serves(db, stack, run_program, zcrm_env, path):
    cfg = {"sync": {"schema_check": 0, "bulk_threshold": 50 if path == "rest" else 0}}
    s = stack(80, cfg=cfg)
    assert db.value("SELECT count(*) FROM zcrm.fields WHERE module = %s AND field_id IS NULL"
                    " AND api_name NOT IN ('id', 'Modified_Time', 'Created_Time')", MODULE) == 0
    before = times(db)
    fields_change(s.sim, {"op": "add", "api_name": "Region", "data_type": "picklist"},
                  {"op": "add", "api_name": "Score", "data_type": "integer"})
    # The webhook keeps serving: an edit made now reaches the table.
    rid = truth_of(s.sim)["records"][0]["id"]
    edit(s.sim, rid, {"Company": "Schema Co"})
    r = incremental(run_program, s)
    assert "field added in Zoho: new column" in r.stderr
    assert "back-filled fields" in r.stderr, r.stderr[-3000:]
    assert ("path=%s" % path) in r.stderr
    assert column_type(db, "region") == "text" and column_type(db, "score") == "bigint"
    assert field_row(db, "Region")[0]["backfill_due"] is None
    rid2 = truth_of(s.sim)["records"][1]["id"]
    edit(s.sim, rid2, {"Region": "North", "Score": 7})
    settle(s.sim, db)
    wait_truth(s.sim, db, zcrm_env)
    assert db.value("SELECT region FROM zcrm.leads WHERE id = %s", int(rid2)) == "North"
    # The back-fill set values, never modified_time.
    after = times(db)
    moved = {k for k in before if before[k] != after.get(k)}
    assert moved <= {int(rid), int(rid2)}, moved
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE score IS NOT NULL") > 10


def test_removed_field_keeps_column_and_pages_merge(db, stack, run_program, zcrm_env):
    s = stack(60, cfg={"sync": {"schema_check": 0, "bulk_threshold": 0}})
    held = db.value("SELECT count(fax) FROM zcrm.leads")
    assert held > 0
    fields_change(s.sim, {"op": "remove", "api_name": "Fax"})
    # The webhook's next fetch asks for Fax: Zoho refuses it; the webhook
    # reads the fields (once a minute at most: make it due) and fetches again.
    db.execute("UPDATE zcrm.sync_state SET fields_checked = now() - interval '1 hour'")
    rid = truth_of(s.sim)["records"][2]["id"]
    edit(s.sim, rid, {"Company": "After Removal"})
    settle(s.sim, db)
    wait_until(lambda: db.value("SELECT company FROM zcrm.leads WHERE id = %s", int(rid))
               == "After Removal", scaled(60), what="the edit to arrive")
    row = field_row(db, "Fax")[0]
    assert row["removed_at"] is not None and row["column_name"] == "fax"
    assert db.value("SELECT count(fax) FROM zcrm.leads") == held
    # A Bulk Read page without Fax merges (no deferral to fetches).
    s.sim.control("POST", "/mutate", {"module": MODULE, "count": 12, "seed": 5,
                                      "mix": {"update": 1}, "silent": True})
    r = incremental(run_program, s)
    assert "lacks known columns" not in r.stderr
    assert db.value("SELECT export_missing FROM zcrm.sync_state WHERE module = %s",
                    MODULE) is None
    wait_truth(s.sim, db, zcrm_env)
    # It comes back: listed again, the column back-filled.
    fields_change(s.sim, {"op": "add", "api_name": "Fax", "data_type": "text"})
    incremental(run_program, s)
    assert field_row(db, "Fax")[0]["removed_at"] is None


def test_renamed_field_same_column(db, stack, run_program, zcrm_env):
    s = stack(40, cfg=EVERY_RUN)
    old = field_row(db, "Skype_ID")[0]
    fields_change(s.sim, {"op": "rename", "api_name": "Skype_ID",
                          "new_api_name": "Skype_Handle"})
    r = incremental(run_program, s)
    assert r.stderr.count("field renamed") == 1, r.stderr[-3000:]
    assert "old=Skype_ID" in r.stderr and "new=Skype_Handle" in r.stderr
    row = field_row(db, "Skype_Handle")[0]
    assert row["column_name"] == "skype_id" and row["field_id"] == old["field_id"]
    assert row["previous_api_names"] == ["Skype_ID"]
    assert not field_row(db, "Skype_ID")
    rid = truth_of(s.sim)["records"][3]["id"]
    edit(s.sim, rid, {"Skype_Handle": "renamed_42"})
    settle(s.sim, db)
    wait_until(lambda: db.value("SELECT skype_id FROM zcrm.leads WHERE id = %s", int(rid))
               == "renamed_42", scaled(60), what="the renamed field's edit")
    assert column_type(db, "skype_handle") is None
    r = incremental(run_program, s)
    assert "field renamed" not in r.stderr
    wait_truth(s.sim, db, zcrm_env)


def test_retyped_lossless_converted_in_place(db, stack, run_program, zcrm_env):
    s = stack(40, cfg=EVERY_RUN)
    assert column_type(db, "no_of_employees") == "bigint"
    fields_change(s.sim, {"op": "retype", "api_name": "No_of_Employees", "data_type": "double"})
    r = incremental(run_program, s)
    assert "converted in place" in r.stderr, r.stderr[-3000:]
    assert column_type(db, "no_of_employees") == "numeric"
    assert len(field_row(db, "No_of_Employees", current=False)) == 1
    assert field_row(db, "No_of_Employees")[0]["pg_type"] == "numeric"
    rid = truth_of(s.sim)["records"][0]["id"]
    edit(s.sim, rid, {"No_of_Employees": 12.5})
    settle(s.sim, db)
    wait_truth(s.sim, db, zcrm_env)
    # the _live view follows
    assert db.value("SELECT no_of_employees FROM zcrm.leads_live WHERE id = %s",
                    int(rid)) == 12.5


def test_retyped_lossy_new_column_beside(db, stack, run_program, zcrm_env):
    s = stack(40, cfg={"sync": {"schema_check": 0, "bulk_threshold": 0}})
    recs = truth_of(s.sim)["records"]
    a, b = recs[0]["id"], recs[1]["id"]
    edit(s.sim, a, {"Fax": "12.5"})
    edit(s.sim, b, {"Fax": "call me"})
    settle(s.sim, db)
    fields_change(s.sim, {"op": "retype", "api_name": "Fax", "data_type": "double"})
    s.sim.control("POST", "/mutate", {"module": MODULE, "count": 10, "seed": 9,
                                      "mix": {"update": 1}, "silent": True})
    r = incremental(run_program, s)
    assert "its values go to a new column" in r.stderr, r.stderr[-3000:]
    assert "level=warn" in [l for l in r.stderr.splitlines() if "new column" in l][0]
    rows = field_row(db, "Fax", current=False)
    assert [x["column_name"] for x in rows] == ["fax", "fax__numeric"]
    assert rows[0]["superseded_at"] is not None and rows[1]["superseded_at"] is None
    assert rows[0]["field_id"] == rows[1]["field_id"]
    assert column_type(db, "fax") == "text" and column_type(db, "fax__numeric") == "numeric"
    # The old column keeps what it had; the new one holds Zoho's values.
    assert db.value("SELECT fax FROM zcrm.leads WHERE id = %s", int(b)) == "call me"
    assert db.value("SELECT fax__numeric FROM zcrm.leads WHERE id = %s", int(a)) == 12.5
    assert db.value("SELECT outcome FROM zcrm.runs WHERE kind = 'incremental'"
                    " ORDER BY id DESC LIMIT 1") == "ok"
    assert db.value("SELECT count(*) FROM zcrm.cell_errors") == 0
    wait_truth(s.sim, db, zcrm_env)


def test_unknown_type_jsonb_and_warning(db, stack, run_program, zcrm_env):
    s = stack(30, cfg=EVERY_RUN)
    fields_change(s.sim, {"op": "add", "api_name": "Odd_Thing", "data_type": "weird_widget",
                          "json_type": "string"})
    r = incremental(run_program, s)
    lines = [l for l in r.stderr.splitlines() if "data type we do not know" in l]
    assert lines and "level=warn" in lines[0], r.stderr[-3000:]
    assert "module=Leads" in lines[0] and "field=Odd_Thing" in lines[0]
    assert "data_type=weird_widget" in lines[0]
    assert column_type(db, "odd_thing") == "jsonb"
    wait_truth(s.sim, db, zcrm_env)


def test_notification_naming_unknown_field_makes_the_check_due(db, stack, run_program,
                                                               zcrm_env):
    """Default [sync] schema_check (an hour): a notification whose
    affected_values name a field we do not know makes the next
    incremental_sync read the fields at once."""
    s = stack(30)
    r = incremental(run_program, s)
    assert "field added" not in r.stderr
    fields_change(s.sim, {"op": "add", "api_name": "Region", "data_type": "picklist"})
    s.sim.control("POST", "/records/%s" % MODULE, {"values": {"Last_Name": "Newcomer",
                                                              "Region": "North"}})
    settle(s.sim, db)
    assert db.value("SELECT fields_checked FROM zcrm.sync_state WHERE module = %s",
                    MODULE) is None
    r = incremental(run_program, s)
    assert "field added in Zoho: new column" in r.stderr, r.stderr[-3000:]
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE region = 'North'") >= 1
    wait_truth(s.sim, db, zcrm_env)


def test_retyped_lossless_under_an_application_view_goes_beside(db, stack, run_program,
                                                                zcrm_env):
    """A view of the application's own on the column forbids ALTER COLUMN
    TYPE: the column stays, a new one goes beside, nothing fails."""
    s = stack(30, cfg=EVERY_RUN)
    db.execute("CREATE VIEW zcrm.app_budget AS SELECT id, budget FROM zcrm.leads")
    fields_change(s.sim, {"op": "retype", "api_name": "Budget", "data_type": "text"})
    r = incremental(run_program, s)
    assert "not converted in place" in r.stderr, r.stderr[-3000:]
    assert column_type(db, "budget") == "numeric" and column_type(db, "budget__text") == "text"
    assert [x["column_name"] for x in field_row(db, "Budget", current=False)] == \
        ["budget", "budget__text"]
    wait_truth(s.sim, db, zcrm_env)


def test_names_swapped_and_reused(db, stack, run_program, zcrm_env):
    """Fields are tracked by id: two fields swapping API names, and a field
    renamed to the name of one removed, keep their own columns."""
    s = stack(30, cfg=EVERY_RUN)
    ids = {n: field_row(db, n)[0]["field_id"] for n in ("Skype_ID", "Twitter", "Mobile", "Fax")}
    fields_change(s.sim, {"op": "rename", "api_name": "Skype_ID", "new_api_name": "Swap_Tmp"},
                  {"op": "rename", "api_name": "Twitter", "new_api_name": "Skype_ID"},
                  {"op": "rename", "api_name": "Swap_Tmp", "new_api_name": "Twitter"},
                  {"op": "remove", "api_name": "Fax"},
                  {"op": "rename", "api_name": "Mobile", "new_api_name": "Fax"})
    r = incremental(run_program, s)
    assert r.stderr.count("field renamed") == 3, r.stderr[-3000:]
    assert field_row(db, "Twitter")[0]["column_name"] == "skype_id"
    assert field_row(db, "Twitter")[0]["field_id"] == ids["Skype_ID"]
    assert field_row(db, "Skype_ID")[0]["column_name"] == "twitter"
    assert field_row(db, "Fax")[0]["column_name"] == "mobile"
    assert field_row(db, "Fax")[0]["field_id"] == ids["Mobile"]
    assert db.value("SELECT removed_at IS NOT NULL FROM zcrm.fields WHERE module = %s"
                    " AND column_name = 'fax'", MODULE)
    rid = truth_of(s.sim)["records"][0]["id"]
    edit(s.sim, rid, {"Twitter": "swapped_1", "Fax": "+1 555 0100"})
    settle(s.sim, db)
    wait_truth(s.sim, db, zcrm_env)
    assert db.value("SELECT skype_id FROM zcrm.leads WHERE id = %s", int(rid)) == "swapped_1"


def test_retyped_lossless_under_a_view_of_live_goes_beside(db, stack, run_program, zcrm_env):
    """A view of the application's own on <table>_live: the _live view
    cannot be recreated around ALTER COLUMN TYPE; a new column goes beside."""
    s = stack(30, cfg=EVERY_RUN)
    db.execute("CREATE VIEW zcrm.app_live AS SELECT id, no_of_employees FROM zcrm.leads_live")
    fields_change(s.sim, {"op": "retype", "api_name": "No_of_Employees", "data_type": "double"})
    r = incremental(run_program, s)
    assert "not converted in place" in r.stderr, r.stderr[-3000:]
    assert column_type(db, "no_of_employees__numeric") == "numeric"
    assert db.value("SELECT count(*) FROM zcrm.app_live") == 30
    wait_truth(s.sim, db, zcrm_env)


def test_bulk_backfill_fetches_rows_it_did_not_see(db, stack, run_program, zcrm_env):
    """A Bulk Read back-fill runs page by page while records are deleted:
    the records that cross a page boundary are in no page, and a row changed
    after the export's snapshot is skipped by the back-fill's rule; both go
    to dirty and are fetched by id with the new column, so no row keeps a
    NULL that Zoho has a value for (found by test_converge at 20,000
    records)."""
    s = stack(500, "--page-size", "100", "--bulk-polls", "3",
              cfg={"sync": {"schema_check": 0, "bulk_threshold": 0}})
    first = [r["id"] for r in truth_of(s.sim)["records"][:3]]
    fields_change(s.sim, {"op": "add", "api_name": "Region", "data_type": "text"})
    proc = start_program(zcrm_env, "batch/incremental_sync", s.conf)

    def backfill_at(page):
        row = db.query("SELECT bulk_kind, bulk_page FROM zcrm.sync_state WHERE module = %s",
                       MODULE)
        return bool(row) and row[0][0] == "backfill" and (row[0][1] or 0) >= page

    wait_until(lambda: backfill_at(2), scaled(120), interval=0.02, what="back-fill page 1 merged",
               proc=proc, log=proc.stderr_path)
    for rid in first:     # page 1 is exported: the later pages shift by 3
        s.sim.control("DELETE", "/records/%s/%s" % (MODULE, rid))
    assert finish(zcrm_env, proc, timeout=180) == 0, proc.stderr_path.read_text()[-3000:]
    err = proc.stderr_path.read_text()
    assert "back-filled fields" in err, err[-3000:]
    unseen = int(re.search(r"back-filled fields\".*to_fetch=(\d+)", err).group(1))
    assert unseen >= 3, err[-3000:]
    settle(s.sim, db)
    wait_truth(s.sim, db, zcrm_env)
    truth = {r["id"]: r.get("Region") for r in truth_of(s.sim)["records"]}
    ours = dict((str(i), v) for i, v in db.query("SELECT id, region FROM zcrm.leads"
                                                 " WHERE deleted_at IS NULL"))
    assert ours == truth
