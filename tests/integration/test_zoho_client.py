"""The Zoho client (common/http.c, oauth.c, zoho.c) against the simulator and
a real PostgreSQL, driven through $ZCRM_TOOLS/zoho_call.

Covers: the shared token (cached in memory and in oauth_token, refreshed near
expiry and after a 401, one mint for many processes at once), the retry
policy (429 with Retry-After, 5xx up to the bound, a stop by SIGTERM),
unusable answers (HTML, truncated JSON, a short body), the bulk job life
cycle with a multi-MB ZIP and the download limit, records (with the join of
more than 50 fields), deleted records, channels, and that no secret ever
reaches stderr.
"""

import csv
import io
import json
import os
import re
import signal
import subprocess
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import (CLIENT_SECRET, REFRESH_TOKEN, TOKEN, clean_env, resolve_program,
                     scaled)

EX_OK, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 0, 65, 69, 75, 77, 78

# Test knobs read by zoho_call only: a fast backoff, a short download wait.
FAST = {"ZCRM_HTTP_BACKOFF_MS": "20", "ZCRM_HTTP_BACKOFF_CAP_MS": "100",
        "ZCRM_DOWNLOAD_429_MS": "1500"}
SIM_TOKEN_RE = re.compile(r"1000\.[0-9a-f]{32}\.[0-9a-f]{32}")


# ----------------------------------------------------------------- helpers

@pytest.fixture
def zc(run_program, db):
    """zc(config, *args, env=None, timeout=60, ok=True) -> CompletedProcess;
    checks stderr for secrets every time, and exit 0 when ok."""

    def run(config, *args, env=None, timeout=60, ok=True):
        e = dict(FAST)
        e.update(env or {})
        res = run_program("tools/zoho_call", args=["-v"] + list(args), config=config, env=e,
                          timeout=timeout)
        assert_no_secrets(res.stderr, db)
        if ok:
            assert res.returncode == EX_OK, res.stderr[-3000:]
            res.json = json.loads(res.stdout)
        return res

    return run


def assert_no_secrets(text, db=None):
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, TOKEN, "stub-token-0123456789abcdef"):
        assert secret not in text, "secret %r in stderr" % secret
    assert not SIM_TOKEN_RE.search(text), "an access token in stderr"
    if db is not None:
        try:
            rows = db.query("SELECT access_token FROM zcrm.oauth_token")
        except Exception:  # no table yet: nothing minted
            rows = []
        for (tok,) in rows:
            if tok:
                assert tok not in text, "the stored access token in stderr"


def stats(sim):
    return sim.control("GET", "/stats")


def requests_to(sim, path, method=None):
    rows = sim.control("GET", "/requests")["requests"]
    return [r for r in rows if r["path"] == path and (method is None or r["method"] == method)]


def faults(sim, *rules):
    sim.control("POST", "/faults", {"rules": list(rules)})


@pytest.fixture
def sim(sim_factory):
    return sim_factory("--modules", "Leads:60", "--page-size", "1000", "--bulk-polls", "1",
                       "--bulk-step-ms", "200")


@pytest.fixture
def cfg(config_factory, sim):
    return config_factory({"zoho": {"max_retries": 2, "retry_budget": 30}}, sim=sim)


def truth(sim, module="Leads"):
    return sim.control("GET", "/truth/%s" % module)


# ------------------------------------------------------------------ tokens

def test_token_minted_once_and_shared(zc, cfg, sim, db):
    first = zc(cfg, "token").json
    assert first["api_domain"] == sim.url
    assert first["token_len"] > 20
    # A second process reads the stored token; a second get in one
    # process comes from memory.
    again = zc(cfg, "token-twice").json
    assert again["same"] is True
    assert again["token_fp"] == first["token_fp"]
    assert stats(sim)["tokens_minted"] == 1
    row = db.query("SELECT refreshes, expires_at > now() + interval '50 minutes',"
                   " api_domain FROM zcrm.oauth_token WHERE client_id = 'sim-client-id'")
    assert row == [(1, True, sim.url)]


