"""Notification callbacks to a local receiver, incl. drop/duplicate faults."""

import time

import pytest


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:30,Contacts:5", "--tz-offset", "+05:30")


def subscribe(s, url, cid="1000000068001", **kw):
    ch = {"channel_id": cid, "events": ["Leads.all"], "notify_url": url}
    ch.update(kw)
    r = s.api("POST", "/crm/v6/actions/watch", {"watch": [ch]})
    assert r.status == 200, r
    return r


def test_insert_update_delete_payloads(s, receiver):
    subscribe(s, receiver.url + "/zoho/notify?k=abc&x=1%2B2", token="zcrm-sync-7f3a9c",
              return_affected_field_values=True)
    t0 = time.time()
    rec = s.ctl("POST", "/_sim/records/Leads", {"values": {"Last_Name": "Zoë \"Q\", Ltd"}})
    b = receiver.wait_for(1)[0]["body"]
    assert set(b) == {"server_time", "query_params", "module", "resource_uri", "ids", "affected_fields",
                      "operation", "channel_id", "token", "affected_values"}
    assert b["operation"] == "insert" and b["ids"] == [rec["id"]] and b["affected_fields"] == []
    assert b["module"] == "Leads" and b["resource_uri"] == s.base + "/crm/v2/Leads"
    assert b["query_params"] == {"k": "abc", "x": "1+2"}
    assert b["channel_id"] == "1000000068001" and b["token"] == "zcrm-sync-7f3a9c"
    assert isinstance(b["server_time"], int) and abs(b["server_time"] / 1000 - t0) < 5
    assert b["affected_values"][0]["record_id"] == rec["id"]
    assert b["affected_values"][0]["values"]["Last_Name"] == "Zoë \"Q\", Ltd"

    upd = s.ctl("PATCH", "/_sim/records/Leads/%s" % rec["id"],
                {"values": {"Company": "Rangoni Of Test", "Phone": "555-555-1111"}})
    b = receiver.wait_for(2)[1]["body"]
    assert b["operation"] == "update" and b["ids"] == [rec["id"]]
    assert b["affected_fields"] == [{rec["id"]: ["Company", "Phone"]}]
    assert b["affected_values"] == [{"record_id": rec["id"],
                                     "values": {"Company": "Rangoni Of Test", "Phone": "555-555-1111"}}]
    assert upd["Modified_Time"].endswith("+05:30")

    s.ctl("DELETE", "/_sim/records/Leads/%s" % rec["id"])
    b = receiver.wait_for(3)[2]["body"]
    assert b["operation"] == "delete" and b["ids"] == [rec["id"]]
    assert s.ctl("POST", "/_sim/flush")["idle"]
    log = s.ctl("GET", "/_sim/notifications")["notifications"]
    assert [e["status"] for e in log] == [200, 200, 200]
    assert [e["body"]["operation"] for e in log] == ["insert", "update", "delete"]


def test_null_token_event_filter_and_expiry(s, receiver):
    subscribe(s, receiver.url + "/n", cid="5", events=["Leads.edit"])
    rid = s.truth()["records"][0]["id"]
    s.ctl("POST", "/_sim/records/Leads", {})              # create: not subscribed
    s.ctl("PATCH", "/_sim/records/Leads/%s" % rid, {})     # generator changes a few fields
    b = receiver.wait_for(1)[0]["body"]
    assert b["operation"] == "update" and b["token"] is None and "affected_values" not in b
    assert list(b["affected_fields"][0]) == [rid]
    s.ctl("POST", "/_sim/flush")
    assert len(receiver.bodies()) == 1
    s.ctl("POST", "/_sim/channels/5/expire")
    s.ctl("PATCH", "/_sim/records/Leads/%s" % rid, {})
    s.ctl("POST", "/_sim/flush")
    time.sleep(0.2)
    assert len(receiver.bodies()) == 1


def test_drop_and_duplicate_faults(s, receiver):
    subscribe(s, receiver.url + "/n", token="t")
    s.ctl("POST", "/_sim/faults", {"notify": {"drop": 1.0}, "seed": 3})
    s.ctl("POST", "/_sim/records/Leads", {})
    s.ctl("POST", "/_sim/flush")
    time.sleep(0.2)
    assert receiver.bodies() == []
    log = s.ctl("GET", "/_sim/notifications")["notifications"]
    assert len(log) == 1 and log[0]["dropped"] is True and log[0]["status"] is None
    s.ctl("POST", "/_sim/faults", {"notify": {"duplicate": 1.0}})
    rec = s.ctl("POST", "/_sim/records/Leads", {})
    items = receiver.wait_for(2)
    assert [i["body"]["ids"] for i in items] == [[rec["id"]], [rec["id"]]]
    st = s.ctl("GET", "/_sim/stats")
    assert st["notifications"]["notify_dropped"] == 1 and st["notifications"]["notify_duplicated"] == 1
    s.ctl("DELETE", "/_sim/faults")


