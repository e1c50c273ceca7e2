/* test_cfg.c — configuration parsing: good files, every kind of bad file,
 * environment overrides, and the error text naming file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TEST_DATA
#define TEST_DATA "tests/data"
#endif

static void clear_env(void)
{
	unsetenv("ZCRM_CONFIG");
	unsetenv("ZCRM_WEBHOOK_THREADS");
	unsetenv("ZCRM_ZOHO_CLIENT_ID");
	unsetenv("ZCRM_SYNC_MODULES");
}

/* A private copy of a test file (git checks files out 0644, and a file
 * holding secrets that others can read is refused): path receives the
 * name, which the caller unlinks. */
static void private_copy(const char *src, const char *text_or_null, mode_t mode, char *path,
			 size_t cap)
{
	snprintf(path, cap, "/tmp/test_cfg.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *out = fdopen(fd, "w");
	assert_non_null(out);
	if (src) {
		FILE *in = fopen(src, "r");
		char buf[4096];
		size_t n;
		assert_non_null(in);
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			assert_int_equal(fwrite(buf, 1, n, out), n);
		fclose(in);
	} else {
		assert_true(fputs(text_or_null, out) >= 0);
	}
	assert_int_equal(fclose(out), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_defaults(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN];

	clear_env();
	assert_int_equal(cfg_load_string("", "empty", false, &cfg, err), RC_OK);
	assert_string_equal(cfg->accounts_url, "https://accounts.zoho.com");
	assert_string_equal(cfg->schema, "zcrm");
	assert_int_equal(cfg->threads, 4);
	assert_int_equal(cfg->nmodules, 1);
	assert_string_equal(cfg->module_list[0], "Leads");
	assert_true(cfg->fetch);
	assert_int_equal(cfg->channel_lifetime, 86400);
	cfg_free(cfg);
}

static void test_good_file(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN], good[64];

	clear_env();
	private_copy(TEST_DATA "/cfg/good.conf", NULL, 0600, good, sizeof(good));
	assert_int_equal(cfg_load(good, &cfg, err), RC_OK);
	unlink(good);
	assert_string_equal(cfg->api_domain, "https://www.zohoapis.eu");
	assert_int_equal(cfg->nmodules, 3);
	assert_string_equal(cfg->module_list[1], "Contacts");
	assert_string_equal(cfg->module_list[2], "Deals");
	assert_int_equal(cfg->overlap, 120);
	assert_int_equal(cfg->threads, 8);
	assert_false(cfg->fetch);
	assert_string_equal(cfg->token, "  spaced token  ");
	assert_int_equal(cfg_module_index(cfg, "Deals"), 2);
	assert_int_equal(cfg_module_index(cfg, "deals"), -1);
	assert_true(cfg_channel_id(cfg, 2) == 1000000068003ULL);
	assert_string_equal(cfg->callback_url, "https://sync.example.com/zcrm/bulk-callback?k=1");
	cfg_free(cfg);
}

static void test_env_overrides(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN], good[64];

	clear_env();
	private_copy(TEST_DATA "/cfg/good.conf", NULL, 0600, good, sizeof(good));
	setenv("ZCRM_WEBHOOK_THREADS", "12", 1);
	setenv("ZCRM_ZOHO_CLIENT_ID", "from-env", 1);
	assert_int_equal(cfg_load(good, &cfg, err), RC_OK);
	assert_int_equal(cfg->threads, 12);
	assert_string_equal(cfg->client_id, "from-env");
	cfg_free(cfg);

	setenv("ZCRM_WEBHOOK_THREADS", "-1", 1);
	assert_int_equal(cfg_load(good, &cfg, err), RC_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(err, "ZCRM_WEBHOOK_THREADS"));
	clear_env();
	unlink(good);
}

struct bad_case {
	const char *file;
	const char *expect[3]; /* substrings the message must hold */
};

