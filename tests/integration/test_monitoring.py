"""The alert rules and the dashboard in monitoring/ (issue 19): promtool
accepts the rules and their unit tests pass; every series they use is one
the webhook exports (read from a real scrape after a real first load, or
documented in docs/operations.md when it appears only later); and the
per-module gauges they rest on say what the database says."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import http

REPO = Path(__file__).resolve().parents[2]
MON = REPO / "monitoring"
RULES = MON / "zcrm-sync.rules.yml"
RULE_TESTS = MON / "zcrm-sync.rules.test.yml"
DASHBOARD = MON / "zcrm-sync.dashboard.json"
OPERATIONS_MD = REPO / "docs" / "operations.md"
MODULE = "Leads"
EX_OK = 0

# Series that are not ours: Prometheus's own.
FOREIGN = {"up"}


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: scripts/install-deps.sh installs it (Debian's prometheus package)"
    return path


def test_rules_are_valid_and_their_unit_tests_pass():
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=MON,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def rule_exprs():
    # The rules file is YAML; its expressions are single-line `expr:` values.
    return re.findall(r"^\s+expr: (.+)$", RULES.read_text(encoding="utf-8"), re.M)


def dashboard_exprs():
    d = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in d["templating"]["list"] if v.get("type") == "query"]
    assert len(d["panels"]) >= 10
    return exprs


def series_names(expr):
    return {n for n in re.findall(r"\b(zcrm_[a-z_]+|up)\b", expr)}


def exported_family(name):
    return re.sub(r"_(bucket|sum|count)$", "", name)


@pytest.fixture
def scrape(db, sim_factory, config_factory, run_program, nginx_factory, webhook_factory):
    """/zcrm/metrics of a webhook after a first load of Leads."""
    sim = sim_factory("-q", "--modules", "%s:40" % MODULE, "--bulk-polls", "1")
    conf = config_factory({}, sim=sim, name="zcrm")
    sim.control("POST", "/faults", {"notify": {"drop": 1.0}, "seed": 1})
    r = run_program("batch/initial_sync", config=conf, timeout=180)
    assert r.returncode == EX_OK, r.stderr[-3000:]
    ng = nginx_factory()
    webhook_factory(config=conf, nginx=ng)
    status, _, raw = http("GET", ng.url + "/zcrm/metrics")
    assert status == 200
    return raw.decode()


def gauge(text, name, extra=""):
    m = re.search(r'^%s\{webhook="[^"]*",module="%s"%s\} (\S+)$' % (name, MODULE, extra), text, re.M)
    assert m, "no %s for %s in:\n%s" % (name, MODULE, text)
    return float(m.group(1))


def test_gauges_say_what_the_database_says(db, scrape):
    text = scrape
    now = time.time()
    wm = db.value("SELECT extract(epoch FROM watermark) FROM zcrm.sync_state WHERE module = %s", (MODULE,))
    assert wm and gauge(text, "zcrm_watermark_timestamp_seconds") == int(wm)
    exp = db.value("SELECT extract(epoch FROM channel_expiry) FROM zcrm.sync_state WHERE module = %s", (MODULE,))
    assert gauge(text, "zcrm_channel_expiry_timestamp_seconds") == int(exp) > now
    assert gauge(text, "zcrm_channel_active") == 1
    assert gauge(text, "zcrm_dirty_ids") == 0
    assert gauge(text, "zcrm_dirty_failing_ids") == 0
    assert gauge(text, "zcrm_inbox_unprocessed") == 0
    assert gauge(text, "zcrm_coverage_gaps_open") == db.value(
        "SELECT count(*) FROM zcrm.coverage_gaps WHERE module = %s AND closed_at IS NULL", (MODULE,))
    done = gauge(text, "zcrm_last_success_timestamp_seconds", ',program="initial"')
    assert now - 600 < done <= now + 1


def test_everything_the_rules_and_dashboard_use_is_exported(scrape):
    exported = {exported_family(n) for n in re.findall(r"^(zcrm_[a-z_]+)", scrape, re.M)}
    documented = set(re.findall(r"`(zcrm_[a-z_]+)[`{]", OPERATIONS_MD.read_text(encoding="utf-8")))
    used = set()
    for e in rule_exprs() + dashboard_exprs():
        used |= series_names(e)
    used = {exported_family(n) for n in used} - FOREIGN
    assert "zcrm_watermark_timestamp_seconds" in used and "zcrm_channel_active" in used
    # Present once something happened (a 403, a credit header, a refused
    # request): documented, and otherwise not in a fresh scrape.
    unknown = sorted(n for n in used if n not in exported and n not in documented)
    assert not unknown, "used by monitoring/ but neither exported nor documented: %s" % unknown
    # The per-module gauges must be there from the first scrape.
    per_module = sorted(n for n in used if n not in exported and n not in
                        {"zcrm_zoho_credits_remaining", "zcrm_zoho_credits_spent_total",
                         "zcrm_webhook_requests_total"})
    assert not per_module, "absent from a scrape after a first load: %s" % per_module


def test_scrape_passes_promtool_lint(scrape):
    r = subprocess.run([promtool(), "check", "metrics"], input=scrape, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
