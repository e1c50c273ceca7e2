"""The harness itself: real PostgreSQL, real nginx with the project's
snippet, the process checks. If these fail, no other integration test
result means anything."""

import json
import os
import signal
import socket
import struct
import threading

import pytest

import harness


# ------------------------------------------------------------ postgres

def test_pg_answers(pg):
    assert pg.query("SELECT 1") == [(1,)]
    assert pg.value("SELECT current_database()") == "zcrm"
    assert "dbname=zcrm" in pg.conninfo and "host=127.0.0.1" in pg.conninfo
    assert pg.value("SHOW fsync") == "off"
    assert pg.value("SHOW max_connections") == "200"


def test_pg_query_params(pg):
    rows = pg.query("SELECT %s::int + 1, %s::text", 41, "it's")
    assert rows == [(42, "it's")]
    # No parameters: '%' is just a character.
    assert pg.query("SELECT 'a%b'") == [("a%b",)]


def test_pg_stop_start_keeps_data(pg):
    pg.reset_db("harness_restart")
    pg.execute("CREATE TABLE t (x int)", dbname="harness_restart")
    pg.execute("INSERT INTO t VALUES (1), (2)", dbname="harness_restart")
    port = pg.port
    pg.stop()
    assert not pg.running()
    assert not harness.port_answers(port)
    pg.start()
    assert pg.running()
    assert pg.port == port
    assert pg.query("SELECT sum(x) FROM t", dbname="harness_restart") == [(3,)]
    pg.drop_database("harness_restart")


def test_pg_reset_db(pg):
    pg.execute("CREATE TABLE IF NOT EXISTS leftover (x int)")
    pg.reset_db()
    assert pg.query("SELECT to_regclass('leftover')") == [(None,)]


def test_db_is_fresh_1(db):
    assert db.name.startswith("zcrm_t")
    assert db.query("SELECT to_regclass('mine')") == [(None,)]
    db.execute("CREATE TABLE mine (x int)")
    assert db.execute("INSERT INTO mine VALUES (1), (2)") == 2


def test_db_is_fresh_2(db):
    # The table of test_db_is_fresh_1 must not be visible here.
    assert db.query("SELECT to_regclass('mine')") == [(None,)]
    assert "dbname=%s" % db.name in db.conninfo
    assert db.psql("SELECT 1 UNION ALL SELECT 2") == "1\n2\n"
    assert db.value("SELECT current_database()") == db.name
    assert db.value("SHOW server_encoding") == "UTF8"


# --------------------------------------------------------------- nginx

def test_nginx_serves_harness_check(nginx_factory, http):
    ng = nginx_factory()
    status, _, body = http("GET", ng.url + "/zcrm-harness-check")
    assert status == 204 and body == b""
    status, _, _ = http("GET", ng.url + "/nothing-here")
    assert status == 404


def test_nginx_snippet_routes_to_fastcgi(nginx_factory, http, zcrm_env):
    # No webhook on the socket: the snippet's routes answer 502, others 404.
    ng = nginx_factory(fastcgi_socket=zcrm_env.dir / "absent.sock")
    for path in ("/zcrm/notify", "/zcrm/bulk-callback", "/zcrm/healthz", "/zcrm/metrics"):
        assert http("GET", ng.url + path)[0] == 502, path
    for path in ("/zcrm/", "/zcrm/notify/x", "/zcrm/notifyx", "/notify"):
        assert http("GET", ng.url + path)[0] == 404, path
    assert "absent.sock" in ng.error_log_text()


def test_nginx_body_limit(nginx_factory, http, zcrm_env):
    ng = nginx_factory(fastcgi_socket=zcrm_env.dir / "absent.sock", max_body="1k")
    status, _, _ = http("POST", ng.url + "/zcrm/notify", b"x" * 2048,
                        {"Content-Type": "application/json"})
    assert status == 413
    status, _, _ = http("POST", ng.url + "/zcrm/notify", b"x" * 512,
                        {"Content-Type": "application/json"})
    assert status == 502


