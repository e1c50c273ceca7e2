"""The manual pages (issue 19): written at build time from each program's
--help and the webhook's --sample-config, they render without a troff
warning and hold every option and every key, so they cannot drift from the
programs."""
import re
import subprocess

import pytest

import harness

PROGRAMS = harness.INSTALLED_PROGRAMS   # installed name: build path


def man_dir():
    # build/asan/man beside the ASan binaries; build/normal/man for the
    # normal ones (which live in the source tree).
    root = harness.BIN_ROOT
    d = root / "man" if root != harness.REPO else harness.REPO / "build" / "normal" / "man"
    assert d.is_dir(), "no manual pages in %s: run make" % d
    return d


def render(page):
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True,
                       text=True, env=dict(harness.clean_env(), LC_ALL="C.UTF-8"))
    assert r.returncode == 0 and not r.stderr, "%s: %s" % (page.name, r.stderr)
    # Undo hyphenation and the overstrike of bold/underline.
    text = re.sub(r".\x08", "", r.stdout)
    text = re.sub(r"\u2010\n\s*", "", text)
    return re.sub(r"\s+", " ", text)


def program_help(rel):
    r = subprocess.run([str(harness.BIN_ROOT / rel), "--help"], capture_output=True, text=True,
                       env=harness.clean_env())
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_page_has_every_option(name):
    text = render(man_dir() / ("%s.1" % name))
    helptext = program_help(PROGRAMS[name])
    flags = re.findall(r"^\s+(-\w, --[\w-]+|--[\w-]+)", helptext, re.M)
    assert len(flags) >= 5, helptext
    for flag in flags:
        assert flag in text, "%s(1) lacks %s" % (name, flag)
    summary = helptext.splitlines()[1].split(" (zcrm-sync")[0]
    assert summary in text
    assert "SYNOPSIS %s [OPTION]..." % name in text
    # The exit statuses, when --help has them.
    if "Exit status" in helptext:
        assert "EXIT STATUS" in text and "78 configuration" in text


def test_config_page_has_every_key():
    text = render(man_dir() / "zcrm-sync.conf.5")
    r = subprocess.run([str(harness.BIN_ROOT / "webhook/zcrm_webhook"), "--sample-config"],
                       capture_output=True, text=True, env=harness.clean_env())
    assert r.returncode == 0
    section = None
    keys = 0
    for line in r.stdout.splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            section = m.group(1)
            assert "[%s]" % section.upper() in text
        m = re.match(r"^#(\w+) = ?(.*)$", line)
        if m:
            keys += 1
            assert "%s = %s" % (m.group(1), m.group(2) or "(empty)") in text, m.group(1)
            assert "ZCRM_%s_%s" % (section.upper(), m.group(1).upper()) in text
    assert keys > 30
