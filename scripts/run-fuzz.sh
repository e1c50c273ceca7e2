#!/bin/sh
# run-fuzz.sh SECONDS BINARY... — run libFuzzer targets for a while each.
#
#   scripts/run-fuzz.sh 60 build/fuzz/fuzz_cfg build/fuzz/fuzz_csvhead
#   (what `make fuzz-smoke` runs; `make fuzz` gives 600 s)
#
# Each build/fuzz/fuzz_<x> runs for SECONDS on a scratch copy of its seed
# corpus tests/fuzz/corpus/<x>/ (new inputs never touch the checked-in
# corpus), with tests/fuzz/<x>.dict when there is one. A crash, a leak, a
# sanitizer report, a timeout (> 25 s on one input) or an RSS over 2 GiB
# fails the target; the input that did it is kept as
# build/fuzz/artifacts/<x>-crash-… and the command to reproduce it printed.
# After each target: its executions, coverage and corpus size; last line
#   fuzz: N passed, N failed
# Exit status non-zero if any target failed. FUZZ_KEEP=1 keeps the scratch
# corpora (build/fuzz/work/<x>/) to merge good finds back by hand:
#   build/fuzz/fuzz_<x> -merge=1 tests/fuzz/corpus/<x> build/fuzz/work/<x>
set -u

[ $# -ge 1 ] || { echo "usage: $0 SECONDS [BINARY...]" >&2; exit 2; }
seconds=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/build/fuzz"
mkdir -p "$out/artifacts" "$out/work"

# LeakSanitizer is on by default in libFuzzer; UBSan reports are fatal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0
failed=0
bad=""
for bin in "$@"; do
	name=$(basename "$bin")
	target=${name#fuzz_}
	seeds="$here/tests/fuzz/corpus/$target"
	work="$out/work/$target"
	log="$out/$name.log"
	echo "== $name (${seconds}s)"
	if [ ! -x "$bin" ]; then
		echo "run-fuzz: $bin is not built"
		failed=$((failed + 1))
		bad="$bad $name"
		continue
	fi
	rm -rf "$work"
	rm -f "$out/artifacts/$target-"*
	mkdir -p "$work"
	if [ -d "$seeds" ]; then
		cp -p "$seeds"/* "$work"/ 2>/dev/null
	else
		echo "run-fuzz: warning: no seed corpus $seeds"
	fi
	dict=""
	[ -f "$here/tests/fuzz/$target.dict" ] && dict="-dict=$here/tests/fuzz/$target.dict"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/artifacts/$target-" \
		$dict "$work" >"$log" 2>&1
	rc=$?
	# Summary: the last status line and the final stats.
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	echo "   execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} exit=$rc log=$log"
	if [ "$rc" = 0 ] && ! grep -q -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		bad="$bad $name"
		echo "--- $log (tail) ---"
		tail -n 40 "$log"
		for a in "$out/artifacts/$target-"*; do
			[ -f "$a" ] && echo "run-fuzz: reproduce with: $bin $a"
		done
	fi
	[ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$work"
done

[ -n "$bad" ] && echo "run-fuzz: failing:$bad"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
