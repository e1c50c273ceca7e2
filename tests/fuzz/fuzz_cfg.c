/* fuzz_cfg.c — libFuzzer entry point for common/cfg (cfg_load_string).
 *
 * The input is a configuration file's text (up to its first NUL, as
 * cfg_load refuses NUL bytes before it gets here); the environment is not
 * read. Whatever loads must hold only values the programs can use safely:
 * 1..CFG_MAX_MODULES module names of letters, digits and '_' (they become
 * SQL identifiers and URL path segments), a schema name of the same kind,
 * URLs starting with http(s)://, numbers inside the table's limits. A
 * refusal must leave *out NULL and say where. Then dump and the lookups
 * run on the result. Any crash, leak or sanitizer report is a bug. */
#include "cfg.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 60 || !isalpha((unsigned char)s[0]))
		abort();
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			abort();
	}
}

static void check_url(const char *s)
{
	if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
		abort();
}

static void check_ok(const struct cfg *cfg)
{
	if (cfg->nmodules == 0 || cfg->nmodules > CFG_MAX_MODULES)
		abort();
	for (size_t i = 0; i < cfg->nmodules; i++) {
		check_name(cfg->module_list[i]);
		if (cfg_module_index(cfg, cfg->module_list[i]) != (int)i)
			abort();
	}
	check_name(cfg->schema);
	check_url(cfg->accounts_url);
	check_url(cfg->api_domain);
	if (strlen(cfg->token) > 49)
		abort();
	if (cfg->threads < 1 || cfg->threads > 256 || cfg->max_ids < 1 ||
	    cfg->max_body < 1024 || cfg->bulk_wait < 1 || cfg->max_ratio < 2)
		abort();
	if (cfg_channel_id(cfg, cfg->nmodules - 1) < cfg->channel_base)
		abort();
	if (cfg->callback_url == NULL || cfg->notify_url == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CFG_ERR_LEN];
	struct cfg *cfg = (struct cfg *)1;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	enum rc rc = cfg_load_string(text, "fuzz.conf", false, &cfg, err);
	if (rc == RC_OK) {
		if (!cfg)
			abort();
		check_ok(cfg);
		/* The dump is what --check-config prints; it must not fail. */
		FILE *f = fopen("/dev/null", "w");
		if (f) {
			cfg_dump(cfg, f);
			fclose(f);
		}
		cfg_free(cfg);
	} else {
		if (rc != RC_CONFIG || cfg != NULL)
			abort();
		if (err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
			abort();
		if (strncmp(err, "fuzz.conf", 9) != 0)
			abort(); /* every message names the file */
	}
	free(text);
	return 0;
}
