/* log.c — logfmt writer with secret redaction (see log.h). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_MAX_SECRETS 32
#define LOG_Q_SLOTS 8
#define LOG_Q_SIZE 1024

/* Process-wide settings, written by log_init() before threads exist. */
static struct {
	char prog[64];
	enum log_level level;
} log_settings = {"zcrm", LOG_LVL_INFO};

/* The secret list is the one piece of shared mutable state here: tokens are
 * minted at run time by any thread, so it is guarded by a mutex. */
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char *secrets[LOG_MAX_SECRETS];
static size_t nsecrets;

static _Thread_local char tl_module[64];
static _Thread_local char tl_ctx_key[32];
static _Thread_local char tl_ctx_val[96];
static _Thread_local char tl_q[LOG_Q_SLOTS][LOG_Q_SIZE];
static _Thread_local unsigned tl_q_next;

void log_init(const char *prog, enum log_level level)
{
	snprintf(log_settings.prog, sizeof(log_settings.prog), "%s", prog);
	log_settings.level = level;
}

enum log_level log_level_get(void)
{
	return log_settings.level;
}

void log_add_secret(const char *secret)
{
	/* Short strings would redact ordinary words; secrets are longer. */
	if (!secret || strlen(secret) < 6)
		return;
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		if (strcmp(secrets[i], secret) == 0)
			goto out;
	}
	if (nsecrets == LOG_MAX_SECRETS) {
		/* Oldest first out: access tokens rotate hourly. */
		free(secrets[0]);
		memmove(secrets, secrets + 1, (LOG_MAX_SECRETS - 1) * sizeof(*secrets));
		nsecrets--;
	}
	secrets[nsecrets++] = xstrdup(secret);
out:
	pthread_mutex_unlock(&secrets_lock);
}

void log_clear_secrets(void)
{
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++)
		free(secrets[i]);
	nsecrets = 0;
	pthread_mutex_unlock(&secrets_lock);
}

void log_set_module(const char *module)
{
	snprintf(tl_module, sizeof(tl_module), "%s", module ? module : "");
}

void log_set_context(const char *key, const char *value)
{
	snprintf(tl_ctx_key, sizeof(tl_ctx_key), "%s", key && value ? key : "");
	snprintf(tl_ctx_val, sizeof(tl_ctx_val), "%s", key && value ? value : "");
}

static int needs_quotes(const char *s)
{
	if (!*s)
		return 1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return 1;
	}
	return 0;
}

static void quote_into(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	if (!s)
		s = "";
	if (!needs_quotes(s)) {
		snprintf(dst, cap, "%s", s);
		return;
	}
	dst[n++] = '"';
	for (; *s && n + 6 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)c;
		} else if (c == '\n') {
			dst[n++] = '\\';
			dst[n++] = 'n';
		} else if (c == '\r') {
			dst[n++] = '\\';
			dst[n++] = 'r';
		} else if (c == '\t') {
			dst[n++] = '\\';
			dst[n++] = 't';
		} else if (c < ' ' || c == 0x7f) {
			n += (size_t)snprintf(dst + n, cap - n, "\\x%02x", c);
		} else {
			dst[n++] = (char)c;
		}
	}
	if (*s && n + 4 < cap) {
		dst[n++] = '.';
		dst[n++] = '.';
		dst[n++] = '.';
	}
	dst[n++] = '"';
	dst[n] = '\0';
}

const char *log_q(const char *s)
{
	char *slot = tl_q[tl_q_next++ % LOG_Q_SLOTS];
	quote_into(slot, LOG_Q_SIZE, s);
	return slot;
}

static void redact(char *line)
{
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		size_t slen = strlen(secrets[i]);
		char *p = line;
		while ((p = strstr(p, secrets[i])) != NULL) {
			static const char mask[] = "[redacted]";
			size_t mlen = sizeof(mask) - 1;
			size_t tail = strlen(p + slen);
			if (mlen <= slen) {
				memcpy(p, mask, mlen);
				memmove(p + mlen, p + slen, tail + 1);
			} else {
				memset(p, '*', slen);
			}
			p += mlen <= slen ? mlen : slen;
		}
	}
	pthread_mutex_unlock(&secrets_lock);
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERROR:
		return "error";
	case LOG_LVL_WARN:
		return "warn";
	case LOG_LVL_INFO:
		return "info";
	case LOG_LVL_DEBUG:
		return "debug";
	}
	return "info";
}

/* Whether the logfmt pairs in kv have this key (values may be quoted). */
static bool has_key(const char *kv, const char *key)
{
	size_t klen = strlen(key);
	const char *p = kv;

	while (*p) {
		while (*p == ' ')
			p++;
		const char *k = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		if ((size_t)(p - k) == klen && *p == '=' && !strncmp(k, key, klen))
			return true;
		if (*p == '=')
			p++;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
			}
			if (*p)
				p++;
		}
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

void log_write(enum log_level level, const char *msg, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	char kv[LOG_LINE_MAX];
	char qmsg[LOG_Q_SIZE];
	struct timespec now;
	struct tm tm;
	size_t n;
	va_list ap;

	kv[0] = '\0';
	if (fmt && *fmt) {
		va_start(ap, fmt);
		vsnprintf(kv, sizeof(kv), fmt, ap);
		va_end(ap);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	quote_into(qmsg, sizeof(qmsg), msg);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s prog=%s pid=%d",
			      now.tv_nsec / 1000000L, level_name(level), log_settings.prog,
			      (int)getpid());
	/* A key the caller gives itself wins over the thread's context: one
	 * module= per line, never two. */
	if (tl_module[0] && !has_key(kv, "module") && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " module=%s", tl_module);
	if (tl_ctx_key[0] && !has_key(kv, tl_ctx_key) && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%s", tl_ctx_key, tl_ctx_val);
	if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " msg=%s", qmsg);
	if (kv[0] && n + 1 < sizeof(line)) {
		line[n++] = ' ';
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", kv);
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n] = '\0';
	redact(line);
	n = strlen(line);
	line[n++] = '\n';
	/* One write(2) per line keeps lines whole across threads. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
