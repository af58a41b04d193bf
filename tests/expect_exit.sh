#!/usr/bin/env bash
# expect_exit.sh CODE REGEX -- COMMAND...: runs COMMAND, passes if it exits with CODE and its
# stdout+stderr matches the extended regex REGEX.
set -u
code=$1; regex=$2; shift 3
out=$("$@" 2>&1); rc=$?
if [ "$rc" -ne "$code" ]; then
  echo "expected exit $code, got $rc; output:"; echo "$out"; exit 1
fi
if ! grep -Eq -- "$regex" <<<"$out"; then
  echo "output does not match /$regex/:"; echo "$out"; exit 1
fi
echo "ok: exit $rc, matched /$regex/"