class FastCGIEcho:
    """A minimal FastCGI responder on a Unix socket that answers every
    request with its params and body as JSON: proves what the snippet
    passes to the webhook, independently of the webhook."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._handle(conn)
                except (OSError, ValueError):
                    pass

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ValueError("eof")
            buf += chunk
        return buf

    @staticmethod
    def _pairs(data):
        out, i = {}, 0

        def length():
            nonlocal i
            if data[i] & 0x80:
                v = struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF
                i += 4
            else:
                v = data[i]
                i += 1
            return v

        while i < len(data):
            nl = length()
            vl = length()
            name = data[i:i + nl].decode()
            i += nl
            out[name] = data[i:i + vl].decode("utf-8", "replace")
            i += vl
        return out

    def _handle(self, conn):
        params, body, rid = b"", b"", 1
        while True:
            _, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", self._recv(conn, 8))
            content = self._recv(conn, clen) if clen else b""
            if plen:
                self._recv(conn, plen)
            if rtype == 4:
                params += content
            elif rtype == 5:
                if not content:
                    break
                body += content
        reply = json.dumps({"params": self._pairs(params), "body": body.decode()}).encode()
        out = b"Status: 200 OK\r\nContent-Type: application/json\r\n\r\n" + reply

        def record(rtype, content):
            return struct.pack(">BBHHBB", 1, rtype, rid, len(content), 0, 0) + content

        conn.sendall(record(6, out) + record(6, b"") +
                     record(3, struct.pack(">IB3x", 0, 0)))

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def test_nginx_snippet_fastcgi_params(nginx_factory, http, zcrm_env):
    echo = FastCGIEcho(zcrm_env.dir / "echo.sock")
    try:
        ng = nginx_factory(fastcgi_socket=echo.path)
        status, _, body = http("POST", ng.url + "/zcrm/notify?x=1", b'{"a":1}',
                               {"Content-Type": "application/json", "X-Probe": "yes"})
        assert status == 200, body
        got = json.loads(body)
        p = got["params"]
        assert got["body"] == '{"a":1}'
        assert p["SCRIPT_NAME"] == "/zcrm"
        assert p["PATH_INFO"] == "/notify"
        assert p["DOCUMENT_URI"] == "/zcrm/notify"
        assert p["REQUEST_METHOD"] == "POST"
        assert p["QUERY_STRING"] == "x=1"
        assert p["CONTENT_LENGTH"] == "7"
        assert p["CONTENT_TYPE"] == "application/json"
        assert p["REMOTE_ADDR"] == "127.0.0.1"
        assert p["HTTP_X_PROBE"] == "yes"
        assert len(p["REQUEST_ID"]) == 32
        status, _, body = http("GET", ng.url + "/zcrm/bulk-callback")
        assert json.loads(body)["params"]["PATH_INFO"] == "/bulk-callback"
    finally:
        echo.close()


# ----------------------------------------------------- process checks

def test_proc_reports_sanitizer_output(zcrm_env):
    p = harness.Proc("fake", ["/bin/sh", "-c",
                              "echo '==1==ERROR: AddressSanitizer: heap-use-after-free' >&2; "
                              "exec sleep 30"], zcrm_env.dir)
    p.start()
    harness.wait_until(lambda: "AddressSanitizer" in p.stderr_text(), 10, what="stderr")
    assert p.stop() == -signal.SIGTERM
    problems = p.take_problems()
    assert len(problems) == 1 and "AddressSanitizer" in problems[0]


def test_proc_reports_leftover_processes(zcrm_env):
    # The fcgiwrap bug: a child outliving its parent.
    p = harness.Proc("parent", ["/bin/sh", "-c", "sleep 60 & exec sleep 30"], zcrm_env.dir)
    p.start()
    harness.wait_until(lambda: len(harness.find_processes(pgid=p.pid)) == 2, 10,
                       what="both sleeps")
    p.stop()
    problems = p.take_problems()
    assert len(problems) == 1 and "left processes behind" in problems[0]
    assert harness.find_processes(pgid=p.pid) == []


def test_run_program_checks(zcrm_env):
    res = harness.run_program_in(zcrm_env.dir, "/bin/sh",
                                 ["-c", "echo out; echo 'x.c:3:5: runtime error: overflow' >&2"])
    assert res.returncode == 0 and res.stdout == "out\n"
    assert len(res.problems) == 1 and "runtime error" in res.problems[0]
    res = harness.run_program_in(zcrm_env.dir, "/bin/sh", ["-c", "exit 3"])
    assert res.returncode == 3 and res.problems == []


def test_http_does_not_raise(nginx_factory, http):
    ng = nginx_factory()
    status, headers, _ = http("DELETE", ng.url + "/nothing")
    assert status in (404, 405)
    assert headers.get("content-type")


def test_alloc_port_unique():
    ports = {harness.alloc_port() for _ in range(20)}
    assert len(ports) == 20


def test_config_overrides(config_factory):
    path = config_factory({"sync": {"modules": "Leads,Contacts"}, "webhook.threads": 3,
                           "webhook.fetch": False})
    text = path.read_text()
    assert "modules = Leads,Contacts" in text
    assert "threads = 3" in text and "fetch = false" in text
    assert "token = %s" % harness.TOKEN in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(AssertionError, match="unknown config key"):
        config_factory({"webhook": {"thread": 3}})


# ------------------------------------------- the servers under test

WEBHOOK = harness.BIN_ROOT / "webhook" / "zcrm_webhook"


@pytest.mark.skipif(not WEBHOOK.exists(), reason="webhook not built")
def test_webhook_behind_nginx(webhook_factory, nginx_factory, http):
    wh = webhook_factory()
    ng = nginx_factory(fastcgi_socket=wh.sock)
    status, _, body = http("GET", ng.url + "/zcrm/healthz")
    # 200 (ready) or 503 (schema not migrated yet): either way it is the
    # webhook answering through nginx, not nginx failing to reach it.
    assert status in (200, 503), (status, body)
    assert wh.stop() == 0
    assert http("GET", ng.url + "/zcrm/healthz")[0] == 502


@pytest.mark.skipif(not WEBHOOK.exists(), reason="webhook not built")
def test_webhook_on_nginx_socket(webhook_factory, nginx_factory, http):
    # nginx first, then the webhook on its socket with [notify] url at it.
    ng = nginx_factory()
    wh = webhook_factory(nginx=ng)
    assert "url = %s/zcrm/notify" % ng.url in wh.config_path.read_text()
    assert http("GET", ng.url + "/zcrm/healthz")[0] in (200, 503)
    wh.kill(signal.SIGKILL)
    wh.wait()
    wh.restart()
    assert http("GET", ng.url + "/zcrm/healthz")[0] in (200, 503)


@pytest.mark.skipif(not harness.SIM_SCRIPT.exists(), reason="simulator not written yet")
def test_sim_factory(sim_factory, http):
    sim = sim_factory("--modules", "Leads:5")
    status, _, _ = http("GET", sim.url + "/_sim/health")
    assert status == 200
    assert sim.control("GET", "/_sim/health") is not None
    sim.stop()
    assert not harness.port_answers(sim.port)
