"""Every standard module from [sync] modules (issue 17): Deals, Accounts,
Contacts, Products, Price_Books, Quotes, Sales_Orders, Purchase_Orders,
Invoices, Vendors, Cases, Tasks, Calls, Events and a custom module load
with initial_sync and stay equal to the simulator's truth after a webhook
fetch of an edited record per module, for every field Bulk Read exports;
$se_module lands in se_module beside what_id; rich text is never left
truncated by a fetch; zcrm.users is kept by incremental_sync with one call
per [sync] users_interval, readable by [database] read_role."""

import pytest

from harness import scaled, wait_until
from truth import diff_table, format_diffs

MODULES = ["Deals", "Accounts", "Contacts", "Products", "Price_Books", "Quotes", "Sales_Orders",
           "Purchase_Orders", "Invoices", "Vendors", "Cases", "Tasks", "Calls", "Events",
           "Widgets"]
# Bulk Read does not export these (zoho-api.md §3.5): another part of
# issue 17 fills them; not compared here.
NOT_EXPORTED = {"subform", "multiselectlookup", "multiuserlookup", "fileupload", "imageupload"}
SCOPES = ("ZohoCRM.modules.ALL,ZohoCRM.bulk.READ,ZohoCRM.notifications.ALL,"
          "ZohoCRM.settings.fields.READ,ZohoCRM.users.READ")


def exportable(truth):
    return [f["api_name"] for f in truth["fields"] if f["data_type"] not in NOT_EXPORTED]


def check(sim, db, module):
    truth = sim.control("GET", "/truth/%s" % module)
    diffs = diff_table(db, truth, fields=exportable(truth) + ["$se_module"])
    assert not diffs, "%s: %s" % (module, format_diffs(diffs, 20))
    return truth


def settled(db):
    return db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NULL") == 0 and \
        db.value("SELECT count(*) FROM zcrm.to_fetch") == 0


@pytest.fixture
def stack(db, sim_stack):
    def make(*sim_args, cfg=None):
        sim, _, _, conf = sim_stack("--bulk-polls", "1", "--scopes", SCOPES, *sim_args, cfg=cfg)
        # 15 modules are 15 downloads in a few seconds: Zoho's 10 a minute
        # is another test's subject (test_hostile_remote), not this one's.
        sim.control("POST", "/config", {"download_limit_per_min": 0})
        return sim, conf

    return make


