"""The docs kept honest automatically (STYLE.md §7, §11; pgbouncer's
optscan.sh): the sample config, docs/config.md, README.md, docs/errors.md
and docs/operations.md against what the code actually has — the key table
of common/cfg.c (through `zcrm_webhook --sample-config`), the long options
each program accepts, enum rc, and the /metrics names.

When one of these fails, update the doc (and for the sample config run
`make sample-config`); never the other way round."""

import re
import subprocess

import pytest

import harness

REPO = harness.REPO
WEBHOOK = harness.BIN_ROOT / "webhook" / "zcrm_webhook"
EXAMPLE = REPO / "etc" / "zcrm-sync.conf.example"
CONFIG_MD = REPO / "docs" / "config.md"
README = REPO / "README.md"
ERRORS_MD = REPO / "docs" / "errors.md"
OPERATIONS_MD = REPO / "docs" / "operations.md"

# program: (binary under ZCRM_BIN_ROOT, its main source, installed name)
PROGRAMS = {
    "zcrm_webhook": ("webhook/zcrm_webhook", "webhook/main.c", "zcrm-webhook"),
    "initial_sync": ("batch/initial_sync", "batch/initial_sync.c", "zcrm-initial-sync"),
    "incremental_sync": ("batch/incremental_sync", "batch/incremental_sync.c",
                         "zcrm-incremental-sync"),
    "renew_channel": ("batch/renew_channel", "batch/renew_channel.c", "zcrm-renew-channel"),
    "reconcile": ("batch/reconcile", "batch/reconcile.c", "zcrm-reconcile"),
    "status": ("batch/status", "batch/status.c", "zcrm-status"),
}


def run(argv, timeout=30):
    return subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=harness.clean_env(),
                          timeout=harness.scaled(timeout), text=True)


def binary(path):
    exe = harness.BIN_ROOT / path
    if not exe.exists():
        pytest.fail("%s is not built (run make, or set ZCRM_BIN_ROOT)" % exe, pytrace=False)
    return exe


# ------------------------------------------------------------- config keys

def sample_config():
    r = run([binary("webhook/zcrm_webhook"), "--sample-config"])
    assert r.returncode == 0, "zcrm_webhook --sample-config -> %d: %s" % (r.returncode, r.stderr)
    assert r.stderr == "", "--sample-config wrote to stderr: %s" % r.stderr
    return r.stdout


def parse_sample(text):
    """[(section, key, default)] from the sample config's `#key = default`
    lines, in table order."""
    keys, section = [], None
    for line in text.splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^#(\w+) = ?(.*)$", line)
        if m:
            assert section, "key %s before any section" % m.group(1)
            keys.append((section, m.group(1), m.group(2)))
    return keys


@pytest.fixture(scope="module")
def table():
    keys = parse_sample(sample_config())
    assert len(keys) >= 20, "parsed only %d keys from --sample-config" % len(keys)
    return keys


def env_name(section, key):
    return "ZCRM_%s_%s" % (section.upper(), key.upper())


