/* renew_channel — cron, every 10 minutes: keep each module's notification
 * channel alive. Asks Zoho only when the channel nears expiry or was last
 * confirmed live [notify] check_interval ago (sync_channel_due), whether
 * the channel is live; renews it when it
 * expires within [notify] renew_margin, asking for at most a day and
 * reading the granted expiry back; re-enables a channel found expired or
 * missing and records a coverage gap from when it lapsed, which
 * incremental_sync then closes. */
#include "batchrt.h"
#include "renew.h"

#include <stdio.h>

static const struct batch_opt opts[] = {
	{"force", 0, NULL, "renew even when the channel is not close to expiry"},
	{NULL, 0, NULL, NULL},
};

/* The logic is common/renew.c's. */
static enum rc renew_module(struct batch_env *env, const char *module, struct batch_run *run)
{
	return renew_check(env->cfg, env->data, env->zoho, module, batch_flag(env, "force"),
			   stdout);
}

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
	.module_fn = renew_module,
};

int main(int argc, char **argv)
{
	return batch_main(&prog, argc, argv);
}