static void test_bad_files(void **state)
{
	static const struct bad_case cases[] = {
		{"unknown_section.conf", {"unknown_section.conf:3", "[bogus]", NULL}},
		{"unknown_key.conf", {"unknown_key.conf:3", "client_idd", "[zoho]"}},
		{"bad_int.conf", {"bad_int.conf:2", "threads", "many"}},
		{"out_of_range.conf", {"out_of_range.conf:3", "threads", "outside"}},
		{"bad_bool.conf", {"bad_bool.conf:2", "fetch", "boolean"}},
		{"no_section.conf", {"no_section.conf:1", "outside any section", NULL}},
		{"bad_module.conf", {"bad_module.conf:2", "modules", NULL}},
		{"dup_module.conf", {"modules", "twice", NULL}},
		{"long_token.conf", {"long_token.conf:2", "token", "49"}},
		{"bad_header.conf", {"bad_header.conf:1", "section header", NULL}},
		{"no_equals.conf", {"no_equals.conf:2", "key = value", NULL}},
		{"bad_url.conf", {"bad_url.conf:2", "api_domain", "https://"}},
		{"bad_schema.conf", {"bad_schema.conf:2", "schema", NULL}},
		/* found by fuzz_cfg: an empty value skipped the validator */
		{"empty_modules.conf", {"empty_modules.conf:2", "modules", "empty"}},
		{"empty_schema.conf", {"empty_schema.conf:2", "schema", "empty"}},
		/* issue 14: mistakes that used to pass */
		{"dup_key.conf", {"dup_key.conf:3", "[webhook] threads", "line 2"}},
		{"dup_key_sections.conf", {"dup_key_sections.conf:8", "[webhook] threads", "line 2"}},
		{"unterminated_quote.conf", {"unterminated_quote.conf:2", "[notify] token",
					     "unterminated quote"}},
		{"notify_url_ftp.conf", {"notify_url_ftp.conf:2", "[notify] url", "https://"}},
		{"notify_url_words.conf", {"notify_url_words.conf:2", "[notify] url", "https://"}},
		{"callback_url_nohost.conf", {"callback_url_nohost.conf:2", "[notify] callback_url",
					      "no host"}},
		{"relative_spool.conf", {"relative_spool.conf:2", "[sync] spool_dir", "absolute"}},
		{"margin_too_long.conf", {"margin_too_long.conf:2", "[notify] renew_margin",
					  "not less than"}},
		{"lifetime_too_short.conf", {"lifetime_too_short.conf:3", "[notify] renew_margin",
					     "channel_lifetime 3600"}},
	};
	clear_env();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg *cfg = NULL;
		char err[CFG_ERR_LEN] = "";
		char path[256];
		snprintf(path, sizeof(path), TEST_DATA "/cfg/%s", cases[i].file);
		enum rc rc = cfg_load(path, &cfg, err);
		if (rc != RC_CONFIG)
			fail_msg("%s: expected RC_CONFIG, got %d", cases[i].file, rc);
		assert_null(cfg);
		for (size_t j = 0; j < 3 && cases[i].expect[j]; j++) {
			if (!strstr(err, cases[i].expect[j]))
				fail_msg("%s: message '%s' lacks '%s'", cases[i].file, err,
					 cases[i].expect[j]);
		}
	}
}

/* The schema is used quoted, exactly as written: an upper-case letter
 * would make a schema plain SQL cannot name, so it is refused (issue 14). */
