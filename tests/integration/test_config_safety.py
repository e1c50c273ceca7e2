"""Configuration safety (issue #8):

  - module and schema names become SQL identifiers and URL path segments,
    so a name with quotes, semicolons, spaces or anything but letters,
    digits and '_' is refused at startup, with the file, line and key, by
    the webhook (--check-config) and by every batch program — before any
    connection is made;
  - an empty value cannot slip past a key's validator ("modules =");
  - a config file writable by others is refused, and so is one readable
    by others that holds a secret itself (issue 14: it used to be only a
    warning), with exit 78 and a message naming the file (and the line and
    key of the secret) and the fix; 0600/0640 files, and world-readable
    files without secrets, are accepted;
  - mistakes that used to pass (issue 14): a key set twice, an unterminated
    quote, a [notify] url that is not a URL, a relative spool_dir, a
    renew_margin as long as the channel's life: each an error naming file,
    line and key.
See docs/security.md and docs/config.md.
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


# ------------------------------------------------- file mode refusal

@pytest.mark.parametrize("mode", [0o644, 0o604])
def test_world_readable_config_with_secrets_refused(db, config_factory, run_program, mode):
    cfg = config_factory()
    os.chmod(cfg, mode)
    lines = cfg.read_text().splitlines()
    secret_line = 1 + next(i for i, ln in enumerate(lines) if ln.startswith("client_secret"))
    for prog in (WEBHOOK, "batch/status"):
        args = ["--check-config"] if prog == WEBHOOK else []
        res = run_program(prog, args, config=cfg, timeout=30)
        assert res.returncode == EX_CONFIG, (prog, res.returncode, res.stderr)
        assert res.stdout == ""
        assert "%s:%d: [zoho] client_secret" % (cfg, secret_line) in res.stderr, res.stderr
        assert "mode %04o" % mode in res.stderr and "chmod 0640" in res.stderr, res.stderr
    # Refused before the database is touched.
    assert db.value("SELECT to_regnamespace('zcrm')") is None


@pytest.mark.parametrize("with_secrets", [True, False])
def test_world_writable_config_refused(db, config_factory, run_program, with_secrets):
    drop = {} if with_secrets else {"zoho": {"client_secret": None, "refresh_token": None},
                                    "notify": {"token": None}}
    cfg = config_factory(drop)
    os.chmod(cfg, 0o666)
    res = run_program("batch/status", [], config=cfg, timeout=30)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "%s: writable by every user (mode 0666)" % cfg in res.stderr, res.stderr
    assert "chmod 0640" in res.stderr


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400])
def test_private_config_accepted(db, config_factory, run_program, mode):
    cfg = config_factory()
    os.chmod(cfg, mode)
    res = check_config(run_program, cfg)
    assert res.returncode == 0, res.stderr
    assert "level=warn" not in res.stderr, res.stderr


def test_world_readable_config_without_secrets_accepted(db, config_factory, run_program):
    # The webhook needs the channel token; status needs none of the secrets,
    # and a secret from the environment is not in the file.
    cfg = config_factory({"zoho": {"client_secret": None, "refresh_token": None},
                          "notify": {"token": None}})
    os.chmod(cfg, 0o644)
    res = run_program("batch/status", [], config=cfg, timeout=30,
                      env={"ZCRM_ZOHO_CLIENT_SECRET": "from-the-environment"})
    assert res.returncode == 0, res.stderr


# ------------------------------------ mistakes that used to pass (issue 14)

def with_extra_lines(cfg, section, extra):
    """Append raw lines to [section] of a config written by config_factory;
    returns the 1-based number of the first appended line."""
    lines = cfg.read_text().splitlines()
    at = lines.index("[%s]" % section) + 1
    while at < len(lines) and lines[at].strip() and not lines[at].startswith("["):
        at += 1
    lines[at:at] = extra
    cfg.write_text("\n".join(lines) + "\n")
    os.chmod(cfg, 0o600)
    return at + 1


def test_key_set_twice_refused(db, config_factory, run_program):
    cfg = config_factory({"webhook": {"threads": 2}})
    first = 1 + cfg.read_text().splitlines().index("threads = 2")
    line = with_extra_lines(cfg, "webhook", ["threads = 8"])
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "%s:%d: [webhook] threads: set twice (first on line %d)" % (cfg, line, first) \
        in res.stderr, res.stderr


def test_key_set_again_in_a_repeated_section_refused(db, config_factory, run_program):
    cfg = config_factory({"webhook": {"threads": 2}})
    text = cfg.read_text() + "\n[webhook]\nthreads = 8\n"
    cfg.write_text(text)
    line = len(text.splitlines())
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "%s:%d: [webhook] threads: set twice" % (cfg, line) in res.stderr, res.stderr


def test_unterminated_quote_refused(db, config_factory, run_program):
    cfg = config_factory({"notify": {"token": None}})
    line = with_extra_lines(cfg, "notify", ['token = "test-token-0123456789'])
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "%s:%d: [notify] token: unterminated quote" % (cfg, line) in res.stderr, res.stderr


@pytest.mark.parametrize("section,key,value,why", [
    ("notify", "url", "ftp://sync.example.com/zcrm/notify", "must start with https://"),
    ("notify", "url", "not a url", "must start with https://"),
    ("notify", "url", "https://", "no host"),
    ("notify", "url", "https://sync.example.com/zcrm/notify now", "space"),
    ("notify", "callback_url", "mailto:ops@example.com", "must start with https://"),
    ("sync", "spool_dir", "spool", "absolute path"),
    ("sync", "work_dir", "./work", "absolute path"),
    ("notify", "renew_margin", "86400", "not less than the 86100 s of channel life"),
])
def test_bad_value_refused_with_file_line_key(db, config_factory, run_program, section, key,
                                               value, why):
    cfg = config_factory({"%s.%s" % (section, key): None})
    line = with_extra_lines(cfg, section, ["%s = %s" % (key, value)])
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, (res.returncode, res.stderr)
    assert "%s:%d: [%s] %s" % (cfg, line, section, key) in res.stderr, res.stderr
    assert why in res.stderr, res.stderr
    assert res.stdout == ""


def test_channel_lifetime_shorter_than_the_margin_refused(db, config_factory, run_program):
    # renew_margin keeps its default (43200): the lifetime's line is named.
    cfg = config_factory()
    line = with_extra_lines(cfg, "notify", ["channel_lifetime = 3600"])
    res = check_config(run_program, cfg)
    assert res.returncode == EX_CONFIG, res.stderr
    assert "%s:%d: [notify] renew_margin: 43200 is not less than the 3300 s" % (cfg, line) \
        in res.stderr, res.stderr


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
