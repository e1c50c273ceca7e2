"""truth.py — compare a module table with the simulator's truth, typed.

The simulator's `GET /_sim/truth/<Module>` gives every live record in
Records-API JSON shape, the deleted list, and the field metadata. This module
turns both sides into the same Python values, by the field's `data_type`
(the mapping of DESIGN.md, "One typed form from both sources"):

    text-like          str                (JSON "" and null -> None)
    integer, bigint    int                (bigint JSON strings too)
    double, currency,  Decimal            (JSON number -> Decimal(repr(n)); exact,
    percent                                so a float rendered with 17 digits differs)
    boolean            bool
    date               datetime.date
    datetime           aware datetime in UTC (the instant, whatever the offset)
    multiselect        list of str        (JSON [] and null -> None; PostgreSQL text[])
    lookup, owner      int                (the id of a {id, ...} object)
    multiselectlookup, list of int        (the linked records' / users' ids, in
    multiuserlookup                        order; [] -> None; PostgreSQL bigint[])
    subform            not a column: a child table, compared by diff_lines()
    anything else      left as is (jsonb)

Use:

    from truth import assert_matches_truth, diff_table
    truth = sim.control("GET", "/truth/Leads")
    assert_matches_truth(db, truth)                 # fails with the first differences
    diffs = diff_table(db, truth, tombstones="required")

`tombstones`: what the truth's deleted list demands of our table —
"required" (a row with deleted_at set), "allowed" (no live row: a tombstone
or nothing, e.g. records deleted before the first export) or "ignore".
"""

import datetime as _dt
import decimal
import json

TEXT_TYPES = {"text", "email", "phone", "website", "picklist", "textarea", "autonumber",
              "profileimage"}
INT_TYPES = {"integer", "bigint"}
NUMERIC_TYPES = {"double", "currency", "percent", "decimal"}
LOOKUP_TYPES = {"lookup", "ownerlookup", "userlookup", "layout"}


def _kind(meta):
    dt = meta.get("data_type")
    jt = meta.get("json_type")
    if dt in ("formula", "rollup_summary"):
        # typed by the result: formula.return_type (rollup_summary.return_type)
        rt = (meta.get(dt) or {}).get("return_type") or jt
        return {"double": "numeric", "currency": "numeric", "percent": "numeric",
                "decimal": "numeric", "integer": "int", "boolean": "bool", "string": "text",
                "text": "text", "date": "date", "datetime": "datetime"}.get(rt, "json")
    if dt == "text" and jt == "jsonarray":
        return "multi"
    if dt in TEXT_TYPES:
        return "text"
    if dt in INT_TYPES:
        return "int"
    if dt in NUMERIC_TYPES:
        return "numeric"
    if dt == "boolean":
        return "bool"
    if dt == "date":
        return "date"
    if dt == "datetime":
        return "datetime"
    if dt == "multiselectpicklist":
        return "multi"
    if dt in LOOKUP_TYPES:
        return "lookup"
    if dt in ("multiselectlookup", "multiuserlookup"):
        return "ids"
    return "json"


def _linked_id(item):
    """The linked record's id of a multiselectlookup/multiuserlookup item:
    its first member that is an object with an id (the item's own id is
    the link's)."""
    if not isinstance(item, dict):
        return int(item)
    for v in item.values():
        if isinstance(v, dict) and v.get("id") is not None:
            return int(v["id"])
    raise ValueError("no linked id in %r" % (item,))


def _utc(d):
    if d.tzinfo is None:
        raise ValueError("naive datetime %r" % d)
    return d.astimezone(_dt.timezone.utc)


def theirs_value(kind, v):
    """A Records-API JSON value -> the typed Python value."""
    if v is None:
        return None
    if kind == "text":
        return v if v != "" else None
    if kind == "int":
        return int(v)
    if kind == "numeric":
        if isinstance(v, bool):
            raise ValueError("boolean %r for a number" % v)
        return decimal.Decimal(repr(v) if isinstance(v, float) else str(v))
    if kind == "bool":
        return bool(v)
    if kind == "date":
        return _dt.date.fromisoformat(v)
    if kind == "datetime":
        return _utc(_dt.datetime.fromisoformat(v))
    if kind == "multi":
        items = [x["name"] if isinstance(x, dict) else x for x in v]
        return items or None
    if kind == "lookup":
        if isinstance(v, dict):
            return int(v["id"]) if v.get("id") is not None else None
        return int(v)
    if kind == "ids":
        return [_linked_id(x) for x in v] or None
    return v


