#!/bin/sh
# demo.sh — zcrm-sync end to end on this machine, without a Zoho org.
#
#   scripts/demo.sh start    (make demo)       stop a previous demo, then start
#                                              everything below in .demo/
#   scripts/demo.sh stop     (make demo-stop)  stop everything the demo started
#                                              and remove .demo/ (KEEP=1 keeps it)
#   scripts/demo.sh status                     what is running
#
# `start` runs, all on 127.0.0.1 and all under .demo/ in the checkout:
#   1. a throwaway PostgreSQL cluster (scripts/pg-temp),
#   2. the Zoho CRM simulator with 50,000 Leads (tests/zoho_sim),
#   3. batch/status once, which applies the migrations,
#   4. the webhook (webhook/zcrm_webhook) on a Unix socket,
#   5. nginx on a free port with the project's nginx/ files,
# with .demo/zcrm-sync.conf written for them; then runs batch/initial_sync (a
# progress line when stderr is a terminal), edits and deletes a few Leads in the simulator,
# waits until the notifications have reached the table through nginx and the
# webhook, prints those rows before and after, runs batch/status, and says
# where everything is. It leaves the servers running for you to play with.
#
# Works as root (PostgreSQL then runs as $PG_TEMP_USER, default nobody, and
# nginx with `user root;`) and as a normal user. The programs are taken from
# $ZCRM_BIN_ROOT (default: the checkout, as `make` builds them).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
D="$here/.demo"
BIN="${ZCRM_BIN_ROOT:-$here}"
BIN="${BIN%/}"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
LEADS=50000
PAGE_SIZE=20000
TOKEN="demo-token-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
CHANNEL_ID=1000000068001

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'demo: %s\n' "$*" >&2; }

# ----------------------------------------------------------- processes

# The pid in file $1 if that process is alive and its command line holds
# the demo directory (a recycled pid is never signalled).
live_pid() {
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$D" || return 1
	echo "$pid"
}

# Running and not a zombie (the demo's processes are reparented to init,
# which may take its time to reap them).
running() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$state" != Z ] && [ "$state" != X ]
}