def test_refresh_when_less_than_five_minutes_left(zc, cfg, sim, db):
    zc(cfg, "token")
    # Four minutes left of an hour's token: refreshed before use, no 401.
    db.execute("UPDATE zcrm.oauth_token SET expires_at = now() + interval '4 minutes',"
               " refreshed_at = now() - interval '56 minutes'")
    zc(cfg, "count", "Leads")
    st = stats(sim)
    assert st["tokens_minted"] == 2
    assert st["auth_failures"] == 0
    # Ten minutes left: still good.
    db.execute("UPDATE zcrm.oauth_token SET expires_at = now() + interval '10 minutes',"
               " refreshed_at = now() - interval '50 minutes'")
    zc(cfg, "count", "Leads")
    assert stats(sim)["tokens_minted"] == 2


def test_refresh_after_401_invalid_token(zc, cfg, sim, db):
    zc(cfg, "count", "Leads")
    sim.control("POST", "/expire_tokens")
    res = zc(cfg, "count", "Leads")
    assert res.json == {"count": 60}
    st = stats(sim)
    assert st["tokens_minted"] == 2
    assert st["auth_failures"] == 1
    assert "rejected" in res.stderr
    assert db.value("SELECT refreshes FROM zcrm.oauth_token") == 2


def test_401_twice_is_an_auth_error(zc, cfg, sim):
    zc(cfg, "token")
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "status": 401, "count": -1})
    res = zc(cfg, "count", "Leads", ok=False)
    assert res.returncode == EX_NOPERM
    assert "HTTP 401 INVALID_TOKEN" in res.stderr
    # Refreshed once, retried once, then gave up.
    assert len(requests_to(sim, "/crm/v6/Leads/actions/count")) == 2
    assert stats(sim)["tokens_minted"] == 2


def test_concurrent_processes_mint_one_token(zc, cfg, sim, db):
    # A slow token endpoint makes the refreshes overlap: whoever holds the
    # row lock mints, the others wait and find the new token.
    faults(sim, {"match": "/oauth/v2/token", "delay_ms": 1500, "count": -1})
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: zc(cfg, "count", "Leads", timeout=60), range(4)))
    elapsed = time.monotonic() - t0
    assert all(r.json == {"count": 60} for r in results)
    assert stats(sim)["tokens_minted"] == 1
    assert len(requests_to(sim, "/oauth/v2/token")) == 1
    assert db.value("SELECT refreshes FROM zcrm.oauth_token") == 1
    assert elapsed < scaled(20)


def test_bad_refresh_token_is_a_clear_auth_error(zc, config_factory, sim):
    bad = config_factory({"zoho": {"refresh_token": "1000.wrong.refresh-token"}}, sim=sim)
    res = zc(bad, "count", "Leads", ok=False)
    assert res.returncode == EX_NOPERM
    assert "token refresh refused" in res.stderr
    assert "invalid_code" in res.stderr
    assert "1000.wrong.refresh-token" not in res.stderr
    assert res.stdout == ""
    assert stats(sim)["token_refused"] == 1


def test_token_endpoint_throttle_is_a_rate_limit(zc, cfg, sim):
    sim.control("POST", "/config", {"token_mint_limit": 1})
    zc(cfg, "token")
    sim.control("POST", "/expire_tokens")
    res = zc(cfg, "count", "Leads", ok=False)
    assert res.returncode == EX_TEMPFAIL
    assert "throttled" in res.stderr
    assert "too many requests" in res.stderr.lower()


# ------------------------------------------------------------ retry policy

def test_429_with_retry_after_is_waited_for(zc, cfg, sim):
    zc(cfg, "token")
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "status": 429, "retry_after": 2,
                 "count": 1})
    t0 = time.monotonic()
    res = zc(cfg, "count", "Leads")
    elapsed = time.monotonic() - t0
    assert res.json == {"count": 60}
    assert elapsed >= 2.0
    seen = requests_to(sim, "/crm/v6/Leads/actions/count")
    assert [r["status"] for r in seen] == [429, 200]
    assert seen[1]["time"] - seen[0]["time"] >= 1.9
    assert "retrying HTTP request" in res.stderr