def ours_value(kind, v):
    """A value psycopg2 returned for our typed column -> the same form."""
    if v is None:
        return None
    if kind == "datetime":
        return _utc(v)
    if kind == "numeric":
        return decimal.Decimal(v)
    if kind in ("multi", "ids"):
        return list(v)
    if kind == "json" and isinstance(v, str):
        return v
    return v


def _same(kind, a, b):
    if kind == "numeric" and a is not None and b is not None:
        # 1234.5 and 1234.50 are the same number; 1234.5000000000002 is not.
        return a == b
    return a == b


class Diff:
    __slots__ = ("id", "field", "ours", "theirs")

    def __init__(self, rid, field, ours, theirs):
        self.id, self.field, self.ours, self.theirs = rid, field, ours, theirs

    def __repr__(self):
        return "id=%s field=%s ours=%r theirs=%r" % (self.id, self.field, self.ours, self.theirs)


def table_columns(db, module, schema="zcrm", metas=None):
    """{api_name: column_name} from <schema>.fields for module: the current
    rows (a row superseded by a type change names a frozen column), matched
    to the truth's fields (metas: {api_name: meta}) by Zoho's field id where
    recorded, so a field renamed in Zoho maps to the column it always had."""
    rows = db.query("SELECT api_name, column_name, field_id FROM %s.fields WHERE module = %%s"
                    " AND superseded_at IS NULL" % schema, module)
    cols = {a: c for a, c, _ in rows}
    by_id = {f: c for _, c, f in rows if f}
    for name, meta in (metas or {}).items():
        if meta.get("id") in by_id:
            cols[name] = by_id[meta["id"]]
    return cols


def diff_table(db, truth, module=None, schema="zcrm", tombstones="required", limit=None,
               fields=None):
    """The differences between <schema>.<module> and the simulator's truth,
    as a list of Diff (field "<row>" for a missing or extra row,
    "deleted_at" for a tombstone problem). fields: compare only these API
    names (default: every field in the truth's metadata)."""
    module = module or truth["module"]
    table = module.lower()
    metas = {m["api_name"]: m for m in truth["fields"]}
    cols = table_columns(db, module, schema, metas)
    # A subform is a child table (diff_lines), not a column.
    names = [n for n in (fields or metas) if n in metas
             and metas[n].get("data_type") != "subform"]
    diffs = []
    missing_cols = [n for n in names if n not in cols]
    for n in missing_cols:
        diffs.append(Diff("*", n, "<no column>", metas[n].get("data_type")))
    names = [n for n in names if n in cols and n != "id"]
    kinds = {n: _kind(metas[n]) for n in names}
    select = ", ".join('"%s"' % cols[n].replace('"', '""') for n in names)
    rows = db.query('SELECT id, deleted_at%s FROM %s."%s"'
                    % ((", " + select) if select else "", schema, table))
    ours = {}
    for r in rows:
        ours[int(r[0])] = (r[1], dict(zip(names, r[2:])))

    def full():
        return limit is not None and len(diffs) >= limit

    live_ids = set()
    for rec in truth["records"]:
        if full():
            return diffs
        rid = int(rec["id"])
        live_ids.add(rid)
        got = ours.get(rid)
        if got is None:
            diffs.append(Diff(rid, "<row>", None, "live"))
            continue
        deleted_at, vals = got
        if deleted_at is not None:
            diffs.append(Diff(rid, "deleted_at", deleted_at, None))
        for n in names:
            k = kinds[n]
            try:
                t = theirs_value(k, rec.get(n))
            except (ValueError, TypeError, KeyError, decimal.InvalidOperation) as e:
                diffs.append(Diff(rid, n, vals[n], "<unparsable %r: %s>" % (rec.get(n), e)))
                continue
            o = ours_value(k, vals[n])
            if not _same(k, o, t):
                diffs.append(Diff(rid, n, o, t))
    deleted_ids = set()
    for e in truth.get("deleted", []):
        rid = int(e["id"])
        deleted_ids.add(rid)
        if tombstones == "ignore" or full():
            continue
        got = ours.get(rid)
        if got is None:
            if tombstones == "required":
                diffs.append(Diff(rid, "<row>", None, "tombstone (deleted %s)" % e["deleted_time"]))
        elif got[0] is None:
            diffs.append(Diff(rid, "deleted_at", None, e["deleted_time"]))
    for rid, (deleted_at, _) in sorted(ours.items()):
        if full():
            break
        if rid in live_ids or rid in deleted_ids:
            continue
        if deleted_at is None:
            diffs.append(Diff(rid, "<row>", "live", None))
    return diffs