def test_every_module_loads_and_follows_a_webhook_fetch(db, stack, run_program):
    sim, conf = stack("--modules", ",".join("%s:6" % m for m in MODULES), "--seed", "17",
                      cfg={"sync": {"modules": ", ".join(MODULES)}})
    r = run_program("batch/initial_sync", config=conf, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for m in MODULES:
        truth = check(sim, db, m)
        assert len(truth["records"]) == 6
    # se_module beside what_id, from the bulk path
    for m in ("Tasks", "Calls", "Events"):
        t = {int(x["id"]): x for x in sim.control("GET", "/truth/%s" % m)["records"]}
        rows = db.query("SELECT id, what_id, se_module FROM zcrm.%s" % m.lower())
        assert any(r[2] for r in rows)
        for rid, what, se in rows:
            exp = t[rid]["What_Id"]
            assert what == (int(exp["id"]) if exp else None) and se == t[rid]["$se_module"]

    # An edit per module, notified: the webhook fetches it by id.
    edits = {"Deals": {"Stage": "Closed Won", "Amount": 1234.5},
             "Invoices": {"Status": "Approved"},
             "Tasks": {"What_Id": {"id": "5725767400900007919", "name": "Renewal 2027",
                                   "$se_module": "Deals"}},
             "Widgets": {"Name": "Edited widget"}}
    for m in MODULES:
        rid = sim.control("GET", "/truth/%s" % m)["records"][0]["id"]
        sim.control("PATCH", "/records/%s/%s" % (m, rid), {"values": edits.get(m, {})})
    assert sim.control("POST", "/flush", {"timeout": scaled(60)})["idle"]
    wait_until(lambda: settled(db), scaled(120), interval=0.2, what="the webhook's fetches")
    for m in MODULES:
        check(sim, db, m)
    assert db.value("SELECT se_module FROM zcrm.tasks WHERE id = %s",
                    int(sim.control("GET", "/truth/Tasks")["records"][0]["id"])) == "Deals"
    # (Every Deal was fetched by id once after the bulk load - its
    # multiselectlookup, multiuserlookup and fileupload fields are not
    # exported - so the edited one is told by its Modified_Time.)
    d = sim.control("GET", "/truth/Deals")["records"][0]
    assert db.value("SELECT source FROM zcrm.deals WHERE id = %s", int(d["id"])) == "fetch"
    assert db.value("SELECT stage FROM zcrm.deals WHERE id = %s", int(d["id"])) == "Closed Won"


def long_rich(sim, module="Cases", field="Resolution"):
    return [r for r in sim.control("GET", "/truth/%s" % module)["records"]
            if r[field] and len(r[field]) > 500]


def test_fetch_keeps_rich_text_whole(db, stack, run_program):
    """Get Records cuts rich text at 500 characters: a fetch asks for it in
    full (1 credit a record) instead of writing the cut over the full text
    the bulk load wrote; a short one costs nothing more. (Cases: no field
    that only the single-record GET returns, which would hide the cut.)"""
    sim, conf = stack("--modules", "Cases:40", "--seed", "5",
                      cfg={"sync": {"modules": "Cases"}})
    r = run_program("batch/initial_sync", config=conf, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    longs = long_rich(sim)
    assert longs, "the simulator makes long rich text now and then"
    check(sim, db, "Cases")
    sim.control("DELETE", "/credits")
    rec = longs[0]
    sim.control("PATCH", "/records/Cases/%s" % rec["id"], {"values": {"Status": "Escalated"}})
    assert sim.control("POST", "/flush", {"timeout": scaled(60)})["idle"]
    wait_until(lambda: settled(db) and db.value(
        "SELECT status FROM zcrm.cases WHERE id = %s", int(rec["id"])) == "Escalated",
        scaled(60), interval=0.2, what="the fetch")
    full = db.value("SELECT resolution FROM zcrm.cases WHERE id = %s", int(rec["id"]))
    assert full == rec["Resolution"] and len(full) > 500
    check(sim, db, "Cases")
    spent = sim.control("GET", "/credits")["by_endpoint"]
    assert spent.get("fetch_full_data") == 1, spent
    # A record whose rich text is short (or none): no extra call.
    short = next(r for r in sim.control("GET", "/truth/Cases")["records"]
                 if not r["Resolution"] or len(r["Resolution"]) < 500)
    sim.control("DELETE", "/credits")
    sim.control("PATCH", "/records/Cases/%s" % short["id"], {"values": {"Status": "On Hold"}})
    assert sim.control("POST", "/flush", {"timeout": scaled(60)})["idle"]
    wait_until(lambda: settled(db) and db.value(
        "SELECT status FROM zcrm.cases WHERE id = %s", int(short["id"])) == "On Hold",
        scaled(60), interval=0.2, what="the fetch")
    spent = sim.control("GET", "/credits")["by_endpoint"]
    assert not spent.get("fetch_full_data"), spent
    check(sim, db, "Cases")


def users_rows(db):
    return {r[0]: r[1:] for r in db.query(
        "SELECT id, name, email, role, profile, status FROM zcrm.users ORDER BY id")}


def test_users_kept_by_incremental_sync(db, stack, run_program, pg):
    sim, conf = stack("--modules", "Deals:5", cfg={"sync": {"modules": "Deals", "users_interval": 3600},
                                                   "database": {"read_role": "zcrm_reader_u"}})
    db.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'zcrm_reader_u')"
               " THEN CREATE ROLE zcrm_reader_u; END IF; END $$")
    r = run_program("batch/initial_sync", config=conf, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert users_rows(db) == {}
    sim.control("DELETE", "/credits")
    r = run_program("batch/incremental_sync", config=conf, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    api = {int(u["id"]): u for u in sim.control("GET", "/users")["users"]}
    assert users_rows(db) == {i: (u["full_name"], u["email"], u["role"]["name"], u["profile"]["name"],
                                  u["status"]) for i, u in api.items()}
    assert sim.control("GET", "/credits")["by_endpoint"].get("users") == 1
    # Owners resolve with a join, for the read role too.
    n = db.value("SELECT count(*) FROM zcrm.deals_live d JOIN zcrm.users u ON u.id = d.owner")
    assert n == 5
    assert db.value("SELECT has_table_privilege('zcrm_reader_u', 'zcrm.users', 'SELECT')") is True
    st = run_program("batch/status", config=conf, timeout=60)
    assert st.returncode == 0 and "users: 6 (6 active), last asked 20" in st.stdout, st.stdout

    # Within the interval: no call.
    sim.control("DELETE", "/credits")
    new = sim.control("POST", "/users", {"full_name": "Nova Quinn", "email": "nova@zylker.com"})
    off = next(iter(api))
    sim.control("PATCH", "/users/%d" % off, {"status": "disabled"})
    assert run_program("batch/incremental_sync", config=conf, timeout=300).returncode == 0
    assert "users" not in sim.control("GET", "/credits")["by_endpoint"]
    # Past it: one call with If-Modified-Since brings both changes.
    db.execute("UPDATE zcrm.users_state SET checked_at = now() - interval '3601 seconds'")
    assert run_program("batch/incremental_sync", config=conf, timeout=300).returncode == 0
    assert sim.control("GET", "/credits")["by_endpoint"].get("users") == 1
    rows = users_rows(db)
    assert rows[int(new["id"])][0] == "Nova Quinn" and rows[off][4] == "disabled"
    reqs = [q for q in sim.control("GET", "/requests?since=0")["requests"] if q["path"] == "/crm/v6/users"]
    assert len(reqs) == 2
    # Idle: the newest second's users again (If-Modified-Since less a
    # second), one credit, nothing changes.
    db.execute("UPDATE zcrm.users_state SET checked_at = now() - interval '3601 seconds'")
    sim.control("DELETE", "/credits")
    assert run_program("batch/incremental_sync", config=conf, timeout=300).returncode == 0
    reqs = [q for q in sim.control("GET", "/requests?since=0")["requests"] if q["path"] == "/crm/v6/users"]
    assert reqs[-1]["status"] in (200, 304)
    assert users_rows(db) == rows


def test_users_without_the_scope_warns(db, sim_factory, config_factory, run_program):
    sim = sim_factory("-q", "--modules", "Deals:3", "--bulk-polls", "1")   # default scopes
    conf = config_factory({"sync": {"modules": "Deals"}}, sim=sim, name="zcrm")
    assert run_program("batch/initial_sync", config=conf, args=["--no-channel"],
                       timeout=300).returncode == 0
    r = run_program("batch/incremental_sync", config=conf, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ZohoCRM.users.READ" in r.stderr
    assert db.value("SELECT last_error FROM zcrm.users_state") is not None
    import json
    st = run_program("batch/status", args=["--json"], config=conf, timeout=60)
    users = json.loads(st.stdout)["users"]
    assert users["count"] == 0 and "OAUTH_SCOPE_MISMATCH" in users["last_error"], users
    r = run_program("batch/incremental_sync", config=conf, timeout=300)   # within the interval
    assert r.returncode == 0 and "ZohoCRM.users.READ" not in r.stderr


def test_users_walk_of_several_pages(db, stack, run_program):
    """More than 200 users: a page a run, the next page at the next run
    whatever the interval, then nothing until the interval has passed."""
    sim, conf = stack("--modules", "Deals:2", cfg={"sync": {"modules": "Deals"}})
    for k in range(200):
        sim.control("POST", "/users", {"full_name": "User %03d" % k, "email": "u%03d@zylker.com" % k})
    r = run_program("batch/initial_sync", config=conf, args=["--no-channel"], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    def users_calls():
        return [q for q in sim.control("GET", "/requests?since=0")["requests"]
                if q["path"] == "/crm/v6/users"]

    for expected_rows, expected_calls in ((200, 1), (206, 2), (206, 2)):
        assert run_program("batch/incremental_sync", config=conf, timeout=300).returncode == 0
        assert db.value("SELECT count(*) FROM zcrm.users") == expected_rows
        assert len(users_calls()) == expected_calls
    assert [q["query"] for q in users_calls()][1].find("page=2") >= 0
