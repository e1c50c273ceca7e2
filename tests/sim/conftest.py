import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simhelpers import Sim, Receiver  # noqa: E402


@pytest.fixture
def make_sim():
    """Factory: make_sim('--modules', 'Leads:10') -> running Sim, stopped at teardown."""
    sims = []

    def start(*args):
        s = Sim(*args)
        sims.append(s)
        return s

    yield start
    for s in sims:
        s.stop()


@pytest.fixture(scope="module")
def sim():
    """A shared simulator for read-mostly tests of one test module."""
    s = Sim("--modules", "Leads:60,Contacts:20", "--page-size", "25", "--bulk-step-ms", "0",
            "--initial-deleted", "0", "--tz-offset", "+05:30")
    yield s
    s.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
