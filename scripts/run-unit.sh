#!/bin/sh
# run-unit.sh BUILD_TESTS_DIR — run every C unit test binary (test_*) in a
# directory against a throwaway PostgreSQL cluster.
#
#   scripts/run-unit.sh build/normal/tests      (what `make check-unit` runs)
#
# Each binary is a cmocka program and prints its own summary; the test cases
# of all of them are added up into one closing line
#   unit: N passed, N failed
# and the exit status is non-zero if any case failed or a binary crashed,
# timed out or exited non-zero without reporting a failed case.
#
# Tests that need the database read its libpq conninfo from
# $ZCRM_TEST_CONNINFO (a database `zcrm` on a cluster made by scripts/pg-temp,
# stopped and removed on exit). UNIT_TIMEOUT (seconds, default 300) bounds
# each binary.
set -u

[ $# -eq 1 ] || { echo "usage: $0 BUILD_TESTS_DIR" >&2; exit 2; }
testdir=$1
here=$(cd "$(dirname "$0")" && pwd)

export CMOCKA_MESSAGE_OUTPUT=stdout
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

tests=""
if [ -d "$testdir" ]; then
	for t in "$testdir"/test_*; do
		[ -f "$t" ] && [ -x "$t" ] && tests="$tests $t"
	done
fi
if [ -z "$tests" ]; then
	echo "run-unit: no test_* binaries in $testdir"
	echo "unit: 0 passed, 0 failed"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zcrm-unit.XXXXXX") || exit 1
cleanup() {
	"$here/pg-temp" stop "$tmp/pg" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pg-temp chowns the cluster directory to an unprivileged user when root:
# let it reach the directory inside our private temp dir.
chmod 755 "$tmp"
if ! ZCRM_TEST_CONNINFO=$("$here/pg-temp" start "$tmp/pg"); then
	echo "run-unit: could not start PostgreSQL" >&2
	[ -f "$tmp/pg/postgres.log" ] && tail -n 30 "$tmp/pg/postgres.log" >&2
	echo "unit: 0 passed, 1 failed"
	exit 1
fi
export ZCRM_TEST_CONNINFO

timeout_cmd=""
command -v timeout >/dev/null 2>&1 && timeout_cmd="timeout -k 10 ${UNIT_TIMEOUT:-300}"

passed=0
failed=0
bad=""
for t in $tests; do
	name=$(basename "$t")
	echo "== $name"
	out="$tmp/$name.out"
	# Stream the output and keep a copy to count the cases.
	# shellcheck disable=SC2086
	{ $timeout_cmd "$t" 2>&1; echo $? >"$tmp/$name.rc"; } | tee "$out"
	rc=$(cat "$tmp/$name.rc")
	p=$(sed -n 's/^\[  PASSED  \] \(.*: \)\{0,1\}\([0-9][0-9]*\) test(s).*/\2/p' "$out" |
		awk '{ s += $1 } END { print s + 0 }')
	f=$(sed -n 's/^\[  FAILED  \] \(.*: \)\{0,1\}\([0-9][0-9]*\) test(s).*/\2/p' "$out" |
		awk '{ s += $1 } END { print s + 0 }')
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		case $rc in
		124) why="timed out" ;;
		*) why="exit status $rc" ;;
		esac
		echo "run-unit: $name failed ($why) without reporting a failed case"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" = 0 ] || bad="$bad $name"
done

if [ -n "$bad" ]; then
	echo "run-unit: failing:$bad"
	echo "run-unit: last lines of the PostgreSQL log:"
	tail -n 20 "$tmp/pg/postgres.log"
fi
echo "unit: $passed passed, $failed failed"
[ "$failed" = 0 ]