def test_delay_reorders(s, receiver):
    subscribe(s, receiver.url + "/n")
    s.ctl("POST", "/_sim/faults", {"notify": {"reorder": 1.0, "reorder_hold_ms": 1000}, "seed": 1})
    a = s.ctl("POST", "/_sim/records/Leads", {})["id"]
    s.ctl("POST", "/_sim/faults", {})
    b = s.ctl("POST", "/_sim/records/Leads", {})["id"]
    items = receiver.wait_for(2)
    assert [i["body"]["ids"][0] for i in items] == [b, a]


def test_mutate_batches_and_log(s, receiver):
    subscribe(s, receiver.url + "/n", return_affected_field_values=True)
    res = s.ctl("POST", "/_sim/mutate", {"module": "Leads", "count": 40, "seed": 7, "batch_max": 5,
                                         "mix": {"create": 0.3, "update": 0.5, "delete": 0.2}})
    assert res["count"] == 40 and {c["op"] for c in res["changes"]} <= {"create", "update", "delete"}
    s.ctl("POST", "/_sim/flush")
    bodies = receiver.bodies()
    assert sum(len(b["ids"]) for b in bodies) == 40
    assert any(len(b["ids"]) > 1 for b in bodies)
    for b in bodies:
        assert len(b["affected_values"]) == len(b["ids"])
        if b["operation"] == "update":
            assert [list(x)[0] for x in b["affected_fields"]] == b["ids"]
    opmap = {"create": "insert", "update": "update", "delete": "delete"}
    want = sorted((opmap[c["op"]], c["id"]) for c in res["changes"])
    assert sorted((b["operation"], i) for b in bodies for i in b["ids"]) == want
    truth = s.truth()
    deleted = {d["id"] for d in truth["deleted"]}
    assert deleted == {c["id"] for c in res["changes"] if c["op"] == "delete"}


def test_mutate_batch_exact(make_sim, receiver):
    """batch_exact: updates of distinct records come batch_max to a
    notification (what a mass update in Zoho sends)."""
    s = make_sim("--modules", "Leads:300")
    subscribe(s, receiver.url + "/n")
    res = s.ctl("POST", "/_sim/mutate", {"module": "Leads", "count": 20, "seed": 3,
                                         "batch_max": 10, "batch_exact": True,
                                         "mix": {"update": 1}})
    assert res["count"] == 20
    s.ctl("POST", "/_sim/flush")
    bodies = receiver.bodies()
    sizes = [len(b["ids"]) for b in bodies]
    assert sum(sizes) == 20
    # A record picked twice within a batch starts the next one early.
    assert sizes[0] == 10 or len(set(bodies[0]["ids"] + bodies[1]["ids"])) < sizes[0] + sizes[1]
    assert max(sizes) == 10 and len(bodies) <= 4


def test_notify_disabled_and_failing_receiver(s, receiver):
    subscribe(s, receiver.url + "/n")
    s.ctl("POST", "/_sim/config", {"notify_enabled": False})
    s.ctl("POST", "/_sim/records/Leads", {})
    s.ctl("POST", "/_sim/config", {"notify_enabled": True})
    receiver.status = 500
    s.ctl("POST", "/_sim/records/Leads", {})
    s.ctl("POST", "/_sim/flush")
    time.sleep(0.1)
    assert len(receiver.bodies()) == 1               # no retry after a 500
    log = s.ctl("GET", "/_sim/notifications")["notifications"]
    assert [e["status"] for e in log] == [500]
    # a receiver that is not listening: logged with an error, no status
    subscribe(s, "http://127.0.0.1:9/closed", cid="77", events=["Contacts.create"])
    s.ctl("POST", "/_sim/records/Contacts", {"silent": False})
    s.ctl("POST", "/_sim/flush")
    last = s.ctl("GET", "/_sim/notifications")["notifications"][-1]
    assert last["status"] is None and last["error"]
