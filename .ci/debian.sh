#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for HeadScope and build it.
#   bash .ci/debian.sh demo   install, build, run the main job on the shipped model
#   bash .ci/debian.sh test   install, build everything, run the whole test suite (what CI runs)
set -euo pipefail
mode=${1:-test}
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# libopenblas0-openmp: LibTorch otherwise calls the reference BLAS, 25-45x slower (docs/performance.md).
packages=(build-essential cmake ninja-build pkg-config git
  libtorch-dev catch2 nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libutf8proc-dev
  libsentencepiece-dev libopenblas0-openmp)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc)
case "$mode" in
  demo)
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEADSCOPE_TESTS=OFF -DHEADSCOPE_BENCH=OFF
    cmake --build build --target headscope -j "$jobs"
    model=resources/model
    [ -f "$model/config.json" ] || model=tests/fixtures/parity/llama3_bpe/model
    ./build/app/headscope info --model "$model"
    prompt=$'There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there.\n The pass key is 58217. Remember it. Look! A ladder! Maybe it leads to heaven, or a sandwich! The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\nWhat is the pass key? The pass key is'
    printf '%s' "$prompt"
    ./build/app/headscope generate --model "$model" --greedy --max-new-tokens 8 --text "$prompt"
    ;;
  test)
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
    cmake --build build -j "$jobs"
    ctest --test-dir build --output-on-failure -j "$jobs"
    ;;
  *)
    echo "usage: bash .ci/debian.sh demo|test" >&2
    exit 2
    ;;
esac
