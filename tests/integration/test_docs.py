"""The docs kept honest automatically (STYLE.md §7, §11; pgbouncer's
optscan.sh): the sample config, docs/config.md, README.md, docs/errors.md
and docs/operations.md against what the code actually has — the key table
of common/cfg.c (through `zcrm_webhook --sample-config`), the long options
each program accepts, enum rc, and the /metrics names.

When one of these fails, update the doc (and for the sample config run
`make sample-config`); never the other way round."""

import re
import subprocess
from pathlib import Path

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


# ------------------------------------------- facts the prose states (issue 14)
#
# Each of these once disagreed with the code; the test reads the fact from
# the code (or the shipped file) and looks for it in the docs.

ARCHITECTURE_MD = REPO / "docs" / "architecture.md"
TESTS_README = REPO / "tests" / "README.md"
BENCH_README = REPO / "bench" / "README.md"
USER_DOCS = [README, OPERATIONS_MD, ERRORS_MD, CONFIG_MD, ARCHITECTURE_MD,
             REPO / "docs" / "security.md", TESTS_README, BENCH_README]


def read(path):
    return path.read_text(encoding="utf-8")


def common_modules():
    return {p.name for p in (REPO / "common").glob("*.c")}


def table_after(text, marker):
    """The rows (lists of cells) of the first markdown table from the first
    line containing marker on, its header and rule excluded."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if marker in ln), None)
    assert start is not None, "no line with %r" % marker
    rows, seen = [], False
    for ln in lines[start:]:
        if ln.startswith("|"):
            seen = True
            cells = [c.strip() for c in ln.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif seen:
            break
    assert len(rows) > 1, "no table after %r" % marker
    return rows[1:]


def named_files(cells):
    return set(re.findall(r"`((?:[a-z]+/)?[a-z_]+\.c)`", " ".join(cells)))


def test_readme_tour_of_common_names_every_module():
    rows = table_after(read(README), "A tour of `common/`")
    named = set()
    for row in rows:
        named |= named_files(row[:1])
    have = common_modules()
    assert named == have, "README.md's tour of common/: not named %s; no such file %s" % (
        sorted(have - named), sorted(named - have))


def floors():
    """[(floor, {file names})] of architecture.md's table, top floor first."""
    part = md_section(read(ARCHITECTURE_MD), r"^Module floors", 2)
    assert part, "docs/architecture.md has no '## Module floors' section"
    return part, [(row[0], named_files(row[1:])) for row in table_after(part, "| floor |")]


def test_architecture_floors_name_every_module():
    _, table = floors()
    named = set().union(*(files for _, files in table))
    common = {n for n in named if "/" not in n}
    have = common_modules()
    assert common == have, "architecture.md's floors: not named %s; no such file %s" % (
        sorted(have - common), sorted(common - have))
    programs = {n for n in named if "/" in n}
    missing = sorted(n for n in programs if not (REPO / n).exists())
    assert not missing, "architecture.md's floors name files that do not exist: %s" % missing
    webhook = {"webhook/" + p.name for p in (REPO / "webhook").glob("*.c")}
    assert webhook <= programs, "architecture.md's programs floor lacks %s" % sorted(webhook - programs)


def quoted_includes(module):
    """The common/ modules that module.c and module.h include."""
    out = set()
    for ext in (".c", ".h"):
        path = REPO / "common" / (module + ext)
        if path.exists():
            out |= set(re.findall(r'^#include "(\w+)\.h"', read(path), re.M))
    return {m for m in out if (REPO / "common" / (m + ".c")).exists()} - {module}


def test_module_floors_hold_as_documented():
    """A module includes only headers of its own floor or below; what the
    section calls a known exception is really in the code."""
    part, table = floors()
    level = {}
    for i, (_, files) in enumerate(table):
        for f in files:
            if "/" not in f:
                level[f[:-2]] = i          # 0 = the top floor
    upward = sorted("%s.c (%s) includes %s.h (%s)" % (m, table[level[m]][0], dep,
                                                     table[level[dep]][0])
                    for m in level for dep in quoted_includes(m)
                    if dep in level and level[dep] < level[m])
    claimed = re.findall(r"[Kk]nown exceptions?:\s*`(\w+\.c)`.*?`(\w+)\(\)`", part, re.S)
    false = ["%s calling %s()" % (f, fn) for f, fn in claimed
             if not re.search(r"\b%s\s*\(" % fn, read(REPO / "common" / f))]
    assert not false, "architecture.md claims exceptions the code does not have: %s" % false
    unlisted = [u for u in upward if not any(u.startswith(f) for f, _ in claimed)]
    assert not unlisted, "floors broken and not listed as known exceptions: %s" % unlisted


