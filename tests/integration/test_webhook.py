"""The webhook (webhook/zcrm_webhook) behind the real nginx snippet, against
the real PostgreSQL: every route, every refusal, the spool, shutdown and
concurrency. Each test says what must be, and must not be, in zcrm.inbox,
zcrm.to_fetch, zcrm.leads and zcrm.bulk_callbacks afterwards.

Bodies come from tests/data/notify/ (zoho-api.md §2.5 and §3.4) with the
test configuration's token and channel id put in. [webhook] fetch is off
everywhere: fetching records needs Zoho (or the simulator).
"""

import concurrent.futures
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

import harness
from harness import BIN_ROOT, CHANNEL_ID, REPO, TOKEN, scaled, wait_until

BASE = int(CHANNEL_ID)          # channel of module 0; module i uses BASE + i
NOTIFY_DATA = REPO / "tests" / "data" / "notify"
WEBHOOK = BIN_ROOT / "webhook" / "zcrm_webhook"
T0 = 1718117126473              # server_time of the documented insert sample
TABLES = ("inbox", "to_fetch", "leads", "bulk_callbacks")

pytestmark = pytest.mark.skipif(not WEBHOOK.exists(), reason="webhook not built")


# ------------------------------------------------------------ helpers

def fixture_body(name, **changes):
    """A tests/data/notify/ body as a dict, with our token and channel."""
    d = json.loads((NOTIFY_DATA / name).read_text())
    if "module" in d:
        d["token"] = TOKEN
        d["channel_id"] = str(BASE)
    d.update(changes)
    return d


def notif(op="update", ids=("5725767000003000064",), server_time=T0, module="Leads",
          channel=BASE, token=TOKEN, drop=(), **extra):
    """A notification body (bytes) in the documented key order."""
    d = {
        "server_time": server_time,
        "query_params": {},
        "module": module,
        "resource_uri": "https://www.zohoapis.com/crm/v2/%s" % module,
        "ids": [str(i) for i in ids],
        "affected_fields": [],
        "operation": op,
        "channel_id": str(channel),
        "token": token,
    }
    d.update(extra)
    for k in drop:
        d.pop(k)
    return json.dumps(d).encode()


def stored(body):
    """What the inbox and the spool keep of a body made with json.dumps:
    the same bytes without the channel token (issue 14)."""
    if isinstance(body, (list, tuple)):
        return [stored(b) for b in body]
    d = json.loads(body)
    d.pop("token", None)
    return json.dumps(d).encode()


def ms(sql_ts_expr):
    """SQL turning a timestamptz expression into epoch milliseconds."""
    return "(round(extract(epoch FROM %s) * 1000))::bigint" % sql_ts_expr


def snapshot(db, tables=TABLES):
    """The full contents of the tables (None for a missing table)."""
    out = {}
    for t in tables:
        if db.value("SELECT to_regclass(%s)", "zcrm." + t) is None:
            out[t] = None
        else:
            out[t] = db.query("SELECT * FROM zcrm.%s ORDER BY 1, 2" % t)
    return out


def jbody(raw):
    return json.loads(raw.decode("utf-8"))


def spool_files(path):
    return sorted(p.name for p in Path(path).iterdir() if p.name.endswith(".json")
                  and not p.name.startswith("."))


class Stack(harness.WebhookStack):
    """nginx + webhook + migrated database with module tables."""

    def notify(self, body, expect=200):
        status, _, raw = self.post(body)
        assert status == expect, (status, raw)
        return jbody(raw)

    def metrics(self):
        status, headers, raw = self.get("/zcrm/metrics")
        assert status == 200, raw
        assert headers.get("Content-Type", "").startswith("text/plain")
        return parse_metrics(raw.decode())


@pytest.fixture
def stack_factory(fields_stack):
    """fields_stack (harness.py) making this file's Stack."""
    return functools.partial(fields_stack, cls=Stack)


@pytest.fixture
def stack(stack_factory):
    return stack_factory()


def parse_metrics(text):
    """{(name, frozenset(labels)): value} plus the raw lines under '_lines'
    and the webhook labels under '_webhook'. Every series must carry the
    webhook label (the process's identity); it is left out of the keys."""
    out = {"_lines": text.splitlines(), "_webhook": set()}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$', line)
        assert m, "not Prometheus text: %r" % line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        assert "webhook" in labels, "a series without the webhook label: %r" % line
        out["_webhook"].add(labels.pop("webhook"))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def requests_total(m, route, status):
    return metric(m, "zcrm_webhook_requests_total", route=route, status=str(status))


# --------------------------------------------- FastCGI, without nginx

def fcgi_message(params, body=b"", keep_conn=False, rid=1):
    """The records of one FastCGI request, as nginx sends them (keep_conn:
    the FCGI_KEEP_CONN flag of fastcgi_keep_conn on)."""

    def record(rtype, content):
        return struct.pack(">BBHHBB", 1, rtype, rid, len(content), 0, 0) + content

    def pair(k, v):
        k, v = k.encode(), v.encode()
        out = b""
        for n in (len(k), len(v)):
            out += struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
        return out + k + v

    msg = record(1, struct.pack(">HB5x", 1, 1 if keep_conn else 0))
    pp = b"".join(pair(k, v) for k, v in params.items())
    msg += record(4, pp) + record(4, b"")
    for i in range(0, len(body), 65535):
        msg += record(5, body[i:i + 65535])
    return msg + record(5, b"")


def fcgi_reply(s):
    """Read one reply from socket s up to its END_REQUEST (or EOF):
    (status, {header: value}, body, ended)."""
    out, buf, done = b"", b"", False
    while not done:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            _, rtype, _, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            content = buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
            if rtype == 6:
                out += content
            elif rtype == 3:
                done = True
    head, _, payload = out.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, payload, done


def fcgi_connect(sock_path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(scaled(timeout))
    s.connect(str(sock_path))
    return s


def fcgi_request(sock_path, params, body=b"", timeout=10):
    """One FastCGI request straight to the webhook's socket (what nginx
    never sends: unknown routes, a lying CONTENT_LENGTH). Returns
    (status, {header: value}, body)."""
    s = fcgi_connect(sock_path, timeout)
    try:
        s.sendall(fcgi_message(params, body))
        status, headers, payload, _ = fcgi_reply(s)
    finally:
        s.close()
    return status, headers, payload


def fcgi_params(uri, method="POST", body=b"", content_length=None):
    return {
        "SCRIPT_NAME": "/zcrm",
        "PATH_INFO": uri[len("/zcrm"):] if uri.startswith("/zcrm") else uri,
        "DOCUMENT_URI": uri,
        "REQUEST_URI": uri,
        "REQUEST_METHOD": method,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }


# ================================================== POST /zcrm/notify

def test_documented_insert_marks_id_dirty(stack):
    body = json.dumps(fixture_body("insert.json")).encode()
    assert stack.notify(body) == {"status": "applied"}
    db = stack.db
    rows = db.query("SELECT channel_id, module, operation, ids, %s, raw, via,"
                    " processed_at IS NOT NULL, error FROM zcrm.inbox" % ms("server_time"))
    assert rows == [(BASE, "Leads", "insert", [5725767000003000064], 1718117126473,
                     stored(body).decode(), "webhook", True, None)]
    assert db.query("SELECT module, id, %s, attempts FROM zcrm.to_fetch" % ms("server_time")) == [
        ("Leads", 5725767000003000064, 1718117126473, 0)]
    # Nothing is written into the record table by an insert/update notification.
    assert db.query("SELECT count(*) FROM zcrm.leads") == [(0,)]
    assert db.query("SELECT count(*) FROM zcrm.bulk_callbacks") == [(0,)]


def test_documented_update_with_affected_values(stack):
    body = json.dumps(fixture_body("update.json")).encode()
    assert stack.notify(body) == {"status": "applied"}
    db = stack.db
    assert db.query("SELECT operation, ids, via FROM zcrm.inbox") == [
        ("update", [6756839000000575405], "webhook")]
    assert db.query("SELECT module, id, %s FROM zcrm.to_fetch" % ms("server_time")) == [
        ("Leads", 6756839000000575405, 1750102639787)]
    assert db.query("SELECT count(*) FROM zcrm.leads") == [(0,)]


def test_update_keeps_newest_server_time(stack):
    db = stack.db
    rid = 4150868000001000001
    assert stack.notify(notif("update", [rid], T0 + 5000)) == {"status": "applied"}
    # An older notification arriving late does not move server_time back...
    assert stack.notify(notif("update", [rid], T0)) == {"status": "applied"}
    assert db.query("SELECT id, %s FROM zcrm.to_fetch" % ms("server_time")) == [(rid, T0 + 5000)]
    # ...a newer one moves it forward; still one row per id.
    assert stack.notify(notif("insert", [rid], T0 + 9000)) == {"status": "applied"}
    assert db.query("SELECT id, %s FROM zcrm.to_fetch" % ms("server_time")) == [(rid, T0 + 9000)]
    assert db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NOT NULL") == 3
    assert db.query("SELECT count(*) FROM zcrm.leads") == [(0,)]


def test_create_and_edit_verbs_are_accepted(stack):
    # zoho-api.md §2.5: accept the channel's event verbs too.
    assert stack.notify(notif("create", [11], T0)) == {"status": "applied"}
    assert stack.notify(notif("edit", [12], T0)) == {"status": "applied"}
    assert stack.db.query("SELECT operation, ids FROM zcrm.inbox ORDER BY id") == [
        ("insert", [11]), ("update", [12])]
    assert stack.db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(11,), (12,)]


def test_delete_tombstones_unknown_id(stack):
    body = json.dumps(fixture_body("delete.json")).encode()
    assert stack.notify(body) == {"status": "applied"}
    db = stack.db
    assert db.query("SELECT id, modified_time, %s, source FROM zcrm.leads"
                    % ms("deleted_at")) == [(6756839000000575405, None, 1750102700000, "notify")]
    assert db.query("SELECT count(*) FROM zcrm.leads_live") == [(0,)]
    assert db.query("SELECT operation, processed_at IS NOT NULL FROM zcrm.inbox") == [
        ("delete", True)]
    assert db.query("SELECT count(*) FROM zcrm.to_fetch") == [(0,)]


