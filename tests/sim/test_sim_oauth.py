"""OAuth refresh grant, token mint limit, 401 INVALID_TOKEN."""

import time
import urllib.parse

from simhelpers import CLIENT, http

THROTTLE_BODY = {"error_description": "You have made too many requests continuously. "
                                      "Please try again after some time.",
                 "error": "Access Denied", "status": "failure"}
INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}


def test_refresh_form_body(make_sim):
    s = make_sim("--modules", "Leads:3")
    r = s.mint()
    assert r.status == 200
    b = r.json
    assert b["access_token"].startswith("1000.")
    assert b["api_domain"] == s.base
    assert b["token_type"] == "Bearer"
    assert b["expires_in"] == 3600
    ok = s.api("GET", "/crm/v6/Leads/actions/count", token=b["access_token"])
    assert ok.status == 200 and ok.json == {"count": 3}


def test_refresh_query_string(make_sim):
    s = make_sim("--modules", "Leads:1", "--token-lifetime", "120")
    r = http("POST", s.base + "/oauth/v2/token?" + urllib.parse.urlencode(CLIENT))
    assert r.status == 200 and r.json["expires_in"] == 120


def test_bad_credentials_are_http_200(make_sim):
    s = make_sim("--modules", "Leads:1")
    assert s.mint(refresh_token="nope").json == {"error": "invalid_code"}
    r = s.mint(client_id="other")
    assert r.status == 200 and r.json == {"error": "invalid_client"}
    r = s.mint(client_secret="wrong")
    assert r.status == 200 and "access_token" not in r.json and r.json["error"].startswith("invalid_client")
    assert s.ctl("GET", "/_sim/stats")["tokens_minted"] == 0


def test_mint_limit(make_sim):
    s = make_sim("--modules", "Leads:1", "--client-id", "cid", "--client-secret", "sec",
                 "--refresh-token", "rt")
    s.ctl("POST", "/_sim/config", {"token_mint_limit": 3})
    creds = dict(client_id="cid", client_secret="sec", refresh_token="rt")
    for _ in range(3):
        assert "access_token" in s.mint(**creds).json
    r = s.mint(**creds)
    assert r.status == 400 and r.json == THROTTLE_BODY
    st = s.ctl("GET", "/_sim/stats")
    assert st["tokens_minted"] == 3 and st["token_throttled"] == 1
    s.ctl("POST", "/_sim/config", {"token_mint_limit": 100})
    assert "access_token" in s.mint(**creds).json


def test_default_limit_is_ten(make_sim):
    s = make_sim("--modules", "Leads:1")
    got = [s.mint().status for _ in range(11)]
    assert got == [200] * 10 + [400]


def test_401_variants(make_sim):
    s = make_sim("--modules", "Leads:2")
    url = s.url("/crm/v6/Leads", fields="Last_Name")
    for hdrs in ({}, {"Authorization": "Bearer " + s.token}, {"Authorization": "Zoho-oauthtoken 1000.x.y"}):
        r = http("GET", url, headers=hdrs)
        assert r.status == 401 and r.json == INVALID_TOKEN
    assert s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name"}).status == 200
    assert s.ctl("POST", "/_sim/expire_tokens")["expired"] >= 1
    r = s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name"})
    assert r.status == 401 and r.json == INVALID_TOKEN
    fresh = s.mint().json["access_token"]
    assert s.api("GET", "/crm/v6/Leads", query={"fields": "Last_Name"}, token=fresh).status == 200


def test_token_lifetime(make_sim):
    s = make_sim("--modules", "Leads:1", "--token-lifetime", "1")
    tok = s.mint().json["access_token"]
    assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status == 200
    time.sleep(1.2)
    assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).status == 401


SCOPE_MISMATCH = {"code": "OAUTH_SCOPE_MISMATCH", "details": {},
                  "message": "invalid oauth scope to access this URL", "status": "error"}


def test_scopes_of_the_grant(make_sim):
    """A token carries the scopes of its refresh token (--scopes, or
    /_sim/config for tokens minted later); a call they do not cover is 401
    OAUTH_SCOPE_MISMATCH (zoho-api.md §1.5, §1.7, §8.4)."""
    s = make_sim("--modules", "Leads:3,Contacts:2", "--scopes",
                 "ZohoCRM.modules.leads.READ,ZohoCRM.notifications.READ")
    r = s.mint()
    assert r.json["scope"] == "ZohoCRM.modules.leads.READ ZohoCRM.notifications.READ"
    tok = r.json["access_token"]
    assert s.api("GET", "/crm/v6/Leads/actions/count", token=tok).json == {"count": 3}
    for path in ("/crm/v6/Contacts/actions/count", "/crm/v6/settings/fields?module=Leads"):
        r = s.api("GET", path, token=tok)
        assert (r.status, r.json) == (401, SCOPE_MISMATCH), path
    assert s.api("GET", "/crm/v6/actions/watch", token=tok).status != 401
    watch = {"watch": [{"channel_id": "1000000068001", "events": ["Leads.all"],
                        "notify_url": "http://127.0.0.1:9/n", "token": "t"}]}
    r = s.api("POST", "/crm/v6/actions/watch", watch, token=tok)
    assert (r.status, r.json) == (401, SCOPE_MISMATCH)
    bulk = {"query": {"module": {"api_name": "Leads"}}}
    r = s.api("POST", "/crm/bulk/v6/read", bulk, token=tok)
    assert (r.status, r.json) == (401, SCOPE_MISMATCH)     # a modules scope is not enough
    assert s.ctl("GET", "/_sim/stats")["scope_failures"] == 4
    # Bulk Read needs both: bulk.READ and the module's.
    s.ctl("POST", "/_sim/config", {"scopes": "ZohoCRM.bulk.READ,ZohoCRM.modules.READ,"
                                             "ZohoCRM.notifications.CREATE"})
    assert s.api("GET", "/crm/v6/settings/fields?module=Leads", token=tok).status == 401
    tok = s.mint().json["access_token"]
    assert s.api("POST", "/crm/bulk/v6/read", bulk, token=tok).status == 201
    assert s.api("POST", "/crm/v6/actions/watch", watch, token=tok).status == 200
    assert s.api("PUT", "/crm/v6/actions/watch", watch, token=tok).status == 401
    assert s.api("GET", "/crm/v6/Contacts/actions/count", token=tok).status == 200
