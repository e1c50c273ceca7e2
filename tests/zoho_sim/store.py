"""All simulator state behind one lock: records, deleted entries, channels,
bulk jobs, OAuth tokens, request log and counters.

Records are stored in the internal representation documented in datagen.py
and are never modified in place (an update stores a new dict), so a bulk job
snapshot is just a list of references.
"""

import collections
import json
import os
import random
import re
import secrets
import tempfile
import threading
import time
from datetime import datetime

import bulkzip
import datagen
import inventory


class SimError(Exception):
    """An API error answered as {"code","details","message","status":"error"}."""

    def __init__(self, http_status, code, message=None, details=None, headers=None):
        super().__init__(code)
        self.http_status = http_status
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, code.lower().replace("_", " "))
        self.details = details if details is not None else {}
        self.headers = headers or {}

    def body(self):
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


DEFAULT_MESSAGES = {
    "INVALID_TOKEN": "invalid oauth token",
    "OAUTH_SCOPE_MISMATCH": "invalid oauth scope to access this URL",
    "INVALID_URL_PATTERN": "Please check if the URL trying to access is a correct one",
    "INVALID_REQUEST_METHOD": "The http request method type is not a valid one",
    "INVALID_MODULE": "the module name given seems to be invalid",
    "REQUIRED_PARAM_MISSING": "One of the expected parameter is missing",
    "LIMIT_EXCEEDED": "limit exceeded",
    "TOO_MANY_REQUESTS": "You have made too many requests. Please try again after some time.",
    "INTERNAL_ERROR": "Internal Server Error",
    "RESOURCE_NOT_FOUND": "The requested resource doesn't exist.",
    "MEDIA_TYPE_NOT_SUPPORTED": "The media type of the request is not supported",
    "MANDATORY_NOT_FOUND": "required field not found",
    "INVALID_DATA": "invalid data",
    "NOT_SUBSCRIBED": "the channel is not subscribed",
    "DISCRETE_PAGINATION_LIMIT_EXCEEDED": "you cannot fetch more than 2000 records using page and per_page",
    "PATTERN_NOT_MATCHED": "Please check whether the input values are correct",
}

ISO_DT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\d$")


def parse_iso(s, allow_fraction=False):
    """ISO 8601 date-time with offset -> epoch seconds (int).  ValueError if bad."""
    if not isinstance(s, str):
        raise ValueError("not a string")
    if not allow_fraction and not ISO_DT_RE.match(s):
        raise ValueError("bad datetime %r" % s)
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("datetime without offset")
    return int(dt.timestamp())


def parse_http_date_or_iso(s):
    s = (s or "").strip()
    try:
        return parse_iso(s, allow_fraction=True)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    try:
        dt = parsedate_to_datetime(s)
    except (TypeError, ValueError, IndexError):
        dt = None
    if dt is None or dt.tzinfo is None:
        raise ValueError("bad date %r" % s)
    return int(dt.timestamp())


class ModuleState:
    def __init__(self, name, width=None, formulas=False):
        self.name = name
        self.num = datagen.module_num(name)
        self.id = datagen.module_id(name)
        self.metas, self.fdefs = datagen.build_fields(name, width, formulas)
        self.has_formulas = any(fd.gen == "formula" for fd in self.fdefs)
        self.byname = {fd.api_name: fd for fd in self.fdefs}
        self.records = {}          # id -> internal record dict
        self.deleted = {}          # id -> entry (internal: times as epoch)
        self.next_index = 0
        self.log = []              # mutation log

    def sorted_records(self):
        return sorted(self.records.values(), key=lambda r: int(r["id"]))


class SubformState:
    """A subform module (Invoiced_Items, ...): its fields metadata, and its
    rows, which live in the parent records (field `field` of module
    `parent`). Rows are served flattened with Parent_Id = (parent id, name)."""

    def __init__(self, name, parent):
        self.name = name
        self.num = datagen.module_num(name)
        self.id = datagen.module_id(name)
        self.metas, self.fdefs = datagen.build_fields(name)
        self.byname = {fd.api_name: fd for fd in self.fdefs}
        self.parent = parent           # ModuleState
        self.field = name              # the subform field's api name on the parent

    def rows(self):
        """Every row of every live parent, internal values plus Parent_Id."""
        out = []
        for rec in self.parent.records.values():
            ref = (rec["id"], rec.get("Subject") or "")
            for r in rec.get(self.field) or ():
                row = dict(r)
                row["Parent_Id"] = ref
                out.append(row)
        return out

    def sorted_records(self):
        return sorted(self.rows(), key=lambda r: int(r["id"]))


