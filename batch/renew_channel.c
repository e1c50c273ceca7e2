/* renew_channel — cron, every 10 minutes: keep each module's notification
 * channel alive. Asks Zoho only when the channel nears expiry or was last
 * confirmed live [notify] check_interval ago (sync_channel_due), whether
 * the channel is live; renews it when it
 * expires within [notify] renew_margin, asking for at most a day and
 * reading the granted expiry back; re-enables a channel found expired or
 * missing and records a coverage gap from when it lapsed, which
 * incremental_sync then closes. */
#include "batchrt.h"
#include "log.h"
#include "syncstate.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static bool force;

static const struct batch_opt opts[] = {
	{"force", 0, NULL, "renew even when the channel is not close to expiry", NULL, &force},
	{NULL, 0, NULL, NULL, NULL, NULL},
};

static const struct batch_prog prog = {
	.name = "renew_channel",
	.summary = "Renew Zoho notification channels before they expire",
	.description =
		"For each module whose channel expires within [notify] renew_margin or was last\n"
		"confirmed live [notify] check_interval ago or longer (any module with --force):\n"
		"checks with Zoho that the channel is live; renews it when it\n"
		"expires within [notify] renew_margin (asking for [notify] channel_lifetime,\n"
		"at most 24 h, and reading the granted expiry back, since Zoho silently grants\n"
		"one hour when asked beyond its maximum); re-enables a channel found expired or\n"
		"missing and opens a coverage gap from when it lapsed, which incremental_sync\n"
		"closes. Meant for cron every 10 minutes.",
	.opts = opts,
	.needs_zoho = true,
};

static void fmt_time(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	if (!t) {
		snprintf(buf, cap, "unknown");
		return;
	}
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
}

static enum rc renew_module(struct batch_env *env, const char *module)
{
	struct sync_row row;
	struct zoho_channel ch;
	int idx = cfg_module_index(env->cfg, module);
	uint64_t channel = cfg_channel_id(env->cfg, (size_t)idx);
	int64_t now = (int64_t)time(NULL), expiry = 0;
	char when[32], was[32];
	const char *action = "none";
	enum rc rc;

	memset(&ch, 0, sizeof(ch));
	log_set_module(module);
	rc = batch_lock(env, module);
	if (rc)
		goto out_nolock;
	rc = sync_get(env->data, module, &row);
	if (rc)
		goto out;
	if (!row.watermark && !row.channel_id) {
		log_warn("module never synced; run initial_sync first (it enables the channel)", "");
		printf("%s: not initialised; run initial_sync\n", module);
		goto out;
	}
	if (!env->cfg->notify_url[0]) {
		log_error("[notify] url is not set", "");
		rc = RC_CONFIG;
		goto out;
	}
	const char *due = force ? "--force"
				: sync_channel_due(&row, channel, now, env->cfg->renew_margin,
						   env->cfg->check_interval);
	if (!due) {
		/* Zoho confirmed it live lately and it is far from expiry: no
		 * call (a channel that lapses silently meanwhile is found at the
		 * next check, and incremental_sync catches up what it missed). */
		fmt_time(row.channel_expiry, when, sizeof(when));
		log_info("channel confirmed lately; Zoho not asked", "channel=%" PRIu64
			 " checked_ago=%" PRId64 " expiry=%s", channel, now - row.channel_checked,
			 when);
		printf("%s: channel %" PRIu64 " live (confirmed %" PRId64 " s ago), expires %s\n",
		       module, channel, now - row.channel_checked, when);
		goto out;
	}
	log_info("asking Zoho about the channel", "reason=%s", log_q(due));
	rc = zoho_watch_get(env->zoho, channel, &ch);
	if (rc) {
		log_error("cannot read the channel from Zoho", "err=%s", log_q(zoho_error(env->zoho)));
		goto out;
	}
	bool live = ch.found && ch.expiry > now;
	if (!live) {
		/* Lapsed: notifications since then may be lost. The lapse is the
		 * stored expiry if it is past, else the last time Zoho said live. */
		int64_t lapsed = row.channel_expiry && row.channel_expiry <= now ? row.channel_expiry
			       : row.channel_checked ? row.channel_checked
						     : row.watermark;
		if (!lapsed || lapsed > now)
			lapsed = now;
		rc = zoho_watch_enable(env->zoho, module, channel, &expiry);
		if (rc) {
			log_error("cannot re-enable the channel", "err=%s",
				  log_q(zoho_error(env->zoho)));
			if (sync_set_channel(env->data, module, channel, row.channel_expiry,
					     ch.found ? "expired" : "missing"))
				log_warn("cannot record channel state", "");
			goto out;
		}
		rc = db_begin(env->data);
		if (!rc)
			rc = sync_set_channel(env->data, module, channel, expiry, "active");
		if (!rc)
			rc = gap_open(env->data, module, lapsed, now,
				      ch.found ? "channel expired" : "channel missing");
		if (!rc)
			rc = db_commit(env->data);
		if (rc) {
			db_rollback(env->data);
			goto out;
		}
		fmt_time(lapsed, was, sizeof(was));
		log_warn("channel was not live; re-enabled and recorded a coverage gap",
			 "channel=%" PRIu64 " found=%d lapsed=%s", channel, (int)ch.found, was);
		action = "re-enabled";
	} else if (force || ch.expiry - now < env->cfg->renew_margin) {
		rc = zoho_watch_update(env->zoho, module, channel, &expiry);
		if (rc) {
			log_error("cannot renew the channel", "err=%s", log_q(zoho_error(env->zoho)));
			goto out;
		}
		rc = sync_set_channel(env->data, module, channel, expiry, "active");
		if (rc)
			goto out;
		action = "renewed";
	} else {
		expiry = ch.expiry;
		rc = sync_set_channel(env->data, module, channel, expiry, "active");
		if (rc)
			goto out;
	}
	fmt_time(expiry, when, sizeof(when));
	if (expiry && expiry - now < env->cfg->renew_margin && strcmp(action, "none") != 0)
		log_warn("Zoho granted less than the renew margin; it will be renewed again soon",
			 "expiry=%s", when);
	log_info("channel checked", "channel=%" PRIu64 " action=%s expiry=%s", channel, action,
		 when);
	printf("%s: channel %" PRIu64 " %s, expires %s\n", module, channel,
	       !strcmp(action, "none") ? "live" : action, when);
out:
	batch_unlock(env, module);
out_nolock:
	zoho_channel_free(&ch);
	log_set_module(NULL);
	return rc;
}

int main(int argc, char **argv)
{
	struct batch_env env;
	int code = batch_start(&env, &prog, argc, argv);

	if (code >= 0) {
		batch_end(&env);
		return code;
	}
	return batch_run_modules(&env, renew_module);
}
