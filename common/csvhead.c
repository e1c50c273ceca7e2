/* csvhead.c — incremental parser of the CSV header line (see csvhead.h).
 *
 * One byte at a time through a state-transition table, so a header split
 * at any byte boundary parses the same as in one piece. Names are kept
 * NUL-separated in one buffer bounded by the header limit. */
#include "csvhead.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cs_state {
	CS_BOM,     /* matching EF BB BF */
	CS_START,   /* at the start of a name */
	CS_UNQ,     /* inside an unquoted name */
	CS_QUOTED,  /* inside a quoted name */
	CS_QUOTE,   /* saw a quote inside a quoted name */
	CS_CR,      /* saw a CR outside quotes: LF must follow */
	CS_DONE,
	CS__TABLE = CS_DONE /* states below have table rows */
};

enum cs_class { CC_QUOTE, CC_COMMA, CC_CR, CC_LF, CC_NUL, CC_OTHER, CC__N };

enum cs_act {
	CA_NONE,
	CA_APPEND,   /* the byte is part of the name */
	CA_END,      /* the name is complete */
	CA_END_DONE, /* the name and the header are complete */
	CA_DONE,     /* the header is complete */
	CA_ERR,      /* malformed: msg says why */
};

struct cs_trans {
	enum cs_act act;
	enum cs_state next;
	const char *msg;
};

#define T(a, n) {CA_##a, CS_##n, NULL}
#define ERR(m) {CA_ERR, CS_DONE, m}
#define E_NUL ERR("NUL byte")
#define E_CR ERR("bare CR (line ends must be LF or CRLF)")

static const struct cs_trans cs_table[CS__TABLE][CC__N] = {
	/*            quote          comma        CR          LF
	 *            NUL            other */
	[CS_START] = {T(NONE, QUOTED), T(END, START), T(END, CR), T(END_DONE, DONE),
		      E_NUL, T(APPEND, UNQ)},
	[CS_UNQ] = {ERR("quote inside an unquoted name"), T(END, START),
		    T(END, CR), T(END_DONE, DONE), E_NUL, T(APPEND, UNQ)},
	[CS_QUOTED] = {T(NONE, QUOTE), T(APPEND, QUOTED), T(APPEND, QUOTED),
		       T(APPEND, QUOTED), E_NUL, T(APPEND, QUOTED)},
	[CS_QUOTE] = {T(APPEND, QUOTED), T(END, START), T(END, CR),
		      T(END_DONE, DONE), E_NUL,
		      ERR("text after a closing quote")},
	[CS_CR] = {E_CR, E_CR, E_CR, T(DONE, DONE), E_CR, E_CR},
};

#undef T
#undef ERR

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};

struct csvhead {
	size_t max;          /* header bytes allowed */
	size_t seen;         /* header bytes processed */
	enum cs_state state;
	unsigned bom_seen;   /* BOM bytes matched so far */
	bool had_bom;
	char *names;         /* NUL-terminated names, back to back */
	size_t len, cap;
	size_t *offs;        /* start of each complete name in names */
	size_t ncols, offs_cap;
	size_t cur;          /* start of the name being built */
	enum rc failed;      /* sticky error */
	char failmsg[CSVHEAD_ERR_LEN];
};

static enum rc fail(enum rc rc, char *err, size_t errlen, const char *fmt, ...)
	ZCRM_PRINTF(4, 5);

