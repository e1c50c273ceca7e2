"""Hostile or broken answers from "Zoho" (issue #8): the batch programs and
the Zoho client refuse them with a clear error and leave nothing half
applied. Answers come from the simulator's fault modes (a bulk job that
never completes, a failed job, a fault rule with a custom or raw body) or
are crafted here and fed to tools/load_page, which merges one bulk page the
way initial_sync does.

  - a bulk job that never completes: bounded by [sync] bulk_wait, exit 75;
  - ZIPs with two entries, a path-like entry name, a decompression bomb,
    sizes that lie: refused before anything reaches the module table;
  - a CSV record longer than BULKLOAD_MAX_ROW (64 MiB): refused before
    PostgreSQL's COPY buffers it (COPY's own limit is 1 GB);
  - JSON answers of the wrong shape on every endpoint: a clear error that
    names what was wrong, nothing written.
See docs/security.md.
"""

import base64
import io
import json
import signal
import struct
import time
import zipfile
import zlib

import pytest

from harness import finish, REPO, scaled, start_program, wait_until

FIELDS = REPO / "tests" / "data" / "fields" / "leads.json"
EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 65, 69, 75
MIB = 1024 * 1024
# A page carries every field of the metadata (a page lacking one is not
# merged: its ids are fetched by id instead, issue 14 item 2); the tests vary
# the last one, Description.
OTHERS = [f["api_name"].encode() for f in json.loads(FIELDS.read_text(encoding="utf-8"))["fields"]
          if f["api_name"] not in ("id", "Modified_Time", "Last_Name", "Description")]
HEADER = b"id,Modified_Time,Last_Name," + b"".join(n + b"," for n in OTHERS) + b"Description\n"
PAD = b"," * len(OTHERS)    # the other fields, empty


# ------------------------------------------------------------ helpers

def leads_table(run_program, cfg):
    for args in (["--migrate-only"], ["--module", "Leads", "--fields", FIELDS]):
        res = run_program("tools/load_fields", args, config=cfg)
        assert res.returncode == 0, res.stderr


def leads(db):
    return db.value("SELECT count(*) FROM zcrm.leads")


def row(i, last=b"Smith", desc=b"x"):
    return b'%d,2024-05-01T10:00:00+00:00,%s,%s%s\n' % (5725767000000000000 + i, last, PAD, desc)


