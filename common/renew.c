/* renew.c — each module's notification channel at Zoho, enabled and kept
 * alive (see renew.h). Owns the decision when to ask Zoho, when to renew
 * and when to re-enable, and the coverage gap a lapsed channel leaves;
 * the calls are zoho.c's, the bookkeeping syncstate.c's. */
#include "renew.h"
#include "log.h"
#include "syncstate.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

static void fmt_time(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	if (!t) {
		snprintf(buf, cap, "unknown");
		return;
	}
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
}

static uint64_t channel_of(const struct cfg *cfg, const char *module)
{
	return cfg_channel_id(cfg, (size_t)cfg_module_index(cfg, module));
}

enum rc renew_enable(const struct cfg *cfg, struct db *data, struct zoho *zoho,
		     const char *module)
{
	uint64_t channel = channel_of(cfg, module);
	int64_t expiry = 0;
	enum rc rc;

	if (!cfg->notify_url[0]) {
		log_error("[notify] url is not set: Zoho needs it to send notifications",
			  "hint=%s", log_q("set it, or pass --no-channel"));
		return RC_CONFIG;
	}
	rc = zoho_watch_enable(zoho, module, channel, &expiry);
	if (rc) {
		log_error("cannot enable the notification channel", "err=%s",
			  log_q(zoho_error(zoho)));
		return rc;
	}
	rc = sync_set_channel(data, module, channel, expiry, "active");
	if (rc)
		return rc;
	char when[32];
	time_t t = (time_t)expiry;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	log_info("notification channel enabled", "channel=%" PRIu64 " expiry=%s", channel, when);
	if (expiry && expiry - time(NULL) < 2 * 3600)
		log_warn("Zoho granted a short channel life; renew_channel must run often",
			 "expiry=%s", when);
	return RC_OK;
}

/* Zoho says the channel is not live: notifications since then may be
 * lost. Re-enable it and open a coverage gap from when it lapsed: the
 * stored expiry if it is past, else the last time Zoho said live. */
static enum rc reenable(struct db *data, struct zoho *zoho, const char *module,
			uint64_t channel, const struct sync_row *row,
			const struct zoho_channel *ch, int64_t now, int64_t *expiry)
{
	int64_t lapsed = row->channel_expiry && row->channel_expiry <= now ? row->channel_expiry
		       : row->channel_checked ? row->channel_checked
					      : row->watermark;
	char was[32];
	enum rc rc;

	if (!lapsed || lapsed > now)
		lapsed = now;
	rc = zoho_watch_enable(zoho, module, channel, expiry);
	if (rc) {
		log_error("cannot re-enable the channel", "err=%s", log_q(zoho_error(zoho)));
		if (sync_set_channel(data, module, channel, row->channel_expiry,
				     ch->found ? "expired" : "missing"))
			log_warn("cannot record channel state", "");
		return rc;
	}
	rc = db_begin(data);
	if (!rc)
		rc = sync_set_channel(data, module, channel, *expiry, "active");
	if (!rc)
		rc = gap_open(data, module, lapsed, now,
			      ch->found ? "channel expired" : "channel missing");
	if (!rc)
		rc = db_commit(data);
	if (rc) {
		db_rollback(data);
		return rc;
	}
	fmt_time(lapsed, was, sizeof(was));
	log_warn("channel was not live; re-enabled and recorded a coverage gap",
		 "channel=%" PRIu64 " found=%d lapsed=%s", channel, (int)ch->found, was);
	return RC_OK;
}

/* Ask Zoho about the channel and act: re-enable, renew, or record it
 * live. *action: what was done ("re-enabled", "renewed", "none"). */
static enum rc ask_and_act(const struct cfg *cfg, struct db *data, struct zoho *zoho,
			   const char *module, uint64_t channel, const struct sync_row *row,
			   bool force, int64_t now, int64_t *expiry, const char **action)
{
	struct zoho_channel ch;
	enum rc rc;

	memset(&ch, 0, sizeof(ch));
	rc = zoho_watch_get(zoho, channel, &ch);
	if (rc) {
		log_error("cannot read the channel from Zoho", "err=%s", log_q(zoho_error(zoho)));
		goto out;
	}
	if (!(ch.found && ch.expiry > now)) {
		rc = reenable(data, zoho, module, channel, row, &ch, now, expiry);
		if (!rc)
			*action = "re-enabled";
	} else if (force || ch.expiry - now < cfg->renew_margin) {
		rc = zoho_watch_update(zoho, module, channel, expiry);
		if (rc) {
			log_error("cannot renew the channel", "err=%s", log_q(zoho_error(zoho)));
			goto out;
		}
		rc = sync_set_channel(data, module, channel, *expiry, "active");
		if (!rc)
			*action = "renewed";
	} else {
		*expiry = ch.expiry;
		rc = sync_set_channel(data, module, channel, *expiry, "active");
	}
out:
	zoho_channel_free(&ch);
	return rc;
}

enum rc renew_check(const struct cfg *cfg, struct db *data, struct zoho *zoho,
		    const char *module, bool force, FILE *out)
{
	struct sync_row row;
	uint64_t channel = channel_of(cfg, module);
	int64_t now = (int64_t)time(NULL), expiry = 0;
	char when[32];
	const char *action = "none";
	enum rc rc;

	rc = sync_get(data, module, &row);
	if (rc)
		return rc;
	if (!row.watermark && !row.channel_id) {
		log_warn("module never synced; run initial_sync first (it enables the channel)", "");
		fprintf(out, "%s: not initialised; run initial_sync\n", module);
		return RC_OK;
	}
	if (!cfg->notify_url[0]) {
		log_error("[notify] url is not set", "");
		return RC_CONFIG;
	}
	const char *due = force ? "--force"
				: sync_channel_due(&row, channel, now, cfg->renew_margin,
						   cfg->check_interval);
	if (!due) {
		/* Zoho confirmed it live lately and it is far from expiry: no
		 * call (a channel that lapses silently meanwhile is found at the
		 * next check, and incremental_sync catches up what it missed). */
		fmt_time(row.channel_expiry, when, sizeof(when));
		log_info("channel confirmed lately; Zoho not asked", "channel=%" PRIu64
			 " checked_ago=%" PRId64 " expiry=%s", channel, now - row.channel_checked,
			 when);
		fprintf(out, "%s: channel %" PRIu64 " live (confirmed %" PRId64 " s ago), expires %s\n",
			module, channel, now - row.channel_checked, when);
		return RC_OK;
	}
	log_info("asking Zoho about the channel", "reason=%s", log_q(due));
	rc = ask_and_act(cfg, data, zoho, module, channel, &row, force, now, &expiry, &action);
	if (rc)
		return rc;
	fmt_time(expiry, when, sizeof(when));
	if (expiry && expiry - now < cfg->renew_margin && strcmp(action, "none") != 0)
		log_warn("Zoho granted less than the renew margin; it will be renewed again soon",
			 "expiry=%s", when);
	log_info("channel checked", "channel=%" PRIu64 " action=%s expiry=%s", channel, action,
		 when);
	fprintf(out, "%s: channel %" PRIu64 " %s, expires %s\n", module, channel,
		!strcmp(action, "none") ? "live" : action, when);
	return RC_OK;
}
