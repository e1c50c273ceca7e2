"""Zoho-facing endpoints: OAuth token, actions/watch, bulk read, records,
deleted records, fields metadata, record count."""

import json
import re
import time
import threading
import urllib.parse

import datagen
import inventory
from store import SimError, parse_iso, parse_http_date_or_iso


class Resp:
    def __init__(self, status, body=b"", ctype="application/json;charset=UTF-8", headers=None,
                 file_path=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or {}
        self.file_path = file_path
        self.close = False


def json_resp(status, obj, headers=None):
    return Resp(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)


def error_resp(e):
    return json_resp(e.http_status, e.body(), headers=e.headers)


def empty(status):
    return Resp(status, b"", ctype=None)


def _json_body(req, required=True):
    if not req.body:
        if required:
            raise SimError(400, "INVALID_DATA", "the request body is empty", {})
        return None
    try:
        return json.loads(req.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SimError(400, "INVALID_DATA", "the request body is not valid JSON", {})


def _int_param(req, name, default, lo=1, hi=None):
    v = req.query.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise SimError(400, "INVALID_DATA", "invalid %s" % name, {"param_name": name})
    if n < lo or (hi is not None and n > hi):
        det = {"param_name": name}
        if hi is not None:
            det["maximum_length"] = hi
        raise SimError(400, "INVALID_DATA", "invalid %s" % name, det)
    return n


class Api:
    def __init__(self, store):
        self.s = store

    # ============================================================= OAuth ==
    def token(self, req):
        params = dict(req.query)
        ctype = req.headers.get("Content-Type", "")
        if req.body and "application/x-www-form-urlencoded" in ctype or (req.body and not ctype):
            for k, v in urllib.parse.parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True):
                params[k] = v
        status, body = self.s.mint_token(params)
        return json_resp(status, body)

    # ============================================================= watch ==
    def _ch_details(self, ch):
        mods = []
        for ev in ch["events"]:
            mname = ev.split(".")[0]
            if mname not in mods:
                mods.append(mname)
        out = []
        for mname in mods:
            m = self.s.modules[mname]
            out.append({"channel_expiry": self.s.fmt(ch["expiry"]),
                        "resource_uri": "%s/crm/v2/%s" % (self.s.base_url, mname),
                        "resource_id": m.id, "resource_name": mname, "channel_id": ch["channel_id"]})
        return out

    def _purge_channels(self):
        now = time.time()
        for cid in [c for c, ch in self.s.channels.items() if ch["expiry"] <= now]:
            del self.s.channels[cid]
            self.s.stats["channels_expired"] += 1

    def _parse_events(self, events, i):
        if not isinstance(events, list) or not events:
            raise SimError(400, "MANDATORY_NOT_FOUND", "required field not found",
                           {"api_name": "events", "json_path": "$.watch[%d].events" % i})
        out = []
        for j, ev in enumerate(events):
            if not isinstance(ev, str) or ev.count(".") != 1:
                raise SimError(400, "INVALID_DATA", "invalid data",
                               {"api_name": "events", "json_path": "$.watch[%d].events[%d]" % (i, j)})
            mname, op = ev.split(".")
            m = None
            for k in self.s.modules:
                if k.lower() == mname.lower():
                    m = k
            if m is None or op not in ("create", "edit", "delete", "all"):
                raise SimError(400, "INVALID_DATA", "invalid data",
                               {"api_name": "events", "json_path": "$.watch[%d].events[%d]" % (i, j)})
            ops = ["edit", "create", "delete"] if op == "all" else [op]
            for o in ops:
                e = "%s.%s" % (m, o)
                if e not in out:
                    out.append(e)
        return out

    def _parse_condition(self, cond, i):
        """Returns {module: condition tree}."""
        path = "$.watch[%d].notification_condition" % i
        if cond is None:
            return {}
        if not isinstance(cond, list):
            raise SimError(400, "INVALID_DATA", details={"api_name": "notification_condition", "json_path": path})
        out = {}
        for k, item in enumerate(cond):
            p = "%s[%d]" % (path, k)
            if not isinstance(item, dict):
                raise SimError(400, "INVALID_DATA", details={"json_path": p})
            if "type" not in item:
                raise SimError(400, "DEPENDENT_FIELD_MISSING", "type is missing", {"api_name": "type", "json_path": p})
            if item["type"] != "field_selection":
                raise SimError(400, "INVALID_DATA", details={"api_name": "type", "json_path": p})
            mod = (item.get("module") or {}).get("api_name")
            if mod not in self.s.modules:
                raise SimError(400, "INVALID_DATA", details={"api_name": "module", "json_path": p + ".module"})
            m = self.s.modules[mod]
            count = [0]

            def walk(node, jp):
                if not isinstance(node, dict):
                    raise SimError(400, "INVALID_DATA", details={"json_path": jp})
                if "field" in node:
                    fname = (node["field"] or {}).get("api_name")
                    if fname not in m.byname:
                        raise SimError(400, "INVALID_DATA", details={"api_name": "field", "json_path": jp})
                    count[0] += 1
                    return ("field", fname)
                grp = node.get("group")
                op = node.get("group_operator", "or")
                if not isinstance(grp, list) or not grp or len(grp) > 2 or op not in ("and", "or"):
                    raise SimError(400, "INVALID_DATA", details={"json_path": jp})
                return ("group", op, [walk(g, "%s.group[%d]" % (jp, n)) for n, g in enumerate(grp)])

            fs = item.get("field_selection")
            if fs is None:
                raise SimError(400, "MANDATORY_NOT_FOUND", details={"api_name": "field_selection", "json_path": p})
            tree = walk(fs, p + ".field_selection")
            if count[0] > 10:
                raise SimError(400, "INVALID_DATA", "more than 10 fields", {"json_path": p, "limit": 10})
            out[mod] = tree
        return out

    def _validate_channel(self, item, i, method, existing):
        """Build the new channel dict for POST/PUT/PATCH (raises SimError)."""
        if not isinstance(item, dict):
            raise SimError(400, "INVALID_DATA", details={"json_path": "$.watch[%d]" % i})
        cid = item.get("channel_id")
        if cid is None or cid == "":
            raise SimError(400, "MANDATORY_NOT_FOUND", "required field not found",
                           {"api_name": "channel_id", "json_path": "$.watch[%d].channel_id" % i})
        if isinstance(cid, bool) or not re.fullmatch(r"\d{1,19}", str(cid)):
            raise SimError(400, "INVALID_DATA", "invalid data",
                           {"api_name": "channel_id", "json_path": "$.watch[%d].channel_id" % i})
        cid = str(cid)
        now = time.time()
        if method == "PATCH":
            if existing is None:
                raise SimError(400, "NOT_SUBSCRIBED", details={"channel_id": cid})
            ch = dict(existing)
            if item.get("_delete_events"):
                evs = self._parse_events(item.get("events"), i)
                ch["events"] = [e for e in ch["events"] if e not in evs]
                return ch, True
        elif method == "PUT":
            if existing is None:
                raise SimError(400, "NOT_SUBSCRIBED", details={"channel_id": cid})
            ch = {"channel_id": cid, "token": None, "return_affected_field_values": False,
                  "notify_on_related_action": True, "condition_fields": {}, "notification_condition": None,
                  "expiry": None}
        else:
            ch = {"channel_id": cid, "token": None, "return_affected_field_values": False,
                  "notify_on_related_action": True, "condition_fields": {}, "notification_condition": None,
                  "expiry": None}
        if method in ("POST", "PUT") or "events" in item:
            ch["events"] = self._parse_events(item.get("events"), i)
        if method in ("POST", "PUT") or "notify_url" in item:
            url = item.get("notify_url")
            if not url:
                raise SimError(400, "MANDATORY_NOT_FOUND", "required field not found",
                               {"api_name": "notify_url", "json_path": "$.watch[%d].notify_url" % i})
            if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
                raise SimError(400, "INVALID_DATA", "invalid data",
                               {"api_name": "notify_url", "json_path": "$.watch[%d].notify_url" % i})
            ch["notify_url"] = url
            ch["query_params"] = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query,
                                                             keep_blank_values=True))
        if "token" in item:
            tok = item["token"]
            if tok is not None and (not isinstance(tok, str) or len(tok) > 49):
                raise SimError(400, "INVALID_DATA", "token length should be less than 50",
                               {"api_name": "token", "json_path": "$.watch[%d].token" % i,
                                "maximum_length": 50})
            ch["token"] = tok
        for key in ("return_affected_field_values", "notify_on_related_action"):
            if key in item:
                if not isinstance(item[key], bool):
                    raise SimError(400, "INVALID_DATA", "invalid data",
                                   {"api_name": key, "json_path": "$.watch[%d].%s" % (i, key),
                                    "expected_data_type": "boolean"})
                ch[key] = item[key]
        if "notification_condition" in item:
            ch["condition_fields"] = self._parse_condition(item["notification_condition"], i)
            ch["notification_condition"] = item["notification_condition"]
        if "channel_expiry" in item and item["channel_expiry"] is not None:
            try:
                exp = parse_iso(item["channel_expiry"], allow_fraction=True)
            except ValueError:
                raise SimError(400, "INVALID_DATA", "invalid data",
                               {"api_name": "channel_expiry", "json_path": "$.watch[%d].channel_expiry" % i,
                                "expected_data_type": "datetime"})
            if exp <= now:
                raise SimError(400, "INVALID_DATA", "channel_expiry is in the past",
                               {"api_name": "channel_expiry", "json_path": "$.watch[%d].channel_expiry" % i})
            if exp > now + self.s.cfg["watch_max_expiry_s"]:
                exp = int(now) + self.s.cfg["watch_default_expiry_s"]      # silently the default
            ch["expiry"] = exp
        elif method != "PATCH" or ch.get("expiry") is None:
            ch["expiry"] = int(now) + self.s.cfg["watch_default_expiry_s"]
        return ch, False

    def watch(self, req):
        s = self.s
        if req.method == "GET":
            return self._watch_get(req)
        if req.method == "DELETE":
            return self._watch_delete(req)
        body = _json_body(req)
        if not isinstance(body, dict) or not isinstance(body.get("watch"), list) or not body["watch"]:
            raise SimError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "watch"})
        results, ok, bad = [], 0, 0
        with s.lock:
            self._purge_channels()
            for i, item in enumerate(body["watch"]):
                try:
                    cid = str(item.get("channel_id")) if isinstance(item, dict) else None
                    ch, removed = self._validate_channel(item, i, req.method, s.channels.get(cid))
                    if removed:
                        details = {"events": self._ch_details(s.channels[cid])}
                        if ch["events"]:
                            s.channels[cid] = ch
                        else:
                            del s.channels[cid]
                        results.append({"code": "SUCCESS", "status": "success",
                                        "message": "Successfully removed the subscribe details",
                                        "details": details})
                    else:
                        s.channels[ch["channel_id"]] = ch
                        s.stats["watch_" + req.method.lower()] += 1
                        msg = ("Successfully subscribed for actions-watch of the given module"
                               if req.method == "POST" else "Successfully updated the subscribe details")
                        results.append({"code": "SUCCESS", "status": "success", "message": msg,
                                        "details": {"events": self._ch_details(ch)}})
                    ok += 1
                except SimError as e:
                    results.append(e.body())
                    bad += 1
        status = 200 if not bad else (400 if not ok else 207)
        return json_resp(status, {"watch": results})

    def _watch_get(self, req):
        s = self.s
        cid = req.query.get("channel_id")
        mod = req.query.get("module")
        page = _int_param(req, "page", 1)
        per_page = _int_param(req, "per_page", 200, 1, 200)
        rows = []
        with s.lock:
            self._purge_channels()
            for ch in sorted(s.channels.values(), key=lambda c: int(c["channel_id"])):
                if cid and ch["channel_id"] != cid:
                    continue
                for d in self._ch_details(ch):
                    if mod and d["resource_name"].lower() != mod.lower():
                        continue
                    rows.append({
                        "channel_id": ch["channel_id"],
                        "events": [e for e in ch["events"] if e.split(".")[0] == d["resource_name"]],
                        "channel_expiry": d["channel_expiry"],
                        "notify_url": ch["notify_url"],
                        "token": ch["token"],
                        "return_affected_field_values": ch["return_affected_field_values"],
                        "notify_on_related_action": ch["notify_on_related_action"],
                        "notification_condition": ch["notification_condition"],
                        "fields": None,
                        "resource_uri": d["resource_uri"],
                        "resource_id": d["resource_id"],
                        "resource_name": d["resource_name"],
                    })
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return empty(204)
        return json_resp(200, {"watch": chunk, "info": {"per_page": per_page, "count": len(chunk),
                                                        "page": page,
                                                        "more_records": len(rows) > page * per_page}})

    def _watch_delete(self, req):
        s = self.s
        ids = req.query.get("channel_ids")
        if not ids:
            raise SimError(400, "REQUIRED_PARAM_MISSING", details={"param_name": "channel_ids"})
        results, ok, bad = [], 0, 0
        with s.lock:
            self._purge_channels()
            for cid in [c.strip() for c in ids.split(",") if c.strip()]:
                ch = s.channels.pop(cid, None)
                if ch is None:
                    results.append(SimError(400, "NOT_SUBSCRIBED", details={"channel_id": cid}).body())
                    bad += 1
                    continue
                ok += 1
                s.stats["watch_delete"] += 1
                for d in self._ch_details(ch):
                    results.append({"code": "SUCCESS", "status": "success",
                                    "message": "Successfully un-subscribed from actions-watch",
                                    "details": {"resource_uri": d["resource_uri"],
                                                "resource_id": d["resource_id"],
                                                "channel_id": cid}})
        status = 200 if not bad else (400 if not ok else 207)
        return json_resp(status, {"watch": results})

    # ========================================================= bulk read ==
    def bulk_create(self, req):
        s = self.s
        ctype = req.headers.get("Content-Type", "")
        if "application/json" not in ctype.lower():
            raise SimError(415, "MEDIA_TYPE_NOT_SUPPORTED",
                           "The Content-Type must be application/json", {"supported": ["application/json"]})
        if not req.body:
            raise SimError(400, "REQUEST_BODY_IS_EMPTY", "the request body is empty")
        body = _json_body(req)
        if not isinstance(body, dict):
            raise SimError(400, "INVALID_DATA", "body must be an object")
        q = body.get("query")
        if not isinstance(q, dict):
            raise SimError(400, "MANDATORY_NOT_FOUND", details={"api_name": "query", "json_path": "$.query"})
        mod = q.get("module")
        if mod is None:
            raise SimError(400, "MANDATORY_NOT_FOUND", details={"api_name": "module", "json_path": "$.query.module"})
        if not isinstance(mod, dict) or not isinstance(mod.get("api_name"), str):
            raise SimError(400, "INVALID_DATA", "module must be an object with api_name",
                           {"api_name": "module", "json_path": "$.query.module",
                            "expected_data_type": "jsonobject"})
        m = s.subform(mod["api_name"]) or s.module(mod["api_name"], code="MODULE_NOT_AVAILABLE")
        if "page_token" in q:
            raise SimError(400, "INVALID_DATA", "page_token is not supported in v6",
                           {"api_name": "page_token", "json_path": "$.query.page_token"})
        if q.get("cvid"):
            raise SimError(400, "CVID_NOT_SUPPORTED", "custom views are not simulated",
                           {"api_name": "cvid", "json_path": "$.query.cvid"})
        fields = q.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise SimError(400, "INVALID_DATA", details={"api_name": "fields", "json_path": "$.query.fields",
                                                             "expected_data_type": "jsonarray"})
            for n, f in enumerate(fields):
                base, dot, sub = f.partition(".")
                fd = m.byname.get(base)
                if f in ("$converted", "$approval_state") or (f == "$se_module" and "What_Id" in m.byname):
                    continue
                if fd is None or (dot and fd.data_type not in ("lookup", "ownerlookup")):
                    raise SimError(400, "FIELD_NOT_AVAILABLE", "the field is not available",
                                   {"api_name": f, "json_path": "$.query.fields[%d]" % n})
                if fd.data_type in inventory.NOT_EXPORTABLE:
                    # Bulk Read does not export these (zoho-api.md §3.5, §9 item 17)
                    raise SimError(400, "NOT_SUPPORTED",
                                   "the field type %s is not supported in bulk read" % fd.data_type,
                                   {"api_name": f, "json_path": "$.query.fields[%d]" % n})
            if len(fields) > 200:
                fields = None            # > 200 fields -> all fields
            # de-duplicate, keep order
            seen, uniq = set(), []
            for f in fields or []:
                if f not in seen:
                    seen.add(f)
                    uniq.append(f)
            fields = uniq or None
        page = q.get("page", 1)
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise SimError(400, "INVALID_DATA", details={"api_name": "page", "json_path": "$.query.page",
                                                         "expected_data_type": "integer"})
        pred = None
        if q.get("criteria") is not None:
            pred = compile_criteria(q["criteria"], m)
        cb = body.get("callback")
        cb_url = None
        if cb is not None:
            if not isinstance(cb, dict) or not isinstance(cb.get("url"), str) \
                    or not re.match(r"^https?://[^/\s]+", cb["url"]):
                raise SimError(400, "INVALID_CALLBACK_URL", "invalid callback url",
                               {"api_name": "url", "json_path": "$.callback.url"})
            if str(cb.get("method", "post")).lower() != "post":
                raise SimError(400, "INVALID_CALLBACK_METHOD", "only post is supported",
                               {"api_name": "method", "json_path": "$.callback.method"})
            cb_url = cb["url"]
        ft = body.get("file_type")
        if ft is not None and ft != "csv":
            raise SimError(400, "INVALID_DATA", "only csv is simulated",
                           {"api_name": "file_type", "json_path": "$.file_type"})
        with s.lock:
            now = time.time()
            jid = s.new_job_id()
            echo = {"module": {"id": m.id, "api_name": m.name}, "page": page}
            if fields:
                echo["fields"] = list(fields)
            if q.get("criteria") is not None:
                echo["criteria"] = q["criteria"]
            step = s.cfg["bulk_step_ms"] / 1000.0
            job = {"id": jid, "module": m.name, "fields": fields, "predicate": pred, "page": page,
                   "per_page": s.cfg["page_size"], "callback_url": cb_url, "state": "ADDED",
                   "progress": 0, "polls_needed": s.cfg["bulk_polls"], "polls": 0,
                   "next_step_at": now + step if step > 0 else float("inf"),
                   "created": int(now), "created_by": datagen.USER_IDS[0], "query_echo": echo,
                   "snapshot": None, "count": 0, "more_records": False, "fail": s.faults.take_bulk_failure(),
                   "csv_faults": s.faults.bulk_csv(),
                   "zip_path": None, "zip_lock": threading.Lock(), "completed_at": None,
                   "zip_streamed": s.cfg["zip_streamed"], "downloads": 0,
                   "ready_at": now + s.cfg["bulk_job_ms"] / 1000.0}
            s.jobs[jid] = job
            s.stats["jobs_created"] += 1
            # Jobs at work side by side (Zoho's limit is not documented):
            # the most there ever were, for tests and benchmarks.
            running = sum(1 for j in s.jobs.values() if j["state"] in ("ADDED", "IN PROGRESS"))
            s.stats["jobs_running_max"] = max(s.stats["jobs_running_max"], running)
            created = {"status": "success", "code": "ADDED_SUCCESSFULLY", "message": "Added successfully.",
                       "details": {"id": jid, "operation": "read", "state": "ADDED",
                                   "created_by": {"id": job["created_by"],
                                                  "name": datagen.USER_BY_ID[job["created_by"]]["name"]},
                                   "created_time": s.fmt(job["created"])}}
            if job["polls_needed"] <= 0:
                s.advance_job(job, 0)
        return json_resp(201, {"data": [created], "info": {}})

    def bulk_status(self, req, jid):
        s = self.s
        with s.lock:
            job = s.jobs.get(jid)
            if job is None:
                raise SimError(404, "RESOURCE_NOT_FOUND", details={"resource": jid})
            job["polls"] += 1
            s.advance_job(job, 1)
            return json_resp(200, s.job_envelope(job))

    def bulk_result(self, req, jid):
        s = self.s
        with s.lock:
            job = s.jobs.get(jid)
            if job is None or job["state"] != "COMPLETED":
                raise SimError(404, "RESOURCE_NOT_FOUND", "no downloadable result for this job",
                               {"resource": jid})
            limit = s.cfg["download_limit_per_min"]
            now = time.time()
            while s.downloads and s.downloads[0] <= now - 60:
                s.downloads.popleft()
            if limit and len(s.downloads) >= limit:
                s.stats["downloads_throttled"] += 1
                raise SimError(429, "TOO_MANY_REQUESTS", "download limit exceeded",
                               {"limit": limit, "limit_due_to": "download requests per minute"})
            s.downloads.append(now)
            s.stats["downloads"] += 1
            job["downloads"] += 1
        path = s.job_zip(job)
        return Resp(200, ctype="application/x-download", file_path=path,
                    headers={"Content-Disposition": 'attachment; filename="%s.zip"' % jid})

    # =========================================================== records ==
    def _fields_param(self, req, m, required):
        raw = req.query.get("fields")
        if raw is None or raw.strip() == "":
            if required:
                raise SimError(400, "REQUIRED_PARAM_MISSING", details={"param_name": "fields"})
            return None
        names = [f.strip() for f in raw.split(",") if f.strip()]
        if len(names) > 50:
            raise SimError(400, "LIMIT_EXCEEDED", "the number of fields exceeds the limit",
                           {"limit": 50, "param_name": "fields"})
        for f in names:
            if f not in m.byname and f not in ("$converted", "$approval_state") \
                    and not (f == "$se_module" and "What_Id" in m.byname):
                raise SimError(400, "INVALID_DATA", "invalid field", {"api_name": f, "param_name": "fields"})
        return names

    def _converted_filter(self, req, m):
        c = (req.query.get("converted") or "false").lower()
        if c not in ("true", "false", "both"):
            raise SimError(400, "INVALID_DATA", details={"param_name": "converted",
                                                         "supported_values": ["true", "false", "both"]})
        if "Converted__s" not in m.byname or c == "both":
            return None
        want = c == "true"
        return lambda r: bool(r.get("Converted__s")) == want

    def _ims(self, req):
        h = req.headers.get("If-Modified-Since")
        if not h:
            return None
        try:
            return parse_http_date_or_iso(h)
        except ValueError:
            raise SimError(400, "INVALID_DATA", "invalid If-Modified-Since", {"header_name": "If-Modified-Since"})

    def records(self, req, module):
        s = self.s
        if s.subform(module) is not None:
            return self.subform_rows(req, s.subform(module))
        m = s.module(module)
        ids_raw = req.query.get("ids")
        fields = self._fields_param(req, m, required=True)
        conv = self._converted_filter(req, m)
        ims = self._ims(req)
        if ids_raw is not None:
            ids = [x.strip() for x in ids_raw.split(",") if x.strip()]
            if len(ids) > 100:
                raise SimError(400, "LIMIT_EXCEEDED", "the number of ids exceeds the limit",
                               {"limit": 100, "param_name": "ids"})
            with s.lock:
                recs = [m.records[i] for i in dict.fromkeys(ids) if i in m.records]
                recs = [r for r in recs if (conv is None or conv(r))]
                had = bool(recs)
                if ims is not None:
                    recs = [r for r in recs if (r.get("Modified_Time") or 0) > ims]
                data = [datagen.record_json(r, m.fdefs, s.tz, only=fields, single=False) for r in recs]
            if not data:
                return empty(304 if (ims is not None and had) else 204)
            return json_resp(200, {"data": data, "info": self._info(len(data), 1, 200, "id", "desc", False)})
        page = _int_param(req, "page", 1)
        per_page = _int_param(req, "per_page", 200, 1, 200)
        if page * per_page > 2000:
            raise SimError(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                           details={"limit": 2000, "param_name": "page"})
        sort_by = req.query.get("sort_by", "id")
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            raise SimError(400, "INVALID_DATA", details={"param_name": "sort_by",
                                                         "supported_values": ["id", "Created_Time",
                                                                              "Modified_Time"]})
        order = req.query.get("sort_order", "desc")
        if order not in ("asc", "desc"):
            raise SimError(400, "INVALID_DATA", details={"param_name": "sort_order",
                                                         "supported_values": ["asc", "desc"]})
        with s.lock:
            recs = [r for r in m.records.values() if conv is None or conv(r)]
            had = bool(recs)
            if ims is not None:
                recs = [r for r in recs if (r.get("Modified_Time") or 0) > ims]
            if sort_by == "id":
                key = lambda r: int(r["id"])
            else:
                key = lambda r: ((r.get(sort_by) or 0), int(r["id"]))
            recs.sort(key=key, reverse=(order == "desc"))
            chunk = recs[(page - 1) * per_page: page * per_page]
            data = [datagen.record_json(r, m.fdefs, s.tz, only=fields, single=False) for r in chunk]
            more = len(recs) > page * per_page
        if not data:
            return empty(304 if (ims is not None and had) else 204)
        return json_resp(200, {"data": data, "info": self._info(len(data), page, per_page, sort_by, order, more)})

    @staticmethod
    def _info(count, page, per_page, sort_by, order, more):
        return {"per_page": per_page, "count": count, "page": page, "sort_by": sort_by, "sort_order": order,
                "more_records": more, "next_page_token": None, "previous_page_token": None,
                "page_token_expiry": None, "call": False, "email": False}

    def record_by_id(self, req, module, rid):
        s = self.s
        m = s.module(module)
        fields = self._fields_param(req, m, required=False)
        with s.lock:
            r = m.records.get(rid)
            if r is None:
                return empty(204)
            rec = datagen.record_json(r, m.fdefs, s.tz, only=fields)
        if fields is None:
            rec.update({"$approval_state": "approved", "$editable": True, "$in_merge": False,
                        "$currency_symbol": "$", "$converted_detail": {}, "$process_flow": False})
        return json_resp(200, {"data": [rec]})

    def subform_rows(self, req, sf):
        """GET /crm/v6/{subform}?fields=…: every row of the subform across
        parents (Zoho's Subform API), each with id and Parent_Id; fields
        mandatory (≤ 50), per_page ≤ 200, page (≤ 2,000 rows) or page_token."""
        s = self.s
        fields = self._fields_param(req, sf, required=True)
        per_page = _int_param(req, "per_page", 200, 1, 200)
        tok = req.query.get("page_token")
        if tok:
            if req.query.get("page"):
                raise SimError(400, "AMBIGUITY_DURING_PROCESSING", "page and page_token together",
                               {"param_name": "page_token"})
            mt = re.fullmatch(r"sf([0-9a-f]+)", tok)
            if not mt:
                raise SimError(400, "INVALID_DATA", "invalid page_token", {"param_name": "page_token"})
            start = int(mt.group(1), 16)
            page = start // per_page + 1
        else:
            page = _int_param(req, "page", 1)
            if page * per_page > 2000:
                raise SimError(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                               details={"limit": 2000, "param_name": "page"})
            start = (page - 1) * per_page
        order = req.query.get("sort_order", "desc")
        if order not in ("asc", "desc"):
            raise SimError(400, "INVALID_DATA", details={"param_name": "sort_order",
                                                         "supported_values": ["asc", "desc"]})
        with s.lock:
            rows = sf.sorted_records()
            if order == "desc":
                rows.reverse()
            chunk = rows[start:start + per_page]
            more = len(rows) > start + per_page
            data = []
            for r in chunk:
                out = {"id": r["id"]}
                for name in fields:
                    fd = sf.byname[name]
                    out[name] = ({"name": r["Parent_Id"][1], "id": r["Parent_Id"][0]} if name == "Parent_Id"
                                 else datagen.json_value(fd, r.get(name), s.tz))
                out["Parent_Id"] = {"name": r["Parent_Id"][1], "id": r["Parent_Id"][0]}
                data.append(out)
        if not data:
            return empty(204)
        info = self._info(len(data), page, per_page, "id", order, more)
        info["next_page_token"] = "sf%x" % (start + per_page) if more else None
        info["page_token_expiry"] = s.fmt(int(time.time()) + 86400) if more else None
        return json_resp(200, {"data": data, "info": info})

    def fetch_full_data(self, req, module, rid):
        """GET /crm/v6/{Module}/{id}/actions/fetch_full_data: the rich text
        fields of one record in full (Zoho's "Get Rich Text Fields")."""
        s = self.s
        m = s.module(module)
        rich = [fd for fd in m.fdefs if fd.meta.get("textarea", {}).get("type") == "rich_text"]
        raw = req.query.get("fields")
        if raw:
            names = [f.strip() for f in raw.split(",") if f.strip()]
            by = {fd.api_name: fd for fd in rich}
            for f in names:
                if f not in by:
                    raise SimError(400, "INVALID_DATA", "not a rich text field",
                                   {"api_name": f, "param_name": "fields"})
            rich = [by[f] for f in names]
        with s.lock:
            r = m.records.get(rid)
            if r is None:
                return empty(204)
            out = {fd.api_name: r.get(fd.api_name) for fd in rich}
        out["id"] = rid
        return json_resp(200, {"data": [out]})

    def users(self, req):
        """GET /crm/v6/users?type=AllUsers|ActiveUsers|DeactiveUsers&page&per_page
        (Zoho's Get Users); If-Modified-Since → only users modified after, 304
        when none."""
        s = self.s
        typ = req.query.get("type", "AllUsers")
        if typ not in ("AllUsers", "ActiveUsers", "DeactiveUsers", "AdminUsers", "CurrentUser"):
            raise SimError(400, "INVALID_DATA", details={"param_name": "type"})
        page = _int_param(req, "page", 1)
        per_page = _int_param(req, "per_page", 200, 1, 200)
        ims = self._ims(req)
        with s.lock:
            us = list(s.users)
            if typ == "ActiveUsers":
                us = [u for u in us if u["status"] == "active"]
            elif typ == "DeactiveUsers":
                us = [u for u in us if u["status"] != "active"]
            elif typ in ("AdminUsers", "CurrentUser"):
                us = us[:1]
            had = bool(us)
            if ims is not None:
                us = [u for u in us if u["_modified"] > ims]
            chunk = us[(page - 1) * per_page: page * per_page]
            data = []
            for u in chunk:
                d = {k: v for k, v in u.items() if not k.startswith("_")}
                d["Modified_Time"] = s.fmt(u["_modified"])
                d["created_time"] = s.fmt(u["_created"])
                data.append(d)
        if not data:
            return empty(304 if (ims is not None and had) else 204)
        return json_resp(200, {"users": data, "info": {"per_page": per_page, "count": len(data), "page": page,
                                                       "more_records": len(us) > page * per_page}})

    def count(self, req, module):
        s = self.s
        m = s.module(module)
        with s.lock:
            return json_resp(200, {"count": len(m.records)})

    # =========================================================== deleted ==
    def deleted(self, req, module):
        s = self.s
        m = s.module(module)
        typ = req.query.get("type", "all")
        if typ not in ("all", "recycle", "permanent"):
            raise SimError(400, "PATTERN_NOT_MATCHED", details={"param_name": "type",
                                                                "supported_values": ["all", "recycle",
                                                                                     "permanent"]})
        page = _int_param(req, "page", 1)
        per_page = _int_param(req, "per_page", 200, 1, 200)
        ims = self._ims(req)
        with s.lock:
            rows = [e for e in m.deleted.values() if typ == "all" or e["type"] == typ]
            if ims is not None:
                rows = [e for e in rows if e["deleted_time"] > ims]
            rows.sort(key=lambda e: (-e["deleted_time"], int(e["id"])))
            chunk = rows[(page - 1) * per_page: page * per_page]
            data = [s.deleted_json(e) for e in chunk]
        if not data:
            return empty(204)
        return json_resp(200, {"data": data, "info": {"per_page": per_page, "count": len(data), "page": page,
                                                      "more_records": len(rows) > page * per_page}})

    # ============================================================ fields ==
    def fields(self, req):
        mod = req.query.get("module")
        if not mod:
            raise SimError(400, "REQUIRED_PARAM_MISSING", details={"param_name": "module"})
        m = self.s.subform(mod) or self.s.module(mod)
        return json_resp(200, {"fields": m.metas})