def test_5xx_retries_stop_at_the_bound(zc, cfg, sim):
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "status": 503, "count": -1})
    res = zc(cfg, "count", "Leads", ok=False)
    assert res.returncode == EX_TEMPFAIL
    assert "HTTP 503" in res.stderr
    assert "gave up after 3 attempts" in res.stderr
    assert "INTERNAL_ERROR" in res.stderr
    assert res.stdout == ""
    assert len(requests_to(sim, "/crm/v6/Leads/actions/count")) == 3  # 1 + max_retries


def test_5xx_then_success(zc, cfg, sim):
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "status": 500, "count": 2})
    assert zc(cfg, "count", "Leads").json == {"count": 60}
    assert [r["status"] for r in requests_to(sim, "/crm/v6/Leads/actions/count")] == [500, 500, 200]


def test_dropped_connection_is_retried(zc, cfg, sim):
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "close": True, "count": 1})
    assert zc(cfg, "count", "Leads").json == {"count": 60}


def test_4xx_is_not_retried_and_names_zoho_code(zc, cfg, sim):
    res = zc(cfg, "count", "NoSuchModule", ok=False)
    assert res.returncode == EX_UNAVAILABLE
    assert "HTTP 400" in res.stderr
    assert "INVALID_MODULE" in res.stderr
    assert len(requests_to(sim, "/crm/v6/NoSuchModule/actions/count")) == 1


def test_retry_after_beyond_budget_gives_up_at_once(zc, config_factory, sim):
    c = config_factory({"zoho": {"max_retries": 5, "retry_budget": 10}}, sim=sim)
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "status": 429, "retry_after": 600,
                 "count": -1})
    t0 = time.monotonic()
    res = zc(c, "count", "Leads", ok=False)
    assert time.monotonic() - t0 < scaled(5)
    assert res.returncode == EX_TEMPFAIL
    assert "retry budget" in res.stderr


def test_sigterm_ends_a_wait_promptly(cfg, sim, db, zcrm_env):
    faults(sim, {"match": "/crm/v6/Leads/actions/count", "status": 429, "retry_after": 20,
                 "count": -1})
    exe = resolve_program("tools/zoho_call")
    err_path = zcrm_env.dir / "sigterm.stderr"
    with open(err_path, "wb") as err:
        p = subprocess.Popen([str(exe), "--config", str(cfg), "count", "Leads"],
                             stdout=subprocess.DEVNULL, stderr=err, env=clean_env(FAST),
                             start_new_session=True)
    try:
        deadline = time.monotonic() + scaled(20)
        while not requests_to(sim, "/crm/v6/Leads/actions/count"):
            assert p.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "zoho_call never reached the API"
            time.sleep(0.05)
        time.sleep(0.3)  # now in the 20 s Retry-After wait
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=scaled(10))
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    text = err_path.read_text()
    assert rc == EX_TEMPFAIL, text
    assert took < scaled(1.0), "took %.2fs to stop" % took
    assert "interrupted" in text
    assert_no_secrets(text, db)


# -------------------------------------------------------- unusable answers

