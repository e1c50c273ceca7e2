"""--check-credentials (issue 14 item 12): does the Zoho client work?

`--check-config` says whether the file parses; it cannot say whether
Zoho accepts the client id, the secret and the refresh token. The check
refreshes the shared token through the path every process uses (the
oauth_token row, under its lock: the new token is stored for all) whatever
the stored token's age — a stored token proves nothing about a revoked
refresh token — then makes one cheap call with it (the module's record
count). It prints one line; exit 0, 77 (refused), 75 (unreachable).
Offered by zcrm-webhook and, through common/batchrt.c, by every batch
program.
"""

import pytest

from harness import BIN_ROOT, NOWHERE

EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 75, 77, 78
WEBHOOK = BIN_ROOT / "webhook" / "zcrm_webhook"


def check(run_program, cfg, prog=WEBHOOK, args=()):
    return run_program(prog, ["--check-credentials", *args], config=cfg, timeout=60)


def token_row(db):
    rows = db.query("SELECT access_token, refreshes FROM zcrm.oauth_token")
    return rows[0] if rows else (None, 0)


def test_good_credentials(db, config_factory, run_program, sim_factory):
    sim = sim_factory("-q", "--modules", "Leads:7,Contacts:3")
    cfg = config_factory({"sync": {"modules": "Leads, Contacts"}}, sim=sim)
    res = check(run_program, cfg)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    assert res.stdout.startswith("credentials ok: "), res.stdout
    assert "Leads has 7 records" in res.stdout, res.stdout
    first, n = token_row(db)
    assert n == 1 and first
    # A second check refreshes again (the stored token is still good, but it
    # says nothing about the refresh token) and stores the new one.
    res = check(run_program, cfg, prog="batch/status", args=["--module", "Contacts"])
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    assert "Contacts has 3 records" in res.stdout, res.stdout
    second, n = token_row(db)
    assert n == 2 and second != first
    # The secrets and the token are in no output.
    for text in (res.stdout, res.stderr):
        assert "sim-client-secret" not in text and "sim-refresh-token" not in text
        assert second not in text


def test_revoked_refresh_token(db, config_factory, run_program, sim_factory):
    """A deployment whose refresh token was revoked while its stored access
    token still works: the check says so, and leaves the stored token alone."""
    sim = sim_factory("-q", "--modules", "Leads:5")
    cfg = config_factory(sim=sim)
    assert check(run_program, cfg).returncode == 0
    before = token_row(db)
    sim.control("POST", "/faults", {"rules": [
        {"match": "/oauth/v2/token", "status": 200, "body": {"error": "invalid_code"},
         "count": -1}]})
    for prog in (WEBHOOK, "batch/renew_channel"):
        res = check(run_program, cfg, prog=prog)
        assert res.returncode == EX_NOPERM, (prog, res.returncode, res.stdout, res.stderr)
        assert res.stdout.startswith("credentials refused: "), res.stdout
        assert "invalid_code" in res.stdout, res.stdout
    assert token_row(db) == before


def test_wrong_refresh_token(db, config_factory, run_program, sim_factory):
    sim = sim_factory("-q", "--modules", "Leads:5")
    cfg = config_factory({"zoho": {"refresh_token": "1000.not.the.right.one"}}, sim=sim)
    res = check(run_program, cfg)
    assert res.returncode == EX_NOPERM, (res.returncode, res.stdout, res.stderr)
    assert "credentials refused" in res.stdout and "invalid_code" in res.stdout, res.stdout
    assert "1000.not.the.right.one" not in res.stdout + res.stderr


def test_zoho_unreachable(db, config_factory, run_program):
    cfg = config_factory()   # [zoho] at a closed port
    res = check(run_program, cfg)
    assert res.returncode == EX_TEMPFAIL, (res.returncode, res.stdout, res.stderr)
    assert res.stdout.startswith("Zoho unreachable: "), res.stdout
    assert NOWHERE.split("//")[1] in res.stdout, res.stdout


def test_credentials_not_set(db, config_factory, run_program):
    cfg = config_factory({"zoho": {"refresh_token": None}})
    res = check(run_program, cfg, prog="batch/incremental_sync")
    assert res.returncode == EX_CONFIG, (res.returncode, res.stdout, res.stderr)
    assert "must all be set" in res.stdout, res.stdout


@pytest.mark.parametrize("prog", ["batch/initial_sync", "batch/incremental_sync",
                                  "batch/renew_channel", "batch/reconcile", "batch/status"])
def test_every_batch_program_offers_it(db, config_factory, run_program, sim_factory, prog):
    sim = sim_factory("-q", "--modules", "Leads:2")
    cfg = config_factory(sim=sim)
    res = check(run_program, cfg, prog=prog)
    assert res.returncode == 0, (prog, res.returncode, res.stdout, res.stderr)
    assert "credentials ok" in res.stdout
    # Nothing else ran: no run was recorded, no table created.
    assert db.value("SELECT count(*) FROM zcrm.runs") == 0
    assert db.value("SELECT to_regclass('zcrm.leads')") is None


def test_token_endpoint_throttling(db, config_factory, run_program, sim_factory):
    """Zoho mints about ten tokens per ten minutes: a check past that says so
    (temporary, 75), and does not count as refused credentials."""
    sim = sim_factory("-q", "--modules", "Leads:2")
    sim.control("POST", "/config", {"token_mint_limit": 1})
    cfg = config_factory(sim=sim)
    assert check(run_program, cfg).returncode == 0
    res = check(run_program, cfg)
    assert res.returncode == EX_TEMPFAIL, (res.returncode, res.stdout, res.stderr)
    assert res.stdout.startswith("Zoho throttling: "), res.stdout
    assert "too many requests" in res.stdout.lower(), res.stdout