# ================================================================ criteria ==
NUM_TYPES = ("integer", "bigint", "double", "currency", "percent")
TEXT_TYPES = ("text", "email", "phone", "website", "picklist", "multiselectpicklist")
COMPARATORS = {
    "num": {"equal", "not_equal", "in", "not_in", "less_than", "less_equal", "greater_than", "greater_equal"},
    "text": {"equal", "not_equal", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with"},
    "time": {"equal", "not_equal", "in", "not_in", "between", "not_between", "greater_than", "greater_equal",
             "less_than", "less_equal"},
    "bool": {"equal"},
    "lookup": {"equal", "not_equal", "in", "not_in"},
}


def _kind(dt):
    if dt in NUM_TYPES:
        return "num"
    if dt in TEXT_TYPES:
        return "text"
    if dt in ("date", "datetime"):
        return "time"
    if dt == "boolean":
        return "bool"
    if dt in ("lookup", "ownerlookup"):
        return "lookup"
    return None


def compile_criteria(crit, m):
    """Validate a bulk-read criteria tree and return a predicate on internal records."""
    count = [0]

    def node(c, path):
        if not isinstance(c, dict):
            raise SimError(400, "INVALID_CRITERIA", details={"json_path": path})
        if "group" in c or "group_operator" in c:
            op = c.get("group_operator")
            grp = c.get("group")
            if op is None or not isinstance(op, str) or op.lower() not in ("and", "or"):
                raise SimError(400, "GROUP_OPERATOR_NOT_SUPPORTED",
                               details={"json_path": path + ".group_operator", "supported": ["and", "or"]})
            if not isinstance(grp, list) or len(grp) < 2:
                raise SimError(400, "AMBIGUOUS_GROUP_IN_CRITERIA", "a group needs at least two conditions",
                               {"json_path": path + ".group"})
            subs = [node(g, "%s.group[%d]" % (path, i)) for i, g in enumerate(grp)]
            if op.lower() == "and":
                return lambda r: all(f(r) for f in subs)
            return lambda r: any(f(r) for f in subs)
        count[0] += 1
        if count[0] > 25:
            raise SimError(400, "CRITERIA_LIMIT_EXCEEDED", details={"limit": 25})
        if "field" in c:
            fname = (c["field"] or {}).get("api_name") if isinstance(c["field"], dict) else None
        else:
            fname = c.get("api_name")          # legacy v2 form
        if not fname:
            raise SimError(400, "INVALID_CRITERIA", "field missing", {"json_path": path})
        fd = m.byname.get(fname)
        if fd is None:
            raise SimError(400, "FIELD_NOT_AVAILABLE", details={"api_name": fname, "json_path": path + ".field"})
        kind = _kind(fd.data_type)
        if kind is None or fd.data_type == "textarea":
            raise SimError(400, "FIELD_IN_CRITERIA_NOT_SUPPORTED", details={"api_name": fname})
        comp = c.get("comparator")
        if comp not in COMPARATORS[kind]:
            raise SimError(400, "FIELD_AND_COMPARATOR_IN_CRITERIA_NOT_COMPATIBLE",
                           details={"api_name": fname, "comparator": comp,
                                    "supported": sorted(COMPARATORS[kind])})
        if "value" not in c:
            raise SimError(400, "INVALID_CRITERIA", "value missing", {"json_path": path + ".value"})
        val = c["value"]
        multi = comp in ("in", "not_in", "between", "not_between")
        if multi != isinstance(val, list) or (comp in ("between", "not_between") and len(val) != 2):
            raise SimError(400, "COMPARATOR_AND_VALUE_IN_CRITERIA_NOT_COMPATIBLE",
                           details={"api_name": fname, "comparator": comp})
        vals = val if multi else [val]
        conv = []
        for v in vals:
            if v == "${EMPTY}":
                conv.append(None)
                continue
            try:
                if fd.data_type == "datetime":
                    conv.append(parse_iso(v))
                elif fd.data_type == "date":
                    if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d", v):
                        raise ValueError
                    conv.append(v)
                elif kind == "num":
                    if isinstance(v, bool):
                        raise ValueError
                    conv.append(float(v))
                elif kind == "bool":
                    if not isinstance(v, bool) and v not in ("true", "false"):
                        raise ValueError
                    conv.append(v is True or v == "true")
                else:
                    if not isinstance(v, (str, int)) or isinstance(v, bool):
                        raise ValueError
                    conv.append(str(v))
            except (ValueError, TypeError):
                raise SimError(400, "FIELD_AND_VALUE_IN_CRITERIA_NOT_COMPATIBLE",
                               details={"api_name": fname, "value": v})
        return _pred(fd, kind, comp, conv)

    if not isinstance(crit, dict):
        raise SimError(400, "INVALID_CRITERIA", details={"json_path": "$.query.criteria"})
    return node(crit, "$.query.criteria")


def _pred(fd, kind, comp, vals):
    name = fd.api_name
    dt = fd.data_type

    def get(r):
        v = r.get(name)
        if dt == "multiselectpicklist":
            return [x.lower() for x in v] if v else None
        if dt == "lookup":
            return v[0] if v else None
        if kind == "num":
            return float(v) if v is not None else None
        if kind == "text" and v is not None:
            return v.lower()
        return v

    if kind == "text":
        vals = [v.lower() if isinstance(v, str) else v for v in vals]

    def eq(x, v):
        if v is None:
            return x is None or x == [] or x == ""
        if x is None:
            return False
        if isinstance(x, list):
            return v in x
        return x == v

    def cmp(x, v, op):
        if x is None or v is None:
            return False
        return {"less_than": x < v, "less_equal": x <= v, "greater_than": x > v, "greater_equal": x >= v}[op]

    def text_op(x, v, op):
        if x is None or v is None:
            return False
        items = x if isinstance(x, list) else [x]
        if op == "contains":
            return any(v in i for i in items)
        if op == "starts_with":
            return any(i.startswith(v) for i in items)
        if op == "ends_with":
            return any(i.endswith(v) for i in items)

    if comp == "equal":
        return lambda r: eq(get(r), vals[0])
    if comp == "not_equal":
        return lambda r: not eq(get(r), vals[0])
    if comp == "in":
        return lambda r: any(eq(get(r), v) for v in vals)
    if comp == "not_in":
        return lambda r: not any(eq(get(r), v) for v in vals)
    if comp in ("less_than", "less_equal", "greater_than", "greater_equal"):
        return lambda r: cmp(get(r), vals[0], comp)
    if comp == "between":
        return lambda r: cmp(get(r), vals[0], "greater_equal") and cmp(get(r), vals[1], "less_equal")
    if comp == "not_between":
        return lambda r: get(r) is not None and not (cmp(get(r), vals[0], "greater_equal")
                                                     and cmp(get(r), vals[1], "less_equal"))
    if comp == "not_contains":
        return lambda r: not text_op(get(r), vals[0], "contains")
    return lambda r: bool(text_op(get(r), vals[0], comp))
