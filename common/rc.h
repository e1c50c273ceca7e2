/* rc.h — the one result enum of the project (documented in docs/errors.md).
 *
 * Every fallible function in common/ returns enum rc; RC_OK is 0 so the
 * idiom is `rc = f(); if (rc) goto out;`. rc_exit_code() maps a result to
 * the sysexits.h code a batch program exits with. */
#ifndef ZCRM_RC_H
#define ZCRM_RC_H

enum rc {
	RC_OK = 0,
	RC_NOMEM,     /* allocation failed (normally aborts instead) */
	RC_CONFIG,    /* bad or missing configuration */
	RC_USAGE,     /* bad command-line usage */
	RC_IO,        /* local file or socket error */
	RC_DB,        /* PostgreSQL unreachable or a statement failed */
	RC_HTTP,      /* transport error talking to Zoho (after retries) */
	RC_ZOHO,      /* Zoho answered with an error code */
	RC_AUTH,      /* OAuth refresh failed or token rejected */
	RC_RATELIMIT, /* Zoho throttled us beyond the retry budget */
	RC_BADINPUT,  /* input failed validation (notification, CSV, ZIP...) */
	RC_TOOBIG,    /* input over a configured size limit */
	RC_NOTFOUND,  /* the thing asked for does not exist */
	RC_LOCKED,    /* another copy of this job holds the lock */
	RC_TIMEOUT,   /* a bounded wait ran out */
	RC_INTERRUPTED, /* stopped by a signal */
	RC_INTERNAL,  /* a bug: an invariant did not hold */
	RC__COUNT
};

const char *rc_str(enum rc rc);
int rc_exit_code(enum rc rc);

#endif
