#!/usr/bin/env bash
# The ablation study (tern-ablate's default grid, 3 seeds) on MNIST and Fashion-MNIST with
# LeNet-5, then its figures and tables (docs/ablate.md):
#   bench/report.sh BUILD OUT FIGDIR [extra tern-ablate flags, e.g. --jobs 2 --k-sweep 0.1,0.2,0.4]
# EPOCHS (default 20) and TRAIN_ARGS (default: the README's LeNet-5 schedule) set the training.
# Interrupt and rerun at will: complete runs are skipped, unfinished ones resumed.
# With FIGDIR = docs/report it also regenerates docs/report.md from docs/report.in.md (the
# figures' links there are relative to docs/).
set -euo pipefail
build=${1:?usage: bench/report.sh BUILD OUT FIGDIR [tern-ablate flags]}; out=${2:?OUT}; fig=${3:?FIGDIR}
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for ds in mnist fashion-mnist; do
  rc=0
  "$build/apps/tern-ablate" --out "$out/$ds" --dataset "$ds" --model lenet5 --data-dir "$root/data/$ds" \
    --epochs "${EPOCHS:-20}" \
    --train-args "${TRAIN_ARGS:---lr 0.05 --lr-steps 10,15 --weight-decay 5e-4 --dropout 0.3}" "$@" || rc=$?
  [ "$rc" -eq 130 ] && exit 130   # interrupted: rerun to resume
  [ "$rc" -ne 0 ] && status=$rc   # a run failed: plot the others, fail at the end
  /usr/bin/python3 "$root/bench/plot_report.py" "$out/$ds" "$fig/$ds" --title "$ds, LeNet-5"
done
if [ "$(cd "$fig" && pwd)" = "$root/docs/report" ]; then
  /usr/bin/python3 "$root/bench/render_report.py" "$root/docs/report.in.md" "$root/docs/report.md" "$fig" \
    --command "EPOCHS=${EPOCHS:-20} TRAIN_ARGS=\"${TRAIN_ARGS:-}\" bench/report.sh BUILD $out $fig $*" \
    --set "admm_rho=$(grep -o -- '--rho [^ ]*' <<<"${TRAIN_ARGS:-}" || echo 'default (1e-4, x1.1 per epoch)')" \
    ${NOTES:+--notes "$NOTES"}
fi
exit "$status"
