/* spool.h — notification bodies kept on disk while PostgreSQL is down.
 *
 * spool_write() makes a file appear whole or not at all: write to a
 * temporary name, fsync, rename, fsync the directory. Files are named so
 * that a plain sort replays them in arrival order. The replayer removes a
 * file only after its notification is committed in the inbox; the inbox's
 * uniqueness makes a replay after a crash harmless.
 *
 * Several processes may replay one directory (webhooks of one host, or of
 * hosts sharing it over NFS, and incremental_sync): each file is claimed
 * first by rename(2) into claimed/<host>+<pid>+<name>, atomic on one
 * filesystem, so exactly one of them replays it. A claim whose process is
 * gone (same host: its pid is not alive; any host: the claim is older than
 * SPOOL_CLAIM_MAX_AGE) goes back into the queue. One replay at a time per
 * process. */
#ifndef ZCRM_SPOOL_H
#define ZCRM_SPOOL_H

#include "compiler.h"
#include "rc.h"

#include <stddef.h>

/* Seconds after which a claim counts as abandoned whoever holds it: a
 * claim lives for one inbox transaction, and a process on another host
 * cannot be asked whether it still runs. */
#define SPOOL_CLAIM_MAX_AGE 600
/* Longest host name kept in claims and spool file names, with its NUL. */
#define SPOOL_HOST_MAX 65

/* This host's name as claims carry it: anything but letters, digits, '.',
 * '_' and '-' becomes '_' (never a '+', '/' or '"'); "localhost" if unknown. */
void spool_host_name(char out[SPOOL_HOST_MAX]);
/* Create dir (0700) if missing. */
enum rc spool_init(const char *dir) ZCRM_MUSTCHECK;
enum rc spool_write(const char *dir, const char *body, size_t len) ZCRM_MUSTCHECK;
/* Keep a body that can never be applied in dir/failed/ (for an operator),
 * never in the replay queue. */
enum rc spool_write_failed(const char *dir, const char *body, size_t len) ZCRM_MUSTCHECK;
/* Number of spooled files, claimed ones included (-1 if the directory
 * cannot be read). */
long spool_count(const char *dir);

/* Called for each spooled body in order; return RC_OK to delete the file
 * (fn keeps a copy with spool_write_failed() if it could not apply it),
 * anything else stops the replay and the file stays. */
typedef enum rc (*spool_fn)(void *ctx, const char *body, size_t len, const char *name);
/* Recover abandoned claims, then claim and replay at most max files (0:
 * all) in order; *done counts the files this call handled. A file fn fails
 * on goes back into the queue. */
enum rc spool_replay(const char *dir, size_t max, spool_fn fn, void *ctx,
		     size_t *done) ZCRM_MUSTCHECK;
/* Put claims that are abandoned (see above; max_age in seconds) back into
 * the queue; *recovered counts them. spool_replay does it first. */
enum rc spool_recover_claims(const char *dir, long max_age, size_t *recovered) ZCRM_MUSTCHECK;

#endif
