/* buf.h — one growable byte buffer, always NUL-terminated, for building
 * SQL, CSV rows, metrics pages and id arrays (in the spirit of curl's
 * dynbuf and PostgreSQL's PQExpBuffer).
 *
 * A zeroed struct buf is empty and valid; every add grows it (out of
 * memory aborts, as xmalloc does), so adds cannot fail. buf_str() is ""
 * for an empty buffer. The bytes belong to the buffer until buf_steal()
 * hands them to the caller. */
#ifndef ZCRM_BUF_H
#define ZCRM_BUF_H

#include "compiler.h"

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *s;
	size_t len, cap;
};

void buf_add(struct buf *b, const void *bytes, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) ZCRM_PRINTF(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) ZCRM_PRINTF(2, 0);
/* value as one CSV cell (COPY's csv format): NULL is an empty unquoted
 * cell, "" a quoted empty string; quoted when it holds , " CR or LF. */
void buf_csv_cell(struct buf *b, const char *value, size_t vlen);
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);
const char *buf_str(const struct buf *b);
/* Bytes held (the NUL not counted). */
size_t buf_len(const struct buf *b);
/* The bytes (NUL-terminated; never NULL), now the caller's; b is empty. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
