"""harness.py — real servers for the integration tests (no mocks).

Everything here starts the real thing on a free port or a Unix socket in a
temp directory, waits until it answers, and shows its log when a test fails:

  Postgres   a throwaway cluster (initdb into a temp dir, as `nobody` when
             root), one per session; Database: one fresh database per test
  Nginx      nginx in the foreground with a config made from nginx.conf.in
             and the project's own nginx/zcrm-sync.conf and
             nginx/zcrm-sync-upstream.conf
  Webhook    $ZCRM_BIN_ROOT/webhook/zcrm_webhook --config F --listen unix:S
  Sim        tests/zoho_sim/zoho_sim.py, the Zoho CRM simulator
  run_program_in() a batch program or tool, run to completion

Every program is started in its own process group. When it stops, the
harness fails the test if its stderr holds "Sanitizer" or "runtime error:"
(ASan/UBSan reports) or if any process of its group is left over.

The pytest fixtures and hooks are at the end of this file; conftest.py
imports them. See tests/README.md.
"""

import atexit
import contextlib
import fcntl
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BIN_ROOT = Path(os.environ.get("ZCRM_BIN_ROOT") or REPO)
# The programs as `make install` names them: their build path under BIN_ROOT.
INSTALLED_PROGRAMS = {
    "zcrm-webhook": "webhook/zcrm_webhook",
    "zcrm-initial-sync": "batch/initial_sync",
    "zcrm-incremental-sync": "batch/incremental_sync",
    "zcrm-renew-channel": "batch/renew_channel",
    "zcrm-reconcile": "batch/reconcile",
    "zcrm-status": "batch/status",
}
TOOLS = Path(os.environ.get("ZCRM_TOOLS") or (REPO / "build" / "normal" / "tools"))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SIM_SCRIPT = REPO / "tests" / "zoho_sim" / "zoho_sim.py"
NGINX_TEMPLATE = HERE / "nginx.conf.in"
NGINX_SNIPPET = REPO / "nginx" / "zcrm-sync.conf"
NGINX_UPSTREAM = REPO / "nginx" / "zcrm-sync-upstream.conf"
SNIPPET_SOCKET = "unix:/run/zcrm-sync/webhook.sock"
SNIPPET_PASS = "fastcgi_pass zcrm_webhook;"
SNIPPET_KEEP = "fastcgi_keep_conn on;"

# Values every test config uses (the simulator is started with the same).
TOKEN = "test-token-0123456789"
CHANNEL_ID = "1000000068001"
CLIENT_ID = "sim-client-id"
CLIENT_SECRET = "sim-client-secret"
REFRESH_TOKEN = "sim-refresh-token"
# Nothing listens on the discard port: a program that was not pointed at the
# simulator fails fast instead of reaching for the real Zoho.
NOWHERE = "http://127.0.0.1:9"

SANITIZER_MARKS = ("Sanitizer", "runtime error:")
# Starts the line the harness writes into a stderr file before each start.
HEADER_MARK = "#### harness:"


def timeout_scale():
    """Sanitizer builds run several times slower: stretch every wait."""
    s = os.environ.get("ZCRM_TIMEOUT_SCALE")
    if s:
        return float(s)
    return 3.0 if "asan" in str(BIN_ROOT) else 1.0


def scaled(seconds):
    return seconds * timeout_scale()


def is_root():
    return os.geteuid() == 0


def clean_env(extra=None):
    """The environment for a program under test: ours minus any
    ZCRM_<SECTION>_<KEY> or ZCRM_CONFIG override a developer may have
    exported, plus the sanitizer options of scripts/run-unit.sh."""
    env = {k: v for k, v in os.environ.items()
           if not re.match(r"ZCRM_(CONFIG$|ZOHO_|DATABASE_|SYNC_|NOTIFY_|WEBHOOK_)", k)}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
    return env


def tail(path, lines=60, since=0):
    """The last lines of a file from byte offset since ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def wait_until(pred, timeout, interval=0.05, what="condition", proc=None, log=None):
    """Poll pred() until it is true. Fails early if proc has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            msg = "%s: process exited with status %s while waiting" % (what, proc.returncode)
            if log:
                msg += "\n--- %s ---\n%s" % (log, tail(log))
            raise AssertionError(msg)
        if time.monotonic() > deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if log:
                msg += "\n--- %s ---\n%s" % (log, tail(log))
            raise AssertionError(msg)
        time.sleep(interval)


# --------------------------------------------------------------- ports

PORT_LOCK = Path(tempfile.gettempdir()) / "zcrm-test-ports.lock"
PORT_RECENT = Path(tempfile.gettempdir()) / "zcrm-test-ports.recent"
PORT_HOLD_SECONDS = 120


def alloc_port():
    """A free TCP port on 127.0.0.1 (after curl's tests/http/testenv/ports.py):
    bind port 0 under a file lock, and remember what was handed out in the
    last two minutes so that parallel test runs never get the same port
    between allocation and the server's own bind."""
    with open(PORT_LOCK, "a+") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        try:
            now = time.time()
            recent = {}
            with contextlib.suppress(OSError, ValueError):
                for line in PORT_RECENT.read_text().split("\n"):
                    if line.strip():
                        p, t = line.split()
                        if now - float(t) < PORT_HOLD_SECONDS:
                            recent[int(p)] = float(t)
            for _ in range(50):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
                if port not in recent:
                    break
            recent[port] = now
            tmp = PORT_RECENT.with_suffix(".tmp%d" % os.getpid())
            tmp.write_text("".join("%d %f\n" % kv for kv in recent.items()))
            os.replace(tmp, PORT_RECENT)
            with contextlib.suppress(OSError):
                os.chmod(PORT_RECENT, 0o666)
            return port
        finally:
            fcntl.flock(lockf, fcntl.LOCK_UN)


