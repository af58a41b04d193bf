#!/usr/bin/env bash
# Accuracy experiments: runs tern-train for each (dataset, method, seed) and summarises the
# final-epoch test accuracy (mean and std over seeds) into a Markdown table.
#   bench/accuracy.sh BUILD_DIR OUT_DIR "mnist fashion-mnist" "fp twn admm ttq" "1 2 3" [extra tern-train flags]
# Environment:
#   JOBS=N           runs N trainings at once (default 1); give each --threads 1 when N = cores
#   INIT_FROM=DIR    fine-tune: each run starts from DIR/<dataset>-fp-s<seed> (a float run of
#                    the same seed, e.g. the output of this script with method fp)
#   METHOD_ARGS_<m>  extra flags for method m only, e.g. METHOD_ARGS_ttq="--ttq-threshold 0.2"
#   NICE=N           run the trainings under nice -n N (default 0)
# Runs already complete (summary.json with status completed) are skipped; interrupted ones
# resume from their checkpoint. A failed run is reported and the others go on.
set -euo pipefail
build=${1:?build dir}; out=${2:?output dir}; datasets=${3:?datasets}; methods=${4:?methods}; seeds=${5:?seeds}
shift 5
extra=("$@")
jobs=${JOBS:-1}
train="$build/apps/tern-train"
[ -x "$train" ] || { echo "accuracy.sh: $train not found (build first)" >&2; exit 2; }
mkdir -p "$out"

run_one() {  # dataset method seed
  local ds=$1 m=$2 s=$3
  local dir="$out/$ds-$m-s$s"
  local args=(--dataset "$ds" --method "$m" --seed "$s" --out "$dir")
  if [ -n "${INIT_FROM:-}" ] && [ "$m" != fp ]; then
    local init="$INIT_FROM/$ds-fp-s$s"
    [ -f "$init/checkpoint.h5" ] || { echo "FAILED $dir: no float checkpoint $init/checkpoint.h5"; return 0; }
    args+=(--init "$init")
  fi
  local var="METHOD_ARGS_${m//-/_}"
  local margs=()
  [ -n "${!var:-}" ] && read -r -a margs <<< "${!var}"
  [ -f "$dir/checkpoint.h5" ] && args+=(--resume)
  echo "run $dir"
  if ! nice -n "${NICE:-0}" "$train" "${args[@]}" "${extra[@]}" "${margs[@]}" > "$dir.log" 2>&1; then
    echo "FAILED $dir (see $dir.log)"
  fi
}

for ds in $datasets; do
  for m in $methods; do
    for s in $seeds; do
      dir="$out/$ds-$m-s$s"
      if [ -f "$dir/summary.json" ] && grep -q '"status": "completed"' "$dir/summary.json"; then
        echo "skip $dir (complete)"; continue
      fi
      while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
      run_one "$ds" "$m" "$s" &
    done
  done
done
wait
python3 "$(dirname "$0")/summarize.py" "$out"
