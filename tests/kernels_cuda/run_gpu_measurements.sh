#!/usr/bin/env bash
# The GPU issue's measurement session in one device command (CUDA host, project root, the Debian -dev
# packages carried in .debs/): builds the CUDA kernel tests and both benchmarks, runs the tensor-core
# and decode test cases, the whole kernel sweep, the one-layer kernel benchmark, the Llama-3-8B-shaped
# model benchmark at 4k-64k (warm-up + 1 timed run) and at 128k (1 run) with decode at 32k/128k, the
# out-of-memory message at 2M tokens, and racecheck of the statistics and decode kernels; everything
# under a deadline of DEADLINE_S (default 540 s). Logs (and the benchmarks' JSON) go to LOG_DIR,
# packed into $OUT/klog.tgz when $OUT is set.
#   usage: tests/kernels_cuda/run_gpu_measurements.sh [LOG_DIR=/tmp/klog]
set -u
L=${1:-/tmp/klog}; mkdir -p "$L"
export TORCH_CUDA_ARCH_LIST=9.0a
source .debs/env.sh .debs > $L/env.log 2>&1
D0=$SECONDS
DL=${DEADLINE_S:-540}
t() { local name=$1 lim=$2; shift 2; local left=$((DL - (SECONDS - D0))); [ $left -lt 15 ] && { echo "== $name skipped"; return; }; [ $lim -gt $left ] && lim=$left; local t0=$SECONDS; timeout -k 5 $lim "$@" > $L/$name.log 2>&1; echo "== $name rc=$? $((SECONDS-t0))s"; tail -n ${TAILN:-15} $L/$name.log; }
t configure 120 cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" -DHEADSCOPE_BENCH=ON
TAILN=5 t build 200 cmake --build build-cuda -j16 --target hs_kernels_cuda_tests hs_attention_cuda_bench headscope_bench_gpu
B=build-cuda/tests/kernels_cuda
TAILN=8 t small 60 $B/hs_kernels_cuda_tests "[small]" --durations yes
TAILN=8 t sweep 90 $B/hs_kernels_cuda_tests "~[long]" "~[small]"
TAILN=8 t long 60 $B/hs_kernels_cuda_tests "[long]" --durations yes
TAILN=20 t bench 40 $B/hs_attention_cuda_bench 32768
TAILN=25 t fwd 110 build-cuda/bench/headscope_bench_gpu --skip-decode --tokens 4096,8192,16384,32768,65536 --warmup 1 --timed-runs 1 --time-budget-s 100 --json $L/fwd.json
TAILN=25 t big 150 build-cuda/bench/headscope_bench_gpu --tokens 131072 --decode-contexts 32768,131072 --warmup 0 --timed-runs 1 --time-budget-s 140 --json $L/big.json
# A prompt far beyond device memory: the memory plan's error (how many tokens would fit), no crash.
TAILN=12 t oom 40 build-cuda/bench/headscope_bench_gpu --skip-decode --tokens 2097152 --warmup 0 --timed-runs 1 --time-budget-s 30
# Racecheck of our kernels only (cuDNN's own kernels report hazards of their own).
CS=/usr/local/cuda/bin/compute-sanitizer
TAILN=6 t racecheck_tc 60 $CS --tool racecheck --kernel-name kns=tcStatsKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[tc]"
TAILN=6 t racecheck_wgmma 60 $CS --tool racecheck --kernel-name kns=wgStatsKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[tc]"
TAILN=6 t racecheck_decode 60 $CS --tool racecheck --kernel-name kns=decodeSplitKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[decode]"
TAILN=6 t racecheck_decode_stats 60 $CS --tool racecheck --kernel-name kns=decodeStatsKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[decode]"
TAILN=6 t memcheck_decode 90 $CS --tool memcheck --kernel-name kns=decode --error-exitcode 3 $B/hs_kernels_cuda_tests "[decode]"
[ -n "${OUT:-}" ] && tar czf "$OUT/klog.tgz" -C "$L" .
