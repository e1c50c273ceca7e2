/* fuzz_notification.c — libFuzzer entry point for common/notification.
 *
 * The input is a notification body as the webhook receives it (any bytes,
 * not NUL-terminated). Whatever parses must satisfy what the webhook and
 * the inbox rely on: a NUL-free module name of 1..63 bytes, 1..max_ids
 * positive ids, server_time in range, a NUL-free token, and a body of
 * well-formed UTF-8 (PostgreSQL refuses anything else). A refusal must
 * leave *out NULL and say why. Any crash, leak or sanitizer report is a
 * bug; an error return is not. */
#include "notification.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ok(const struct notification *n, size_t max_ids)
{
	size_t mlen = strnlen(n->module, sizeof(n->module));

	if (mlen == 0 || mlen >= sizeof(n->module))
		abort();
	if (n->nids == 0 || n->nids > max_ids || !n->ids)
		abort();
	for (size_t i = 0; i < n->nids; i++) {
		if (n->ids[i] <= 0)
			abort();
	}
	if (n->server_time_ms < 946684800000LL || n->server_time_ms > 32503680000000LL)
		abort();
	if (n->channel_id == 0 || n->channel_id > (uint64_t)INT64_MAX)
		abort();
	if (n->op != NOTIF_INSERT && n->op != NOTIF_UPDATE && n->op != NOTIF_DELETE)
		abort();
	if (!n->root)
		abort();
	(void)notif_op_str(n->op);
	if (n->token)
		(void)strlen(n->token);
}

/* Reference UTF-8 check, written differently from the one under test:
 * decode each sequence to a code point and judge the code point. Returns
 * the offset of the first bad sequence, or len. */
static size_t ref_utf8_bad(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n;
		if (s[i] < 0x80) {
			i++;
			continue;
		} else if ((s[i] & 0xe0) == 0xc0) {
			n = 2;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 3;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 4;
			cp = s[i] & 0x07;
		} else {
			return i;
		}
		if (len - i < n)
			return i;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n;
	}
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Two limits: the default, and a small one so RC_TOOBIG is reachable. */
	static const size_t limits[] = {10000, 3};
	char err[256];

	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
		struct notification *n = (struct notification *)1;
		err[0] = '\0';
		enum rc rc = notification_parse((const char *)data, size, limits[k], &n, err,
						sizeof(err));
		if (rc == RC_OK) {
			if (!n)
				abort();
			check_ok(n, limits[k]);
			/* What parsed can be stored: PostgreSQL's text is UTF-8. */
			if (ref_utf8_bad(data, size) != size)
				abort();
			notification_free(n);
		} else {
			if (n != NULL || (rc != RC_BADINPUT && rc != RC_TOOBIG))
				abort();
			if (err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
				abort(); /* a refusal always says why */
		}
	}

	/* The webhook's UTF-8 check agrees with the reference everywhere. */
	if (notification_utf8_invalid_at((const char *)data, size) != ref_utf8_bad(data, size))
		abort();

	/* The id parser on the same bytes as a C string (at most 32 of them). */
	char id[33];
	size_t idlen = size < 32 ? size : 32;
	memcpy(id, data, idlen);
	id[idlen] = '\0';
	int64_t v = 0;
	if (notification_parse_id(id, &v) == 0) {
		size_t len = strlen(id);
		if (v <= 0 || len == 0 || len > 19 || strspn(id, "0123456789") != len)
			abort();
	}
	return 0;
}