static enum rc fail(enum rc rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- creation --------------------------------------------------------- */

struct csvhead *csvhead_new(size_t max_header_bytes)
{
	struct csvhead *h = xcalloc(1, sizeof(*h));

	if (max_header_bytes == 0)
		max_header_bytes = CSVHEAD_DEFAULT_MAX;
	if (max_header_bytes > CSVHEAD_LIMIT_MAX)
		max_header_bytes = CSVHEAD_LIMIT_MAX;
	h->max = max_header_bytes;
	h->state = CS_BOM;
	h->cap = 64;
	h->names = xmalloc(h->cap);
	h->offs_cap = 16;
	h->offs = xmalloc(h->offs_cap * sizeof(*h->offs));
	return h;
}

void csvhead_free(struct csvhead *h)
{
	if (!h)
		return;
	free(h->names);
	free(h->offs);
	free(h);
}

/* ---- parsing ---------------------------------------------------------- */

static void name_putc(struct csvhead *h, char c)
{
	if (h->len == h->cap) {
		h->cap *= 2;
		h->names = xrealloc(h->names, h->cap);
	}
	h->names[h->len++] = c;
}

static void name_end(struct csvhead *h)
{
	name_putc(h, '\0');
	if (h->ncols == h->offs_cap) {
		h->offs_cap *= 2;
		h->offs = xrealloc(h->offs, h->offs_cap * sizeof(*h->offs));
	}
	h->offs[h->ncols++] = h->cur;
	h->cur = h->len;
}

static enum cs_class classify(unsigned char c)
{
	switch (c) {
	case '"': return CC_QUOTE;
	case ',': return CC_COMMA;
	case '\r': return CC_CR;
	case '\n': return CC_LF;
	case '\0': return CC_NUL;
	default: return CC_OTHER;
	}
}

/* One header byte through the table (the BOM is handled by the caller). */
static enum rc step(struct csvhead *h, unsigned char c, char *err,
		    size_t errlen)
{
	const struct cs_trans *t = &cs_table[h->state][classify(c)];

	switch (t->act) {
	case CA_NONE:
		break;
	case CA_APPEND:
		name_putc(h, (char)c);
		break;
	case CA_END:
	case CA_END_DONE:
		name_end(h);
		break;
	case CA_DONE:
		break;
	case CA_ERR:
		return fail(RC_BADINPUT, err, errlen,
			    "CSV header: %s at byte %zu", t->msg, h->seen);
	}
	h->state = t->next;
	return RC_OK;
}

/* Leaving CS_BOM on a byte that breaks the BOM: the matched prefix was
 * data after all. */
static enum rc bom_abandon(struct csvhead *h, char *err, size_t errlen)
{
	unsigned n = h->bom_seen;
	enum rc rc = RC_OK;

	h->state = CS_START;
	h->bom_seen = 0;
	for (unsigned i = 0; i < n && !rc; i++)
		rc = step(h, bom[i], err, errlen);
	return rc;
}

static enum rc feed_byte(struct csvhead *h, unsigned char c, char *err,
			 size_t errlen)
{
	enum rc rc;

	if (h->seen >= h->max)
		return fail(RC_TOOBIG, err, errlen,
			    "CSV header line is longer than %zu bytes", h->max);
	h->seen++;
	if (h->state == CS_BOM) {
		if (c == bom[h->bom_seen]) {
			if (++h->bom_seen == sizeof(bom)) {
				h->had_bom = true;
				h->state = CS_START;
			}
			return RC_OK;
		}
		rc = bom_abandon(h, err, errlen);
		if (rc)
			return rc;
	}
	return step(h, c, err, errlen);
}

enum rc csvhead_feed(struct csvhead *h, const char *buf, size_t len,
		     size_t *consumed, bool *done, char *err, size_t errlen)
{
	const unsigned char *p = (const unsigned char *)buf;
	enum rc rc = RC_OK;
	size_t i = 0;

	*consumed = 0;
	*done = false;
	if (h->failed)
		return fail(h->failed, err, errlen, "%s", h->failmsg);
	while (i < len && h->state != CS_DONE) {
		rc = feed_byte(h, p[i], h->failmsg, sizeof(h->failmsg));
		if (rc)
			goto out;
		i++;
	}
	*consumed = i;
	*done = h->state == CS_DONE;
out:
	if (rc) {
		h->failed = rc;
		if (err && errlen)
			snprintf(err, errlen, "%s", h->failmsg);
	}
	return rc;
}

enum rc csvhead_end(struct csvhead *h, char *err, size_t errlen)
{
	enum rc rc = RC_OK;

	if (h->failed)
		return fail(h->failed, err, errlen, "%s", h->failmsg);
	if (h->state == CS_DONE)
		return RC_OK;
	if (h->state == CS_BOM) {
		if (h->bom_seen == 0 || h->bom_seen == sizeof(bom)) {
			rc = fail(RC_BADINPUT, h->failmsg, sizeof(h->failmsg),
				  "CSV is empty: no header line");
			goto out;
		}
		rc = bom_abandon(h, h->failmsg, sizeof(h->failmsg));
		if (rc)
			goto out;
	}
	/* A header cut short ends with the name being built; after "a,b,"
	 * that is an empty name, which csvhead_check() refuses. */
	switch (h->state) {
	case CS_START:
		if (h->seen == (h->had_bom ? sizeof(bom) : 0)) {
			rc = fail(RC_BADINPUT, h->failmsg, sizeof(h->failmsg),
				  "CSV is empty: no header line");
			goto out;
		}
		name_end(h);
		break;
	case CS_UNQ:
	case CS_QUOTE:
		name_end(h);
		break;
	case CS_QUOTED:
		rc = fail(RC_BADINPUT, h->failmsg, sizeof(h->failmsg),
			  "CSV header ends inside a quoted name");
		goto out;
	case CS_CR:
	case CS_BOM:
	case CS_DONE:
		break;
	}
	h->state = CS_DONE;
out:
	if (rc) {
		h->failed = rc;
		if (err && errlen)
			snprintf(err, errlen, "%s", h->failmsg);
	}
	return rc;
}

bool csvhead_done(const struct csvhead *h)
{
	return h->state == CS_DONE && !h->failed;
}

bool csvhead_had_bom(const struct csvhead *h)
{
	return h->had_bom;
}

/* ---- columns ---------------------------------------------------------- */

size_t csvhead_ncols(const struct csvhead *h)
{
	return h->ncols;
}

const char *csvhead_col(const struct csvhead *h, size_t i)
{
	if (i >= h->ncols)
		return NULL;
	return h->names + h->offs[i];
}

static int ascii_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb || ca == 0)
			return ca - cb;
	}
}

