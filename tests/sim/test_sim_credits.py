"""API credits and concurrency as Zoho meters them (zoho-api.md §8.1-8.3)."""

import threading
import time

import pytest


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:5", "--bulk-step-ms", "0")


BULK = {"query": {"module": {"api_name": "Leads"}}}


def test_each_call_costs_its_table_price_and_tokens_are_free(s):
    tok = s.token                                           # accounts server: free
    assert s.api("GET", "/crm/v6/Leads", query={"fields": "id", "per_page": 2}, token=tok).status == 200
    assert s.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"}, token=tok).status == 200
    r = s.api("POST", "/crm/bulk/v6/read", BULK, token=tok)
    assert r.status == 201
    job = r.json["data"][0]["details"]["id"]
    assert s.api("GET", "/crm/bulk/v6/read/" + job, token=tok).status == 200
    m = s.ctl("GET", "/_sim/credits")
    assert m["by_endpoint"] == {"records": 1, "fields": 1, "bulk_create": 50, "bulk_status": 1}
    assert m["calls_by_endpoint"]["bulk_create"] == 1
    assert m["spent_window"] == m["spent_total"] == 53
    assert m["budget"] == 0 and m["remaining"] is None
    # The request log carries each call's price (entries are logged after the
    # answer is sent, so their order is not the calls' order).
    reqs = s.ctl("GET", "/_sim/requests")["requests"]
    assert sorted((r["path"], r.get("credits")) for r in reqs if r["path"].startswith("/crm/")) == \
        sorted([("/crm/v6/Leads", 1), ("/crm/v6/settings/fields", 1), ("/crm/bulk/v6/read", 50),
                ("/crm/bulk/v6/read/" + job, 1)])
    assert s.ctl("GET", "/_sim/stats")["credits"]["spent_total"] == 53


def test_304_and_errors_cost_one_unauthenticated_and_faults_nothing(s):
    tok = s.token
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "id"},
              headers={"If-Modified-Since": "2100-01-01T00:00:00+00:00"}, token=tok)
    assert r.status == 304
    assert s.api("GET", "/crm/v6/Leads", query={"fields": "Nope"}, token=tok).status == 400
    assert s.api("GET", "/crm/v6/Leads", query={"fields": "id"}, token="bogus").status == 401
    s.ctl("POST", "/_sim/faults", {"rules": [{"match": "*", "status": 500, "count": 1}]})
    assert s.api("GET", "/crm/v6/Leads", query={"fields": "id"}, token=tok).status == 500
    assert s.api("GET", "/crm/v6/Nowhere/x/y", token=tok).status == 404
    m = s.ctl("GET", "/_sim/credits")
    assert m["spent_total"] == 2 and m["by_endpoint"] == {"records": 2}


def test_budget_spent_answers_429_and_header_once_half_used(s):
    s.ctl("POST", "/_sim/config", {"credit_budget": 104})
    tok = s.token
    r = s.api("GET", "/crm/v6/Leads/actions/count", token=tok)
    assert r.status == 200 and "X-API-CREDITS-REMAINING" not in r.headers      # 1 of 104 used
    r = s.api("POST", "/crm/bulk/v6/read", BULK, token=tok)                    # 51 used: < half
    assert r.status == 201 and "X-API-CREDITS-REMAINING" not in r.headers
    r = s.api("GET", "/crm/v6/Leads/actions/count", token=tok)                 # 52: half
    assert r.status == 200 and r.headers["X-API-CREDITS-REMAINING"] == "52"
    r = s.api("POST", "/crm/bulk/v6/read", BULK, token=tok)                    # 102
    assert r.status == 201 and r.headers["X-API-CREDITS-REMAINING"] == "2"
    r = s.api("POST", "/crm/bulk/v6/read", BULK, token=tok)                    # would be 152
    assert r.status == 429 and r.json["code"] == "TOO_MANY_REQUESTS"
    assert r.headers["X-API-CREDITS-REMAINING"] == "2"
    for _ in range(2):                                                         # 103, 104
        assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status == 200
    r = s.api("GET", "/crm/v6/Leads/actions/count", token=tok)
    assert r.status == 429 and r.headers["X-API-CREDITS-REMAINING"] == "0"
    m = s.ctl("GET", "/_sim/credits")
    assert m["spent_window"] == 104 and m["remaining"] == 0
    assert m["rejected"] == {"budget": 2, "concurrency": 0}
    assert s.mint().status == 200                                              # OAuth still works
    reqs = s.ctl("GET", "/_sim/requests")["requests"]
    assert [r.get("credits_refused") for r in reqs if r["status"] == 429] == ["budget", "budget"]


def test_the_window_rolls(s):
    s.ctl("POST", "/_sim/config", {"credit_budget": 2, "credit_window_s": 2})
    tok = s.token
    for _ in range(2):
        assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status == 200
    assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status == 429
    deadline = time.time() + 30
    while time.time() < deadline:                   # credits used at t are free at t + window
        r = s.api("GET", "/crm/v6/Leads/actions/count", token=tok)
        if r.status == 200:
            break
        time.sleep(0.2)
    assert r.status == 200
    m = s.ctl("GET", "/_sim/credits")
    assert m["spent_total"] == 3 and m["spent_window"] <= 2
    m = s.ctl("DELETE", "/_sim/credits")
    assert m["spent_total"] == 0 and m["spent_window"] == 0 and m["by_endpoint"] == {}


def test_concurrency_limit_answers_429_and_costs_nothing(s):
    s.ctl("POST", "/_sim/config", {"max_concurrency": 2})
    tok = s.token
    # Two calls held in flight by a slow answer; the third is refused.
    s.ctl("POST", "/_sim/faults", {"rules": [{"match": "/crm/v6/Leads/actions/count",
                                              "delay_ms": 1500, "count": 2}]})
    results = []

    def slow():
        results.append(s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while s.ctl("GET", "/_sim/credits")["in_flight"] < 2 and time.time() < deadline:
        time.sleep(0.02)
    r = s.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"}, token=tok)
    for t in threads:
        t.join()
    assert r.status == 429 and r.json["code"] == "TOO_MANY_REQUESTS"
    assert results == [200, 200]
    m = s.ctl("GET", "/_sim/credits")
    assert m["rejected"]["concurrency"] == 1 and m["max_in_flight"] == 2
    assert m["by_endpoint"] == {"count": 2} and m["in_flight"] == 0
    assert s.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"}, token=tok).status == 200


def test_cli_options_set_the_meter(make_sim):
    s = make_sim("--modules", "Leads:1", "--credit-budget", "52500", "--max-concurrency", "10")
    cfg = s.ctl("GET", "/_sim/config")
    assert cfg["credit_budget"] == 52500 and cfg["max_concurrency"] == 10
    assert cfg["credit_window_s"] == 86400
