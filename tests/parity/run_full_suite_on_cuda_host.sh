#!/usr/bin/env bash
# Builds every target on the CUDA host (PyTorch's LibTorch with CUDA, Catch2 v3, Debian -dev packages
# carried in .debs/), runs the whole CTest suite there, then the CLI on the GPU against the parity
# fixtures.   usage: tests/parity/run_full_suite_on_cuda_host.sh LOG_DIR
set -u
out=${1:?log dir}
mkdir -p "$out"
# shellcheck disable=SC1091
source .debs/env.sh .debs >"$out/env.log" 2>&1
t0=$SECONDS
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" >"$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
cmake --build build-cuda -j16 >"$out/build.log" 2>&1
echo "== build rc=$? after $((SECONDS - t0)) s"; grep -E "error|FAILED" "$out/build.log" | head -30
ctest --test-dir build-cuda --output-on-failure -j4 --timeout 300 >"$out/ctest.log" 2>&1
echo "== ctest rc=$?"; grep -E "Test +#|tests passed|FAILED|failed" "$out/ctest.log" | head -30
python3 tests/parity/check_device.py build-cuda cuda >"$out/device_parity.log" 2>&1
echo "== device parity rc=$?"; cat "$out/device_parity.log" | tail -30
