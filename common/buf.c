/* buf.c — see buf.h. */
#include "buf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the NUL. */
static void reserve(struct buf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->s = xrealloc(b->s, cap);
	b->cap = cap;
}

void buf_add(struct buf *b, const void *bytes, size_t n)
{
	reserve(b, n);
	if (n)
		memcpy(b->s + b->len, bytes, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list again;

	reserve(b, 64);
	va_copy(again, ap);
	int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	if (n < 0)
		abort(); /* a bad format: a programming error */
	if ((size_t)n >= b->cap - b->len) {
		reserve(b, (size_t)n);
		vsnprintf(b->s + b->len, b->cap - b->len, fmt, again);
	}
	va_end(again);
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_csv_cell(struct buf *b, const char *value, size_t vlen)
{
	bool quote;

	if (!value) {
		reserve(b, 0);
		return;
	}
	quote = vlen == 0; /* "" is an empty string, not NULL */
	for (size_t i = 0; i < vlen && !quote; i++)
		quote = value[i] == ',' || value[i] == '"' || value[i] == '\n' || value[i] == '\r';
	if (!quote) {
		buf_add(b, value, vlen);
		return;
	}
	reserve(b, 2 * vlen + 2);
	char *p = b->s + b->len;
	*p++ = '"';
	for (size_t i = 0; i < vlen; i++) {
		if (value[i] == '"')
			*p++ = '"';
		*p++ = value[i];
	}
	*p++ = '"';
	b->len = (size_t)(p - b->s);
	b->s[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
}

const char *buf_str(const struct buf *b)
{
	return b->s ? b->s : "";
}

size_t buf_len(const struct buf *b)
{
	return b->len;
}

char *buf_steal(struct buf *b)
{
	char *s = b->s ? b->s : xstrdup("");
	*b = (struct buf){0};
	return s;
}

void buf_free(struct buf *b)
{
	free(b->s);
	*b = (struct buf){0};
}