static void test_schema_is_lower_case(void **state)
{
	static const char *const bad[] = {"Zcrm", "ZCRM", "zcRm", "_zcrm", "1zcrm", "zcrm-x",
					  "zcrm x"};
	static const char *const good[] = {"zcrm", "z", "zcrm_2", "sync_mirror9"};
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN], text[160];

	clear_env();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[database]\nschema = %s\n", bad[i]);
		if (cfg_load_string(text, "t.conf", false, &cfg, err) != RC_CONFIG)
			fail_msg("schema = %s was accepted", bad[i]);
		assert_null(cfg);
		assert_non_null(strstr(err, "t.conf:2"));
		assert_non_null(strstr(err, "schema"));
	}
	assert_int_equal(cfg_load_string("[database]\nschema = Zcrm\n", "t.conf", false, &cfg, err),
			 RC_CONFIG);
	assert_non_null(strstr(err, "lower-case"));
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[database]\nschema = %s\n", good[i]);
		if (cfg_load_string(text, "t.conf", false, &cfg, err) != RC_OK)
			fail_msg("schema = %s refused: %s", good[i], err);
		assert_string_equal(cfg->schema, good[i]);
		cfg_free(cfg);
	}
	/* 57 characters: <schema>_stage is PostgreSQL's longest name, 63. */
	char name[60];
	memset(name, 'a', 58);
	name[58] = '\0';
	snprintf(text, sizeof(text), "[database]\nschema = %s\n", name);
	assert_int_equal(cfg_load_string(text, "t.conf", false, &cfg, err), RC_CONFIG);
	name[57] = '\0';
	snprintf(text, sizeof(text), "[database]\nschema = %s\n", name);
	assert_int_equal(cfg_load_string(text, "t.conf", false, &cfg, err), RC_OK);
	cfg_free(cfg);
	/* The environment's override is checked the same way. */
	setenv("ZCRM_DATABASE_SCHEMA", "Zcrm", 1);
	assert_int_equal(cfg_load_string("", "t.conf", true, &cfg, err), RC_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(err, "ZCRM_DATABASE_SCHEMA"));
	unsetenv("ZCRM_DATABASE_SCHEMA");
}

/* The same key in two different sections is two keys; a key set again in
 * a repeated section header is a duplicate; a value quoted on both sides
 * is fine and a lone quote inside a value is kept. */
static void test_duplicates_and_quotes(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN];

	clear_env();
	assert_int_equal(cfg_load_string("[webhook]\nthreads = 3\n[sync]\noverlap = 5\n"
					 "[webhook]\nfetch = no\n",
					 "t.conf", false, &cfg, err),
			 RC_OK);
	assert_int_equal(cfg->threads, 3);
	assert_false(cfg->fetch);
	cfg_free(cfg);
	assert_int_equal(cfg_load_string("[notify]\ntoken = \"\"\n", "t.conf", false, &cfg, err),
			 RC_OK);
	assert_string_equal(cfg->token, "");
	cfg_free(cfg);
	assert_int_equal(cfg_load_string("[notify]\ntoken = ab\"c\n", "t.conf", false, &cfg, err),
			 RC_OK);
	assert_string_equal(cfg->token, "ab\"c");
	cfg_free(cfg);
	assert_int_equal(cfg_load_string("[notify]\ntoken = \"\n", "t.conf", false, &cfg, err),
			 RC_CONFIG);
	assert_non_null(strstr(err, "t.conf:2: [notify] token: unterminated quote"));
	/* The environment is named when it makes the margin too long. */
	setenv("ZCRM_NOTIFY_RENEW_MARGIN", "86100", 1);
	assert_int_equal(cfg_load_string("", "t.conf", true, &cfg, err), RC_CONFIG);
	assert_non_null(strstr(err, "environment ZCRM_NOTIFY_RENEW_MARGIN"));
	setenv("ZCRM_NOTIFY_RENEW_MARGIN", "86099", 1);
	assert_int_equal(cfg_load_string("", "t.conf", true, &cfg, err), RC_OK);
	assert_int_equal(cfg_channel_asked(cfg), 86100);
	cfg_free(cfg);
	unsetenv("ZCRM_NOTIFY_RENEW_MARGIN");
}

/* The file-mode rule: writable by others is refused, readable by others
 * is refused when the file itself holds a secret (issue 14). */
