"""Formula and rollup fields (--formulas): Zoho's metadata shape, values in
Records JSON and Bulk Read CSV by their return type, and
POST /_sim/formulas/recompute changing every formula value without moving
Modified_Time and without a notification."""

from simhelpers import http
from test_sim_bulk import download, run_job

FORMULAS = {"Age_Days": ("formula", "double"), "Age_Label": ("formula", "text"),
            "Rollup_Total": ("rollup_summary", "currency")}


def fields_of(s, module="Leads"):
    return s.api("GET", "/crm/v6/settings/fields", query={"module": module}).json["fields"]


def test_opt_in_keeps_field_counts(make_sim):
    # A custom module (the generic table) padded to 20 fields.
    plain = make_sim("--modules", "Leads:3,My_Custom:2:20", "--bulk-step-ms", "0")
    assert not FORMULAS.keys() & {f["api_name"] for f in fields_of(plain)}
    assert len(fields_of(plain, "My_Custom")) == 20
    s = make_sim("--modules", "Leads:3,My_Custom:2:20", "--formulas", "--bulk-step-ms", "0")
    assert len(fields_of(s)) == len(fields_of(plain)) + 3
    assert len(fields_of(s, "My_Custom")) == 23


def test_metadata_shape(make_sim):
    s = make_sim("--modules", "Leads:3", "--formulas", "--bulk-step-ms", "0")
    by = {f["api_name"]: f for f in fields_of(s)}
    for name, (dtype, ret) in FORMULAS.items():
        f = by[name]
        assert f["data_type"] == dtype and f["read_only"] is True and f["custom_field"] is True
        assert f[dtype]["return_type"] == ret, f
        assert f["json_type"] == {"double": "double", "currency": "double", "text": "string"}[ret]
    assert by["Age_Days"]["formula"]["expression"]
    assert by["Rollup_Total"]["rollup_summary"]["expression"]["function"] == "SUM"


def test_recompute_changes_values_not_modified_time(make_sim, receiver):
    s = make_sim("--modules", "Leads:40", "--formulas", "--bulk-step-ms", "0", "--page-size", "100")
    r = s.api("POST", "/crm/v6/actions/watch", {"watch": [{
        "channel_id": "1000000068001", "events": ["Leads.all"], "notify_url": receiver.url}]})
    assert r.status == 200, r
    before = {x["id"]: x for x in s.truth()["records"]}
    one = next(iter(before.values()))
    assert isinstance(one["Age_Days"], float) and isinstance(one["Age_Label"], str)
    assert isinstance(one["Rollup_Total"], float)
    out = s.ctl("POST", "/_sim/formulas/recompute", {})
    assert out == {"clock": 1, "records": 40}, out
    after = {x["id"]: x for x in s.truth()["records"]}
    assert after.keys() == before.keys()
    for rid, old in before.items():
        new = after[rid]
        for name in FORMULAS:
            assert new[name] != old[name], (rid, name, old[name], new[name])
        rest = {k: v for k, v in new.items() if k not in FORMULAS}
        assert rest == {k: v for k, v in old.items() if k not in FORMULAS}
    assert s.ctl("POST", "/_sim/flush", {"timeout": 5})["idle"]
    assert receiver.bodies() == []
    # REST by id carries the new values, typed by the return type.
    rid = next(iter(after))
    rec = s.api("GET", "/crm/v6/Leads", query={"ids": rid, "fields": "Age_Days,Age_Label"}).json
    assert rec["data"][0]["Age_Days"] == after[rid]["Age_Days"]
    assert rec["data"][0]["Age_Label"] == after[rid]["Age_Label"]
    # Writing a formula is refused; an edit recomputes it.
    r = http("PATCH", s.url("/_sim/records/Leads/%s" % rid), {"values": {"Age_Label": "x"}})
    assert r.status == 400, r
    r = http("POST", s.url("/_sim/formulas/recompute"), {"steps": 0})
    assert r.status == 400, r
    edited = s.ctl("PATCH", "/_sim/records/Leads/%s" % rid,
                   {"values": {"Owner": {"id": "5725767000000411091"}}, "silent": True})
    assert edited["Age_Label"] == "Admin, Sync, day 1", edited["Age_Label"]


def test_bulk_read_of_id_and_formulas(make_sim):
    s = make_sim("--modules", "Leads:30", "--formulas", "--bulk-step-ms", "0", "--page-size", "100")
    s.ctl("POST", "/_sim/formulas/recompute", {"steps": 3})
    truth = {x["id"]: x for x in s.truth()["records"]}
    jid, st = run_job(s, {"module": {"api_name": "Leads"},
                          "fields": ["id", "Age_Days", "Age_Label", "Rollup_Total"]})
    _, rows = download(s, jid)
    assert rows[0] == ["id", "Age_Days", "Age_Label", "Rollup_Total"]
    assert len(rows) == 31
    for rid, days, label, total in rows[1:]:
        t = truth[rid]
        assert float(days) == t["Age_Days"] and float(total) == t["Rollup_Total"]
        assert label == t["Age_Label"] and label.endswith(", day 3")
    # A full export carries them too.
    jid, _ = run_job(s, {"module": {"api_name": "Leads"}})
    _, rows = download(s, jid)
    assert {"Age_Days", "Age_Label", "Rollup_Total"} <= set(rows[0])
