#!/usr/bin/python3
"""Zoho CRM simulator: accounts server + API domain on one local port.

    /usr/bin/python3 tests/zoho_sim/zoho_sim.py --port 0 --port-file /tmp/sim.port

See README.md in this directory for every option and the /_sim/ control API.
Python 3 standard library only.
"""

import argparse
import base64
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from api import Api, Resp, json_resp, error_resp  # noqa: E402
from control import Control  # noqa: E402
from credits import Meter, call_cost  # noqa: E402
from faults import Faults, CODE_FOR_STATUS  # noqa: E402
from notifier import Notifier  # noqa: E402
from store import Store, SimError  # noqa: E402

MAX_BODY = 32 * 1024 * 1024
MODULE_RE = r"([A-Za-z][A-Za-z0-9_]*)"

# What docs/operations.md step 4 asked for before issue 14 (more than needed).
DEFAULT_SCOPES = ("ZohoCRM.modules.ALL,ZohoCRM.bulk.READ,ZohoCRM.notifications.ALL,"
                  "ZohoCRM.settings.fields.READ,ZohoCRM.settings.modules.READ")

API_ROUTES = [
    (r"/oauth/v2/token", {"POST": "token"}),
    (r"/crm/v6/actions/watch", {"POST": "watch", "PUT": "watch", "PATCH": "watch", "GET": "watch",
                                "DELETE": "watch"}),
    (r"/crm/bulk/v6/read", {"POST": "bulk_create"}),
    (r"/crm/bulk/v6/read/(\d+)", {"GET": "bulk_status"}),
    (r"/crm/bulk/v6/read/(\d+)/result", {"GET": "bulk_result"}),
    (r"/crm/v6/settings/fields", {"GET": "fields"}),
    (r"/crm/v6/users", {"GET": "users"}),
    (r"/crm/v6/%s/(\d+)/actions/fetch_full_data" % MODULE_RE, {"GET": "fetch_full_data"}),
    (r"/crm/v6/%s/deleted" % MODULE_RE, {"GET": "deleted"}),
    (r"/crm/v6/%s/actions/count" % MODULE_RE, {"GET": "count"}),
    (r"/crm/v6/%s/(\d+)" % MODULE_RE, {"GET": "record_by_id"}),
    (r"/crm/v6/%s" % MODULE_RE, {"GET": "records"}),
]

CONTROL_ROUTES = [
    (r"/_sim/records/%s" % MODULE_RE, {"POST": "create"}),
    (r"/_sim/records/%s/(\d+)" % MODULE_RE, {"PATCH": "update", "DELETE": "delete"}),
    (r"/_sim/records/%s/(\d+)/restore" % MODULE_RE, {"POST": "restore"}),
    (r"/_sim/mutate", {"POST": "mutate"}),
    (r"/_sim/truth/%s" % MODULE_RE, {"GET": "truth"}),
    (r"/_sim/fields", {"POST": "fields_post"}),
    (r"/_sim/formulas/recompute", {"POST": "formulas_recompute"}),
    (r"/_sim/users", {"GET": "users_get", "POST": "users_add"}),
    (r"/_sim/users/(\d+)", {"PATCH": "users_update"}),
    (r"/_sim/faults", {"POST": "faults_post", "GET": "faults_get", "DELETE": "faults_delete"}),
    (r"/_sim/expire_tokens", {"POST": "expire_tokens"}),
    (r"/_sim/channels", {"GET": "channels"}),
    (r"/_sim/channels/(\d+)/expire", {"POST": "expire_channel"}),
    (r"/_sim/jobs", {"GET": "jobs"}),
    (r"/_sim/config", {"POST": "config_post", "GET": "config_get"}),
    (r"/_sim/requests", {"GET": "requests"}),
    (r"/_sim/notifications", {"GET": "notifications"}),
    (r"/_sim/flush", {"POST": "flush"}),
    (r"/_sim/stats", {"GET": "stats"}),
    (r"/_sim/credits", {"GET": "credits_get", "DELETE": "credits_reset"}),
    (r"/_sim/reset_logs", {"POST": "reset_logs"}),
    (r"/_sim/health", {"GET": "health"}),
]

