"""Convergence under faults (issue #6): everything runs for real - PostgreSQL,
nginx, the webhook, the batch programs and the simulator - while a seeded
stream of mutations and faults hits them. When the faults and mutations stop
and the cron jobs have run as cron would, every module must equal the
simulator's truth: same live ids, every field's typed value (after a schema
change mid-stream: a field added, one renamed, one retyped), every deleted
id tombstoned, every notification delivered with a 200 in zcrm.inbox, no
coverage gap left open.

Sizes come from the environment, so `make soak` runs the same scenario long:
    ZCRM_SEED      seed (default: random, printed)
    ZCRM_RECORDS   Leads at start (default 20000; Contacts get a tenth)
    ZCRM_MINUTES   minutes of mutations after the initial sync (default 0.5)
    ZCRM_PAGE      bulk page size (default RECORDS/6)

On failure the message starts with the seed and lists the first
differences (id, field, ours, theirs).
"""
import contextlib
import json
import os
import random
import signal
import threading
import time

import pytest

from harness import Proc, clean_env, resolve_program, scaled, wait_until
from truth import diff_table, format_diffs

SEED = int(os.environ.get("ZCRM_SEED") or random.SystemRandom().randrange(1, 1_000_000))
# Under ASan (the second pass of make check) a smaller org keeps CI short;
# the normal pass runs the full 20,000.
ASAN = "asan" in os.environ.get("ZCRM_BIN_ROOT", "")
RECORDS = int(os.environ.get("ZCRM_RECORDS", "6000" if ASAN else "20000"))
MINUTES = float(os.environ.get("ZCRM_MINUTES", "0.5"))
PAGE = int(os.environ.get("ZCRM_PAGE", str(max(500, RECORDS // 6))))
SOAK = bool(os.environ.get("ZCRM_SOAK"))
MODULES = ("Leads", "Contacts")
CHANNEL_BASE = 1000000068001


class Log:
    """Timestamped lines kept for the report (printed on failure and by -s)."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lines = []
        self.lock = threading.Lock()

    def __call__(self, fmt, *args):
        line = "[%7.2fs] %s" % (time.monotonic() - self.t0, fmt % args if args else fmt)
        with self.lock:
            self.lines.append(line)
        print(line, flush=True)

    def text(self, last=80):
        with self.lock:
            return "\n".join(self.lines[-last:])


class Mutator(threading.Thread):
    """Creates, edits (several edits to one record within a second), deletes,
    and deletes of records created moments before - until stopped."""

    def __init__(self, sim, rng, log):
        super().__init__(daemon=True)
        self.sim, self.rng, self.log = sim, rng, log
        self.stop_event = threading.Event()
        self.counts = {"create": 0, "update": 0, "delete": 0, "same_second_edits": 0,
                       "create_then_delete": 0, "errors": 0}
        self.known = {m: [] for m in MODULES}

    def stop(self):
        self.stop_event.set()
        self.join(timeout=30)

    def _mutate(self, module):
        res = self.sim.control("POST", "/_sim/mutate", {
            "module": module, "count": self.rng.randint(1, 8),
            "seed": self.rng.randrange(1 << 30), "batch_max": 4,
            "mix": {"create": 0.35, "update": 0.45, "delete": 0.2}})
        for ch in res.get("changes", []):
            self.counts[ch["op"]] = self.counts.get(ch["op"], 0) + 1
            if ch["op"] == "create":
                self.known[module].append(ch["id"])

    def _same_second(self, module):
        if not self.known[module]:
            return
        rid = self.rng.choice(self.known[module][-200:])
        for i in range(3):
            with contextlib.suppress(AssertionError):  # deleted meanwhile
                self.sim.control("PATCH", "/_sim/records/%s/%s" % (module, rid),
                                 {"values": {"Description" if module == "Leads" else "Title":
                                             "edit %d of seed %d" % (i, SEED)}})
        self.counts["same_second_edits"] += 1

    def _create_delete(self, module):
        rec = self.sim.control("POST", "/_sim/records/%s" % module, {})
        rid = rec["id"] if "id" in rec else rec.get("record", {}).get("id")
        time.sleep(self.rng.uniform(0.0, 0.2))
        self.sim.control("DELETE", "/_sim/records/%s/%s" % (module, rid))
        self.counts["create_then_delete"] += 1

    def run(self):
        while not self.stop_event.is_set():
            module = "Leads" if self.rng.random() < 0.8 else "Contacts"
            r = self.rng.random()
            try:
                if r < 0.7:
                    self._mutate(module)
                elif r < 0.85:
                    self._same_second(module)
                else:
                    self._create_delete(module)
            except Exception as e:  # the sim is never faulted; count and go on
                self.counts["errors"] += 1
                self.log("mutator error: %s", e)
            self.stop_event.wait(self.rng.uniform(0.05, 0.4))


class Cluster:
    """The parts under test and the helpers the scenario drives them with."""

    def __init__(self, pg, db, sim, nginx, webhook, config, zcrm_env, log):
        self.pg, self.db, self.sim, self.nginx = pg, db, sim, nginx
        self.webhook, self.config, self.env, self.log = webhook, config, zcrm_env, log
        self.runs = 0

    def start_program(self, name, *args):
        self.runs += 1
        tag = "%s-%d" % (os.path.basename(name), self.runs)
        proc = Proc(tag, [resolve_program(name), "--config", self.config, *args],
                    self.env.dir, env=clean_env(), marker=str(self.config))
        self.env.add_log("%s stderr" % tag, proc.stderr_path, since=0)
        return proc.start()

    def run_program(self, name, *args, timeout=600):
        proc = self.start_program(name, *args)
        try:
            proc.wait(timeout=scaled(timeout))
        except Exception:
            proc.kill()
            raise
        code = proc.popen.returncode
        self.env.fail(proc.take_problems())
        self.log("%s %s -> exit %d", name, " ".join(args), code)
        return code, proc

    def run_until_ok(self, name, *args, attempts=20):
        """As cron would: run again after a temporary failure (75)."""
        for _ in range(attempts):
            code, proc = self.run_program(name, *args)
            if code == 0:
                return proc
            assert code == 75, "%s exited %d:\n%s" % (name, code, proc.stderr_text()[-3000:])
            time.sleep(1)
        raise AssertionError("%s kept failing" % name)

    def value(self, sql, *params):
        with contextlib.suppress(Exception):
            return self.db.value(sql, *params)
        return None


def faults_rules(rng):
    """A fresh set of HTTP faults on every Zoho endpoint: 429 with
    Retry-After and 500s, each consumed a few times."""
    rules = []
    for path in ("/crm/bulk/v6/read", "/crm/v6/Leads", "/crm/v6/Contacts",
                 "/crm/v6/actions/watch", "/crm/v6/settings/fields", "/oauth/v2/token"):
        rules.append({"match": path, "status": 429, "retry_after": 1,
                      "count": rng.randint(1, 2)})
        rules.append({"match": path, "status": rng.choice([500, 502, 503]),
                      "count": rng.randint(1, 2)})
    rng.shuffle(rules)
    return rules


SCHEMA_CHANGES = [
    {"op": "add", "api_name": "Region", "data_type": "picklist"},
    {"op": "rename", "api_name": "Skype_ID", "new_api_name": "Skype_Handle"},
    {"op": "retype", "api_name": "No_of_Employees", "data_type": "double"},
]

NOTIFY_CHAOS = {"drop": 0.1, "duplicate": 0.1, "reorder": 0.1, "delay_ms": [0, 1500]}


def scenario(cluster, rng, log, stats):
    sim, db = cluster.sim, cluster.db
    sim.control("POST", "/_sim/faults", {"notify": NOTIFY_CHAOS, "seed": SEED})
    stats["faults"]["notify chaos"] += 1
    mut = Mutator(sim, random.Random(rng.random()), log)
    mut.start()
    stats["mutator"] = mut.counts

    # Phase A: initial_sync under fire, killed -9 mid-page once.
    events = ["http faults", "token expiry", "webhook kill", "postgres stop", "download 429"]
    rng.shuffle(events)
    killed = False
    proc = cluster.start_program("batch/initial_sync")
    deadline = time.monotonic() + scaled(900)
    while True:
        rc = proc.poll()
        if rc is not None:
            cluster.env.fail(proc.take_problems())
            log("initial_sync exited %d", rc)
            if rc == 0:
                # Contacts too: both modules are in [sync] modules.
                break
            assert rc == 75, "initial_sync exited %d:\n%s" % (rc, proc.stderr_text()[-3000:])
            time.sleep(1)
            proc = cluster.start_program("batch/initial_sync")
            continue
        assert time.monotonic() < deadline, "initial sync did not finish"
        page = cluster.value("SELECT bulk_page FROM zcrm.sync_state WHERE module = 'Leads'"
                             " AND bulk_kind = 'initial'")
        if not killed and page is not None and page >= 3:
            proc.kill(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.take_problems()
            killed = True
            stats["faults"]["initial_sync kill -9"] += 1
            log("initial_sync killed -9 at page %s; re-running", page)
            proc = cluster.start_program("batch/initial_sync")
            continue
        if killed and events:
            inject(cluster, events.pop(), rng, log, stats)
        time.sleep(0.5)
    assert killed, "initial_sync finished before page 3; lower ZCRM_PAGE"
    for ev in events:
        inject(cluster, ev, rng, log, stats)

    # Phase B: mutations go on; the cron jobs run as cron would. Early on,
    # an admin changes the Leads schema (issue 16): a field added, one
    # renamed, one retyped (integer → double, converted in place).
    end = time.monotonic() + MINUTES * 60
    expired = False
    schema_changed = False
    while time.monotonic() < end:
        if not schema_changed and time.monotonic() > end - MINUTES * 45:
            sim.control("POST", "/_sim/fields", {"module": "Leads", "changes": SCHEMA_CHANGES})
            stats["faults"]["schema change"] += 1
            schema_changed = True
            log("Leads schema changed: %s", ", ".join(c["op"] for c in SCHEMA_CHANGES))
        if not expired and time.monotonic() > end - MINUTES * 30:
            sim.control("POST", "/_sim/channels/%d/expire" % CHANNEL_BASE)
            stats["faults"]["channel expiry"] += 1
            expired = True
            log("channel of Leads expired")
            time.sleep(2)  # changes made while nothing is subscribed
        cluster.run_program("batch/renew_channel")
        cluster.run_program("batch/incremental_sync")
        if rng.random() < 0.3:
            inject(cluster, rng.choice(["http faults", "token expiry", "webhook kill"]),
                   rng, log, stats)
        time.sleep(rng.uniform(1, 4))
    if not schema_changed:
        sim.control("POST", "/_sim/fields", {"module": "Leads", "changes": SCHEMA_CHANGES})
        stats["faults"]["schema change"] += 1
    if not expired:
        sim.control("POST", "/_sim/channels/%d/expire" % CHANNEL_BASE)
        stats["faults"]["channel expiry"] += 1
        time.sleep(2)

    # Phase C: the faults and the mutations stop; cron catches up.
    mut.stop()
    sim.control("DELETE", "/_sim/faults")
    sim.control("POST", "/_sim/config", {"download_limit_per_min": 0})
    sim.control("POST", "/_sim/flush", {"timeout": 60})
    if not cluster.webhook.alive():
        cluster.webhook.restart()
    def spool_drained():
        return not [e for e in os.scandir(cluster.env.dir / "spool")
                    if e.is_file() and e.name.endswith(".json")]

    wait_until(spool_drained, scaled(60), what="spool drained")
    kept = list((cluster.env.dir / "spool" / "failed").glob("*.json"))
    assert not kept, "notifications set aside as never applicable: %s" % kept
    cluster.run_until_ok("batch/renew_channel")
    cluster.run_until_ok("batch/incremental_sync")
    cluster.run_until_ok("batch/reconcile")
    cluster.run_until_ok("batch/incremental_sync")


def inject(cluster, event, rng, log, stats):
    sim = cluster.sim
    if event == "http faults":
        sim.control("POST", "/_sim/faults", {"rules": faults_rules(rng), "notify": NOTIFY_CHAOS,
                                             "seed": rng.randrange(1 << 30)})
    elif event == "token expiry":
        sim.control("POST", "/_sim/expire_tokens")
    elif event == "webhook kill":
        cluster.webhook.kill(signal.SIGKILL)
        with contextlib.suppress(Exception):
            cluster.webhook.wait()
        cluster.webhook.proc.take_problems()
        time.sleep(rng.uniform(0.5, 2.0))
        cluster.webhook.restart()
    elif event == "postgres stop":
        cluster.pg.stop()
        time.sleep(rng.uniform(3, 6))
        cluster.pg.start()
    elif event == "download 429":
        # The download limit answers 429; with Retry-After the client waits
        # that long (without it, a minute - `make soak` hits the real limit).
        if SOAK:
            sim.control("POST", "/_sim/config", {"download_limit_per_min": 2})
        else:
            sim.control("POST", "/_sim/faults", {
                "rules": [{"match": "/crm/bulk/v6/read/", "method": "GET", "status": 429,
                           "retry_after": 2, "count": 2, "code": "TOO_MANY_REQUESTS"}],
                "notify": NOTIFY_CHAOS, "append": True})
    stats["faults"][event] += 1
    log("fault: %s", event)


def check(cluster, log, stats):
    sim, db = cluster.sim, cluster.db
    problems = []
    for module in MODULES:
        truth = sim.control("GET", "/_sim/truth/%s" % module)
        stats["truth"][module] = {"live": len(truth["records"]), "deleted": len(truth["deleted"])}
        diffs = diff_table(db, truth, module=module, limit=2000)
        if diffs:
            problems.append("%s: %s" % (module, format_diffs(diffs, 20)))
    # Every notification answered 200 is in the inbox (duplicates once).
    delivered, since = set(), 0
    while True:
        page = sim.control("GET", "/_sim/notifications?kind=notify&since=%d" % since)
        for d in page["notifications"] if "notifications" in page else page.get("deliveries", []):
            if d.get("status") == 200:
                body = d["body"] if isinstance(d["body"], dict) else json.loads(d["body"])
                delivered.add((int(body["channel_id"]), int(body["server_time"]),
                               body["operation"], tuple(sorted(int(i) for i in body["ids"]))))
        if page.get("next", since) == since:
            break
        since = page["next"]
    rows = db.query("SELECT channel_id, (extract(epoch FROM server_time) * 1000)::bigint,"
                    " operation, ids FROM zcrm.inbox")
    inbox = {(int(c), int(t), op, tuple(sorted(int(i) for i in ids))) for c, t, op, ids in rows}
    lost = delivered - inbox
    stats["notifications_200"] = len(delivered)
    if lost:
        problems.append("%d notification(s) answered 200 but not in zcrm.inbox, e.g. %r"
                        % (len(lost), sorted(lost)[:5]))
    gaps = db.query("SELECT module, gap_from, gap_to, reason FROM zcrm.coverage_gaps"
                    " WHERE closed_at IS NULL")
    if gaps:
        problems.append("open coverage gaps: %r" % gaps)
    stats["sim"] = sim.control("GET", "/_sim/stats")
    return problems


def test_converges_under_faults(pg, db, sim_factory, nginx_factory, webhook_factory,
                                config_factory, zcrm_env):
    log = Log()
    rng = random.Random(SEED)
    log("seed=%d records=%d minutes=%.2f page=%d", SEED, RECORDS, MINUTES, PAGE)
    sim = sim_factory("--seed", str(SEED), "--modules",
                      "Leads:%d,Contacts:%d" % (RECORDS, max(200, RECORDS // 10)),
                      "--page-size", str(PAGE), "--bulk-polls", "2", "--bulk-step-ms", "500",
                      "--tz-offset", "+05:30", "-q")
    sim.control("POST", "/_sim/config", {"download_limit_per_min": 0})
    nginx = nginx_factory()
    # The shipped catch-up (None: the product's default, not the harness's
    # old habits): REST for small change sets, Bulk Read past the threshold.
    # schema_check 0: every incremental_sync reads the fields metadata, so
    # the schema change is followed while mutations flow.
    overrides = {"sync": {"modules": "Leads, Contacts", "bulk_wait": 600,
                          "bulk_threshold": None, "schema_check": 0},
                 "notify": {"check_interval": None},
                 "zoho": {"max_retries": 8, "retry_budget": 300},
                 "webhook": {"fetch": True, "threads": 4}}
    webhook = webhook_factory(overrides, sim=sim, nginx=nginx)
    config = webhook.config_path
    cluster = Cluster(pg, db, sim, nginx, webhook, config, zcrm_env, log)
    stats = {"seed": SEED, "faults": {k: 0 for k in (
        "notify chaos", "http faults", "token expiry", "webhook kill", "postgres stop",
        "download 429", "initial_sync kill -9", "channel expiry", "schema change")},
        "truth": {}}
    try:
        scenario(cluster, rng, log, stats)
        problems = check(cluster, log, stats)
    finally:
        if not pg.running():
            pg.start()
    report = json.dumps({k: v for k, v in stats.items() if k != "sim"}, indent=1, default=str)
    log("report: %s", report)
    (zcrm_env.dir / "converge-report.json").write_text(json.dumps(stats, indent=1, default=str))
    if os.environ.get("ZCRM_REPORT"):
        with open(os.environ["ZCRM_REPORT"], "w") as f:
            json.dump(stats, f, indent=1, default=str)
    assert not problems, "seed %d did not converge:\n%s\n\nscenario log:\n%s" % (
        SEED, "\n".join(problems), log.text())


# ----------------------------------------------------------- line items --
# Issue 17: an Invoices module whose line items (the Invoiced_Items subform,
# a child table) are edited, added and removed under the same faults, ending
# with 0 differences in parents and lines. A separate test (its own
# mutator and scenario) so that the Leads/Contacts scenario above stays as
# it is. Sizes: ZCRM_INVOICES (default 1500, 600 under ASan), ZCRM_MINUTES.

from truth import diff_lines  # noqa: E402

INVOICES = int(os.environ.get("ZCRM_INVOICES", "600" if ASAN else "1500"))
LINE_PATHS = ("/crm/bulk/v6/read", "/crm/v6/Invoices", "/crm/v6/Invoiced_Items",
              "/crm/v6/actions/watch", "/crm/v6/settings/fields", "/oauth/v2/token")


class LineMutator(threading.Thread):
    """Invoices created, edited (the generator's edits change lines too),
    deleted; and lines edited, added and removed one invoice at a time."""

    def __init__(self, sim, rng, log):
        super().__init__(daemon=True)
        self.sim, self.rng, self.log = sim, rng, log
        self.stop_event = threading.Event()
        self.counts = {"mutate": 0, "line_edit": 0, "line_add": 0, "line_remove": 0,
                       "errors": 0}

    def stop(self):
        self.stop_event.set()
        self.join(timeout=30)

    def _lines(self):
        recs = [r for r in self.sim.control("GET", "/_sim/truth/Invoices")["records"]]
        if not recs:
            return
        rec = self.rng.choice(recs)
        lines = [{"id": x["id"]} for x in rec.get("Invoiced_Items") or []]
        op = self.rng.choice(["edit", "add", "remove"]) if lines else "add"
        if op == "edit":
            self.rng.choice(lines)["Quantity"] = self.rng.randint(1, 60)
        elif op == "add":
            proto = next((x for x in self.sim.control("GET", "/_sim/truth/Invoices")["records"]
                          if x.get("Invoiced_Items")), None)
            if proto is None:
                return
            lines.append({"Product_Name": proto["Invoiced_Items"][0]["Product_Name"],
                          "Quantity": self.rng.randint(1, 9), "List_Price": 12.5})
        else:
            lines.remove(self.rng.choice(lines))
        with contextlib.suppress(AssertionError):  # deleted meanwhile
            self.sim.control("PATCH", "/_sim/records/Invoices/%s" % rec["id"],
                             {"values": {"Invoiced_Items": lines}})
            self.counts["line_" + op] += 1

    def run(self):
        while not self.stop_event.is_set():
            try:
                if self.rng.random() < 0.5:
                    self.sim.control("POST", "/_sim/mutate", {
                        "module": "Invoices", "count": self.rng.randint(1, 6),
                        "seed": self.rng.randrange(1 << 30), "batch_max": 4,
                        "mix": {"create": 0.3, "update": 0.55, "delete": 0.15}})
                    self.counts["mutate"] += 1
                else:
                    self._lines()
            except Exception as e:  # the control API is never faulted
                self.counts["errors"] += 1
                self.log("mutator error: %s", e)
            self.stop_event.wait(self.rng.uniform(0.05, 0.4))


def line_faults(rng):
    rules = []
    for path in LINE_PATHS:
        rules.append({"match": path, "status": 429, "retry_after": 1, "count": rng.randint(1, 2)})
        rules.append({"match": path, "status": rng.choice([500, 502, 503]),
                      "count": rng.randint(1, 2)})
    rng.shuffle(rules)
    return rules


def line_scenario(cluster, rng, log, stats):
    sim = cluster.sim
    sim.control("POST", "/_sim/faults", {"notify": NOTIFY_CHAOS, "seed": SEED})
    mut = LineMutator(sim, random.Random(rng.random()), log)
    mut.start()
    stats["mutator"] = mut.counts

    def fault():
        ev = rng.choice(["http faults", "token expiry", "webhook kill"])
        if ev == "http faults":
            sim.control("POST", "/_sim/faults", {"rules": line_faults(rng), "notify": NOTIFY_CHAOS,
                                                 "seed": rng.randrange(1 << 30)})
            stats["faults"][ev] += 1
            log("fault: %s", ev)
        else:
            inject(cluster, ev, rng, log, stats)

    # Phase A: initial_sync (export, then the lines by the listing) under
    # faults, killed -9 once mid-export.
    killed = False
    proc = cluster.start_program("batch/initial_sync")
    deadline = time.monotonic() + scaled(900)
    while True:
        rc = proc.poll()
        if rc is not None:
            cluster.env.fail(proc.take_problems())
            log("initial_sync exited %d", rc)
            if rc == 0:
                break
            assert rc == 75, "initial_sync exited %d:\n%s" % (rc, proc.stderr_text()[-3000:])
            time.sleep(1)
            proc = cluster.start_program("batch/initial_sync")
            continue
        assert time.monotonic() < deadline, "initial sync did not finish"
        page = cluster.value("SELECT bulk_page FROM zcrm.sync_state WHERE module = 'Invoices'"
                             " AND bulk_kind = 'initial'")
        if not killed and page is not None and page >= 2:
            proc.kill(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.take_problems()
            killed = True
            stats["faults"]["initial_sync kill -9"] += 1
            log("initial_sync killed -9 at page %s; re-running", page)
            fault()
            proc = cluster.start_program("batch/initial_sync")
            continue
        time.sleep(0.3)
    assert killed, "initial_sync finished before page 2"

    # Phase B: mutations go on; the cron jobs run as cron would.
    end = time.monotonic() + MINUTES * 60
    while time.monotonic() < end:
        cluster.run_program("batch/renew_channel")
        cluster.run_program("batch/incremental_sync")
        if rng.random() < 0.4:
            fault()
        time.sleep(rng.uniform(1, 3))

    # Phase C: the faults and the mutations stop; cron catches up.
    mut.stop()
    sim.control("DELETE", "/_sim/faults")
    sim.control("POST", "/_sim/flush", {"timeout": 60})
    if not cluster.webhook.alive():
        cluster.webhook.restart()
    wait_until(lambda: cluster.value("SELECT count(*) FROM zcrm.inbox WHERE processed_at IS NULL")
               == 0, scaled(60), what="inbox applied")
    cluster.run_until_ok("batch/renew_channel")
    cluster.run_until_ok("batch/incremental_sync")
    cluster.run_until_ok("batch/reconcile")
    cluster.run_until_ok("batch/incremental_sync")


def test_line_items_converge_under_faults(pg, db, sim_factory, nginx_factory, webhook_factory,
                                          config_factory, zcrm_env):
    log = Log()
    rng = random.Random(SEED)
    log("seed=%d invoices=%d minutes=%.2f", SEED, INVOICES, MINUTES)
    sim = sim_factory("--seed", str(SEED), "--modules", "Invoices:%d" % INVOICES,
                      "--page-size", str(max(100, INVOICES // 4)), "--bulk-polls", "2",
                      "--bulk-step-ms", "300", "--tz-offset", "+05:30", "-q")
    sim.control("POST", "/_sim/config", {"download_limit_per_min": 0})
    nginx = nginx_factory()
    overrides = {"sync": {"modules": "Invoices", "bulk_wait": 600, "bulk_threshold": None},
                 "notify": {"check_interval": None},
                 "zoho": {"max_retries": 8, "retry_budget": 300},
                 "webhook": {"fetch": True, "threads": 4}}
    webhook = webhook_factory(overrides, sim=sim, nginx=nginx)
    cluster = Cluster(pg, db, sim, nginx, webhook, webhook.config_path, zcrm_env, log)
    stats = {"seed": SEED, "faults": {k: 0 for k in (
        "http faults", "token expiry", "webhook kill", "initial_sync kill -9")}}
    line_scenario(cluster, rng, log, stats)
    truth = sim.control("GET", "/_sim/truth/Invoices")
    parents = diff_table(db, truth, module="Invoices", limit=2000)
    lines = diff_lines(db, truth, "Invoiced_Items", limit=2000)
    stats["truth"] = {"invoices": len(truth["records"]), "deleted": len(truth["deleted"]),
                      "lines": sum(len(r["Invoiced_Items"] or []) for r in truth["records"])}
    log("report: %s", json.dumps(stats, default=str))
    assert not parents and not lines, "seed %d did not converge:\nparents: %s\nlines: %s\n\n%s" % (
        SEED, format_diffs(parents, 20), format_diffs(lines, 20), log.text())