def test_nginx_keepalive_as_shipped():
    shipped = re.findall(r"^\s*keepalive\s+(\d+);", read(REPO / "nginx" / "zcrm-sync-upstream.conf"),
                         re.M)
    assert len(shipped) == 1, shipped
    wrong = ["%s: keepalive %s" % (p.name, n) for p in (README, OPERATIONS_MD)
             for n in re.findall(r"keepalive\s+(\d+)", read(p)) if n != shipped[0]]
    assert not wrong, "nginx/zcrm-sync-upstream.conf has keepalive %s; the docs say %s" % (
        shipped[0], wrong)


def test_healthz_schema_version_is_the_newest_migration():
    newest = max(int(p.name[:3]) for p in (REPO / "sql").glob("[0-9][0-9][0-9]_*.sql"))
    wrong = ["%s: %s" % (p.name, n) for p in USER_DOCS
             for n in re.findall(r'"schema_version":\s*(\d+)', read(p)) if int(n) != newest]
    assert not wrong, "healthz answers schema_version %d (sql/); the docs show %s" % (
        newest, wrong)


def test_docs_say_the_webhook_migrates():
    assert re.search(r"\bdb_migrate\s*\(", read(REPO / "webhook" / "main.c")), \
        "webhook/main.c no longer migrates: update this test and the docs"
    said = ["%s: %r" % (p.name, m.group(0)) for p in USER_DOCS
            for m in re.finditer(r"webhook\s+does\s+(?:\*\*)?not(?:\*\*)?\s+migrate", read(p), re.I)]
    assert not said, "the webhook migrates (webhook/main.c), but: %s" % said


def test_adduser_gives_the_home_pgpass_needs():
    assert "~zcrm-sync/.pgpass" in read(OPERATIONS_MD)
    homeless = ["%s: %s" % (p.name, ln.strip()) for p in (README, OPERATIONS_MD)
                for ln in read(p).splitlines()
                if re.search(r"\badduser\b", ln) and "--home" not in ln]
    assert not homeless, "adduser --system without --home gets /nonexistent: %s" % homeless


def test_schema_quoting_as_documented():
    assert re.search(r"PQescapeIdentifier\(db->conn, db->schema", read(REPO / "common" / "db.c"))
    row = next(ln for ln in read(CONFIG_MD).splitlines() if ln.startswith("| `schema` |"))
    assert "not quoted" not in row, "common/db.c quotes the schema; config.md says it is not"
    assert "quoted" in row and "lower" in row.lower(), row


def c_functions():
    """Names declared or defined at the start of a line in the C sources, and
    defined in the Python and Lua the docs talk about."""
    names = set()
    for pattern in ("common/*.[ch]", "webhook/*.[ch]", "batch/*.c", "tests/tools/*.c"):
        for p in REPO.glob(pattern):
            names |= set(re.findall(r"^[A-Za-z][^;(=]*?\b(\w+)\(", read(p), re.M))
    for p in list(REPO.glob("bench/*.py")) + [REPO / "tests" / "integration" / "harness.py"]:
        names |= set(re.findall(r"^\s*def (\w+)\(", read(p), re.M))
    for p in REPO.glob("bench/*.lua"):
        names |= set(re.findall(r"^\s*function (\w+)\(", read(p), re.M))
    return names


EXTERNAL_FUNCTIONS = {"now", "poll", "delay"}   # PostgreSQL's, the kernel's, wrk's


def test_functions_the_docs_cite_exist():
    have = c_functions() | EXTERNAL_FUNCTIONS
    cited = {(str(p.relative_to(REPO)), n)
             for p in USER_DOCS + list((REPO / "docs" / "internals").glob("*.md"))
             for n in re.findall(r"`(\w+)\(\)`", read(p))}
    missing = sorted("%s: %s()" % c for c in cited if c[1] not in have)
    assert not missing, "the docs cite functions the code does not have: %s" % missing


