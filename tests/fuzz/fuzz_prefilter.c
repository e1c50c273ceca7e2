/* fuzz_prefilter.c — libFuzzer entry point for prefilter_scan (common/prefilter.c).
 *
 * Bytes 0-2 pick the cell count and the id and Modified_Time cells; the
 * rest is scanned. When the scan accepts the bytes as whole records, they
 * must be cut into records that cover every byte in order, each holding
 * its Modified_Time cell, and each record scanned alone must give the same
 * record back (the scan must not depend on where a chunk starts). */
#include "prefilter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prefilter_record *recs = NULL, *one = NULL;
	size_t cap = 0, n = 0, one_cap = 0, one_n = 0;

	if (size < 3)
		return 0;
	size_t ncols = (size_t)data[0] % 8 + 1;
	size_t id_col = (size_t)data[1] % ncols, mt_col = (size_t)data[2] % ncols;
	const char *in = (const char *)data + 3;
	size -= 3;
	if (id_col == mt_col)
		mt_col = ncols; /* no Modified_Time cell: never found */
	if (!prefilter_scan(in, size, ncols, id_col, mt_col, &recs, &cap, &n))
		goto out;
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		const struct prefilter_record *r = &recs[i];
		if (r->start != at || r->end <= r->start || r->end > size)
			abort();
		if (r->mt_len && (r->mt_off < r->start || r->mt_off + r->mt_len > r->end))
			abort();
		if (!prefilter_scan(in + r->start, r->end - r->start, ncols, id_col, mt_col, &one,
				    &one_cap, &one_n) ||
		    one_n != 1 || one[0].end != r->end - r->start || one[0].has_id != r->has_id ||
		    (r->has_id && one[0].id != r->id) || one[0].mt_len != r->mt_len ||
		    (r->mt_len && one[0].mt_off != r->mt_off - r->start))
			abort();
		at = r->end;
	}
	if (at != size)
		abort();
out:
	free(recs);
	free(one);
	return 0;
}
