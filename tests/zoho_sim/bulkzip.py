"""Bulk Read result files: CSV rendering and the ZIP container.

CSV conventions (see README): header = `id` then the requested fields by API
name; RFC 4180 quoting (a cell is quoted when it contains a comma, a double
quote, CR or LF; quotes are doubled); rows end with LF, CR/LF inside quoted
values are kept verbatim; lookups/owners are the referenced id; booleans
`true`/`false`; multi-select values joined with `;`; datetimes ISO 8601 with
the API user's offset; null -> empty cell.  UTF-8, no BOM.
"""

import csv
import io
import zipfile

import datagen
import inventory


class _RowSink:
    """File-like object for csv.writer that turns each row's CRLF into LF.

    csv.writer with lineterminator='\\r\\n' quotes every cell that contains CR
    or LF (with '\\n' it would leave a lone CR unquoted); it calls write()
    once per row, so the terminator is always the last two characters.
    """

    __slots__ = ("out",)

    def __init__(self, out):
        self.out = out

    def write(self, s):
        self.out.write(s[:-2] + "\n")


def resolve_columns(fdefs, fields, tz):
    """fields: list of requested names (None/[] = all).  Returns (header, cell fns)."""
    byname = {fd.api_name: fd for fd in fdefs}
    if not fields:
        # every field Bulk Read exports: not subform, multiselectlookup,
        # multiuserlookup, fileupload, imageupload; $se_module after What_Id
        names = []
        for fd in fdefs:
            if fd.api_name != "id" and fd.data_type not in inventory.NOT_EXPORTABLE:
                names.append(fd.api_name)
                if fd.gen == "what":
                    names.append("$se_module")
    else:
        names = [f for f in fields if f != "id"]
    header = ["id"]
    fns = [("id", lambda v: v)]
    for name in names:
        base, _, sub = name.partition(".")
        if name == "$converted":
            header.append(name)
            fns.append(("Converted__s", lambda v: "true" if v else "false"))
            continue
        if name == "$se_module":
            header.append(name)
            fns.append(("What_Id", lambda v: "" if v is None else v[2]))
            continue
        if name == "$approval_state":
            header.append(name)
            fns.append(("id", lambda v: "approved"))
            continue
        fd = byname[base]
        header.append(name)
        fns.append((base, datagen.csv_cell_fn(fd, tz, sub or None)))
    return header, fns


def write_csv(out, records, fdefs, fields, tz, csv_faults=None):
    """Write header + one row per record (internal representation) to text stream `out`.

    csv_faults (the bulk faults of the job): omit_columns are left out of the
    file (a field hidden by field-level permission), extra_columns {name: value}
    added (a field the metadata does not know), cells [{id, field, value}]
    override one cell as written (a value of another type)."""
    header, fns = resolve_columns(fdefs, fields, tz)
    f = csv_faults or {}
    keep = [i for i, h in enumerate(header) if h not in set(f.get("omit_columns") or [])]
    extra = f.get("extra_columns") or {}
    cells = {}
    for c in f.get("cells") or []:
        if c["field"] in header:
            cells[(str(c["id"]), header.index(c["field"]))] = c["value"]
    w = csv.writer(_RowSink(out), lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow([header[i] for i in keep] + list(extra))
    for rec in records:
        get = rec.get
        row = [fn(get(name)) for name, fn in fns]
        if cells:
            rid = str(row[0])
            row = [cells.get((rid, i), v) for i, v in enumerate(row)]
        w.writerow([row[i] for i in keep] + list(extra.values()))
    return len(keep) + len(extra)


class _Unseekable:
    """Wraps a binary file so zipfile believes it cannot seek: it then writes
    the entry with a data descriptor (general-purpose flag bit 3) and zero
    sizes in the local header, the way streaming ZIP producers do."""

    def __init__(self, f):
        self.f = f
        self.pos = 0

    def write(self, b):
        self.pos += len(b)
        return self.f.write(b)

    def tell(self):
        return self.pos

    def seek(self, *a):
        raise OSError("not seekable")

    def flush(self):
        self.f.flush()


def write_zip(path, job_id, records, fdefs, fields, tz, streamed=False, csv_faults=None):
    """Write a bulk-export ZIP (one deflated entry `<job_id>.csv`) to `path`."""
    with open(path, "wb") as f:
        target = _Unseekable(f) if streamed else f
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            _write_entry(zf, job_id, records, fdefs, fields, tz, csv_faults)


def _write_entry(zf, job_id, records, fdefs, fields, tz, csv_faults=None):
    info = zipfile.ZipInfo("%s.csv" % job_id)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        text._CHUNK_SIZE = 1 << 16
        write_csv(text, records, fdefs, fields, tz, csv_faults)
        text.flush()
        text.detach()
