"""Bulk Read: create, status lifecycle, paging, criteria, ZIP/CSV, callback, limits."""

import time
from datetime import datetime

import pytest

from simcsv import cell_equal, read_zip

READ = "/crm/bulk/v6/read"


def create(s, query, callback=None, headers=None):
    body = {"query": query}
    if callback:
        body["callback"] = {"url": callback, "method": "post"}
    return s.api("POST", READ, body, headers=headers)


def run_job(s, query, max_polls=20):
    r = create(s, query)
    assert r.status == 201, r
    jid = r.json["data"][0]["details"]["id"]
    for _ in range(max_polls):
        st = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
        if st["state"] == "COMPLETED":
            return jid, st
    raise AssertionError("job did not complete")


def download(s, jid):
    r = s.api("GET", "%s/%s/result" % (READ, jid))
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "application/x-download"
    return read_zip(r.body, jid)


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:60,Contacts:5", "--page-size", "25", "--bulk-step-ms", "0",
                    "--tz-offset", "+05:30")


def test_create_requires_json_content_type(s):
    r = s.api("POST", READ, b'{"query":{"module":{"api_name":"Leads"}}}', headers={"Content-Type": "text/plain"})
    assert r.status == 415 and r.json["code"] == "MEDIA_TYPE_NOT_SUPPORTED"


def test_create_validation(s):
    r = create(s, {"module": {"api_name": "Nope"}})
    assert r.status == 400 and r.json["status"] == "error"
    r = create(s, {"module": {"api_name": "Leads"}, "fields": ["Last_Name", "Bogus"]})
    assert r.status == 400 and r.json["details"]["api_name"] == "Bogus"
    r = s.api("POST", READ, {"callback": {"url": "http://x/"}})
    assert r.status == 400 and r.json["code"] == "MANDATORY_NOT_FOUND"
    r = s.api("POST", READ, {"query": {"module": {"api_name": "Leads"}}, "callback": {"url": "ftp://x"}})
    assert r.json["code"] == "INVALID_CALLBACK_URL"


def test_lifecycle_and_status_shape(s):
    r = create(s, {"module": {"api_name": "Leads"}, "fields": ["Last_Name", "Email"], "page": 1})
    assert r.status == 201
    d = r.json["data"][0]
    assert d["code"] == "ADDED_SUCCESSFULLY" and d["status"] == "success"
    assert d["details"]["state"] == "ADDED" and d["details"]["operation"] == "read"
    assert d["details"]["created_time"].endswith("+05:30")
    jid = d["details"]["id"]
    assert len(jid) == 19 and int(jid) > 2 ** 53
    st1 = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
    assert st1["state"] == "IN PROGRESS" and "result" not in st1
    st2 = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
    assert st2["state"] == "COMPLETED"
    assert st2["result"] == {"page": 1, "per_page": 25, "count": 25,
                             "download_url": "/crm/bulk/v6/read/%s/result" % jid, "more_records": True}
    assert st2["query"]["module"]["api_name"] == "Leads" and st2["file_type"] == "csv"
    r = s.api("GET", READ + "/5725767000000000001")
    assert r.status == 404 and r.json["code"] == "RESOURCE_NOT_FOUND"


def test_paging_and_csv_round_trip(s):
    truth = s.truth("Leads")
    metas = {f["api_name"]: f for f in truth["fields"]}
    by_id = {r["id"]: r for r in truth["records"]}
    seen = []
    for page, (count, more) in enumerate([(25, True), (25, True), (10, False)], start=1):
        jid, st = run_job(s, {"module": {"api_name": "Leads"}, "page": page})
        assert (st["result"]["count"], st["result"]["more_records"]) == (count, more)
        raw, rows = download(s, jid)
        header = rows[0]
        assert header[0] == "id" and header[1:] == [f["api_name"] for f in truth["fields"] if f["api_name"] != "id"]
        assert len(rows) - 1 == count
        for row in rows[1:]:
            rec = by_id[row[0]]
            for name, cell in zip(header, row):
                assert cell_equal(metas[name], cell, rec[name]), (name, cell, rec[name])
            seen.append(row[0])
        if page == 1:
            assert raw.endswith(b"\n") and not raw.endswith(b"\r\n")
    assert seen == sorted(by_id, key=int)
    # the data set really is nasty: embedded CRLF, LF, quotes and commas survived
    descs = [r["Description"] for r in truth["records"] if r["Description"]]
    assert any("\r\n" in d for d in descs) and any('"' in d for d in descs)


