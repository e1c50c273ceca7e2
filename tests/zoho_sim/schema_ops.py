"""Schema changes at run time (POST /_sim/fields): add, remove, rename and
retype fields, add picklist values - as a Zoho admin does in Setup.

After a change the fields metadata, the Bulk Read CSV and the Records JSON
all follow the new field list (they render from ModuleState.fdefs/metas).
Like Zoho, a schema change does not move any record's Modified_Time (unless
the call asks for it with "touch": true): nothing tells a client that the
values of existing records changed shape.

  add:     a new field; every live record gets a generated value
           (deterministic: seeded by the simulator's seed, the record id
           and the field name), rendered by its type.
  remove:  the field goes from the metadata, the CSV and the JSON.
  rename:  a new api_name, same field id; values kept under the new name.
  retype:  a new data_type (json_type follows, or as given), same field
           id; values converted as Zoho converts them: to text as their
           text; to a number when the text parses, else null; to a date /
           datetime when it parses, else null; to boolean true/false text,
           else false; to multi-select split on ';'.
  picklist_add: values appended to a picklist's pick_list_values.

All records are rebuilt as new dicts (records are never modified in place:
a bulk job's snapshot keeps what it saw).
"""

import random
import re

import datagen
from store import SimError, parse_iso

# The generator of a new or retyped field, by data type (unknown: text).
GEN_BY_TYPE = {
    "text": "company", "textarea": "description", "email": "email", "phone": "phone",
    "website": "website", "picklist": "picklist", "multiselectpicklist": "multi",
    "integer": "employees", "bigint": "bigint", "double": "money", "currency": "money",
    "percent": "percent", "boolean": "bool", "date": "future_date",
}
TEXT_TYPES = {"text", "textarea", "email", "phone", "website", "picklist", "autonumber"}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
DEFAULT_CHOICES = ["North", "South", "East, West", "Centre \"C\""]


def _text_of(fd, v, tz):
    """A value as the text Zoho shows for it (the CSV cell)."""
    if v is None or v == () or v == "":
        return None
    return datagen.csv_cell_fn(fd, tz)(v) or None


def convert(old_fd, new_type, v, tz):
    """Internal value of old_fd -> internal value of type new_type."""
    if new_type == "multiselectpicklist":
        s = _text_of(old_fd, v, tz)
        return tuple(p for p in s.split(";") if p) if s else ()
    s = _text_of(old_fd, v, tz)
    if new_type == "boolean":
        return s in ("true", "True") if s else False
    if s is None:
        return None
    if new_type in ("integer", "bigint"):
        try:
            f = float(s)
        except ValueError:
            return None
        return int(f) if f == f and abs(f) < 2 ** 63 else None
    if new_type in ("double", "currency", "percent"):
        try:
            f = float(s)
        except ValueError:
            return None
        return round(f, 2) if f == f and abs(f) < 1e15 else None
    if new_type == "date":
        return s if datagen_date(s) else None
    if new_type == "datetime":
        try:
            return parse_iso(s)
        except ValueError:
            return None
    if new_type in ("ownerlookup", "lookup"):
        return None
    return s          # text-like and unknown types: the text


def datagen_date(s):
    return bool(re.match(r"^\d{4}-\d\d-\d\d$", s or ""))


def _meta_for(m, api_name, label, dtype, json_type, fid, choices):
    meta = {
        "api_name": api_name, "id": fid, "field_label": label, "display_label": label,
        "data_type": dtype, "json_type": json_type,
        "length": 255, "decimal_place": 2 if dtype in ("currency", "double", "percent") else None,
        "read_only": False, "field_read_only": False, "custom_field": True,
        "system_mandatory": False, "visible": True, "sortable": True, "searchable": True,
        "pick_list_values": [], "lookup": {}, "multiselectlookup": {}, "formula": {},
    }
    _set_choices(meta, choices or [])
    return meta


def _set_choices(meta, choices):
    base = int(meta["id"]) * 100
    plv = []
    if meta["data_type"] == "picklist":
        plv.append({"display_value": "-None-", "actual_value": "-None-",
                    "reference_value": "-None-", "id": str(base), "sequence_number": 0,
                    "type": "used"})
    if meta["data_type"] in ("picklist", "multiselectpicklist"):
        for k, v in enumerate(choices):
            plv.append({"display_value": v, "actual_value": v, "reference_value": v,
                        "id": str(base + k + 1), "sequence_number": k + 1, "type": "used"})
    meta["pick_list_values"] = plv


def _field(m, name):
    fd = m.byname.get(name)
    if fd is None:
        raise SimError(400, "INVALID_DATA", "no such field", {"api_name": name})
    if name in ("id", "Modified_Time", "Created_Time"):
        raise SimError(400, "INVALID_DATA", "a system field cannot change", {"api_name": name})
    return fd


def _new_name(m, name):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SimError(400, "INVALID_DATA", "bad api_name", {"api_name": name})
    if name in m.byname:
        raise SimError(400, "DUPLICATE_DATA", "a field has this api_name", {"api_name": name})
    return name


def _rebuild(m):
    m.byname = {fd.api_name: fd for fd in m.fdefs}


def _rewrite_records(m, fn):
    """Each live record (and recycle-bin copy) -> a new dict fn(rec)."""
    for rid in list(m.records):
        m.records[rid] = fn(dict(m.records[rid]))
    for e in m.deleted.values():
        if "_record" in e:
            e["_record"] = fn(dict(e["_record"]))