def port_answers(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def unix_answers(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------- HTTP

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None, timeout=30):
    """One HTTP request; returns (status, headers, body bytes) and never
    raises on 4xx/5xx. body: bytes, str, or anything else as JSON.
    headers in the answer are an http.client.HTTPMessage (case-insensitive
    .get())."""
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _OPENER.open(req, timeout=scaled(timeout)) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        try:
            payload = e.read()
        finally:
            e.close()
        return e.code, e.headers, payload


# ----------------------------------------------------------- processes

def _proc_stat(pid):
    """(state, ppid, pgrp) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def _proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def find_processes(pgid=None, cmd_contains=None):
    """Live (non-zombie) processes in process group pgid, or whose command
    line contains cmd_contains."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        st = _proc_stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        if pgid is not None and st[2] == pgid:
            found.append(pid)
        elif cmd_contains and cmd_contains in _proc_cmdline(pid):
            found.append(pid)
    return found


def _kill_and_wait(pids, timeout=5):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_proc_stat(p) is None or _proc_stat(p)[0] in ("Z", "X") for p in pids):
            return
        time.sleep(0.02)


_LIVE = set()   # Procs started and not yet stopped


@atexit.register
def _kill_leftovers():
    """Last resort when pytest dies before the fixtures' teardown."""
    for p in list(_LIVE):
        if p.popen is not None and p.popen.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(p.popen.pid, signal.SIGKILL)