def diff_lines(db, truth, field, schema="zcrm", limit=None):
    """The differences between the child table of the subform `field` of
    truth's module (<module>__<field>, one row per line) and the lines of
    the truth's live records (truth["records"][i][field], each line a JSON
    object with its id): a line missing or extra ("<line>"), on another
    parent ("parent_id"), or a field that differs. The kinds come from the
    data types zcrm.subform_fields recorded; a line field without a column
    is a difference too."""
    module = truth["module"]
    table = "%s__%s" % (module.lower(), field.lower())
    meta = db.query("SELECT api_name, column_name, data_type FROM %s.subform_fields"
                    " WHERE table_name = %%s" % schema, table)
    cols = {a: c for a, c, _ in meta}
    kinds = {a: _kind({"data_type": d}) for a, _, d in meta}
    names = sorted(cols)
    theirs = {}
    for rec in truth["records"]:
        for line in rec.get(field) or []:
            theirs[int(line["id"])] = (int(rec["id"]), line)
    diffs = []
    seen = set()
    for _, line in theirs.values():
        for k in line:
            if k not in cols and k not in ("id", "Parent_Id") and k not in seen:
                seen.add(k)
                diffs.append(Diff("*", k, "<no column>", "line field"))
    select = "".join(', "%s"' % cols[n].replace('"', '""') for n in names)
    rows = db.query('SELECT id, parent_id%s FROM %s."%s"' % (select, schema, table))
    ours = {int(r[0]): (int(r[1]), dict(zip(names, r[2:]))) for r in rows}
    for lid in sorted(set(theirs) | set(ours)):
        if limit is not None and len(diffs) >= limit:
            break
        if lid not in ours:
            diffs.append(Diff(lid, "<line>", None, "parent %s" % theirs[lid][0]))
            continue
        if lid not in theirs:
            diffs.append(Diff(lid, "<line>", "parent %s" % ours[lid][0], None))
            continue
        parent, line = theirs[lid]
        if ours[lid][0] != parent:
            diffs.append(Diff(lid, "parent_id", ours[lid][0], parent))
        for n in names:
            k = kinds[n]
            try:
                t = theirs_value(k, line.get(n))
            except (ValueError, TypeError, KeyError, decimal.InvalidOperation) as e:
                diffs.append(Diff(lid, n, ours[lid][1][n], "<unparsable %r: %s>" % (line.get(n), e)))
                continue
            o = ours_value(k, ours[lid][1][n])
            if not _same(k, o, t):
                diffs.append(Diff(lid, n, o, t))
    return diffs


def format_diffs(diffs, first=20, total=None):
    lines = ["%d difference(s)%s; first %d:" % (len(diffs) if total is None else total,
                                                "" if total is None else "+",
                                                min(first, len(diffs)))]
    lines += ["  %r" % d for d in diffs[:first]]
    return "\n".join(lines)


def assert_matches_truth(db, truth, module=None, schema="zcrm", tombstones="required",
                         first=20, fields=None):
    """Fail (AssertionError) listing the first differences (id, field,
    ours, theirs) unless the table equals the truth."""
    diffs = diff_table(db, truth, module=module, schema=schema, tombstones=tombstones,
                       fields=fields)
    if diffs:
        raise AssertionError("%s.%s differs from the simulator's truth: %s"
                             % (schema, (module or truth["module"]).lower(),
                                format_diffs(diffs, first)))
    return len(truth["records"])


def dump_truth(truth, path):
    """Keep a copy of the truth next to the test's logs (for a failing run)."""
    with open(path, "w") as f:
        json.dump(truth, f, ensure_ascii=False)
