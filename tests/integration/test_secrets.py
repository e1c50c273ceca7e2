"""Secrets stay secret (issue #8):

  - the webhook and every batch program run at -v against the simulator,
    with a token refresh forced midway; no log they write (their stderr and
    stdout, nginx's error and access logs, PostgreSQL's log) and no
    /metrics answer holds the client secret, the refresh token, the channel
    token or any access token the simulator minted, in any of the forms a
    log could carry them (as is, URL-encoded, JSON-escaped, logfmt-quoted);
  - TLS verification cannot be turned off: no configuration key or
    environment override does it, an https api_domain or accounts_url with a
    self-signed certificate fails with a certificate error, and one whose
    name does not match fails too even when its CA is trusted ([zoho]
    ca_file), while the same server with ca_file and a matching name works;
  - what the channel token protects: a forged delete sent with it is undone
    by the next reconcile.
See docs/security.md.
"""

import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import harness
from harness import BIN_ROOT, REPO, scaled, wait_until

# Distinctive values with characters that URL-encoding, JSON and logfmt
# escape, so that an escaped copy is caught as well as the plain one.
CLIENT_SECRET = "cs/9f1c+e83a=SECRET-client-secret"
REFRESH_TOKEN = "1000.rt/4d2b+77e0=SECRET-refresh-token"
CHANNEL_TOKEN = "ch/5e7a+91c3=SECRET-channel-tok"
ACCESS_TOKEN_RE = re.compile(r"1000\.[0-9a-f]{32}\.[0-9a-f]{32}")
EX_DATAERR, EX_TEMPFAIL, EX_NOPERM = 65, 75, 77

WEBHOOK = BIN_ROOT / "webhook" / "zcrm_webhook"
pytestmark = pytest.mark.skipif(not WEBHOOK.exists(), reason="webhook not built")


# ------------------------------------------------------------ helpers

def forms(secret):
    """The ways a secret could be written into a log."""
    out = {secret,
           urllib.parse.quote(secret, safe=""),
           urllib.parse.quote_plus(secret),
           json.dumps(secret)[1:-1].replace("/", "\\/"),   # json-c escapes '/'
           secret.replace("\\", "\\\\").replace('"', '\\"')}
    # A long enough piece of it (a truncated or partly redacted copy).
    if len(secret) >= 24:
        out.add(secret[:16])
        out.add(secret[-16:])
    return out


def find_secrets(text, secrets):
    hits = []
    for name, secret in secrets.items():
        for f in forms(secret):
            if f and f in text:
                hits.append("%s (as %r)" % (name, f))
    for m in ACCESS_TOKEN_RE.finditer(text):
        hits.append("an access token (%s...)" % m.group(0)[:9])
    return hits


def log_files(directory):
    """Every log and output file the programs of the test wrote: program
    stderr/stdout, nginx logs. Not the simulator's own stderr (it is the
    other side and knows the secrets), not configs."""
    out = []
    for p in sorted(Path(directory).rglob("*")):
        if not p.is_file():
            continue
        if p.name.startswith("sim-") or p.suffix in (".conf", ".port", ".sock", ".pid"):
            continue
        if p.suffix in (".stderr", ".stdout", ".log") or p.name in ("error.log", "access.log"):
            out.append(p)
    return out


# ------------------------------------------------- logs hold no secret

