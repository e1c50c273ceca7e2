/* main.c — zcrm_webhook: options, signals, the listening socket, threads.
 *
 * Runs under spawn-fcgi or systemd (socket on fd 0, or LISTEN_FDS=1 on
 * fd 3) or with --listen unix:/path | host:port. N worker threads each
 * own one PostgreSQL connection; one housekeeping thread replays the spool.
 * Connections are accepted and polled in conn.c, so that nginx can keep
 * them open (fastcgi_keep_conn) without pinning a thread each.
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish, exit 0. */
#include "cfg.h"
#include "credcheck.h"
#include "http.h"
#include "log.h"
#include "spool.h"
#include "webhook.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [OPTION]...\n"
		"FastCGI receiver for Zoho CRM notifications (zcrm-sync %s).\n"
		"\n"
		"Listens on the socket given by --listen, or on the socket inherited on\n"
		"fd 0 (spawn-fcgi) or via systemd socket activation (LISTEN_FDS).\n"
		"\n"
		"Options:\n"
		"  -c, --config PATH    configuration file (default $ZCRM_CONFIG, then\n"
		"                       " CFG_DEFAULT_PATH ")\n"
		"  -l, --listen SPEC    unix:/path/to.sock or host:port\n"
		"  -t, --threads N      worker threads (default: [webhook] threads)\n"
		"      --check-config   validate the configuration, print it, exit\n"
		"      --check-credentials  refresh the shared Zoho token and make one\n"
		"                       cheap call with it; print ok or why not, exit\n"
		"                       0, 77 (refused) or 75 (Zoho unreachable)\n"
		"      --sample-config  print a commented sample configuration (every key\n"
		"                       with its default) and exit\n"
		"  -v, --verbose        debug logging\n"
		"  -q, --quiet          warnings and errors only\n"
		"  -h, --help           this text\n"
		"  -V, --version        print the version\n"
		"\n"
		"Routes (under any prefix nginx maps): POST /notify, POST /bulk-callback,\n"
		"GET /healthz, GET /metrics.\n"
		"Exit status: 0 after a clean shutdown, 64 usage, 78 configuration,\n"
		"71 socket or thread errors, 73 spool directory cannot be created.\n",
		program_invocation_short_name, ZCRM_VERSION);
}

/* The gid of [webhook] socket_group in *gid ((gid_t)-1 when empty).
 * Returns 0, or EX_CONFIG (logged) for a group that does not exist or that
 * may read the config file: nginx's user in that group would read the
 * client secret and refresh token. */
static int socket_gid(const struct cfg *cfg, gid_t *gid)
{
	struct group gr, *found = NULL;
	struct stat st;
	size_t cap = 1024;
	char *buf = NULL;
	int err, status = 0;

	*gid = (gid_t)-1;
	if (!cfg->socket_group[0])
		return 0;
	for (;;) {
		buf = xrealloc(buf, cap);
		err = getgrnam_r(cfg->socket_group, &gr, buf, cap, &found);
		if (err != ERANGE || cap >= 1024 * 1024)
			break;
		cap *= 4;
	}
	if (!found) {
		log_error("configuration error", "err=%s group=%s",
			  log_q(err ? strerror(err) : "[webhook] socket_group: no such group"),
			  log_q(cfg->socket_group));
		status = EX_CONFIG;
		goto out;
	}
	if (cfg->path && stat(cfg->path, &st) == 0 && st.st_gid == found->gr_gid &&
	    (st.st_mode & S_IRGRP)) {
		log_error("configuration error", "err=%s group=%s file=%s",
			  log_q("[webhook] socket_group is the group that may read the config file:"
				" nginx's user would read the secrets; use nginx's own group"),
			  log_q(cfg->socket_group), log_q(cfg->path));
		status = EX_CONFIG;
		goto out;
	}
	*gid = found->gr_gid;
out:
	free(buf);
	return status;
}

/* A listening Unix socket at path, mode 0660 for nginx (often another
 * user): group gid, or the process's own when gid is (gid_t)-1. */
