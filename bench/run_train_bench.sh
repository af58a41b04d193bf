#!/usr/bin/env bash
# Training-step throughput of tern vs PyTorch (CPU), all in one run. Builds nothing.
#
#   bench/run_train_bench.sh [BUILD_DIR]        (default: build-bench)
#
# Runs, for LeNet-5 (1x28x28) and VGG-7 (3x32x32, widths $VGG_WIDTHS), batch $BATCH, $THREADS
# threads:
#   tern            build/bench/tern-bench-train
#   tern+tunables   the same under $TUNABLES (for a like-for-like comparison)
#   torch stock     bench/torch_train.py --mode stock (NCHW), default environment
#   torch tuned     bench/torch_train.py --mode tuned (channels_last, foreach SGD) under
#                   $TUNABLES, and OPENBLAS_CORETYPE=SkylakeX where the CPU has AVX-512
#                   (Debian's OpenBLAS 0.3.21 picks its Haswell kernels there otherwise;
#                   on a CPU without AVX-512 that setting makes it die of SIGILL). tern
#                   itself does not call OpenBLAS (oneDNN does its GEMMs).
# prints a table (images/s; ratio = tern+tunables / best PyTorch) and writes it, with the
# command, date, CPU, thread count and oneDNN version, between the results markers of
# docs/bench-train.md (the rest of that file, the analysis, is kept). Raw logs go to
# BUILD_DIR/bench-train-logs/. PROFILE=1 also runs one oneDNN-verbose profile per
# implementation (not timed, logs only).
#
# Timings are only meaningful on an otherwise idle machine; on the shared box run it as
#   flock /tmp/tern-build.lock bench/run_train_bench.sh build-bench
# Environment knobs (defaults): BATCH=100 THREADS=2 ITERS=20 WARMUP=3 VGG_WIDTHS="0.5 1"
# VGG_ITERS=10 VGG_FULL_ITERS=5 LENET_REPEATS=5 (LeNet-5's four runs are repeated in turn and
# each reports its median run: its numbers scatter most) PYTHON=/usr/bin/python3
# DOC=docs/bench-train.md
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build-bench}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
TERN_BIN="$BUILD/bench/tern-bench-train"
BLAS_ENV=()
grep -qw avx512f /proc/cpuinfo && BLAS_ENV=(OPENBLAS_CORETYPE=SkylakeX)
PYTHON="${PYTHON:-/usr/bin/python3}"
BATCH="${BATCH:-100}"
THREADS="${THREADS:-2}"
ITERS="${ITERS:-20}"
WARMUP="${WARMUP:-3}"
VGG_WIDTHS="${VGG_WIDTHS:-0.5 1}"
VGG_ITERS="${VGG_ITERS:-10}"
VGG_FULL_ITERS="${VGG_FULL_ITERS:-5}"
LENET_REPEATS="${LENET_REPEATS:-5}"
DOC="${DOC:-$ROOT/docs/bench-train.md}"
TUNABLES="glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
LOGS="$BUILD/bench-train-logs"
CMD="${TERN_BENCH_CMD:-$0 $*}"

[[ -x "$TERN_BIN" ]] || { echo "run_train_bench.sh: $TERN_BIN not built (cmake --build $BUILD --target tern-bench-train)" >&2; exit 1; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "run_train_bench.sh: $PYTHON has no torch (apt-get install -y python3-torch)" >&2; exit 1; }
mkdir -p "$LOGS"

# value KEY LINE: the value of KEY=... in a RESULT line.
value() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run NAME CMD...: runs CMD, keeps its log, prints its RESULT line (last one).
run() {
    local name="$1"; shift
    echo ">> $name: $*" >&2
    "$@" >"$LOGS/$name.log" 2>&1 || { echo "run_train_bench.sh: $name failed, see $LOGS/$name.log" >&2; tail -5 "$LOGS/$name.log" >&2; echo "RESULT img_s=nan median_ms=nan fwd_ms=nan fwdbwd_ms=nan update_ms=nan"; return; }
    grep '^RESULT' "$LOGS/$name.log" | tail -1
}

# median RESULT line of several: the one whose img_s is the median (odd count: the middle one)
median_result() {
    local lines=("$@")
    printf '%s\n' "${lines[@]}" | awk '{ for (i = 1; i <= NF; ++i) if ($i ~ /^img_s=/) { split($i, kv, "="); print kv[2] "\t" $0 } }' \
        | sort -g | awk -v n="${#lines[@]}" 'NR == int((n + 1) / 2) { sub(/^[^\t]*\t/, ""); print }'
}

