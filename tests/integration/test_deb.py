"""`make deb` (issue 19): the Debian package builds from the tree, holds
what `make install` installs (programs, units, tmpfiles.d, cron, manual
pages, monitoring) with /etc files as conffiles, and — when the tests run as
root, as CI does — installs, creates the zcrm-sync user and its spool,
removes cleanly (conffiles kept) and purges cleanly."""
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

import harness

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = harness.INSTALLED_PROGRAMS   # installed name: build path


def version():
    for line in (REPO / "Makefile").read_text(encoding="utf-8").splitlines():
        if line.startswith("VERSION"):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no VERSION in the Makefile")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    for tool in ("dpkg-buildpackage", "dh"):
        assert shutil.which(tool), "%s is missing: scripts/install-deps.sh installs it" % tool
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "deb", "DEB_DIR=%s" % out],
                       capture_output=True, text=True, env=harness.clean_env(),
                       timeout=harness.scaled(900))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    path = out / ("zcrm-sync_%s_%s.deb" % (version(), subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()))
    assert path.exists(), sorted(p.name for p in out.iterdir())
    return path


def dpkg_deb(*args):
    r = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_package_holds_what_make_install_installs(deb):
    files = {line.split()[-1].lstrip(".") for line in dpkg_deb("-c", str(deb)).splitlines()
             if not line.startswith("d")}
    want = {"/usr/bin/%s" % p for p in PROGRAMS}
    want |= {"/usr/share/man/man1/%s.1.gz" % p for p in PROGRAMS}
    want |= {"/usr/share/man/man5/zcrm-sync.conf.5.gz",
             "/lib/systemd/system/zcrm-webhook.service", "/lib/systemd/system/zcrm-webhook.socket",
             "/usr/lib/tmpfiles.d/zcrm-sync.conf", "/etc/cron.d/zcrm-sync",
             "/etc/zcrm-sync/zcrm-sync.conf.example",
             "/usr/share/zcrm-sync/nginx/zcrm-sync.conf",
             "/usr/share/zcrm-sync/monitoring/zcrm-sync.rules.yml",
             }
    want |= {"/usr/share/zcrm-sync/sql/%s" % f.name for f in (REPO / "sql").glob("[0-9]*.sql")}
    assert want <= files, "missing from the package: %s" % sorted(want - files)
    assert not any(f.startswith("/usr/local") for f in files)
    for doc in ("README.md", "NEWS.md", "operations.md", "config.md"):   # compressed when large
        assert {"/usr/share/doc/zcrm-sync/" + doc, "/usr/share/doc/zcrm-sync/%s.gz" % doc} & files, doc
    # The units run the packaged webhook.
    ctl = Path(str(deb) + ".ctl")
    dpkg_deb("-e", str(deb), str(ctl))
    conffiles = set((ctl / "conffiles").read_text().split())
    assert conffiles == {"/etc/cron.d/zcrm-sync", "/etc/zcrm-sync/zcrm-sync.conf.example"}
    info = dpkg_deb("-f", str(deb), "Depends", "Version", "Package")
    for lib in ("libcurl4", "libpq5", "libjson-c5", "libfcgi0ldbl", "zlib1g", "adduser"):
        assert lib in info, info
    assert "Version: %s" % version() in info
    assert "adduser --system" in (ctl / "postinst").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: root only (CI runs as root)")
def test_install_remove_purge(deb):
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "zcrm-sync"],
                               capture_output=True, text=True).stdout
    if "installed" in installed and "not-installed" not in installed:
        pytest.skip("a zcrm-sync package is installed on this machine already: left alone")

    def dpkg(*args):
        r = subprocess.run(["dpkg", *args], capture_output=True, text=True,
                           env=dict(harness.clean_env(), DEBIAN_FRONTEND="noninteractive"),
                           timeout=harness.scaled(300))
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    try:
        dpkg("-i", str(deb))
        user = pwd.getpwnam("zcrm-sync")
        spool = os.stat("/var/spool/zcrm-sync")
        assert spool.st_uid == user.pw_uid and oct(spool.st_mode & 0o777) == "0o700"
        r = subprocess.run(["/usr/bin/zcrm-status", "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and version() in r.stdout
        unit = Path("/lib/systemd/system/zcrm-webhook.service").read_text()
        assert "ExecStart=/usr/bin/zcrm-webhook" in unit
        dpkg("-r", "zcrm-sync")
        assert not Path("/usr/bin/zcrm-webhook").exists()
        assert Path("/etc/cron.d/zcrm-sync").exists(), "remove must keep the conffiles"
        dpkg("-P", "zcrm-sync")
        assert not Path("/etc/cron.d/zcrm-sync").exists()
        assert not Path("/var/spool/zcrm-sync").exists()
    finally:
        subprocess.run(["dpkg", "-P", "zcrm-sync"], capture_output=True)
