/* log.h — logfmt lines on stderr: `ts= level= prog= [module=] msg= key=value…`.
 *
 * log_init() is called once by main before any thread starts; after that the
 * settings are read-only. The per-thread context (module, request id) lives
 * in thread-local storage. Registered secrets are replaced by "[redacted]"
 * in every line as a safety net; code must still never pass secrets. */
#ifndef ZCRM_LOG_H
#define ZCRM_LOG_H

#include "compiler.h"

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* setup (main only, before threads) */
void log_init(const char *prog, enum log_level level);
enum log_level log_level_get(void);
/* Register a secret to redact; the string is copied. Thread-safe. */
void log_add_secret(const char *secret);
/* Forget every registered secret (tests, shutdown). */
void log_clear_secrets(void);

/* per-thread context: module name, request/run id (NULL clears) */
void log_set_module(const char *module);
void log_set_context(const char *key, const char *value);

/* A logfmt-quoted copy of s in a thread-local ring of 8 slots: valid until
 * 8 more calls from the same thread. Use it for any value from outside. */
const char *log_q(const char *s);

void log_write(enum log_level level, const char *msg, const char *fmt, ...)
	ZCRM_PRINTF(3, 4);

#define LOG_AT(lvl, msg, ...)                                   \
	do {                                                    \
		if ((lvl) <= log_level_get())                   \
			log_write((lvl), (msg), "" __VA_ARGS__); \
	} while (0)
/* Usage: log_info("page loaded", "page=%d rows=%ld", page, rows); */
#define log_error(msg, ...) LOG_AT(LOG_LVL_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) LOG_AT(LOG_LVL_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) LOG_AT(LOG_LVL_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) LOG_AT(LOG_LVL_DEBUG, msg, __VA_ARGS__)

#endif