class Proc:
    """A started program: own process group, stdout/stderr in files, and
    the after-stop checks (sanitizer reports, leftover processes)."""

    def __init__(self, name, argv, workdir, env=None, cwd=None, marker=None,
                 sanitizer_check=True, pass_fds=()):
        self.name = name
        self.pass_fds = tuple(pass_fds)   # descriptors the program inherits
        self.argv = [str(a) for a in argv]
        self.workdir = Path(workdir)
        self.env = env if env is not None else clean_env()
        self.cwd = str(cwd or REPO)
        self.marker = marker  # a string only this program's command line holds
        self.sanitizer_check = sanitizer_check
        self.stdout_path = self.workdir / ("%s.stdout" % name)
        self.stderr_path = self.workdir / ("%s.stderr" % name)
        self.popen = None
        self.problems = []
        self._checked = 0     # stderr bytes already checked
        self.returncode = None

    def start(self):
        assert self.popen is None or self.popen.poll() is not None, "%s already running" % self.name
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            err.write(("%s %s started: %s\n" % (HEADER_MARK, time.strftime("%H:%M:%S"),
                                                 " ".join(self.argv))).encode())
            err.flush()
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, env=self.env, cwd=self.cwd,
                                          start_new_session=True, pass_fds=self.pass_fds)
        _LIVE.add(self)
        self.returncode = None
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def poll(self):
        return self.popen.poll() if self.popen else 0

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Send a signal to the program (not its group) and return at once."""
        if self.alive():
            os.kill(self.popen.pid, sig)

    def wait(self, timeout=None):
        return self.popen.wait(timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal, wait, then check. Returns the exit status (negative for a
        signal). Problems found are kept for take_problems(); stop() itself
        does not raise."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.problems.append("%s (pid %d) did not exit within %.0fs of signal %s; killed"
                                     % (self.name, self.popen.pid, scaled(timeout),
                                        signal.Signals(sig).name))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.returncode = self.popen.returncode
        _LIVE.discard(self)
        self._after_exit()
        return self.returncode

    def _after_exit(self):
        pgid = self.popen.pid
        left = find_processes(pgid=pgid)
        if self.marker:
            left += [p for p in find_processes(cmd_contains=self.marker) if p not in left]
        if left:
            # Children get a moment to notice their parent is gone.
            time.sleep(0.5)
            left = [p for p in left if _proc_stat(p) and _proc_stat(p)[0] not in ("Z", "X")]
        if left:
            desc = ", ".join("%d (%s)" % (p, _proc_cmdline(p)[:80]) for p in left)
            self.problems.append("%s left processes behind: %s" % (self.name, desc))
            _kill_and_wait(left)
        if self.sanitizer_check:
            size = file_size(self.stderr_path)
            text = tail(self.stderr_path, lines=10**9, since=self._checked)
            self._checked = size
            if any(m in text for m in SANITIZER_MARKS):
                self.problems.append("%s: sanitizer report in stderr (%s):\n%s"
                                     % (self.name, self.stderr_path, _sanitizer_excerpt(text)))

    def stdout_text(self):
        return self.stdout_path.read_text("utf-8", "replace") if self.stdout_path.exists() else ""

    def stderr_text(self):
        """Everything the program wrote to stderr, over all its starts."""
        if not self.stderr_path.exists():
            return ""
        text = self.stderr_path.read_text("utf-8", "replace")
        return "".join(line for line in text.splitlines(True) if not line.startswith(HEADER_MARK))

    def take_problems(self):
        p, self.problems = self.problems, []
        return p


def _sanitizer_excerpt(text, lines=40):
    out = text.splitlines()
    for i, line in enumerate(out):
        if any(m in line for m in SANITIZER_MARKS):
            return "\n".join(out[max(0, i - 3):i + lines])
    return "\n".join(out[-lines:])


def fail_on_problems(problems):
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ------------------------------------------------------------ postgres

def pg_bindir():
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    cands = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        if (d / "initdb").exists():
            with contextlib.suppress(ValueError):
                cands.append((tuple(int(x) for x in d.parent.name.split(".")), d))
    if cands:
        return max(cands)[1]
    w = shutil.which("initdb")
    if w:
        return Path(w).parent
    raise RuntimeError("no PostgreSQL server binaries (install postgresql, or set PG_BINDIR)")


def unprivileged_user():
    return os.environ.get("PG_TEMP_USER", "nobody")


PG_TEMP = REPO / "scripts" / "pg-temp"


class Postgres:
    """A throwaway cluster in dir/data made and run by scripts/pg-temp (as
    pgbouncer's test/utils.py Postgres): trust auth, fsync off, 127.0.0.1
    only, socket in dir, log in dir/postgres.log. The database superuser is
    named after the user running the tests. Adds connections and SQL."""

    def __init__(self, directory, port=None):
        self.dir = Path(directory)
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.fixed_port = port
        self.port = port or 0  # set by start()
        self.bindir = pg_bindir()
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.owner = unprivileged_user() if is_root() else self.user
        self._conns = {}

    # -- running server commands as the cluster's owner
    def _run(self, argv, check=True, timeout=120):
        argv = [str(a) for a in argv]
        if is_root():
            argv = ["runuser", "-u", self.owner, "--"] + argv
        r = subprocess.run(argv, cwd=str(self.dir), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=clean_env())
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s\n--- %s ---\n%s"
                               % (" ".join(argv), r.returncode, r.stdout.decode("utf-8", "replace"),
                                  self.log_path, tail(self.log_path)))
        return r

    # -- the cluster itself: scripts/pg-temp makes, starts and stops it (one
    # implementation, shared with make check-unit and make demo)
    def _pg_temp(self, *args, check=True):
        env = clean_env({"PG_TEMP_USER": self.owner, "PG_BINDIR": str(self.bindir)})
        r = subprocess.run([str(PG_TEMP)] + [str(a) for a in args], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=scaled(300))
        if check and r.returncode != 0:
            raise RuntimeError("pg-temp %s failed (%d):\n%s\n--- %s ---\n%s"
                               % (" ".join(str(a) for a in args), r.returncode,
                                  r.stdout.decode("utf-8", "replace"), self.log_path,
                                  tail(self.log_path)))
        return r

    def init(self):
        """The directory; the cluster is made by the first start()."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self

    def start(self):
        """Start the cluster (made at the first start, at a free port; later
        starts keep its port) with a database zcrm."""
        fresh = not (self.data / "PG_VERSION").exists()
        port = self.fixed_port if fresh else self.port
        r = self._pg_temp("start", self.dir, *([port] if port else []))
        m = re.search(r"port=(\d+)", r.stdout.decode("utf-8", "replace"))
        if not m:
            raise RuntimeError("pg-temp start printed no conninfo: %r" % r.stdout)
        self.port = int(m.group(1))
        return self

    def stop(self, mode="fast"):
        self.close_connections()
        if not (self.data / "postmaster.pid").exists():
            return
        if mode == "fast":
            self._pg_temp("stop", self.dir, check=False)
        else:
            self._run([self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w",
                       "-t", str(int(scaled(60))), "-s", "stop"], check=False)

    def running(self):
        if not self.data.exists():
            return False
        return self._run([self.bindir / "pg_ctl", "-D", self.data, "status"],
                         check=False).returncode == 0

    def conninfo_for(self, dbname="zcrm"):
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.port, dbname, self.user)

    @property
    def conninfo(self):
        return self.conninfo_for("zcrm")

    # -- SQL
    def connect(self, dbname="zcrm"):
        """A new psycopg2 connection (autocommit); the caller closes it."""
        import psycopg2
        conn = psycopg2.connect(self.conninfo_for(dbname), connect_timeout=10)
        conn.autocommit = True
        return conn

    def _conn(self, dbname):
        conn = self._conns.get(dbname)
        if conn is None or conn.closed:
            conn = self._conns[dbname] = self.connect(dbname)
        return conn

    def close_connections(self, dbname=None):
        for name in [dbname] if dbname else list(self._conns):
            conn = self._conns.pop(name, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def query(self, sql, *params, dbname="zcrm"):
        """Rows as a list of tuples ([] for statements without rows)."""
        with self._conn(dbname).cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchall() if cur.description else []

    def execute(self, sql, *params, dbname="zcrm"):
        """Run a statement; returns the affected row count."""
        with self._conn(dbname).cursor() as cur:
            cur.execute(sql, params or None)
            return cur.rowcount

    def value(self, sql, *params, dbname="zcrm"):
        rows = self.query(sql, *params, dbname=dbname)
        return rows[0][0] if rows else None

    def psql(self, sql, dbname="zcrm"):
        """psql -At output (the form STYLE.md's expected-rows files use)."""
        psql = self.bindir / "psql"
        r = subprocess.run([str(psql if psql.exists() else "psql"), "-X", "-At", "-v",
                            "ON_ERROR_STOP=1", "-d", self.conninfo_for(dbname), "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
                           timeout=60)
        if r.returncode:
            raise AssertionError("psql failed: %s" % r.stderr.decode("utf-8", "replace"))
        return r.stdout.decode("utf-8")

    # -- databases
    def create_database(self, name):
        self.execute('CREATE DATABASE "%s" TEMPLATE template0' % name, dbname="postgres")

    def drop_database(self, name):
        self.close_connections(name)
        self.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name, dbname="postgres")

    def reset_db(self, name="zcrm"):
        """Drop and recreate a database (default zcrm) for isolation."""
        self.drop_database(name)
        self.create_database(name)

    def log_tail(self, lines=60, since=0):
        return tail(self.log_path, lines, since)


class Database:
    """One fresh database of the session's cluster (the `db` fixture)."""

    def __init__(self, pg, name):
        self.pg = pg
        self.name = name

    @property
    def conninfo(self):
        return self.pg.conninfo_for(self.name)

    def query(self, sql, *params):
        return self.pg.query(sql, *params, dbname=self.name)

    def execute(self, sql, *params):
        return self.pg.execute(sql, *params, dbname=self.name)

    def value(self, sql, *params):
        return self.pg.value(sql, *params, dbname=self.name)

    def psql(self, sql):
        return self.pg.psql(sql, dbname=self.name)

    def connect(self):
        return self.pg.connect(self.name)

    def __repr__(self):
        return "<Database %s>" % self.name


# --------------------------------------------------------------- nginx

def nginx_binary():
    for p in (os.environ.get("NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.path.exists(p):
            return p
    raise RuntimeError("nginx not found (scripts/install-deps.sh installs it)")


def _nginx_info():
    r = subprocess.run([nginx_binary(), "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = r.stdout.decode("utf-8", "replace")
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    version = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
    return version, text


def _replace_once(path, text, pairs):
    """text with each old replaced by new; fails loudly if the shipped file
    (path) changed shape."""
    for old, new in pairs:
        n = text.count(old)
        assert n == 1, "%s: expected '%s' once, found %d times" % (path, old, n)
        text = text.replace(old, new)
    return text


def _unix_spec(fastcgi_socket):
    sock = str(fastcgi_socket)
    if not sock.startswith("unix:") and "/" in sock and ":" not in sock.split("/")[0]:
        sock = "unix:" + sock
    return sock


def make_upstream(dest, fastcgi_socket):
    """A copy of nginx/zcrm-sync-upstream.conf with the socket path replaced."""
    text = _replace_once(NGINX_UPSTREAM, NGINX_UPSTREAM.read_text(),
                         [("server %s;" % SNIPPET_SOCKET,
                           "server %s;" % _unix_spec(fastcgi_socket))])
    Path(dest).write_text(text)
    return Path(dest)


def make_snippet(dest, fastcgi_socket, max_body="1m", keep_conn=True):
    """A copy of nginx/zcrm-sync.conf with the body limit replaced. With
    keep_conn=False it is the snippet as it was before FastCGI keepalive: no
    upstream, `fastcgi_pass unix:SOCKET` and a connection per request."""
    pairs = [("client_max_body_size 1m;", "client_max_body_size %s;" % max_body)]
    if not keep_conn:
        pairs += [(SNIPPET_PASS, "fastcgi_pass %s;" % _unix_spec(fastcgi_socket)),
                  (SNIPPET_KEEP, "")]
    text = _replace_once(NGINX_SNIPPET, NGINX_SNIPPET.read_text(), pairs)
    Path(dest).write_text(text)
    return Path(dest)


class Nginx:
    """nginx in the foreground, prefix and logs in its own directory."""

    def __init__(self, directory, fastcgi_socket=None, max_body="1m", workers=1,
                 access_log=True, extra_http="", extra_server="", port=None, keep_conn=True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or alloc_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.fastcgi_socket = str(fastcgi_socket or (self.dir / "webhook.sock"))
        self.error_log = self.dir / "error.log"
        self.access_log = self.dir / "access.log"
        self.conf = self.dir / "nginx.conf"
        self.keep_conn = keep_conn
        self.snippet = make_snippet(self.dir / "zcrm-sync.conf", self.fastcgi_socket, max_body,
                                    keep_conn)
        self.upstream = None
        if keep_conn:
            self.upstream = make_upstream(self.dir / "zcrm-sync-upstream.conf",
                                          self.fastcgi_socket)
        version, info = _nginx_info()
        temp = []
        for kind, module in (("client_body", None), ("proxy", "proxy"), ("fastcgi", "fastcgi"),
                             ("uwsgi", "uwsgi"), ("scgi", "scgi")):
            if module and "--without-http_%s_module" % module in info:
                continue
            (self.dir / ("tmp_" + kind)).mkdir(exist_ok=True)
            temp.append("%s_temp_path %s;" % (kind, self.dir / ("tmp_" + kind)))
        subs = {
            "@USER_LINE@": "user root;" if is_root() else "",
            "@DIR@": str(self.dir),
            "@PORT@": str(self.port),
            "@WORKERS@": str(workers),
            "@TEMP_PATHS@": "\n    ".join(temp),
            "@ACCESS_LOG@": ("access_log %s;" % self.access_log) if access_log else "access_log off;",
            "@SNIPPET@": str(self.snippet),
            "@UPSTREAM@": ("include %s;" % self.upstream) if self.upstream else "",
            "@FASTCGI_SOCKET@": self.fastcgi_socket,
            "@MAX_BODY@": str(max_body),
            "@EXTRA_HTTP@": extra_http,
            "@EXTRA_SERVER@": extra_server,
        }
        out = []
        for line in NGINX_TEMPLATE.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for k, v in subs.items():
                line = line.replace(k, v)
            out.append(line)
        text = "\n".join(out) + "\n"
        left = re.findall(r"@[A-Z_]+@", text)
        assert not left, "unfilled placeholders in nginx.conf: %s" % left
        self.conf.write_text(text)
        argv = [nginx_binary(), "-p", str(self.dir) + "/", "-c", str(self.conf)]
        if version >= (1, 19, 5):
            argv += ["-e", str(self.error_log)]
        argv += ["-g", "daemon off;"]
        self.proc = Proc("nginx", argv, self.dir, marker=str(self.conf), sanitizer_check=False)

    def start(self):
        t = subprocess.run(self.proc.argv[:-2] + ["-t", "-q"] + self.proc.argv[-2:],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if t.returncode:
            raise AssertionError("nginx -t failed:\n%s\n--- %s ---\n%s"
                                 % (t.stdout.decode("utf-8", "replace"), self.conf,
                                    self.conf.read_text()))
        self.proc.start()
        wait_until(lambda: self._probe() == 204, scaled(10), what="nginx on %s" % self.url,
                   proc=self.proc, log=self.error_log)
        return self

    def _probe(self):
        try:
            return http("GET", self.url + "/zcrm-harness-check", timeout=2)[0]
        except OSError:
            return None

    def reload(self):
        self.proc.kill(signal.SIGHUP)

    def stop(self):
        """Fast shutdown (SIGTERM), wait until dead and the port is free."""
        rc = self.proc.stop(signal.SIGTERM)
        return rc

    def error_log_text(self):
        return self.error_log.read_text("utf-8", "replace") if self.error_log.exists() else ""

    def take_problems(self):
        return self.proc.take_problems()

    def logs(self):
        return [("error.log", self.error_log), ("access.log", self.access_log),
                ("stderr", self.proc.stderr_path)]


# ------------------------------------------------------------- configs

def _cfg_table():
    """{section: set(keys)} from common/cfg.c's table, to catch typos in
    a test's overrides before the program does."""
    src = REPO / "common" / "cfg.c"
    table = {}
    with contextlib.suppress(OSError):
        for sec, key in re.findall(r'\{\s*"(\w+)",\s*"(\w+)",\s*CFG_(?:STR|INT|BOOL)', src.read_text()):
            table.setdefault(sec, set()).add(key)
    return table


CFG_TABLE = _cfg_table()


def merge_overrides(base, overrides):
    """overrides: {"section": {"key": value}} or {"section.key": value};
    a value of None removes the key."""
    cfg = {s: dict(kv) for s, kv in base.items()}
    flat = []
    for k, v in (overrides or {}).items():
        if isinstance(v, dict):
            flat += [(k, kk, vv) for kk, vv in v.items()]
        else:
            assert "." in k, "override %r: use {'section': {'key': v}} or 'section.key'" % k
            s, kk = k.split(".", 1)
            flat.append((s, kk, v))
    for s, k, v in flat:
        if CFG_TABLE:
            assert k in CFG_TABLE.get(s, ()), "unknown config key [%s] %s (see common/cfg.c)" % (s, k)
        if v is None:
            cfg.get(s, {}).pop(k, None)
        else:
            if isinstance(v, bool):
                v = "true" if v else "false"
            cfg.setdefault(s, {})[k] = str(v)
    return cfg


def write_ini(path, cfg):
    lines = []
    for section, kv in cfg.items():
        lines.append("[%s]" % section)
        for k, v in kv.items():
            assert "\n" not in v, "newline in [%s] %s" % (section, k)
            if v != v.strip():
                v = '"%s"' % v
            lines.append("%s = %s" % (k, v))
        lines.append("")
    Path(path).write_text("\n".join(lines))
    os.chmod(path, 0o600)
    return Path(path)


# Tests written before issue 15 assert the spending habits of that time:
# an incremental_sync that finds any change exports it with Bulk Read (rows
# with source "bulk"), and a renew_channel that asks Zoho at every run. The
# config every test starts from keeps them ([sync] bulk_threshold = 0,
# [notify] check_interval = 0); tests of the cheaper paths (test_credits.py)
# set the shipped defaults back with None. ZCRM_TEST_SHIPPED_COSTS=1 starts
# every test from the shipped defaults instead (to run, say, test_converge.py
# against the REST catch-up).
OLD_HABITS = {"sync": {"bulk_threshold": "0"}, "notify": {"check_interval": "0"}}
SHIPPED_COSTS = {"sync.bulk_threshold": None, "notify.check_interval": None}


def base_config(conninfo, workdir, sim_url=None, notify_url=None):
    """The config every test starts from; see tests/README.md."""
    old = os.environ.get("ZCRM_TEST_SHIPPED_COSTS") != "1"
    workdir = Path(workdir)
    for d in ("spool", "work"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
    zoho = sim_url or NOWHERE
    return {
        "zoho": {
            "accounts_url": zoho,
            "api_domain": zoho,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "connect_timeout": "2",
            "request_timeout": "30",
            "max_retries": "3",
            "retry_budget": "30",
        },
        "database": {"conninfo": conninfo, "schema": "zcrm"},
        "sync": {
            "modules": "Leads",
            "spool_dir": str(workdir / "spool"),
            "work_dir": str(workdir / "work"),
            **(OLD_HABITS["sync"] if old else {}),
        },
        "notify": {
            "url": notify_url or (NOWHERE + "/zcrm/notify"),
            "channel_id": CHANNEL_ID,
            "token": TOKEN,
            **(OLD_HABITS["notify"] if old else {}),
        },
        "webhook": {"threads": "2"},
    }


# ------------------------------------------------------------- webhook

class Webhook:
    """zcrm_webhook on a Unix socket in the test directory, or on host:port
    (sock "127.0.0.1:PORT"). listen=False: no --listen, the socket is
    inherited (through wrap, an argv prefix such as spawn-fcgi, and
    pass_fds)."""

    def __init__(self, directory, config_path, sock, args=(), env=None, binary=None,
                 listen=True, wrap=(), pass_fds=()):
        self.dir = Path(directory)
        self.config_path = Path(config_path)
        self.sock = str(sock)
        self.tcp = "/" not in self.sock
        self.binary = Path(binary or (BIN_ROOT / "webhook" / "zcrm_webhook"))
        self.args = list(args)
        argv = list(wrap) + [self.binary, "--config", self.config_path]
        if listen:
            argv += ["--listen", self.sock if self.tcp else "unix:" + self.sock]
        argv += self.args
        name = Path(self.sock).stem if not self.tcp else "webhook-tcp"
        self.proc = Proc(name, argv, self.dir, env=clean_env(env), marker=self.sock,
                         pass_fds=pass_fds)

    def answers(self):
        if self.tcp:
            host, _, port = self.sock.rpartition(":")
            return port_answers(int(port), host)
        return unix_answers(self.sock)

    def start(self):
        if not self.binary.exists():
            pytest.fail("%s is not built (run make, or set ZCRM_BIN_ROOT)" % self.binary,
                        pytrace=False)
        self.proc.start()
        wait_until(self.answers, scaled(15),
                   what="webhook socket %s" % self.sock, proc=self.proc,
                   log=self.proc.stderr_path)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.alive()

    def kill(self, sig=signal.SIGKILL):
        """Send sig to the webhook and return at once (see wait/restart)."""
        self.proc.kill(sig)

    def wait(self, timeout=10):
        return self.proc.wait(scaled(timeout))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """SIGTERM and wait; then fail the test on a sanitizer report or a
        leftover process. Returns the exit status."""
        rc = self.proc.stop(sig, timeout)
        fail_on_problems(self.proc.take_problems())
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def stderr_text(self):
        return self.proc.stderr_text()

    def take_problems(self):
        return self.proc.take_problems()

    def logs(self):
        return [("webhook stderr", self.proc.stderr_path)]


# ----------------------------------------------------------------- sim

class Sim:
    """tests/zoho_sim/zoho_sim.py on a free port."""

    def __init__(self, directory, args=(), name="sim"):
        self.dir = Path(directory)
        self.port_file = self.dir / ("%s.port" % name)
        with contextlib.suppress(FileNotFoundError):
            self.port_file.unlink()
        argv = [PYTHON, SIM_SCRIPT, "--port", "0", "--port-file", self.port_file] + list(args)
        self.proc = Proc(name, argv, self.dir, marker=str(self.port_file), sanitizer_check=False)
        self.url = None
        self.port = None

    def start(self):
        if not SIM_SCRIPT.exists():
            pytest.fail("%s is missing" % SIM_SCRIPT, pytrace=False)
        self.proc.start()

        def ready():
            with contextlib.suppress(OSError, ValueError):
                self.port = int(self.port_file.read_text().strip())
                return port_answers(self.port)
            return False

        wait_until(ready, scaled(30), what="zoho_sim port file", proc=self.proc,
                   log=self.proc.stderr_path)
        self.url = "http://127.0.0.1:%d" % self.port
        return self

    def control(self, method, path, body=None):
        """Call the /_sim/ control API; returns the decoded JSON (None if
        empty) and fails the test on a status >= 400."""
        if not path.startswith("/"):
            path = "/" + path
        if not path.startswith("/_sim/"):
            path = "/_sim" + path
        status, _, data = http(method, self.url + path, body)
        if status >= 400:
            raise AssertionError("sim %s %s -> %d: %s" % (method, path, status,
                                                          data[:500].decode("utf-8", "replace")))
        return json.loads(data) if data.strip() else None

    def stop(self):
        rc = self.proc.stop(signal.SIGTERM)
        fail_on_problems(self.proc.take_problems())
        return rc

    def stderr_text(self):
        return self.proc.stderr_text()

    def take_problems(self):
        return self.proc.take_problems()

    def logs(self):
        return [("zoho_sim stderr", self.proc.stderr_path)]


# ------------------------------------------------------------ programs

def resolve_program(path):
    p = Path(path)
    if p.is_absolute():
        return p
    if p.parts and p.parts[0] == "tools":
        return TOOLS.joinpath(*p.parts[1:])
    return BIN_ROOT / p


FIELDS = REPO / "tests" / "data" / "fields"


def load_table(run_program, cfg, module):
    """The module's table from tests/data/fields/<module>.json (tools/load_fields)."""
    res = run_program("tools/load_fields", ["--module", module, "--fields",
                                            FIELDS / ("%s.json" % module.lower())], config=cfg)
    assert res.returncode == 0, res.stderr
    return res


class WebhookStack:
    """nginx + webhook + migrated database with module tables (no Zoho)."""

    def __init__(self, db, ng, wh, config, spool):
        self.db, self.ng, self.wh, self.config, self.spool = db, ng, wh, config, spool

    def post(self, body, path="/zcrm/notify", headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return http("POST", self.ng.url + path, body, h)

    def get(self, path, method="GET"):
        return http(method, self.ng.url + path)


@pytest.fixture
def fields_stack(db, run_program, config_factory, nginx_factory, webhook_factory, zcrm_env):
    """fields_stack(overrides=None, tables=("Leads",), nginx_kw=None, args=(),
    cls=WebhookStack, **launch) -> cls(db, nginx, webhook, config, spool):
    the webhook (fetch off) behind nginx, its tables made by
    tools/load_fields from tests/data/fields/<module>.json (which also
    applies the migrations). launch: webhook_factory's listen, wrap,
    pass_fds, env."""

    def make(overrides=None, tables=("Leads",), nginx_kw=None, args=(), cls=WebhookStack,
             **launch):
        ov = {"webhook": {"fetch": False}}
        for sec, kv in (overrides or {}).items():
            ov.setdefault(sec, {}).update(kv)
        ng = nginx_factory(**(nginx_kw or {}))
        cfg = config_factory(ov, nginx=ng)
        res = run_program("tools/load_fields", ["--migrate-only"], config=cfg)
        assert res.returncode == 0, res.stderr
        for mod in tables:
            load_table(run_program, cfg, mod)
        wh = webhook_factory(config=cfg, nginx=ng, args=args, **launch)
        return cls(db, ng, wh, cfg, zcrm_env.dir / "spool")

    return make


@pytest.fixture
def sim_stack(sim_factory, nginx_factory, webhook_factory, config_factory):
    """sim_stack(*sim_args, cfg=None) -> (sim, nginx, webhook, config path):
    the simulator, nginx and the webhook behind it (fetch on, 2 threads),
    sharing one config with the batch programs - what they run beside."""

    def make(*sim_args, cfg=None):
        sim = sim_factory("-q", *sim_args)
        ng = nginx_factory()
        overrides = {"webhook": {"fetch": True, "threads": 2}}
        overrides.update(cfg or {})
        conf = config_factory(overrides, sim=sim, nginx=ng, name="zcrm")
        wh = webhook_factory(config=conf, nginx=ng)
        return sim, ng, wh, conf

    return make


def start_program(zcrm_env, path, config, args=(), name=None, marker=False):
    """A batch program started in the background (own process group, its
    stderr shown on failure); collect it with finish(). marker: tag the
    process with its config and name, so that leftovers are found by it
    rather than by the process group alone (two copies may share a
    config: leave it off for those)."""
    exe = resolve_program(path)
    if not exe.exists():
        pytest.fail("%s is not built (run make)" % exe, pytrace=False)
    name = name or zcrm_env.next_name(exe.name)
    p = Proc(name, [exe, "--config", config] + list(args), zcrm_env.dir, env=clean_env(),
             marker=str(config) + " " + name if marker else None)
    zcrm_env.add_log("%s stderr" % name, p.stderr_path, since=0)
    return p.start()


def finish(zcrm_env, proc, timeout=180):
    """Wait for a background program to exit by itself; its status. Fails
    the test on a sanitizer report or a leftover process."""
    try:
        proc.wait(timeout=scaled(timeout))
    except Exception:
        proc.stop(signal.SIGKILL)
        zcrm_env.fail(proc.take_problems() + ["%s did not finish" % proc.name])
    rc = proc.stop()
    zcrm_env.fail(proc.take_problems())
    return rc


def run_program_in(workdir, path, args=(), config=None, env=None, timeout=60, input=None,
                   name=None):
    """Run a batch program or tool to completion. Returns a CompletedProcess
    (text stdout/stderr) with .problems (sanitizer reports, leftovers)."""
    exe = resolve_program(path)
    if not exe.exists():
        pytest.fail("%s is not built (run make, or set ZCRM_BIN_ROOT/ZCRM_TOOLS)" % exe,
                    pytrace=False)
    argv = [str(exe)]
    if config is not None:
        argv += ["--config", str(config)]
    argv += [str(a) for a in args]
    workdir = Path(workdir)
    name = name or exe.name
    n = next(_run_counter)
    out_path = workdir / ("run%03d-%s.stdout" % (n, name))
    err_path = workdir / ("run%03d-%s.stderr" % (n, name))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=out, stderr=err, env=clean_env(env), cwd=str(REPO),
                             start_new_session=True)
        timed_out = False
        try:
            if input is not None:
                p.communicate(input.encode() if isinstance(input, str) else input,
                              timeout=scaled(timeout))
            else:
                p.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    stdout = out_path.read_text("utf-8", "replace")
    stderr = err_path.read_text("utf-8", "replace")
    res = subprocess.CompletedProcess(argv, p.returncode, stdout, stderr)
    res.problems = []
    res.stdout_path, res.stderr_path = out_path, err_path
    if timed_out:
        res.problems.append("%s timed out after %.0fs; killed" % (" ".join(argv), scaled(timeout)))
    left = find_processes(pgid=p.pid)
    if left:
        res.problems.append("%s left processes behind: %s" % (name, left))
        _kill_and_wait(left)
    if any(m in stderr for m in SANITIZER_MARKS):
        res.problems.append("%s: sanitizer report in stderr:\n%s" % (name, _sanitizer_excerpt(stderr)))
    if p.returncode != 0 or res.problems:
        print("run_program: %s -> exit %s\n--- stdout (tail) ---\n%s\n--- stderr (tail) ---\n%s"
              % (" ".join(argv), p.returncode, tail(out_path, 40), tail(err_path, 60)))
    return res


_run_counter = itertools.count(1)


# ====================================================== pytest plumbing

_SESSION = {"base": None, "failed": 0, "keep": []}


def session_base():
    """The run's directory: $ZCRM_TEST_TMP or a fresh /tmp/zcrm-it.XXXX
    (searchable by `nobody`, who owns the PostgreSQL cluster)."""
    if _SESSION["base"] is None:
        root = os.environ.get("ZCRM_TEST_TMP")
        if root:
            Path(root).mkdir(parents=True, exist_ok=True)
            base = Path(tempfile.mkdtemp(prefix="zcrm-it.", dir=root))
        else:
            base = Path(tempfile.mkdtemp(prefix="zcrm-it."))
        os.chmod(base, 0o755)
        _SESSION["base"] = base
    return _SESSION["base"]


_test_counter = itertools.count(1)


class TestEnv:
    """Per-test bookkeeping: the test's directory, the logs to show on
    failure, and the problems found when its programs stopped."""

    def __init__(self, node):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.name)[:40]
        self.dir = session_base() / ("%03d-%s" % (next(_test_counter), safe))
        self.dir.mkdir(parents=True)
        self.logs = []        # (title, path, since)
        self.counters = {}
        self.failed = False   # set on failure: keep the directory
        self.extra_dirs = []

    def add_log(self, title, path, since=None):
        self.logs.append((title, Path(path), file_size(path) if since is None else since))

    def next_name(self, kind):
        n = self.counters[kind] = self.counters.get(kind, 0) + 1
        return "%s-%d" % (kind, n)

    def socket_path(self, name):
        """A Unix socket path short enough for sun_path (108 bytes)."""
        p = self.dir / (name + ".sock")
        if len(str(p)) < 100:
            return p
        short = Path(tempfile.mkdtemp(prefix="zs.", dir="/tmp"))
        os.chmod(short, 0o755)
        self.extra_dirs.append(short)
        return short / (name + ".sock")

    def fail(self, problems):
        """Fail the test with problems found at a stop (keeps the logs)."""
        if problems:
            self.failed = True
            fail_on_problems(problems)

    def report(self, lines=60):
        out = []
        for title, path, since in self.logs:
            text = tail(path, lines, since)
            if text.strip():
                out.append(("%s (%s)" % (title, path), text))
        return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or getattr(rep, "_zcrm_logs_added", False):
        return
    rep._zcrm_logs_added = True
    _SESSION["failed"] += 1
    item._zcrm_failed = True
    env = getattr(item, "_zcrm_env", None)
    if env is not None:
        env.failed = True
        for title, text in env.report():
            rep.sections.append((title, text))
        rep.sections.append(("test directory (kept)", str(env.dir)))


def pytest_sessionfinish(session, exitstatus):
    base = _SESSION["base"]
    if base is None or _SESSION.get("finished"):
        return
    _SESSION["finished"] = True
    if _SESSION["failed"] == 0 and not os.environ.get("ZCRM_KEEP_TMP"):
        shutil.rmtree(base, ignore_errors=True)
    elif hasattr(session.config, "workeroutput"):
        # An xdist worker has no terminal: the controller prints the path.
        session.config.workeroutput["zcrm_kept"] = str(base)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    kept = getattr(node, "workeroutput", {}).get("zcrm_kept")
    if kept and Path(kept) not in _SESSION["keep"]:
        _SESSION["keep"].append(Path(kept))


def pytest_terminal_summary(terminalreporter):
    if _SESSION.get("summarised"):
        return
    _SESSION["summarised"] = True
    base = _SESSION["base"]
    for d in sorted(_SESSION["keep"]) + ([base] if base is not None else []):
        if d.exists():
            terminalreporter.write_line("zcrm-sync test directories and logs kept in %s" % d)


@pytest.fixture(autouse=True)
def zcrm_env(request):
    """The per-test TestEnv (its directory, the logs shown on failure).
    Tests that use the PostgreSQL cluster get its log lines too."""
    env = TestEnv(request.node)
    request.node._zcrm_env = env
    if "pg" in request.fixturenames:
        env.add_log("postgres.log", request.getfixturevalue("pg").log_path)
    yield env
    if not env.failed and not os.environ.get("ZCRM_KEEP_TMP"):
        shutil.rmtree(env.dir, ignore_errors=True)
        for d in env.extra_dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL cluster (a Postgres), stopped at the end.
    Its directory is removed with the session's unless a test failed or
    ZCRM_KEEP_TMP is set."""
    base = session_base()
    server = Postgres(base / "pg")
    atexit.register(server.stop)
    try:
        server.init().start()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()


_db_counter = itertools.count(1)


@pytest.fixture
def db(pg):
    """A fresh database zcrm_t<N> (from template0) for this test: a
    Database with .name .conninfo .query() .execute() .value() .psql()."""
    if not pg.running():
        pg.start()
    name = "zcrm_t%d_%d" % (os.getpid(), next(_db_counter))
    pg.create_database(name)
    d = Database(pg, name)
    yield d
    with contextlib.suppress(Exception):
        if pg.running():
            pg.drop_database(name)


@pytest.fixture
def config_factory(db, zcrm_env):
    """config_factory(overrides=None, sim=None, nginx=None, name=None) -> Path
    of an INI file: base_config() for this test's database, with the
    simulator's URL for [zoho] and nginx's /zcrm/notify for [notify] url when
    given, then the overrides ({"section": {"key": v}} or {"section.key": v};
    None removes a key)."""

    def make(overrides=None, sim=None, nginx=None, name=None):
        cfg = base_config(db.conninfo, zcrm_env.dir,
                          sim_url=sim.url if sim is not None else None,
                          notify_url=(nginx.url + "/zcrm/notify") if nginx is not None else None)
        cfg = merge_overrides(cfg, overrides)
        path = zcrm_env.dir / ("%s.conf" % (name or zcrm_env.next_name("config")))
        return write_ini(path, cfg)

    return make


@pytest.fixture
def nginx_factory(zcrm_env):
    """nginx_factory(fastcgi_socket=None, max_body="1m", workers=1,
    access_log=True, extra_http="", extra_server="", keep_conn=True) ->
    started Nginx (.url .port .dir .fastcgi_socket .error_log .stop()
    .reload() .error_log_text()). Without fastcgi_socket it gets a fresh
    path that webhook_factory(nginx=...) then listens on. keep_conn=False:
    the snippet without the upstream's keepalive (a FastCGI connection per
    request)."""
    started = []

    def make(fastcgi_socket=None, **kw):
        name = zcrm_env.next_name("nginx")
        if fastcgi_socket is None:
            fastcgi_socket = zcrm_env.socket_path("%s-webhook" % name)
        n = Nginx(zcrm_env.dir / name, fastcgi_socket=fastcgi_socket, **kw)
        started.append(n)
        for title, path in n.logs():
            zcrm_env.add_log("%s %s" % (name, title), path, since=0)
        return n.start()

    yield make
    problems = []
    for n in reversed(started):
        n.stop()
        problems += n.take_problems()
    zcrm_env.fail(problems)


@pytest.fixture
def webhook_factory(config_factory, zcrm_env):
    """webhook_factory(cfg_overrides=None, sim=None, nginx=None, args=(),
    env=None, config=None, sock=None, start=True, listen=True, wrap=(),
    pass_fds=()) -> Webhook (.sock .config_path .pid .stderr_text()
    .kill(sig) .wait() .restart() .stop()). With nginx=, it listens on that
    nginx's FastCGI socket (a path, or host:port) and [notify] url points at
    it; with sim=, [zoho] points at the simulator. listen=False, wrap and
    pass_fds: an inherited socket (see Webhook)."""
    started = []

    def make(cfg_overrides=None, sim=None, nginx=None, args=(), env=None, config=None,
             sock=None, start=True, **launch):
        name = zcrm_env.next_name("webhook")
        if config is None:
            config = config_factory(cfg_overrides, sim=sim, nginx=nginx, name=name)
        if sock is None and nginx is not None:
            sock = nginx.fastcgi_socket
        sock = str(sock or zcrm_env.socket_path(name))
        if sock.startswith("unix:"):
            sock = sock[5:]
        w = Webhook(zcrm_env.dir, config, sock, args=args, env=env, **launch)
        started.append(w)
        zcrm_env.add_log("%s stderr" % name, w.proc.stderr_path, since=0)
        return w.start() if start else w

    yield make
    problems = []
    for w in reversed(started):
        w.proc.stop()
        problems += w.take_problems()
    zcrm_env.fail(problems)


@pytest.fixture
def sim_factory(zcrm_env):
    """sim_factory(*args) -> started Sim (.url .port .control(method, path,
    body) .stop() .stderr_text()) running zoho_sim.py --port 0 --port-file F
    with the given arguments."""
    started = []

    def make(*args):
        name = zcrm_env.next_name("sim")
        s = Sim(zcrm_env.dir, args=args, name=name)
        started.append(s)
        zcrm_env.add_log("%s stderr" % name, s.proc.stderr_path, since=0)
        return s.start()

    yield make
    problems = []
    for s in reversed(started):
        s.proc.stop()
        problems += s.take_problems()
    zcrm_env.fail(problems)


@pytest.fixture
def run_program(zcrm_env, request):
    """run_program(path, args=(), config=None, env=None, timeout=60,
    input=None) -> CompletedProcess (text; .problems). path is relative to
    $ZCRM_BIN_ROOT ("batch/initial_sync"), "tools/NAME" for $ZCRM_TOOLS, or
    absolute. config: a path, or a dict of overrides for config_factory
    (then --config FILE comes first). Fails the test on a sanitizer report
    or a leftover process; a non-zero exit is for the test to judge."""

    def run(path, args=(), config=None, env=None, timeout=60, input=None):
        if isinstance(config, dict):
            config = request.getfixturevalue("config_factory")(config)
        res = run_program_in(zcrm_env.dir, path, args=args, config=config, env=env,
                             timeout=timeout, input=input)
        zcrm_env.add_log("%s stderr" % Path(path).name, res.stderr_path, since=0)
        zcrm_env.fail(res.problems)
        return res

    return run


@pytest.fixture(name="http")
def http_fixture():
    """http(method, url, body=None, headers=None, timeout=30) ->
    (status, headers, body bytes); never raises on 4xx/5xx."""
    return http


__all__ = [
    "pytest_runtest_makereport", "pytest_sessionfinish", "pytest_testnodedown",
    "pytest_terminal_summary",
    "zcrm_env", "pg", "db", "config_factory", "nginx_factory",
    "webhook_factory", "sim_factory", "run_program", "http_fixture",
]
