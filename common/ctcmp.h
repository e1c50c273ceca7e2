/* ctcmp.h — comparing secrets in constant time.
 *
 * The webhook compares the token of every notification with [notify]
 * token. A comparison that stops at the first differing byte lets a remote
 * caller measure how much of a guess is right; this one takes the same
 * time wherever the strings differ, depending only on the length of the
 * expected value. Leaf module: libc only. */
#ifndef ZCRM_CTCMP_H
#define ZCRM_CTCMP_H

#include <stdbool.h>

/* Whether given equals expected. given may be NULL (never equal);
 * expected must not be. Runs in time linear in strlen(expected) plus
 * strlen(given), whatever the contents. */
bool ct_str_equal(const char *given, const char *expected);

#endif