def test_requested_fields_and_dot_notation(s):
    jid, st = run_job(s, {"module": {"api_name": "Leads"},
                          "fields": ["Owner", "Owner.email", "Product_Interest", "Converted__s"]})
    _, rows = download(s, jid)
    assert rows[0] == ["id", "Owner", "Owner.email", "Product_Interest", "Converted__s"]
    truth = {r["id"]: r for r in s.truth()["records"]}
    for row in rows[1:]:
        rec = truth[row[0]]
        assert row[1] == rec["Owner"]["id"] and row[2] == rec["Owner"]["email"]
        assert row[3] == ";".join(rec["Product_Interest"])
        assert row[4] == ("true" if rec["Converted__s"] else "false")


def _ts(v):
    return datetime.fromisoformat(v).timestamp()


def test_criteria_on_modified_time(s):
    s.ctl("POST", "/_sim/config", {"page_size": 1000})
    truth = s.truth()["records"]
    times = sorted(_ts(r["Modified_Time"]) for r in truth)
    lo, hi = times[15], times[45]
    lo_s = next(r["Modified_Time"] for r in truth if _ts(r["Modified_Time"]) == lo)
    hi_s = next(r["Modified_Time"] for r in truth if _ts(r["Modified_Time"]) == hi)
    crit = {"group_operator": "and", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": lo_s},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": hi_s}]}
    jid, st = run_job(s, {"module": {"api_name": "Leads"}, "fields": ["Modified_Time"], "criteria": crit})
    _, rows = download(s, jid)
    want = sorted((r["id"] for r in truth if lo <= _ts(r["Modified_Time"]) < hi), key=int)
    assert [r[0] for r in rows[1:]] == want and st["result"]["count"] == len(want)
    # single condition, between, "or" groups
    jid, _ = run_job(s, {"module": {"api_name": "Leads"}, "criteria": {
        "field": {"api_name": "Modified_Time"}, "comparator": "greater_than", "value": lo_s}})
    assert len(download(s, jid)[1]) - 1 == sum(1 for r in truth if _ts(r["Modified_Time"]) > lo)
    jid, _ = run_job(s, {"module": {"api_name": "Leads"}, "criteria": {
        "field": {"api_name": "Modified_Time"}, "comparator": "between", "value": [lo_s, hi_s]}})
    assert len(download(s, jid)[1]) - 1 == sum(1 for r in truth if lo <= _ts(r["Modified_Time"]) <= hi)
    jid, _ = run_job(s, {"module": {"api_name": "Leads"}, "criteria": {"group_operator": "or", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_equal", "value": lo_s},
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": hi_s}]}})
    assert len(download(s, jid)[1]) - 1 == sum(1 for r in truth if _ts(r["Modified_Time"]) <= lo
                                                or _ts(r["Modified_Time"]) >= hi)


@pytest.mark.parametrize("crit,code", [
    ({"field": {"api_name": "Modified_Time"}, "comparator": "contains", "value": "x"},
     "FIELD_AND_COMPARATOR_IN_CRITERIA_NOT_COMPATIBLE"),
    ({"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": "2025-03-01T00:00:00.123+00:00"},
     "FIELD_AND_VALUE_IN_CRITERIA_NOT_COMPATIBLE"),
    ({"field": {"api_name": "Modified_Time"}, "comparator": "between", "value": "2025-03-01T00:00:00+00:00"},
     "COMPARATOR_AND_VALUE_IN_CRITERIA_NOT_COMPATIBLE"),
    ({"group_operator": "xor", "group": []}, "GROUP_OPERATOR_NOT_SUPPORTED"),
    ({"field": {"api_name": "Description"}, "comparator": "equal", "value": "x"}, "FIELD_IN_CRITERIA_NOT_SUPPORTED"),
])
def test_bad_criteria(s, crit, code):
    r = create(s, {"module": {"api_name": "Leads"}, "criteria": crit})
    assert r.status == 400 and r.json["code"] == code


def test_snapshot_taken_when_in_progress(s):
    r = create(s, {"module": {"api_name": "Leads"}, "fields": ["Last_Name"]})
    jid = r.json["data"][0]["details"]["id"]
    first = s.truth()["records"][0]["id"]
    assert s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]["state"] == "IN PROGRESS"
    s.ctl("PATCH", "/_sim/records/Leads/%s" % first, {"values": {"Last_Name": "Changed After Snapshot"}})
    assert s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]["state"] == "COMPLETED"
    _, rows = download(s, jid)
    assert rows[1][0] == first and rows[1][1] != "Changed After Snapshot"


def test_callback_delivery(s, receiver):
    r = create(s, {"module": {"api_name": "Contacts"}}, callback=receiver.url + "/bulk?k=abc")
    jid = r.json["data"][0]["details"]["id"]
    s.api("GET", "%s/%s" % (READ, jid))
    s.api("GET", "%s/%s" % (READ, jid))
    items = receiver.wait_for(1)
    assert len(items) == 1 and items[0]["path"] == "/bulk?k=abc"
    d = items[0]["body"]["data"][0]
    assert d["id"] == jid and d["state"] == "COMPLETED" and d["result"]["count"] == 5
    assert s.ctl("POST", "/_sim/flush", {"timeout": 5})["idle"] is True
    log = s.ctl("GET", "/_sim/notifications", query={"kind": "bulk_callback"})["notifications"]
    assert log[0]["status"] == 200 and log[0]["job_id"] == jid


def test_time_based_completion_and_callback(make_sim, receiver):
    s = make_sim("--modules", "Leads:3", "--bulk-polls", "2", "--bulk-step-ms", "100")
    create(s, {"module": {"api_name": "Leads"}}, callback=receiver.url + "/cb")
    items = receiver.wait_for(1, timeout=5)
    assert items and items[0]["body"]["data"][0]["state"] == "COMPLETED"


def test_zero_polls_completes_immediately(make_sim):
    s = make_sim("--modules", "Leads:3", "--bulk-polls", "0", "--bulk-step-ms", "0")
    r = create(s, {"module": {"api_name": "Leads"}})
    assert r.json["data"][0]["details"]["state"] == "ADDED"
    jid = r.json["data"][0]["details"]["id"]
    st = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
    assert st["state"] == "COMPLETED" and st["result"]["per_page"] == 200000 and st["result"]["count"] == 3


def test_failure_fault(s, receiver):
    s.ctl("POST", "/_sim/faults", {"bulk": {"fail": 1}})
    r = create(s, {"module": {"api_name": "Leads"}}, callback=receiver.url + "/cb")
    jid = r.json["data"][0]["details"]["id"]
    s.api("GET", "%s/%s" % (READ, jid))
    st = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
    assert st["state"] == "FAILURE" and st["result"]["error_message"]["code"] == "INTERNAL_SERVER_ERROR"
    assert receiver.wait_for(1)[0]["body"]["data"][0]["state"] == "FAILURE"
    assert s.api("GET", "%s/%s/result" % (READ, jid)).status == 404


def test_download_rate_limit(s):
    s.ctl("POST", "/_sim/config", {"download_limit_per_min": 2})
    jid, _ = run_job(s, {"module": {"api_name": "Contacts"}})
    assert s.api("GET", "%s/%s/result" % (READ, jid)).status == 200
    assert s.api("GET", "%s/%s/result" % (READ, jid)).status == 200
    r = s.api("GET", "%s/%s/result" % (READ, jid))
    assert r.status == 429 and r.json["code"] == "TOO_MANY_REQUESTS"
    st = s.ctl("GET", "/_sim/stats")
    assert st["downloads"] == 2 and st["downloads_throttled"] == 1


def test_streamed_zip_variant(s):
    s.ctl("POST", "/_sim/config", {"zip_streamed": True})
    jid, _ = run_job(s, {"module": {"api_name": "Contacts"}})
    r = s.api("GET", "%s/%s/result" % (READ, jid))
    import io
    import zipfile
    info = zipfile.ZipFile(io.BytesIO(r.body)).infolist()[0]
    assert info.flag_bits & 0x08
    _, rows = read_zip(r.body, jid)
    assert len(rows) == 6


def test_job_wall_time(make_sim):
    """--bulk-job-ms: polls do not hurry a job past its wall time; once it
    is over the job completes by itself. jobs_running_max counts the jobs
    at work side by side."""
    s = make_sim("--modules", "Leads:30", "--bulk-polls", "1", "--bulk-step-ms", "0",
                 "--bulk-job-ms", "3600000")
    slow = create(s, {"module": {"api_name": "Leads"}}).json["data"][0]["details"]["id"]
    for _ in range(5):
        st = s.api("GET", "%s/%s" % (READ, slow)).json["data"][0]
        assert st["state"] == "IN PROGRESS" and "result" not in st
    s.ctl("POST", "/_sim/config", {"bulk_job_ms": 50})
    quick = create(s, {"module": {"api_name": "Leads"}}).json["data"][0]["details"]["id"]
    # No polls: the ticker completes it once its wall time is over.
    for _ in range(6000):
        if [j for j in s.ctl("GET", "/_sim/jobs")["jobs"] if j["id"] == quick][0]["state"] \
                == "COMPLETED":
            break
        time.sleep(0.01)
    st = s.api("GET", "%s/%s" % (READ, quick)).json["data"][0]
    assert st["state"] == "COMPLETED" and st["result"]["count"] == 30
    assert s.api("GET", "%s/%s" % (READ, slow)).json["data"][0]["state"] == "IN PROGRESS"
    assert s.ctl("GET", "/_sim/stats")["jobs_running_max"] == 2
