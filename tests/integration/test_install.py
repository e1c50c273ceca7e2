"""`make install` and `make uninstall` into a DESTDIR (Makefile, README.md
"Install", docs/operations.md): every file where the docs say, the
installed programs run, an existing zcrm-sync.conf is never touched, and
uninstall removes exactly what install put."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import harness

REPO = harness.REPO

PROGRAMS = harness.INSTALLED_PROGRAMS   # installed name: build path
MY_CONFIG = "# the operator's own config: install and uninstall leave it alone\n"


def make(target, destdir, prefix, zcrm_env):
    """Run make TARGET with DESTDIR and PREFIX; the build the tests run
    against (normal or ASan) is the one installed."""
    argv = ["make", "--no-print-directory", "-C", str(REPO), target]
    # The variables given to the make that runs the tests (SANITIZER=1,
    # WERROR=1…) again, so that `install: all` finds the build up to date
    # instead of rebuilding it with other flags; not its jobserver.
    makeflags = os.environ.get("MAKEFLAGS", "")
    if " -- " in makeflags:
        argv += shlex.split(makeflags.split(" -- ", 1)[1])
    if "build/asan" in str(harness.BIN_ROOT) and "SANITIZER=1" not in argv:
        argv.append("SANITIZER=1")
    argv += ["DESTDIR=%s" % destdir, "PREFIX=%s" % prefix]
    env = harness.clean_env({"MAKEFLAGS": None, "MFLAGS": None, "MAKELEVEL": None,
                             "MAKEOVERRIDES": None})
    log = zcrm_env.dir / ("make-%s.log" % target)
    with open(log, "w") as f:
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                           timeout=harness.scaled(900))
    zcrm_env.add_log("make %s" % target, log, since=0)
    assert r.returncode == 0, "%s -> %d:\n%s" % (" ".join(argv), r.returncode, harness.tail(log))
    return log


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.is_file() or p.is_symlink())


def expected_files(prefix):
    p = prefix.strip("/")
    files = ["%s/bin/%s" % (p, name) for name in PROGRAMS]
    files += ["%s/share/man/man1/%s.1" % (p, name) for name in PROGRAMS]
    files += ["%s/share/zcrm-sync/sql/%s" % (p, f.name)
              for f in sorted((REPO / "sql").glob("[0-9]*.sql"))]
    files += ["%s/share/zcrm-sync/nginx/zcrm-sync.conf" % p,
              "%s/share/zcrm-sync/nginx/zcrm-sync-upstream.conf" % p,
              "%s/lib/systemd/system/zcrm-webhook.service" % p,
              "%s/lib/systemd/system/zcrm-webhook.socket" % p,
              "%s/lib/tmpfiles.d/zcrm-sync.conf" % p,
              "%s/share/zcrm-sync/monitoring/zcrm-sync.rules.yml" % p,
              "%s/share/zcrm-sync/monitoring/zcrm-sync.dashboard.json" % p,
              "%s/share/man/man5/zcrm-sync.conf.5" % p,
              "etc/zcrm-sync/zcrm-sync.conf.example",
              "etc/cron.d/zcrm-sync"]
    return sorted(files)


@pytest.mark.parametrize("prefix", ["/usr", "/opt/zcrm-sync"])
def test_install_then_uninstall(prefix, zcrm_env):
    dest = zcrm_env.dir / "root"
    own_config = dest / "etc" / "zcrm-sync" / "zcrm-sync.conf"
    own_config.parent.mkdir(parents=True)
    own_config.write_text(MY_CONFIG)
    bindir = prefix.rstrip("/") + "/bin"

    make("install", dest, prefix, zcrm_env)

    have = files_under(dest)
    want = expected_files(prefix) + ["etc/zcrm-sync/zcrm-sync.conf"]
    assert have == sorted(want), "installed files: only there %s, missing %s" % (
        sorted(set(have) - set(want)), sorted(set(want) - set(have)))
    assert own_config.read_text(encoding="utf-8") == MY_CONFIG, "make install changed an existing zcrm-sync.conf"

    # The programs run under their installed names.
    for name in PROGRAMS:
        exe = dest / bindir.lstrip("/") / name
        assert os.access(exe, os.X_OK), "%s is not executable" % exe
        r = subprocess.run([str(exe), "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=harness.clean_env(),
                           timeout=harness.scaled(30))
        assert r.returncode == 0 and re.search(r"\d+\.\d+\.\d+", r.stdout), (
            "%s --version -> %d %r %r" % (name, r.returncode, r.stdout, r.stderr))

    # Copies of the shipped files, the example being the generated one.
    share = dest / prefix.strip("/") / "share" / "zcrm-sync"
    for f in ("zcrm-sync.conf", "zcrm-sync-upstream.conf"):
        assert (share / "nginx" / f).read_text(encoding="utf-8") == \
            (REPO / "nginx" / f).read_text(encoding="utf-8")
    for f in (REPO / "sql").glob("[0-9]*.sql"):
        assert (share / "sql" / f.name).read_text(encoding="utf-8") == f.read_text(encoding="utf-8")
    assert (dest / "etc/zcrm-sync/zcrm-sync.conf.example").read_text(encoding="utf-8") == \
        (REPO / "etc" / "zcrm-sync.conf.example").read_text(encoding="utf-8")

    # cron.d: every program it runs is installed and on its PATH.
    cron = (dest / "etc/cron.d/zcrm-sync").read_text(encoding="utf-8")
    path = re.search(r"^PATH=(.*)$", cron, re.M).group(1).split(":")
    assert bindir in path, "cron PATH %s lacks %s" % (path, bindir)
    assert re.search(r"^ZCRM_CONFIG=/etc/zcrm-sync/zcrm-sync.conf$", cron, re.M)
    run = re.findall(r"^[^#\s][^=\n]*\s+zcrm-sync\s+(zcrm-[a-z-]+)", cron, re.M)
    assert run and set(run) <= set(PROGRAMS), "cron runs %s" % run

    # systemd: ExecStart is the installed webhook; the socket is the upstream's.
    unitdir = dest / prefix.strip("/") / "lib" / "systemd" / "system"
    service = (unitdir / "zcrm-webhook.service").read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=%s/zcrm-webhook$" % re.escape(bindir), service, re.M), service
    assert re.search(r"^User=zcrm-sync$", service, re.M)
    assert "ZCRM_CONFIG=/etc/zcrm-sync/zcrm-sync.conf" in service
    socket = (unitdir / "zcrm-webhook.socket").read_text(encoding="utf-8")
    assert re.search(r"^ListenStream=/run/zcrm-sync/webhook.sock$", socket, re.M)
    assert re.search(r"^SocketMode=0660$", socket, re.M)
    assert re.search(r"^SocketGroup=www-data$", socket, re.M)
    assert re.search(r"^\s*server unix:/run/zcrm-sync/webhook.sock;$",
                     (REPO / "nginx" / "zcrm-sync-upstream.conf").read_text(encoding="utf-8"), re.M)
    assert re.search(r"^\s*fastcgi_pass zcrm_webhook;$",
                     (REPO / "nginx" / "zcrm-sync.conf").read_text(encoding="utf-8"), re.M)

    # tmpfiles.d: the socket's directory, which nothing else creates without
    # zcrm-webhook.socket (spawn-fcgi: "bind failed"), and the spool, owned
    # by zcrm-sync.
    tmpfiles = dest / prefix.strip("/") / "lib" / "tmpfiles.d" / "zcrm-sync.conf"
    assert tmpfiles.read_text(encoding="utf-8") == \
        (REPO / "systemd" / "zcrm-sync.tmpfiles").read_text(encoding="utf-8")
    lines = [ln.split() for ln in tmpfiles.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines == [["d", "/run/zcrm-sync", "0755", "zcrm-sync", "zcrm-sync", "-"],
                     ["d", "/var/spool/zcrm-sync", "0700", "zcrm-sync", "zcrm-sync", "-"]], lines
    if os.geteuid() == 0 and shutil.which("systemd-tmpfiles"):
        # Applied to a scratch root whose passwd has the user: the directory
        # appears as the docs say.
        img = zcrm_env.dir / "tmpfiles-root"
        (img / "etc").mkdir(parents=True)
        (img / "etc" / "passwd").write_text("zcrm-sync:x:4242:4243::/var/lib/zcrm-sync:/bin/false\n")
        (img / "etc" / "group").write_text("zcrm-sync:x:4243:\n")
        r = subprocess.run(["systemd-tmpfiles", "--create", "--root=%s" % img, str(tmpfiles)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=harness.scaled(30))
        assert r.returncode == 0, r.stdout
        st = (img / "run" / "zcrm-sync").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4242, 4243, 0o755), st
        st = (img / "var" / "spool" / "zcrm-sync").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4242, 4243, 0o700), st

    # A second install over the first is fine (upgrades).
    make("install", dest, prefix, zcrm_env)
    assert files_under(dest) == sorted(want)

    make("uninstall", dest, prefix, zcrm_env)
    assert files_under(dest) == ["etc/zcrm-sync/zcrm-sync.conf"], (
        "left behind by make uninstall: %s" % files_under(dest))
    assert own_config.read_text(encoding="utf-8") == MY_CONFIG
    assert not (share).exists(), "%s not removed" % share
    # The directories install made for its files go with them when empty
    # (issue 14 item 15: lib/systemd/system and lib/systemd were left).
    lib = dest / prefix.strip("/") / "lib"
    for d in ("systemd/system", "systemd", "tmpfiles.d"):
        assert not (lib / d).exists(), "%s left behind by make uninstall" % (lib / d)
