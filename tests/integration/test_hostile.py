"""Hostile requests against the webhook behind the real nginx snippet
(issue #8): what an attacker who knows the public URL can send, and that
each attempt is refused by nginx or the webhook with the right status while
zcrm.inbox, zcrm.to_fetch, zcrm.leads, zcrm.bulk_callbacks and the spool stay
exactly as they were. Also: the webhook's memory stays bounded under a
stream of such requests.

Requests go over raw sockets where urllib would tidy them up (repeated
headers, a body that stalls, chunked bodies). See docs/security.md.
"""

import json
import socket
import time
from pathlib import Path

import pytest

import harness
from harness import BIN_ROOT, CHANNEL_ID, TOKEN, scaled

WEBHOOK = BIN_ROOT / "webhook" / "zcrm_webhook"
TABLES = ("inbox", "to_fetch", "leads", "bulk_callbacks")
T0 = 1718117126473
MAX_BODY = 1048576          # nginx client_max_body_size 1m == [webhook] max_body

pytestmark = pytest.mark.skipif(not WEBHOOK.exists(), reason="webhook not built")


# ------------------------------------------------------------ helpers

def notif(ids=("5725767000003000064",), token=TOKEN, op="update", module="Leads",
          channel=CHANNEL_ID, server_time=T0, drop=(), raw_ids=False, **extra):
    """A notification body (bytes). raw_ids: ids go in as given (any JSON)."""
    d = {
        "server_time": server_time,
        "query_params": {},
        "module": module,
        "resource_uri": "https://www.zohoapis.com/crm/v2/%s" % module,
        "ids": list(ids) if raw_ids else [str(i) for i in ids],
        "affected_fields": [],
        "operation": op,
        "channel_id": channel,
        "token": token,
    }
    d.update(extra)
    for k in drop:
        d.pop(k)
    return json.dumps(d).encode()


class Stack(harness.WebhookStack):
    def snapshot(self):
        out = {t: self.db.query("SELECT * FROM zcrm.%s ORDER BY 1, 2" % t) for t in TABLES}
        out["spool"] = sorted(p.name for p in Path(self.spool).iterdir())
        return out

    def raw(self, data, **kw):
        return raw_request(self.ng.port, data, **kw)

    def rss_kib(self):
        with open("/proc/%d/status" % self.wh.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.wh.pid)


@pytest.fixture
def stack(fields_stack):
    # A small ASan quarantine, so that the RSS test measures leaks and
    # growth, not freed memory ASan keeps on purpose.
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"}
    return fields_stack(cls=Stack, env=env)


