"""Helpers for the simulator contract tests: start/stop the simulator, make
HTTP calls with urllib (no proxies), and a tiny local HTTP receiver."""

import json
import os
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_DIR = os.path.normpath(os.path.join(HERE, "..", "zoho_sim"))
SIM = os.path.join(SIM_DIR, "zoho_sim.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

CLIENT = {"client_id": "sim-client-id", "client_secret": "sim-client-secret",
          "refresh_token": "sim-refresh-token", "grant_type": "refresh_token"}

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Reply %s %r>" % (self.status, self.body[:300])


def http(method, url, body=None, headers=None, timeout=15):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, str)):
            data = body.encode("utf-8") if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return Reply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read())


class Sim:
    def __init__(self, *args):
        self.args = list(args)
        cmd = [PYTHON, SIM, "--port", "0", "-q"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = b""
        end = time.time() + 30
        while time.time() < end:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        text = line.decode().strip()
        if not text.startswith("zoho_sim listening on "):
            self.proc.kill()
            raise RuntimeError("simulator did not start: %r %s" % (text, self.proc.stderr.read().decode()))
        self.base = text.split()[-1]
        self._token = None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        return self.proc.returncode

    # ---- calls ----
    def url(self, path, **query):
        u = self.base + path
        if query:
            u += "?" + urllib.parse.urlencode(query, safe=",")
        return u

    def mint(self, **over):
        p = dict(CLIENT, **over)
        return http("POST", self.base + "/oauth/v2/token", urllib.parse.urlencode(p),
                    {"Content-Type": "application/x-www-form-urlencoded"})

    @property
    def token(self):
        if self._token is None:
            r = self.mint()
            assert r.status == 200, r
            self._token = r.json["access_token"]
        return self._token

    def api(self, method, path, body=None, headers=None, query=None, token=None):
        h = {"Authorization": "Zoho-oauthtoken " + (token or self.token)}
        h.update(headers or {})
        return http(method, self.url(path, **(query or {})), body, h)

    def ctl(self, method, path, body=None, query=None):
        r = http(method, self.url(path, **(query or {})), body)
        assert r.status < 300, r
        return r.json

    def truth(self, module="Leads"):
        return self.ctl("GET", "/_sim/truth/" + module)


class Receiver:
    """Local HTTP server recording POST bodies (JSON) it receives."""

    def __init__(self, status=200):
        self.status = status
        self.items = []
        self.cv = threading.Condition()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with outer.cv:
                    outer.items.append({"path": self.path, "body": json.loads(raw.decode("utf-8")),
                                        "headers": dict(self.headers), "time": time.time()})
                    outer.cv.notify_all()
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def wait_for(self, n, timeout=10.0):
        end = time.time() + timeout
        with self.cv:
            while len(self.items) < n and time.time() < end:
                self.cv.wait(0.05)
            return list(self.items)

    def bodies(self):
        with self.cv:
            return [i["body"] for i in self.items]

    def clear(self):
        with self.cv:
            self.items.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