def test_no_secret_in_any_log(db, pg, sim_factory, nginx_factory, webhook_factory,
                              config_factory, run_program, zcrm_env, http):
    pg_log_start = harness.file_size(pg.log_path)
    sim = sim_factory("-q", "--modules", "Leads:300,Contacts:40", "--page-size", "120",
                      "--bulk-polls", "1", "--bulk-step-ms", "0",
                      "--client-secret", CLIENT_SECRET, "--refresh-token", REFRESH_TOKEN)
    ng = nginx_factory()
    overrides = {"zoho": {"client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN},
                 "notify": {"token": CHANNEL_TOKEN},
                 "sync": {"modules": "Leads, Contacts"},
                 "webhook": {"fetch": True}}
    cfg = config_factory(overrides, sim=sim, nginx=ng, name="secrets")
    wh = webhook_factory(config=cfg, nginx=ng, args=("-v",))

    def run(prog, *args, ok=(0,)):
        res = run_program(prog, ["-v"] + list(args), config=cfg, timeout=180)
        assert res.returncode in ok, (prog, res.returncode, res.stderr[-3000:])
        return res

    run("batch/initial_sync")
    # Changes reach the webhook as notifications with the channel token; it
    # fetches the records with the shared access token.
    sim.control("POST", "/mutate", {"module": "Leads", "count": 30, "seed": 5,
                                    "mix": {"create": 0.3, "update": 0.5, "delete": 0.2}})
    sim.control("POST", "/flush", {"timeout": 20})
    wait_until(lambda: db.value("SELECT count(*) FROM zcrm.inbox") > 0, scaled(20),
               what="notifications in the inbox")
    # Every access token dies: the next call refreshes (a second mint).
    sim.control("POST", "/expire_tokens")
    run("batch/incremental_sync")
    run("batch/renew_channel", "--force")
    run("batch/reconcile")
    st = run("batch/status")
    run("batch/status", "--json")
    # The webhook's own config check prints the configuration.
    chk = subprocess.run([str(WEBHOOK), "--config", str(cfg), "--check-config"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=harness.clean_env(), timeout=scaled(30))
    assert chk.returncode == 0, chk.stdout
    assert b"client_secret = ********" in chk.stdout
    (zcrm_env.dir / "check-config.stdout").write_bytes(chk.stdout)
    status, _, metrics = http("GET", ng.url + "/zcrm/metrics")
    assert status == 200
    (zcrm_env.dir / "metrics.stdout").write_bytes(metrics)
    wait_until(lambda: db.value("SELECT count(*) FROM zcrm.to_fetch") == 0, scaled(30),
               what="the webhook to fetch every notified record")
    wh.stop()
    ng.stop()

    stats = sim.control("GET", "/stats")
    assert stats["tokens_minted"] >= 2, stats      # the refresh did happen
    secrets = {"client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
               "channel token": CHANNEL_TOKEN}
    stored = db.value("SELECT access_token FROM zcrm.oauth_token")
    assert stored and ACCESS_TOKEN_RE.fullmatch(stored), stored
    secrets["stored access token"] = stored

    files = log_files(zcrm_env.dir)
    names = {p.name for p in files}
    assert any(n.endswith("initial_sync.stderr") for n in names), names
    assert any(n.endswith("webhook.stderr") for n in names), names
    assert "error.log" in names and "access.log" in names, names
    problems = []
    total = 0
    for p in files:
        text = p.read_text("utf-8", "replace")
        total += len(text)
        for hit in find_secrets(text, secrets):
            problems.append("%s: %s" % (p, hit))
    pg_text = harness.tail(pg.log_path, 10**9, since=pg_log_start)
    for hit in find_secrets(pg_text, secrets):
        problems.append("postgres.log: %s" % hit)
    assert not problems, "\n".join(problems)
    # The logs are not empty: -v wrote the debug lines being checked.
    whlog = wh.stderr_text()
    assert "level=debug" in whlog and "notification recorded" in whlog
    assert total > 20000, total
    assert "Leads" in st.stdout


# ------------------------------------------------------------------ TLS

OPENSSL = shutil.which("openssl")


def make_cert(directory, name, san):
    key, crt = directory / ("%s.key" % name), directory / ("%s.crt" % name)
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=zcrm-test",
                    "-addext", "subjectAltName=%s" % san],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


class TLSZoho:
    """A tiny "Zoho" over HTTPS: mints a token (api_domain = itself) and
    answers the record count."""

    def __init__(self, crt, key):
        outer = self
        self.requests = 0

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send({"access_token": "1000." + "a" * 32 + "." + "b" * 32,
                            "api_domain": outer.url, "expires_in": 3600})

            def do_GET(self):
                outer.requests += 1
                self._send({"count": 7})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_zoho(zcrm_env):
    if not OPENSSL:
        pytest.skip("openssl(1) is not installed: cannot make a self-signed certificate")
    servers = []

    def make(san):
        crt, key = make_cert(zcrm_env.dir, "cert%d" % len(servers), san)
        s = TLSZoho(crt, key)
        s.crt = crt
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def zoho_count(run_program, cfg):
    return run_program("tools/zoho_call", ["count", "Leads"], config=cfg, timeout=60)


def test_self_signed_accounts_server_is_refused(db, config_factory, run_program, tls_zoho):
    z = tls_zoho("IP:127.0.0.1")
    cfg = config_factory({"zoho": {"accounts_url": z.url, "api_domain": z.url,
                                   "max_retries": 0}})
    res = zoho_count(run_program, cfg)
    assert res.returncode != 0, res.stdout
    err = res.stderr.lower()
    assert "certificate" in err or "ssl" in err, res.stderr[-2000:]
    assert res.stdout == ""
    # No request got through the handshake.
    assert z.requests == 0
    # Trusting its CA explicitly ([zoho] ca_file) is the one way to use it.
    cfg2 = config_factory({"zoho": {"accounts_url": z.url, "api_domain": z.url,
                                    "ca_file": str(z.crt), "max_retries": 0}})
    res = zoho_count(run_program, cfg2)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["count"] == 7


def test_self_signed_api_domain_is_refused(db, sim_factory, config_factory, run_program,
                                           tls_zoho):
    """The token comes from the (plain HTTP) simulator, whose answer names
    an https api_domain with a self-signed certificate: the API call fails
    on the certificate, and the token is never sent there."""
    z = tls_zoho("IP:127.0.0.1")
    sim = sim_factory("-q", "--modules", "Leads:5")
    sim.control("POST", "/faults", {"rules": [{
        "match": "/oauth/v2/token", "status": 200, "count": -1,
        "body": {"access_token": "1000." + "c" * 32 + "." + "d" * 32, "api_domain": z.url,
                 "expires_in": 3600}}]})
    cfg = config_factory({"zoho": {"max_retries": 0}}, sim=sim)
    res = zoho_count(run_program, cfg)
    assert res.returncode != 0, res.stdout
    err = res.stderr.lower()
    assert "certificate" in err or "ssl" in err, res.stderr[-2000:]
    assert z.requests == 0


def test_certificate_for_another_name_is_refused(db, config_factory, run_program, tls_zoho):
    """Even with its CA trusted, a certificate for another host name fails
    (host name verification is on)."""
    z = tls_zoho("DNS:not-this-host.example")
    cfg = config_factory({"zoho": {"accounts_url": z.url, "api_domain": z.url,
                                   "ca_file": str(z.crt), "max_retries": 0}})
    res = zoho_count(run_program, cfg)
    assert res.returncode != 0, res.stdout
    err = res.stderr.lower()
    assert "certificate" in err or "ssl" in err or "name" in err, res.stderr[-2000:]
    assert z.requests == 0


def test_no_setting_turns_tls_verification_off(db, config_factory, run_program, tls_zoho):
    # No key of the configuration table is about turning verification off.
    table = (REPO / "common" / "cfg.c").read_text()
    keys = re.findall(r'\{\s*"(\w+)",\s*"(\w+)",\s*CFG_(?:STR|INT|BOOL)', table)
    assert len(keys) > 20, keys
    tls_keys = [k for s, k in keys if re.search(r"verif|insecure|ssl|tls|cert|ca_", k)]
    assert tls_keys == ["ca_file"], tls_keys
    # Unknown keys are errors, not silently ignored.
    cfg = config_factory()
    text = cfg.read_text().replace("[zoho]\n", "[zoho]\nssl_verify = false\n", 1)
    cfg.write_text(text)
    res = zoho_count(run_program, cfg)
    assert res.returncode == 78, res.stderr
    assert "unknown key 'ssl_verify'" in res.stderr
    # Environment variables that would turn it off elsewhere change nothing.
    z = tls_zoho("IP:127.0.0.1")
    cfg = config_factory({"zoho": {"accounts_url": z.url, "api_domain": z.url,
                                   "max_retries": 0}})
    res = run_program("tools/zoho_call", ["count", "Leads"], config=cfg, timeout=60,
                      env={"ZCRM_ZOHO_SSL_VERIFY": "0", "ZCRM_ZOHO_INSECURE": "1",
                           "CURL_INSECURE": "1", "PYTHONHTTPSVERIFY": "0",
                           "GIT_SSL_NO_VERIFY": "1"})
    assert res.returncode != 0 and z.requests == 0, res.stderr[-2000:]


# ---------------------------------------- what the token protects

def test_forged_delete_is_undone_by_reconcile(db, sim_factory, nginx_factory, webhook_factory,
                                              config_factory, run_program, http):
    """Whoever holds the channel token can hide a record with a forged
    delete (a delete is a tombstone without asking Zoho). The next
    reconcile sees the record in Zoho's export, tombstoned before the
    export began, and brings it back."""
    import time
    sim = sim_factory("-q", "--modules", "Leads:30", "--bulk-polls", "0", "--bulk-step-ms", "0")
    ng = nginx_factory()
    cfg = config_factory({"webhook": {"fetch": False}}, sim=sim, nginx=ng)
    wh = webhook_factory(config=cfg, nginx=ng)
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    victim = db.value("SELECT min(id) FROM zcrm.leads_live")
    body = {"server_time": int(time.time() * 1000), "module": "Leads", "ids": [str(victim)],
            "operation": "delete", "channel_id": harness.CHANNEL_ID, "token": harness.TOKEN}
    status, _, raw = http("POST", ng.url + "/zcrm/notify", body)
    assert status == 200, raw
    assert db.value("SELECT count(*) FROM zcrm.leads_live WHERE id = %s", victim) == 0
    time.sleep(3)       # older than the read, with its 2 s of clock skew
    res = run_program("batch/reconcile", [], config=cfg, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert db.value("SELECT count(*) FROM zcrm.leads_live WHERE id = %s", victim) == 1
    wh.stop()


# ------------------------------- the documented read-only role (issue 14)

def step3_sql():
    """The SQL block of docs/operations.md step 3, as an operator runs it."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index("### 3. PostgreSQL"):text.index("### 4. ")]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert blocks, "no SQL block in operations.md step 3"
    return blocks[0]


SYSTEM_SECRETS = ("oauth_token", "inbox", "bulk_callbacks")


class DocRoles:
    """Step 3 run as written, with the names made unique in the cluster
    (roles are cluster-wide): the sync's role, the database, the
    application's role. Dropped afterwards."""

    def __init__(self, pg, tag):
        self.pg = pg
        self.sync_role = "zcrm-sync-%s" % tag
        self.app_role = "legacy_app_%s" % tag.replace("-", "_")
        self.dbname = "crm_%s" % tag.replace("-", "_")

    def apply(self, sql):
        sql = sql.replace('"zcrm-sync"', '"%s"' % self.sync_role)
        sql = re.sub(r"\blegacy_app\b", self.app_role, sql)
        sql = re.sub(r"\bcrm\b", self.dbname, sql)
        psql = self.pg.bindir / "psql"
        r = subprocess.run([str(psql if psql.exists() else "psql"), "-X", "-v", "ON_ERROR_STOP=1",
                            "-d", self.pg.conninfo_for("postgres")], input=sql.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=harness.clean_env(), timeout=60)
        assert r.returncode == 0, r.stdout.decode("utf-8", "replace")

    def conninfo(self, role):
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.pg.port, self.dbname, role)

    def app_select(self, rel):
        """SELECT as the application: None when allowed, else the error."""
        import psycopg2
        conn = psycopg2.connect(self.conninfo(self.app_role), connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM zcrm.%s LIMIT 1" % rel)
                cur.fetchall()
            return None
        except psycopg2.Error as e:
            return "%s %s" % (e.pgcode, e.pgerror)
        finally:
            conn.close()

    def drop(self):
        self.pg.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.dbname,
                        dbname="postgres")
        for role in (self.app_role, self.sync_role):
            self.pg.execute('DROP ROLE IF EXISTS "%s"' % role, dbname="postgres")


@pytest.fixture
def doc_roles(pg, request):
    import os
    r = DocRoles(pg, "%d-%d" % (os.getpid(), abs(hash(request.node.name)) % 100000))
    r.drop()
    yield r
    r.drop()


def sync_as_doc_role(doc_roles, sim, ng, config_factory, webhook_factory, run_program, http):
    """initial_sync, notifications and an incremental run, all as the
    documented sync role with [database] read_role = the application."""
    cfg = config_factory({"database": {"conninfo": doc_roles.conninfo(doc_roles.sync_role),
                                       "read_role": doc_roles.app_role},
                          "webhook": {"fetch": True}}, sim=sim, nginx=ng)
    wh = webhook_factory(config=cfg, nginx=ng)
    res = run_program("batch/initial_sync", [], config=cfg, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    sim.control("POST", "/mutate", {"module": "Leads", "count": 5, "seed": 3})
    sim.control("POST", "/flush", {"timeout": 20})
    res = run_program("batch/incremental_sync", [], config=cfg, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    wh.stop()
    return cfg


def assert_app_reads_only_records(doc_roles, pg):
    assert doc_roles.app_select("leads") is None
    assert doc_roles.app_select("leads_live") is None
    assert doc_roles.app_select("users") is None     # owners resolve with a join (issue 17)
    rels = [r[0] for r in pg.query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'zcrm' AND c.relkind IN ('r', 'v', 'p', 'm')", dbname=doc_roles.dbname)]
    for must in SYSTEM_SECRETS + ("sync_state", "runs", "fields"):
        assert must in rels, rels
    # The secrets are there to be read.
    assert pg.value("SELECT count(*) FROM zcrm.oauth_token", dbname=doc_roles.dbname) >= 1
    assert pg.value("SELECT count(*) FROM zcrm.inbox", dbname=doc_roles.dbname) >= 1
    readable = []
    for rel in rels:
        if rel in ("leads", "leads_live", "users"):
            continue
        err = doc_roles.app_select(rel)
        if err is None or not err.startswith("42501"):
            readable.append((rel, err))
    assert not readable, readable


def test_documented_read_role_reads_records_not_secrets(pg, doc_roles, sim_factory,
                                                        nginx_factory, config_factory,
                                                        webhook_factory, run_program, http):
    """docs/operations.md step 3 as written, then [database] read_role: the
    application's role reads the module table and its view, and gets
    permission denied on oauth_token, inbox and every other table of the
    sync's own."""
    doc_roles.apply(step3_sql())
    sim = sim_factory("-q", "--modules", "Leads:40", "--bulk-polls", "0", "--bulk-step-ms", "0")
    ng = nginx_factory()
    sync_as_doc_role(doc_roles, sim, ng, config_factory, webhook_factory, run_program, http)
    assert_app_reads_only_records(doc_roles, pg)


def test_old_default_privileges_are_taken_back(pg, doc_roles, sim_factory, nginx_factory,
                                               config_factory, webhook_factory, run_program,
                                               http):
    """A deployment made with the earlier step 3 (ALTER DEFAULT PRIVILEGES …
    GRANT SELECT ON TABLES): the programs revoke what it gave the
    application on the sync's own tables."""
    doc_roles.apply(step3_sql())
    pg.execute('ALTER DEFAULT PRIVILEGES FOR ROLE "%s" GRANT SELECT ON TABLES TO %s'
               % (doc_roles.sync_role, doc_roles.app_role), dbname=doc_roles.dbname)
    sim = sim_factory("-q", "--modules", "Leads:40", "--bulk-polls", "0", "--bulk-step-ms", "0")
    ng = nginx_factory()
    cfg = sync_as_doc_role(doc_roles, sim, ng, config_factory, webhook_factory, run_program,
                           http)
    assert_app_reads_only_records(doc_roles, pg)
    # A grant made by hand later is taken back by the next program's start.
    pg.execute('GRANT SELECT ON zcrm.oauth_token TO %s' % doc_roles.app_role,
               dbname=doc_roles.dbname)
    assert doc_roles.app_select("oauth_token") is None
    res = run_program("batch/status", [], config=cfg, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert doc_roles.app_select("oauth_token").startswith("42501")


# ----------------------------- no channel token stored (issue 14, item 4)

def token_body(op, ids, server_time, token=harness.TOKEN):
    return json.dumps({"server_time": server_time, "query_params": {}, "module": "Leads",
                       "resource_uri": "https://www.zohoapis.com/crm/v2/Leads",
                       "ids": [str(i) for i in ids], "affected_fields": [], "operation": op,
                       "channel_id": harness.CHANNEL_ID, "token": token}).encode()


def spooled(directory):
    return sorted(p for p in Path(directory).iterdir() if p.name.endswith(".json")
                  and not p.name.startswith("."))


def test_no_channel_token_stored(db, pg, nginx_factory, config_factory, webhook_factory,
                                 run_program, http, zcrm_env):
    """The channel token is in every body Zoho sends; none of the places a
    body is kept holds it: the inbox (live, spooled and replayed, and rows
    stored by an older version, scrubbed by the migration) and the spool
    files."""
    import time
    token = harness.TOKEN
    t0 = int(time.time() * 1000) - 60000
    ng = nginx_factory()
    cfg = config_factory({"webhook": {"fetch": False}}, nginx=ng)
    res = run_program("tools/load_fields", ["--module", "Leads", "--fields",
                                            REPO / "tests" / "data" / "fields" / "leads.json"],
                      config=cfg)
    assert res.returncode == 0, res.stderr
    # Rows an older version stored, token and all; two differ only by the
    # token (the same notification before and after a token change).
    old = [token_body("update", [70], t0), token_body("update", [71], t0 + 1),
           token_body("update", [71], t0 + 1, token="an-older-token-987654")]
    for raw in old:
        db.execute("INSERT INTO zcrm.inbox (channel_id, module, operation, ids, server_time,"
                   " raw, processed_at) VALUES (%s, 'Leads', 'update', %s,"
                   " to_timestamp(%s / 1000.0), %s, now())",
                   int(harness.CHANNEL_ID), [int(json.loads(raw)["ids"][0])],
                   json.loads(raw)["server_time"], raw.decode())
    # Migration 006 (the scrub) runs again, and only it: later ones are
    # not written to run twice.
    assert db.execute("DELETE FROM zcrm.schema_migrations WHERE version = 6"
                      " AND name LIKE '006%%'") == 1
    res = run_program("tools/load_fields", ["--migrate-only"], config=cfg)
    assert res.returncode == 0, res.stderr
    assert db.value("SELECT count(*) FROM zcrm.inbox") == 2
    assert sorted(json.loads(r[0])["ids"][0] for r in db.query("SELECT raw FROM zcrm.inbox")) \
        == ["70", "71"]

    wh = webhook_factory(config=cfg, nginx=ng)
    spool = zcrm_env.dir / "spool"
    # Live.
    live = token_body("update", [80], t0 + 10)
    status, _, raw = http("POST", ng.url + "/zcrm/notify", live)
    assert status == 200 and json.loads(raw)["status"] == "applied", raw
    # A redelivery of the same bytes is still a duplicate.
    status, _, raw = http("POST", ng.url + "/zcrm/notify", live)
    assert status == 200 and json.loads(raw)["status"] == "duplicate", raw
    # Spooled while PostgreSQL is down, then replayed by the webhook.
    pg.stop()
    try:
        for i, op in enumerate(("update", "delete")):
            status, _, raw = http("POST", ng.url + "/zcrm/notify",
                                  token_body(op, [81 + i], t0 + 20 + i))
            assert status == 200 and json.loads(raw)["status"] == "spooled", raw
        files = spooled(spool)
        assert len(files) == 2
        for f in files:
            assert token.encode() not in f.read_bytes(), f
            assert b'"token"' not in f.read_bytes(), f
    finally:
        pg.start()
    wait_until(lambda: spooled(spool) == [], scaled(30), what="spool replay")
    # A file an older webhook spooled, token and all: replayed without it
    # by incremental_sync's replay as by the webhook's.
    wh.stop()
    (spool / "0000000001.000000000-old.json").write_bytes(token_body("update", [90], t0 + 30))
    wh.start()
    wait_until(lambda: spooled(spool) == [], scaled(30), what="spool replay of an old file")
    wh.stop()

    rows = db.query("SELECT raw, via FROM zcrm.inbox ORDER BY id")
    assert sorted(json.loads(r[0])["ids"][0] for r in rows) == ["70", "71", "80", "81", "82",
                                                               "90"]
    assert [r[1] for r in rows].count("spool") == 3
    leaked = [r[0] for r in rows if token in r[0] or "older-token" in r[0]
              or "token" in json.loads(r[0])]
    assert not leaked, leaked
    # The rest of a live body is kept byte for byte (minus the token).
    d = json.loads(live)
    del d["token"]
    assert db.value("SELECT raw FROM zcrm.inbox WHERE 80 = ANY(ids)") == json.dumps(d)


# ------------------- the --listen unix: socket's group (issue 14, item 5)

def _other_group():
    import grp
    import os
    for name in ("www-data", "nginx", "nogroup", "daemon"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid != os.getegid():
            return g
    return None


def test_listen_unix_socket_gets_socket_group(db, webhook_factory, config_factory, zcrm_env):
    """[webhook] socket_group gives the socket nginx's group, mode 0660, so
    that nginx's user never needs the config's group; a group that may read
    the config is refused, and so is one that does not exist."""
    import os
    import stat as st
    g = _other_group()
    if os.geteuid() != 0 or g is None:
        pytest.skip("needs root (chown to another group) and a second group")
    wh = webhook_factory({"webhook": {"socket_group": g.gr_name}})
    s = os.stat(wh.sock)
    assert st.S_ISSOCK(s.st_mode)
    assert (s.st_gid, st.S_IMODE(s.st_mode)) == (g.gr_gid, 0o660), (s.st_gid, oct(s.st_mode))
    assert wh.stop() == 0
    # Without it: the process's group, 0660, as before.
    wh = webhook_factory()
    s = os.stat(wh.sock)
    assert (s.st_gid, st.S_IMODE(s.st_mode)) == (os.getegid(), 0o660)
    assert wh.stop() == 0

    # The config's group, with read access to it: refused (78), no socket.
    cfg = config_factory({"webhook": {"socket_group": g.gr_name}}, name="grp")
    os.chown(cfg, -1, g.gr_gid)
    os.chmod(cfg, 0o640)
    sock = zcrm_env.dir / "refused.sock"
    res = subprocess.run([str(WEBHOOK), "--config", str(cfg), "--listen", "unix:%s" % sock],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.clean_env(),
                         timeout=scaled(30))
    assert res.returncode == 78, res.stderr
    assert b"socket_group is the group that may read the config file" in res.stderr
    assert not sock.exists()
    # --check-config says so too.
    res = subprocess.run([str(WEBHOOK), "--config", str(cfg), "--check-config"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.clean_env(),
                         timeout=scaled(30))
    assert res.returncode == 78, res.stderr
    # A group that does not exist.
    cfg = config_factory({"webhook": {"socket_group": "no-such-group-zcrm"}}, name="nogrp")
    res = subprocess.run([str(WEBHOOK), "--config", str(cfg), "--listen", "unix:%s" % sock],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.clean_env(),
                         timeout=scaled(30))
    assert res.returncode == 78, res.stderr
    assert b"no such group" in res.stderr
    assert not sock.exists()


# --------------------------- the least Zoho scopes (issue 14, item 6)

def step4_scopes():
    """The scopes docs/operations.md step 4 asks for (the code block)."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index("### 4. A Zoho OAuth client"):text.index("### 5. ")]
    m = re.search(r"```\n\s*(ZohoCRM\.[^\n]+)\n\s*```", section)
    assert m, "no scope list in operations.md step 4"
    return [x.strip() for x in m.group(1).split(",")]


def test_documented_scopes_are_read_only():
    scopes = step4_scopes()
    assert not [s for s in scopes if s.startswith("ZohoCRM.modules.") and
                not s.endswith(".READ")], scopes
    assert "ZohoCRM.modules.ALL" not in scopes


def test_least_scopes_run_everything(db, sim_factory, nginx_factory, webhook_factory,
                                     config_factory, run_program):
    """With exactly the scopes of operations.md step 4, every program works:
    initial_sync, the webhook's fetches, incremental_sync, renew_channel
    (a renewal and a re-enable), reconcile."""
    scopes = ",".join(step4_scopes())
    sim = sim_factory("-q", "--modules", "Leads:40", "--bulk-polls", "0", "--bulk-step-ms", "0",
                      "--scopes", scopes)
    ng = nginx_factory()
    cfg = config_factory({"webhook": {"fetch": True}}, sim=sim, nginx=ng)
    wh = webhook_factory(config=cfg, nginx=ng)

    def run(prog, *args):
        res = run_program(prog, list(args), config=cfg, timeout=180)
        assert res.returncode == 0, (prog, res.stderr[-3000:])
        assert "OAUTH_SCOPE_MISMATCH" not in res.stderr
        return res

    run("batch/initial_sync")
    sim.control("POST", "/mutate", {"module": "Leads", "count": 6, "seed": 9,
                                    "mix": {"create": 0.3, "update": 0.5, "delete": 0.2}})
    sim.control("POST", "/flush", {"timeout": 20})
    wait_until(lambda: db.value("SELECT count(*) FROM zcrm.inbox") >= 6
               and db.value("SELECT count(*) FROM zcrm.to_fetch") == 0, scaled(30),
               what="the webhook to fetch the notified records")
    run("batch/incremental_sync")
    run("batch/renew_channel", "--force")
    sim.control("POST", "/channels/%s/expire" % harness.CHANNEL_ID)
    run("batch/renew_channel")
    run("batch/reconcile")
    wh.stop()
    assert "OAUTH_SCOPE_MISMATCH" not in wh.stderr_text()
    assert sim.control("GET", "/stats")["scope_failures"] == 0
    truth = sim.control("GET", "/truth/Leads")
    assert db.value("SELECT count(*) FROM zcrm.leads_live") == len(truth["records"])


# Without the scope, the program that first needs it, its arguments, and
# whether initial_sync must have run first with every scope.
MISSING_SCOPE = [
    ("ZohoCRM.settings.fields.READ", "batch/initial_sync", (), False),
    ("ZohoCRM.notifications.CREATE", "batch/initial_sync", (), False),
    ("ZohoCRM.bulk.READ", "batch/initial_sync", ("--no-channel",), False),
    ("ZohoCRM.modules.READ", "batch/initial_sync", ("--no-channel",), False),
    ("ZohoCRM.notifications.READ", "batch/renew_channel", (), True),
    ("ZohoCRM.notifications.UPDATE", "batch/renew_channel", ("--force",), True),
    ("ZohoCRM.modules.READ", "batch/incremental_sync", (), True),
    ("ZohoCRM.modules.READ", "batch/reconcile", (), True),
]


@pytest.mark.parametrize("scope,prog,args,loaded", MISSING_SCOPE,
                         ids=["%s-%s" % (s.split(".", 1)[1], p.split("/")[1])
                              for s, p, _, _ in MISSING_SCOPE])
def test_each_scope_is_needed(db, sim_factory, config_factory, run_program, scope, prog, args,
                              loaded):
    """Without each scope of step 4, the program that needs it exits 77
    (authentication, docs/errors.md) with a log naming
    OAUTH_SCOPE_MISMATCH and the call."""
    least = step4_scopes()
    assert scope in least
    sim = sim_factory("-q", "--modules", "Leads:20", "--bulk-polls", "0", "--bulk-step-ms", "0",
                      "--scopes", ",".join(least))
    cfg = config_factory({"notify": {"url": "http://127.0.0.1:9/zcrm/notify"}}, sim=sim)
    if loaded:
        res = run_program("batch/initial_sync", [], config=cfg, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
    # A new refresh token, with one scope less; the old access token goes.
    sim.control("POST", "/config", {"scopes": ",".join(s for s in least if s != scope)})
    sim.control("POST", "/expire_tokens")
    res = run_program(prog, list(args), config=cfg, timeout=120)
    assert res.returncode == 77, (res.returncode, res.stderr[-3000:])
    assert "OAUTH_SCOPE_MISMATCH" in res.stderr, res.stderr[-3000:]
    assert "the refresh token lacks the scope this call needs" in res.stderr
    assert sim.control("GET", "/stats")["scope_failures"] >= 1
