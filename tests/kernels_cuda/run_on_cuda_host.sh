#!/usr/bin/env bash
# Builds and runs the CUDA kernel tests (and the one-layer benchmark) on the CUDA host, from the
# project root, with the .deb prefix made by ../shared/cuda-host/fetch-debs.sh carried in .debs/.
#   usage: tests/kernels_cuda/run_on_cuda_host.sh LOG_DIR [BENCH_MAX_TOKENS=32768] [DEADLINE_S=540]
# Each step's log goes to LOG_DIR; a failing test step does not stop the later ones, and every step's
# timeout is cut to what is left before the deadline (device time is scarce).
set -u
out=${1:?log dir}
benchMax=${2:-32768}
deadline=${3:-540}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0a
# shellcheck disable=SC1091
source .debs/env.sh .debs >"$out/env.log" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.log" 2>&1
step() {  # step NAME TIMEOUT CMD...: runs, logs, prints the tail and the exit status
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped, ${left} s left before the deadline"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc, $((SECONDS - t0)) s"
  tail -n 40 "$out/$name.log"
  return $rc
}
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
step configure 240 cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" -DHEADSCOPE_BENCH=ON || exit 1
step build 420 cmake --build build-cuda -j16 --target hs_kernels_cuda_tests || exit 1
step build_bench 120 cmake --build build-cuda -j16 --target hs_attention_cuda_bench
bin=build-cuda/tests/kernels_cuda
step tests 300 "$bin/hs_kernels_cuda_tests" --order lex --durations yes
[ -x "$bin/hs_attention_cuda_bench" ] && step bench 120 "$bin/hs_attention_cuda_bench" "$benchMax"
if command -v compute-sanitizer >/dev/null || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
  san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  # Shared-memory races and out-of-bounds accesses on the short sweep (the 4k case is too slow there).
  step memcheck 100 "$san" --tool memcheck --error-exitcode 3 "$bin/hs_kernels_cuda_tests" "~[long]"
  step racecheck 100 "$san" --tool racecheck --error-exitcode 3 "$bin/hs_kernels_cuda_tests" "~[long]"
fi
exit 0
