"""Line items (issue 17): every subform of a module is a child table
<parent table>__<subform> (zcrm.invoices__invoiced_items), one row per line
with its Zoho id and parent_id, kept in step with the parent; fields Bulk
Read cannot export are filled by REST after a bulk load.

  - initial_sync of Invoices and Quotes loads every parent and every line
    equal to the simulator's truth: the parents by Bulk Read (which cannot
    export a subform), the lines by the subform listing, 200 a call; its
    summary shows the lines and the credits, which equal the simulator's
    meter;
  - through the webhook alone, a line edited, a line added, a line removed
    and a parent deleted: the child table equals the truth (the removed
    line gone, the deleted parent's lines gone), the fetch by the
    single-record GET (Get Records by ids does not return subforms);
  - a silent edit of the lines (no notification) is brought by
    incremental_sync, and lines changed behind our back by reconcile;
  - Deals' multiselectlookup and multiuserlookup (id arrays) and fileupload
    fields, which Bulk Read cannot export, are equal to the truth after
    initial_sync.

Credits: our zcrm.zoho_credits equals the simulator's meter, endpoint by
endpoint.
"""

import math

import pytest

from harness import finish, scaled, start_program, wait_until
from truth import diff_lines, diff_table, format_diffs

LINES = {"Invoices": "Invoiced_Items", "Quotes": "Quoted_Items"}


# ----------------------------------------------------------------- helpers

def sim_credits(sim):
    m = sim.control("GET", "/credits")
    return {k: v for k, v in m["by_endpoint"].items() if v}


def our_credits(db):
    return {e: int(c) for e, c in db.query("SELECT endpoint, sum(credits) FROM zcrm.zoho_credits"
                                           " GROUP BY endpoint") if c}


def parent_fields(truth):
    """The fields compared on the parent: all (subforms are left to
    diff_lines)."""
    return [f["api_name"] for f in truth["fields"]]


def diffs_of(db, sim, module):
    truth = sim.control("GET", "/truth/%s" % module)
    d = diff_table(db, truth, fields=parent_fields(truth), tombstones="required", limit=50)
    if module in LINES:
        d += diff_lines(db, truth, LINES[module], limit=50)
    return d, truth


def assert_truth(db, sim, module):
    d, truth = diffs_of(db, sim, module)
    assert not d, "%s: %s" % (module, format_diffs(d, 25))
    return truth


def wait_truth(db, sim, module, timeout=60):
    last = {}

    def equal():
        last["d"], _ = diffs_of(db, sim, module)
        return not last["d"]

    try:
        wait_until(equal, scaled(timeout), interval=0.2, what="%s to equal the truth" % module)
    except AssertionError as e:
        pytest.fail("%s: %s" % (e, format_diffs(last.get("d") or [], 25)), pytrace=False)


def settle(sim, db, timeout=60):
    assert sim.control("POST", "/flush", {"timeout": scaled(timeout)})["idle"], \
        "simulator deliveries still pending"

    def done():
        return db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NULL") == 0 and \
            db.value("SELECT count(*) FROM zcrm.to_fetch") == 0

    wait_until(done, scaled(timeout), interval=0.1, what="webhook to apply every notification")