class Stub:
    """A fake Zoho that mints tokens and answers the count call badly."""

    def __init__(self):
        self.mode = "html"
        stub = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                body = json.dumps({"access_token": "stub-token-0123456789abcdef",
                                   "api_domain": stub.url, "expires_in": 3600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if stub.mode == "html":
                    body = b"<html><body>502 Bad Gateway</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif stub.mode == "truncated":
                    body = b'{"count": 12, "more": [1, 2'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif stub.mode == "short":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"count": 1')
                    self.wfile.flush()
                    self.close_connection = True
                elif stub.mode == "huge":
                    body = b'{"count": 1, "pad": "' + b"x" * 5000 + b'"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.stop()


@pytest.fixture
def stub_cfg(config_factory, stub):
    return config_factory({"zoho": {"accounts_url": stub.url, "api_domain": stub.url,
                                    "max_retries": 1, "max_response": 4096}})


@pytest.mark.parametrize("mode, code, words", [
    ("html", EX_DATAERR, ["not usable JSON", "Content-Type text/html", "invalid JSON at byte 0"]),
    ("truncated", EX_DATAERR, ["not usable JSON", "truncated"]),
    ("short", EX_TEMPFAIL, ["gave up after 2 attempts"]),
    ("huge", EX_DATAERR, ["larger than the limit of 4096 bytes"]),
])
def test_unusable_answers_are_clear_errors(zc, stub, stub_cfg, mode, code, words):
    stub.mode = mode
    res = zc(stub_cfg, "count", "Leads", ok=False)
    assert res.returncode == code, res.stderr
    assert res.stdout == ""
    line = [ln for ln in res.stderr.splitlines() if "zoho call failed" in ln]
    assert line, res.stderr
    for w in words:
        assert w in line[0], line[0]


# -------------------------------------------------------------- bulk read

def read_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert len(names) == 1 and names[0].endswith(".csv"), names
        with z.open(names[0]) as f:
            rows = list(csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline="")))
    return names[0], rows


def test_bulk_lifecycle_multi_mb(zc, config_factory, sim_factory, zcrm_env):
    big = sim_factory("--modules", "Leads:20000", "--page-size", "200000", "--bulk-polls", "2",
                      "--bulk-step-ms", "0")
    c = config_factory(None, sim=big)
    out = zcrm_env.dir / "page1.zip"
    res = zc(c, "bulk", "Leads", "--poll-ms", "100", "--out", str(out), timeout=180)
    j = res.json
    assert j["state"] == "COMPLETED"
    assert j["count"] == 20000
    assert j["more_records"] is False
    assert j["polls"] >= 2
    assert j["path"] == str(out)
    assert j["size"] == os.path.getsize(out)
    assert j["size"] > 2 * 1024 * 1024
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", j["created_time"])
    assert out.stat().st_mode & 0o777 == 0o600
    name, rows = read_zip(out)
    assert name == "%s.csv" % j["job_id"]
    assert len(rows) == 20001
    assert "id" in [h.lower() for h in rows[0]]
    jobs = big.control("GET", "/jobs")["jobs"]
    assert [(jb["id"], jb["downloads"]) for jb in jobs] == [(j["job_id"], 1)]


def test_bulk_pages_fields_and_window(zc, sim, cfg, zcrm_env):
    sim.control("POST", "/config", {"page_size": 25})
    counts = []
    for page in (1, 2, 3):
        j = zc(cfg, "bulk", "Leads", str(page), "--poll-ms", "100", "--fields",
               "Last_Name,Modified_Time", "--out", str(zcrm_env.dir / ("p%d.zip" % page))).json
        counts.append((j["page"], j["count"], j["more_records"]))
        _, rows = read_zip(zcrm_env.dir / ("p%d.zip" % page))
        assert sorted(h.lower() for h in rows[0]) == ["id", "last_name", "modified_time"]
    assert counts == [(1, 25, True), (2, 25, True), (3, 10, False)]
    # A Modified_Time window that holds nothing.
    j = zc(cfg, "bulk", "Leads", "--poll-ms", "100", "--from", "2001-01-01T00:00:00Z", "--to",
           "2001-01-02T00:00:00+00:00").json
    assert j["count"] == 0
    crit = sim.control("GET", "/jobs")["jobs"][-1]
    assert crit["page"] == 1


