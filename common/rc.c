/* rc.c — names and exit codes of enum rc. */
#include "rc.h"

#include <sysexits.h>

static const struct {
	const char *name;
	int exit_code;
} rc_table[RC__COUNT] = {
	[RC_OK] = {"ok", EX_OK},
	[RC_NOMEM] = {"out of memory", EX_OSERR},
	[RC_CONFIG] = {"configuration error", EX_CONFIG},
	[RC_USAGE] = {"usage error", EX_USAGE},
	[RC_IO] = {"I/O error", EX_IOERR},
	[RC_DB] = {"database error", EX_TEMPFAIL},
	[RC_HTTP] = {"HTTP transport error", EX_TEMPFAIL},
	[RC_ZOHO] = {"Zoho API error", EX_UNAVAILABLE},
	[RC_AUTH] = {"authentication error", EX_NOPERM},
	[RC_RATELIMIT] = {"rate limited", EX_TEMPFAIL},
	[RC_BADINPUT] = {"bad input", EX_DATAERR},
	[RC_TOOBIG] = {"input too large", EX_DATAERR},
	[RC_NOTFOUND] = {"not found", EX_UNAVAILABLE},
	[RC_LOCKED] = {"already running", EX_TEMPFAIL},
	[RC_TIMEOUT] = {"timed out", EX_TEMPFAIL},
	[RC_INTERRUPTED] = {"interrupted", EX_TEMPFAIL},
	[RC_INTERNAL] = {"internal error", EX_SOFTWARE},
};

const char *rc_str(enum rc rc)
{
	if ((unsigned)rc >= RC__COUNT)
		return "unknown error";
	return rc_table[rc].name;
}

int rc_exit_code(enum rc rc)
{
	if ((unsigned)rc >= RC__COUNT)
		return EX_SOFTWARE;
	return rc_table[rc].exit_code;
}
