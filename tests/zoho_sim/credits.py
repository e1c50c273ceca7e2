"""API credits and concurrency, metered as Zoho documents them.

Zoho deducts credits for every API call over a rolling 24-hour window per
org and answers 429 TOO_MANY_REQUESTS once they are spent, or once too many
calls of one client are in flight (zoho-api.md §8.1-8.3). This module owns
the cost table (the one place the simulator names a call's price), the
rolling total, the budget, the concurrency limit and the
X-API-CREDITS-REMAINING header. The OAuth token endpoint is the accounts
server, not the API: it costs nothing here. The /_sim/ control API is never
metered.
"""

import collections
import threading
import time

# Credits per call, from zoho-api.md §8.1 ("Credit cost per call", the v8
# API-limits page). Keys are the simulator's route names (zoho_sim.py
# API_ROUTES). Bulk Read status polls and downloads are not listed by Zoho:
# §8.1 says to count them as 1, and so do we. Get Records with `cvid` is 3
# (the simulator serves no custom views, but the price is Zoho's).
COSTS = {
    "bulk_create": 50,       # Bulk Read create (initialize)
    "bulk_status": 1,
    "bulk_result": 1,
    "records": 1,            # Get Records, a page or by ids
    "record_by_id": 1,
    "deleted": 1,            # Deleted Records
    "fields": 1,             # fields metadata
    "count": 1,              # record count
    "watch": 1,              # Notification API (enable, renew, list, disable)
    "users": 1,              # Get Users
    "fetch_full_data": 1,    # Get Rich Text Fields
}
COST_RECORDS_CVID = 3
NOT_METERED = ("token",)     # the accounts server


def call_cost(route_name, query):
    """Credits one call of this route costs (0 for the accounts server)."""
    if route_name in NOT_METERED:
        return 0
    if route_name == "records" and query.get("cvid"):
        return COST_RECORDS_CVID
    return COSTS.get(route_name, 1)


class Meter:
    """Rolling credit total and in-flight count. Thread-safe.

    cfg is the simulator's live config dict: credit_budget (0 = unlimited),
    credit_window_s (86400 as Zoho's), max_concurrency (0 = unlimited),
    read on every call so /_sim/config changes apply at once.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self._clear()

    def reset(self):
        with self.lock:
            in_flight = self.in_flight
            self._clear()
            self.in_flight = in_flight   # calls still running will leave()

    def _clear(self):
        self.window = collections.deque()   # (time, cost, endpoint)
        self.window_total = 0
        self.spent = collections.Counter()  # endpoint -> credits since reset
        self.calls = collections.Counter()  # endpoint -> metered calls since reset
        self.rejected = collections.Counter()  # "budget" / "concurrency"
        self.in_flight = 0
        self.max_in_flight = 0
        self.last_remaining = None

    def _prune(self, now):
        horizon = now - int(self.cfg.get("credit_window_s") or 86400)
        while self.window and self.window[0][0] <= horizon:
            self.window_total -= self.window.popleft()[1]

    def enter(self):
        """A metered call starts. False (and counted) past max_concurrency."""
        limit = int(self.cfg.get("max_concurrency") or 0)
        with self.lock:
            if limit and self.in_flight >= limit:
                self.rejected["concurrency"] += 1
                return False
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def charge(self, endpoint, cost):
        """Deducts cost before the call runs. False (nothing deducted) when the
        rolling total plus cost would pass the budget: the call is refused."""
        budget = int(self.cfg.get("credit_budget") or 0)
        now = time.time()
        with self.lock:
            self._prune(now)
            if budget and self.window_total + cost > budget:
                self.rejected["budget"] += 1
                return False
            if cost:
                self.window.append((now, cost, endpoint))
                self.window_total += cost
            self.spent[endpoint] += cost
            self.calls[endpoint] += 1
            return True

    def headers(self):
        """X-API-CREDITS-REMAINING once half the budget is used (§8.3)."""
        budget = int(self.cfg.get("credit_budget") or 0)
        if not budget:
            return {}
        with self.lock:
            self._prune(time.time())
            if self.window_total * 2 < budget:
                return {}
            remaining = max(0, budget - self.window_total)
            self.last_remaining = remaining
            return {"X-API-CREDITS-REMAINING": str(remaining)}

    def snapshot(self):
        budget = int(self.cfg.get("credit_budget") or 0)
        with self.lock:
            self._prune(time.time())
            return {
                "budget": budget,
                "window_s": int(self.cfg.get("credit_window_s") or 86400),
                "spent_window": self.window_total,
                "remaining": (budget - self.window_total) if budget else None,
                "spent_total": sum(self.spent.values()),
                "by_endpoint": dict(self.spent),
                "calls_by_endpoint": dict(self.calls),
                "rejected": {"budget": self.rejected["budget"],
                             "concurrency": self.rejected["concurrency"]},
                "max_concurrency": int(self.cfg.get("max_concurrency") or 0),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "costs": dict(COSTS, records_with_cvid=COST_RECORDS_CVID),
            }