def run_ok(run_program, path, conf, args=()):
    r = run_program(path, args=list(args), config=conf, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def lines_of(db, module, parent):
    return sorted(int(x[0]) for x in db.query(
        'SELECT id FROM zcrm."%s__%s" WHERE parent_id = %%s' % (module.lower(), LINES[module].lower()),
        int(parent)))


# ------------------------------------------------------------------- tests

def test_initial_sync_loads_every_line(db, sim_factory, config_factory, run_program):
    """Parents by Bulk Read, lines by the subform listing (ceil(lines / 200)
    calls a subform), all equal to the truth; credits equal to the meter."""
    sim = sim_factory("-q", "--modules", "Invoices:450,Quotes:120", "--bulk-polls", "1")
    conf = config_factory({"sync": {"modules": "Invoices,Quotes"}}, sim=sim, name="zcrm")
    sim.control("DELETE", "/credits")
    r = run_ok(run_program, "batch/initial_sync", conf, ["--no-channel"])
    for module, sf in LINES.items():
        truth = assert_truth(db, sim, module)
        nlines = sum(len(x[sf] or []) for x in truth["records"])
        assert nlines > 200, "the test wants more than one listing page"
        table = "%s__%s" % (module.lower(), sf.lower())
        assert db.value('SELECT count(*) FROM zcrm."%s"' % table) == nlines
        # the listing's pages, and a page of edits and one of deletions
        # since it began when a line could have been skipped between two
        # pages: ids not adjacent across a boundary (listcover.h)
        ids = sorted(int(x["id"]) for r in truth["records"] for x in r[sf] or [])
        calls = math.ceil(nlines / 200)
        if any(ids[k] - ids[k - 1] > 1 for k in range(200, nlines, 200)):
            calls += 2
        assert "line items: %d lines of %d records by the subform listing, %d call(s)" % (
            nlines, len(truth["records"]), calls) in r.stdout, r.stdout
        # the child table is registered and indexed on parent_id
        assert db.value("SELECT subform_module FROM zcrm.subforms WHERE module = %s", module) == sf
        assert db.value("SELECT count(*) FROM pg_indexes WHERE schemaname = 'zcrm'"
                        " AND tablename = %s AND indexdef LIKE '%%(parent_id)%%'", table) == 1
    assert "credits spent: " in r.stdout, r.stdout
    assert our_credits(db) == sim_credits(sim)
    # The parents have no subform column: the lines are the child table.
    assert db.value("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'zcrm'"
                    " AND table_name = 'invoices' AND column_name = 'invoiced_items'") == 0
    # A re-run reads the lines again only for parents whose lines are stale: none.
    sim.control("DELETE", "/credits")
    r = run_ok(run_program, "batch/initial_sync", conf, ["--no-channel"])
    assert "line items:" not in r.stdout, r.stdout
    assert_truth(db, sim, "Invoices")


def test_listing_read_again_when_a_delete_shifts_its_pages(db, sim_factory, config_factory,
                                                           run_program, zcrm_env):
    """Zoho pages the listing by offset: invoices deleted between the reads
    of its first and second page shift the second page left, and the lines
    that were first on it are then in no page - lines of invoices nobody
    touched. The listing asks Zoho what changed while it ran (a page of
    edits and one of deletions, 2 credits), sees the deletions between the
    two reads and reads the listing again: every line equals the truth."""
    sim = sim_factory("-q", "--modules", "Invoices:130", "--bulk-polls", "1", "--seed", "5")
    conf = config_factory({"sync": {"modules": "Invoices"}}, sim=sim, name="zcrm")
    truth = sim.control("GET", "/truth/Invoices")
    lines = sorted((int(x["id"]), r["id"]) for r in truth["records"]
                   for x in r["Invoiced_Items"] or [])
    assert 200 < len(lines) <= 400, "the test wants a listing of two pages"
    # The parents of the first and of the last line: one of them is on the
    # first page whichever order Zoho lists in.
    victims = {lines[0][1], lines[-1][1]}
    # The first listing call answers at once, the second after 5 s.
    sim.control("POST", "/faults", {"rules": [
        {"match": "/crm/v6/Invoiced_Items", "delay_ms": 1, "count": 1},
        {"match": "/crm/v6/Invoiced_Items", "delay_ms": 5000, "count": 1}]})

    def listed():
        return sum(1 for r in sim.control("GET", "/requests")["requests"]
                   if r["path"] == "/crm/v6/Invoiced_Items")

    sim.control("DELETE", "/credits")
    proc = start_program(zcrm_env, "batch/initial_sync", conf, ["--no-channel"])
    wait_until(lambda: listed() >= 1, scaled(120), interval=0.05, what="the first listing page")
    for v in victims:
        sim.control("DELETE", "/records/Invoices/%s" % v)
    assert finish(zcrm_env, proc) == 0, proc.stderr_text()[-3000:]
    err = proc.stderr_text()
    assert "records changed while their line items were listed" in err, err[-3000:]
    assert listed() >= 4, "the listing was not read again"
    assert our_credits(db) == sim_credits(sim)
    # The deleted invoices are tombstoned by the next run, their lines gone.
    run_ok(run_program, "batch/incremental_sync", conf)
    assert_truth(db, sim, "Invoices")


def test_webhook_keeps_lines_in_step(db, sim_factory, nginx_factory, webhook_factory,
                                     config_factory, run_program):
    """A line edited, one added, one removed, and a parent deleted in Zoho:
    after the webhook's fetch (single-record GET) the child table equals the
    truth; the removed line and the deleted parent's lines are gone."""
    sim = sim_factory("-q", "--modules", "Invoices:40", "--bulk-polls", "1")
    ng = nginx_factory()
    conf = config_factory({"webhook": {"fetch": True, "threads": 2},
                           "sync": {"modules": "Invoices"}}, sim=sim, nginx=ng, name="zcrm")
    webhook_factory(config=conf, nginx=ng)
    sim.control("DELETE", "/credits")
    run_ok(run_program, "batch/initial_sync", conf)
    settle(sim, db)
    truth = assert_truth(db, sim, "Invoices")

    withl = [x for x in truth["records"] if len(x["Invoiced_Items"] or []) >= 2]
    assert len(withl) >= 2, "the generator gives some invoices two lines or more"
    rec, gone = withl[0], withl[1]
    old = rec["Invoiced_Items"]
    assert lines_of(db, "Invoices", rec["id"]) == sorted(int(x["id"]) for x in old)
    assert lines_of(db, "Invoices", gone["id"])
    new = [{"id": old[0]["id"], "Quantity": 99},                        # edited
           {"Product_Name": {"id": old[0]["Product_Name"]["id"],
                             "name": old[0]["Product_Name"]["name"]},
            "Quantity": 2, "List_Price": 10.5}]                          # added; the rest removed
    upd = sim.control("PATCH", "/records/Invoices/%s" % rec["id"],
                      {"values": {"Invoiced_Items": new}})
    sim.control("DELETE", "/records/Invoices/%s" % gone["id"])
    settle(sim, db)
    wait_truth(db, sim, "Invoices")

    now = lines_of(db, "Invoices", rec["id"])
    assert now == sorted(int(x["id"]) for x in upd["Invoiced_Items"])
    assert int(old[1]["id"]) not in now, "the removed line is gone"
    assert db.value("SELECT quantity FROM zcrm.invoices__invoiced_items WHERE id = %s",
                    int(old[0]["id"])) == 99
    assert lines_of(db, "Invoices", gone["id"]) == [], "the deleted parent's lines are gone"
    assert db.value("SELECT deleted_at IS NOT NULL FROM zcrm.invoices WHERE id = %s",
                    int(gone["id"]))
    # one single-record GET, for the edit (Get Records by ids does not
    # return subforms); every credit counted on both sides
    spent = sim_credits(sim)
    assert spent.get("record_by_id") == 1, spent
    assert our_credits(db) == spent

    # A mass edit: 30 invoices in one notification. Get Records of the ids
    # (1 call) and the listing of every line (1 call) cost less than 30
    # single-record GETs (plus Get Rich Text Fields for a record whose rich
    # text Get Records may have cut); the lines of parents modified a moment
    # before the listing are written all the same.
    sim.control("DELETE", "/credits")
    before = our_credits(db)
    sim.control("POST", "/mutate", {"module": "Invoices", "count": 30, "seed": 7, "batch_max": 30,
                                    "batch_exact": True, "mix": {"update": 1}})
    settle(sim, db)
    wait_truth(db, sim, "Invoices")
    spent = sim_credits(sim)
    assert spent.get("records") == 2 and "record_by_id" not in spent, spent
    after = our_credits(db)
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == spent


def test_incremental_and_reconcile_refresh_lines(db, sim_factory, config_factory, run_program):
    """Lines edited silently (no notification) are brought by
    incremental_sync; lines changed behind our back by reconcile."""
    sim = sim_factory("-q", "--modules", "Invoices:60", "--bulk-polls", "1")
    conf = config_factory({"sync": {"modules": "Invoices"}}, sim=sim, name="zcrm")
    run_ok(run_program, "batch/initial_sync", conf, ["--no-channel"])
    truth = assert_truth(db, sim, "Invoices")
    rec = next(x for x in truth["records"] if len(x["Invoiced_Items"] or []) >= 2)
    old = rec["Invoiced_Items"]
    sim.control("PATCH", "/records/Invoices/%s" % rec["id"],
                {"values": {"Invoiced_Items": [{"id": old[1]["id"], "Quantity": 7}]},
                 "silent": True})
    run_ok(run_program, "batch/incremental_sync", conf)
    assert_truth(db, sim, "Invoices")
    assert lines_of(db, "Invoices", rec["id"]) == [int(old[1]["id"])]

    # Behind our back: a line deleted here, another edited; their sets
    # marked stale (as a bulk export of the parents leaves them). (Not the
    # invoice just edited: a listing skips a parent modified within the
    # clock-skew margin before it, whose set stays stale for the next run.)
    others = "FROM zcrm.invoices__invoiced_items WHERE parent_id <> %d" % int(rec["id"])
    db.execute("DELETE FROM zcrm.invoices__invoiced_items WHERE id = (SELECT min(id) %s)" % others)
    db.execute("UPDATE zcrm.invoices__invoiced_items SET quantity = -1 WHERE id = (SELECT max(id)"
               " %s)" % others)
    db.execute("UPDATE zcrm.line_sets SET read_at = '2000-01-01' WHERE parent_id <> %s",
               int(rec["id"]))
    assert diffs_of(db, sim, "Invoices")[0], "the drift shows"
    r = run_ok(run_program, "batch/reconcile", conf)
    assert_truth(db, sim, "Invoices")
    assert db.value("SELECT count(*) FROM zcrm.line_sets WHERE read_at = '2000-01-01'") == 0
    assert "Invoices: line items of 59 records read again" in r.stdout, r.stdout


def test_unexported_fields_filled_after_bulk(db, sim_factory, config_factory, run_program):
    """Deals: Partner_Accounts (multiselectlookup) and Deal_Team
    (multiuserlookup) become bigint[] of the linked ids, Contract
    (fileupload) jsonb; Bulk Read exports none of them, so initial_sync
    fetches the exported records by id (single-record GETs: Get Records by
    ids leaves multiselectlookup out), and the table equals the truth."""
    sim = sim_factory("-q", "--modules", "Deals:30", "--bulk-polls", "1")
    conf = config_factory({"sync": {"modules": "Deals"}}, sim=sim, name="zcrm")
    sim.control("DELETE", "/credits")
    r = run_ok(run_program, "batch/initial_sync", conf, ["--no-channel"])
    truth = assert_truth(db, sim, "Deals")
    assert any(x.get("Partner_Accounts") for x in truth["records"])
    assert db.value("SELECT data_type FROM information_schema.columns WHERE table_schema = 'zcrm'"
                    " AND table_name = 'deals' AND column_name = 'partner_accounts'") == "ARRAY"
    assert "fields Bulk Read does not export: 30 records by REST, 30 credits" in r.stdout, r.stdout
    assert sim_credits(sim).get("record_by_id") == 30
    assert our_credits(db) == sim_credits(sim)


def test_failed_line_load_is_redone(db, sim_factory, config_factory, run_program):
    """The listing fails (Zoho answers 500 throughout): initial_sync fails
    having written no line, the parents stay (their lines stale); the next
    incremental_sync loads them; a re-run of initial_sync finds nothing
    stale."""
    sim = sim_factory("-q", "--modules", "Invoices:300", "--bulk-polls", "1")
    conf = config_factory({"sync": {"modules": "Invoices"}}, sim=sim, name="zcrm")
    sim.control("POST", "/faults", {"rules": [{"match": "/crm/v6/Invoiced_Items", "status": 500,
                                               "count": -1}]})
    r = run_program("batch/initial_sync", args=["--no-channel"], config=conf, timeout=180)
    assert r.returncode != 0, r.stdout
    assert "line items" in r.stderr, r.stderr[-2000:]
    assert db.value("SELECT count(*) FROM zcrm.invoices") == 300
    assert db.value("SELECT count(*) FROM zcrm.invoices__invoiced_items") == 0
    assert db.value("SELECT count(*) FROM zcrm.line_sets") == 0
    sim.control("DELETE", "/faults")
    run_ok(run_program, "batch/incremental_sync", conf)
    assert_truth(db, sim, "Invoices")
    r = run_ok(run_program, "batch/initial_sync", conf, ["--no-channel"])
    assert "line items:" not in r.stdout, r.stdout
    assert_truth(db, sim, "Invoices")


def test_single_gets_failing_part_way(db, sim_factory, nginx_factory, webhook_factory,
                                      config_factory, run_program):
    """Two invoices fetched together by single-record GETs, the second
    failing (Zoho answers 500 to it until told otherwise): the first is
    merged with its lines at once, the second waits in dirty with the error
    and is fetched once Zoho answers; nothing is lost, nothing left queued."""
    sim = sim_factory("-q", "--modules", "Invoices:30", "--bulk-polls", "1")
    ng = nginx_factory()
    conf = config_factory({"webhook": {"fetch": True, "threads": 2},
                           "zoho": {"max_retries": 1},
                           "sync": {"modules": "Invoices"}}, sim=sim, nginx=ng, name="zcrm")
    webhook_factory(config=conf, nginx=ng)
    run_ok(run_program, "batch/initial_sync", conf)
    settle(sim, db)
    a, b = sorted((x["id"] for x in sim.control("GET", "/truth/Invoices")["records"]), key=int)[:2]
    sim.control("POST", "/faults", {"rules": [{"match": "/crm/v6/Invoices/%s" % b,
                                               "status": 500, "count": -1}]})
    # two notifications within [webhook] fetch_delay: one claim, fetched by
    # id in id order (2 single GETs cost no more than Get Records + listing)
    for rid in (a, b):
        sim.control("PATCH", "/records/Invoices/%s" % rid,
                    {"values": {"Invoiced_Items": [{"Product_Name": {"id": "5725767800900007919",
                                                                     "name": "Widget"},
                                                    "Quantity": 3, "List_Price": 2.5}]}})
    sim.control("POST", "/flush", {"timeout": scaled(60)})
    wait_until(lambda: db.value("SELECT count(*) FROM zcrm.dirty WHERE module = 'Invoices'"
                                " AND id = %s AND last_error LIKE '%%500%%'", int(b)) == 1,
               scaled(120), interval=0.2, what="the failed fetch recorded in dirty")
    truth = sim.control("GET", "/truth/Invoices")
    want = {r["id"]: sorted(int(x["id"]) for x in r["Invoiced_Items"]) for r in truth["records"]}
    assert lines_of(db, "Invoices", a) == want[a], "the first invoice's lines at once"
    assert lines_of(db, "Invoices", b) != want[b], "the second waits"
    assert db.value("SELECT count(*) FROM zcrm.fetch_queue") == 0
    sim.control("DELETE", "/faults")
    settle(sim, db, timeout=120)
    wait_truth(db, sim, "Invoices")


from test_secrets import doc_roles, step3_sql  # noqa: E402,F401  (a fixture and its SQL)


def test_read_role_reads_line_items(pg, doc_roles, sim_factory, config_factory,  # noqa: F811
                                    run_program):
    """[database] read_role (docs/operations.md step 3 as written) reads the
    line-item table; not the registry of subforms nor line_sets."""
    doc_roles.apply(step3_sql())
    sim = sim_factory("-q", "--modules", "Invoices:20", "--bulk-polls", "0", "--bulk-step-ms", "0")
    cfg = config_factory({"database": {"conninfo": doc_roles.conninfo(doc_roles.sync_role),
                                       "read_role": doc_roles.app_role},
                          "sync": {"modules": "Invoices"}}, sim=sim)
    run_ok(run_program, "batch/initial_sync", cfg, ["--no-channel"])
    assert pg.value("SELECT count(*) FROM zcrm.invoices__invoiced_items",
                    dbname=doc_roles.dbname) > 0
    assert doc_roles.app_select("invoices__invoiced_items") is None
    assert doc_roles.app_select("invoices_live") is None
    for rel in ("subforms", "subform_fields", "line_sets"):
        assert (doc_roles.app_select(rel) or "").startswith("42501"), rel
