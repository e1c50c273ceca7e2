"""Fault injection: HTTP fault rules for API requests, and delivery faults for
notifications / bulk callbacks.  Own lock; never takes the store lock."""

import base64
import collections
import random
import threading

CODE_FOR_STATUS = {
    400: "INVALID_DATA",
    401: "INVALID_TOKEN",
    403: "NO_PERMISSION",
    404: "INVALID_URL_PATTERN",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    502: "INTERNAL_ERROR",
    503: "INTERNAL_ERROR",
    504: "INTERNAL_ERROR",
}

RULE_KEYS = {"match", "method", "status", "count", "retry_after", "delay_ms", "code", "message",
             "close", "body", "body_b64", "content_type"}
NOTIFY_KEYS = {"drop", "duplicate", "reorder", "delay_ms", "reorder_hold_ms"}
BULK_KEYS = {"fail", "drop_callback", "omit_columns", "extra_columns", "cells"}


class FaultError(ValueError):
    pass


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rng = random.Random(0)
        self.stats = collections.Counter()
        self.clear()

    def clear(self):
        with self.lock:
            self.rules = []
            self.notify = {"drop": 0.0, "duplicate": 0.0, "reorder": 0.0, "delay_ms": [0, 0],
                           "reorder_hold_ms": 400}
            self.bulk = {"fail": 0, "drop_callback": 0.0, "omit_columns": [], "extra_columns": {},
                         "cells": []}

    def configure(self, spec):
        """Validate and install a fault spec (replaces, or appends rules with "append": true)."""
        if not isinstance(spec, dict):
            raise FaultError("body must be an object")
        unknown = set(spec) - {"rules", "notify", "bulk", "seed", "append"}
        if unknown:
            raise FaultError("unknown keys: %s" % sorted(unknown))
        rules = []
        for r in spec.get("rules") or []:
            if not isinstance(r, dict) or "match" not in r:
                raise FaultError("each rule needs 'match'")
            bad = set(r) - RULE_KEYS
            if bad:
                raise FaultError("unknown rule keys: %s" % sorted(bad))
            if "status" not in r and "delay_ms" not in r and not r.get("close"):
                raise FaultError("a rule needs status, delay_ms or close")
            if "body_b64" in r:
                try:
                    base64.b64decode(r["body_b64"], validate=True)
                except (ValueError, TypeError):
                    raise FaultError("body_b64 is not base64")
            rule = dict(r)
            rule["count"] = int(r.get("count", 1))
            rule["hits"] = 0
            rules.append(rule)
        notify = None
        if "notify" in spec:
            n = spec["notify"] or {}
            bad = set(n) - NOTIFY_KEYS
            if bad:
                raise FaultError("unknown notify keys: %s" % sorted(bad))
            notify = {"drop": float(n.get("drop", 0)), "duplicate": float(n.get("duplicate", 0)),
                      "reorder": float(n.get("reorder", 0)),
                      "delay_ms": list(n.get("delay_ms", [0, 0])),
                      "reorder_hold_ms": int(n.get("reorder_hold_ms", 400))}
            if len(notify["delay_ms"]) != 2:
                raise FaultError("delay_ms must be [min, max]")
        bulk = None
        if "bulk" in spec:
            b = spec["bulk"] or {}
            bad = set(b) - BULK_KEYS
            if bad:
                raise FaultError("unknown bulk keys: %s" % sorted(bad))
            bulk = {"fail": int(b.get("fail", 0)), "drop_callback": float(b.get("drop_callback", 0)),
                    "omit_columns": list(b.get("omit_columns") or []),
                    "extra_columns": dict(b.get("extra_columns") or {}),
                    "cells": list(b.get("cells") or [])}
            for c in bulk["cells"]:
                if not isinstance(c, dict) or set(c) != {"id", "field", "value"}:
                    raise FaultError("each bulk cell needs exactly id, field and value")
        with self.lock:
            if "seed" in spec:
                self.rng = random.Random(spec["seed"])
            if spec.get("append"):
                self.rules.extend(rules)
            else:
                self.rules = rules
                self.notify = {"drop": 0.0, "duplicate": 0.0, "reorder": 0.0, "delay_ms": [0, 0],
                               "reorder_hold_ms": 400}
                self.bulk = {"fail": 0, "drop_callback": 0.0, "omit_columns": [], "extra_columns": {},
                         "cells": []}
            if notify is not None:
                self.notify = notify
            if bulk is not None:
                self.bulk = bulk

    def describe(self):
        with self.lock:
            return {"rules": [dict(r) for r in self.rules], "notify": dict(self.notify),
                    "bulk": dict(self.bulk)}

    def match(self, method, path):
        """Consume and return the first matching rule with count left (count < 0 = forever)."""
        with self.lock:
            for r in self.rules:
                if r["count"] == 0:
                    continue
                m = r["match"]
                if m != "*" and not path.startswith(m):
                    continue
                if r.get("method") and r["method"].upper() != method:
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                r["hits"] += 1
                if "status" in r:
                    self.stats["http_%d" % int(r["status"])] += 1
                if r.get("close"):
                    self.stats["close"] += 1
                if r.get("delay_ms"):
                    self.stats["delay"] += 1
                return dict(r)
        return None

    def delivery_plan(self, kind):
        """Decide the fate of one outgoing callback."""
        with self.lock:
            if kind == "bulk_callback":
                drop = self.rng.random() < self.bulk["drop_callback"]
                if drop:
                    self.stats["callback_drop"] += 1
                return {"drop": drop, "duplicate": False, "delay": 0.0, "reorder": False, "hold": 0.0}
            n = self.notify
            plan = {"drop": self.rng.random() < n["drop"],
                    "duplicate": self.rng.random() < n["duplicate"],
                    "reorder": self.rng.random() < n["reorder"],
                    "delay": 0.0, "hold": n["reorder_hold_ms"] / 1000.0}
            lo, hi = n["delay_ms"]
            if hi > 0:
                plan["delay"] = self.rng.uniform(lo, hi) / 1000.0
            plan["dup_delay"] = self.rng.uniform(0.01, 0.2) if plan["duplicate"] else 0.0
            for k in ("drop", "duplicate", "reorder"):
                if plan[k]:
                    self.stats["notify_" + k] += 1
            return plan

    def bulk_csv(self):
        """The CSV faults a job created now renders with (kept while configured)."""
        with self.lock:
            b = self.bulk
            if not (b["omit_columns"] or b["extra_columns"] or b["cells"]):
                return None
            self.stats["bulk_csv"] += 1
            return {"omit_columns": list(b["omit_columns"]),
                    "extra_columns": dict(b["extra_columns"]), "cells": list(b["cells"])}

    def take_bulk_failure(self):
        with self.lock:
            if self.bulk["fail"] > 0:
                self.bulk["fail"] -= 1
                self.stats["bulk_fail"] += 1
                return True
            return False