int csvhead_find(const struct csvhead *h, const char *name)
{
	for (size_t i = 0; i < h->ncols; i++) {
		if (ascii_casecmp(h->names + h->offs[i], name) == 0)
			return (int)i;
	}
	return -1;
}

/* Length of the valid UTF-8 sequence at s, or 0 (overlongs, surrogates
 * and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = c == 0xed ? 0x9f : 0xbf;
		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/* One name's own rules; NULL if fine, else a static reason. */
static const char *name_problem(const char *name)
{
	const unsigned char *s = (const unsigned char *)name;

	if (*s == '\0')
		return "is empty";
	while (*s) {
		size_t n = utf8_len(s);
		if (n == 0)
			return "is not valid UTF-8";
		if (*s < 0x20 || *s == 0x7f)
			return "contains a control character";
		s += n;
	}
	return NULL;
}

struct cs_sorted {
	const char *name;
	size_t idx;
};

static int sorted_cmp(const void *a, const void *b)
{
	const struct cs_sorted *x = a, *y = b;
	int c = ascii_casecmp(x->name, y->name);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Printable, shortened copy of a name for messages. */
static void name_show(char *dst, size_t dstlen, const char *name)
{
	size_t o = 0;

	for (const unsigned char *s = (const unsigned char *)name;
	     *s && o + 8 < dstlen; s++) {
		if (o >= 60) {
			o += (size_t)snprintf(dst + o, dstlen - o, "...");
			break;
		}
		if (*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
			o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x", *s);
		else
			dst[o++] = (char)*s;
	}
	dst[o < dstlen ? o : dstlen - 1] = '\0';
}

enum rc csvhead_check(const struct csvhead *h, char *err, size_t errlen)
{
	struct cs_sorted *v = NULL;
	char show[96];
	enum rc rc = RC_OK;

	if (!csvhead_done(h))
		return fail(RC_INTERNAL, err, errlen,
			    "csvhead_check: header not complete");
	for (size_t i = 0; i < h->ncols; i++) {
		const char *why = name_problem(csvhead_col(h, i));
		if (why) {
			name_show(show, sizeof(show), csvhead_col(h, i));
			return fail(RC_BADINPUT, err, errlen,
				    "CSV header column %zu (\"%s\") %s", i + 1,
				    show, why);
		}
	}
	v = xmalloc(h->ncols * sizeof(*v));
	for (size_t i = 0; i < h->ncols; i++) {
		v[i].name = csvhead_col(h, i);
		v[i].idx = i;
	}
	qsort(v, h->ncols, sizeof(*v), sorted_cmp);
	for (size_t i = 1; i < h->ncols; i++) {
		if (ascii_casecmp(v[i - 1].name, v[i].name) == 0) {
			name_show(show, sizeof(show), v[i].name);
			rc = fail(RC_BADINPUT, err, errlen,
				  "CSV header names \"%s\" twice (columns %zu "
				  "and %zu, ignoring case)",
				  show, v[i - 1].idx + 1, v[i].idx + 1);
			goto out;
		}
	}
	if (csvhead_find(h, "id") < 0) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "CSV header has no \"id\" column");
		goto out;
	}
out:
	free(v);
	return rc;
}