def user_entry(uid, name, email, k, modified):
    first, _, last = name.partition(" ")
    role = inventory.ROLES[k % len(inventory.ROLES)]
    prof = inventory.PROFILES[0 if k == 0 else 1]
    return {"id": uid, "full_name": name, "first_name": first if last else None,
            "last_name": last or first, "email": email, "role": {"name": role[1], "id": role[0]},
            "profile": {"name": prof[1], "id": prof[0]}, "status": "active", "confirm": True,
            "time_zone": "America/Los_Angeles", "_modified": modified, "_created": modified}


def parse_scopes(text):
    """'A,B C' -> ['A', 'B', 'C'] (Zoho's consent takes commas; its token
    answers list scopes with spaces)."""
    return [x for x in re.split(r"[,\s]+", text or "") if x]


def _module_scopes(module):
    m = (module or "").lower()
    out = ["ZohoCRM.modules.ALL", "ZohoCRM.modules.READ"]
    if m:
        out += ["ZohoCRM.modules.%s.ALL" % m, "ZohoCRM.modules.%s.READ" % m]
    return out


WATCH_OPS = {"GET": "READ", "POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE",
             "DELETE": "DELETE"}


def scopes_needed(endpoint, req, groups):
    """What a call needs: a list of (any_of, also_all_of) pairs, one of
    which the token must satisfy — any scope of any_of, plus one of each
    list in also_all_of. None: no scope needed."""
    if endpoint == "users":
        return [(["ZohoCRM.users.READ", "ZohoCRM.users.ALL"], [])]
    if endpoint in ("deleted", "count", "record_by_id", "records", "fetch_full_data"):
        return [(_module_scopes(groups[0] if groups else None), [])]
    if endpoint in ("bulk_status", "bulk_result"):
        return [(["ZohoCRM.bulk.READ", "ZohoCRM.bulk.ALL"], [])]
    if endpoint == "bulk_create":
        # Bulk Read needs a modules scope for the module too (§1.7).
        module = None
        try:
            q = json.loads(req.body or b"{}").get("query") or {}
            module = (q.get("module") or {}).get("api_name")
        except (ValueError, AttributeError):
            pass
        return [(["ZohoCRM.bulk.READ", "ZohoCRM.bulk.ALL"], [_module_scopes(module)])]
    if endpoint == "fields":
        return [(["ZohoCRM.settings.fields.READ", "ZohoCRM.settings.fields.ALL",
                  "ZohoCRM.settings.ALL", "ZohoCRM.settings.READ"], [])]
    if endpoint == "watch":
        op = WATCH_OPS.get(req.method, "ALL")
        alts = ["ZohoCRM.notifications.ALL", "ZohoCRM.notifications.%s" % op]
        if op in ("CREATE", "UPDATE"):
            alts.append("ZohoCRM.notifications.WRITE")
        return [(alts, [])]
    return None