# stop_pid NAME PIDFILE: SIGTERM, wait up to 20 s, then SIGKILL.
stop_pid() {
	pid=$(live_pid "$2") || { rm -f "$2"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	i=0
	while running "$pid" && [ "$i" -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if running "$pid"; then
		warn "$1 (pid $pid) did not stop within 20 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	say "stopped $1 (pid $pid)"
	rm -f "$2"
}

# Start a program in the background in its own session, stdin closed,
# stdout and stderr to a log; its pid goes to a file.
spawn() {
	pidfile=$1
	log=$2
	shift 2
	setsid "$@" </dev/null >>"$log" 2>&1 &
	echo $! >"$pidfile"
}

# wait_for SECONDS COMMAND...: poll the command every 0.2 s.
wait_for() {
	limit=$(($1 * 5))
	shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt "$limit" ] || return 1
		sleep 0.2
	done
}

http_code() {
	curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true
}

curl_json() {
	curl -s --noproxy '*' --fail-with-body --max-time 30 -H 'Content-Type: application/json' "$@"
}

free_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

tail_log() {
	if [ -f "$1" ]; then
		printf -- '--- last lines of %s ---\n' "$1" >&2
		tail -n "${2:-25}" "$1" >&2
	fi
}

# Something went wrong: show why, stop what runs, keep the logs.
fail() {
	warn "$1"
	[ -z "${2:-}" ] || tail_log "$2"
	warn "stopping the demo; its logs stay in $D (make demo-stop removes them)"
	trap - INT TERM
	KEEP=1
	do_stop >&2 || true
	exit 1
}

# ---------------------------------------------------------------- stop

do_stop() {
	[ -d "$D" ] || { say "no demo running (no $D)"; return 0; }
	stop_pid webhook "$D/webhook.pid"
	stop_pid nginx "$D/nginx/nginx.pid"
	stop_pid zoho_sim "$D/sim.pid"
	if [ -d "$D/pg" ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			"$here/scripts/pg-temp" stop "$D/pg" && say "stopped PostgreSQL (data kept in $D/pg)"
		else
			"$here/scripts/pg-temp" destroy "$D/pg" && say "stopped PostgreSQL"
		fi
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		say "kept $D (logs, config, database files)"
	else
		rm -rf "$D"
		say "removed $D"
	fi
}

do_status() {
	[ -d "$D" ] || { say "no demo (no $D)"; return 1; }
	for x in webhook:webhook.pid nginx:nginx/nginx.pid zoho_sim:sim.pid; do
		name=${x%%:*}
		if pid=$(live_pid "$D/${x#*:}"); then
			say "$name: running (pid $pid)"
		else
			say "$name: not running"
		fi
	done
	if "$here/scripts/pg-temp" status "$D/pg" >/dev/null 2>&1; then
		say "postgres: running ($(cat "$D/pg/conninfo"))"
	else
		say "postgres: not running"
	fi
}

# --------------------------------------------------------------- start

check_built() {
	for p in webhook/zcrm_webhook batch/initial_sync batch/status; do
		[ -x "$BIN/$p" ] || fail "$BIN/$p is not built: run make (or make demo)"
	done
	command -v curl >/dev/null 2>&1 || fail "curl is missing: run scripts/install-deps.sh"
	NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
	[ -x "$NGINX" ] || fail "nginx is missing: run scripts/install-deps.sh"
}

start_postgres() {
	step "PostgreSQL: a throwaway cluster in .demo/pg"
	CONNINFO=$("$here/scripts/pg-temp" start "$D/pg") ||
		fail "PostgreSQL did not start" "$D/pg/postgres.log"
	say "conninfo: $CONNINFO"
}

start_sim() {
	step "Zoho CRM simulator with $LEADS Leads (generating them takes about 5-10 s)"
	spawn "$D/sim.pid" "$D/sim.log" "$PYTHON" "$here/tests/zoho_sim/zoho_sim.py" \
		--port 0 --port-file "$D/sim.port" --modules "Leads:$LEADS" --page-size "$PAGE_SIZE" \
		--seed 1
	wait_for 120 test -s "$D/sim.port" ||
		fail "the simulator did not start within 120 s" "$D/sim.log"
	SIM_PORT=$(cat "$D/sim.port")
	SIM="http://127.0.0.1:$SIM_PORT"
	[ "$(http_code "$SIM/_sim/health")" = 200 ] || fail "the simulator does not answer" "$D/sim.log"
	say "listening on $SIM"
}

write_config() {
	NGINX_PORT=$(free_port)
	mkdir -p "$D/work"
	umask 077
	cat >"$D/zcrm-sync.conf" <<EOF
# Written by scripts/demo.sh: zcrm-sync against the local Zoho simulator.
# Every key and its default: docs/config.md.

[zoho]
accounts_url = $SIM
api_domain = $SIM
client_id = sim-client-id
client_secret = sim-client-secret
refresh_token = sim-refresh-token

[database]
conninfo = $CONNINFO
schema = zcrm

[sync]
modules = Leads
spool_dir = $D/spool
work_dir = $D/work

[notify]
url = http://127.0.0.1:$NGINX_PORT/zcrm/notify
channel_id = $CHANNEL_ID
token = $TOKEN

[webhook]
threads = 4
EOF
	umask 022
}

# Any batch program applies the migrations; the webhook does not (its
# /healthz says 503 until they are there).
migrate() {
	step "schema: batch/status applies the migrations (every batch program does)"
	"$BIN/batch/status" --config "$D/zcrm-sync.conf" >"$D/migrate.log" 2>&1 ||
		fail "batch/status could not migrate the database" "$D/migrate.log"
	grep 'msg="migration applied"' "$D/migrate.log" || true
}

start_webhook() {
	step "webhook: $BIN/webhook/zcrm_webhook on unix:$D/webhook.sock"
	spawn "$D/webhook.pid" "$D/webhook.log" "$BIN/webhook/zcrm_webhook" \
		--config "$D/zcrm-sync.conf" --listen "unix:$D/webhook.sock"
	wait_for 15 test -S "$D/webhook.sock" ||
		fail "the webhook did not start" "$D/webhook.log"
	live_pid "$D/webhook.pid" >/dev/null || fail "the webhook exited" "$D/webhook.log"
	say "log: $D/webhook.log"
}

# The nginx config: the project's upstream, with the demo's socket, and its
# snippet included in a server on 127.0.0.1 (what
# tests/integration/nginx.conf.in does).
write_nginx_conf() {
	n="$D/nginx"
	mkdir -p "$n"
	count=$(grep -c 'server unix:/run/zcrm-sync/webhook.sock;' "$here/nginx/zcrm-sync-upstream.conf" || true)
	[ "$count" = 1 ] || fail "nginx/zcrm-sync-upstream.conf no longer has exactly one server line to point at the demo"
	sed "s|server unix:/run/zcrm-sync/webhook.sock;|server unix:$D/webhook.sock;|" \
		"$here/nginx/zcrm-sync-upstream.conf" >"$n/zcrm-sync-upstream.conf"
	cp "$here/nginx/zcrm-sync.conf" "$n/zcrm-sync.conf"
	info=$("$NGINX" -V 2>&1)
	temp=""
	for kind in client_body proxy fastcgi uwsgi scgi; do
		case $kind in client_body) ;; *)
			case $info in *"--without-http_${kind}_module"*) continue ;; esac ;;
		esac
		mkdir -p "$n/tmp_$kind"
		temp="$temp    ${kind}_temp_path $n/tmp_$kind;
