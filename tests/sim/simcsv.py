"""Independent expectations for bulk CSV cells, derived from truth (REST JSON shapes)."""

import csv
import io
import zipfile

NUMERIC = ("integer", "double", "currency", "percent")


def expected_cell(meta, v):
    dt = meta["data_type"]
    if v is None or v == []:
        return ""
    if dt in ("ownerlookup", "lookup"):
        return v["id"]
    if dt == "multiselectpicklist":
        return ";".join(v)
    if dt == "boolean":
        return "true" if v else "false"
    return v


def cell_equal(meta, cell, v):
    exp = expected_cell(meta, v)
    if meta["data_type"] in NUMERIC and exp != "":
        return cell != "" and float(cell) == float(exp)
    return cell == str(exp)


def read_zip(data, job_id):
    zf = zipfile.ZipFile(io.BytesIO(data))
    infos = zf.infolist()
    assert [i.filename for i in infos] == ["%s.csv" % job_id]
    assert infos[0].compress_type == zipfile.ZIP_DEFLATED
    raw = zf.read(infos[0].filename)
    text = raw.decode("utf-8")
    return raw, list(csv.reader(io.StringIO(text, newline="")))
