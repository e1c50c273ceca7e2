#!/usr/bin/python3
"""Write a Bulk-Read-shaped ZIP straight to a file (no server), for benchmarks.

    /usr/bin/python3 tests/zoho_sim/make_zip.py --module Leads --records 200000 --seed 1 -o page.zip

The ZIP holds one deflated entry `<job-id>.csv` written by the same CSV writer
the simulator uses for /crm/bulk/v6/read/{id}/result, with the same generated
records (record #0 .. #records-1 of the module for that seed and anchor).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bulkzip  # noqa: E402
import datagen  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog="make_zip.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--module", default="Leads", help="module name (default Leads)")
    p.add_argument("--records", type=int, default=200000, help="number of rows (default 200000)")
    p.add_argument("--start", type=int, default=0, help="index of the first generated record (default 0)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--fields", default="", help="comma-separated field API names (default: all fields)")
    p.add_argument("--tz-offset", default="-08:00", help="offset used for datetimes (default -08:00)")
    p.add_argument("--anchor", type=int, default=None,
                   help="epoch seconds the data is generated back from (default: now rounded to the hour)")
    p.add_argument("--job-id", default="5725767000000859031", help="entry name is <job-id>.csv")
    p.add_argument("--streamed", action="store_true",
                   help="write the entry with a data descriptor (sizes after the data), like streaming producers")
    p.add_argument("-o", "--output", required=True, help="output ZIP path")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    anchor = a.anchor if a.anchor is not None else int(time.time()) // 3600 * 3600
    metas, fdefs = datagen.build_fields(a.module)
    names = {fd.api_name for fd in fdefs}
    fields = [f.strip() for f in a.fields.split(",") if f.strip()] or None
    for f in fields or []:
        if f.split(".")[0] not in names:
            p.error("unknown field %r for %s" % (f, a.module))
    tz = datagen.make_tz(a.tz_offset)
    t0 = time.time()
    records = (datagen.generate_record(a.seed, a.module, i, fdefs, anchor)
               for i in range(a.start, a.start + a.records))
    tmp = a.output + ".tmp"
    bulkzip.write_zip(tmp, a.job_id, records, fdefs, fields, tz, streamed=a.streamed)
    os.replace(tmp, a.output)
    if not a.quiet:
        sys.stderr.write("wrote %s: %d %s records, %d bytes, %.1fs\n" % (
            a.output, a.records, a.module, os.path.getsize(a.output), time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
