"""Background delivery of notification callbacks and bulk-job callbacks.

One sender thread takes deliveries from a heap ordered by due time, so
random delays and "reorder" holds let later deliveries overtake earlier ones.
Every attempt (including dropped ones) is logged.  No retries: Zoho documents
none.  Never takes the store lock.
"""

import collections
import copy
import heapq
import json
import threading
import time
import urllib.error
import urllib.request


class Notifier:
    def __init__(self, faults, timeout=5.0, log_limit=100000):
        self.faults = faults
        self.timeout = timeout
        self.log_limit = log_limit
        self.cv = threading.Condition()
        self.heap = []
        self.seq = 0
        self.inflight = 0
        self.log = []
        self.log_base = 0
        self.stats = collections.Counter()
        self.stopped = False
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self.thread.start()

    # ----------------------------------------------------------- public --
    def submit(self, kind, url, body, channel_id=None, job_id=None):
        plan = self.faults.delivery_plan(kind)
        prefix = "notify" if kind == "notify" else "callback"
        now = time.time()
        item = {"kind": kind, "url": url, "body": body, "channel_id": channel_id, "job_id": job_id,
                "queued_at": now, "duplicate": False, "reordered": plan["reorder"],
                "delay_ms": int(plan["delay"] * 1000)}
        with self.cv:
            self.stats[prefix + "_queued"] += 1
            if plan["drop"]:
                self.stats[prefix + "_dropped"] += 1
                self._append_log(dict(item, status=None, error="dropped by fault injection",
                                      dropped=True, time=now))
                return
            due = now + plan["delay"] + (plan["hold"] if plan["reorder"] else 0.0)
            if plan["reorder"]:
                self.stats[prefix + "_reordered"] += 1
            self._push(due, item)
            if plan["duplicate"]:
                self.stats[prefix + "_duplicated"] += 1
                self._push(due + plan.get("dup_delay", 0.05), dict(item, duplicate=True))
            self.cv.notify_all()

    def entries(self, since=0, kind=None):
        with self.cv:
            start = max(0, since - self.log_base)
            out = self.log[start:]
            if kind:
                out = [e for e in out if e["kind"] == kind]
            return [dict(e) for e in out], self.log_base + len(self.log)

    def reset_log(self):
        with self.cv:
            self.log_base += len(self.log)
            self.log = []

    def pending(self):
        with self.cv:
            return len(self.heap) + self.inflight

    def wait_idle(self, timeout):
        end = time.time() + timeout
        with self.cv:
            while self.heap or self.inflight:
                left = end - time.time()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.1))
            return True

    def stop(self):
        with self.cv:
            self.stopped = True
            self.cv.notify_all()

    # ---------------------------------------------------------- internal --
    def _push(self, due, item):
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, item))

    def _append_log(self, entry):
        entry["index"] = self.log_base + len(self.log)
        self.log.append(entry)
        if len(self.log) > self.log_limit:
            drop = len(self.log) - self.log_limit
            self.log = self.log[drop:]
            self.log_base += drop

    def _run(self):
        while True:
            with self.cv:
                while not self.stopped:
                    if self.heap:
                        wait = self.heap[0][0] - time.time()
                        if wait <= 0:
                            break
                        self.cv.wait(min(wait, 0.5))
                    else:
                        self.cv.wait(0.5)
                if self.stopped:
                    return
                _, _, item = heapq.heappop(self.heap)
                self.inflight += 1
            try:
                self._deliver(item)
            finally:
                with self.cv:
                    self.inflight -= 1
                    self.cv.notify_all()

    def _deliver(self, item):
        body = item["body"]
        if item["kind"] == "notify":
            body = copy.deepcopy(body)
            body["server_time"] = int(time.time() * 1000)
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        prefix = "notify" if item["kind"] == "notify" else "callback"
        t0 = time.time()
        status, err = None, None
        try:
            req = urllib.request.Request(item["url"], data=data, method="POST",
                                         headers={"Content-Type": "application/json;charset=UTF-8",
                                                  "User-Agent": "ZohoCRM-Sim-Notifier"})
            with self.opener.open(req, timeout=self.timeout) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                e.read()
            except Exception:
                pass
        except Exception as e:  # connection refused, timeout, bad URL ...
            err = "%s: %s" % (type(e).__name__, e)
        with self.cv:
            if status is not None and 200 <= status < 300:
                self.stats[prefix + "_delivered"] += 1
            else:
                self.stats[prefix + "_failed"] += 1
            entry = {k: v for k, v in item.items() if k != "body"}
            entry.update(body=body, status=status, error=err, dropped=False, time=t0,
                         elapsed_ms=int((time.time() - t0) * 1000))
            self._append_log(entry)
