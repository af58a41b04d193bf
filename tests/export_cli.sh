#!/usr/bin/env bash
# export_cli.sh TERN_EXPORT TERN_EVAL DIR: exports DIR/gtc/checkpoint.h5 (a GTC run written by
# test_export's cli_fixture/write_runs) and evaluates it on DIR/data; passes if the model file
# has a power-of-two layer and tern-eval prints the run's final test accuracy
# (DIR/gtc/accuracy.txt) on all 90 test images.
set -u
export_app=$1; eval_app=$2; dir=$3
fail() { echo "FAIL: $*"; exit 1; }
out=$("$export_app" --checkpoint "$dir/gtc/checkpoint.h5" --out "$dir/gtc.h5" 2>&1) ||
  fail "tern-export exited $?: $out"
echo "$out"
grep -Eq -- "-bit 2\^e" <<<"$out" || fail "no power-of-two layer in the export"
out=$("$eval_app" --model "$dir/gtc.h5" --data-dir "$dir/data" 2>&1) || fail "tern-eval exited $?: $out"
echo "$out"
want=$(cat "$dir/gtc/accuracy.txt") || fail "no $dir/gtc/accuracy.txt"
grep -Fq "accuracy $want% on 90 " <<<"$out" || fail "tern-eval's accuracy is not tern-train's $want%"
grep -Eq "per image: [0-9]+ multiplications, [1-9][0-9]* shifts" <<<"$out" || fail "no shifts counted"
echo "ok: tern-eval reproduces $want%"
