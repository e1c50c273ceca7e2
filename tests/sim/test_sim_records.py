"""Records API: by ids, single record, listing, converted filter, count."""

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:60,Contacts:5", "--tz-offset", "-11:00")


def live_unconverted(truth, n):
    return [r for r in truth["records"] if not r["Converted__s"]][:n]


def test_ids_with_fields_shapes(s):
    truth = s.truth()
    recs = live_unconverted(truth, 3)
    fields = ["Last_Name", "Owner", "Product_Interest", "Annual_Revenue", "Email_Opt_Out",
              "Modified_Time", "External_Ref", "Expected_Close"]
    r = s.api("GET", "/crm/v6/Leads", query={"ids": ",".join(x["id"] for x in recs), "fields": ",".join(fields)})
    assert r.status == 200
    data = {d["id"]: d for d in r.json["data"]}
    assert set(data) == {x["id"] for x in recs}
    for x in recs:
        d = data[x["id"]]
        assert set(d) == {"id"} | set(fields)
        for f in fields:
            assert d[f] == x[f]
        assert isinstance(d["id"], str) and int(d["id"]) > 2 ** 53
        assert set(d["Owner"]) == {"name", "id", "email"}
        assert isinstance(d["Product_Interest"], list)
        assert d["Modified_Time"].endswith("-11:00")
    assert r.json["info"]["count"] == 3


def test_fields_mandatory_and_limits(s):
    ids = [x["id"] for x in s.truth()["records"][:2]]
    for q in ({"ids": ",".join(ids)}, {}):
        r = s.api("GET", "/crm/v6/Leads", query=q)
        assert r.status == 400 and r.json["code"] == "REQUIRED_PARAM_MISSING"
        assert r.json["details"] == {"param_name": "fields"}
    many = ",".join(["Last_Name"] * 51)
    r = s.api("GET", "/crm/v6/Leads", query={"fields": many})
    assert r.status == 400 and r.json["code"] == "LIMIT_EXCEEDED"
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name", "ids": ",".join(str(10 ** 18 + i) for i in range(101))})
    assert r.status == 400 and r.json["code"] == "LIMIT_EXCEEDED"
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name", "ids": ",".join(str(10 ** 18 + i) for i in range(100))})
    assert r.status == 204 and r.body == b""
    r = s.api("GET", "/crm/v6/Nope", query={"fields": "Last_Name"})
    assert r.status == 400 and r.json["code"] == "INVALID_MODULE"


def test_converted_filter(s):
    rid = live_unconverted(s.truth(), 1)[0]["id"]
    s.ctl("PATCH", "/_sim/records/Leads/%s" % rid, {"convert": True})
    q = {"ids": rid, "fields": "Last_Name,Converted__s"}
    assert s.api("GET", "/crm/v6/Leads", query=q).status == 204
    for conv in ("true", "both"):
        r = s.api("GET", "/crm/v6/Leads", query=dict(q, converted=conv))
        assert r.status == 200 and r.json["data"][0]["Converted__s"] is True
    listed = s.api("GET", "/crm/v6/Leads", query={"fields": "Converted__s", "per_page": 200}).json["data"]
    assert all(d["Converted__s"] is False for d in listed)
    both = s.api("GET", "/crm/v6/Leads", query={"fields": "Converted__s", "per_page": 200, "converted": "both"})
    assert len(both.json["data"]) == 60


def test_deleted_ids_are_omitted(s):
    recs = live_unconverted(s.truth(), 2)
    s.ctl("DELETE", "/_sim/records/Leads/%s" % recs[0]["id"])
    r = s.api("GET", "/crm/v6/Leads", query={"ids": "%s,%s" % (recs[0]["id"], recs[1]["id"]), "fields": "Email"})
    assert [d["id"] for d in r.json["data"]] == [recs[1]["id"]]
    r = s.api("GET", "/crm/v6/Leads", query={"ids": recs[0]["id"], "fields": "Email"})
    assert r.status == 204 and r.body == b""


def test_single_record_all_fields(s):
    truth = s.truth()
    rec = truth["records"][5]
    r = s.api("GET", "/crm/v6/Leads/%s" % rec["id"])
    assert r.status == 200
    d = r.json["data"][0]
    for f in truth["fields"]:
        assert d[f["api_name"]] == rec[f["api_name"]]
    assert d["$approval_state"] == "approved"
    assert s.api("GET", "/crm/v6/Leads/%s" % rec["id"], query={"fields": "Email"}).json["data"][0] == \
        {"id": rec["id"], "Email": rec["Email"]}
    assert s.api("GET", "/crm/v6/Leads/5725767000000000001").status == 204


