#!/usr/bin/env bash
# Runs saved fuzz inputs through their targets again, one process each, and says per input
# whether it still fails and how: to check a fix against what fuzz/run.sh found.
#
#   fuzz/replay.sh BUILD_DIR DIR...
#
# Each DIR is a folder named after its target (BUILD_DIR/fuzz-run/artifacts/fuzz_lsq,
# /tmp/fuzz-findings/fuzz_checkpoint, ...) whose files are inputs; or a folder of such folders.
# Prints one line per input: "ok" (a clean rejection or a clean load), or the kind (crash,
# leak, hang, oom, ubsan) and where (the report's first line and the first tern frame, else
# the first library function). Exits 1 if any input still fails. FUZZ_TIMEOUT (default 30 s)
# is the time one input may take.
set -uo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: fuzz/replay.sh BUILD_DIR DIR..." >&2
    exit 2
fi
bin="$(cd "$1" && pwd)/fuzz" || exit 2
shift
limit=${FUZZ_TIMEOUT:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp" OMP_NUM_THREADS=1
# Full stacks through libhdf5 (built without frame pointers), so a leak names its function.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"

dirs=()
for d in "$@"; do
    if [[ -x "$bin/$(basename "$d")" ]]; then
        dirs+=("$d")
    else
        for sub in "$d"/fuzz_*/; do [[ -d "$sub" ]] && dirs+=("${sub%/}"); done
    fi
done
failed=0 total=0
for d in "${dirs[@]}"; do
    t=$(basename "$d")
    exe="$bin/$t"
    [[ -x "$exe" ]] || { echo "fuzz/replay.sh: no target $t in $bin" >&2; exit 2; }
    for f in "$d"/*; do
        [[ -f "$f" ]] || continue
        total=$((total + 1))
        log="$tmp/log"
        timeout -k 5 $((limit + 10)) "$exe" -timeout="$limit" -rss_limit_mb=2048 "$f" > "$log" 2>&1
        rc=$?
        if [[ $rc -eq 0 ]]; then
            printf '%-16s %-52s ok\n' "$t" "$(basename "$f")"
            continue
        fi
        failed=$((failed + 1))
        first=$(grep -m 1 -E 'ERROR:|runtime error:' "$log" | sed -E 's/^==[0-9]+== ?//; s/ \(pc .*//; s/ \(thread .*//')
        case "$first" in
            *"libFuzzer: timeout"*) kind=hang ;;
            *"out-of-memory"*|*"out of memory"*|*"exceeds maximum supported size"*) kind=oom ;;
            *LeakSanitizer*) kind=leak ;;
            *"runtime error:"*) kind=ubsan ;;
            "") kind="exit $rc"; [[ $rc -eq 124 || $rc -eq 137 ]] && kind=hang ;;
            *) kind=crash ;;
        esac
        # where: the first frame in tern's code, and the libhdf5 entry point (the outermost
        # H5 frame) when the report is inside libhdf5
        # (the report's first stack only: not "allocated by" or "freed by")
        stack=$(awk '/ERROR:|runtime error:/ { on = 1 }
                     on && /^ +#[0-9]+ / { print; seen = 1; next }
                     on && seen { exit }' "$log" | sed -nE 's/^ +#[0-9]+ 0x[0-9a-f]+ in //p')
        where=$(grep -m 1 -E '^[^(]*tern::' <<< "$stack" | sed -E 's/\(std::__cxx11::basic_string[^)]*\)/(...)/g')
        lib=$(grep -E '^H5[A-Za-z_:]+' <<< "$stack" | sed -n '/^H5/{s/[ (].*//;p}' | tail -n 1)
        printf '%-16s %-52s %-6s %s | %s%s\n' "$t" "$(basename "$f")" "$kind" "${first:0:110}" \
            "${lib:+libhdf5 $lib <- }" "${where:0:140}"
    done
done
echo "fuzz/replay.sh: $failed of $total inputs still fail"
[[ $failed -eq 0 ]]
