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
# MODELS selects the parts (default "lenet5 vgg7", the block above; "resnet" = "resnet20
# resnet18"):
#   lenet5, vgg7  the throughput table above, between <!-- results:begin ... --> / end
#   resnet20      ResNet-20 (3x32x32) at batch $RESNET20_BATCH (128) in the four runs above,
#                 repeated $RESNET_REPEATS times in turn (target: tern + tunables >= 1.5x the
#                 better PyTorch), and peak resident memory at batches $RESNET20_MEM_BATCHES
#   resnet18      ResNet-18 (3x224x224) at batch $RESNET18_BATCH (32) in the four runs, and
#                 peak resident memory at batches $RESNET18_MEM_BATCHES
# The ResNet part goes into its own block, <!-- resnet-results:begin ... --> / end, so that
# each part can be rerun without losing the other. Peak memory = getrusage ru_maxrss of a
# process that builds the network and runs 1 + WARMUP_MEM + MEM_ITERS steps (one process per
# implementation, mode and batch).
#   MODELS=resnet bench/run_train_bench.sh build     # ~5-10 min on 2 idle cores (estimate)
#
# Timings are only meaningful on an otherwise idle machine; on the shared box run it as
#   flock /tmp/tern-build.lock bench/run_train_bench.sh build-bench
# Environment knobs (defaults): BATCH=100 THREADS=2 ITERS=20 WARMUP=3 VGG_WIDTHS="0.5 1"
# VGG_ITERS=10 VGG_FULL_ITERS=5 LENET_REPEATS=5 (LeNet-5's four runs are repeated in turn and
# each reports its median run: its numbers scatter most) PYTHON=/usr/bin/python3
# DOC=docs/bench-train.md; ResNet part: RESNET20_BATCH=128 RESNET_ITERS=20 RESNET_REPEATS=3
# RESNET18_BATCH=32 RESNET18_ITERS=5 RESNET18_REPEATS=1 RESNET20_MEM_BATCHES="32 128 256"
# RESNET18_MEM_BATCHES="32" MEM_ITERS=2 WARMUP_MEM=1
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
MODELS="${MODELS:-lenet5 vgg7}"
RESNET20_BATCH="${RESNET20_BATCH:-128}"
RESNET_ITERS="${RESNET_ITERS:-20}"
RESNET_REPEATS="${RESNET_REPEATS:-3}"
RESNET18_BATCH="${RESNET18_BATCH:-32}"
RESNET18_ITERS="${RESNET18_ITERS:-5}"
RESNET18_REPEATS="${RESNET18_REPEATS:-1}"
RESNET20_MEM_BATCHES="${RESNET20_MEM_BATCHES:-32 128 256}"
RESNET18_MEM_BATCHES="${RESNET18_MEM_BATCHES:-32}"
MEM_ITERS="${MEM_ITERS:-2}"
WARMUP_MEM="${WARMUP_MEM:-1}"
DOC="${DOC:-$ROOT/docs/bench-train.md}"
TUNABLES="glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
LOGS="$BUILD/bench-train-logs"
# The command as run, with the knobs set in the environment (so that it can be rerun as is).
knobs=""
for v in MODELS BATCH THREADS ITERS WARMUP VGG_WIDTHS VGG_ITERS VGG_FULL_ITERS LENET_REPEATS \
         RESNET20_BATCH RESNET_ITERS RESNET_REPEATS RESNET18_BATCH RESNET18_ITERS \
         RESNET18_REPEATS RESNET20_MEM_BATCHES RESNET18_MEM_BATCHES MEM_ITERS WARMUP_MEM PROFILE; do
    if printenv "$v" >/dev/null; then knobs+="$v=\"$(printenv "$v")\" "; fi
done
CMD="${TERN_BENCH_CMD:-$knobs$0 $*}"
parts=" "
for m in $MODELS; do
    case "$m" in
        resnet) parts+="resnet20 resnet18 " ;;
        lenet5|vgg7|resnet20|resnet18) parts+="$m " ;;
        *) echo "run_train_bench.sh: MODELS: unknown '$m' (lenet5 vgg7 resnet20 resnet18, or resnet)" >&2; exit 1 ;;
    esac
