"""Command line: --help, --port-file, SIGTERM."""

import os
import signal
import subprocess

from simhelpers import PYTHON, SIM, http


def test_help():
    out = subprocess.run([PYTHON, SIM, "--help"], capture_output=True, text=True, check=True).stdout
    for opt in ("--port", "--port-file", "--seed", "--modules", "--page-size", "--client-id", "--client-secret",
                "--refresh-token", "--token-lifetime", "--bulk-polls", "--tz-offset", "--log"):
        assert opt in out


def test_port_file_log_and_sigterm(tmp_path):
    pf = tmp_path / "sim.port"
    log = tmp_path / "req.log"
    p = subprocess.Popen([PYTHON, SIM, "--port-file", str(pf), "--modules", "Leads:3", "--log", str(log),
                          "--tz-offset", "-08:00"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        port = int(pf.read_text())
        assert line == "zoho_sim listening on http://127.0.0.1:%d" % port
        assert http("GET", "http://127.0.0.1:%d/_sim/health" % port).json["ok"] is True
        r = http("GET", "http://127.0.0.1:%d/crm/v6/Leads?fields=Email" % port)
        assert r.status == 401
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
        p.stderr.close()
    lines = log.read_text().splitlines()
    assert any('"/crm/v6/Leads"' in x and '"status": 401' in x for x in lines)
    assert not [f for f in os.listdir(tmp_path) if ".tmp." in f]
