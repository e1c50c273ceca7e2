"""Configuration safety (issue #8):

  - module and schema names become SQL identifiers and URL path segments,
    so a name with quotes, semicolons, spaces or anything but letters,
    digits and '_' is refused at startup, with the file, line and key, by
    the webhook (--check-config) and by every batch program — before any
    connection is made;
  - an empty value cannot slip past a key's validator ("modules =");
  - a config file holding secrets that others can read draws a warning
    naming the file and its mode; 0600/0640 files and files without
    secrets do not.
See docs/security.md.
"""

import os

import pytest

from harness import BIN_ROOT

EX_CONFIG = 78
WEBHOOK = BIN_ROOT / "webhook" / "zcrm_webhook"
PROGRAMS = ["batch/initial_sync", "batch/incremental_sync", "batch/renew_channel",
            "batch/reconcile", "batch/status"]

pytestmark = pytest.mark.skipif(not WEBHOOK.exists(), reason="webhook not built")


def check_config(run_program, cfg):
    return run_program(WEBHOOK, ["--check-config"], config=cfg, timeout=30)


BAD_MODULES = [
    ("quote", 'Leads, Con"tacts'),
    ("single_quote", "Leads, Con'tacts"),
    ("semicolon", "Leads; DROP TABLE zcrm.inbox"),
    ("sql_comment", "Leads--"),
    ("space_inside", "Lea ds"),
    ("slash", "Leads/../settings"),
    ("query", "Leads?fields=x"),
    ("percent", "Leads%2F"),
    ("starts_with_digit", "1Leads"),
    ("non_ascii", "L\u00e9ads"),
    ("empty_item", "Leads,,Contacts"),
    ("trailing_comma", "Leads,"),
    ("too_long", "L" * 61),
    ("duplicate", "Leads, leads"),
]


@pytest.mark.parametrize("name,value", BAD_MODULES, ids=[b[0] for b in BAD_MODULES])
def test_bad_module_names_refused(db, config_factory, run_program, name, value):
    cfg = config_factory({"sync": {"modules": value}})
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, (res.returncode, res.stdout, res.stderr)
    assert "[sync] modules" in res.stderr and str(cfg) in res.stderr, res.stderr
    assert res.stdout == ""
    # Refused before the database is touched: no schema was created.
    assert db.value("SELECT to_regnamespace('zcrm')") is None


def test_bad_module_names_refused_by_every_batch_program(db, config_factory, run_program):
    cfg = config_factory({"sync": {"modules": 'Leads"; DROP SCHEMA zcrm CASCADE; --'}})
    for prog in PROGRAMS:
        res = run_program(prog, [], config=cfg, timeout=30)
        assert res.returncode == EX_CONFIG, (prog, res.returncode, res.stderr)
        assert "[sync] modules" in res.stderr and "letters, digits" in res.stderr, res.stderr
    assert db.value("SELECT to_regnamespace('zcrm')") is None


def test_bad_module_name_from_the_environment(db, config_factory, run_program):
    cfg = config_factory()
    res = run_program(WEBHOOK, ["--check-config"], config=cfg, timeout=30,
                      env={"ZCRM_SYNC_MODULES": "Leads;x"})
    assert res.returncode == EX_CONFIG, res.stderr
    assert "ZCRM_SYNC_MODULES" in res.stderr


# "Zcrm": used quoted, it would be a schema apart from zcrm (issue 14).
@pytest.mark.parametrize("value", ['zcrm"; DROP TABLE x; --', "zcrm.public", "ZCRM SYNC", "",
                                   "Zcrm"])
def test_bad_schema_names_refused(db, config_factory, run_program, value):
    cfg = config_factory({"database": {"schema": value}})
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "[database] schema" in res.stderr, res.stderr


@pytest.mark.parametrize("section,key", [("sync", "modules"), ("zoho", "api_domain"),
                                         ("zoho", "accounts_url"), ("notify", "channel_id")])
def test_empty_value_does_not_skip_validation(db, config_factory, run_program, section, key):
    cfg = config_factory({section: {key: ""}})
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "[%s] %s: must not be empty" % (section, key) in res.stderr, res.stderr


def test_good_names_accepted(db, config_factory, run_program):
    cfg = config_factory({"sync": {"modules": "Leads, Contacts ,Deals,Custom_Module_2"}})
    res = check_config(run_program, cfg)
    assert res.returncode == 0, res.stderr
    assert "modules = Leads, Contacts ,Deals,Custom_Module_2" in res.stdout


# ------------------------------------------------- file mode warning

def mode_warning(text):
    return [ln for ln in text.splitlines()
            if "level=warn" in ln and "readable by others" in ln]


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o666])
def test_world_readable_config_with_secrets_warns(db, config_factory, run_program, mode):
    cfg = config_factory()
    os.chmod(cfg, mode)
    for prog in (WEBHOOK, "batch/status"):
        args = ["--check-config"] if prog == WEBHOOK else []
        res = run_program(prog, args, config=cfg, timeout=30)
        lines = mode_warning(res.stderr)
        assert len(lines) == 1, (prog, res.stderr)
        assert "file=%s" % cfg in lines[0] and "mode=%04o" % mode in lines[0], lines[0]
        assert "chmod 600" in lines[0]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400])
def test_private_config_does_not_warn(db, config_factory, run_program, mode):
    cfg = config_factory()
    os.chmod(cfg, mode)
    res = check_config(run_program, cfg)
    assert res.returncode == 0, res.stderr
    assert not mode_warning(res.stderr), res.stderr


def test_world_readable_config_without_secrets_does_not_warn(db, config_factory, run_program):
    # The webhook needs the channel token; status needs none of the secrets.
    cfg = config_factory({"zoho": {"client_secret": None, "refresh_token": None},
                          "notify": {"token": None}})
    os.chmod(cfg, 0o644)
    res = run_program("batch/status", [], config=cfg, timeout=30)
    assert not mode_warning(res.stderr), res.stderr


# ------------------------------------------------ plain http to Zoho

@pytest.mark.parametrize("url,warns", [
    ("http://www.zohoapis.eu", True), ("http://10.1.2.3:8080/x", True),
    ("http://127.0.0.1:9", False), ("http://localhost:8000", False),
    ("http://[::1]:8000", False), ("https://www.zohoapis.eu", False)])
def test_plain_http_zoho_url_warns(db, config_factory, run_program, url, warns):
    """http:// is accepted for the local simulator; anywhere else it would
    send the client secret and the access token in clear: a warning."""
    cfg = config_factory({"zoho": {"api_domain": url}})
    res = check_config(run_program, cfg)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "without TLS" in ln]
    assert bool(lines) == warns, res.stderr
    if warns:
        assert "key=api_domain" in lines[0] and str(cfg) in lines[0]
