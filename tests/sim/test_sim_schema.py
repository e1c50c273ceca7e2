"""POST /_sim/fields: schema changes at run time, in Zoho's metadata, CSV and
JSON shapes, without moving Modified_Time."""

import pytest

from simcsv import read_zip

READ = "/crm/bulk/v6/read"


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:12", "--bulk-step-ms", "0", "--tz-offset", "+05:30",
                    "--seed", "4")


def meta(s):
    r = s.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"})
    assert r.status == 200, r
    return {f["api_name"]: f for f in r.json["fields"]}


def export(s, fields=None):
    q = {"module": {"api_name": "Leads"}}
    if fields:
        q["fields"] = fields
    r = s.api("POST", READ, {"query": q})
    assert r.status == 201, r
    jid = r.json["data"][0]["details"]["id"]
    for _ in range(10):
        st = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
        if st["state"] == "COMPLETED":
            break
    _, rows = read_zip(s.api("GET", "%s/%s/result" % (READ, jid)).body, jid)
    return rows[0], {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}


def records(s, ids, fields):
    r = s.api("GET", "/crm/v6/Leads", query={"ids": ",".join(ids), "fields": ",".join(fields)})
    assert r.status == 200, r
    return {x["id"]: x for x in r.json["data"]}


def fields(s, *changes, **kw):
    body = dict(module="Leads", changes=list(changes), **kw)
    return s.ctl("POST", "/_sim/fields", body)


def times(s):
    return {r["id"]: r["Modified_Time"] for r in s.truth()["records"]}


def test_add_field_everywhere_without_moving_modified_time(s, make_sim):
    before = times(s)
    out = fields(s, {"op": "add", "api_name": "Region", "data_type": "picklist"},
                 {"op": "add", "api_name": "Score", "data_type": "integer"})
    assert [c["api_name"] for c in out["changes"]] == ["Region", "Score"]
    m = meta(s)
    assert m["Region"]["data_type"] == "picklist" and m["Region"]["json_type"] == "string"
    assert m["Region"]["custom_field"] is True and len(m["Region"]["id"]) == 19
    assert [v["actual_value"] for v in m["Region"]["pick_list_values"]][0] == "-None-"
    assert m["Score"]["json_type"] == "integer"
    assert times(s) == before
    truth = {r["id"]: r for r in s.truth()["records"]}
    assert any(r["Score"] is not None for r in truth.values())
    assert all(r["Score"] is None or isinstance(r["Score"], int) for r in truth.values())
    header, rows = export(s)
    assert "Region" in header and "Score" in header
    for rid, r in truth.items():
        assert rows[rid]["Score"] == ("" if r["Score"] is None else str(r["Score"]))
        assert rows[rid]["Region"] == (r["Region"] or "")
    got = records(s, list(truth)[:3], ["Region", "Score"])
    for rid, r in got.items():
        assert r["Region"] == truth[rid]["Region"] and r["Score"] == truth[rid]["Score"]
    # deterministic: the same seed and change give the same values
    s2 = make_sim("--modules", "Leads:12", "--bulk-step-ms", "0", "--seed", "4")
    fields(s2, {"op": "add", "api_name": "Region", "data_type": "picklist"},
           {"op": "add", "api_name": "Score", "data_type": "integer"})
    assert [(r["Region"], r["Score"]) for r in s2.truth()["records"]] == \
        [(truth[r]["Region"], truth[r]["Score"]) for r in sorted(truth, key=int)]


def test_remove_field_disappears(s):
    fid = meta(s)["Fax"]["id"]
    fields(s, {"op": "remove", "api_name": "Fax"})
    assert "Fax" not in meta(s) and fid not in {f["id"] for f in meta(s).values()}
    header, _ = export(s)
    assert "Fax" not in header
    rec = s.truth()["records"][0]
    assert "Fax" not in rec
    r = s.api("GET", "/crm/v6/Leads", query={"ids": rec["id"], "fields": "Fax"})
    assert r.status == 400 and r.json["code"] == "INVALID_DATA"
    r = s.api("POST", READ, {"query": {"module": {"api_name": "Leads"}, "fields": ["Fax"]}})
    assert r.status == 400 and r.json["code"] == "FIELD_NOT_AVAILABLE"


def test_rename_keeps_id_and_values(s):
    before = {r["id"]: r["Skype_ID"] for r in s.truth()["records"]}
    fid = meta(s)["Skype_ID"]["id"]
    out = fields(s, {"op": "rename", "api_name": "Skype_ID", "new_api_name": "Skype_Handle"})
    assert out["changes"][0]["old_api_name"] == "Skype_ID"
    m = meta(s)
    assert "Skype_ID" not in m and m["Skype_Handle"]["id"] == fid
    assert {r["id"]: r["Skype_Handle"] for r in s.truth()["records"]} == before
    header, rows = export(s, ["Skype_Handle", "Modified_Time"])
    assert header == ["id", "Skype_Handle", "Modified_Time"]
    assert {k: (v["Skype_Handle"] or None) for k, v in rows.items()} == before


def test_retype_converts_like_zoho(s):
    recs = s.truth()["records"]
    a, b = recs[0]["id"], recs[1]["id"]
    s.ctl("PATCH", "/_sim/records/Leads/%s" % a, {"values": {"Fax": "12.5"}, "silent": True})
    s.ctl("PATCH", "/_sim/records/Leads/%s" % b, {"values": {"Fax": "call me"}, "silent": True})
    fid = meta(s)["Fax"]["id"]
    before = times(s)
    fields(s, {"op": "retype", "api_name": "Fax", "data_type": "double"},
           {"op": "retype", "api_name": "No_of_Employees", "data_type": "text"})
    m = meta(s)
    assert m["Fax"]["id"] == fid and m["Fax"]["data_type"] == "double"
    assert m["Fax"]["json_type"] == "double" and m["No_of_Employees"]["json_type"] == "string"
    assert times(s) == before
    truth = {r["id"]: r for r in s.truth()["records"]}
    assert truth[a]["Fax"] == 12.5 and truth[b]["Fax"] is None
    assert all(r["No_of_Employees"] is None or isinstance(r["No_of_Employees"], str)
               for r in truth.values())
    _, rows = export(s, ["Fax", "No_of_Employees", "Modified_Time"])
    assert rows[a]["Fax"] == "12.5" and rows[b]["Fax"] == ""
    for rid, r in truth.items():
        assert rows[rid]["No_of_Employees"] == (r["No_of_Employees"] or "")


def test_unknown_type_and_picklist_values(s):
    fields(s, {"op": "add", "api_name": "Odd", "data_type": "weird_widget",
               "json_type": "string"})
    assert meta(s)["Odd"]["data_type"] == "weird_widget"
    header, _ = export(s)
    assert "Odd" in header
    fields(s, {"op": "picklist_add", "api_name": "Rating", "values": ["Frozen"]})
    vals = [v["actual_value"] for v in meta(s)["Rating"]["pick_list_values"]]
    assert vals[-1] == "Frozen"


def test_touch_moves_modified_time_and_errors(s):
    before = times(s)
    fields(s, {"op": "add", "api_name": "Touched"}, touch=True)
    assert all(t != before[k] for k, t in times(s).items())
    for bad in ({"op": "rename", "api_name": "Nope", "new_api_name": "X"},
                {"op": "add", "api_name": "Email"},
                {"op": "remove", "api_name": "Modified_Time"},
                {"op": "explode", "api_name": "Email"}):
        r = s.api("POST", "/_sim/fields", {"module": "Leads", "changes": [bad]})
        assert r.status == 400, (bad, r)
