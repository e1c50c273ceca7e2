/* slots.h — a host-wide cap on calls in flight: n lock files, one flock()
 * each.
 *
 * Zoho answers 429 past a number of calls in flight per org (10 on the
 * Standard edition, zoho-api.md §8.2), counted over every integration. The
 * webhook's threads and the cron programs of one host are separate
 * processes, so the cap is kept in the file system: a call holds one of n
 * files in a directory locked while it is in flight, and the kernel drops
 * the lock of a process that dies. Whoever shares the directory shares the
 * cap. */
#ifndef ZCRM_SLOTS_H
#define ZCRM_SLOTS_H

#include "compiler.h"

#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>

/* Take one of n slots in dir (created 0700 if missing), waiting while all
 * are held. Returns the held descriptor, or -1 when the slots cannot be
 * used (the directory cannot be made, a file cannot be opened: logged
 * once by the caller's choice, and the call goes ahead uncapped) or when
 * *stop became set while waiting (*stopped then true). */
int slot_take(const char *dir, long n, atomic_int *stop, bool *stopped) ZCRM_MUSTCHECK;
/* Give a slot back (fd < 0: nothing). */
void slot_give(int fd);

#endif