COMPILED_API = [(re.compile("^%s$" % p), m) for p, m in API_ROUTES]
COMPILED_CONTROL = [(re.compile("^%s$" % p), m) for p, m in CONTROL_ROUTES]


class Request:
    __slots__ = ("method", "path", "raw_query", "query", "headers", "body")

    def __init__(self, method, path, raw_query, headers, body):
        self.method = method
        self.path = path
        self.raw_query = raw_query
        # last value wins; '+' is NOT turned into a space (Zoho ids/dates never need it,
        # and clients that forget %2B should still be caught by the datetime parser)
        self.query = {}
        for part in raw_query.split("&") if raw_query else []:
            k, _, v = part.partition("=")
            self.query[urllib.parse.unquote(k)] = urllib.parse.unquote(v)
        self.headers = headers
        self.body = body


def route(table, path, method):
    for rx, methods in table:
        mt = rx.match(path)
        if mt:
            name = methods.get(method)
            if name is None:
                raise SimError(400, "INVALID_REQUEST_METHOD")
            return name, mt.groups()
    return None, None


class App:
    def __init__(self, args):
        self.args = args
        self.faults = Faults()
        self.notifier = Notifier(self.faults)
        self.store = Store(args, self.notifier, self.faults)
        self.api = Api(self.store)
        self.meter = Meter(self.store.cfg)
        self.control = Control(self.store, self.faults, self.notifier, self.meter)
        self.quiet = args.quiet

    def handle(self, req):
        """Returns (Resp, log-extra dict)."""
        extra = {}
        path = req.path
        if path.startswith("/_sim/") or path == "/_sim":
            extra["control"] = True
            try:
                name, groups = route(COMPILED_CONTROL, path, req.method)
                if name is None:
                    raise SimError(404, "INVALID_URL_PATTERN", "unknown control path")
                return getattr(self.control, name)(req, *groups), extra
            except SimError as e:
                return error_resp(e), extra
        # The accounts server is not the API: no credits, no concurrency slot.
        metered = not path.startswith("/oauth/")
        if metered and not self.meter.enter():
            extra["credits_refused"] = "concurrency"
            return error_resp(SimError(429, "TOO_MANY_REQUESTS")), extra
        try:
            resp = self._api(req, extra)
        finally:
            if metered:
                self.meter.leave()
        if metered:
            resp.headers.update(self.meter.headers())
        return resp, extra

    def _api(self, req, extra):
        path = req.path
        rule = self.faults.match(req.method, path)
        if rule is not None:
            extra["fault"] = {k: rule[k] for k in ("match", "status", "delay_ms", "close") if k in rule}
            if rule.get("delay_ms"):
                time.sleep(float(rule["delay_ms"]) / 1000.0)
            if rule.get("close"):
                r = Resp(0)
                r.close = True
                return r
            if "status" in rule:
                st = int(rule["status"])
                headers = {}
                if rule.get("retry_after") is not None:
                    headers["Retry-After"] = str(rule["retry_after"])
                if "body_b64" in rule:
                    # Raw bytes (a crafted ZIP, broken JSON), sent as they are.
                    return Resp(st, base64.b64decode(rule["body_b64"]),
                                ctype=rule.get("content_type", "application/octet-stream"),
                                headers=headers)
                if "body" in rule:
                    return json_resp(st, rule["body"], headers=headers)
                code = rule.get("code") or CODE_FOR_STATUS.get(st, "INTERNAL_ERROR")
                e = SimError(st, code, rule.get("message"), {}, headers)
                return error_resp(e)
        try:
            name, groups = route(COMPILED_API, path, req.method)
            if name is None:
                raise SimError(404, "INVALID_URL_PATTERN")
            if name != "token":
                tok = self.store.check_auth(req.headers.get("Authorization"))
                self.store.check_scope(tok, name, req, groups)
                # Charged once authenticated, whatever the answer (a 304 or
                # a validation error costs as much as a hit).
                cost = call_cost(name, req.query)
                if not self.meter.charge(name, cost):
                    extra["credits_refused"] = "budget"
                    raise SimError(429, "TOO_MANY_REQUESTS")
                extra["credits"] = cost
                extra["endpoint"] = name
            return getattr(self.api, name)(req, *groups)
        except SimError as e:
            return error_resp(e)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app = None  # set on the class before serving

    def version_string(self):
        return "ZohoCRMSim/1.0"

    def log_message(self, fmt, *a):
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self):
        t0 = time.time()
        app = self.app
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(json_resp(413, {"code": "LIMIT_EXCEEDED", "details": {}, "message": "body too large",
                                       "status": "error"}))
            return
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        req = Request(self.command, path, parts.query, self.headers, body)
        try:
            resp, extra = app.handle(req)
        except Exception as e:  # a bug in the simulator: answer 500, keep serving
            import traceback
            traceback.print_exc()
            resp, extra = json_resp(500, {"code": "INTERNAL_ERROR", "details": {"exception": repr(e)},
                                          "message": "simulator error", "status": "error"}), {}
        if resp.close:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            status = 0
        else:
            status = resp.status
            try:
                self._send(resp)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                extra["client_gone"] = True
        entry = {"time": round(t0, 3), "method": self.command, "path": path, "query": parts.query,
                 "status": status, "ms": int((time.time() - t0) * 1000)}
        entry.update(extra)
        app.store.log_request(entry)
        if not app.quiet:
            sys.stderr.write("%s %s %s%s -> %s\n" % (time.strftime("%H:%M:%S"), self.command, path,
                                                     ("?" + parts.query) if parts.query else "", status))

    def _send(self, resp):
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.file_path:
            size = os.path.getsize(resp.file_path)
            self.send_header("Content-Type", resp.ctype)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(resp.file_path, "rb") as f:
                while True:
                    chunk = f.read(1 << 16)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
            return
        if resp.status in (204, 304):
            self.end_headers()
            return
        if resp.ctype:
            self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def parse_modules(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, rest = part.partition(":")
        n, _, width = rest.partition(":")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise argparse.ArgumentTypeError("bad module name %r" % name)
        out.append((name, int(n) if n else 0, int(width) if width else None))
    if not out:
        raise argparse.ArgumentTypeError("no modules")
    return out


def parse_offset(s):
    if not re.fullmatch(r"[+-]\d\d:\d\d|Z", s):
        raise argparse.ArgumentTypeError("offset must look like +05:30 or -08:00")
    return s


def build_parser():
    p = argparse.ArgumentParser(
        prog="zoho_sim.py",
        description="Zoho CRM simulator (OAuth, actions/watch, Bulk Read, Records, Deleted Records, "
                    "Fields metadata) with a /_sim/ control API. Serves the accounts server and the "
                    "API domain on one port of 127.0.0.1.")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one; default 0)")
    p.add_argument("--port-file", help="write the chosen port to this file (atomically) once listening")
    p.add_argument("--seed", type=int, default=1, help="data generator seed (default 1)")
    p.add_argument("--modules", type=parse_modules, default=parse_modules("Leads:1000"),
                   help="Module:initial_count[:fields],... (default Leads:1000; fields: pad with"
                        " custom text fields to that many)")
    p.add_argument("--formulas", action="store_true",
                   help="add formula and rollup fields to every module (Age_Days double and "
                        "Age_Label text formulas, Rollup_Total currency rollup_summary), "
                        "recomputed by POST /_sim/formulas/recompute without moving Modified_Time")
    p.add_argument("--page-size", type=int, default=200000, help="bulk records per page (default 200000)")
    p.add_argument("--client-id", default="sim-client-id")
    p.add_argument("--client-secret", default="sim-client-secret")
    p.add_argument("--refresh-token", default="sim-refresh-token")
    p.add_argument("--scopes", default=DEFAULT_SCOPES,
                   help="scopes of the refresh token, comma-separated: every access token "
                        "minted carries them, and a call they do not cover gets 401 "
                        "OAUTH_SCOPE_MISMATCH (default: %s)" % DEFAULT_SCOPES)
    p.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime, seconds")
    p.add_argument("--bulk-polls", type=int, default=2,
                   help="status polls a bulk job takes to reach COMPLETED (0 = immediately; default 2)")
    p.add_argument("--bulk-step-ms", type=int, default=1000,
                   help="a bulk job also advances one step per this many ms without polls "
                        "(0 = only polls advance it; default 1000)")
    p.add_argument("--bulk-job-ms", type=int, default=0,
                   help="a bulk job also takes at least this many ms of wall time from its "
                        "creation to COMPLETED, however often it is polled (a real job takes "
                        "minutes; default 0)")
    p.add_argument("--tz-offset", type=parse_offset, default="-08:00",
                   help="API user's UTC offset used in every emitted datetime (default -08:00)")
    p.add_argument("--anchor", type=int, default=None,
                   help="epoch seconds the initial data is generated back from "
                        "(default: now rounded down to the hour)")
    p.add_argument("--initial-deleted", type=int, default=0,
                   help="per module, entries already in the deleted list at start (default 0)")
    p.add_argument("--credit-budget", type=int, default=0,
                   help="API credits per rolling window; spent -> 429 TOO_MANY_REQUESTS "
                        "(0 = unlimited; default 0; a 10-user Standard org has 52500)")
    p.add_argument("--max-concurrency", type=int, default=0,
                   help="API calls in flight at once; past it -> 429 (0 = unlimited; default 0; "
                        "Standard edition 10)")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-request lines on stderr")
    return p


