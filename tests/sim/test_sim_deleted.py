"""Deleted Records API: paging, type filter, If-Modified-Since, 204."""

import time
from datetime import datetime


def test_deleted_paging_and_filters(make_sim):
    s = make_sim("--modules", "Leads:20")
    assert s.api("GET", "/crm/v6/Leads/deleted").status == 204
    ids = [r["id"] for r in s.truth()["records"][:5]]
    first = []
    for rid in ids[:3]:
        first.append(s.ctl("DELETE", "/_sim/records/Leads/%s" % rid))
    assert first[0]["type"] == "recycle"
    time.sleep(1.1)
    s.ctl("DELETE", "/_sim/records/Leads/%s" % ids[3])
    s.ctl("DELETE", "/_sim/records/Leads/%s" % ids[4], query={"permanent": "1"})
    got, flags = [], []
    for page in range(1, 5):
        r = s.api("GET", "/crm/v6/Leads/deleted", query={"type": "all", "page": page, "per_page": 2})
        if r.status == 204:
            break
        got += r.json["data"]
        flags.append((r.json["info"]["count"], r.json["info"]["more_records"], r.json["info"]["page"]))
    assert flags == [(2, True, 1), (2, True, 2), (1, False, 3)]
    assert sorted(e["id"] for e in got) == sorted(ids)
    by_id = {e["id"]: e for e in got}
    rec = by_id[ids[0]]
    assert rec["type"] == "recycle" and rec["display_name"] and set(rec["deleted_by"]) == {"name", "id"}
    perm = by_id[ids[4]]
    assert perm["type"] == "permanent"
    assert perm["display_name"] is None and perm["deleted_by"] is None and perm["created_by"] is None
    assert len(s.api("GET", "/crm/v6/Leads/deleted", query={"type": "recycle"}).json["data"]) == 4
    assert [e["id"] for e in s.api("GET", "/crm/v6/Leads/deleted", query={"type": "permanent"}).json["data"]] \
        == [ids[4]]
    r = s.api("GET", "/crm/v6/Leads/deleted", query={"type": "bogus"})
    assert r.status == 400
    # If-Modified-Since: only entries deleted after the first batch
    r = s.api("GET", "/crm/v6/Leads/deleted", headers={"If-Modified-Since": first[-1]["deleted_time"]})
    assert sorted(e["id"] for e in r.json["data"]) == sorted(ids[3:])
    later = datetime.fromtimestamp(time.time() + 60).astimezone().isoformat(timespec="seconds")
    assert s.api("GET", "/crm/v6/Leads/deleted", headers={"If-Modified-Since": later}).status == 204
    # deleted records are gone from the Records API and listed in truth
    truth = s.truth()
    assert not {r["id"] for r in truth["records"]} & set(ids)
    assert sorted(d["id"] for d in truth["deleted"]) == sorted(ids)


def test_initial_deleted_and_restore(make_sim):
    s = make_sim("--modules", "Leads:5", "--initial-deleted", "4")
    data = s.api("GET", "/crm/v6/Leads/deleted").json["data"]
    assert len(data) == 4 and sorted(e["type"] for e in data) == ["permanent"] * 2 + ["recycle"] * 2
    rid = s.truth()["records"][0]["id"]
    s.ctl("DELETE", "/_sim/records/Leads/%s" % rid)
    s.ctl("POST", "/_sim/records/Leads/%s/restore" % rid)
    assert s.api("GET", "/crm/v6/Leads/%s" % rid).status == 200
    assert len(s.api("GET", "/crm/v6/Leads/deleted").json["data"]) == 4
