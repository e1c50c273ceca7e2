"""Control API under /_sim/ (JSON, no auth, never faulted)."""

import random
import time

import datagen
import schema_ops
from api import json_resp, _json_body
from faults import FaultError
from store import SimError, user_entry as store_user_entry

CONFIG_KEYS = {
    "page_size": int, "bulk_polls": int, "bulk_step_ms": int, "bulk_job_ms": int, "download_limit_per_min": int,
    "token_mint_limit": int, "token_mint_window_s": int, "token_lifetime": int, "notify_enabled": bool,
    "zip_streamed": bool, "watch_max_expiry_s": int, "watch_default_expiry_s": int,
    "credit_budget": int, "credit_window_s": int, "max_concurrency": int, "scopes": str,
}


class Control:
    def __init__(self, store, faults, notifier, meter):
        self.s = store
        self.faults = faults
        self.notifier = notifier
        self.meter = meter

    # ------------------------------------------------------------ records --
    def _body(self, req):
        b = _json_body(req, required=False)
        if b is None:
            return {}
        if not isinstance(b, dict):
            raise SimError(400, "INVALID_DATA", "body must be a JSON object")
        return b

    def create(self, req, module):
        s = self.s
        b = self._body(req)
        m = s.module(module)
        with s.lock:
            rec = s.create_record(m, b.get("values") or {})
            if not b.get("silent"):
                s.emit(m, "insert", [(rec["id"], [], s.insert_values(m, rec))])
            return json_resp(201, datagen.record_json(rec, m.fdefs, s.tz))

    def update(self, req, module, rid):
        s = self.s
        b = self._body(req)
        m = s.module(module)
        with s.lock:
            rng = random.Random(b["seed"]) if "seed" in b else None
            rec, changed = s.update_record(m, rid, b.get("values") or None, rng=rng,
                                           convert=bool(b.get("convert")))
            if not b.get("silent"):
                s.emit(m, "update", [(rid, changed, s.affected_values(m, rec, changed))])
            out = datagen.record_json(rec, m.fdefs, s.tz)
            return json_resp(200, dict(out, **{"$changed_fields": changed}))

    def delete(self, req, module, rid):
        s = self.s
        m = s.module(module)
        permanent = req.query.get("permanent") in ("1", "true")
        silent = req.query.get("silent") in ("1", "true")
        with s.lock:
            old = m.records.get(rid)
            e = s.delete_record(m, rid, permanent=permanent)
            if not silent:
                s.emit(m, "delete", [(rid, [], s.delete_values(m, old))])
            return json_resp(200, {"id": rid, "type": e["type"], "deleted_time": s.fmt(e["deleted_time"])})

    def restore(self, req, module, rid):
        s = self.s
        b = self._body(req)
        m = s.module(module)
        with s.lock:
            rec = s.restore_record(m, rid)
            if not b.get("silent"):
                s.emit(m, "insert", [(rid, [], s.insert_values(m, rec))])
            return json_resp(200, datagen.record_json(rec, m.fdefs, s.tz))

    def mutate(self, req):
        s = self.s
        b = self._body(req)
        m = s.module(b.get("module") or "Leads")
        count = int(b.get("count", 10))
        rng = random.Random("mutate|%s|%s" % (b.get("seed", 1), m.name))
        mix = b.get("mix") or {"create": 0.3, "update": 0.5, "delete": 0.2}
        ops = [k for k in ("create", "update", "delete", "convert") if mix.get(k)]
        if not ops or set(mix) - {"create", "update", "delete", "convert"}:
            raise SimError(400, "INVALID_DATA", "mix must weight create/update/delete/convert")
        weights = [float(mix[k]) for k in ops]
        batch_max = max(1, int(b.get("batch_max", 4)))
        batch_exact = bool(b.get("batch_exact"))   # every notification batch_max ids
        silent = bool(b.get("silent"))
        done = []
        pending = []          # (op, entries) grouped for notification

        def flush():
            for op, entries in pending:
                if not silent:
                    s.emit(m, op, entries)
            pending.clear()

        def add(op, entry):
            # a burst may batch several ids of one operation into one callback
            if pending and pending[-1][0] == op and len(pending[-1][1]) < pending[-1][2] \
                    and entry[0] not in {e[0] for e in pending[-1][1]}:
                pending[-1][1].append(entry)
            else:
                size = batch_max if batch_exact else \
                    1 if rng.random() < 0.6 else rng.randint(1, batch_max)
                pending.append((op, [entry], size))

        with s.lock:
            for _ in range(count):
                op = rng.choices(ops, weights)[0]
                live = sorted(m.records, key=int)
                if op in ("update", "delete", "convert") and not live:
                    op = "create"
                if op == "convert":
                    cands = [i for i in live if not m.records[i].get("Converted__s")]
                    if "Converted__s" not in m.byname or not cands:
                        op = "update"
                if op == "create":
                    rec = s.create_record(m, {}, rng=rng)
                    add("insert", (rec["id"], [], s.insert_values(m, rec)))
                elif op == "update":
                    rid = rng.choice(live)
                    rec, changed = s.update_record(m, rid, None, rng=rng)
                    add("update", (rid, changed, s.affected_values(m, rec, changed)))
                elif op == "convert":
                    rid = rng.choice(cands)
                    rec, changed = s.update_record(m, rid, None, rng=rng, convert=True)
                    add("update", (rid, changed, s.affected_values(m, rec, changed)))
                else:
                    rid = rng.choice(live)
                    old = m.records[rid]
                    s.delete_record(m, rid)
                    add("delete", (rid, [], s.delete_values(m, old)))
                done.append({"op": op, "id": (pending[-1][1][-1][0])})
            pending[:] = [(op, entries) for op, entries, _ in pending]
            flush()
        return json_resp(200, {"module": m.name, "count": len(done), "changes": done})

    def formulas_recompute(self, req):
        b = self._body(req)
        steps = b.get("steps", 1)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise SimError(400, "INVALID_DATA", "steps must be an integer >= 1")
        s = self.s
        with s.lock:
            n = s.recompute_formulas(steps)
            return json_resp(200, {"clock": s.formula_clock, "records": n})

    def truth(self, req, module):
        s = self.s
        m = s.module(module)
        with s.lock:
            recs = [datagen.record_json(r, m.fdefs, s.tz) for r in m.sorted_records()]
            dels = sorted(m.deleted.values(), key=lambda e: int(e["id"]))
            deleted = [{"id": e["id"], "deleted_time": s.fmt(e["deleted_time"]), "type": e["type"]}
                       for e in dels]
            log = list(m.log)
        out = {"module": m.name, "records": recs, "deleted": deleted, "fields": m.metas}
        # line items: every row of each subform of the module, REST shape
        # with Parent_Id, by id (also inside each record's subform field)
        lines = {}
        with s.lock:
            for sf in s.subforms.values():
                if sf.parent is m:
                    lines[sf.name] = [dict(datagen.record_json(r, sf.fdefs, s.tz),
                                           Parent_Id={"name": r["Parent_Id"][1], "id": r["Parent_Id"][0]})
                                      for r in sf.sorted_records()]
        if lines:
            out["subforms"] = lines
        if req.query.get("log") in ("1", "true"):
            out["mutations"] = log
        return json_resp(200, out)

    # ------------------------------------------------------------- fields --
    def fields_post(self, req):
        """Change the module's fields at run time (schema_ops.py)."""
        s = self.s
        b = self._body(req)
        m = s.module(b.get("module") or "Leads")
        with s.lock:
            done = schema_ops.apply_all(s, m, b)
            return json_resp(200, {"module": m.name, "changes": done, "fields": m.metas})
    # -------------------------------------------------------------- users --
    def users_get(self, req):
        s = self.s
        with s.lock:
            return json_resp(200, {"users": [dict({k: v for k, v in u.items() if not k.startswith("_")},
                                                  Modified_Time=s.fmt(u["_modified"])) for u in s.users]})

    def users_add(self, req):
        """{"full_name", "email", "role"?, "status"?} → the new user (it may
        own records from now on; the generator still picks the initial users)."""
        s = self.s
        b = self._body(req)
        name, email = b.get("full_name"), b.get("email")
        if not isinstance(name, str) or not name or not isinstance(email, str) or not email:
            raise SimError(400, "MANDATORY_NOT_FOUND", "full_name and email are required")
        with s.lock:
            s.user_seq += 1
            uid = str(datagen.BASE_ID + 412_000 + s.user_seq * 18)
            u = store_user_entry(uid, name, email, len(s.users), s.now())
            if b.get("status") in ("active", "disabled", "deleted"):
                u["status"] = b["status"]
            s.users.append(u)
            datagen.USER_BY_ID[uid] = {"name": name, "id": uid, "email": email}
            return json_resp(201, dict({k: v for k, v in u.items() if not k.startswith("_")},
                                       Modified_Time=s.fmt(u["_modified"])))

    def users_update(self, req, uid):
        """{"status": "disabled"} deactivates a user; full_name/email change
        them; Modified_Time moves."""
        s = self.s
        b = self._body(req)
        with s.lock:
            u = next((x for x in s.users if x["id"] == uid), None)
            if u is None:
                raise SimError(404, "RESOURCE_NOT_FOUND", "no such user", {"id": uid})
            if "status" in b:
                if b["status"] not in ("active", "disabled", "deleted"):
                    raise SimError(400, "INVALID_DATA", "status is active, disabled or deleted")
                u["status"] = b["status"]
            for k in ("full_name", "email"):
                if k in b:
                    u[k] = str(b[k])
            u["_modified"] = max(s.now(), u["_modified"] + 1)
            datagen.USER_BY_ID[uid] = {"name": u["full_name"], "id": uid, "email": u["email"]}
            return json_resp(200, dict({k: v for k, v in u.items() if not k.startswith("_")},
                                       Modified_Time=s.fmt(u["_modified"])))

    # ------------------------------------------------------------- faults --
    def faults_post(self, req):
        b = self._body(req)
        try:
            self.faults.configure(b)
        except (FaultError, TypeError, ValueError) as e:
            raise SimError(400, "INVALID_DATA", str(e))
        return json_resp(200, self.faults.describe())

    def faults_get(self, req):
        return json_resp(200, self.faults.describe())

    def faults_delete(self, req):
        self.faults.clear()
        return json_resp(200, self.faults.describe())

    # ------------------------------------------------------ tokens/channels --
    def expire_tokens(self, req):
        n = self.s.expire_tokens()
        return json_resp(200, {"expired": n})

    def expire_channel(self, req, cid):
        s = self.s
        with s.lock:
            ch = s.channels.get(cid)
            if ch is None:
                raise SimError(404, "RESOURCE_NOT_FOUND", "no such channel", {"channel_id": cid})
            ch["expiry"] = time.time() - 1
        return json_resp(200, {"channel_id": cid, "expired": True})

    def channels(self, req):
        s = self.s
        now = time.time()
        with s.lock:
            out = []
            for ch in s.channels.values():
                d = {k: v for k, v in ch.items() if k not in ("condition_fields",)}
                d["expiry"] = s.fmt(ch["expiry"])
                d["expired"] = ch["expiry"] <= now
                out.append(d)
        return json_resp(200, {"channels": out})

    def jobs(self, req):
        s = self.s
        with s.lock:
            out = [{"id": j["id"], "module": j["module"], "state": j["state"], "page": j["page"],
                    "per_page": j["per_page"], "count": j["count"], "more_records": j["more_records"],
                    "polls": j["polls"], "downloads": j["downloads"], "callback_url": j["callback_url"],
                    "fields": j["fields"], "created_time": s.fmt(j["created"])}
                   for j in s.jobs.values()]
        return json_resp(200, {"jobs": out})

    # ------------------------------------------------------------- config --
    def config_get(self, req):
        with self.s.lock:
            return json_resp(200, dict(self.s.cfg))

    def config_post(self, req):
        b = self._body(req)
        bad = set(b) - set(CONFIG_KEYS)
        if bad:
            raise SimError(400, "INVALID_DATA", "unknown config keys: %s" % sorted(bad),
                           {"supported": sorted(CONFIG_KEYS)})
        with self.s.lock:
            for k, v in b.items():
                typ = CONFIG_KEYS[k]
                if typ is bool and not isinstance(v, bool):
                    raise SimError(400, "INVALID_DATA", "%s must be a boolean" % k)
                if typ is str and not isinstance(v, str):
                    raise SimError(400, "INVALID_DATA", "%s must be a string" % k)
                if typ is int and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                    raise SimError(400, "INVALID_DATA", "%s must be a non-negative integer" % k)
                if k == "credit_window_s" and v < 1:
                    raise SimError(400, "INVALID_DATA", "credit_window_s must be >= 1")
                if k == "page_size" and v < 1:
                    raise SimError(400, "INVALID_DATA", "page_size must be >= 1")
                self.s.cfg[k] = v
            if "token_mint_limit" in b or "token_mint_window_s" in b:
                self.s.mints.clear()
            return json_resp(200, dict(self.s.cfg))

    # --------------------------------------------------------------- logs --
    def requests(self, req):
        s = self.s
        since = int(req.query.get("since", 0) or 0)
        inc = req.query.get("include_control") in ("1", "true")
        with s.lock:
            base = s.requests[0]["index"] if s.requests else s.req_index
            rows = s.requests[max(0, since - base):]
            rows = [dict(r) for r in rows if inc or not r.get("control")]
            nxt = s.req_index
        return json_resp(200, {"requests": rows, "next": nxt})

    def notifications(self, req):
        since = int(req.query.get("since", 0) or 0)
        rows, nxt = self.notifier.entries(since, req.query.get("kind"))
        return json_resp(200, {"notifications": rows, "next": nxt,
                               "pending": self.notifier.pending()})

    def flush(self, req):
        b = self._body(req)
        idle = self.notifier.wait_idle(float(b.get("timeout", 10)))
        return json_resp(200, {"idle": idle})

    def stats(self, req):
        s = self.s
        with s.lock:
            st = dict(s.stats)
            jobs = {"total": len(s.jobs)}
            for j in s.jobs.values():
                jobs[j["state"]] = jobs.get(j["state"], 0) + 1
            live_channels = sum(1 for c in s.channels.values() if c["expiry"] > time.time())
            records = {name: len(m.records) for name, m in s.modules.items()}
            deleted = {name: len(m.deleted) for name, m in s.modules.items()}
        with self.notifier.cv:
            ns = dict(self.notifier.stats)
        with self.faults.lock:
            fs = dict(self.faults.stats)
        return json_resp(200, {
            "tokens_minted": st.get("tokens_minted", 0),
            "token_throttled": st.get("token_throttled", 0),
            "token_refused": st.get("token_refused", 0),
            "auth_failures": st.get("auth_failures", 0),
            "scope_failures": st.get("scope_failures", 0),
            "requests": st.get("requests", 0),
            "jobs": jobs,
            "jobs_created": st.get("jobs_created", 0),
            "jobs_running_max": st.get("jobs_running_max", 0),
            "downloads": st.get("downloads", 0),
            "downloads_throttled": st.get("downloads_throttled", 0),
            "channels_live": live_channels,
            "records": records,
            "deleted": deleted,
            "faults_injected": fs,
            "notifications": {k: v for k, v in ns.items() if k.startswith("notify_")},
            "callbacks": {k: v for k, v in ns.items() if k.startswith("callback_")},
            "counters": st,
            "credits": self.meter.snapshot(),
        })

    # ------------------------------------------------------------ credits --
    def credits_get(self, req):
        return json_resp(200, self.meter.snapshot())

    def credits_reset(self, req):
        self.meter.reset()
        return json_resp(200, self.meter.snapshot())

    def reset_logs(self, req):
        s = self.s
        with s.lock:
            s.requests = []
        self.notifier.reset_log()
        return json_resp(200, {"ok": True, "requests_next": s.req_index})

    def health(self, req):
        return json_resp(200, {"ok": True, "base_url": self.s.base_url})