"
	done
	user_line=""
	[ "$(id -u)" != 0 ] || user_line="user root;  # the webhook's socket is root's (the demo runs as root)"
	cat >"$n/nginx.conf" <<EOF
# Written by scripts/demo.sh.
$user_line
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log info;

events {
    worker_connections 256;
}

http {
    default_type application/octet-stream;
    access_log $n/access.log;
$temp    server_tokens off;

    # The project's upstream (nginx/zcrm-sync-upstream.conf), the demo's socket.
    include $n/zcrm-sync-upstream.conf;

    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name localhost;

        # The project's snippet (nginx/zcrm-sync.conf).
        include $n/zcrm-sync.conf;
    }
}
EOF
}

healthz_ok() {
	[ "$(http_code "$URL/healthz")" = 200 ]
}

start_nginx() {
	step "nginx on http://127.0.0.1:$NGINX_PORT with nginx/zcrm-sync.conf"
	write_nginx_conf
	set -- -p "$D/nginx/" -c "$D/nginx/nginx.conf"
	# -e: the startup error log too (nginx >= 1.19.5), not /var/log/nginx.
	if "$NGINX" -e "$D/nginx/error.log" -v >/dev/null 2>&1; then
		set -- "$@" -e "$D/nginx/error.log"
	fi
	"$NGINX" "$@" -t -q >"$D/nginx/nginx-t.log" 2>&1 ||
		fail "nginx -t refused the generated config ($D/nginx/nginx.conf)" "$D/nginx/nginx-t.log"
	"$NGINX" "$@" >"$D/nginx/stderr.log" 2>&1 || fail "nginx did not start" "$D/nginx/error.log"
	wait_for 15 test -s "$D/nginx/nginx.pid" || fail "nginx did not start" "$D/nginx/error.log"
	URL="http://127.0.0.1:$NGINX_PORT/zcrm"
	wait_for 15 healthz_ok ||
		fail "GET $URL/healthz does not answer 200" "$D/webhook.log"
	say "GET $URL/healthz -> $(curl -s --noproxy '*' "$URL/healthz")"
}

run_initial_sync() {
	step "initial_sync: enable the notification channel, then Bulk Read export $LEADS Leads"
	say "$ $BIN/batch/initial_sync --config $D/zcrm-sync.conf"
	t0=$(date +%s)
	if [ -t 2 ]; then
		# On a terminal: the progress line, and the log lines as they come.
		"$BIN/batch/initial_sync" --config "$D/zcrm-sync.conf" ||
			fail "initial_sync failed" "$D/webhook.log"
	else
		"$BIN/batch/initial_sync" --config "$D/zcrm-sync.conf" 2>"$D/initial_sync.log" || {
			tail_log "$D/initial_sync.log" 40
			fail "initial_sync failed"
		}
		say "(its log: $D/initial_sync.log)"
	fi
	say "took $(($(date +%s) - t0)) s"
}

psql_demo() {
	psql -X -q -v ON_ERROR_STOP=1 -P pager=off -d "$CONNINFO" "$@"
}

show_rows() {
	psql_demo -c "SELECT id, last_name, company, phone, lead_status,
	       to_char(modified_time AT TIME ZONE 'UTC', 'HH24:MI:SS') AS modified_utc,
	       deleted_at IS NOT NULL AS deleted, source
	  FROM zcrm.leads WHERE id IN ($IDS_SQL) ORDER BY id"
}

# True once the edits, deletes and the new Lead are all in zcrm.leads.
changes_arrived() {
	[ "$(psql -X -At -d "$CONNINFO" -c "SELECT count(*) = 6 FROM zcrm.leads WHERE
	        (id IN ($E1, $E2, $E3) AND phone LIKE '555-010_' AND source = 'fetch')
	     OR (id IN ($X1, $X2) AND deleted_at IS NOT NULL)
	     OR (id = $NEW AND deleted_at IS NULL)")" = t ]
}

