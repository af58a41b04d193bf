#!/usr/bin/env bash
# Runs every libFuzzer target of a TERN_FUZZ build for a bounded time and reports, per target,
# the executions, crashes (sanitizer reports, deadly signals, uncaught exceptions), leaks, hangs
# (inputs over -timeout) and out-of-memory inputs (allocations over -rss_limit_mb, or beyond
# what the allocator can give). Exits 1 if any target had a
# finding, 2 on a usage or setup error. docs/reliability.md describes the targets.
#
#   fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET
#
# BUILD_DIR is a build configured with -DTERN_FUZZ=ON (fuzz/CMakeLists.txt). Work goes to
# BUILD_DIR/fuzz-run: seeds/ (written by tern-fuzz-seeds on the first run), corpus/<target>/
# (kept between runs, so later runs start where earlier ones stopped), artifacts/<target>/
# (crash-*, leak-*, timeout-*, oom-*: the inputs that found something; reproduce one with
# BUILD_DIR/fuzz/<target> FILE), logs/<target>.log.
# Environment: FUZZ_TARGETS="fuzz_idx fuzz_lsq" runs only those; FUZZ_RSS_MB (default 2048),
# FUZZ_TIMEOUT (seconds per input, default 10), FUZZ_FINDINGS=DIR also copies every artifact
# into DIR/<target>/, FUZZ_EXTRA_SEEDS=DIR adds DIR/<target>/ to the seeds (files of an older
# format, such as checkpoints written before the integrity header, with variable-length
# strings, which today's writer no longer produces).
set -uo pipefail

if [[ $# -ne 2 || ! "$2" =~ ^[0-9]+$ || "$2" -lt 1 ]]; then
    echo "usage: fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET" >&2
    exit 2
fi
build=$(cd "$1" 2>/dev/null && pwd) || { echo "fuzz/run.sh: no build directory '$1'" >&2; exit 2; }
seconds=$2
bin="$build/fuzz"
rss=${FUZZ_RSS_MB:-2048}
per_input=${FUZZ_TIMEOUT:-10}
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<< "$FUZZ_TARGETS"
else
    targets=()
    for t in "$bin"/fuzz_*; do [[ -x "$t" && -f "$t" ]] && targets+=("$(basename "$t")"); done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz/run.sh: no fuzz targets in $bin (configure with -DTERN_FUZZ=ON and build the" \
         "target tern-fuzz)" >&2
    exit 2
fi

work="$build/fuzz-run"
mkdir -p "$work/logs"
if [[ ! -d "$work/seeds" ]]; then
    if ! "$bin/tern-fuzz-seeds" "$work/seeds.new" > "$work/logs/seeds.log" 2>&1; then
        echo "fuzz/run.sh: tern-fuzz-seeds failed:" >&2
        cat "$work/logs/seeds.log" >&2
        exit 2
    fi
    mv "$work/seeds.new" "$work/seeds"
fi

# The readers take paths: each process writes its input under $TMPDIR (fuzz/fuzz_util.hpp).
export TMPDIR="$work/tmp"
export OMP_NUM_THREADS=1
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"
# A failed malloc returns NULL as it does outside ASan (libhdf5 checks it); a failed operator new
# in tern's code is still reported (out of memory: tern allocated what a file claimed).
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"

printf '%-16s %7s %11s %7s %5s %5s %5s  %s\n' target seconds executions crashes leaks hangs ooms artifacts
findings=0
for t in "${targets[@]}"; do
    exe="$bin/$t"
    if [[ ! -x "$exe" ]]; then
        echo "fuzz/run.sh: $exe missing" >&2
        exit 2
    fi
    corpus="$work/corpus/$t"
    art="$work/artifacts/$t"
    log="$work/logs/$t.log"
    mkdir -p "$corpus" "$art" "$TMPDIR"
    seeds=()
    [[ -d "$work/seeds/$t" ]] && seeds=("$work/seeds/$t")
    [[ -n "${FUZZ_EXTRA_SEEDS:-}" && -d "$FUZZ_EXTRA_SEEDS/$t" ]] && seeds+=("$FUZZ_EXTRA_SEEDS/$t")
    start=$(date +%s)
    # -fork=1 with -ignore_*: a finding does not end the run; each one is counted and its
    # input saved, and the fuzzing goes on for the whole time. The outer timeout catches a
    # fuzzer that does not stop on its own.
    timeout -k 10 $((seconds + 60 + per_input)) "$exe" -fork=1 -ignore_crashes=1 \
        -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" -timeout="$per_input" \
        -rss_limit_mb="$rss" -artifact_prefix="$art/" -print_final_stats=1 \
        "$corpus" "${seeds[@]}" > "$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    rm -rf "${TMPDIR:?}"/*
    # fork mode prints after every job "#RUNS: cov: .. oom/timeout/crash: O/T/C ..", and for
    # every failed job the report lines of its log that contain "ERROR:" or "runtime error:".
    # Executions: the last such line (the last job's own runs are not in it). Findings: the
    # report lines, by kind (the counters above miss the last job and count leaks as crashes).
    last=$(grep -E '^#[0-9]+: cov: .*oom/timeout/crash:' "$log" | tail -n 1)
    execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<< "$last")
    execs=${execs:-0}
    reports=$(grep -E '^==[0-9]+== ?ERROR:|runtime error:' "$log")
    count() { grep -cE "$1" <<< "$reports"; }
    hangs=$(count 'libFuzzer: timeout')
    ooms=$(count 'libFuzzer: out-of-memory|out of memory|exceeds maximum supported size')
    leaks=$(count 'LeakSanitizer')
    crashes=$(( $(grep -c . <<< "$reports") - hangs - ooms - leaks ))
    # A fuzzer that did not finish on its own (killed by the outer timeout, died) is a finding.
    if ! grep -q '^INFO: exiting:' "$log"; then
        echo "fuzz/run.sh: $t did not finish (status $rc; log: $log)" >&2
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then hangs=$((hangs + 1)); else crashes=$((crashes + 1)); fi
    fi
    nart=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
           -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
    printf '%-16s %7s %11s %7s %5s %5s %5s  %s\n' "$t" "$took" "$execs" "$crashes" "$leaks" \
        "$hangs" "$ooms" "$nart in $art"
    if [[ -n "${FUZZ_FINDINGS:-}" && $nart -gt 0 ]]; then
        mkdir -p "$FUZZ_FINDINGS/$t"
        cp "$art"/* "$FUZZ_FINDINGS/$t/" 2>/dev/null
    fi
    if (( crashes + leaks + hangs + ooms > 0 )); then
        findings=$((findings + 1))
        # The most frequent reports, to read without opening the log.
        sed -E 's/^==[0-9]+== ?//; s/0x[0-9a-f]+/0x../g; s/ \(pc .*//; s/[0-9]+ seconds/N seconds/' \
            <<< "$reports" | sort | uniq -c | sort -rn | head -n 5 | cut -c1-150
    fi
done
if [[ $findings -gt 0 ]]; then
    echo "fuzz/run.sh: findings in $findings of ${#targets[@]} targets (artifacts under $work/artifacts)"
    exit 1
fi
echo "fuzz/run.sh: no findings in ${#targets[@]} targets"