def _join_negative_offsets(argv):
    """argparse takes '-08:00' for an option; accept `--tz-offset -08:00` anyway."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--tz-offset" and i + 1 < len(argv) and re.fullmatch(r"-\d\d:\d\d", argv[i + 1]):
            out.append("--tz-offset=" + argv[i + 1])
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(_join_negative_offsets(list(argv)))
    if args.anchor is None:
        args.anchor = int(time.time()) // 3600 * 3600
    if args.page_size < 1:
        sys.exit("--page-size must be >= 1")
    app = App(args)
    Handler.app = app
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    app.store.base_url = "http://127.0.0.1:%d" % port

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        # A clean shutdown takes well under a second. If one ever hangs,
        # say where (every thread's stack on stderr) and exit anyway, so
        # that the harness does not wait out its timeout and kill -9 us
        # (seen once in CI: a teardown error with nothing to go on).
        t = threading.Timer(3.0, hung_shutdown)
        t.daemon = True
        t.start()

    def hung_shutdown():
        import faulthandler
        sys.stderr.write("zoho_sim: shutdown still running after 3 s; exiting anyway\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ticker():
        while not stop.wait(0.05):
            try:
                app.store.tick_jobs()
            except Exception:
                import traceback
                traceback.print_exc()

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    threading.Thread(target=ticker, daemon=True, name="jobs").start()
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("zoho_sim listening on %s" % app.store.base_url, flush=True)
    if not args.quiet:
        sys.stderr.write("modules: %s; seed %d; client_id %s; refresh_token %s\n" % (
            ", ".join("%s=%d" % (n, len(app.store.modules[n].records)) for n, _, _ in args.modules),
            args.seed, args.client_id, args.refresh_token))
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    app.notifier.stop()
    import shutil
    shutil.rmtree(app.store.tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
