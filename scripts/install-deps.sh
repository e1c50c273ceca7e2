#!/bin/sh
# install-deps.sh — install the Debian/Ubuntu packages that building and
# testing zcrm-sync needs, and only those that are missing.
#
#   scripts/install-deps.sh        (also run by `make deps` and `make check`)
#
# Quiet and without side effects when everything is there. Otherwise runs
# `apt-get update` and `apt-get install --no-install-recommends` for the
# missing packages: as root, through sudo when not root, or else prints the
# command to run and exits 1. After installing it stops the nginx and
# PostgreSQL services that the packages' postinst scripts start, so that
# ports 80 and 5432 stay free: the tests start their own servers.
set -eu

export DEBIAN_FRONTEND=noninteractive

# Plain packages: the name is the same on Debian 12 and Ubuntu 22.04/24.04.
# (postgresql brings the server and psql, postgresql-client-N; prometheus
# brings promtool, which checks monitoring/: its server is stopped below;
# debhelper brings dpkg-dev: `make deb`.)
PACKAGES="build-essential pkg-config libfcgi-dev libcurl4-openssl-dev
libjson-c-dev libpq-dev zlib1g-dev libcmocka-dev postgresql
python3 python3-pytest python3-pytest-xdist python3-psycopg2 spawn-fcgi
wrk clang unzip zip curl ca-certificates procps time
prometheus groff-base debhelper"
# Any one of these provides /usr/sbin/nginx; nginx-light is preferred.
NGINX_FLAVOURS="nginx-light nginx nginx-core nginx-full nginx-extras"

say() { printf 'install-deps: %s\n' "$*" >&2; }

installed() {
	dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

# True if apt knows an installable version of the package.
has_candidate() {
	apt-cache policy "$1" 2>/dev/null |
		awk '/Candidate:/ { found = ($2 != "" && $2 != "(none)") } END { exit !found }'
}

# clang can build a libFuzzer target with ASan (its runtime is there).
fuzzer_works() {
	command -v clang >/dev/null 2>&1 || return 1
	tmp=$(mktemp -d) || return 1
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
		'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
		>"$tmp/f.c"
	ok=1
	clang -fsanitize=fuzzer,address -o "$tmp/f" "$tmp/f.c" >/dev/null 2>&1 || ok=0
	rm -rf "$tmp"
	[ "$ok" = 1 ]
}

# Major version of the clang that is (or would be) installed.
clang_major() {
	if command -v clang >/dev/null 2>&1; then
		clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n 1
	else
		apt-cache depends clang 2>/dev/null |
			sed -n 's/.*Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n 1
	fi
}

missing=""
for p in $PACKAGES; do
	installed "$p" || missing="$missing $p"
done

need_nginx=1
for p in $NGINX_FLAVOURS; do
	if installed "$p"; then need_nginx=0; break; fi
done

need_fuzzer=0
fuzzer_works || need_fuzzer=1

if [ -z "$missing" ] && [ "$need_nginx" = 0 ] && [ "$need_fuzzer" = 0 ]; then
	exit 0
fi

if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo env DEBIAN_FRONTEND=noninteractive"
else
	want="$missing"
	[ "$need_nginx" = 1 ] && want="$want nginx-light"
	[ "$need_fuzzer" = 1 ] && want="$want clang libclang-rt-N-dev"
	say "missing packages:$want"
	say "run as root: apt-get update && apt-get install -y --no-install-recommends$want"
	exit 1
fi

say "updating the package lists"
$SUDO apt-get update -qq

# Resolve the names that differ between releases now that the lists are fresh.
if [ "$need_nginx" = 1 ]; then
	if has_candidate nginx-light; then
		missing="$missing nginx-light"
	else
		missing="$missing nginx"
	fi
fi
if [ "$need_fuzzer" = 1 ]; then
	major=$(clang_major)
	if [ -n "$major" ] && has_candidate "libclang-rt-$major-dev"; then
		installed "libclang-rt-$major-dev" || missing="$missing libclang-rt-$major-dev"
	else
		# Older releases ship the runtime inside libclang-common-N-dev,
		# which clang already depends on.
		say "no libclang-rt-${major:-N}-dev package here; relying on clang's own runtime"
	fi
fi

missing=${missing# }
if [ -n "$missing" ]; then
	say "installing: $missing"
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing

	# The postinst scripts may have started the system's servers: the tests
	# run their own on free ports, and nothing should listen unasked.
	for svc in nginx postgresql prometheus; do
		$SUDO service "$svc" stop >/dev/null 2>&1 || true
	done
	# Only promtool is wanted of prometheus: its server stays off at boot.
	if command -v systemctl >/dev/null 2>&1; then
		$SUDO systemctl disable prometheus >/dev/null 2>&1 || true
	fi
fi

if ! fuzzer_works; then
	say "warning: clang cannot build libFuzzer targets (fuzz targets will not build)"
fi
exit 0
