"""actions/watch: enable, renew, expiry read-back, GET, PUT, PATCH, DELETE."""

import time
from datetime import datetime, timedelta, timezone

import pytest


def iso(epoch):
    return datetime.fromtimestamp(epoch, timezone(timedelta(hours=2))).isoformat()


def ts(s):
    return datetime.fromisoformat(s).timestamp()


def enable(sim, cid, **kw):
    ch = {"channel_id": cid, "events": ["Leads.all"], "notify_url": "http://127.0.0.1:9/notify?k=abc"}
    ch.update(kw)
    return sim.api("POST", "/crm/v6/actions/watch", {"watch": [ch]})


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:5,Contacts:2", "--tz-offset", "+05:30")


def test_enable_honours_expiry_within_a_day(s):
    want = int(time.time()) + 12 * 3600
    r = enable(s, "1000000068001", channel_expiry=iso(want), token="tok-1")
    assert r.status == 200
    item = r.json["watch"][0]
    assert item["code"] == "SUCCESS" and item["status"] == "success"
    assert item["message"] == "Successfully subscribed for actions-watch of the given module"
    ev = item["details"]["events"][0]
    assert ev["channel_id"] == "1000000068001"
    assert ev["resource_name"] == "Leads"
    assert ev["resource_uri"] == s.base + "/crm/v2/Leads"
    assert ts(ev["channel_expiry"]) == want
    assert ev["channel_expiry"].endswith("+05:30")


@pytest.mark.parametrize("expiry", [2 * 86400, 7 * 86400, None])
def test_expiry_beyond_a_day_or_omitted_gets_one_hour(s, expiry):
    kw = {} if expiry is None else {"channel_expiry": iso(int(time.time()) + expiry)}
    r = enable(s, "42", **kw)
    exp = ts(r.json["watch"][0]["details"]["events"][0]["channel_expiry"])
    assert abs(exp - (time.time() + 3600)) < 10


def test_exactly_one_day_is_honoured(s):
    want = int(time.time()) + 86400 - 5
    r = enable(s, "43", channel_expiry=iso(want))
    assert ts(r.json["watch"][0]["details"]["events"][0]["channel_expiry"]) == want


def test_renew_by_repost(s):
    enable(s, "7")
    want = int(time.time()) + 20 * 3600
    r = enable(s, "7", channel_expiry=iso(want))
    assert ts(r.json["watch"][0]["details"]["events"][0]["channel_expiry"]) == want
    g = s.api("GET", "/crm/v6/actions/watch", query={"channel_id": "7"}).json
    assert len(g["watch"]) == 1 and ts(g["watch"][0]["channel_expiry"]) == want


def test_token_length_and_mandatory_keys(s):
    assert enable(s, "1", token="x" * 49).status == 200
    r = enable(s, "2", token="x" * 50)
    assert r.status == 400 and r.json["watch"][0]["code"] == "INVALID_DATA"
    r = s.api("POST", "/crm/v6/actions/watch", {"watch": [{"channel_id": "3", "events": ["Leads.all"]}]})
    assert r.status == 400
    assert r.json["watch"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert r.json["watch"][0]["details"]["api_name"] == "notify_url"
    r = s.api("POST", "/crm/v6/actions/watch", {"watch": [{"channel_id": "3", "notify_url": "http://x/"}]})
    assert r.json["watch"][0]["details"]["api_name"] == "events"
    r = enable(s, "4", events=["Nope.all"])
    assert r.status == 400 and r.json["watch"][0]["code"] == "INVALID_DATA"


def test_get_lists_expanded_events_and_details(s):
    enable(s, "11", token="t11", return_affected_field_values=True,
           events=["Leads.all", "Contacts.create"])
    r = s.api("GET", "/crm/v6/actions/watch")
    assert r.status == 200
    rows = r.json["watch"]
    by_mod = {row["resource_name"]: row for row in rows}
    assert set(by_mod["Leads"]["events"]) == {"Leads.create", "Leads.edit", "Leads.delete"}
    assert by_mod["Contacts"]["events"] == ["Contacts.create"]
    lead = by_mod["Leads"]
    assert lead["token"] == "t11" and lead["return_affected_field_values"] is True
    assert lead["notify_url"] == "http://127.0.0.1:9/notify?k=abc"
    assert lead["notify_on_related_action"] is True
    assert r.json["info"]["more_records"] is False
    assert s.api("GET", "/crm/v6/actions/watch", query={"module": "Contacts"}).json["watch"][0][
        "resource_name"] == "Contacts"


def test_patch_merges_put_replaces(s):
    enable(s, "21", token="keep-me")
    r = s.api("PATCH", "/crm/v6/actions/watch",
              {"watch": [{"channel_id": "21", "return_affected_field_values": True}]})
    assert r.status == 200 and r.json["watch"][0]["message"] == "Successfully updated the subscribe details"
    row = s.api("GET", "/crm/v6/actions/watch", query={"channel_id": "21"}).json["watch"][0]
    assert row["token"] == "keep-me" and row["return_affected_field_values"] is True
    r = s.api("PUT", "/crm/v6/actions/watch",
              {"watch": [{"channel_id": "21", "events": ["Leads.edit"], "notify_url": "http://127.0.0.1:9/n"}]})
    assert r.status == 200
    row = s.api("GET", "/crm/v6/actions/watch", query={"channel_id": "21"}).json["watch"][0]
    assert row["token"] is None and row["return_affected_field_values"] is False
    assert row["events"] == ["Leads.edit"]
    r = s.api("PUT", "/crm/v6/actions/watch",
              {"watch": [{"channel_id": "999", "events": ["Leads.edit"], "notify_url": "http://127.0.0.1:9/n"}]})
    assert r.status == 400 and r.json["watch"][0]["code"] == "NOT_SUBSCRIBED"


def test_patch_delete_events(s):
    enable(s, "31")
    r = s.api("PATCH", "/crm/v6/actions/watch",
              {"watch": [{"channel_id": "31", "events": ["Leads.delete"], "_delete_events": True}]})
    assert r.json["watch"][0]["message"] == "Successfully removed the subscribe details"
    row = s.api("GET", "/crm/v6/actions/watch", query={"channel_id": "31"}).json["watch"][0]
    assert set(row["events"]) == {"Leads.create", "Leads.edit"}


def test_delete_and_expire(s):
    enable(s, "51")
    enable(s, "52")
    r = s.api("DELETE", "/crm/v6/actions/watch", query={"channel_ids": "51"})
    assert r.status == 200
    item = r.json["watch"][0]
    assert item["code"] == "SUCCESS" and item["message"] == "Successfully un-subscribed from actions-watch"
    assert item["details"]["channel_id"] == "51" and item["details"]["resource_uri"].endswith("/crm/v2/Leads")
    assert s.api("GET", "/crm/v6/actions/watch", query={"channel_id": "51"}).status == 204
    s.ctl("POST", "/_sim/channels/52/expire")
    assert s.api("GET", "/crm/v6/actions/watch").status == 204
    r = s.api("PATCH", "/crm/v6/actions/watch", {"watch": [{"channel_id": "52", "token": "x"}]})
    assert r.json["watch"][0]["code"] == "NOT_SUBSCRIBED"
    assert enable(s, "52").status == 200       # re-enable after expiry
    assert s.api("DELETE", "/crm/v6/actions/watch").json["code"] == "REQUIRED_PARAM_MISSING"
