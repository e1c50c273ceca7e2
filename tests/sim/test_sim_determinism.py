"""Same seed -> same data; the generator is nasty enough; make_zip matches the server."""

import os
import subprocess
import time

from simcsv import read_zip
from simhelpers import PYTHON, SIM_DIR


def test_same_seed_same_truth(make_sim):
    anchor = str(int(time.time()) // 3600 * 3600)
    a = make_sim("--modules", "Leads:80,Contacts:10", "--seed", "5", "--anchor", anchor)
    b = make_sim("--modules", "Contacts:10,Leads:80", "--seed", "5", "--anchor", anchor)
    c = make_sim("--modules", "Leads:80", "--seed", "6", "--anchor", anchor)
    for m in ("Leads", "Contacts"):
        assert a.truth(m) == b.truth(m)
    assert a.truth()["records"] != c.truth()["records"]
    assert [r["id"] for r in a.truth()["records"]] == [r["id"] for r in c.truth()["records"]]
    assert a.truth()["fields"] == c.truth()["fields"]
    ra = a.ctl("POST", "/_sim/mutate", {"count": 20, "seed": 9})
    rb = b.ctl("POST", "/_sim/mutate", {"count": 20, "seed": 9})
    assert ra["changes"] == rb["changes"]


def test_generated_values_are_nasty(make_sim):
    s = make_sim("--modules", "Leads:300")
    t = s.truth()
    recs = t["records"]
    text = [v for r in recs for k, v in r.items() if isinstance(v, str) and k != "id"]
    assert any("," in v for v in text) and any('"' in v for v in text)
    assert any("\r\n" in v for v in text) and any("\n" in v.replace("\r\n", "") for v in text)
    assert any(any(ord(ch) > 0x2E80 for ch in v) for v in text)          # CJK
    assert any(any(ord(ch) > 0xFFFF for ch in v) for v in text)          # emoji
    assert all(int(r["id"]) > 2 ** 53 for r in recs)
    optional = [f["api_name"] for f in t["fields"] if f["data_type"] in ("text", "email", "phone")
                and not f["system_mandatory"] and not f["read_only"]]
    cells = [r[f] for r in recs for f in optional]
    nulls = sum(1 for v in cells if v is None) / len(cells)
    assert 0.2 < nulls < 0.45
    pi = [v for r in recs for v in r["Product_Interest"]]
    assert any(" " in v for v in pi) and not any(";" in v for v in pi)
    assert any(r["Converted__s"] for r in recs)
    mods = sorted(r["Modified_Time"] for r in recs)
    assert len(set(mods)) < len(mods)                                     # ties on the second


def test_make_zip_matches_server_export(make_sim, tmp_path):
    anchor = str(int(time.time()) // 3600 * 3600)
    s = make_sim("--modules", "Leads:120", "--seed", "4", "--anchor", anchor, "--bulk-polls", "0",
                 "--tz-offset", "+05:30")
    r = s.api("POST", "/crm/bulk/v6/read", {"query": {"module": {"api_name": "Leads"}}})
    jid = r.json["data"][0]["details"]["id"]
    assert s.api("GET", "/crm/bulk/v6/read/%s" % jid).json["data"][0]["state"] == "COMPLETED"
    server_raw, rows = read_zip(s.api("GET", "/crm/bulk/v6/read/%s/result" % jid).body, jid)
    out = tmp_path / "page.zip"
    subprocess.run([PYTHON, os.path.join(SIM_DIR, "make_zip.py"), "--module", "Leads", "--records", "120",
                    "--seed", "4", "--anchor", anchor, "--tz-offset", "+05:30", "--job-id", jid,
                    "-o", str(out), "-q"], check=True)
    cli_raw, _ = read_zip(out.read_bytes(), jid)
    assert cli_raw == server_raw and len(rows) == 121