static int listen_unix(const char *path, gid_t gid)
{
	struct sockaddr_un sa;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long", "path=%s", log_q(path));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);
	/* Owner only until it has its group: no one else connects before. */
	mode_t old = umask(gid == (gid_t)-1 ? 0117 : 0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc || listen(fd, 1024)) {
		log_error("cannot listen", "path=%s err=%s", log_q(path), log_q(strerror(errno)));
		close(fd);
		return -1;
	}
	if (gid != (gid_t)-1 && (chown(path, (uid_t)-1, gid) || chmod(path, 0660))) {
		log_error("cannot give the socket its group", "path=%s gid=%ld err=%s hint=%s",
			  log_q(path), (long)gid, log_q(strerror(errno)),
			  log_q("run as root, or as a member of [webhook] socket_group"));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

static int listen_tcp(const char *spec)
{
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {0}, *ai = NULL;
	int fd = -1, one = 1;

	if (!colon) {
		log_error("bad --listen; expected unix:/path or host:port", "listen=%s", log_q(spec));
		return -1;
	}
	char *host = xstrndup(spec, (size_t)(colon - spec));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	int gai = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &ai);
	free(host);
	if (gai) {
		log_error("cannot resolve --listen", "listen=%s err=%s", log_q(spec),
			  log_q(gai_strerror(gai)));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
		log_error("cannot listen", "listen=%s err=%s", log_q(spec), log_q(strerror(errno)));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The webhook label of /metrics when [webhook] instance is empty:
 * host:socket, which tells apart two webhooks on one host and stays the
 * same across restarts (a pid would not). */
static void set_identity(struct metrics *m, const struct cfg *cfg, int listen_fd)
{
	char host[256] = "", where[256] = "?", *id = NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "unknown");
	if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_UNIX) {
			const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
			snprintf(where, sizeof(where), "%s", un->sun_path[0] ? un->sun_path : "?");
		} else {
			char h[NI_MAXHOST], p[NI_MAXSERV];
			if (!getnameinfo((struct sockaddr *)&ss, len, h, sizeof(h), p, sizeof(p),
					 NI_NUMERICHOST | NI_NUMERICSERV))
				snprintf(where, sizeof(where), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
					 h, p);
		}
	}
	id = cfg->instance[0] ? xstrdup(cfg->instance) : xasprintf("%s:%s", host, where);
	metrics_set_identity(m, id, host);
	log_info("metrics identity", "webhook=%s", log_q(id));
	free(id);
}

static int open_listener(const char *spec, gid_t gid)
{
	if (spec) {
		if (!strncmp(spec, "unix:", 5))
			return listen_unix(spec + 5, gid);
		return listen_tcp(spec);
	}
	const char *fds = getenv("LISTEN_FDS");
	const char *pid = getenv("LISTEN_PID");
	if (fds && pid && atoi(fds) == 1 && atol(pid) == (long)getpid())
		return 3;
	/* spawn-fcgi: the listening socket is fd 0. */
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(0, (struct sockaddr *)&ss, &len) == 0)
		return 0;
	log_error("no socket: give --listen, or run under spawn-fcgi or systemd", "");
	return -1;
}

/* nginx reuses a kept connection once it has sent the whole request and
 * had the whole answer. Stdin a route left unread (a refusal, a GET) would
 * be read as the start of the next request: a protocol error, and the
 * connection closed under nginx's next request (a 502). So read it to its
 * end; when there is more than a body may be, do not keep the connection. */
static void finish_stdin(FCGX_Request *req, size_t max)
{
	char buf[4096];
	size_t got = 0;
	int n;

	while (req->keepConnection && (n = FCGX_GetStr(buf, (int)sizeof(buf), req->in)) > 0) {
		got += (size_t)n;
		if (got > max)
			req->keepConnection = 0;
	}
}