static void test_file_mode(void **state)
{
	static const char with_secret[] = "[zoho]\nclient_id = x\nclient_secret = s3cret\n";
	static const char without[] = "[zoho]\nclient_id = x\n";
	static const struct {
		const char *text;
		mode_t mode;
		enum rc want;
		const char *expect;
	} cases[] = {
		{with_secret, 0600, RC_OK, NULL},
		{with_secret, 0640, RC_OK, NULL},
		{with_secret, 0660, RC_OK, NULL},
		{with_secret, 0644, RC_CONFIG, ":3: [zoho] client_secret: a secret in a file every user can read (mode 0644); chmod 0640"},
		{with_secret, 0604, RC_CONFIG, "(mode 0604)"},
		{with_secret, 0666, RC_CONFIG, "writable by every user (mode 0666)"},
		{without, 0644, RC_OK, NULL},
		{without, 0602, RC_CONFIG, "writable by every user (mode 0602)"},
	};
	clear_env();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg *cfg = NULL;
		char err[CFG_ERR_LEN] = "", path[64];
		private_copy(NULL, cases[i].text, cases[i].mode, path, sizeof(path));
		enum rc rc = cfg_load(path, &cfg, err);
		unlink(path);
		if (rc != cases[i].want)
			fail_msg("case %zu (mode %04o): rc %d, err '%s'", i, (unsigned)cases[i].mode,
				 rc, err);
		if (cases[i].expect && (!strstr(err, cases[i].expect) || !strstr(err, path)))
			fail_msg("case %zu: message '%s' lacks '%s' or the path", i, err,
				 cases[i].expect);
		if (rc == RC_OK)
			cfg_free(cfg);
		else
			assert_null(cfg);
	}
	/* A secret from the environment is not in the file. */
	setenv("ZCRM_ZOHO_CLIENT_SECRET", "from-env", 1);
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN], path[64];
	private_copy(NULL, without, 0644, path, sizeof(path));
	assert_int_equal(cfg_load(path, &cfg, err), RC_OK);
	unlink(path);
	cfg_free(cfg);
	unsetenv("ZCRM_ZOHO_CLIENT_SECRET");
}

static void test_missing_file(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN];

	clear_env();
	assert_int_equal(cfg_load(TEST_DATA "/cfg/does-not-exist.conf", &cfg, err), RC_CONFIG);
	assert_non_null(strstr(err, "does-not-exist.conf"));
	assert_non_null(strstr(err, "cannot open"));
}

static void test_dump_masks_secrets(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN], good[64];
	char *text = NULL;
	size_t len = 0;

	clear_env();
	private_copy(TEST_DATA "/cfg/good.conf", NULL, 0600, good, sizeof(good));
	assert_int_equal(cfg_load(good, &cfg, err), RC_OK);
	unlink(good);
	FILE *f = open_memstream(&text, &len);
	cfg_dump(cfg, f);
	fclose(f);
	assert_null(strstr(text, "s3cret-client-value"));
	assert_null(strstr(text, "1000.refresh.value"));
	assert_non_null(strstr(text, "client_id = 1000.ABC"));
	free(text);
	cfg_free(cfg);
}

/* The sample printed from the key table parses back to the defaults. */
static void test_sample_round_trip(void **state)
{
	struct cfg *cfg = NULL;
	char err[CFG_ERR_LEN];
	char *text = NULL;
	size_t len = 0;

	FILE *f = open_memstream(&text, &len);
	cfg_print_sample(f);
	fclose(f);
	assert_int_equal(cfg_load_string(text, "sample", false, &cfg, err), RC_OK);
	cfg_free(cfg);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),	 cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_env_overrides),	 cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_missing_file),	 cmocka_unit_test(test_dump_masks_secrets),
		cmocka_unit_test(test_sample_round_trip),
		cmocka_unit_test(test_schema_is_lower_case),
		cmocka_unit_test(test_duplicates_and_quotes),
		cmocka_unit_test(test_file_mode),
	};
	log_init("test_cfg", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