rows=()
measure() {  # measure MODEL WIDTH ITERS REPEATS EXTRA_ARGS...
    local model="$1" width="$2" iters="$3" repeats="$4"; shift 4
    local tag="${model}-w${width}"
    local common=(--model "$model" --width "$width" --batch "$BATCH" --threads "$THREADS"
                  --warmup "$WARMUP" --iters "$iters" "$@")
    local t tt ps pt
    local ta=() tta=() psa=() pta=()
    # the four runs in turn, `repeats` times: a burst of load hits all of them alike
    for ((k = 1; k <= repeats; ++k)); do
        ta+=("$(run "tern-$tag-$k" "$TERN_BIN" "${common[@]}")")
        tta+=("$(run "tern-tunables-$tag-$k" env GLIBC_TUNABLES="$TUNABLES" "$TERN_BIN" "${common[@]}")")
        psa+=("$(run "torch-stock-$tag-$k" "$PYTHON" "$ROOT/bench/torch_train.py" --mode stock "${common[@]}")")
        pta+=("$(run "torch-tuned-$tag-$k" env "${BLAS_ENV[@]}" GLIBC_TUNABLES="$TUNABLES" "$PYTHON" "$ROOT/bench/torch_train.py" --mode tuned "${common[@]}")")
    done
    t=$(median_result "${ta[@]}"); tt=$(median_result "${tta[@]}")
    ps=$(median_result "${psa[@]}"); pt=$(median_result "${pta[@]}")
    rows+=("$model|$width|$(value img_s "$t")|$(value img_s "$tt")|$(value img_s "$ps")|$(value img_s "$pt")|$(value median_ms "$tt")|$(value median_ms "$pt")|$(value fwd_ms "$tt")/$(value fwdbwd_ms "$tt")/$(value update_ms "$tt")|$(value fwd_ms "$pt")/$(value fwdbwd_ms "$pt")/$(value update_ms "$pt")")
    if [[ "${PROFILE:-0}" = 1 ]]; then
        local prof=(--model "$model" --width "$width" --batch "$BATCH" --threads "$THREADS"
                    --warmup 1 --iters 3 --no-breakdown --verbose-primitives --profile-steps 2 --top 40)
        run "profile-tern-$tag" env GLIBC_TUNABLES="$TUNABLES" "$TERN_BIN" "${prof[@]}" >/dev/null
        run "profile-torch-$tag" env "${BLAS_ENV[@]}" GLIBC_TUNABLES="$TUNABLES" "$PYTHON" "$ROOT/bench/torch_train.py" --mode tuned "${prof[@]}" >/dev/null
    fi
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
measure lenet5 1 "$ITERS" "$LENET_REPEATS"
for w in $VGG_WIDTHS; do
    if [[ "$w" = 1 || "$w" = 1.0 ]]; then
        measure vgg7 "$w" "$VGG_FULL_ITERS" 1 --no-breakdown
    else
        measure vgg7 "$w" "$VGG_ITERS" 1
    fi
done
# Compute bound of LeNet-5: its convolution + inner-product work per step at the attainable
# sgemm rate (measured now, same threads), against the best PyTorch step time above.
bound_log="$LOGS/bound-lenet5.log"
"$TERN_BIN" --model lenet5 --batch "$BATCH" --threads "$THREADS" \
    --warmup 1 --iters 3 --no-breakdown --peak --verbose-primitives --profile-steps 5 --top 0 >"$bound_log" 2>&1 || true
peak=$(sed -n 's/^PEAK gflops=\([0-9.]*\).*/\1/p' "$bound_log" | head -1)
work=$(sed -n 's/^WORK gflop_per_step=\([0-9.]*\) ms_per_step=\([0-9.]*\).*/\1 \2/p' "$bound_log" | head -1)
elapsed=$(( $(date +%s) - t0 ))
load1=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
ncpu=$(nproc)
if [[ ${#BLAS_ENV[@]} -gt 0 ]]; then
    ISA_NOTE="this CPU has AVX-512: set"
else
    ISA_NOTE="this CPU has no AVX-512 (AVX2 kernels in oneDNN and OpenBLAS): not set"
fi
onednn=$(sed -n 's/.*oneDNN \([0-9.]*\).*/\1/p' "$LOGS/tern-lenet5-w1-1.log" | head -1)
torchv=$("$PYTHON" -c "import torch; print(torch.__version__)" 2>/dev/null)

table=$(
    echo "| model | width | tern img/s | tern + tunables img/s | PyTorch stock img/s | PyTorch tuned img/s | tern / PyTorch-best | tern + tunables / PyTorch-best | target | tern ms/step | PyTorch-tuned ms/step | tern fwd / fwd+bwd / update ms | PyTorch-tuned fwd / fwd+bwd / update ms |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    for r in "${rows[@]}"; do
        IFS='|' read -r model width t tt ps pt tms pms tbd pbd <<<"$r"
        awk -v m="$model" -v w="$width" -v t="$t" -v tt="$tt" -v ps="$ps" -v pt="$pt" \
            -v tms="$tms" -v pms="$pms" -v tbd="$tbd" -v pbd="$pbd" 'BEGIN {
            best = (ps + 0 > pt + 0) ? ps : pt
            target = (m == "lenet5") ? 2.0 : 1.3
            r1 = (best + 0 > 0) ? t / best : 0
            r2 = (best + 0 > 0) ? tt / best : 0
            verdict = (r2 >= target) ? "met" : "missed"
            printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.2fx | **%.2fx** | %.1fx (%s) | %.1f | %.1f | %s | %s |\n",
                   m, w, t, tt, ps, pt, r1, r2, target, verdict, tms, pms, tbd, pbd }'
    done
)

bound=""
if [[ -n "$peak" && -n "$work" ]]; then
    bound=$(awk -v peak="$peak" -v work="$work" 'BEGIN {
        split(work, w, " ")
        printf "- **LeNet-5 work in oneDNN.** The convolutions and inner products that run in oneDNN do %.3f GFLOP per step in %.2f ms/step (%.0f GFLOP/s); a 2048^3 sgemm on the same threads reaches %.0f GFLOP/s. Layers that run tern'"'"'s own code are not in this count: max pooling, and on CPUs without AVX-512 the Winograd convolution of conv2 (F(4x4, 5x5): 6.25x fewer multiplications than the direct 0.655 GFLOP per pass, so no direct-FLOP bound applies to it).",
               w[1], w[2], 1000 * w[1] / w[2], peak }')
fi

results=$(cat <<EOF
Measured $started on \`$cpu\` ($ncpu CPUs), $THREADS threads, batch $BATCH, oneDNN $onednn
(tern and PyTorch load the same Debian libdnnl.so.2), PyTorch $torchv (Debian python3-torch),
$elapsed s for the whole run; load average $load0 before, $load1 after (other jobs on the
box inflate and scatter every number; compare ratios, not absolute times). Command:

\`\`\`
$CMD
\`\`\`

$table

- *tern*: default environment; *tern + tunables*:
  \`GLIBC_TUNABLES=$TUNABLES\`; *PyTorch stock*: NCHW, default environment;
  *PyTorch tuned*: channels_last model and input, \`SGD(foreach=True)\`, under the same
  \`GLIBC_TUNABLES\`, plus \`OPENBLAS_CORETYPE=SkylakeX\` on AVX-512 CPUs ($ISA_NOTE).
- Ratios = tern (plain, and under the same tunables) / the better PyTorch mode (images/s); the
  target is judged on the like-for-like one (tern + tunables). A step = forward + backward +
  SGD-momentum update (weight decay on conv/FC weights), the same synthetic batch every step.
- Steps timed: $ITERS (LeNet-5), $VGG_ITERS (VGG-7 width < 1), $VGG_FULL_ITERS (VGG-7 full width,
  no breakdown) after $WARMUP warm-up steps; medians. LeNet-5: the four runs repeated in turn
  $LENET_REPEATS times, each column the median run. Raw logs: \`$LOGS\`.
$bound
EOF
)

echo
echo "$results"

# Write the results between the markers of $DOC, keeping the rest of the file.
begin='<!-- results:begin (written by bench/run_train_bench.sh) -->'
end='<!-- results:end -->'
if [[ ! -f "$DOC" ]] || ! grep -qF "$begin" "$DOC"; then
    { echo "# Training-step throughput: tern vs PyTorch"; echo; echo "$begin"; echo "$end"; } >"$DOC.new"
    [[ -f "$DOC" ]] && { echo; cat "$DOC"; } >>"$DOC.new"
    mv "$DOC.new" "$DOC"
fi
RESULTS="$results" awk -v b="$begin" -v e="$end" '
    $0 == b { print; print ENVIRON["RESULTS"]; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$DOC" >"$DOC.new"
mv "$DOC.new" "$DOC"
echo "run_train_bench.sh: wrote $DOC" >&2
