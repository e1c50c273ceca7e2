"""Fixtures for the integration tests: real PostgreSQL, nginx, webhook and
Zoho simulator processes (see harness.py and tests/README.md).

Another test directory can share them with the same two lines:
    sys.path.insert(0, "<repo>/tests/integration"); from harness import *
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402,F401  (pytest finds fixtures and hooks by name)
    pytest_runtest_makereport, pytest_sessionfinish, pytest_testnodedown,
    pytest_terminal_summary,
    zcrm_env, pg, db, config_factory, nginx_factory, webhook_factory, sim_factory,
    run_program, http_fixture, fields_stack, sim_stack,
)