/* Serve the requests waiting on conns, on connections libfcgi did not
 * accept (conn.c). What libfcgi 2.4.2 does with each (libfcgi/fcgiapp.c):
 * - FCGX_Accept_r starts with FCGX_Finish_r, which closes ipcFd unless
 *   keepConnection is set: so it is set, and the request's own
 *   BEGIN_REQUEST record then says whether nginx keeps the connection
 *   (FCGI_KEEP_CONN, from fastcgi_keep_conn on).
 * - It accepts only when ipcFd < 0; with the connection's fd it reads the
 *   request.
 * - If that read fails (nginx closed a kept connection: EOF), it closes the
 *   fd and loops back to accept on listen_sock. The requests were set up
 *   with listen_sock -1, so that accept fails at once (EBADF) instead of
 *   blocking on the real socket: a negative return means only "this
 *   connection is gone".
 * - FCGX_Finish_r closes the fd unless nginx keeps the connection (and the
 *   streams had no error); it stays in ipcFd otherwise.
 * The requests are answered together (webhook_handle), so that their
 * notifications reach PostgreSQL in one statement. */
static void serve(struct worker *w, FCGX_Request *reqs, struct conn **conns, size_t n)
{
	struct conns *cs = w->app->conns;
	FCGX_Request *live[WEBHOOK_BATCH_MAX];
	struct conn *live_conns[WEBHOOK_BATCH_MAX];
	size_t nlive = 0;

	for (size_t i = 0; i < n; i++) {
		FCGX_Request *req = &reqs[i];
		req->ipcFd = conn_fd(conns[i]);
		req->keepConnection = 1;
		if (FCGX_Accept_r(req) < 0) {
			conns_release(cs, conns[i], false);
			continue;
		}
		live[nlive] = req;
		live_conns[nlive++] = conns[i];
	}
	if (nlive == 0)
		return;
	webhook_handle(w, live, nlive);
	for (size_t i = 0; i < nlive; i++) {
		finish_stdin(live[i], w->app->cfg->max_body);
		FCGX_Finish_r(live[i]);
		conns_release(cs, live_conns[i], live[i]->ipcFd >= 0);
		/* The connection is no longer this request's: never close it later. */
		live[i]->ipcFd = -1;
	}
	webhook_after_reply(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	FCGX_Request reqs[WEBHOOK_BATCH_MAX];
	struct conn *conns[WEBHOOK_BATCH_MAX];
	size_t n;

	/* listen_sock -1: libfcgi never accepts (see serve). */
	for (size_t i = 0; i < WEBHOOK_BATCH_MAX; i++) {
		if (FCGX_InitRequest(&reqs[i], -1, 0)) {
			log_error("cannot initialise request", "worker=%d", w->index);
			return NULL;
		}
	}
	while ((n = conns_next(w->app->conns, conns, WEBHOOK_BATCH_MAX)) > 0)
		serve(w, reqs, conns, n);
	webhook_worker_close(w);
	return NULL;
}

/* Housekeeping: replay the spool whenever the database is reachable,
 * backing off (up to 10 s) while it is not, so an outage is not a busy loop. */
static void *housekeeper_main(void *arg)
{
	struct worker *w = arg;
	const long tick_ms = 250;
	long wait_ms = 0, backoff_ms = tick_ms;
	unsigned long ticks = 0;
	bool migrated = false;

	log_set_context("worker", "housekeeper");
	while (!w->app->stop) {
		struct timespec pause = {0, tick_ms * 1000 * 1000};
		nanosleep(&pause, NULL);
		wait_ms -= tick_ms;
		if (wait_ms > 0)
			continue;
		/* Like every program, bring the schema up to date - once the
		 * database answers, since the webhook starts without it. */
		if (!migrated && webhook_db(w)) {
			int applied = 0;
			migrated = db_migrate(w->db, &applied) == RC_OK;
		}
		if (webhook_replay_spool(w) < 0) {
			backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
			wait_ms = backoff_ms;
			continue;
		}
		backoff_ms = tick_ms;
		wait_ms = 0;
		/* Fetch queued ids once [webhook] fetch_delay has passed for the
		 * oldest; retry ids whose fetch failed about once a second. */
		webhook_fetch_due(w, ++ticks % 4 == 0);
	}
	/* Last chance before exit, so a clean stop leaves little behind. */
	webhook_replay_spool(w);
	webhook_worker_close(w);
	return NULL;
}

/* What the command line asks for. */
struct options {
	const char *config, *listen_spec;
	long threads;             /* 0: [webhook] threads */
	bool check_only, check_creds;
	enum log_level level;
};

/* Parse the command line into o. Returns -1 to go on, or an exit code to
 * return at once (--help, --version, --sample-config, usage). */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"threads", required_argument, NULL, 't'},
		{"check-config", no_argument, NULL, 'C'},
		{"check-credentials", no_argument, NULL, 'K'},
		{"sample-config", no_argument, NULL, 'S'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->level = LOG_LVL_INFO;
	while ((c = getopt_long(argc, argv, "c:l:t:vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'l':
			o->listen_spec = optarg;
			break;
		case 't':
			o->threads = strtol(optarg, NULL, 10);
			if (o->threads < 1 || o->threads > 256) {
				fprintf(stderr, "%s: --threads must be 1..256\n",
					program_invocation_short_name);
				return EX_USAGE;
			}
			break;
		case 'C':
			o->check_only = true;
			break;
		case 'K':
			o->check_creds = true;
			break;
		case 'S':
			/* Needs no configuration: etc/zcrm-sync.conf.example is made
			 * from this (make sample-config). */
			cfg_print_sample(stdout);
			return EX_OK;
		case 'v':
			o->level = LOG_LVL_DEBUG;
			break;
		case 'q':
			o->level = LOG_LVL_WARN;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("%s %s\n", program_invocation_short_name, ZCRM_VERSION);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", program_invocation_short_name,
			argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	return -1;
}

/* Load and check the configuration into *cfg and the socket's group into
 * *sgid; do --check-config and --check-credentials; create the spool.
 * Returns -1 to go on, or an exit code with *cfg freed. */
static int load_config(const struct options *o, struct cfg **cfg, gid_t *sgid)
{
	char err[CFG_ERR_LEN];
	int status = -1;

	*cfg = NULL;
	if (cfg_load(o->config, cfg, err) != RC_OK) {
		log_error("configuration error", "err=%s", log_q(err));
		return EX_CONFIG;
	}
	cfg_register_secrets(*cfg);
	if (!(*cfg)->token[0]) {
		log_error("configuration error", "err=%s",
			  log_q("[notify] token must be set: it is how the webhook knows Zoho"));
		status = EX_CONFIG;
		goto out;
	}
	int gstatus = socket_gid(*cfg, sgid);
	if (gstatus) {
		status = gstatus;
		goto out;
	}
	if (o->check_only) {
		cfg_dump(*cfg, stdout);
		status = EX_OK;
		goto out;
	}
	if (o->check_creds) {
		enum rc crc = credcheck_run(*cfg, NULL, stdout);
		log_clear_secrets();
		status = rc_exit_code(crc);
		goto out;
	}
	if (spool_init((*cfg)->spool_dir) != RC_OK)
		status = EX_CANTCREAT;
out:
	if (status >= 0) {
		cfg_free(*cfg);
		*cfg = NULL;
	}
	return status;
}

/* libcurl, libfcgi, the listening socket, the metrics' identity and the
 * connection set of app. Returns EX_OK or EX_OSERR (logged). */
static int start_app(struct app *app, const char *listen_spec, gid_t sgid)
{
	if (http_global_init() != RC_OK) {
		log_error("cannot initialise libcurl", "");
		return EX_OSERR;
	}
	if (FCGX_Init()) {
		log_error("FCGX_Init failed", "");
		return EX_OSERR;
	}
	app->listen_fd = open_listener(listen_spec, sgid);
	if (app->listen_fd < 0)
		return EX_OSERR;
	set_identity(app->metrics, app->cfg, app->listen_fd);
	const char *endpoints[ZOHO_EP__COUNT];
	for (size_t i = 0; i < ZOHO_EP__COUNT; i++)
		endpoints[i] = zoho_endpoint_name((enum zoho_endpoint)i);
	metrics_set_endpoints(app->metrics, endpoints, ZOHO_EP__COUNT);
	app->conns = conns_new(app, app->listen_fd);
	return app->conns ? EX_OK : EX_OSERR;
}

/* Block in sigwait until SIGTERM or SIGINT (SIGHUP is logged and
 * ignored), then set app->stop. */
static void wait_for_stop(struct app *app, const sigset_t *sigs)
{
	while (!app->stop) {
		int sig = 0;
		if (sigwait(sigs, &sig))
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP ignored; restart to reload the configuration", "");
			continue;
		}
		log_info("shutting down; finishing requests in flight", "signal=%d", sig);
		app->stop = 1;
	}
}

/* The worker threads and the housekeeper, until a signal stops them.
 * Returns EX_OK, or EX_OSERR when a worker could not be started. */
static int run_threads(struct app *app, long threads, const char *listen_spec,
		       const sigset_t *sigs)
{
	const struct cfg *cfg = app->cfg;
	struct worker *workers = xcalloc((size_t)threads, sizeof(*workers)), housekeeper;
	pthread_t *tids = xcalloc((size_t)threads, sizeof(*tids)), htid;
	long started = 0;
	bool housekeeper_started = false;
	int status = EX_OK;

	for (long i = 0; i < threads; i++) {
		workers[i].app = app;
		workers[i].index = (int)i;
		workers[i].fetch_wanted = xcalloc(cfg->nmodules ? cfg->nmodules : 1,
						  sizeof(*workers[i].fetch_wanted));
		if (pthread_create(&tids[i], NULL, worker_main, &workers[i])) {
			log_error("cannot start worker thread", "err=%s", log_q(strerror(errno)));
			status = EX_OSERR;
			app->stop = 1;
			break;
		}
		started++;
	}
	memset(&housekeeper, 0, sizeof(housekeeper));
	housekeeper.app = app;
	housekeeper.index = -1;
	if (!app->stop && pthread_create(&htid, NULL, housekeeper_main, &housekeeper) == 0)
		housekeeper_started = true;
	if (!app->stop)
		log_info("webhook started", "threads=%ld listen=%s modules=%s", threads,
			 log_q(listen_spec ? listen_spec : "inherited"), log_q(cfg->modules));
	wait_for_stop(app, sigs);
	/* Wake the worker waiting for connections: the workers stop accepting,
	 * serve the requests in flight and those already waiting, and close the
	 * idle connections. The listening socket is left as it is: shutdown()
	 * would also make systemd's copy of it refuse connections, which then
	 * could no longer wait in the backlog for the next start. */
	conns_wake(app->conns);
	for (long i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (housekeeper_started)
		pthread_join(htid, NULL);
	log_info("webhook stopped", "");
	for (long i = 0; i < threads; i++)
		free(workers[i].fetch_wanted);
	free(workers);
	free(tids);
	return status;
}

int main(int argc, char **argv)
{
	struct options o;
	struct cfg *cfg = NULL;
	struct app app;
	gid_t sgid;
	int status = parse_args(argc, argv, &o);

	if (status >= 0)
		return status;
	log_init("zcrm_webhook", o.level);
	status = load_config(&o, &cfg, &sgid);
	if (status >= 0)
		return status;

	/* Signals go to main only (sigwait below); workers never see them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&app, 0, sizeof(app));
	app.cfg = cfg;
	app.metrics = metrics_new();
	status = start_app(&app, o.listen_spec, sgid);
	if (status == EX_OK)
		status = run_threads(&app, o.threads ? o.threads : cfg->threads, o.listen_spec,
				     &sigs);
	if (o.listen_spec && !strncmp(o.listen_spec, "unix:", 5) && app.listen_fd >= 0)
		unlink(o.listen_spec + 5);
	conns_free(app.conns);
	http_global_cleanup();
	metrics_free(app.metrics);
	log_clear_secrets();
	cfg_free(cfg);
	return status;
}