def test_delete_of_a_dirty_id_clears_it(stack):
    db = stack.db
    # An id left in dirty by a failed fetch, then a delete after it: fetching
    # a record deleted after it was marked is pointless.
    db.execute("INSERT INTO zcrm.dirty (module, id, server_time, attempts)"
               " VALUES ('Leads', 21, to_timestamp(%s / 1000.0), 1),"
               " ('Leads', 24, to_timestamp(%s / 1000.0), 1)", T0, T0 + 5000)
    stack.notify(notif("delete", [21, 24], T0 + 1000))
    assert db.query("SELECT id FROM zcrm.dirty") == [(24,)]
    # A queued notification is not rewritten by a later delete: the fetch
    # skips the ids tombstoned since (test_stay_current: reordered deletes).
    stack.notify(notif("update", [22, 25], T0))
    stack.notify(notif("delete", [25], T0 + 1000))
    assert db.query("SELECT ids FROM zcrm.fetch_queue") == [([22, 25],)]
    # A delete older than the newest update leaves the id to fetch.
    stack.notify(notif("update", [23], T0 + 5000))
    stack.notify(notif("delete", [23], T0 + 1000))
    assert db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(22,), (23,), (24,), (25,)]
    assert db.query("SELECT id, %s FROM zcrm.leads ORDER BY id" % ms("deleted_at")) == [
        (21, T0 + 1000), (23, T0 + 1000), (24, T0 + 1000), (25, T0 + 1000)]


def test_delete_older_than_stored_record_is_ignored(stack):
    db = stack.db
    rid = 4150868000002000002
    # The stored copy was modified 10 s after the delete's server_time: the
    # delete is stale (the record was restored/recreated since).
    db.execute("INSERT INTO zcrm.leads (id, last_name, modified_time, source)"
               " VALUES (%s, 'Boyle', to_timestamp(%s / 1000.0), 'bulk')", rid, T0 + 10000)
    before = db.query("SELECT * FROM zcrm.leads")
    assert stack.notify(notif("delete", [rid], T0)) == {"status": "applied"}
    assert db.query("SELECT * FROM zcrm.leads") == before
    assert db.query("SELECT deleted_at, source, last_name FROM zcrm.leads") == [
        (None, "bulk", "Boyle")]
    # It is still recorded (and marked processed) in the inbox.
    assert db.query("SELECT operation, ids, processed_at IS NOT NULL FROM zcrm.inbox") == [
        ("delete", [rid], True)]
    # A delete at the same instant as modified_time applies (<=), later too.
    assert stack.notify(notif("delete", [rid], T0 + 10000)) == {"status": "applied"}
    assert db.query("SELECT %s, source, last_name FROM zcrm.leads" % ms("deleted_at")) == [
        (T0 + 10000, "notify", "Boyle")]


def test_later_delete_moves_tombstone_forward(stack):
    db = stack.db
    rid = 4150868000003000003
    stack.notify(notif("delete", [rid], T0))
    assert db.value("SELECT %s FROM zcrm.leads" % ms("deleted_at")) == T0
    stack.notify(notif("delete", [rid], T0 + 60000))
    assert db.value("SELECT %s FROM zcrm.leads" % ms("deleted_at")) == T0 + 60000
    # An earlier delete delivered late does not move it back.
    stack.notify(notif("delete", [rid], T0 + 30000))
    assert db.query("SELECT id, %s, source FROM zcrm.leads" % ms("deleted_at")) == [
        (rid, T0 + 60000, "notify")]
    assert db.value("SELECT count(*) FROM zcrm.inbox") == 3


def test_duplicate_delivery_changes_nothing(stack):
    db = stack.db
    for name in ("insert.json", "delete.json"):
        body = json.dumps(fixture_body(name)).encode()
        assert stack.notify(body) == {"status": "applied"}
        before = snapshot(db)
        status, _, raw = stack.post(body)
        assert status == 200 and jbody(raw) == {"status": "duplicate"}
        assert snapshot(db) == before
    assert db.value("SELECT count(*) FROM zcrm.inbox") == 2
    m = stack.metrics()
    assert metric(m, "zcrm_webhook_inbox_duplicates_total") == 2
    assert metric(m, "zcrm_webhook_inbox_applied_total") == 2


def test_several_ids_in_one_notification(stack):
    db = stack.db
    ids = [4150868000004000001, 4150868000004000002, 4150868000004000003]
    assert stack.notify(notif("update", ids, T0)) == {"status": "applied"}
    assert db.query("SELECT id, %s FROM zcrm.to_fetch ORDER BY id" % ms("server_time")) == [
        (i, T0) for i in ids]
    dels = [4150868000005000001, 4150868000005000002]
    assert stack.notify(notif("delete", dels, T0 + 1)) == {"status": "applied"}
    assert db.query("SELECT id, %s, source FROM zcrm.leads ORDER BY id" % ms("deleted_at")) == [
        (i, T0 + 1, "notify") for i in dels]
    assert db.query("SELECT operation, ids FROM zcrm.inbox ORDER BY id") == [
        ("update", ids), ("delete", dels)]


def test_same_id_twice_in_one_notification(stack):
    # Not documented, but nothing forbids it: must not fail (or spool) the
    # whole notification.
    db = stack.db
    assert stack.notify(notif("update", [31, 31, 32], T0)) == {"status": "applied"}
    assert db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(31,), (32,)]
    assert stack.notify(notif("delete", [33, 33], T0)) == {"status": "applied"}
    assert db.query("SELECT id, %s FROM zcrm.leads" % ms("deleted_at")) == [(33, T0)]
    assert spool_files(stack.spool) == []
    assert db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NOT NULL") == 2


def test_id_and_channel_as_json_integers(stack):
    # Documented as strings; integers are accepted as the same values.
    body = json.dumps({"server_time": T0, "module": "Leads", "ids": [41, "42"],
                       "operation": "update", "channel_id": BASE, "token": TOKEN}).encode()
    assert stack.notify(body) == {"status": "applied"}
    assert stack.db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(41,), (42,)]


# ------------------------------------------------------------- 400s

def _deep(n):
    return ('{"a":' * n + "1" + "}" * n).encode()


GOOD = notif("update", [51], T0).decode()


def _in_string(raw):
    """A valid notification with raw bytes inside a query_params value."""
    return notif("update", [51], T0, query_params={"k": "a@b"}).replace(b"a@b", b"a" + raw + b"b")


BAD_BODIES = [
    ("not_json", b"hello, zoho", "not valid JSON"),
    ("empty", b"", "empty body"),
    ("truncated", GOOD[:-7].encode(), "not valid JSON"),
    ("trailing_data", (GOOD + " x").encode(), "not valid JSON"),
    ("two_objects", (GOOD + GOOD).encode(), "not valid JSON"),
    ("array", b"[1, 2]", "not a JSON object"),
    ("string", b'"insert"', "not a JSON object"),
    ("nul_byte", GOOD.replace('"Leads"', '"Le\\u0000ads"').encode().replace(b"\\u0000", b"\0"),
     "NUL"),
    ("invalid_utf8", GOOD.replace('"Leads"', '"Le\xffads"').encode("latin-1"), "UTF-8"),
    # json-c's own UTF-8 check lets these through; PostgreSQL refuses them
    # as text, which once made the webhook spool them as "database down"
    # and then block the spool replay for good. In any string, not only in
    # the keys we read:
    ("utf8_surrogate", _in_string(b"\xed\xa0\x80"), "UTF-8"),
    ("utf8_overlong_nul", _in_string(b"\xc0\x80"), "UTF-8"),
    ("utf8_overlong_slash", _in_string(b"\xe0\x80\xaf"), "UTF-8"),
    ("utf8_above_10ffff", _in_string(b"\xf4\x90\x80\x80"), "UTF-8"),
    ("utf8_truncated_sequence", _in_string(b"\xe2\x82"), "UTF-8"),
    ("utf8_lone_continuation", _in_string(b"\x80"), "UTF-8"),
    ("utf8_5_byte_form", _in_string(b"\xf8\x88\x80\x80\x80"), "UTF-8"),
    ("nested_5000", _deep(5000), "not valid JSON"),
    ("nested_in_key", GOOD[:-1].encode() + b', "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
     "not valid JSON"),
    ("missing_module", notif(drop=("module",)), "missing key: module"),
    ("missing_operation", notif(drop=("operation",)), "missing key: operation"),
    ("missing_channel_id", notif(drop=("channel_id",)), "missing key: channel_id"),
    ("missing_server_time", notif(drop=("server_time",)), "missing key: server_time"),
    ("missing_ids", notif(drop=("ids",)), "missing key: ids"),
    ("module_number", notif(module=5), "module"),
    ("module_null", json.dumps({"module": None, "operation": "update", "ids": ["1"],
                                "channel_id": CHANNEL_ID, "server_time": T0}).encode(), "module"),
    ("module_empty", notif(module=""), "module"),
    ("module_too_long", notif(module="L" * 200), "module"),
    ("operation_unknown", notif(op="upsert"), "operation"),
    ("operation_number", notif(op=1), "operation"),
    ("channel_id_letters", notif(channel="10000000680x1"), "channel_id"),
    ("channel_id_float", notif().replace(b'"channel_id": "%d"' % BASE, b'"channel_id": 1.5'),
     "channel_id"),
    ("channel_id_object", notif(channel={}).replace(b'"channel_id": "{}"', b'"channel_id": {}'),
     "channel_id"),
    ("server_time_text", notif(server_time="soon"), "server_time"),
    ("server_time_float", notif(server_time=1718117126473.5), "server_time"),
    ("server_time_seconds", notif(server_time=1718117126), "server_time"),
    ("server_time_negative", notif(server_time=-1), "server_time"),
    ("ids_string", notif().replace(b'"ids": ["5725767000003000064"]',
                                   b'"ids": "5725767000003000064"'), "ids"),
    ("ids_empty", notif(ids=[]), "ids: empty"),
    ("ids_object", notif().replace(b'"ids": ["5725767000003000064"]', b'"ids": {"a": "1"}'), "ids"),
    ("id_letters", notif(ids=["57257670000x3000064"]), "ids[0]"),
    ("id_second_bad", notif(ids=["1", "2a"]), "ids[1]"),
    ("id_too_long", notif(ids=["1" * 20]), "ids[0]"),
    ("id_over_bigint", notif(ids=["9223372036854775808"]), "ids[0]"),
    ("id_zero", notif(ids=["0"]), "ids[0]"),
    ("id_empty", notif(ids=[""]), "ids[0]"),
    ("id_negative_int", notif().replace(b'["5725767000003000064"]', b"[-5]"), "ids[0]"),
    ("id_float", notif().replace(b'["5725767000003000064"]', b"[1.5]"), "ids[0]"),
    ("id_null", notif().replace(b'["5725767000003000064"]', b"[null]"), "ids[0]"),
    ("id_signed", notif(ids=["+5"]), "ids[0]"),
    ("id_spaces", notif(ids=[" 5"]), "ids[0]"),
    ("token_number", notif(token=12345), "token"),
    ("token_object", notif().replace(b'"token": "%s"' % TOKEN.encode(), b'"token": {"t": 1}'),
     "token"),
    ("affected_values_object", notif(affected_values={"a": 1}), "affected_values"),
]