def test_bulk_download_limit_is_waited_for(zc, sim, cfg, zcrm_env):
    j = zc(cfg, "bulk", "Leads", "--poll-ms", "100").json
    result = "/crm/bulk/v6/read/%s/result" % j["job_id"]
    # No Retry-After: wait the download floor (1.5 s in tests, 60 s for real).
    faults(sim, {"match": result, "status": 429, "count": 1})
    t0 = time.monotonic()
    again = zc(cfg, "bulk", "Leads", "--job", j["job_id"], "--poll-ms", "100",
               "--out", str(zcrm_env.dir / "again.zip")).json
    assert time.monotonic() - t0 >= 1.5
    assert again["size"] == j["size"]
    assert [r["status"] for r in requests_to(sim, result)] == [200, 429, 200]
    # With Retry-After, that is what counts.
    faults(sim, {"match": result, "status": 429, "retry_after": 3, "count": 1})
    t0 = time.monotonic()
    zc(cfg, "bulk", "Leads", "--job", j["job_id"], "--out", str(zcrm_env.dir / "third.zip"))
    assert time.monotonic() - t0 >= 3.0


def test_bulk_download_limit_beyond_budget_fails_and_leaves_no_file(zc, config_factory, sim,
                                                                    zcrm_env):
    c = config_factory({"zoho": {"max_retries": 3, "retry_budget": 2}}, sim=sim)
    j = zc(c, "bulk", "Leads", "--poll-ms", "100").json
    faults(sim, {"match": "/crm/bulk/v6/read/%s/result" % j["job_id"], "status": 429,
                 "count": -1})
    out = zcrm_env.dir / "never.zip"
    res = zc(c, "bulk", "Leads", "--job", j["job_id"], "--out", str(out), ok=False,
             env={"ZCRM_DOWNLOAD_429_MS": "5000"})
    assert res.returncode == EX_TEMPFAIL
    assert "retry budget" in res.stderr
    assert not out.exists()


def test_bulk_job_failure_is_reported(zc, sim, cfg):
    sim.control("POST", "/faults", {"bulk": {"fail": 1}})
    res = zc(cfg, "bulk", "Leads", "--poll-ms", "100", ok=False)
    assert res.returncode == EX_UNAVAILABLE
    assert "bulk job failed" in res.stderr


def test_bulk_unknown_job_is_not_found(zc, cfg):
    res = zc(cfg, "bulk", "Leads", "--job", "123456789", ok=False)
    assert res.returncode == EX_UNAVAILABLE
    assert "HTTP 404 RESOURCE_NOT_FOUND" in res.stderr


# ---------------------------------------------------------------- records

def test_records_by_id_all_fields_and_join(zc, sim, cfg):
    t = truth(sim)
    ids = [r["id"] for r in t["records"][:5]]
    fields = [f["api_name"] for f in zc(cfg, "fields", "Leads").json["fields"]]
    assert "Last_Name" in fields and len(fields) < 50
    whole = zc(cfg, "records", "Leads", ",".join(ids)).json
    assert whole["count"] == 5
    assert sorted(r["id"] for r in whole["data"]) == sorted(ids)
    # More than 50 fields: joined from two calls, same records.
    many = fields + fields[:60 - len(fields)]
    joined = zc(cfg, "records", "Leads", ",".join(ids), "--fields", ",".join(many)).json
    assert joined["fields_asked"] == 60
    by_id = {r["id"]: r for r in whole["data"]}
    assert {r["id"]: r for r in joined["data"]} == by_id
    calls = requests_to(sim, "/crm/v6/Leads")
    assert len(calls) == 3
    assert all("converted=both" in c["query"] for c in calls)
    # Ids are exact 64-bit values from strings.
    want = {r["id"]: r["Last_Name"] for r in t["records"][:5]}
    assert {i: r["Last_Name"] for i, r in by_id.items()} == want


def test_records_missing_ids_are_left_out(zc, sim, cfg):
    t = truth(sim)
    gone = t["records"][0]["id"]
    keep = t["records"][1]["id"]
    sim.control("DELETE", "/records/Leads/%s" % gone)
    res = zc(cfg, "records", "Leads", "%s,%s" % (gone, keep), "--fields", "Last_Name").json
    assert [r["id"] for r in res["data"]] == [keep]
    # Nothing found at all: HTTP 204, an empty list.
    res = zc(cfg, "records", "Leads", gone, "--fields", "Last_Name").json
    assert res == {"count": 0, "fields_asked": 1, "data": []}