class Store:
    def __init__(self, args, notifier, faults):
        self.lock = threading.RLock()
        self.notifier = notifier
        self.faults = faults
        self.seed = args.seed
        self.anchor = args.anchor
        self.tz_name = args.tz_offset
        self.tz = datagen.make_tz(args.tz_offset)
        self.client_id = args.client_id
        self.client_secret = args.client_secret
        self.refresh_token = args.refresh_token
        self.base_url = None                       # set once listening
        self.cfg = {
            "page_size": args.page_size,
            "bulk_polls": args.bulk_polls,
            "bulk_step_ms": args.bulk_step_ms,
            "bulk_job_ms": args.bulk_job_ms,
            "download_limit_per_min": 10,
            "token_mint_limit": 10,
            "token_mint_window_s": 600,
            "token_lifetime": args.token_lifetime,
            "notify_enabled": True,
            "zip_streamed": False,
            "watch_max_expiry_s": 86400,
            "watch_default_expiry_s": 3600,
            "credit_budget": args.credit_budget,
            "credit_window_s": 86400,
            "max_concurrency": args.max_concurrency,
            # The scopes a refresh token was generated with: every access
            # token minted from it carries them (zoho-api.md §1.7).
            "scopes": args.scopes,
        }
        self.tmpdir = tempfile.mkdtemp(prefix="zoho_sim_")
        self.modules = {}
        # Formula clock: POST /_sim/formulas/recompute moves it on a day.
        self.formula_clock = 0
        for name, count, width in args.modules:
            m = ModuleState(name, width, getattr(args, "formulas", False))
            for i in range(count):
                m.records[datagen.record_id(name, i)] = self.with_formulas(m, datagen.generate_record(
                    self.seed, name, i, m.fdefs, self.anchor))
            m.next_index = count
            for i in range(args.initial_deleted):
                rng = datagen.rng_for(self.seed, name, i, "predeleted")
                rid = datagen.pre_deleted_id(name, i)
                t = self.anchor - rng.randint(3600, 20 * 86400)
                perm = i % 2 == 1
                m.deleted[rid] = {
                    "id": rid, "type": "permanent" if perm else "recycle", "deleted_time": t,
                    "display_name": None if perm else rng.choice(datagen.LAST_NAMES),
                    "deleted_by": None if perm else rng.choice(datagen.USER_IDS),
                    "created_by": None if perm else rng.choice(datagen.USER_IDS),
                }
            self.modules[name] = m
        self.subforms = {}
        for m in self.modules.values():
            for fd in m.fdefs:
                if fd.data_type == "subform":
                    sf = fd.meta["subform"]["module"]["api_name"]
                    self.subforms[sf] = SubformState(sf, m)
        self.row_seq = 0
        self.users = [user_entry(uid, name, email, k, self.anchor - 40 * 86400 + k * 3600)
                      for k, (uid, name, email) in enumerate(datagen.USERS)]
        self.user_seq = 0
        self.tokens = {}                            # access token -> expiry epoch
        self.token_scopes = {}                      # access token -> {scope, lower case}
        self.mints = collections.defaultdict(collections.deque)
        self.channels = {}                          # channel_id -> dict
        self.jobs = {}                              # job_id -> dict
        self.job_seq = 0
        self.downloads = collections.deque()
        self.mutation_seq = 0
        self.requests = []
        self.req_index = 0
        self.stats = collections.Counter()
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None

    # ------------------------------------------------------------ modules --
    def subform(self, name):
        """The SubformState of a subform module name (any case), or None."""
        for k, v in self.subforms.items():
            if k.lower() == (name or "").lower():
                return v
        return None

    def new_row_id(self, sf):
        self.row_seq += 1
        return str(datagen.BASE_ID + datagen.module_num(sf) * datagen.MODULE_SPAN
                   + 60_000_000_000 + self.row_seq * 7)

    def resolve_lines(self, m, fd, old_rows, given):
        """REST subform input against the stored rows: a row with a known id
        is that row edited (fields not given keep their values), a row
        without id is added, a stored row not listed is removed (Zoho's
        update semantics)."""
        sf = fd.meta["subform"]["module"]["api_name"]
        sfs = self.subforms[sf]
        if not isinstance(given, list):
            raise ValueError("a subform value is a list of rows")
        old = {r["id"]: r for r in old_rows or ()}
        out = []
        seq = 0
        for g in given:
            if not isinstance(g, dict):
                raise ValueError("a subform row is an object")
            rid = str(g["id"]) if g.get("id") is not None else None
            if rid is not None and rid not in old:
                raise ValueError("unknown subform row id %s" % rid)
            row = dict(old[rid]) if rid else {"id": self.new_row_id(sf), "Product_Name": None,
                                                "Quantity": 1.0, "List_Price": 0.0, "Discount": 0.0,
                                                "Tax": 0.0, "Description": None}
            for k, v in g.items():
                if k in ("id", "Parent_Id", "Total", "Net_Total", "Sequence_Number"):
                    continue
                sfd = sfs.byname.get(k)
                if sfd is None:
                    raise ValueError("unknown subform field %s" % k)
                row[k] = self._conv(sfd, v)
            seq += 1
            row["Sequence_Number"] = seq
            out.append(inventory.fix_line(row))
        return tuple(out)

    def module(self, name, code="INVALID_MODULE", status=400):
        m = self.modules.get(name)
        if m is None:
            for k, v in self.modules.items():
                if k.lower() == (name or "").lower():
                    return v
            raise SimError(status, code, details={"resource_path_index": 0} if code == "INVALID_MODULE" else {})
        return m

    def now(self):
        return int(time.time())

    def with_formulas(self, m, rec):
        """rec with its formula fields computed at the current clock (the
        same dict when the module has none or nothing changes)."""
        if not m.has_formulas:
            return rec
        vals = datagen.formula_values(rec, m.fdefs, self.anchor, self.formula_clock)
        if all(rec.get(k) == v for k, v in vals.items()):
            return rec
        return dict(rec, **vals)

    def recompute_formulas(self, steps=1):
        """Lock held. Zoho recomputing formulas: the clock moves on `steps`
        days and every live record's formula values change; Modified_Time
        does not move and no notification goes out. Returns records
        changed."""
        self.formula_clock += steps
        n = 0
        for m in self.modules.values():
            for rid, rec in list(m.records.items()):
                new = self.with_formulas(m, rec)
                if new is not rec:
                    m.records[rid] = new
                    n += 1
        return n

    def fmt(self, epoch):
        return datagen.fmt_dt(epoch, self.tz)

    # -------------------------------------------------------------- OAuth --
    def mint_token(self, params):
        with self.lock:
            grant = params.get("grant_type")
            if grant != "refresh_token":
                self.stats["token_refused"] += 1
                if grant == "authorization_code":
                    return 200, {"error": "invalid_code"}
                return 200, {"error": "unsupported_grant_type"}
            if params.get("client_id") != self.client_id:
                self.stats["token_refused"] += 1
                return 200, {"error": "invalid_client"}
            if params.get("client_secret") != self.client_secret:
                self.stats["token_refused"] += 1
                return 200, {"error": "invalid_client_secret"}
            rt = params.get("refresh_token")
            if rt != self.refresh_token:
                self.stats["token_refused"] += 1
                return 200, {"error": "invalid_code"}
            now = time.time()
            q = self.mints[rt]
            window = self.cfg["token_mint_window_s"]
            while q and q[0] <= now - window:
                q.popleft()
            limit = self.cfg["token_mint_limit"]
            if limit and len(q) >= limit:
                self.stats["token_throttled"] += 1
                return 400, {"error_description": "You have made too many requests continuously. "
                                                  "Please try again after some time.",
                             "error": "Access Denied", "status": "failure"}
            q.append(now)
            tok = "1000.%s.%s" % (secrets.token_hex(16), secrets.token_hex(16))
            lifetime = int(self.cfg["token_lifetime"])
            self.tokens[tok] = now + lifetime
            scopes = parse_scopes(self.cfg["scopes"])
            self.token_scopes[tok] = {x.lower() for x in scopes}
            self.stats["tokens_minted"] += 1
            return 200, {"access_token": tok, "scope": " ".join(scopes),
                         "api_domain": self.base_url, "token_type": "Bearer", "expires_in": lifetime}

    def check_auth(self, header):
        if not header or not header.startswith("Zoho-oauthtoken "):
            self.stats["auth_failures"] += 1
            raise SimError(401, "INVALID_TOKEN")
        tok = header[len("Zoho-oauthtoken "):].strip()
        with self.lock:
            exp = self.tokens.get(tok)
            if exp is None or exp <= time.time():
                self.stats["auth_failures"] += 1
                raise SimError(401, "INVALID_TOKEN")
        return tok

    def check_scope(self, tok, endpoint, req, groups):
        """401 OAUTH_SCOPE_MISMATCH, as Zoho answers, when the token's
        scopes do not cover the call (after check_auth)."""
        with self.lock:
            have = self.token_scopes.get(tok, set())
        need = scopes_needed(endpoint, req, groups)
        if need and not any(any(x.lower() in have for x in alt) and
                            all(any(y.lower() in have for y in part) for part in alt_all)
                            for alt, alt_all in need):
            with self.lock:
                self.stats["scope_failures"] += 1
            raise SimError(401, "OAUTH_SCOPE_MISMATCH")

    def expire_tokens(self):
        with self.lock:
            n = len(self.tokens)
            for k in self.tokens:
                self.tokens[k] = 0
            return n

    # ------------------------------------------------------------ records --
    def parse_input(self, m, values, creating):
        """REST-shaped input values -> internal values.  Raises SimError 400."""
        out = {}
        if not isinstance(values, dict):
            raise SimError(400, "INVALID_DATA", "values must be an object")
        for k, v in values.items():
            fd = m.byname.get(k)
            if fd is None or k == "id" or fd.gen == "formula":
                raise SimError(400, "INVALID_DATA", "unknown or read-only field", {"api_name": k})
            if fd.data_type == "subform":
                out[k] = ("__rows__", v)        # resolved against the stored rows
                continue
            try:
                out[k] = self._conv(fd, v)
            except (TypeError, ValueError, KeyError) as e:
                raise SimError(400, "INVALID_DATA", "bad value: %s" % e,
                               {"api_name": k, "expected_data_type": fd.data_type})
        return out

    def _conv(self, fd, v):
        dt = fd.data_type
        if fd.gen == "tag":
            if v is None or v == "":
                return ()
            if isinstance(v, str):
                v = [p for p in v.split(";") if p]
            return tuple(str(t["name"]) if isinstance(t, dict) else str(t) for t in v)
        if dt in ("multiuserlookup", "multiselectlookup", "fileupload", "imageupload"):
            if v is None or v == "":
                return ()
            if not isinstance(v, list):
                raise ValueError("expected a list")
            out = []
            for x in v:
                if dt == "multiuserlookup":
                    u = x.get("users", x) if isinstance(x, dict) else x
                    uid = str(u["id"]) if isinstance(u, dict) else str(u)
                    if uid not in datagen.USER_BY_ID:
                        raise ValueError("unknown user id %s" % uid)
                    out.append(uid)
                elif dt == "multiselectlookup":
                    mod = fd.meta["multiselectlookup"]["connected_module"]["api_name"]
                    r = x.get(mod, x) if isinstance(x, dict) else {"id": x, "name": ""}
                    out.append((str(r["id"]), str(r.get("name") or "")))
                else:
                    out.append((str(x.get("File_Id__s") or x.get("id")), str(x.get("File_Name__s") or ""),
                                int(x.get("Size__s") or 0)))
            return tuple(out)
        if dt == "userlookup":
            if v is None or v == "":
                return None
            uid = v["id"] if isinstance(v, dict) else str(v)
            if uid not in datagen.USER_BY_ID:
                raise ValueError("unknown user id %s" % uid)
            return uid
        if dt == "layout":
            if v is None or v == "":
                return None
            return (str(v["id"]), str(v.get("name") or "")) if isinstance(v, dict) else (str(v), "")
        if fd.gen == "what":
            if v is None or v == "":
                return None
            if not isinstance(v, dict) or "id" not in v:
                raise ValueError("What_Id is {id, name, $se_module}")
            return (str(v["id"]), str(v.get("name") or ""), str(v.get("$se_module") or "Accounts"))
        if v is None or v == "":
            if dt == "multiselectpicklist":
                return ()
            if dt == "boolean":
                return False
            if dt == "ownerlookup":
                raise ValueError("owner required")
            return None
        if dt == "datetime":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
            return parse_iso(v)
        if dt == "date":
            if not DATE_RE.match(v):
                raise ValueError("date must be YYYY-MM-DD")
            return v
        if dt == "ownerlookup":
            uid = v["id"] if isinstance(v, dict) else str(v)
            if uid not in datagen.USER_BY_ID:
                raise ValueError("unknown user id %s (known: %s)" % (uid, ",".join(datagen.USER_IDS)))
            return uid
        if dt == "lookup":
            if isinstance(v, dict):
                return (str(v["id"]), str(v.get("name") or ""))
            return (str(v), "")
        if dt == "multiselectpicklist":
            if isinstance(v, str):
                v = [p for p in v.split(";") if p]
            return tuple(str(x) for x in v)
        if dt in ("integer", "bigint"):
            if isinstance(v, bool):
                raise ValueError("not an integer")
            return int(v)
        if dt in ("double", "currency", "percent"):
            if isinstance(v, bool):
                raise ValueError("not a number")
            return round(float(v), 2)
        if dt == "boolean":
            if isinstance(v, str):
                if v.lower() not in ("true", "false"):
                    raise ValueError("not a boolean")
                return v.lower() == "true"
            return bool(v)
        if not isinstance(v, str):
            raise ValueError("expected a string")
        return v

    def _resolve_rows(self, m, old, parsed):
        for k, v in list(parsed.items()):
            if isinstance(v, tuple) and len(v) == 2 and v[0] == "__rows__":
                try:
                    parsed[k] = self.resolve_lines(m, m.byname[k], old.get(k) if old else (), v[1])
                except (TypeError, ValueError, KeyError) as e:
                    raise SimError(400, "INVALID_DATA", "bad value: %s" % e,
                                   {"api_name": k, "expected_data_type": "subform"})

    def _log_mutation(self, m, op, rid, fields=None, t=None):
        self.mutation_seq += 1
        m.log.append({"seq": self.mutation_seq, "time": t or self.now(), "op": op, "id": rid,
                      "fields": fields or []})
        self.stats["mutations_" + op] += 1

    def create_record(self, m, values=None, rng=None, index=None):
        """Create a record (lock held).  Returns the stored record."""
        now = self.now()
        parsed = self.parse_input(m, values or {}, True)
        idx = m.next_index
        m.next_index += 1
        rec = datagen.generate_record(self.seed, m.name, idx, m.fdefs, self.anchor, now=now)
        if rng is not None:
            # vary content by the mutation rng, keep id/time
            fresh = datagen.generate_record(rng.randrange(1 << 30), m.name, idx, m.fdefs, self.anchor, now=now)
            rec.update({k: v for k, v in fresh.items() if k not in ("id",)})
        self._resolve_rows(m, rec, parsed)
        rec.update(parsed)
        inventory.recompute_totals(rec, m.fdefs)
        if "Full_Name" in m.byname and "Full_Name" not in parsed:
            rec["Full_Name"] = datagen.full_name(rec.get("First_Name"), rec.get("Last_Name"))
        if rec.get("Last_Name") is None and "Last_Name" in m.byname:
            rec["Last_Name"] = "Unnamed"
            rec["Full_Name"] = datagen.full_name(rec.get("First_Name"), "Unnamed")
        rec = self.with_formulas(m, rec)
        m.records[rec["id"]] = rec
        self._log_mutation(m, "create", rec["id"], t=now)
        return rec

    def update_record(self, m, rid, values=None, rng=None, convert=False):
        """Update (lock held).  Returns (record, changed field list)."""
        old = m.records.get(rid)
        if old is None:
            raise SimError(404, "RESOURCE_NOT_FOUND", "no live record with this id", {"id": rid})
        now = self.now()
        if values:
            parsed = self.parse_input(m, values, False)
        elif convert:
            if "Converted__s" not in m.byname:
                raise SimError(400, "INVALID_DATA", "module has no conversion")
            acc = datagen.account_lookup((rng or random).randint(0, 1000))
            parsed = {"Converted__s": True, "Converted_Date_Time": now, "Converted_Account": acc,
                      "Lead_Conversion_Time": max(0, (now - (old.get("Created_Time") or now)) // 86400)}
        else:
            r = rng or random.Random()
            parsed = datagen.update_values(r, m.fdefs, self.anchor)
            for fd in m.fdefs:             # line items: edited, added or removed
                if fd.data_type == "subform" and r.random() < 0.5:
                    sf = fd.meta["subform"]["module"]["api_name"]
                    parsed[fd.api_name] = inventory.mutate_lines(r, old.get(fd.api_name) or (),
                                                                 lambda: self.new_row_id(sf))
        self._resolve_rows(m, old, parsed)
        new = dict(old)
        new.update(parsed)
        inventory.recompute_totals(new, m.fdefs)
        for k in ("Sub_Total", "Grand_Total"):
            if k in m.byname and new.get(k) != old.get(k) and k not in parsed:
                parsed[k] = new[k]
        if "Full_Name" in m.byname and ("First_Name" in parsed or "Last_Name" in parsed) \
                and "Full_Name" not in parsed:
            new["Full_Name"] = datagen.full_name(new.get("First_Name"), new.get("Last_Name"))
        changed = [k for k in parsed if k not in ("Modified_Time",) and old.get(k) != new.get(k)]
        if "Full_Name" in m.byname and old.get("Full_Name") != new.get("Full_Name") and "Full_Name" not in changed:
            changed.append("Full_Name")
        if "Modified_Time" not in parsed:
            new["Modified_Time"] = now
        if "Modified_By" in m.byname and "Modified_By" not in parsed:
            new["Modified_By"] = (rng or random).choice(datagen.USER_IDS)
        new = self.with_formulas(m, new)
        m.records[rid] = new
        self._log_mutation(m, "convert" if convert else "update", rid, changed, t=now)
        return new, changed

    def delete_record(self, m, rid, permanent=False):
        old = m.records.pop(rid, None)
        if old is None:
            raise SimError(404, "RESOURCE_NOT_FOUND", "no live record with this id", {"id": rid})
        now = self.now()
        who = old.get("Modified_By") or datagen.USER_IDS[0]
        entry = {"id": rid, "type": "permanent" if permanent else "recycle", "deleted_time": now,
                 "display_name": None if permanent else (old.get("Full_Name") or old.get("Last_Name")
                                                         or old.get("Name")),
                 "deleted_by": None if permanent else who,
                 "created_by": None if permanent else old.get("Created_By"),
                 "_record": old}
        m.deleted[rid] = entry
        self._log_mutation(m, "delete", rid, t=now)
        return entry

    def restore_record(self, m, rid):
        entry = m.deleted.get(rid)
        if entry is None or entry.get("type") != "recycle" or "_record" not in entry:
            raise SimError(404, "RESOURCE_NOT_FOUND", "not in the recycle bin", {"id": rid})
        del m.deleted[rid]
        rec = dict(entry["_record"])
        rec["Modified_Time"] = self.now()
        rec = self.with_formulas(m, rec)
        m.records[rid] = rec
        self._log_mutation(m, "restore", rid)
        return rec

    def deleted_json(self, e):
        def user(uid):
            if uid is None:
                return None
            u = datagen.USER_BY_ID[uid]
            return {"name": u["name"], "id": u["id"]}
        return {"deleted_by": user(e["deleted_by"]), "id": e["id"], "display_name": e["display_name"],
                "type": e["type"], "created_by": user(e["created_by"]),
                "deleted_time": self.fmt(e["deleted_time"])}

    # ------------------------------------------------------ notifications --
    def emit(self, m, op, entries):
        """op: insert|update|delete; entries: list of (id, changed_fields, affected_values).
        Called with the lock held; enqueues one callback per matching live channel."""
        if not entries:
            return
        if not self.cfg["notify_enabled"]:
            self.stats["notifications_suppressed"] += len(entries)
            return
        event = {"insert": "create", "update": "edit", "delete": "delete"}[op]
        now = time.time()
        for ch in list(self.channels.values()):
            if ch["expiry"] <= now:
                continue
            if "%s.%s" % (m.name, event) not in ch["events"]:
                continue
            sel = entries
            if op == "update" and ch.get("condition_fields", {}).get(m.name):
                sel = [e for e in entries if _condition_matches(ch["condition_fields"][m.name], set(e[1]))]
                if not sel:
                    continue
            body = {
                "server_time": None,            # stamped at send time
                "query_params": ch["query_params"],
                "module": m.name,
                "resource_uri": "%s/crm/v2/%s" % (self.base_url, m.name),
                "ids": [e[0] for e in sel],
                "affected_fields": [] if op != "update" else [{e[0]: list(e[1])} for e in sel],
                "operation": op,
                "channel_id": ch["channel_id"],
                "token": ch["token"],
            }
            if ch["return_affected_field_values"]:
                body["affected_values"] = [{"record_id": e[0], "values": e[2]} for e in sel]
            self.notifier.submit("notify", ch["notify_url"], body, channel_id=ch["channel_id"])
            self.stats["notifications_queued"] += 1

    def affected_values(self, m, rec, fields):
        tz = self.tz
        ctx = datagen._subform_ctx(rec, m.fdefs)
        return {f: datagen.json_value(m.byname[f], rec.get(f), tz, ctx) for f in fields if f in m.byname}

    def insert_values(self, m, rec):
        vals = datagen.record_json(rec, m.fdefs, self.tz)
        return {k: v for k, v in vals.items() if v is not None and v != [] and k != "id"}

    def delete_values(self, m, rec):
        who = rec.get("Modified_By") or datagen.USER_IDS[0]
        return {"Modified_By": dict(datagen.USER_BY_ID[who]), "Record_Status__s": 0}

    # --------------------------------------------------------------- jobs --
    def new_job_id(self):
        self.job_seq += 1
        return str(datagen.BASE_ID + 859_031 + 50_000_000 + self.job_seq * 1009)

    def advance_job(self, job, steps, now=None):
        """Lock held.  Move the job `steps` steps; snapshot on entering IN PROGRESS."""
        if job["state"] in ("COMPLETED", "FAILURE"):
            return
        job["progress"] += steps
        now = time.time() if now is None else now
        if job["progress"] >= 1 and job["state"] == "ADDED":
            self._snapshot(job)
            job["state"] = "IN PROGRESS"
        if job["progress"] >= job["polls_needed"] and now >= job.get("ready_at", 0):
            if job["state"] == "ADDED":
                self._snapshot(job)
            job["state"] = "FAILURE" if job["fail"] else "COMPLETED"
            job["completed_at"] = now
            self.stats["jobs_" + job["state"].lower()] += 1
            if job["callback_url"]:
                self.notifier.submit("bulk_callback", job["callback_url"], self.job_envelope(job),
                                     job_id=job["id"])

    def _snapshot(self, job):
        m = self.modules.get(job["module"]) or self.subforms[job["module"]]
        pred = job["predicate"]
        recs = [r for r in m.sorted_records() if pred is None or pred(r)]
        ps = job["per_page"]
        start = (job["page"] - 1) * ps
        job["snapshot"] = recs[start:start + ps]
        job["count"] = len(job["snapshot"])
        job["more_records"] = len(recs) > start + ps
        job["snapshot_at"] = time.time()

    def tick_jobs(self):
        """Time-based progress (called by the ticker thread)."""
        with self.lock:
            step = self.cfg["bulk_step_ms"] / 1000.0
            now = time.time()
            for job in self.jobs.values():
                # Steps done, waiting only for bulk_job_ms of wall time.
                if job["state"] not in ("COMPLETED", "FAILURE") and \
                        job["progress"] >= job["polls_needed"] and now >= job.get("ready_at", 0):
                    self.advance_job(job, 0, now)
                if step <= 0:
                    continue
                while job["state"] not in ("COMPLETED", "FAILURE") and now >= job["next_step_at"]:
                    job["next_step_at"] += step
                    self.advance_job(job, 1, now)

    def job_envelope(self, job):
        d = {"id": job["id"], "operation": "read", "state": job["state"]}
        if job["state"] == "COMPLETED":
            d["result"] = {"page": job["page"], "per_page": job["per_page"], "count": job["count"],
                           "download_url": "/crm/bulk/v6/read/%s/result" % job["id"],
                           "more_records": job["more_records"]}
        elif job["state"] == "FAILURE":
            d["result"] = {"error_message": {"status": "error", "code": "INTERNAL_SERVER_ERROR",
                                             "message": "Internal server error occurred.", "details": {}}}
        d["query"] = job["query_echo"]
        d["created_by"] = {"id": job["created_by"], "name": datagen.USER_BY_ID[job["created_by"]]["name"]}
        d["created_time"] = self.fmt(job["created"])
        d["file_type"] = "csv"
        return {"data": [d]}

    def job_zip(self, job):
        """Render (once) and return the ZIP path of a completed job."""
        with job["zip_lock"]:
            if job["zip_path"] is None:
                m = self.modules.get(job["module"]) or self.subforms[job["module"]]
                path = os.path.join(self.tmpdir, "%s.zip" % job["id"])
                bulkzip.write_zip(path, job["id"], job["snapshot"], m.fdefs, job["fields"], self.tz,
                                  streamed=job["zip_streamed"], csv_faults=job.get("csv_faults"))
                job["zip_path"] = path
            return job["zip_path"]

    # -------------------------------------------------------- request log --
    def log_request(self, entry):
        with self.lock:
            entry["index"] = self.req_index
            self.req_index += 1
            self.requests.append(entry)
            if len(self.requests) > 200000:
                del self.requests[:100000]
            if not entry.get("control"):
                self.stats["requests"] += 1
            if self.log_file:
                import json
                self.log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self.log_file.flush()


def _condition_matches(cond, changed):
    """cond: ("field", name) | ("group", op, [cond...])"""
    if cond[0] == "field":
        return cond[1] in changed
    results = [_condition_matches(c, changed) for c in cond[2]]
    return all(results) if cond[1] == "and" else any(results)