def raw_request(port, data, timeout=10, half_close=False):
    """Send bytes, read until the server closes (or timeout). Returns
    (status or None, whole answer bytes, seconds taken)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout))
    out = b""
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    status = None
    if out.startswith(b"HTTP/1."):
        status = int(out.split(b" ", 2)[1])
    return status, out, time.monotonic() - t0


def request_bytes(body, headers=(), path="/zcrm/notify", method="POST"):
    """An HTTP/1.1 request with exactly the given header lines (plus Host
    and Connection: close), in order, repeated ones included."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: localhost", "Connection: close"]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body, size=4096):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def answer(raw):
    """The JSON body of an HTTP answer (chunked or not), or None."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out, body = out + rest[:n], rest[n + 2:]
        body = out
    try:
        return json.loads(body)
    except ValueError:
        return None


# ------------------------------------------------------- size limits

def test_body_over_the_limit_is_413_from_nginx(stack):
    before = stack.snapshot()
    big = b'{"module":"' + b"x" * MAX_BODY + b'"}'
    status, _, _ = stack.post(big)
    assert status == 413
    # The same without a Content-Length (chunked): nginx counts as it reads.
    req = request_bytes(chunked(big), [("Content-Type", "application/json"),
                                       ("Transfer-Encoding", "chunked")])
    status, raw, _ = stack.raw(req)
    assert status == 413, raw[:200]
    # A Content-Length that lies about a huge body is refused up front.
    req = request_bytes(b"{}", [("Content-Type", "application/json"),
                                ("Content-Length", "99999999999")])
    status, raw, _ = stack.raw(req, half_close=True)
    assert status == 413, raw[:200]
    assert stack.snapshot() == before
    # None of it reached the webhook.
    assert "request refused" not in stack.wh.stderr_text()


def test_body_at_the_limit_reaches_the_webhook(stack):
    # Exactly max_body bytes: nginx passes it and so does the webhook.
    before = stack.snapshot()
    body = notif()
    body = body[:-1] + b', "pad": "' + b"p" * (MAX_BODY - len(body) - 11) + b'"}'
    assert len(body) == MAX_BODY
    status, _, raw = stack.post(body)
    # The token is right, so the notification is applied: padding is an
    # unknown key, and unknown keys are ignored.
    assert status == 200, raw
    assert stack.db.value("SELECT count(*) FROM zcrm.inbox") == len(before["inbox"]) + 1


def test_slow_body_times_out_in_nginx(stack):
    """Headers and a few bytes, then nothing: nginx's client_body_timeout
    (10 s in nginx/zcrm-sync.conf) ends it; the webhook never sees it
    (fastcgi_request_buffering on)."""
    before = stack.snapshot()
    body = notif()
    req = request_bytes(b"", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))]) + body[:10]
    status, raw, took = stack.raw(req, timeout=30)
    # nginx answers 408 or (its usual choice for a body timeout) just
    # closes the connection; either way within about the timeout.
    assert status in (None, 408), raw[:200]
    assert 8 <= took < scaled(25), took
    access = (stack.ng.dir / "access.log").read_text()
    assert '"POST /zcrm/notify HTTP/1.1" 408' in access, access[-500:]
    assert stack.snapshot() == before
    assert "request refused" not in stack.wh.stderr_text()


# ----------------------------------------------------- bad JSON / text

BAD_BODIES = [
    ("nested_object", b'{"module":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"),
    ("nested_array", notif()[:-1] + b', "x": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
    ("unclosed_nesting", b"[" * 500000),
    ("invalid_utf8_ff", notif(module="Le\udcffads").replace(b"\\udcff", b"\xff")),
    # Well-formed for json-c 0.16, refused by PostgreSQL: with the right
    # token these must be 400 here, not "database down" (spooled forever).
    ("overlong_utf8", notif()[:-1] + b', "query_params": {"q": "\xc0\xaf"}}'),
    ("surrogate_utf8", notif()[:-1] + b', "x": "\xed\xa0\x80"}'),
    ("beyond_10ffff", notif()[:-1] + b', "x": "\xf4\x90\x80\x80"}'),
    ("f5_lead_byte", notif()[:-1] + b', "x": "\xf5\x80\x80\x80"}'),
    ("truncated_utf8", notif()[:-1] + b', "x": "\xe2\x82"}'),
    ("nul_byte", notif() + b"\0"),
    ("escaped_nul_module", notif(module="Leads\u0000evil")),
    ("escaped_nul_token", notif(token=TOKEN + "\u0000x")),
    ("trailing_garbage", notif() + b" {}"),
    ("two_documents", notif() + notif()),
    ("not_json", b"module=Leads&ids=1"),
    ("empty", b""),
    ("json_array", b"[" + notif() + b"]"),
    ("bom", b"\xef\xbb\xbf" + notif()),
    ("duplicate_keys_bad_last", notif()[:-1] + b', "ids": ["x"]}'),
    ("huge_number", notif()[:-1] + b', "server_time": 1e400}'),
    ("nan", notif()[:-1] + b', "server_time": NaN}'),
    ("single_quotes", notif().replace(b'"', b"'")),
    ("comments", b"/* x */" + notif()),
]


@pytest.mark.parametrize("name,body", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body_400(stack, name, body):
    before = stack.snapshot()
    status, _, raw = stack.post(body)
    assert status == 400, (status, raw[:300])
    assert json.loads(raw)["error"] == "bad_request"
    assert stack.snapshot() == before


# ------------------------------------------------------------- ids

BAD_IDS = [
    ("letters", ["12a4"]),
    ("empty_string", [""]),
    ("negative", ["-5"]),
    ("zero", ["0"]),
    ("spaces", [" 1"]),
    ("plus", ["+1"]),
    ("hex", ["0x10"]),
    ("twenty_digits", ["12345678901234567890"]),
    ("past_bigint", ["9223372036854775808"]),
    ("thousand_digits", ["9" * 1000]),
    ("float", [1.5]),
    ("big_float", [1e30]),
    ("int_past_bigint", [18446744073709551615]),
    ("negative_int", [-1]),
    ("null", [None]),
    ("nested", [["1"]]),
    ("object", [{"id": "1"}]),
    ("bool", [True]),
    ("good_then_bad", ["1", "2", "x"]),
    ("empty_list", []),
]


@pytest.mark.parametrize("name,ids", BAD_IDS, ids=[b[0] for b in BAD_IDS])
def test_bad_ids_400(stack, name, ids):
    before = stack.snapshot()
    status, _, raw = stack.post(notif(ids, raw_ids=True))
    assert status == 400, (status, raw[:300])
    assert "ids" in json.loads(raw)["message"]
    assert stack.snapshot() == before


def test_ids_not_a_list_400(stack):
    before = stack.snapshot()
    for ids in ("1", 1, None, {"0": "1"}):
        body = json.loads(notif())
        body["ids"] = ids
        status, _, raw = stack.post(json.dumps(body).encode())
        assert status == 400, (ids, status, raw)
    assert stack.snapshot() == before


def test_ten_thousand_ids_accepted_ten_thousand_and_one_refused(stack):
    db = stack.db
    before = stack.snapshot()
    base = 5725767000000000000
    too_many = notif([base + i for i in range(10001)], server_time=T0 + 1)
    status, _, raw = stack.post(too_many)
    assert status == 413, raw
    assert json.loads(raw)["error"] == "too_many_ids"
    assert stack.snapshot() == before
    just_right = notif([base + i for i in range(10000)])
    assert len(just_right) < MAX_BODY
    status, _, raw = stack.post(just_right)
    assert status == 200, raw
    assert json.loads(raw) == {"status": "applied"}
    assert db.value("SELECT count(*) FROM zcrm.to_fetch") == 10000
    assert db.value("SELECT cardinality(ids) FROM zcrm.inbox") == 10000
    # The same id 10,000 times is one dirty row, not an error.
    same = notif([base + 7] * 10000, server_time=T0 + 2)
    status, _, raw = stack.post(same)
    assert status == 200, raw
    assert db.value("SELECT count(*) FROM zcrm.to_fetch") == 10000


# ----------------------------------------------------------- token

WRONG_TOKENS = [
    ("empty", ""),
    ("shorter", TOKEN[:-1]),
    ("longer", TOKEN + "0"),
    ("same_length_last_byte", TOKEN[:-1] + "X"),
    ("same_length_first_byte", "X" + TOKEN[1:]),
    ("case", TOKEN.upper()),
    ("padded", " " + TOKEN),
    ("newline", TOKEN + "\n"),
    ("max_length", "t" * 49),
    ("very_long", "t" * 100000),
    ("null", None),
]


@pytest.mark.parametrize("name,token", WRONG_TOKENS, ids=[t[0] for t in WRONG_TOKENS])
def test_wrong_token_403(stack, name, token):
    before = stack.snapshot()
    status, _, raw = stack.post(notif(token=token))
    assert status == 403, (status, raw)
    assert json.loads(raw)["error"] == "forbidden"
    assert stack.snapshot() == before
    # The token is never echoed into the log.
    if token and len(token) > 3:
        assert token.strip() not in stack.wh.stderr_text()


def test_missing_or_mistyped_token(stack):
    before = stack.snapshot()
    status, _, raw = stack.post(notif(drop=("token",)))
    assert status == 403, raw
    for bad in (12345, True, [TOKEN], {"t": TOKEN}):
        status, _, raw = stack.post(notif(token=bad))
        assert status == 400, (bad, status, raw)
    assert stack.snapshot() == before


def test_right_token_wrong_channel_or_module_403(stack):
    before = stack.snapshot()
    for kw in ({"channel": str(int(CHANNEL_ID) + 1)}, {"channel": "1"},
               {"module": "Contacts"}, {"module": "leads"}, {"module": "Leads;DROP"},
               {"module": 'Leads"'}):
        status, _, raw = stack.post(notif(**kw))
        assert status == 403, (kw, status, raw)
    assert stack.snapshot() == before


# ------------------------------------------------ repeated headers

def test_repeated_and_conflicting_headers(stack):
    before = stack.snapshot()
    body = notif(token="wrong-token-xxxxxxxxxx")
    ct = ("Content-Type", "application/json")
    cl = ("Content-Length", str(len(body)))
    cases = [
        ("two Content-Length, same", [ct, cl, cl], body, 400),
        ("two Content-Length, different", [ct, cl, ("Content-Length", "5")], body, 400),
        ("Content-Length and chunked", [ct, cl, ("Transfer-Encoding", "chunked")],
         chunked(body), 400),
        ("unknown Transfer-Encoding", [ct, ("Transfer-Encoding", "gzip")], body, 501),
        ("negative Content-Length", [ct, ("Content-Length", "-1")], body, 400),
        ("Content-Length not a number", [ct, ("Content-Length", "12x")], body, 400),
        ("header too large", [ct, cl, ("X-Big", "a" * 20000)], body, 400),
    ]
    for what, headers, payload, expect in cases:
        status, raw, _ = stack.raw(request_bytes(payload, headers))
        assert status == expect, (what, status, raw[:300])
    # Two Host headers: nginx refuses the request line's headers.
    req = (b"POST /zcrm/notify HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert stack.raw(req)[0] == 400
    assert stack.snapshot() == before
    assert "request refused" not in stack.wh.stderr_text()


def test_two_content_types_are_handled(stack):
    """nginx passes one Content-Type on; the webhook does not depend on it,
    so a good notification with two is handled once, like any other."""
    body = notif(["4150868000001000001"])
    headers = [("Content-Type", "application/json"), ("Content-Type", "text/plain"),
               ("Content-Length", str(len(body)))]
    status, raw, _ = stack.raw(request_bytes(body, headers))
    assert status == 200, raw[:300]
    assert answer(raw) == {"status": "applied"}
    assert stack.db.query("SELECT ids FROM zcrm.inbox") == [([4150868000001000001],)]


def test_methods_and_paths(stack):
    before = stack.snapshot()
    body = notif()
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        status, _, _ = harness.http(method, stack.ng.url + "/zcrm/notify",
                                    body if method != "GET" else None)
        assert status == 405, method
    # nginx normalises these to /zcrm/notify: the same route, the same
    # checks (a wrong token here).
    wrong = notif(token="wrong-token-0123456789")
    for path in ("/zcrm/notify/../notify", "/zcrm//notify", "/zcrm/./notify", "/zcrm/%6eotify",
                 "/x/../zcrm/notify"):
        status, _, _ = stack.post(wrong, path=path)
        assert status == 403, (path, status)
    # Anything else never reaches the webhook.
    for path in ("/zcrm/notify/", "/zcrm/notifyx", "/zcrm/NOTIFY", "/zcrm/notify%00",
                 "/zcrm/%6eotify/x", "/zcrm/notify;x", "/zcrm/../notify", "/notify"):
        status, _, _ = stack.post(body, path=path)
        assert status in (400, 404), (path, status)
    assert stack.snapshot() == before


# ------------------------------------------------------------ memory

def hostile_requests():
    """(body, headers) pairs that reach the webhook and are refused."""
    good = notif()
    return [
        (b'{"module":' + b'{"a":' * 20000 + b"1" + b"}" * 20000 + b"}", None),
        (good[:-1] + b', "x": "' + b"\xc0\xaf" * 300000 + b'"}', None),
        (notif(token="x" * 100000), None),
        (notif([5725767000000000000 + i for i in range(10001)]), None),
        (notif(["1"] * 9999 + ["x"], raw_ids=True), None),
        (good[:-1] + b', "pad": "' + b"z" * (MAX_BODY - len(good) - 11) + b'"}' + b"!", None),
        (b"[" * (MAX_BODY - 10), None),
        (good.replace(TOKEN.encode(), b"wrong-token-0123456789"), None),
    ]


def test_rss_stays_bounded_under_hostile_requests(stack):
    cases = hostile_requests()
    # Warm up: thread arenas, connection, prepared statements.
    for body, _ in cases:
        stack.post(body)
    before_rss = stack.rss_kib()
    before = stack.snapshot()
    statuses = {}
    for i in range(200):
        body, _ = cases[i % len(cases)]
        status, _, _ = stack.post(body)
        statuses[status] = statuses.get(status, 0) + 1
    after_rss = stack.rss_kib()
    assert set(statuses) <= {400, 403, 413}, statuses
    assert stack.snapshot() == before
    growth_mib = (after_rss - before_rss) / 1024.0
    print("webhook VmRSS %d KiB -> %d KiB (%.1f MiB) after 200 hostile requests %s"
          % (before_rss, after_rss, growth_mib, statuses))
    assert growth_mib < 64, growth_mib
    # Still serving.
    status, _, raw = stack.post(notif(["4150868000001000002"]))
    assert status == 200, raw


# ------------------------------------------------------- server_time

def test_server_time_far_in_the_future_refused(stack):
    """A delete stamped in the year 2999 would leave a tombstone no later
    edit can lift (a newer row must have modified_time > deleted_at): more
    than a day ahead of our clock is refused, even with the right token."""
    db = stack.db
    before = stack.snapshot()
    now_ms = int(time.time() * 1000)
    for ahead in (2 * 86400 * 1000, 900 * 365 * 86400 * 1000):
        status, _, raw = stack.post(notif(["4150868000001000003"], op="delete",
                                          server_time=now_ms + ahead))
        assert status == 400, (ahead, status, raw)
        assert "future" in json.loads(raw)["message"]
    assert stack.snapshot() == before
    # An hour of clock skew is fine.
    status, _, raw = stack.post(notif(["4150868000001000003"], op="delete",
                                      server_time=now_ms + 3600 * 1000))
    assert status == 200, raw
    assert db.value("SELECT count(*) FROM zcrm.leads WHERE deleted_at IS NOT NULL") == 1


# --------------------------------------------------- bulk callbacks

def test_bulk_callback_is_only_a_bounded_hint(stack):
    """/bulk-callback has no token (Zoho sends none): anyone can post. What
    they can do is bounded: one small row per job id in bulk_callbacks, which
    only makes a waiting batch program poll Zoho sooner."""
    db = stack.db
    before = stack.snapshot()
    body = {"data": [{"id": "4150868000004716016", "state": "COMPLETED",
                      "result": {"download_url": "http://evil.example/x.zip"}}]}
    pad = dict(body, pad="x" * (64 * 1024))
    status, _, raw = stack.post(json.dumps(pad).encode(), path="/zcrm/bulk-callback")
    assert status == 413, raw
    status, _, raw = stack.post(json.dumps(body).encode(), path="/zcrm/bulk-callback")
    assert status == 200, raw
    # Nothing but the hint row: no inbox, no dirty ids, no records.
    after = stack.snapshot()
    assert len(after["bulk_callbacks"]) == 1
    for t in ("inbox", "to_fetch", "leads", "spool"):
        assert after[t] == before[t], t
    # The same job again replaces its row.
    for _ in range(3):
        stack.post(json.dumps(body).encode(), path="/zcrm/bulk-callback")
    assert db.value("SELECT count(*) FROM zcrm.bulk_callbacks") == 1
    assert db.value("SELECT max(octet_length(raw)) FROM zcrm.bulk_callbacks") < 64 * 1024
