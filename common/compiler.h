/* compiler.h — attributes and the allocation policy shared by every module.
 *
 * Allocation failure aborts with a log line (xmalloc and friends): the cron
 * jobs and the webhook workers have no useful way to go on without memory,
 * and an abort is more honest than an untested recovery path. */
#ifndef ZCRM_COMPILER_H
#define ZCRM_COMPILER_H

#include <stddef.h>

#define ZCRM_MUSTCHECK __attribute__((warn_unused_result))
#define ZCRM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ZCRM_NORETURN __attribute__((noreturn))
#define ZCRM_UNUSED __attribute__((unused))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; the caller frees it. */
char *xasprintf(const char *fmt, ...) ZCRM_PRINTF(1, 2);

#endif