def test_listing_paging_sort_and_if_modified_since(s):
    truth = s.truth()
    visible = [r for r in truth["records"] if not r["Converted__s"]]
    got = []
    for page in range(1, 10):
        r = s.api("GET", "/crm/v6/Leads", query={"fields": "Modified_Time", "per_page": 20, "page": page,
                                                 "sort_by": "Modified_Time", "sort_order": "asc"})
        if r.status == 204:
            break
        got += r.json["data"]
        if not r.json["info"]["more_records"]:
            break
    assert sorted(d["id"] for d in got) == sorted(r["id"] for r in visible)
    ts = [datetime.fromisoformat(d["Modified_Time"]) for d in got]
    assert ts == sorted(ts)
    newest = max(datetime.fromisoformat(r["Modified_Time"]) for r in visible)
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name"},
              headers={"If-Modified-Since": newest.isoformat()})
    assert r.status == 304 and r.body == b""
    cut = newest - timedelta(seconds=1)
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name"},
              headers={"If-Modified-Since": cut.astimezone(timezone.utc).isoformat()})
    assert r.status == 200
    assert all(datetime.fromisoformat(x["Modified_Time"]) > cut
               for x in truth["records"] if x["id"] in {d["id"] for d in r.json["data"]})
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name", "page": 11, "per_page": 200})
    assert r.status == 400 and r.json["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"


def test_count(s):
    assert s.api("GET", "/crm/v6/Contacts/actions/count").json == {"count": 5}
    s.ctl("POST", "/_sim/records/Contacts", {"values": {"Last_Name": "Nuevo, \"Señor\""}})
    assert s.api("GET", "/crm/v6/Contacts/actions/count").json == {"count": 6}


def test_control_create_update_shapes(s):
    rec = s.ctl("POST", "/_sim/records/Leads", {"values": {"Last_Name": "Ünïcødé\r\nLine", "First_Name": "A,B",
                                                            "Product_Interest": ["Mobile App", "CRM Plus"],
                                                            "Owner": {"id": "5725767000000411019"}}})
    assert rec["Full_Name"] == "A,B Ünïcødé\r\nLine"
    assert rec["Owner"]["name"] == "José Álvarez"
    assert rec["Created_Time"] == rec["Modified_Time"]
    got = s.api("GET", "/crm/v6/Leads/%s" % rec["id"]).json["data"][0]
    assert got["Product_Interest"] == ["Mobile App", "CRM Plus"]
    upd = s.ctl("PATCH", "/_sim/records/Leads/%s" % rec["id"], {"values": {"Annual_Revenue": 1234.5}})
    assert upd["Annual_Revenue"] == 1234.5 and upd["$changed_fields"] == ["Annual_Revenue"]
    r = s.api("GET", "/crm/v6/Leads/%s" % rec["id"], query={"fields": "Annual_Revenue"})
    assert r.json["data"][0]["Annual_Revenue"] == 1234.5


def test_change_listing_as_incremental_sync_asks(s):
    """The listing incremental_sync sends (zoho-api.md §4.1): fields
    id,Modified_Time, sorted by Modified_Time ascending, 200 a page,
    converted=both, If-Modified-Since. Only those two keys come back, oldest
    first, all modified after the header's time; 304 when nothing was; every
    answer carries a Date header (Zoho's clock: the catch-up's watermark)."""
    q = {"fields": "id,Modified_Time", "sort_by": "Modified_Time", "sort_order": "asc",
         "per_page": 200, "converted": "both"}
    truth = s.truth()
    times = sorted(datetime.fromisoformat(r["Modified_Time"]) for r in truth["records"])
    cut = times[len(times) // 2]
    r = s.api("GET", "/crm/v6/Leads", query=q,
              headers={"If-Modified-Since": cut.astimezone(timezone.utc).isoformat()})
    assert r.status == 200
    data = r.json["data"]
    assert data and all(set(d) == {"id", "Modified_Time"} for d in data)
    got = [datetime.fromisoformat(d["Modified_Time"]) for d in data]
    assert got == sorted(got) and all(t > cut for t in got)
    assert len(data) == sum(1 for t in times if t > cut)
    assert parsedate_to_datetime(r.headers["Date"]).tzinfo is not None
    r = s.api("GET", "/crm/v6/Leads", query=q,
              headers={"If-Modified-Since": times[-1].astimezone(timezone.utc).isoformat()})
    assert r.status == 304 and r.body == b""
    assert parsedate_to_datetime(r.headers["Date"]).tzinfo is not None
