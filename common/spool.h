/* spool.h — notification bodies kept on disk while PostgreSQL is down.
 *
 * spool_write() makes a file appear whole or not at all: write to a
 * temporary name, fsync, rename, fsync the directory. Files are named so
 * that a plain sort replays them in arrival order. The replayer removes a
 * file only after its notification is committed in the inbox; the inbox's
 * uniqueness makes a replay after a crash harmless. */
#ifndef ZCRM_SPOOL_H
#define ZCRM_SPOOL_H

#include "compiler.h"
#include "rc.h"

#include <stddef.h>

/* Create dir (0700) if missing. */
enum rc spool_init(const char *dir) ZCRM_MUSTCHECK;
enum rc spool_write(const char *dir, const char *body, size_t len) ZCRM_MUSTCHECK;
/* Keep a body that can never be applied in dir/failed/ (for an operator),
 * never in the replay queue. */
enum rc spool_write_failed(const char *dir, const char *body, size_t len) ZCRM_MUSTCHECK;
/* Number of spooled files (-1 if the directory cannot be read). */
long spool_count(const char *dir);

/* Called for each spooled body in order; return RC_OK to delete the file
 * (fn keeps a copy with spool_write_failed() if it could not apply it),
 * anything else stops the replay and the file stays. */
typedef enum rc (*spool_fn)(void *ctx, const char *body, size_t len, const char *name);
/* Replay at most max files (0: all); *done counts the files handled. */
enum rc spool_replay(const char *dir, size_t max, spool_fn fn, void *ctx,
		     size_t *done) ZCRM_MUSTCHECK;

#endif