def md_section(text, heading_re, level):
    """The text from the first heading (of that many #) matching heading_re
    up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        m = re.match(r"^(#+) (.*)$", line)
        if not m:
            continue
        if start is None:
            if len(m.group(1)) == level and re.search(heading_re, m.group(2)):
                start = i
        elif len(m.group(1)) <= level:
            return "\n".join(lines[start:i])
    return "\n".join(lines[start:]) if start is not None else None


def test_example_config_is_the_generated_one():
    assert EXAMPLE.exists(), "%s is missing: run make sample-config" % EXAMPLE
    assert EXAMPLE.read_text(encoding="utf-8") == sample_config(), (
        "%s differs from `zcrm_webhook --sample-config` (common/cfg.c's key table): "
        "run make sample-config" % EXAMPLE)


def test_sample_config_has_every_key_of_the_table(table):
    """The parse above sees what common/cfg.c declares (the harness reads
    the same table to check test overrides)."""
    ours = {(s, k) for s, k, _ in table}
    declared = {(s, k) for s, keys in harness.CFG_TABLE.items() for k in keys}
    assert declared, "could not read the key table from common/cfg.c"
    assert ours == declared, "sample config vs common/cfg.c: only in sample %s, only in cfg.c %s" % (
        sorted(ours - declared), sorted(declared - ours))


def test_config_md_documents_every_key(table):
    text = CONFIG_MD.read_text(encoding="utf-8")
    missing = []
    for section, key, default in table:
        part = md_section(text, r"^`?\[%s\]`?" % section, 2)
        if part is None:
            missing.append("[%s]: no '## [%s]' section" % (section, section))
            continue
        row = next((line for line in part.splitlines()
                    if line.startswith("| `%s` |" % key)), None)
        if row is None:
            missing.append("[%s] %s: no table row starting | `%s` |" % (section, key, key))
            continue
        want_default = "`%s`" % default if default else "(empty)"
        if want_default not in row:
            missing.append("[%s] %s: default %s not in its row" % (section, key, want_default))
        if "`%s`" % env_name(section, key) not in row:
            missing.append("[%s] %s: env override `%s` not in its row"
                           % (section, key, env_name(section, key)))
    assert not missing, "docs/config.md is out of step with common/cfg.c:\n  " + "\n  ".join(missing)


def test_config_md_has_no_stale_keys(table):
    known = {(s, k) for s, k, _ in table}
    stale = []
    text = CONFIG_MD.read_text(encoding="utf-8")
    for section in sorted({s for s, _, _ in table}):
        part = md_section(text, r"^`?\[%s\]`?" % section, 2) or ""
        for m in re.finditer(r"^\| `(\w+)` \|", part, re.M):
            if (section, m.group(1)) not in known:
                stale.append("[%s] %s" % (section, m.group(1)))
    assert not stale, "docs/config.md documents keys the code does not have: %s" % stale


def test_readme_config_section_names_every_key(table):
    part = md_section(README.read_text(encoding="utf-8"), r"^Configur", 2)
    assert part, "README.md has no '## Configure…' section"
    missing = ["[%s] %s" % (s, k) for s, k, _ in table
               if not re.search(r"`%s`" % re.escape(k), part)]
    assert not missing, "README.md's config section does not name: %s" % missing
    assert "docs/config.md" in part and "etc/zcrm-sync.conf.example" in part


# ---------------------------------------------------------------- options

def accepted_long_options(prog):
    """Long options the program's getopt table accepts, read from the source."""
    _, src, _ = PROGRAMS[prog]
    text = (REPO / src).read_text(encoding="utf-8")
    if prog == "zcrm_webhook":
        block = re.search(r"struct option opts\[\] = \{(.*?)\};", text, re.S)
        assert block, "no option table in %s" % src
        return set(re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument',
                              block.group(1)))
    common = set(re.findall(r'\(struct option\)\{"([a-z][a-z0-9-]*)"',
                            (REPO / "common" / "batchrt.c").read_text(encoding="utf-8")))
    assert {"config", "module", "help", "version"} <= common, common
    own = set(re.findall(r'^\s*\{"([a-z][a-z0-9-]*)",\s*[01],', text, re.M))
    return common | own


def help_text(prog):
    r = run([binary(PROGRAMS[prog][0]), "--help"])
    assert r.returncode == 0, "%s --help -> %d: %s" % (prog, r.returncode, r.stderr)
    return r.stdout


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_help_lists_every_long_option(prog):
    text = help_text(prog)
    opts = accepted_long_options(prog)
    missing = sorted(o for o in opts if not re.search(r"--%s\b" % re.escape(o), text))
    assert not missing, "%s accepts but --help does not list: %s" % (prog, missing)


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_every_option_in_help_is_accepted(prog):
    """`PROG --opt [ARG] --help` exits 0 for each option --help shows, so
    the help text never advertises an option getopt refuses."""
    exe = binary(PROGRAMS[prog][0])
    listed = re.findall(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)(?: ([A-Z]+))?", help_text(prog), re.M)
    assert listed, "no options found in %s --help" % prog
    refused = []
    for opt, arg in listed:
        argv = [exe, "--" + opt] + (["1" if arg == "N" else "x"] if arg else []) + ["--help"]
        r = run(argv)
        if r.returncode != 0:
            refused.append("--%s -> %d %s" % (opt, r.returncode, r.stderr.strip()[:100]))
    assert not refused, "%s refuses options its --help lists: %s" % (prog, refused)


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_operations_md_documents_every_option(prog):
    installed = PROGRAMS[prog][2]
    part = md_section(OPERATIONS_MD.read_text(encoding="utf-8"), r"`%s`" % re.escape(installed), 3)
    assert part, "docs/operations.md has no '### `%s`' section" % installed
    missing = sorted(o for o in accepted_long_options(prog)
                     if not re.search(r"`--%s\b" % re.escape(o), part))
    assert not missing, "docs/operations.md's %s section lacks: %s" % (installed, missing)


# ------------------------------------------------------- errors, metrics

def test_errors_md_has_every_rc_value():
    enum = re.search(r"enum rc \{(.*?)\};", (REPO / "common" / "rc.h").read_text(encoding="utf-8"), re.S)
    names = [n for n in re.findall(r"\b(RC_[A-Z_]+)\b", enum.group(1)) if n != "RC__COUNT"]
    assert len(names) > 10
    text = ERRORS_MD.read_text(encoding="utf-8")
    missing = [n for n in names if "`%s`" % n not in text]
    assert not missing, "docs/errors.md lacks: %s" % missing


def test_operations_md_has_every_metric():
    names = set(re.findall(r"\b(zcrm_webhook_[a-z_]+)", (REPO / "common" / "metrics.c").read_text(encoding="utf-8")))
    names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert "zcrm_webhook_requests_total" in names
    text = OPERATIONS_MD.read_text(encoding="utf-8")
    missing = sorted(n for n in names if not re.search(r"`%s[`{]" % re.escape(n), text))
    assert not missing, "docs/operations.md (/metrics) lacks: %s" % missing