live_edits() {
	step "Live changes in the simulator: 3 edits, 2 deletes, 1 new Lead"
	# shellcheck disable=SC2046 # five ids, one per word
	set -- $(psql_demo -At -c "SELECT id FROM zcrm.leads WHERE deleted_at IS NULL ORDER BY id LIMIT 5")
	[ $# -eq 5 ] || fail "expected Leads in zcrm.leads after initial_sync"
	E1=$1 E2=$2 E3=$3 X1=$4 X2=$5
	IDS_SQL="$E1, $E2, $E3, $X1, $X2"
	say "before (zcrm.leads after the initial export):"
	show_rows
	n=1
	for id in $E1 $E2 $E3; do
		curl_json -X PATCH "$SIM/_sim/records/Leads/$id" \
			-d "{\"values\":{\"Company\":\"Edited in Zoho #$n\",\"Phone\":\"555-010$n\",\"Lead_Status\":\"Contacted\"}}" \
			>/dev/null || fail "PATCH /_sim/records/Leads/$id failed" "$D/sim.log"
		say "PATCH  $SIM/_sim/records/Leads/$id"
		n=$((n + 1))
	done
	for id in $X1 $X2; do
		curl_json -X DELETE "$SIM/_sim/records/Leads/$id" >/dev/null ||
			fail "DELETE /_sim/records/Leads/$id failed" "$D/sim.log"
		say "DELETE $SIM/_sim/records/Leads/$id"
	done
	NEW=$(curl_json -X POST "$SIM/_sim/records/Leads" \
		-d '{"values":{"Last_Name":"Newcomer","Company":"Created during the demo","Phone":"555-0199"}}' |
		"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["id"])') ||
		fail "POST /_sim/records/Leads failed" "$D/sim.log"
	say "POST   $SIM/_sim/records/Leads  -> new id $NEW"
	IDS_SQL="$IDS_SQL, $NEW"

	say "waiting for Zoho's notifications to arrive through nginx and the webhook..."
	t0=$(date +%s)
	wait_for 60 changes_arrived ||
		fail "the changes did not reach zcrm.leads within 60 s" "$D/webhook.log"
	say "arrived after $(($(date +%s) - t0)) s. after:"
	show_rows
	say "the notifications as the webhook recorded them (zcrm.inbox):"
	psql_demo -c "SELECT id, operation, ids, to_char(received_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') AS received_utc,
	       processed_at IS NOT NULL AS applied, via FROM zcrm.inbox ORDER BY id"
}

run_status() {
	step "batch/status"
	"$BIN/batch/status" --config "$D/zcrm-sync.conf" -q ||
		warn "batch/status failed"
}

summary() {
	step "The demo is running"
	cat <<EOF
  config          $D/zcrm-sync.conf
  PostgreSQL      $CONNINFO   (log: $D/pg/postgres.log)
                  psql "$CONNINFO" -c 'SELECT * FROM zcrm.leads_live LIMIT 5'
  Zoho simulator  $SIM   (log: $D/sim.log; control API: tests/zoho_sim/README.md)
  nginx           http://127.0.0.1:$NGINX_PORT   (logs: $D/nginx/error.log, access.log)
  webhook         unix:$D/webhook.sock   (log: $D/webhook.log)
                  curl $URL/healthz
                  curl $URL/metrics

Try, then watch zcrm.leads follow:
  curl -X POST $SIM/_sim/mutate -d '{"module":"Leads","count":100}'
  $BIN/batch/status --config $D/zcrm-sync.conf
  $BIN/batch/incremental_sync --config $D/zcrm-sync.conf
  $BIN/batch/reconcile --config $D/zcrm-sync.conf

Stop it all:  make demo-stop        (KEEP=1 keeps .demo/ with its logs and data)
EOF
}

do_start() {
	trap 'fail "interrupted"' INT TERM
	if [ -d "$D" ]; then
		say "stopping the previous demo first"
		KEEP=0
		do_stop
	fi
	check_built
	mkdir -p "$D"
	# As root, PostgreSQL runs as an unprivileged user that must reach .demo/pg.
	chmod 755 "$D"
	cd "$here"
	start_postgres
	start_sim
	write_config
	migrate
	start_webhook
	start_nginx
	run_initial_sync
	live_edits
	run_status
	summary
}

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*)
	sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