@pytest.mark.parametrize("name,body,reason", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body_400(stack, name, body, reason):
    before = snapshot(stack.db)
    status, headers, raw = stack.post(body)
    assert status == 400, (status, raw)
    assert headers.get("Content-Type") == "application/json"
    err = jbody(raw)
    assert err["error"] == "bad_request"
    assert reason in err["message"], err
    assert snapshot(stack.db) == before
    assert spool_files(stack.spool) == []


def test_valid_utf8_and_escapes_accepted(stack):
    # Multi-byte text and JSON escapes (even a lone surrogate or NUL escape,
    # which stay escapes in the stored raw text) are fine.
    texts = ["Müller GmbH", "東京", "😀", "\\ud800", "\\u0000", "\\u00fc"]
    for i, t in enumerate(texts):
        body = notif("update", [1100 + i], T0, query_params={"k": "@"}).replace(
            b'"@"', b'"' + t.encode() + b'"')
        assert stack.notify(body) == {"status": "applied"}, body
    rows = stack.db.query("SELECT raw FROM zcrm.inbox ORDER BY id")
    assert len(rows) == len(texts)
    assert "Müller" in rows[0][0] and "東京" in rows[1][0] and "😀" in rows[2][0]
    assert spool_files(stack.spool) == []


def test_400_counted_and_nothing_written(stack):
    before = snapshot(stack.db)
    for name, body, _ in BAD_BODIES[:10]:
        assert stack.post(body)[0] == 400, name
    m = stack.metrics()
    assert requests_total(m, "notify", 400) == 10
    assert requests_total(m, "notify", 200) == 0
    assert metric(m, "zcrm_webhook_inbox_applied_total") == 0
    assert snapshot(stack.db) == before


# ------------------------------------------------------------- 403s

def _forbidden_cases():
    T = TOKEN
    return [
        ("wrong_token_same_length", notif(token="x" * len(T)), "token"),
        ("wrong_last_char", notif(token=T[:-1] + "8"), "token"),
        ("null_token", notif(token=None), "token"),
        ("absent_token", notif(drop=("token",)), "token"),
        ("empty_token", notif(token=""), "token"),
        ("token_prefix", notif(token=T[:-1]), "token"),
        ("token_longer", notif(token=T + "0"), "token"),
        ("token_case", notif(token=T.upper()), "token"),
        ("unknown_channel", notif(channel=BASE + 7), "channel_id"),
        ("channel_below_base", notif(channel=BASE - 1), "channel_id"),
        ("module_not_configured", notif(module="Deals", channel=BASE), "module"),
        ("module_wrong_case", notif(module="leads", channel=BASE), "module"),
        ("channel_of_contacts_for_leads", notif(module="Leads", channel=BASE + 1), "channel_id"),
        ("channel_of_leads_for_contacts", notif(module="Contacts", channel=BASE), "channel_id"),
    ]


FORBIDDEN = _forbidden_cases()


def test_log_req_is_nginx_request_id(stack):
    # Behind the snippet, a webhook log line carries nginx's $request_id, so
    # it can be matched with nginx's own log; without one (or with anything
    # but hex), the thread's own counter.
    body = notif("update", [91], T0, token="wrong-token-0123456789")
    status, _, _ = stack.post(body)
    assert status == 403
    refused = [l for l in stack.wh.stderr_text().splitlines() if "notification refused" in l]
    assert refused and re.search(r" req=[0-9a-f]{32} ", refused[-1]), refused
    for rid in (None, "not hex; req=1", "a" * 64):
        params = fcgi_params("/zcrm/notify", body=body)
        if rid is not None:
            params["REQUEST_ID"] = rid
        status, _, _ = fcgi_request(stack.wh.sock, params, body)
        assert status == 403
        line = [l for l in stack.wh.stderr_text().splitlines()
                if "notification refused" in l][-1]
        assert re.search(r" req=\d+-\d+ ", line), (rid, line)


@pytest.fixture(scope="function")
def two_module_stack(stack_factory):
    return stack_factory({"sync": {"modules": "Leads,Contacts"}}, tables=("Leads", "Contacts"))


def test_forbidden_403(two_module_stack):
    st = two_module_stack
    db = st.db
    before = snapshot(db, TABLES + ("contacts",))
    for name, body, reason in FORBIDDEN:
        status, headers, raw = st.post(body)
        assert status == 403, (name, status, raw)
        err = jbody(raw)
        assert err["error"] == "forbidden", name
        assert reason in err["message"], (name, err)
        assert snapshot(db, TABLES + ("contacts",)) == before, name
    assert spool_files(st.spool) == []
    # The token is a secret: never in the log, not even a wrong one's prefix.
    assert TOKEN not in st.wh.stderr_text()
    m = st.metrics()
    assert requests_total(m, "notify", 403) == len(FORBIDDEN)
    # And the right channels for each module do work.
    assert st.notify(notif("update", [61], T0, module="Leads", channel=BASE)) == {
        "status": "applied"}
    assert st.notify(notif("update", [62], T0, module="Contacts", channel=BASE + 1)) == {
        "status": "applied"}
    assert db.query("SELECT module, id FROM zcrm.to_fetch ORDER BY id") == [
        ("Leads", 61), ("Contacts", 62)]


def test_token_check_comes_after_validation(stack):
    # A malformed body is 400 whatever its token; a well-formed one with a
    # bad token 403; neither is recorded.
    before = snapshot(stack.db)
    assert stack.post(notif(ids=["x"], token="nope"))[0] == 400
    assert stack.post(notif(ids=["1"], token="nope"))[0] == 403
    assert snapshot(stack.db) == before


# ---------------------------------------------- 404 / 405 / 413

def test_unknown_paths_404_from_nginx(stack):
    before = snapshot(stack.db)
    for path in ("/zcrm/other", "/zcrm/", "/zcrm", "/zcrm/notify/", "/zcrm/notify/x",
                 "/zcrm/notifyx", "/zcrm/Notify", "/notify", "/zcrm/metrics.txt"):
        status, _, raw = stack.post(notif(), path=path)
        # nginx's location matches the four routes only: anything else is
        # nginx's own 404 page, never the webhook's JSON.
        assert status == 404, (path, status, raw)
        assert b"<html>" in raw and b'"error"' not in raw, (path, raw)
    assert snapshot(stack.db) == before
    m = stack.metrics()
    assert requests_total(m, "other", 404) == 0
    assert requests_total(m, "notify", 200) == 0


def test_unknown_route_404_from_webhook(stack):
    # nginx never sends these; another front end might.
    before = snapshot(stack.db)
    body = notif()
    status, headers, raw = fcgi_request(stack.wh.sock, fcgi_params("/zcrm/other", body=body), body)
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert jbody(raw)["error"] == "not_found"
    # The route is the last path segment, whatever the prefix.
    status, _, raw = fcgi_request(stack.wh.sock, fcgi_params("/hooks/zoho/notify", body=body),
                                  body)
    assert status == 200 and jbody(raw) == {"status": "applied"}
    assert stack.db.value("SELECT count(*) FROM zcrm.inbox") == 1
    snap = snapshot(stack.db)
    assert snap["inbox"] != before["inbox"]
    m = stack.metrics()
    assert requests_total(m, "other", 404) == 1


def test_content_length_longer_than_body_400(stack):
    before = snapshot(stack.db)
    body = notif()
    status, _, raw = fcgi_request(stack.wh.sock,
                                  fcgi_params("/zcrm/notify", body=body,
                                              content_length=str(len(body) + 10)), body)
    assert status == 400, raw
    assert "Content-Length" in jbody(raw)["message"]
    assert snapshot(stack.db) == before


def test_method_not_allowed_405(stack):
    before = snapshot(stack.db)
    cases = [("GET", "/zcrm/notify", "POST"), ("PUT", "/zcrm/notify", "POST"),
             ("DELETE", "/zcrm/notify", "POST"), ("GET", "/zcrm/bulk-callback", "POST"),
             ("POST", "/zcrm/metrics", "GET")]
    for method, path, allow in cases:
        body = notif() if method in ("PUT", "POST") else None
        status, headers, raw = harness.http(method, stack.ng.url + path, body)
        assert status == 405, (method, path, status, raw)
        assert headers.get("Allow") == allow, (method, path, headers.get("Allow"))
        assert jbody(raw)["error"] == "method_not_allowed"
    status, headers, _ = harness.http("POST", stack.ng.url + "/zcrm/healthz", b"{}")
    assert status == 405 and headers.get("Allow") == "GET, HEAD"
    assert snapshot(stack.db) == before
    m = stack.metrics()
    assert requests_total(m, "notify", 405) == 3


def test_body_too_large_413(stack_factory):
    # nginx allows 4m, the program 64 KiB: the program's own check answers
    # between the two, nginx above. Without fastcgi_keep_conn: the webhook
    # closes a connection after a body over max_body, and nginx may already
    # have handed that kept connection to the next request (a 502) - the
    # reason docs/config.md wants the two limits equal; the close itself is
    # test_unread_body_does_not_spoil_a_kept_connection's.
    st = stack_factory({"webhook": {"max_body": 65536}},
                       nginx_kw={"max_body": "4m", "keep_conn": False})
    db = st.db
    before = snapshot(db)

    def padded(total):
        base = notif("update", [71], T0, pad="")
        body = notif("update", [71], T0, pad="p" * (total - len(base)))
        assert len(body) == total
        return body

    # Over nginx's limit: nginx's 413 page.
    status, _, raw = st.post(padded(5 * 1024 * 1024))
    assert status == 413 and b'"error"' not in raw
    # Over the program's limit (one byte over, and well over).
    for size in (65537, 200000, 4 * 1024 * 1024 - 100):
        status, _, raw = st.post(padded(size))
        assert status == 413, (size, status, raw[:200])
        err = jbody(raw)
        assert err["error"] == "too_large" and "max_body" in err["message"]
    # Chunked, without Content-Length: still counted by what is read.
    status, _, raw = chunked_post(st.ng.port, "/zcrm/notify", padded(100000))
    assert status == 413, raw
    assert snapshot(db) == before
    assert spool_files(st.spool) == []
    # Exactly at the limit is accepted, also chunked.
    status, _, raw = st.post(padded(65536))
    assert status == 200 and jbody(raw) == {"status": "applied"}, raw
    body = padded(65000).replace(b'"ids": ["71"]', b'"ids": ["72"]')
    status, _, raw = chunked_post(st.ng.port, "/zcrm/notify", body)
    assert status == 200 and jbody(raw) == {"status": "applied"}, raw
    assert db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(71,), (72,)]
    m = st.metrics()
    assert requests_total(m, "notify", 413) == 4