def test_deleted_since(zc, sim, cfg):
    assert zc(cfg, "deleted", "Leads").json == {"count": 0, "more_records": False, "data": []}
    t = truth(sim)
    a, b = t["records"][0]["id"], t["records"][1]["id"]
    sim.control("DELETE", "/records/Leads/%s" % a)
    sim.control("DELETE", "/records/Leads/%s?permanent=1" % b)
    res = zc(cfg, "deleted", "Leads").json
    assert res["count"] == 2
    assert sorted((d["id"], d["type"]) for d in res["data"]) == sorted(
        [(a, "recycle"), (b, "permanent")])
    for d in res["data"]:
        assert d["deleted_time"].endswith("+00:00")
    future = zc(cfg, "deleted", "Leads", str(int(time.time()) + 3600)).json
    assert future["count"] == 0
    past = zc(cfg, "deleted", "Leads", "2001-01-01T00:00:00-08:00").json
    assert past["count"] == 2


def test_fields_and_count(zc, sim, cfg):
    f = zc(cfg, "fields", "Leads").json
    names = {x["api_name"]: x for x in f["fields"]}
    assert names["id"]["data_type"] == "bigint"
    assert names["Owner"]["json_type"] == "jsonobject"
    assert re.fullmatch(r"\d{10,19}", names["Last_Name"]["id"])
    assert f["count"] == len(truth(sim)["fields"])
    assert zc(cfg, "count", "Leads").json == {"count": 60}


# --------------------------------------------------------------- channels

def test_watch_lifecycle(zc, sim, cfg):
    before = time.time()
    en = zc(cfg, "watch-enable", "Leads").json
    assert en["channel_id"] == "1000000068001"
    # Asked for a day less a clock-skew allowance, read back from the answer.
    assert before + 86400 - 400 <= en["expiry_epoch"] <= time.time() + 86400
    ch = sim.control("GET", "/channels")["channels"]
    assert len(ch) == 1 and ch[0]["channel_id"] == "1000000068001"
    assert ch[0]["token"] == TOKEN
    assert ch[0]["return_affected_field_values"] is True
    assert ch[0]["notify_on_related_action"] is False
    got = zc(cfg, "watch-get", "Leads").json
    assert got["found"] is True
    assert sorted(got["events"]) == ["Leads.create", "Leads.delete", "Leads.edit"]
    assert got["expiry_epoch"] == en["expiry_epoch"]
    up = zc(cfg, "watch-update", "Leads").json
    assert up["expiry_epoch"] >= en["expiry_epoch"]
    assert zc(cfg, "watch-disable", "Leads").json["disabled"] is True
    assert zc(cfg, "watch-get", "Leads").json == {"channel_id": "1000000068001", "found": False}
    again = zc(cfg, "watch-disable", "Leads", ok=False)
    assert again.returncode == EX_UNAVAILABLE
    assert "NOT_SUBSCRIBED" in again.stderr


def test_watch_shorter_grant_is_read_back(zc, sim, cfg):
    # Past Zoho's maximum a channel silently gets the default: we report
    # what was granted, not what we asked for, and warn.
    sim.control("POST", "/config", {"watch_max_expiry_s": 7200, "watch_default_expiry_s": 3600})
    en = zc(cfg, "watch-enable", "Leads")
    assert abs(en.json["expiry_epoch"] - (time.time() + 3600)) < 120
    assert "shorter channel" in en.stderr


def test_usage_errors(zc, cfg):
    res = zc(cfg, "records", "Leads", "12,abc", ok=False)
    assert res.returncode == 64
    res = zc(cfg, "nonsense", ok=False)
    assert res.returncode == 64
    res = zc(cfg, "watch-enable", "Contacts", ok=False)  # not in [sync] modules
    assert res.returncode == 64