def make_zip(entries, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, (2024, 5, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


def deflated(name):
    info = zipfile.ZipInfo(name, (2024, 5, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def bomb(size, name="111.csv"):
    """A ZIP whose one entry inflates to size bytes: a CSV header, one row,
    then zeros (about 1000:1)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(deflated(name), "w", force_zip64=True) as f:
            f.write(HEADER + row(1))
            chunk = b"\0" * MIB
            left = size
            while left > 0:
                f.write(chunk[:min(left, MIB)])
                left -= MIB
    return buf.getvalue()


def lie_about_size(data, declared):
    """Rewrite the uncompressed size in the local and central headers of a
    one-entry (non-ZIP64) ZIP."""
    b = bytearray(data)
    lo = b.find(b"PK\x03\x04")
    struct.pack_into("<I", b, lo + 22, declared)
    cd = b.find(b"PK\x01\x02")
    struct.pack_into("<I", b, cd + 24, declared)
    return bytes(b)


def load_page(run_program, cfg, path, kind="--zip"):
    return run_program("tools/load_page", ["--module", "Leads", kind, path], config=cfg,
                       timeout=120)


def refusal(res):
    """The error line of a refused page."""
    lines = [ln for ln in res.stderr.splitlines() if "level=error" in ln]
    assert lines, res.stderr[-2000:]
    return lines[-1]


@pytest.fixture
def page_cfg(db, run_program, config_factory):
    """A config and a migrated database with the leads table, for load_page."""
    cfg = config_factory()
    leads_table(run_program, cfg)
    return cfg


# ------------------------------------------------------ bulk job waits

def test_bulk_job_that_never_completes_is_bounded(db, sim_factory, config_factory, run_program):
    sim = sim_factory("-q", "--modules", "Leads:50", "--bulk-polls", "1000000",
                      "--bulk-step-ms", "0")
    cfg = config_factory({"sync": {"bulk_wait": 5}}, sim=sim)
    t0 = time.monotonic()
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg, timeout=120)
    took = time.monotonic() - t0
    assert res.returncode == EX_TEMPFAIL, res.stderr[-2000:]
    err = refusal(res)
    assert "not complete after 5 s" in err and "bulk_wait" in err, err
    # Polls back off (1, 2, 4 s...): the wait ends within one step of 5 s.
    assert took < scaled(5 + 30), took
    polls = [r for r in sim.control("GET", "/requests?since=0")["requests"]
             if r["method"] == "GET" and r["path"].startswith("/crm/bulk/v6/read/")]
    assert 2 <= len(polls) <= 8, len(polls)
    assert leads(db) == 0
    assert db.value("SELECT outcome FROM zcrm.runs") == "failed"


def test_bulk_job_failure_is_a_clear_error(db, sim_factory, config_factory, run_program):
    sim = sim_factory("-q", "--modules", "Leads:50", "--bulk-polls", "1", "--bulk-step-ms", "0")
    sim.control("POST", "/faults", {"bulk": {"fail": 1}})
    cfg = config_factory(None, sim=sim)
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg, timeout=120)
    assert res.returncode == EX_UNAVAILABLE, res.stderr[-2000:]
    assert "failed" in refusal(res), refusal(res)
    assert leads(db) == 0


# ------------------------------------------------------ crafted ZIPs

GOOD_CSV = HEADER + row(1) + row(2)

CRAFTED = [
    ("two_entries", lambda: make_zip([("111.csv", GOOD_CSV), ("112.csv", GOOD_CSV)]),
     EX_DATAERR, "entr"),
    ("parent_dir", lambda: make_zip([("../../../../tmp/zcrm-evil.csv", GOOD_CSV)]),
     EX_DATAERR, "name"),
    ("absolute", lambda: make_zip([("/tmp/zcrm-evil.csv", GOOD_CSV)]), EX_DATAERR, "name"),
    ("subdir", lambda: make_zip([("dir/111.csv", GOOD_CSV)]), EX_DATAERR, "name"),
    ("backslash", lambda: make_zip([("..\\..\\111.csv", GOOD_CSV)]), EX_DATAERR, "name"),
    ("not_csv", lambda: make_zip([("111.sh", GOOD_CSV)]), EX_DATAERR, "name"),
    ("no_entries", lambda: make_zip([]), EX_DATAERR, "entr"),
    ("ratio_bomb", lambda: bomb(300 * MIB), EX_DATAERR, "ratio"),
    ("size_lie", lambda: lie_about_size(make_zip([("111.csv", GOOD_CSV + b"\0" * (4 * MIB))]),
                                        len(GOOD_CSV)), EX_DATAERR, "size"),
    ("not_a_zip", lambda: b'{"data":[{"status":"error"}]}', EX_DATAERR, "ZIP"),
    ("empty", lambda: b"", EX_DATAERR, "ZIP"),
    ("truncated", lambda: make_zip([("111.csv", GOOD_CSV * 100)])[:-30], EX_DATAERR, "ZIP"),
]


@pytest.mark.parametrize("name,build,code,word", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_zip_refused(db, page_cfg, run_program, zcrm_env, name, build, code, word):
    path = zcrm_env.dir / ("%s.zip" % name)
    path.write_bytes(build())
    res = load_page(run_program, page_cfg, path)
    assert res.returncode == code, (res.returncode, res.stderr[-2000:])
    err = refusal(res)
    assert "page not loaded" in err and word.lower() in err.lower(), err
    assert leads(db) == 0
    # The entry name is never used as a path.
    assert not (zcrm_env.dir / "zcrm-evil.csv").exists()
    assert not __import__("os").path.exists("/tmp/zcrm-evil.csv")


def test_good_zip_loads(db, page_cfg, run_program, zcrm_env):
    """The control for the above: the same page, well formed, loads."""
    path = zcrm_env.dir / "good.zip"
    path.write_bytes(make_zip([("111.csv", GOOD_CSV)]))
    res = load_page(run_program, page_cfg, path)
    assert res.returncode == 0, res.stderr
    assert leads(db) == 2


@pytest.mark.parametrize("name", ["two_entries", "parent_dir", "ratio_bomb_50m"])
def test_crafted_zip_through_initial_sync(db, sim_factory, config_factory, zcrm_env, name):
    """The simulator serves the crafted ZIP as the job's result: the run
    fails with the reason, and the module table stays empty."""
    build = {c[0]: c[1] for c in CRAFTED}.get(name) or (lambda: bomb(50 * MIB))
    sim = sim_factory("-q", "--modules", "Leads:20", "--bulk-polls", "3", "--bulk-step-ms", "0")
    cfg = config_factory(None, sim=sim)
    proc = start_program(zcrm_env, "batch/initial_sync", cfg, ["--no-channel"])
    job = {}

    def created():
        for j in sim.control("GET", "/jobs")["jobs"]:
            job["id"] = j["id"]
        return bool(job)

    wait_until(created, scaled(60), interval=0.02, what="bulk job", proc=proc,
               log=proc.stderr_path)
    sim.control("POST", "/faults", {"rules": [{
        "match": "/crm/bulk/v6/read/%s/result" % job["id"], "method": "GET", "status": 200,
        "body_b64": base64.b64encode(build()).decode(), "content_type": "application/x-download",
        "count": -1}]})
    rc = finish(zcrm_env, proc)
    text = proc.stderr_text()
    assert rc == EX_DATAERR, (rc, text[-2000:])
    errors = [ln for ln in text.splitlines() if "level=error" in ln]
    assert errors and any(w in " ".join(errors).lower() for w in ("entr", "name", "ratio")), errors
    assert leads(db) == 0
    assert db.value("SELECT outcome FROM zcrm.runs") == "failed"


# ---------------------------------------------------- CSV record size

def test_csv_record_over_the_row_limit_refused(db, page_cfg, run_program, zcrm_env):
    """One record of 65 MiB (quoted, with line breaks inside): refused with
    the record's number before COPY buffers it; nothing applied."""
    big = b'"' + (b"a" * 1023 + b"\n") * (65 * 1024) + b'"'
    path = zcrm_env.dir / "long.csv"
    path.write_bytes(HEADER + row(1) + row(2, desc=big) + row(3))
    res = load_page(run_program, page_cfg, path, kind="--csv")
    assert res.returncode == EX_DATAERR, res.stderr[-2000:]
    err = refusal(res)
    assert "CSV record 2 is longer than 64 MiB" in err, err
    assert leads(db) == 0


def test_csv_record_over_the_row_limit_in_a_zip(db, run_program, config_factory, zcrm_env):
    # The ratio guard would stop this first; with it at its maximum the
    # row guard still does.
    cfg = config_factory({"sync": {"max_ratio": 100000}})
    leads_table(run_program, cfg)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(deflated("111.csv"), "w", force_zip64=True) as f:
            f.write(HEADER + row(1) + b"5725767000000000099,2024-05-01T10:00:00+00:00,x," + PAD)
            for _ in range(65):
                f.write(b"b" * MIB)
            f.write(b"\n")
    path = zcrm_env.dir / "long.zip"
    path.write_bytes(buf.getvalue())
    res = load_page(run_program, cfg, path)
    assert res.returncode == EX_DATAERR, res.stderr[-2000:]
    assert "longer than 64 MiB" in refusal(res), refusal(res)
    assert leads(db) == 0


def test_long_records_under_the_limit_load(db, page_cfg, run_program, zcrm_env):
    """Three records of 30 MiB (90 MiB in all), quoted, with doubled quotes
    and line breaks: the limit is per record, and quoting is followed."""
    unit = b'ab""c\r\nd,e' + b"f" * 1014      # 1024 bytes as written
    val = b'"' + unit * (30 * 1024) + b'"'
    path = zcrm_env.dir / "long_ok.csv"
    path.write_bytes(HEADER + row(1, desc=val) + row(2, desc=val) + row(3, desc=val))
    res = load_page(run_program, page_cfg, path, kind="--csv")
    assert res.returncode == 0, res.stderr[-2000:]
    assert leads(db) == 3
    expect = (len(unit) - 1) * 30 * 1024     # a doubled quote is one character
    assert db.value("SELECT min(octet_length(description)) FROM zcrm.leads") == expect
    assert db.value("SELECT max(octet_length(description)) FROM zcrm.leads") == expect


# ------------------------------------------------ JSON of the wrong shape

def b64(raw):
    return base64.b64encode(raw).decode()


WRONG_SHAPES = [
    # (name, path prefix, zoho_call args, rule body keys, words in the error)
    ("fields_string", "/crm/v6/settings/fields", ["fields", "Leads"],
     {"body": {"fields": "nope"}}, ["fields"]),
    ("fields_item_types", "/crm/v6/settings/fields", ["fields", "Leads"],
     {"body": {"fields": [{"api_name": 5, "data_type": ["text"]}]}}, ["api_name"]),
    ("fields_array", "/crm/v6/settings/fields", ["fields", "Leads"], {"body": [1, 2]}, []),
    ("fields_broken_json", "/crm/v6/settings/fields", ["fields", "Leads"],
     {"body_b64": b64(b'{"fields": [{"api_name": "Email"'), "content_type": "application/json"},
     ["JSON"]),
    ("fields_deep", "/crm/v6/settings/fields", ["fields", "Leads"],
     {"body_b64": b64(b'{"fields": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
      "content_type": "application/json"}, ["JSON"]),
    ("count_string", "/crm/v6/Leads/actions/count", ["count", "Leads"],
     {"body": {"count": "many"}}, ["count"]),
    ("count_float", "/crm/v6/Leads/actions/count", ["count", "Leads"],
     {"body": {"count": 1.5}}, ["count"]),
    ("records_data_object", "/crm/v6/Leads", ["records", "Leads", "5725767000000007919"],
     {"body": {"data": {"id": "1"}}}, ["data"]),
    ("records_id_not_digits", "/crm/v6/Leads", ["records", "Leads", "5725767000000007919"],
     {"body": {"data": [{"id": "12ab", "Modified_Time": "2024-05-01T10:00:00+00:00"}]}}, ["id"]),
    ("deleted_no_data", "/crm/v6/Leads/deleted", ["deleted", "Leads"],
     {"body": {"info": {"more_records": False}}}, ["data"]),
    ("records_no_data", "/crm/v6/Leads", ["records", "Leads", "5725767000000007919"],
     {"body": {"info": {}}}, ["data"]),
    ("bulk_create_shape", "/crm/bulk/v6/read", ["bulk", "Leads", "--poll-ms", "100"],
     {"body": {"data": "queued"}, "method": "POST"}, ["data"]),
    ("token_number", "/oauth/v2/token", ["count", "Leads"],
     {"body": {"access_token": 12345, "expires_in": 3600}}, ["access_token"]),
    ("token_bad_domain", "/oauth/v2/token", ["count", "Leads"],
     {"body": {"access_token": "x" * 40, "api_domain": "ftp://evil.example", "expires_in": 3600}},
     ["api_domain"]),
]


@pytest.mark.parametrize("name,path,args,rule,words", WRONG_SHAPES,
                         ids=[w[0] for w in WRONG_SHAPES])
def test_wrong_json_shape_is_a_clear_error(db, sim_factory, config_factory, run_program,
                                           name, path, args, rule, words):
    sim = sim_factory("-q", "--modules", "Leads:20", "--bulk-polls", "0")
    cfg = config_factory({"zoho": {"max_retries": 1}}, sim=sim)
    r = {"match": path, "status": 200, "count": -1}
    r.update(rule)
    sim.control("POST", "/faults", {"rules": [r]})
    res = run_program("tools/zoho_call", args, config=cfg, timeout=60)
    assert res.returncode in (EX_DATAERR, EX_UNAVAILABLE, 77), (res.returncode, res.stderr[-2000:])
    assert res.stdout == ""
    err = refusal(res)
    for w in words:
        assert w in err, (w, err)
    assert len(err) < 2000, "the error line quotes too much of the answer"


def test_fields_of_the_wrong_shape_stop_initial_sync(db, sim_factory, config_factory,
                                                     run_program):
    sim = sim_factory("-q", "--modules", "Leads:20", "--bulk-polls", "0")
    sim.control("POST", "/faults", {"rules": [{"match": "/crm/v6/settings/fields", "status": 200,
                                               "body": {"fields": "nope"}, "count": -1}]})
    cfg = config_factory(None, sim=sim)
    res = run_program("batch/initial_sync", ["--no-channel"], config=cfg, timeout=60)
    assert res.returncode in (EX_DATAERR, EX_UNAVAILABLE), res.stderr[-2000:]
    assert "fields" in refusal(res), refusal(res)
    assert db.value("SELECT to_regclass('zcrm.leads')") is None
    reqs = sim.control("GET", "/requests?since=0")["requests"]
    assert not [r for r in reqs if r["path"].startswith("/crm/bulk/")], "exported anyway"
