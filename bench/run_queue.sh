#!/usr/bin/env bash
# Runs a queue of tern-train jobs, JOBS at a time, in the order given:
#   bench/run_queue.sh BUILD_DIR QUEUE_FILE
# Each line of QUEUE_FILE is "OUT_DIR tern-train flags..." (blank lines and # comments skipped).
# A run whose summary.json says completed is skipped; one with a checkpoint resumes. The log is
# OUT_DIR.log. Environment: JOBS (default 2), NICE (default 0).
set -euo pipefail
build=${1:?build dir}; queue=${2:?queue file}
train="$build/apps/tern-train"
[ -x "$train" ] || { echo "run_queue.sh: $train not found (build first)" >&2; exit 2; }
[ -f "$queue" ] || { echo "run_queue.sh: no queue file $queue" >&2; exit 2; }
jobs=${JOBS:-2}
run_one() {
  local dir=$1; shift
  if [ -f "$dir/summary.json" ] && grep -q '"status": "completed"' "$dir/summary.json"; then
    echo "skip $dir (complete)"; return 0
  fi
  local args=("$@" --out "$dir")
  [ -f "$dir/checkpoint.h5" ] && args+=(--resume)
  mkdir -p "$(dirname "$dir")"
  echo "$(date +%T) run $dir"
  if nice -n "${NICE:-0}" "$train" "${args[@]}" > "$dir.log" 2>&1; then
    echo "$(date +%T) done $dir: $(grep -h 'final test accuracy' "$dir.log" | tail -1)"
  else
    echo "$(date +%T) FAILED $dir (see $dir.log)"
  fi
}
while read -r line; do
  [[ -z "${line// }" || "$line" == \#* ]] && continue
  read -r -a words <<< "$line"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "${words[@]}" &
done < "$queue"
wait
