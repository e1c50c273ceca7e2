/* fuzz_csvhead.c — libFuzzer entry point for common/csvhead.
 *
 * Byte 0 picks a chunk size and byte 1 a header limit; the rest is parsed
 * once in one piece and once in chunks, and both runs must agree on the
 * result, the bytes consumed and every column name (the parser must not
 * depend on read boundaries). Then check and find run on the result. */
#include "csvhead.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	struct csvhead *h;
	enum rc rc;
	size_t consumed;
	bool done;
};

static void run_parse(const char *in, size_t len, size_t chunk, size_t max,
		      struct run *r)
{
	char err[CSVHEAD_ERR_LEN];
	size_t i = 0;

	r->h = csvhead_new(max);
	r->rc = RC_OK;
	r->consumed = 0;
	r->done = false;
	while (i < len && !r->done) {
		size_t k = len - i < chunk ? len - i : chunk, used = 0;
		r->rc = csvhead_feed(r->h, in + i, k, &used, &r->done, err,
				     sizeof(err));
		if (r->rc)
			return;
		if (used > k || (!r->done && used != k))
			abort();
		r->consumed += used;
		i += k;
	}
	if (!r->done) {
		r->rc = csvhead_end(r->h, err, sizeof(err));
		r->done = r->rc == RC_OK;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CSVHEAD_ERR_LEN];
	struct run whole, parts;

	if (size < 2)
		return 0;
	size_t chunk = (size_t)data[0] % 17 + 1;
	size_t max = (size_t)data[1] * 4 + 1;
	const char *in = (const char *)data + 2;
	size -= 2;

	run_parse(in, size, size ? size : 1, max, &whole);
	run_parse(in, size, chunk, max, &parts);
	if (whole.rc != parts.rc || whole.done != parts.done)
		abort();
	if (whole.rc == RC_OK) {
		if (whole.consumed != parts.consumed || whole.consumed > max)
			abort();
		size_t n = csvhead_ncols(whole.h);
		if (n != csvhead_ncols(parts.h) || n == 0)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (strcmp(csvhead_col(whole.h, i),
				   csvhead_col(parts.h, i)) != 0)
				abort();
		}
		if (csvhead_check(whole.h, err, sizeof(err)) == RC_OK &&
		    csvhead_find(whole.h, "ID") < 0)
			abort();
		(void)csvhead_find(whole.h, csvhead_col(whole.h, n - 1));
	}
	csvhead_free(whole.h);
	csvhead_free(parts.h);
	return 0;
}
