#!/usr/bin/env bash
# Installs tern's build dependencies from Debian if any is missing (idempotent:
# runs `apt-get update` only when something must be installed).
#   bash setup.sh           build + test dependencies (gnuplot and python3 for the report's plots)
#   bash setup.sh --bench   also PyTorch (the benchmark peer)
set -euo pipefail
# ocl-icd-opencl-dev: oneDNN's CMake package config (dnnl-config.cmake) looks for OpenCL and
# fails without it; Debian only recommends it, and we install without recommends.
# libturbojpeg0-dev, libpng-dev: image folders (--dataset folder) decode JPEG and PNG with these
# maintained libraries (optional for the build: without them tern has no image-folder support).
pkgs=(build-essential cmake pkg-config libdnnl-dev ocl-icd-opencl-dev libeigen3-dev libopenblas-dev
      libboost-program-options-dev libboost-test-dev libhdf5-dev zlib1g-dev hdf5-tools
      nlohmann-json3-dev gnuplot-nox python3 python3-h5py libturbojpeg0-dev libpng-dev)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(python3-torch) ;;
    *) echo "setup.sh: unknown option '$arg' (known: --bench)" >&2; exit 1 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all dependencies present"
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup.sh: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