def test_writers_of_module_rows_outside_merge_c_are_named():
    """merge.c is the freshness rule; any other module that writes module
    rows (sets synced_at) must be named where the docs describe the rule."""
    others = sorted(p.name for p in (REPO / "common").glob("*.c")
                    if p.name != "merge.c" and re.search(r"synced_at = now\(\)", read(p)))
    row = next(r for r in table_after(read(README), "A tour of `common/`") if "`merge.c`" in r[0])
    rule = md_section(read(ARCHITECTURE_MD), r"^The freshness rule", 2)
    unnamed = ["README.md's merge.c row: %s" % f for f in others if "`%s`" % f[:-2] not in row[1]
               and "`%s`" % f not in row[1]]
    unnamed += ["architecture.md's freshness rule: %s" % f for f in others
                if "common/%s" % f not in rule]
    assert not unnamed, "modules writing module rows outside merge.c, not named: %s" % unnamed


def test_unit_tests_as_described():
    row = next(r for r in table_after(read(README), "## Source layout") if r[0] == "`tests/`")
    if re.search(r"one per module", row[1]):
        missing = sorted(m for m in common_modules()
                         if not (REPO / "tests" / "unit" / ("test_" + m)).exists())
        assert not missing, "README.md says one unit test per module; none for %s" % missing


def test_what_the_asan_pass_skips_is_said():
    mk = read(REPO / "Makefile")
    check = re.search(r"^check: .*?(?=^\S)", mk, re.M | re.S).group(0)
    asan = re.search(r"SANITIZER=1 (.*?)check-unit", check, re.S).group(1)
    all_dirs = re.search(r"^PYTEST_DIRS \?= (.*)$", mk, re.M).group(1).split()
    asan_dirs = re.search(r"PYTEST_DIRS=(\S+)", asan).group(1).split(",")
    skipped = [d for d in all_dirs if d not in asan_dirs]
    skipped += [Path(f).name for f in re.findall(r"--ignore=(\S+)", asan)]
    assert skipped, "the ASan pass skips nothing now: simplify this test and the docs"
    readme = md_section(read(README), r"^Try it", 2)
    tests_readme = md_section(read(TESTS_README), r"^Running", 2)
    unsaid = ["%s: %s" % (name, s) for name, part in (("README.md", readme),
                                                      ("tests/README.md", tests_readme))
              for s in skipped if s not in part]
    assert not unsaid, "the ASan pass of make check skips these, the docs do not say so: %s" % unsaid


def test_every_bench_target_is_documented_and_smoked():
    targets = set(re.findall(r"^(bench-[a-z-]+):", read(REPO / "Makefile"), re.M))
    assert "bench-smoke" in targets
    text = read(BENCH_README)
    missing = sorted(t for t in targets if "`make %s`" % t not in text)
    assert not missing, "bench/README.md does not list %s" % missing
    assert "bench-smoke" in md_section(read(TESTS_README), r"^Running", 2)
    check = re.search(r"^check: .*?(?=^\S)", read(REPO / "Makefile"), re.M | re.S).group(0)
    assert "bench-smoke" in check, "make check no longer runs bench-smoke"


def test_run_directory_without_the_socket_unit():
    """systemd's socket unit creates /run/zcrm-sync; without it the shipped
    tmpfiles.d line must, and operations.md must say how to apply it."""
    sock = re.search(r"^ListenStream=(\S+)$", read(REPO / "systemd" / "zcrm-webhook.socket"),
                     re.M).group(1)
    upstream = re.search(r"^\s*server unix:(\S+);", read(REPO / "nginx" / "zcrm-sync-upstream.conf"),
                         re.M).group(1)
    assert sock == upstream
    tmpfiles = REPO / "systemd" / "zcrm-sync.tmpfiles"
    assert tmpfiles.exists(), "%s is missing" % tmpfiles
    lines = [ln.split() for ln in read(tmpfiles).splitlines() if ln.strip() and not ln.startswith("#")]
    assert ["d", str(Path(sock).parent)] in [ln[:2] for ln in lines], lines
    # The default [sync] spool_dir, for the package (make deb) and make install alike.
    assert ["d", "/var/spool/zcrm-sync", "0700", "zcrm-sync", "zcrm-sync"] in \
        [ln[:5] for ln in lines], lines
    assert "zcrm-sync.tmpfiles" in read(REPO / "Makefile")
    part = md_section(read(OPERATIONS_MD), r"^systemd$", 2)
    for want in ("systemd-tmpfiles --create zcrm-sync.conf", "install -d",
                 str(Path(sock).parent)):
        assert want in part, "operations.md's systemd section lacks %r" % want
