#!/usr/bin/env bash
# Builds and runs headscope_bench_gpu on the CUDA host, from the project root, with the .deb prefix
# made by ../shared/cuda-host/fetch-debs.sh carried in .debs/.
#   usage: bench/run_gpu_bench_on_cuda_host.sh OUT_DIR [headscope_bench_gpu options...]
# e.g.   bench/run_gpu_bench_on_cuda_host.sh $OUT                       (the full table)
#        bench/run_gpu_bench_on_cuda_host.sh $OUT --tokens 4096 --decode-contexts 32768 --timed-runs 1
# Logs go to OUT_DIR (configure.log, build.log, bench_gpu.log, bench_gpu.json, gpu.log). The build
# and the run are cut to a deadline (DEADLINE_S, default 560 s in all): device time is scarce, and
# the benchmark's own --time-budget-s (default 420 s) skips forward runs that would overrun.
set -u
out=${1:?usage: bench/run_gpu_bench_on_cuda_host.sh OUT_DIR [bench options]}
shift
deadline=${DEADLINE_S:-560}
mkdir -p "$out"
# shellcheck disable=SC1091
source .debs/env.sh .debs >"$out/env.log" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv >"$out/gpu.log" 2>&1
step() {  # step NAME TIMEOUT CMD...: runs with output to OUT_DIR/NAME.log, prints its tail and status
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped, ${left} s left before the deadline"
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc, $((SECONDS - t0)) s"
  tail -n 60 "$out/$name.log"
  return $rc
}
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
step configure 240 cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" -DHEADSCOPE_BENCH=ON || exit 1
step build 300 cmake --build build-cuda -j16 --target headscope_bench_gpu || exit 1
step bench_gpu 480 build-cuda/bench/headscope_bench_gpu --json "$out/bench_gpu.json" "$@"
