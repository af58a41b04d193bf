#!/usr/bin/env bash
# Accuracy experiments: runs tern-train for each (dataset, method, seed) and summarises the
# final-epoch test accuracy (mean and std over seeds) into a Markdown table.
#   bench/accuracy.sh BUILD_DIR OUT_DIR "mnist fashion-mnist" "fp twn admm ttq" "1 2 3" [extra tern-train flags]
# Runs already complete (summary.json with status completed) are skipped; interrupted ones
# resume from their checkpoint.
set -euo pipefail
build=${1:?build dir}; out=${2:?output dir}; datasets=${3:?datasets}; methods=${4:?methods}; seeds=${5:?seeds}
shift 5
extra=("$@")
export OPENBLAS_CORETYPE=SkylakeX
mkdir -p "$out"
for ds in $datasets; do
  for m in $methods; do
    for s in $seeds; do
      dir="$out/$ds-$m-s$s"
      if [ -f "$dir/summary.json" ] && grep -q '"status": "completed"' "$dir/summary.json"; then
        echo "skip $dir (complete)"; continue
      fi
      resume=(); [ -f "$dir/checkpoint.h5" ] && resume=(--resume)
      echo "run $dir"
      "$build/apps/tern-train" --dataset "$ds" --method "$m" --seed "$s" --out "$dir" \
        "${resume[@]}" "${extra[@]}" 2> "$dir.log" || echo "FAILED $dir (see $dir.log)"
    done
  done
done
python3 "$(dirname "$0")/summarize.py" "$out"
