"""HTTP fault rules, routing errors, request log and stats."""

import http.client
import time
import urllib.parse

import pytest


@pytest.fixture
def s(make_sim):
    return make_sim("--modules", "Leads:5")


def test_429_with_retry_after_then_normal(s):
    tok = s.token
    s.ctl("POST", "/_sim/faults", {"rules": [{"match": "/crm/bulk/v6/read", "status": 429, "count": 2,
                                              "retry_after": 1}]})
    body = {"query": {"module": {"api_name": "Leads"}}}
    for _ in range(2):
        r = s.api("POST", "/crm/bulk/v6/read", body, token=tok)
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert r.json["code"] == "TOO_MANY_REQUESTS" and r.json["status"] == "error"
    assert s.api("POST", "/crm/bulk/v6/read", body, token=tok).status == 201
    assert s.ctl("GET", "/_sim/stats")["faults_injected"]["http_429"] == 2


def test_rules_in_order_and_control_never_faulted(s):
    tok = s.token
    s.ctl("POST", "/_sim/faults", {"rules": [{"match": "*", "status": 500, "count": 1},
                                             {"match": "/crm/v6/Leads", "status": 503, "count": 1,
                                              "method": "GET"}]})
    assert s.ctl("GET", "/_sim/stats")["requests"] >= 0          # control path: not faulted
    r = s.api("GET", "/crm/v6/Leads/actions/count", token=tok)
    assert r.status == 500 and r.json["code"] == "INTERNAL_ERROR"
    r = s.api("GET", "/crm/v6/Leads/actions/count", token=tok)
    assert r.status == 503
    assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status == 200
    desc = s.ctl("GET", "/_sim/faults")
    assert [x["count"] for x in desc["rules"]] == [0, 0]
    s.ctl("DELETE", "/_sim/faults")
    assert s.ctl("GET", "/_sim/faults")["rules"] == []


def test_token_endpoint_can_be_faulted_and_close(s):
    s.ctl("POST", "/_sim/faults", {"rules": [{"match": "/oauth/v2/token", "status": 500, "count": 1},
                                             {"match": "/crm/v6/settings", "close": True, "count": 1}]})
    assert s.mint().status == 500
    tok = s.mint().json["access_token"]
    u = urllib.parse.urlsplit(s.base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.request("GET", "/crm/v6/settings/fields?module=Leads", headers={"Authorization": "Zoho-oauthtoken " + tok})
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        c.getresponse()
    c.close()
    assert s.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"}).status == 200


def test_bad_fault_spec(s):
    from simhelpers import http as raw
    r = raw("POST", s.base + "/_sim/faults", {"rules": [{"status": 500}]})
    assert r.status == 400


def test_routing_errors(s):
    r = s.api("GET", "/crm/v6/Leads/1234/whatever")
    assert r.status == 404 and r.json == {"code": "INVALID_URL_PATTERN", "details": {},
                                          "message": "Please check if the URL trying to access is a correct one",
                                          "status": "error"}
    r = s.api("DELETE", "/crm/v6/Leads", query={"ids": "1"})
    assert r.status == 400 and r.json["code"] == "INVALID_REQUEST_METHOD"
    assert s.api("GET", "/oauth/v2/token").json["code"] == "INVALID_REQUEST_METHOD"
    assert s.api("GET", "/crm/v2/Leads", query={"fields": "Email"}).status == 404


def test_request_log(s):
    s.ctl("POST", "/_sim/reset_logs")
    start = s.ctl("GET", "/_sim/requests")["next"]
    s.api("GET", "/crm/v6/Leads", query={"fields": "Email", "per_page": 2})
    # An entry is logged once its answer is sent: it may follow the answer.
    deadline = time.monotonic() + 10
    while True:
        rows = s.ctl("GET", "/_sim/requests", query={"since": start})["requests"]
        api_rows = [r for r in rows if r["path"].startswith("/crm/")]
        if api_rows or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert api_rows[-1]["method"] == "GET" and api_rows[-1]["status"] == 200
    assert "fields=Email" in api_rows[-1]["query"]
    assert all(not r.get("control") for r in rows)
    nxt = s.ctl("GET", "/_sim/requests")["next"]
    assert s.ctl("GET", "/_sim/requests", query={"since": nxt})["requests"] == []


def test_raw_body_b64(s):
    """body_b64: the bytes are sent as they are (crafted ZIPs, broken JSON)."""
    import base64
    raw = b"PK\x03\x04\xff\x00 not json {"
    s.ctl("POST", "/_sim/faults", {"rules": [{"match": "/crm/v6/Leads/actions/count", "status": 200,
                                              "body_b64": base64.b64encode(raw).decode(),
                                              "content_type": "application/zip"}]})
    r = s.api("GET", "/crm/v6/Leads/actions/count", token=s.token)
    assert r.status == 200 and r.body == raw
    assert r.headers["Content-Type"] == "application/zip"
    from simhelpers import http as rawhttp
    bad = rawhttp("POST", s.base + "/_sim/faults",
                  {"rules": [{"match": "*", "status": 200, "body_b64": "not base64!"}]})
    assert bad.status == 400