done
want() { [[ "$parts" = *" $1 "* ]]; }

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

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
ncpu=$(nproc)
avx512=$(grep -o 'avx512[a-z0-9_]*' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')
if [[ ${#BLAS_ENV[@]} -gt 0 ]]; then
    ISA_NOTE="this CPU has AVX-512: set"
else
    ISA_NOTE="this CPU has no AVX-512 (AVX2 kernels in oneDNN and OpenBLAS): not set"
fi
torchv=$("$PYTHON" -c "import torch; print(torch.__version__)" 2>/dev/null)
# the oneDNN version tern-bench-train printed in any of this run's logs
onednn_version() { cat "$LOGS"/tern-*.log 2>/dev/null | sed -n 's/.*oneDNN \([0-9.]*\).*/\1/p' | head -1; }

# write_block BEGIN END TEXT: TEXT between the marker lines BEGIN and END of $DOC, the rest of
# the file kept; a missing block is added (at the top for the first, at the end otherwise).
write_block() {
    local begin="$1" end="$2" text="$3"
    if [[ ! -f "$DOC" ]]; then
        { echo "# Training-step throughput: tern vs PyTorch"; echo; } >"$DOC"
    fi
    if ! grep -qF "$begin" "$DOC"; then
        if [[ "$begin" = '<!-- results:begin'* ]]; then
            { head -2 "$DOC"; echo "$begin"; echo "$end"; echo; tail -n +3 "$DOC"; } >"$DOC.new"
        else
            { cat "$DOC"; echo; echo "$begin"; echo "$end"; } >"$DOC.new"
        fi
        mv "$DOC.new" "$DOC"
    fi
    TEXT="$text" awk -v b="$begin" -v e="$end" '
        $0 == b { print; print ENVIRON["TEXT"]; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$DOC" >"$DOC.new"
    mv "$DOC.new" "$DOC"
    echo "run_train_bench.sh: wrote $DOC" >&2
}

if want lenet5 || want vgg7; then
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
want lenet5 && measure lenet5 1 "$ITERS" "$LENET_REPEATS"
if want vgg7; then
    for w in $VGG_WIDTHS; do
        if [[ "$w" = 1 || "$w" = 1.0 ]]; then
            measure vgg7 "$w" "$VGG_FULL_ITERS" 1 --no-breakdown
        else
            measure vgg7 "$w" "$VGG_ITERS" 1
        fi
    done
fi
# Compute bound of LeNet-5: its convolution + inner-product work per step at the attainable
# sgemm rate (measured now, same threads), against the best PyTorch step time above.
peak="" work=""
if want lenet5; then
    bound_log="$LOGS/bound-lenet5.log"
    "$TERN_BIN" --model lenet5 --batch "$BATCH" --threads "$THREADS" \
        --warmup 1 --iters 3 --no-breakdown --peak --verbose-primitives --profile-steps 5 --top 0 >"$bound_log" 2>&1 || true
    peak=$(sed -n 's/^PEAK gflops=\([0-9.]*\).*/\1/p' "$bound_log" | head -1)
    work=$(sed -n 's/^WORK gflop_per_step=\([0-9.]*\) ms_per_step=\([0-9.]*\).*/\1 \2/p' "$bound_log" | head -1)
fi
elapsed=$(( $(date +%s) - t0 ))
load1=$(cut -d' ' -f1-3 /proc/loadavg)
onednn=$(onednn_version)

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
write_block '<!-- results:begin (written by bench/run_train_bench.sh) -->' '<!-- results:end -->' "$results"
fi  # lenet5 / vgg7

# ---- ResNets: throughput (ResNet-20 at batch 128: the 1.5x target) and peak memory ----------
if want resnet20 || want resnet18; then
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
rrows=()   # model|image|batch|t|tt|ps|pt|tms|pms|tbd|pbd
mrows=()   # model|image|batch|t|tt|ps|pt  (each "peak start")
declare -A params=()

# rthroughput MODEL BATCH ITERS REPEATS EXTRA...: the four runs in turn, REPEATS times; medians.
rthroughput() {
    local model="$1" batch="$2" iters="$3" repeats="$4"; shift 4
    local tag="${model}-b${batch}"
    local common=(--model "$model" --batch "$batch" --threads "$THREADS" --warmup "$WARMUP"
                  --iters "$iters" "$@")
    local ta=() tta=() psa=() pta=() t tt ps pt k
    for ((k = 1; k <= repeats; ++k)); do
        ta+=("$(run "tern-$tag-$k" "$TERN_BIN" "${common[@]}")")
        tta+=("$(run "tern-tunables-$tag-$k" env GLIBC_TUNABLES="$TUNABLES" "$TERN_BIN" "${common[@]}")")
        psa+=("$(run "torch-stock-$tag-$k" "$PYTHON" "$ROOT/bench/torch_train.py" --mode stock "${common[@]}")")
        pta+=("$(run "torch-tuned-$tag-$k" env "${BLAS_ENV[@]}" GLIBC_TUNABLES="$TUNABLES" "$PYTHON" "$ROOT/bench/torch_train.py" --mode tuned "${common[@]}")")
    done
    t=$(median_result "${ta[@]}"); tt=$(median_result "${tta[@]}")
    ps=$(median_result "${psa[@]}"); pt=$(median_result "${pta[@]}")
    rrows+=("$model|$(value image "$tt")|$batch|$(value img_s "$t")|$(value img_s "$tt")|$(value img_s "$ps")|$(value img_s "$pt")|$(value median_ms "$tt")|$(value median_ms "$pt")|$(value fwd_ms "$tt")/$(value fwdbwd_ms "$tt")/$(value update_ms "$tt")|$(value fwd_ms "$pt")/$(value fwdbwd_ms "$pt")/$(value update_ms "$pt")")
    if [[ "${PROFILE:-0}" = 1 ]]; then
        local prof=(--model "$model" --batch "$batch" --threads "$THREADS"
                    --warmup 1 --iters 3 --no-breakdown --verbose-primitives --profile-steps 2 --top 40)
        run "profile-tern-$tag" env GLIBC_TUNABLES="$TUNABLES" "$TERN_BIN" "${prof[@]}" >/dev/null
        run "profile-torch-$tag" env "${BLAS_ENV[@]}" GLIBC_TUNABLES="$TUNABLES" "$PYTHON" "$ROOT/bench/torch_train.py" --mode tuned "${prof[@]}" >/dev/null
    fi
}

# rmemory MODEL BATCH: peak RSS of one short run per implementation and mode (own process each).
rmemory() {
    local model="$1" batch="$2"
    local tag="mem-${model}-b${batch}"
    local common=(--model "$model" --batch "$batch" --threads "$THREADS" --warmup "$WARMUP_MEM"
                  --iters "$MEM_ITERS" --no-breakdown)
    local t tt ps pt cells="" r
    t=$(run "tern-$tag" "$TERN_BIN" "${common[@]}")
    tt=$(run "tern-tunables-$tag" env GLIBC_TUNABLES="$TUNABLES" "$TERN_BIN" "${common[@]}")
    ps=$(run "torch-stock-$tag" "$PYTHON" "$ROOT/bench/torch_train.py" --mode stock "${common[@]}")
    pt=$(run "torch-tuned-$tag" env "${BLAS_ENV[@]}" GLIBC_TUNABLES="$TUNABLES" "$PYTHON" "$ROOT/bench/torch_train.py" --mode tuned "${common[@]}")
    for r in "$t" "$tt" "$ps" "$pt"; do cells+="|$(value peak_rss_mb "$r") $(value start_rss_mb "$r")"; done
    mrows+=("$model|$(value image "$t")|$batch$cells")
    params["$model"]="$(value params "$t") $(value params "$ps")"
}

if want resnet20; then
    rthroughput resnet20 "$RESNET20_BATCH" "$RESNET_ITERS" "$RESNET_REPEATS"
fi
if want resnet18; then
    rthroughput resnet18 "$RESNET18_BATCH" "$RESNET18_ITERS" "$RESNET18_REPEATS" --no-breakdown
fi
if want resnet20; then for b in $RESNET20_MEM_BATCHES; do rmemory resnet20 "$b"; done; fi
if want resnet18; then for b in $RESNET18_MEM_BATCHES; do rmemory resnet18 "$b"; done; fi
elapsed=$(( $(date +%s) - t0 ))
load1=$(cut -d' ' -f1-3 /proc/loadavg)
onednn=$(onednn_version)

rtable=$(
    echo "| model | input | batch | tern img/s | tern + tunables img/s | PyTorch stock img/s | PyTorch tuned img/s | tern / PyTorch-best | tern + tunables / PyTorch-best | target | tern + tunables ms/step | PyTorch-tuned ms/step | tern + tunables fwd / fwd+bwd / update ms | PyTorch-tuned fwd / fwd+bwd / update ms |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    for r in "${rrows[@]}"; do
        IFS='|' read -r model image batch t tt ps pt tms pms tbd pbd <<<"$r"
        awk -v m="$model" -v im="$image" -v b="$batch" -v t="$t" -v tt="$tt" -v ps="$ps" -v pt="$pt" \
            -v tms="$tms" -v pms="$pms" -v tbd="$tbd" -v pbd="$pbd" 'BEGIN {
            best = (ps + 0 > pt + 0) ? ps : pt
            r1 = (best + 0 > 0) ? t / best : 0
            r2 = (best + 0 > 0) ? tt / best : 0
            if (m == "resnet20") target = sprintf("1.5x (%s)", r2 >= 1.5 ? "met" : "missed")
            else target = "-"
            printf "| %s | 3x%sx%s | %s | %.1f | %.1f | %.1f | %.1f | %.2fx | **%.2fx** | %s | %.1f | %.1f | %s | %s |\n",
                   m, im, im, b, t, tt, ps, pt, r1, r2, target, tms, pms, tbd, pbd }'
    done
)
mtable=$(
    echo "| model | input | batch | tern MiB | tern + tunables MiB | PyTorch stock MiB | PyTorch tuned MiB | smaller PyTorch / tern + tunables | growth over start, tern + tunables / PyTorch tuned MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${mrows[@]}"; do
        IFS='|' read -r model image batch t tt ps pt <<<"$r"
        awk -v m="$model" -v im="$image" -v b="$batch" -v t="$t" -v tt="$tt" -v ps="$ps" -v pt="$pt" 'BEGIN {
            split(t, T, " "); split(tt, TT, " "); split(ps, PS, " "); split(pt, PT, " ")
            small = (PS[1] + 0 < PT[1] + 0) ? PS[1] : PT[1]
            printf "| %s | 3x%sx%s | %s | %.0f (%.0f) | %.0f (%.0f) | %.0f (%.0f) | %.0f (%.0f) | %.2fx | %.0f / %.0f |\n",
                   m, im, im, b, T[1], T[2], TT[1], TT[2], PS[1], PS[2], PT[1], PT[2],
                   (TT[1] + 0 > 0) ? small / TT[1] : 0, TT[1] - TT[2], PT[1] - PT[2] }'
    done
)
pnote=""
for m in resnet20 resnet18; do
    [[ -n "${params[$m]:-}" ]] || continue
    read -r tp pp <<<"${params[$m]}"
    pnote+=" $m tern $tp, PyTorch $pp;"
done

rresults=$(cat <<EOF
Measured $started on \`$cpu\` ($ncpu CPUs), $THREADS threads, oneDNN $onednn
(tern and PyTorch load the same Debian libdnnl.so.2), PyTorch $torchv (Debian python3-torch),
$elapsed s for the whole run; load average $load0 before, $load1 after. AVX-512
(\`grep -o 'avx512[a-z0-9_]*' /proc/cpuinfo | sort -u\`): ${avx512:-none}. Command:

\`\`\`
$CMD
\`\`\`

**Training step** (synthetic data, 10 classes; a step = forward + backward + SGD-momentum
update, weight decay on conv/FC weights; the same batch every step):

$rtable

**Peak resident memory** (\`getrusage(RUSAGE_SELF).ru_maxrss\`, MiB, of a process that builds
the network and runs 1 + $WARMUP_MEM + $MEM_ITERS training steps; in parentheses its resident
size before the network is built: the binary and its libraries, for PyTorch also the imported
\`torch\`):

$mtable

- *tern*: default environment; *tern + tunables*: \`GLIBC_TUNABLES=$TUNABLES\`;
  *PyTorch stock*: NCHW, default environment; *PyTorch tuned*: channels_last model and input,
  \`SGD(foreach=True)\`, under the same \`GLIBC_TUNABLES\`, plus \`OPENBLAS_CORETYPE=SkylakeX\`
  on AVX-512 CPUs ($ISA_NOTE).
- Ratios = tern (plain, and under the same tunables) / the better PyTorch mode (images/s); the
  1.5x target (ResNet-20, batch $RESNET20_BATCH) is judged on tern + tunables.
- Steps timed: $RESNET_ITERS (ResNet-20; the four runs repeated in turn $RESNET_REPEATS times,
  each column the median run), $RESNET18_ITERS (ResNet-18, $RESNET18_REPEATS repeat(s), no
  breakdown), after $WARMUP warm-up steps; medians. Parameters:$pnote
  raw logs: \`$LOGS\`.
EOF
)
echo
echo "$rresults"
write_block '<!-- resnet-results:begin (written by bench/run_train_bench.sh MODELS=resnet) -->' '<!-- resnet-results:end -->' "$rresults"
fi  # resnets
