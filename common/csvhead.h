/* csvhead.h — the header line of a bulk-read CSV, parsed incrementally.
 *
 * Owns: finding the first CSV record (the header) in a byte stream that
 * arrives in arbitrary pieces, stripping a UTF-8 BOM, RFC 4180 quoting
 * ("a ""b""", commas and line breaks inside quotes), LF or CRLF line ends,
 * and the column names with their checks. It never looks at data rows.
 *
 * How the bulk flow uses it: feed the inflated bytes until *done; every
 * byte of the header (BOM and line terminator included) is reported in
 * *consumed and must NOT go to PostgreSQL. The caller creates the staging
 * table with one text column per header name, in header order, and runs
 * `COPY staging (c1, c2, …) FROM STDIN (FORMAT csv, HEADER false)`, then
 * sends buf + consumed onward, byte for byte unchanged, followed by the rest
 * of the stream. PostgreSQL's own CSV parser handles the data rows, so the
 * staging table's column order is the header order.
 *
 * Stricter than PostgreSQL on the header only: a quote inside an unquoted
 * name, text after a closing quote, a bare CR, or a NUL byte is an error.
 * Internals: docs/internals/bulk-stream.md. */
#ifndef ZCRM_CSVHEAD_H
#define ZCRM_CSVHEAD_H

#include "compiler.h"
#include "rc.h"

#include <stdbool.h>
#include <stddef.h>

#define CSVHEAD_DEFAULT_MAX (1u << 20)  /* header bytes when 0 is given */
#define CSVHEAD_LIMIT_MAX (256u << 20)  /* larger limits are clamped */
#define CSVHEAD_ERR_LEN 256

struct csvhead; /* opaque incremental parser */

/* creation */

/* A parser that accepts a header of at most max_header_bytes (BOM and
 * line terminator included; 0 means CSVHEAD_DEFAULT_MAX). The caller owns
 * the result and frees it with csvhead_free(). */
struct csvhead *csvhead_new(size_t max_header_bytes);
/* NULL is a no-op. */
void csvhead_free(struct csvhead *h);

/* feeding */

/* Parse buf[0..len). *consumed is how many bytes of buf belong to the
 * header; once the header's line terminator is seen, returns RC_OK with
 * *done = true and buf + *consumed is the first byte of data. Until then
 * *consumed == len and *done == false. After done, further calls consume
 * nothing. Errors: RC_TOOBIG (header longer than the limit), RC_BADINPUT
 * (malformed header); an error is sticky. */
enum rc csvhead_feed(struct csvhead *h, const char *buf, size_t len,
		     size_t *consumed, bool *done, char *err,
		     size_t errlen) ZCRM_MUSTCHECK;
/* The stream ended (EOF). Completes a header that has no line terminator
 * (a CSV of just a header); RC_BADINPUT if there was no header at all or
 * the input ends inside a quoted name. RC_OK at once if already done. */
enum rc csvhead_end(struct csvhead *h, char *err, size_t errlen) ZCRM_MUSTCHECK;
bool csvhead_done(const struct csvhead *h);
/* Whether a UTF-8 BOM was stripped. */
bool csvhead_had_bom(const struct csvhead *h);

/* columns (valid once done; borrowed from h until csvhead_free) */

size_t csvhead_ncols(const struct csvhead *h);
/* Name of column i (< ncols), unquoted. */
const char *csvhead_col(const struct csvhead *h, size_t i);
/* Index of the first column named name, ASCII case-insensitive ("id"
 * finds "Id"), or -1. */
int csvhead_find(const struct csvhead *h, const char *name);
/* RC_BADINPUT unless: the header is complete, every name is non-empty,
 * valid UTF-8 without control characters, names are unique ignoring ASCII
 * case, and an "id" column exists. */
enum rc csvhead_check(const struct csvhead *h, char *err,
		      size_t errlen) ZCRM_MUSTCHECK;

#endif
