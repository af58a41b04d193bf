#!/usr/bin/env bash
# Installs tern from BUILD_DIR into a temporary prefix, builds examples/custom_trainer against
# the installed package (find_package(tern)) and runs it.
set -euo pipefail
build=$1; src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$src/examples/custom_trainer" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/example" -j2 > "$work/build.log" || { cat "$work/build.log"; exit 1; }
OMP_NUM_THREADS=1 "$work/example/custom_trainer"