def chunked_post(port, path, body, chunk=8192):
    """POST with Transfer-Encoding: chunked (no Content-Length)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % path).encode())
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        payload = out
    return status, head.decode("latin-1"), payload


def test_too_many_ids_413(stack_factory):
    st = stack_factory({"webhook": {"max_ids": 5}})
    db = st.db
    before = snapshot(db)
    for op in ("update", "delete"):
        status, _, raw = st.post(notif(op, range(101, 107), T0))
        assert status == 413, raw
        err = jbody(raw)
        assert err["error"] == "too_many_ids" and "6 ids" in err["message"], err
    assert snapshot(db) == before
    assert st.notify(notif("update", range(101, 106), T0)) == {"status": "applied"}
    assert db.value("SELECT count(*) FROM zcrm.to_fetch") == 5
    assert db.value("SELECT count(*) FROM zcrm.leads") == 0


# ------------------------------------------------ pending modules

def test_notification_waits_for_module_table(stack_factory, run_program):
    st = stack_factory({"sync": {"modules": "Leads,Contacts"}}, tables=("Leads",))
    db = st.db
    cb = BASE + 1
    upd = notif("update", [81, 82], T0, module="Contacts", channel=cb)
    dele = notif("delete", [83], T0 + 1000, module="Contacts", channel=cb)
    assert st.notify(upd) == {"status": "pending"}
    assert st.notify(dele) == {"status": "pending"}
    # A module whose table exists is not held back.
    assert st.notify(notif("update", [84], T0)) == {"status": "applied"}
    assert db.query("SELECT module, operation, processed_at IS NULL"
                    " FROM zcrm.inbox ORDER BY id") == [
        ("Contacts", "update", True), ("Contacts", "delete", True), ("Leads", "update", False)]
    assert db.query("SELECT module, id FROM zcrm.to_fetch") == [("Leads", 84)]
    assert db.value("SELECT to_regclass('zcrm.contacts')") is None
    # A redelivery of a pending one is still a duplicate.
    assert st.notify(upd) == {"status": "duplicate"}
    assert st.metrics()[("zcrm_webhook_inbox_pending_total", frozenset())] == 2

    res = harness.load_table(run_program, st.config, "Contacts")
    assert "applied notifications that waited" in res.stderr
    assert db.query("SELECT module, id, %s FROM zcrm.to_fetch ORDER BY id" % ms("server_time")) == [
        ("Contacts", 81, T0), ("Contacts", 82, T0), ("Leads", 84, T0)]
    assert db.query("SELECT id, %s, source FROM zcrm.contacts" % ms("deleted_at")) == [
        (83, T0 + 1000, "notify")]
    assert db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NULL") == 0
    assert db.value("SELECT count(*) FROM zcrm.inbox WHERE error IS NOT NULL") == 0
    assert db.value("SELECT count(*) FROM zcrm.leads") == 0
    # From now on Contacts notifications apply at once.
    assert st.notify(notif("update", [85], T0, module="Contacts", channel=cb)) == {
        "status": "applied"}
    assert db.value("SELECT count(*) FROM zcrm.to_fetch WHERE module = 'Contacts'") == 3


# ------------------------------------------------- PostgreSQL down

def _spool_bodies(n, start=0):
    out = []
    for i in range(start, start + n):
        op = ("insert", "update", "delete")[i % 3]
        out.append(notif(op, [900 + i], T0 + i * 1000))
    return out


def test_spool_while_database_down(stack, pg):
    db = stack.db
    bodies = _spool_bodies(6)
    stack.notify(notif("update", [899], T0))        # a connection is open
    before_inbox = db.value("SELECT count(*) FROM zcrm.inbox")
    pg.stop()
    try:
        for b in bodies:
            assert stack.notify(b) == {"status": "spooled"}
        # A redelivery while down is spooled too; the inbox keeps one.
        assert stack.notify(bodies[0]) == {"status": "spooled"}
        files = spool_files(stack.spool)
        assert len(files) == 7
        # Only its owner may read them (tokens and customer data).
        assert all(os.stat(Path(stack.spool, f)).st_mode & 0o777 == 0o600 for f in files)
        assert not [p for p in os.listdir(stack.spool) if p.startswith(".tmp")]
        assert sorted(Path(stack.spool, f).read_bytes() for f in files) == sorted(
            stored(bodies + [bodies[0]]))
        status, _, raw = stack.get("/zcrm/healthz")
        assert status == 503 and jbody(raw)["error"] == "unavailable"
        m = stack.metrics()
        assert metric(m, "zcrm_webhook_spool_depth") == 7
        assert metric(m, "zcrm_webhook_spooled_total") == 7
        # Refusals do not depend on the database.
        assert stack.post(notif(token="bad"))[0] == 403
        assert stack.post(b"{")[0] == 400
    finally:
        pg.start()
    wait_until(lambda: spool_files(stack.spool) == [], scaled(30), what="spool replay",
               proc=stack.wh.proc.popen, log=stack.wh.proc.stderr_path)
    rows = db.query("SELECT raw, via, processed_at IS NOT NULL FROM zcrm.inbox"
                    " WHERE via = 'spool' ORDER BY id")
    assert sorted(r[0].encode() for r in rows) == sorted(stored(bodies))
    assert all(r[1:] == ("spool", True) for r in rows)
    assert db.value("SELECT count(*) FROM zcrm.inbox") == before_inbox + len(bodies)
    # Replayed in arrival order.
    assert [r[0].encode() for r in rows] == stored(bodies)
    assert db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(899,), (900,), (901,),
                                                                 (903,), (904,)]
    assert db.query("SELECT id, %s FROM zcrm.leads ORDER BY id" % ms("deleted_at")) == [
        (902, T0 + 2000), (905, T0 + 5000)]
    m = stack.metrics()
    assert metric(m, "zcrm_webhook_spool_depth") == 0
    assert metric(m, "zcrm_webhook_spool_replayed_total") == 7
    status, _, raw = stack.get("/zcrm/healthz")
    assert status == 200, raw


def test_spool_replayed_when_webhook_restarts(stack, pg):
    db = stack.db
    bodies = _spool_bodies(4, start=10)
    pg.stop()
    try:
        for b in bodies:
            assert stack.notify(b) == {"status": "spooled"}
        # Stopping while the database is down keeps the files.
        assert stack.wh.stop() == 0
        assert len(spool_files(stack.spool)) == 4
    finally:
        pg.start()
    # Nobody replays while the webhook is down.
    time.sleep(0.5)
    assert len(spool_files(stack.spool)) == 4
    assert db.value("SELECT count(*) FROM zcrm.inbox") == 0
    # A damaged file (sorted first) is dropped, not retried forever.
    Path(stack.spool, "0000000000.000000000-damaged.json").write_bytes(b'{"module": "Le')
    stack.wh.start()
    wait_until(lambda: spool_files(stack.spool) == [], scaled(30), what="spool replay",
               proc=stack.wh.proc.popen, log=stack.wh.proc.stderr_path)
    assert [r[0].encode() for r in db.query(
        "SELECT raw FROM zcrm.inbox WHERE via = 'spool' ORDER BY id")] == stored(bodies)
    assert db.value("SELECT count(*) FROM zcrm.inbox") == 4
    assert "dropping unreadable spool file" in stack.wh.stderr_text()
    assert db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(910,), (912,), (913,)]
    assert db.query("SELECT id FROM zcrm.leads") == [(911,)]


def test_spool_replay_skips_what_inbox_already_has(stack, pg):
    db = stack.db
    body = notif("update", [950], T0)
    assert stack.notify(body) == {"status": "applied"}
    before = snapshot(db)
    pg.stop()
    try:
        assert stack.notify(body) == {"status": "spooled"}
    finally:
        pg.start()
    wait_until(lambda: spool_files(stack.spool) == [], scaled(30), what="spool replay",
               proc=stack.wh.proc.popen, log=stack.wh.proc.stderr_path)
    assert snapshot(db) == before


# --------------------------------------------- healthz and metrics

def test_healthz(stack, pg):
    status, headers, raw = stack.get("/zcrm/healthz")
    assert status == 200, raw
    assert headers.get("Content-Type") == "application/json"
    assert headers.get("Cache-Control") == "no-store"
    h = jbody(raw)
    nmig = max(int(p.name.split("_")[0]) for p in (REPO / "sql").glob("[0-9]*.sql"))
    assert h["status"] == "ok" and h["schema_version"] == nmig
    assert stack.db.value("SELECT max(version) FROM zcrm.schema_migrations") == nmig
    assert re.match(r"^\d+\.\d+\.\d+", h["version"])
    status, _, raw = stack.get("/zcrm/healthz", method="HEAD")
    assert status == 200 and raw == b""
    pg.stop()
    try:
        status, _, raw = stack.get("/zcrm/healthz")
        assert status == 503 and jbody(raw) == {"error": "unavailable",
                                                "message": "database unreachable"}
    finally:
        pg.start()
    wait_until(lambda: stack.get("/zcrm/healthz")[0] == 200, scaled(10), what="healthz 200")


def test_webhook_migrates_an_empty_database(db, nginx_factory, webhook_factory, config_factory,
                                            run_program, http):
    # Started against a database no program has touched, the webhook brings
    # the schema up to date itself (healthz 503 "not migrated" until then);
    # a notification for a module whose table does not exist yet waits in
    # the inbox and is applied once the table is created.
    ng = nginx_factory()
    cfg = config_factory({"webhook": {"fetch": False}}, nginx=ng)
    webhook_factory(config=cfg, nginx=ng)
    nmig = max(int(p.name.split("_")[0]) for p in (REPO / "sql").glob("[0-9]*.sql"))

    def healthy():
        status, _, raw = http("GET", ng.url + "/zcrm/healthz")
        assert status in (200, 503), raw
        if status == 503:
            assert "not migrated" in jbody(raw)["message"] or \
                "unreachable" in jbody(raw)["message"], raw
        # 200 comes with the first migration, one transaction each; until
        # the last, a notification may find no fetch_queue and be spooled.
        return status == 200 and jbody(raw)["schema_version"] == nmig

    wait_until(healthy, scaled(30), what="webhook migrated the schema")
    body = notif("update", [1201], T0)
    status, _, raw = http("POST", ng.url + "/zcrm/notify", body)
    assert status == 200 and jbody(raw) == {"status": "pending"}, raw
    harness.load_table(run_program, cfg, "Leads")
    assert db.query("SELECT raw, via, processed_at IS NOT NULL FROM zcrm.inbox") == \
        [(stored(body).decode(), "webhook", True)]
    assert db.query("SELECT id FROM zcrm.to_fetch") == [(1201,)]


def test_database_restart_under_idle_connections(stack, pg):
    # Every worker holds a connection; PostgreSQL restarts between two
    # requests. The next notifications reconnect and are applied, not spooled.
    for i in range(4):
        assert stack.notify(notif("update", [1300 + i], T0)) == {"status": "applied"}
    pg.stop()
    pg.start()
    for i in range(4, 8):
        assert stack.notify(notif("update", [1300 + i], T0)) == {"status": "applied"}
    assert spool_files(stack.spool) == []
    assert stack.db.value("SELECT count(*) FROM zcrm.to_fetch") == 8
    assert stack.get("/zcrm/healthz")[0] == 200


def test_sighup_is_ignored(stack):
    stack.wh.kill(signal.SIGHUP)
    time.sleep(0.3)
    assert stack.wh.alive()
    assert stack.notify(notif("update", [1401], T0)) == {"status": "applied"}
    assert "SIGHUP ignored" in stack.wh.stderr_text()


def test_metrics(stack):
    m0 = stack.metrics()
    lines = m0["_lines"]
    for name, kind in (("zcrm_webhook_requests_total", "counter"),
                       ("zcrm_webhook_inbox_applied_total", "counter"),
                       ("zcrm_webhook_inbox_pending_total", "counter"),
                       ("zcrm_webhook_inbox_duplicates_total", "counter"),
                       ("zcrm_webhook_spooled_total", "counter"),
                       ("zcrm_webhook_spool_depth", "gauge"),
                       ("zcrm_webhook_request_duration_seconds", "histogram")):
        assert "# TYPE %s %s" % (name, kind) in lines, name
        assert any(line.startswith("# HELP %s " % name) for line in lines), name
    assert metric(m0, "zcrm_webhook_spool_depth") == 0
    assert metric(m0, "zcrm_webhook_inbox_applied_total") == 0
    buckets = [(dict(k[1])["le"], v) for k, v in m0.items()
               if k[0] == "zcrm_webhook_request_duration_seconds_bucket"]
    assert ("+Inf", m0[("zcrm_webhook_request_duration_seconds_count", frozenset())]) in buckets
    assert ("zcrm_webhook_request_duration_seconds_sum", frozenset()) in m0
    count0 = m0[("zcrm_webhook_request_duration_seconds_count", frozenset())]

    body = notif("update", [991], T0)
    stack.notify(body)
    stack.notify(notif("delete", [992], T0))
    stack.notify(body)                                  # duplicate
    stack.post(b"nope")                                 # 400
    stack.post(notif(token="nope"))                     # 403
    stack.get("/zcrm/notify")                           # 405
    stack.get("/zcrm/healthz")
    stack.post(json.dumps(fixture_body("bulk_completed.json")), path="/zcrm/bulk-callback")
    m = stack.metrics()
    assert requests_total(m, "notify", 200) == 3
    assert requests_total(m, "notify", 400) == 1
    assert requests_total(m, "notify", 403) == 1
    assert requests_total(m, "notify", 405) == 1
    assert requests_total(m, "healthz", 200) == requests_total(m0, "healthz", 200) + 1
    assert requests_total(m, "bulk-callback", 200) == 1
    # The first /metrics request is counted once it is answered.
    assert requests_total(m, "metrics", 200) == requests_total(m0, "metrics", 200) + 1
    assert metric(m, "zcrm_webhook_inbox_applied_total") == 2
    assert metric(m, "zcrm_webhook_inbox_duplicates_total") == 1
    assert metric(m, "zcrm_webhook_inbox_pending_total") == 0
    assert metric(m, "zcrm_webhook_spooled_total") == 0
    count = m[("zcrm_webhook_request_duration_seconds_count", frozenset())]
    assert count == count0 + 9
    total = sum(v for k, v in m.items() if k[0] == "zcrm_webhook_requests_total")
    assert total == count
    # Buckets are cumulative and non-decreasing.
    vals = [v for k, v in m.items() if k[0] == "zcrm_webhook_request_duration_seconds_bucket"]
    assert vals == sorted(vals) and vals[-1] == count
    assert m[("zcrm_webhook_request_duration_seconds_sum", frozenset())] > 0
    # Metrics are read-only.
    assert stack.db.value("SELECT count(*) FROM zcrm.inbox") == 2


def test_metrics_identity(stack_factory):
    """Issue 14 item 7: two webhooks scraped through one upstream must be
    told apart. Every series carries webhook="<identity>": [webhook]
    instance, or host:listening-socket by default (stable across restarts,
    distinct for two webhooks on one host); zcrm_webhook_info adds the
    host, pid and version."""
    a = stack_factory()
    b = stack_factory({"webhook": {"instance": 'b "east"'}})
    ma, mb = a.metrics(), b.metrics()
    host = socket.gethostname()
    (ida,) = ma["_webhook"]
    (idb,) = mb["_webhook"]
    assert ida == "%s:%s" % (host, a.wh.sock), ida
    assert idb == 'b \\"east\\"', idb          # escaped as the text format wants
    assert ida != idb
    for m, wh in ((ma, a.wh), (mb, b.wh)):
        info = [dict(k[1]) for k in m if k[0] == "zcrm_webhook_info"]
        assert len(info) == 1 and m[("zcrm_webhook_info", frozenset(info[0].items()))] == 1
        assert info[0]["host"] == host
        assert info[0]["pid"] == str(wh.pid), (info, wh.pid)
        assert re.match(r"^\d+\.\d+\.\d+", info[0]["version"])
        assert abs(m[("zcrm_webhook_start_time_seconds", frozenset())] - time.time()) < 86400


# ------------------------------------------------- bulk callbacks

def test_bulk_callback_stored(stack):
    db = stack.db
    before = snapshot(db, ("inbox", "to_fetch", "leads"))
    ok = json.dumps(fixture_body("bulk_completed.json"))
    status, _, raw = stack.post(ok, path="/zcrm/bulk-callback")
    assert status == 200 and jbody(raw) == {"status": "ok"}, raw
    assert db.query("SELECT job_id, state, raw FROM zcrm.bulk_callbacks") == [
        ("4150868000004716016", "COMPLETED", ok)]
    fail = json.dumps(fixture_body("bulk_failure.json"))
    status, _, raw = stack.post(fail, path="/zcrm/bulk-callback")
    assert status == 200, raw
    # A later callback for the same job replaces the earlier one.
    running = ok.replace('"COMPLETED"', '"IN PROGRESS"')
    assert stack.post(running, path="/zcrm/bulk-callback")[0] == 200
    assert db.query("SELECT job_id, state, raw FROM zcrm.bulk_callbacks ORDER BY job_id") == [
        ("111111000000052009", "FAILURE", fail), ("4150868000004716016", "IN PROGRESS", running)]
    assert snapshot(db, ("inbox", "to_fetch", "leads")) == before


BAD_CALLBACKS = [
    ("not_json", b"job done"),
    ("empty", b""),
    ("truncated", b'{"data": [{"id": "4150868000004716016", "state": "COMPLETED"'),
    ("trailing", b'{"data": [{"id": "1", "state": "COMPLETED"}]} x'),
    ("no_data", b'{"id": "4150868000004716016", "state": "COMPLETED"}'),
    ("data_object", b'{"data": {"id": "4150868000004716016"}}'),
    ("data_empty", b'{"data": []}'),
    ("no_id", b'{"data": [{"state": "COMPLETED"}]}'),
    ("id_number", b'{"data": [{"id": 4150868000004716016, "state": "COMPLETED"}]}'),
    ("id_letters", b'{"data": [{"id": "41508680x0004716016", "state": "COMPLETED"}]}'),
    ("id_too_long", b'{"data": [{"id": "41508680000047160161", "state": "COMPLETED"}]}'),
    ("invalid_utf8", b'{"data": [{"id": "1", "state": "COMP\xffLETED"}]}'),
    # Passes json-c's check, not PostgreSQL's: 400, not 503.
    ("utf8_surrogate", b'{"data": [{"id": "1", "state": "COMP\xed\xa0\x80LETED"}]}'),
    ("nul_byte", b'{"data": [{"id": "1", "state": "COMPLETED"}]}\0'),
    ("nested", b'{"data": [{"id": "1", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}]}"),
    ("array", b"[1]"),
]


@pytest.mark.parametrize("name,body", BAD_CALLBACKS, ids=[b[0] for b in BAD_CALLBACKS])
def test_bulk_callback_malformed_400(stack, name, body):
    before = snapshot(stack.db)
    status, _, raw = stack.post(body, path="/zcrm/bulk-callback")
    assert status == 400, (status, raw)
    assert jbody(raw)["error"] == "bad_request"
    assert snapshot(stack.db) == before


# ---------------------------------------------- shutdown, threads

def test_sigterm_with_requests_in_flight(stack_factory, http):
    st = stack_factory({"webhook": {"threads": 4}})
    db = st.db
    # Hold the inbox so that requests stall inside the webhook.
    locker = db.connect()
    locker.autocommit = False
    cur = locker.cursor()
    cur.execute("LOCK TABLE zcrm.inbox IN EXCLUSIVE MODE")
    bodies = [notif("update", [700 + i], T0 + i) for i in range(4)]
    results = [None] * len(bodies)

    def send(i):
        results[i] = st.post(bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    try:
        # One at a time, each once the one before waits: requests sent
        # together would be taken by one thread, as one batch.
        for i, t in enumerate(threads):
            t.start()
            wait_until(lambda: db.value("SELECT count(*) FROM pg_stat_activity"
                                        " WHERE wait_event_type = 'Lock' AND datname = %s",
                                        db.name) == i + 1,
                       scaled(15), what="%d requests waiting on the inbox lock" % (i + 1))
        st.wh.kill(signal.SIGTERM)
        time.sleep(0.5)
        assert st.wh.alive(), "exited with requests in flight"
    finally:
        locker.rollback()
        locker.close()
    for t in threads:
        t.join(scaled(20))
    assert st.wh.wait(15) == 0
    assert st.wh.stop() == 0          # sanitizer report / leftover processes
    for i, r in enumerate(results):
        assert r is not None and r[0] == 200 and jbody(r[2]) == {"status": "applied"}, (i, r)
    assert sorted(x[0].encode() for x in db.query("SELECT raw FROM zcrm.inbox")) == sorted(
        stored(bodies))
    assert db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(700 + i,) for i in range(4)]
    assert "shutting down" in st.wh.stderr_text()
    # Gone: nginx cannot reach it any more.
    assert http("POST", st.ng.url + "/zcrm/notify", notif("update", [799], T0))[0] == 502
    assert db.value("SELECT count(*) FROM zcrm.inbox") == 4


def test_sigterm_idle_exits_zero(stack):
    assert stack.wh.stop(signal.SIGTERM) == 0
    assert not os.path.exists(stack.wh.sock)
    assert spool_files(stack.spool) == []


def test_200_concurrent_notifications(stack_factory):
    st = stack_factory({"webhook": {"threads": 4}}, args=("--threads", "4"))
    db = st.db
    n = 200
    bodies = [notif(("insert", "update", "delete")[i % 3], [5000 + i], T0 + i) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda b: st.post(b), bodies))
    bad = [(i, a[0], a[2][:200]) for i, a in enumerate(answers) if a[0] != 200]
    assert not bad, bad[:5]
    assert all(jbody(a[2]) == {"status": "applied"} for a in answers)
    assert db.value("SELECT count(*) FROM zcrm.inbox") == n
    assert db.value("SELECT count(DISTINCT raw) FROM zcrm.inbox") == n
    assert db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NULL") == 0
    assert sorted(r[0].encode() for r in db.query("SELECT raw FROM zcrm.inbox")) == sorted(
        stored(bodies))
    deletes = [5000 + i for i in range(n) if i % 3 == 2]
    others = [5000 + i for i in range(n) if i % 3 != 2]
    assert [r[0] for r in db.query("SELECT id FROM zcrm.to_fetch ORDER BY id")] == others
    assert [r[0] for r in db.query("SELECT id FROM zcrm.leads WHERE deleted_at IS NOT NULL"
                                   " ORDER BY id")] == deletes
    assert spool_files(st.spool) == []
    m = st.metrics()
    assert requests_total(m, "notify", 200) == n
    assert "threads=4" in st.wh.stderr_text()


# ------------------------------------ FastCGI connections (keepalive)

APPLIED = {"status": "applied"}


def accepted(m):
    return metric(m, "zcrm_webhook_connections_accepted_total")


def fcgi_kept(s, uri, method="POST", body=b""):
    """One request on an open connection with FCGI_KEEP_CONN, as nginx's
    fastcgi_keep_conn sends it: (status, body, END_REQUEST seen)."""
    s.sendall(fcgi_message(fcgi_params(uri, method, body), body, keep_conn=True))
    status, _, raw, ended = fcgi_reply(s)
    return status, raw, ended


def test_keepalive_reuses_fastcgi_connections(stack):
    """nginx/zcrm-sync-upstream.conf's keepalive with fastcgi_keep_conn:
    one notification after another, all on the same few connections."""
    n = 200
    for i in range(n):
        assert stack.notify(notif("update", [6000 + i], T0 + i)) == APPLIED
    assert stack.db.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NOT NULL") == n
    assert stack.db.value("SELECT count(*) FROM zcrm.to_fetch") == n
    m = stack.metrics()
    assert requests_total(m, "notify", 200) == n
    assert 1 <= accepted(m) <= 8, accepted(m)


def test_more_clients_than_threads_all_answered(stack_factory):
    """32 clients at once against 2 threads: nginx opens more connections
    than there are threads and keeps some open between requests; none of
    them holds a thread while it is idle, so every request is answered."""
    st = stack_factory({"webhook": {"threads": 2}})
    n = 192
    bodies = [notif("update", [7000 + i], T0 + i) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(st.post, bodies))
    bad = [(i, a[0], a[2][:200]) for i, a in enumerate(answers) if a[0] != 200]
    assert not bad, bad[:5]
    assert all(jbody(a[2]) == APPLIED for a in answers)
    # nginx holds idle connections from the burst: the next ones still pass.
    for i in range(8):
        assert st.notify(notif("update", [7500 + i], T0)) == APPLIED
    assert sorted(r[0].encode() for r in st.db.query("SELECT raw FROM zcrm.inbox")) == sorted(
        stored(bodies + [notif("update", [7500 + i], T0) for i in range(8)]))
    m = st.metrics()
    assert requests_total(m, "notify", 200) == n + 8
    assert accepted(m) < n, accepted(m)
    assert spool_files(st.spool) == []


# ------------------------------------------ requests answered together

def lock_waiters(db):
    return db.value("SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = %s", db.name)


@contextlib.contextmanager
def held_inbox(st):
    """The webhook's one thread stuck on a locked inbox with a first
    notification (sent through nginx), so that requests pile up behind it;
    yields (send, first): send(params, body) puts a request on a FastCGI
    connection of its own, straight to the webhook's socket, where it waits
    in the socket's buffer once sendall returns; first() is the first
    request's answer. The lock goes at the end of the block (unless the
    block stopped PostgreSQL): the thread then takes every waiting request
    in one go (conns_next). The caller reads the answers and closes the
    connections."""
    db = st.db
    locker = db.connect()
    locker.autocommit = False
    locker.cursor().execute("LOCK TABLE zcrm.inbox IN EXCLUSIVE MODE")
    answer = []
    first = threading.Thread(target=lambda: answer.append(
        st.post(notif("update", [8000], T0))))

    def send(params, body=b""):
        s = fcgi_connect(st.wh.sock, timeout=30)
        # Kept, as nginx's are: on a connection it must close, libfcgi
        # waits for the client to close first (up to 2 s), and these are
        # read one after another.
        s.sendall(fcgi_message(params, body, keep_conn=True))
        return s

    def first_answer():
        first.join(scaled(30))
        return answer[0]

    try:
        first.start()
        wait_until(lambda: lock_waiters(db) == 1, scaled(15), what="the first request waiting")
        yield send, first_answer
    finally:
        try:
            locker.rollback()
            locker.close()
        except Exception:   # PostgreSQL stopped by the block
            pass
        first.join(scaled(30))


def post_params(body):
    return fcgi_params("/zcrm/notify", body=body)


def test_waiting_notifications_recorded_together(stack_factory):
    """Requests waiting on several connections are taken together and their
    notifications go to PostgreSQL in one statement: each is answered as it
    would be alone (applied, pending, duplicate within the batch or of the
    inbox, a delete's tombstone), and the requests that are not
    notifications, or are refused, are answered in the same round."""
    st = stack_factory({"sync": {"modules": "Leads,Contacts"}, "webhook": {"threads": 1}},
                       tables=("Leads",))
    db = st.db
    upd = notif("update", [8001, 8002], T0 + 1)
    ins = notif("insert", [8003], T0 + 2)
    dele = notif("delete", [8004], T0 + 3)
    pend = notif("update", [81], T0 + 4, module="Contacts", channel=BASE + 1)
    wrong = notif("update", [8005], T0 + 5, token="not-the-token")
    with held_inbox(st) as (send, first):
        socks = [send(post_params(b), b) for b in (upd, ins, dele, upd, notif("update", [8000], T0),
                                                   pend, wrong)]
        socks.append(send(fcgi_params("/zcrm/healthz", method="GET")))
    assert first()[0] == 200 and jbody(first()[2]) == APPLIED
    answers = [fcgi_reply(s) for s in socks]
    for s in socks:
        s.close()
    assert [(a[0], jbody(a[2]).get("status", jbody(a[2]).get("error"))) for a in answers] == [
        (200, "applied"), (200, "applied"), (200, "applied"), (200, "duplicate"),
        (200, "duplicate"), (200, "pending"), (403, "forbidden"), (200, "ok")]
    assert sorted(r[0].encode() for r in db.query("SELECT raw FROM zcrm.inbox")) == sorted(
        stored([notif("update", [8000], T0), upd, ins, dele, pend]))
    assert db.query("SELECT module, operation, processed_at IS NOT NULL, via FROM zcrm.inbox"
                    " WHERE module = 'Contacts'") == [("Contacts", "update", False, "webhook")]
    assert db.query("SELECT module, id, %s FROM zcrm.to_fetch ORDER BY id" % ms("server_time")) == [
        ("Leads", 8000, T0), ("Leads", 8001, T0 + 1), ("Leads", 8002, T0 + 1),
        ("Leads", 8003, T0 + 2)]
    assert db.query("SELECT id, %s, source FROM zcrm.leads" % ms("deleted_at")) == [
        (8004, T0 + 3, "notify")]
    m = st.metrics()
    assert metric(m, "zcrm_webhook_batches_total") == 1
    assert metric(m, "zcrm_webhook_batched_total") == 6
    assert metric(m, "zcrm_webhook_inbox_applied_total") == 4
    assert metric(m, "zcrm_webhook_inbox_duplicates_total") == 2
    assert metric(m, "zcrm_webhook_inbox_pending_total") == 1
    assert requests_total(m, "notify", 403) == 1
    print(st.wh.stderr_text())


def test_batch_refused_by_postgresql_records_the_rest_one_by_one(stack_factory):
    """One notification PostgreSQL refuses (a constraint: not an outage)
    fails its whole statement; the others are then recorded one by one and
    only that one is answered 500 and kept in spool/failed/."""
    st = stack_factory({"webhook": {"threads": 1}})
    st.db.execute("ALTER TABLE zcrm.fetch_queue ADD CONSTRAINT no_4242 CHECK (4242 <> ALL(ids))")
    bad = notif("update", [4242], T0 + 1)
    good = [notif("update", [4243], T0 + 2), notif("delete", [4244], T0 + 3)]
    with held_inbox(st) as (send, first):
        socks = [send(post_params(b), b) for b in [good[0], bad, good[1]]]
    assert first()[0] == 200
    answers = [fcgi_reply(s) for s in socks]
    for s in socks:
        s.close()
    assert [a[0] for a in answers] == [200, 500, 200], answers
    assert jbody(answers[1][2])["error"] == "internal"
    assert sorted(r[0].encode() for r in st.db.query("SELECT raw FROM zcrm.inbox")) == sorted(
        stored([notif("update", [8000], T0)] + good))
    assert st.db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [(4243,), (8000,)]
    assert st.db.value("SELECT count(*) FROM zcrm.leads WHERE id = 4244"
                       " AND deleted_at IS NOT NULL") == 1
    kept = spool_files(st.spool / "failed")
    assert len(kept) == 1 and (st.spool / "failed" / kept[0]).read_bytes() == stored(bad)
    assert spool_files(st.spool) == []
    assert metric(st.metrics(), "zcrm_webhook_batches_total") == 0
    assert "not recorded together; one by one" in st.wh.stderr_text()


def test_batch_spooled_while_postgresql_is_down(stack_factory, pg):
    """PostgreSQL goes away under a batch: every notification of it is
    spooled and answered 200, and the spool's replay brings all into the
    inbox once PostgreSQL is back."""
    st = stack_factory({"webhook": {"threads": 1}})
    bodies = [notif("update", [9001], T0 + 1), notif("insert", [9002, 9003], T0 + 2),
              notif("delete", [9004], T0 + 3)]
    try:
        with held_inbox(st) as (send, first):
            socks = [send(post_params(b), b) for b in bodies]
            pg.stop()
        answers = [fcgi_reply(s) for s in socks] + [first()]
        for s in socks:
            s.close()
        assert [(a[0], jbody(a[2])) for a in answers] == [(200, {"status": "spooled"})] * 4
        assert len(spool_files(st.spool)) == 4
    finally:
        pg.start()
    wait_until(lambda: spool_files(st.spool) == [], scaled(30), what="spool replay")
    assert sorted(r[0].encode() for r in st.db.query("SELECT raw, via FROM zcrm.inbox")) == sorted(
        stored([notif("update", [8000], T0)] + bodies))
    assert st.db.query("SELECT DISTINCT via FROM zcrm.inbox") == [("spool",)]
    assert st.db.query("SELECT id FROM zcrm.to_fetch ORDER BY id") == [
        (8000,), (9001,), (9002,), (9003,)]
    assert st.db.value("SELECT count(*) FROM zcrm.leads WHERE id = 9004"
                       " AND deleted_at IS NOT NULL") == 1


def test_idle_connections_hold_no_thread(stack_factory):
    """More connections than threads that send nothing, and a kept
    connection between two requests: notifications through nginx are
    answered meanwhile, and the kept connection serves its next request."""
    st = stack_factory({"webhook": {"threads": 2}})
    idle = [fcgi_connect(st.wh.sock) for _ in range(4)]
    kept = fcgi_connect(st.wh.sock)
    try:
        assert fcgi_kept(kept, "/zcrm/healthz", "GET")[0::2] == (200, True)
        for i in range(6):
            assert st.notify(notif("update", [7600 + i], T0)) == APPLIED
        status, raw, ended = fcgi_kept(kept, "/zcrm/notify", body=notif("update", [7700], T0))
        assert (status, jbody(raw), ended) == (200, APPLIED, True)
    finally:
        for s in idle + [kept]:
            s.close()
    assert st.db.value("SELECT count(*) FROM zcrm.to_fetch") == 7


def test_unread_body_does_not_spoil_a_kept_connection(stack_factory):
    """Answers given without reading the body (405, 404, 413 on
    CONTENT_LENGTH) leave it on the connection: the webhook reads it to
    its end, so the next request on that kept connection is read from its
    start; a body larger than [webhook] max_body closes the connection."""
    st = stack_factory({"webhook": {"max_body": 4096}})
    s = fcgi_connect(st.wh.sock)
    try:
        for i, (uri, expect) in enumerate((("/zcrm/healthz", 405), ("/zcrm/other", 404),
                                           ("/zcrm/metrics", 405))):
            assert fcgi_kept(s, uri, body=b"x" * 4000)[0::2] == (expect, True)
            status, raw, _ = fcgi_kept(s, "/zcrm/notify", body=notif("update", [7800 + i], T0))
            assert (status, jbody(raw)) == (200, APPLIED)
        assert fcgi_kept(s, "/zcrm/notify", body=b"x" * 10000)[0::2] == (413, True)
        assert s.recv(1) == b"", "connection kept after a body over max_body"
    finally:
        s.close()
    assert st.db.value("SELECT count(*) FROM zcrm.to_fetch") == 3


def test_nginx_without_keepalive_still_works(stack_factory):
    """The snippet as it was before the upstream (fastcgi_pass unix:…, no
    fastcgi_keep_conn): a connection per request, closed after it."""
    st = stack_factory(nginx_kw={"keep_conn": False})

    def answered(m):
        return sum(v for k, v in m.items()
                   if k != "_lines" and k[0] == "zcrm_webhook_requests_total")

    m0 = st.metrics()
    for i in range(20):
        assert st.notify(notif("update", [7900 + i], T0 + i)) == APPLIED
    bodies = [notif("update", [7950 + i], T0 + i) for i in range(32)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(st.post, bodies))
    assert [(a[0], jbody(a[2])) for a in answers] == [(200, APPLIED)] * 32
    assert st.db.value("SELECT count(*) FROM zcrm.to_fetch") == 52
    m = st.metrics()
    # A connection per request: each /metrics request is counted as a
    # connection before it renders, and as a request after.
    assert accepted(m) - accepted(m0) == answered(m) - answered(m0) == 53


def test_sigterm_closes_idle_kept_connections_and_drains(stack_factory):
    """SIGTERM with a request in flight and idle kept connections (nginx's
    and one of ours): the idle ones are closed at once, the request in
    flight is answered, and the webhook exits 0."""
    st = stack_factory({"webhook": {"threads": 2}})
    for i in range(3):
        assert st.notify(notif("update", [8000 + i], T0)) == APPLIED
    kept = fcgi_connect(st.wh.sock, timeout=30)
    locker = st.db.connect()
    locker.autocommit = False
    result = []
    sender = threading.Thread(target=lambda: result.append(st.post(notif("update", [8100], T0))))
    try:
        assert fcgi_kept(kept, "/zcrm/healthz", "GET")[0::2] == (200, True)
        locker.cursor().execute("LOCK TABLE zcrm.inbox IN EXCLUSIVE MODE")
        sender.start()
        wait_until(lambda: st.db.value("SELECT count(*) FROM pg_stat_activity"
                                       " WHERE wait_event_type = 'Lock' AND datname = %s",
                                       st.db.name) == 1,
                   scaled(15), what="the request waiting on the inbox lock")
        st.wh.kill(signal.SIGTERM)
        assert kept.recv(1) == b"", "idle kept connection not closed"
        assert st.wh.alive(), "exited with a request in flight"
    finally:
        locker.rollback()
        locker.close()
        kept.close()
    sender.join(scaled(20))
    assert st.wh.wait(15) == 0
    assert st.wh.stop() == 0
    assert result and result[0][0] == 200 and jbody(result[0][2]) == APPLIED, result
    assert st.db.value("SELECT count(*) FROM zcrm.inbox") == 4


# The systemd socket on fd 3, as systemd passes it (LISTEN_PID is the
# program's own pid: set by this wrapper, which then becomes the webhook).
LISTEN_FDS_WRAPPER = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n")


def _listening_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(64)
    return s


@pytest.mark.parametrize("how", ["tcp", "spawn-fcgi", "systemd"])
def test_listeners_with_keepalive(stack_factory, webhook_factory, zcrm_env, how):
    """--listen host:port, spawn-fcgi's socket on fd 0 and systemd's on fd
    3 (LISTEN_FDS), each behind nginx with keepalive; SIGTERM exits 0.
    systemd's socket outlives the webhook: a restarted webhook gets it and
    serves the connections that waited meanwhile."""
    held = None
    if how == "tcp":
        sock = "127.0.0.1:%d" % harness.alloc_port()
        launch = {}
    else:
        sock = str(zcrm_env.socket_path("inherited"))
        if how == "spawn-fcgi":
            spawn = shutil.which("spawn-fcgi")
            if not spawn:
                pytest.skip("spawn-fcgi is not installed")
            launch = {"listen": False, "wrap": [spawn, "-n", "-s", sock, "--"]}
        else:
            held = _listening_unix(sock)
            launch = {"listen": False, "wrap": [harness.PYTHON, "-c", LISTEN_FDS_WRAPPER,
                                                str(held.fileno())],
                      "pass_fds": [held.fileno()]}
    try:
        st = stack_factory(nginx_kw={"fastcgi_socket": sock}, **launch)
        for i in range(10):
            assert st.notify(notif("update", [8200 + i], T0)) == APPLIED
        bodies = [notif("update", [8300 + i], T0) for i in range(16)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            assert [a[0] for a in pool.map(st.post, bodies)] == [200] * 16
        assert accepted(st.metrics()) < 26
        assert st.wh.stop() == 0
        if held is not None:
            # Posted while no webhook runs: waits in the socket's backlog.
            late = []
            sender = threading.Thread(
                target=lambda: late.append(st.post(notif("update", [8400], T0))))
            sender.start()
            wh2 = webhook_factory(config=st.config, nginx=st.ng, **launch)
            sender.join(scaled(30))
            assert late and late[0][0] == 200 and jbody(late[0][2]) == APPLIED, late
            assert st.notify(notif("update", [8401], T0)) == APPLIED
            assert wh2.stop() == 0
    finally:
        if held is not None:
            held.close()
    assert st.db.value("SELECT count(*) FROM zcrm.to_fetch") == 26 + (2 if held else 0)


def test_threads_option_validated(run_program, config_factory):
    cfg = config_factory({"webhook": {"fetch": False}})
    for bad in ("0", "257", "x"):
        res = run_program(WEBHOOK, ["--check-config", "--threads", bad], config=cfg)
        assert res.returncode == 64, (bad, res.returncode)
    res = run_program(WEBHOOK, ["--check-config"], config=cfg)
    assert res.returncode == 0
    assert TOKEN not in res.stdout


# ---------------------------------------------- --help vs options

def _program_sources():
    """(binary, [source files declaring its options]) for every program
    binary that exists."""
    out = []
    if WEBHOOK.exists():
        out.append((WEBHOOK, [REPO / "webhook" / "main.c"]))
    for src in sorted((REPO / "batch").glob("*.c")):
        exe = BIN_ROOT / "batch" / src.stem
        if exe.exists():
            out.append((exe, [REPO / "common" / "batchrt.c", src]))
    return out


def declared_options(sources):
    """Long options declared in struct option tables and batch_opt tables."""
    names = set()
    for src in sources:
        text = src.read_text()
        # static const struct option opts[] = { {"config", required_argument, …}, … };
        for table in re.findall(r"struct option\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\};", text, re.S):
            names.update(re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,', table))
        # longopts[n++] = (struct option){"config", required_argument, NULL, 'c'};
        names.update(re.findall(r'\(struct option\)\s*\{\s*"([a-z][a-z0-9-]*)"', text))
        # static const struct batch_opt opts[] = { {"force", 0, …}, … };
        for table in re.findall(r"struct batch_opt\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\};",
                                text, re.S):
            names.update(re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,', table))
    return names


PROGRAMS = _program_sources()


def test_every_program_is_checked():
    assert WEBHOOK.exists()
    names = {p[0].name for p in PROGRAMS}
    assert "zcrm_webhook" in names
    built = {s.stem for s in (REPO / "batch").glob("*.c")}
    missing = [b for b in built if not (BIN_ROOT / "batch" / b).exists()]
    assert not missing, "batch programs not built: %s" % missing


@pytest.mark.parametrize("exe,sources", PROGRAMS, ids=[p[0].name for p in PROGRAMS])
def test_help_mentions_every_option(run_program, exe, sources):
    declared = declared_options(sources)
    assert {"config", "help", "version"} <= declared, (exe, declared)
    res = run_program(exe, ["--help"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Usage: %s " % exe.name)
    helped = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", res.stdout))
    missing = declared - helped
    assert not missing, "%s accepts %s but --help does not mention it" % (
        exe.name, ", ".join("--" + m for m in sorted(missing)))
    unknown = helped - declared
    assert not unknown, "%s --help mentions %s, which it does not accept" % (
        exe.name, ", ".join("--" + m for m in sorted(unknown)))
    # -h is the same text.
    assert run_program(exe, ["-h"]).stdout == res.stdout
    ver = run_program(exe, ["--version"])
    assert ver.returncode == 0, ver.stderr
    assert re.match(r"^%s \d+\.\d+\.\d+\n$" % exe.name, ver.stdout), ver.stdout
    bad = run_program(exe, ["--no-such-option"])
    assert bad.returncode == 64


def test_permanent_database_error_is_kept_aside_not_spooled(stack, pg):
    # A failure that is not an outage (here a CHECK constraint) would fail
    # the same way on every replay: the webhook answers 500, keeps the body
    # in spool/failed/ for an operator, and the replay queue stays clear.
    stack.db.execute("ALTER TABLE zcrm.fetch_queue ADD CONSTRAINT no_4242 CHECK (4242 <> ALL(ids))")
    before = stack.db.query("SELECT count(*) FROM zcrm.inbox")
    body = notif("update", [4242], T0)
    status, _, raw = stack.post(body)
    assert status == 500, raw
    assert jbody(raw)["error"] == "internal"
    assert stack.db.query("SELECT count(*) FROM zcrm.inbox") == before
    assert spool_files(stack.spool) == []
    kept = spool_files(stack.spool / "failed")
    assert len(kept) == 1
    assert (stack.spool / "failed" / kept[0]).read_bytes() == stored(body)
    # Other notifications go on being applied.
    assert stack.notify(notif("update", [4243], T0)) == {"status": "applied"}


def test_spool_replay_sets_aside_a_file_that_can_never_apply(stack, pg):
    # Spooled during an outage, one body now violates a constraint: replay
    # keeps it in failed/ and goes on with the files behind it.
    stack.db.execute("ALTER TABLE zcrm.fetch_queue ADD CONSTRAINT no_4242 CHECK (4242 <> ALL(ids))")
    try:
        pg.stop()
        for i in (4242, 4250, 4251):
            assert stack.notify(notif("update", [i], T0 + i)) == {"status": "spooled"}
    finally:
        pg.start()
    harness.wait_until(lambda: spool_files(stack.spool) == [], harness.scaled(30),
                       what="spool replay")
    assert sorted(r[0] for r in stack.db.query("SELECT id FROM zcrm.to_fetch")) == [4250, 4251]
    assert len(spool_files(stack.spool / "failed")) == 1


def test_affected_values_apply_at_once_to_live_rows(stack):
    # Zoho's affected_values (zoho-api.md §2.5) are applied at once to a
    # row we hold; modified_time is left for the fetch to move. An older
    # notification delivered after a newer one does not overwrite it, and a
    # row we do not hold is not created from partial values.
    stack.db.execute("INSERT INTO zcrm.leads (id, modified_time, company, email, source)"
                     " VALUES (6756839000000575405, to_timestamp(%s), 'Old Co', 'a@b', 'bulk')",
                     (T0 - 60_000) / 1000)

    def upd(t, company, rid="6756839000000575405"):
        return notif("update", [rid], t, affected_values=[
            {"record_id": rid, "values": {"Company": company, "Email": "new@example.com",
                                          "Modified_Time": "2099-01-01T00:00:00+00:00"}}])

    assert stack.notify(upd(T0 + 2000, "Newest Co")) == {"status": "applied"}
    assert stack.notify(upd(T0 + 1000, "Older Co")) == {"status": "applied"}
    row = stack.db.query("SELECT company, email, source, modified_time = to_timestamp(%s)"
                         " FROM zcrm.leads WHERE id = 6756839000000575405",
                         (T0 - 60_000) / 1000)
    assert row == [("Newest Co", "new@example.com", "notify", True)]
    assert stack.notify(upd(T0 + 3000, "Ghost Co", "6756839000000575499")) == \
        {"status": "applied"}
    assert stack.db.value("SELECT count(*) FROM zcrm.leads WHERE id = 6756839000000575499") == 0


def test_affected_value_that_does_not_cast_is_null(stack):
    # A value of another type in affected_values ("lots" for an integer
    # field, after a field changed type in Zoho; issue 14 item 3) costs that
    # cell, not the notification: it is applied as NULL with the others,
    # and the fetch that follows decides (and records the cell).
    stack.db.execute("INSERT INTO zcrm.leads (id, modified_time, company, no_of_employees,"
                     " source) VALUES (6756839000000575406, to_timestamp(%s), 'Old Co', 12,"
                     " 'bulk')", (T0 - 60_000) / 1000)
    rid = "6756839000000575406"
    body = notif("update", [rid], T0 + 1000, affected_values=[
        {"record_id": rid, "values": {"Company": "Cell Co", "No_of_Employees": "lots",
                                      "Expected_Close": "not a date"}}])
    assert stack.notify(body) == {"status": "applied"}
    assert stack.db.query("SELECT company, no_of_employees, expected_close FROM zcrm.leads"
                          " WHERE id = %s", rid) == [("Cell Co", None, None)]
    assert stack.db.value("SELECT count(*) FROM zcrm.fetch_queue WHERE %s = ANY(ids)",
                          int(rid)) == 1