def apply(store, m, change):
    """One change (dict with "op") to module m; the store lock is held."""
    op = change.get("op")
    tz = store.tz
    if op == "add":
        name = _new_name(m, change.get("api_name"))
        dtype = change.get("data_type") or "text"
        if not isinstance(dtype, str):
            raise SimError(400, "INVALID_DATA", "data_type must be a string")
        json_type = change.get("json_type") or datagen.JSON_TYPES.get(dtype, "string")
        choices = list(change.get("values") or (DEFAULT_CHOICES if dtype in (
            "picklist", "multiselectpicklist") else []))
        m.added_fields = getattr(m, "added_fields", 0) + 1
        fid = str(datagen.BASE_ID + 2000 + m.num * 1_000_000 + 900_000 + m.added_fields * 7 + 1)
        meta = _meta_for(m, name, change.get("field_label") or name.replace("_", " "), dtype,
                         json_type, fid, choices)
        gen = GEN_BY_TYPE.get(dtype, "company")
        fd = datagen.FieldDef(name, dtype, gen, True, False, choices or None, meta, 255)
        # before Created_By etc. does not matter: records are dicts by name
        m.metas.append(meta)
        m.fdefs.append(fd)
        _rebuild(m)

        def add_value(rec):
            rng = random.Random("%s|%s|%s|add|%s" % (store.seed, m.name, rec["id"], name))
            ctx = {"anchor": store.anchor, "place": rng.choice(datagen.CITIES)}
            rec[name] = datagen.gen_value(fd, rng, ctx)
            return rec
        _rewrite_records(m, add_value)
        return {"op": op, "api_name": name, "id": fid, "data_type": dtype}
    if op == "remove":
        fd = _field(m, change.get("api_name"))
        m.fdefs.remove(fd)
        m.metas.remove(fd.meta)
        _rebuild(m)

        def drop(rec):
            rec.pop(fd.api_name, None)
            return rec
        _rewrite_records(m, drop)
        return {"op": op, "api_name": fd.api_name, "id": fd.meta["id"]}
    if op == "rename":
        fd = _field(m, change.get("api_name"))
        new = _new_name(m, change.get("new_api_name"))
        old = fd.api_name
        fd.api_name = new
        fd.meta["api_name"] = new
        _rebuild(m)

        def move(rec):
            return {(new if k == old else k): v for k, v in rec.items()}
        _rewrite_records(m, move)
        return {"op": op, "api_name": new, "old_api_name": old, "id": fd.meta["id"]}
    if op == "retype":
        fd = _field(m, change.get("api_name"))
        dtype = change.get("data_type")
        if not isinstance(dtype, str) or not dtype:
            raise SimError(400, "INVALID_DATA", "data_type is required")
        old = datagen.FieldDef(fd.api_name, fd.data_type, fd.gen, fd.optional, fd.read_only,
                               fd.choices, fd.meta, fd.length)
        fd.data_type = dtype
        fd.gen = GEN_BY_TYPE.get(dtype, "company")
        fd.meta["data_type"] = dtype
        fd.meta["json_type"] = change.get("json_type") or datagen.JSON_TYPES.get(dtype, "string")
        fd.meta["decimal_place"] = 2 if dtype in ("currency", "double", "percent") else None
        if dtype in ("picklist", "multiselectpicklist"):
            if not fd.choices:
                fd.choices = list(DEFAULT_CHOICES)
            _set_choices(fd.meta, fd.choices)
        else:
            fd.meta["pick_list_values"] = []

        def conv(rec):
            rec[fd.api_name] = convert(old, dtype, rec.get(fd.api_name), tz)
            return rec
        _rewrite_records(m, conv)
        return {"op": op, "api_name": fd.api_name, "id": fd.meta["id"], "data_type": dtype,
                "old_data_type": old.data_type}
    if op == "picklist_add":
        fd = _field(m, change.get("api_name"))
        if fd.data_type not in ("picklist", "multiselectpicklist"):
            raise SimError(400, "INVALID_DATA", "not a picklist", {"api_name": fd.api_name})
        vals = change.get("values")
        if not isinstance(vals, list) or not all(isinstance(v, str) and v for v in vals):
            raise SimError(400, "INVALID_DATA", "values must be a list of strings")
        fd.choices = list(fd.choices or []) + [v for v in vals if v not in (fd.choices or [])]
        _set_choices(fd.meta, fd.choices)
        return {"op": op, "api_name": fd.api_name, "values": list(fd.choices)}
    raise SimError(400, "INVALID_DATA", "op must be add, remove, rename, retype or picklist_add",
                   {"op": op})


def apply_all(store, m, body):
    """POST /_sim/fields body: {"module", "changes": [...], "touch": false}."""
    changes = body.get("changes")
    if changes is None:
        changes = [{k: v for k, v in body.items() if k not in ("module", "touch")}]
    if not isinstance(changes, list) or not changes:
        raise SimError(400, "INVALID_DATA", "changes must be a non-empty list")
    done = [apply(store, m, c if isinstance(c, dict) else {}) for c in changes]
    if body.get("touch"):
        now = store.now()
        _rewrite_records(m, lambda rec: dict(rec, Modified_Time=now))
    store._log_mutation(m, "schema", None, [d.get("api_name") for d in done])
    return done
