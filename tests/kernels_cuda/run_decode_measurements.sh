#!/usr/bin/env bash
# The decode measurements of session 3 in one device command (CUDA host, project root, .debs carried):
# rebuild, the [small] and sweep kernel tests, the one-layer benchmark up to 8k (its decode table),
# headscope_bench_gpu decode at 32k/128k (full vs hybrid), racecheck of the decode kernel. Logs to
# /tmp/klog2, packed into $OUT/klog2.tgz.
set -u
L=/tmp/klog2; mkdir -p $L
export TORCH_CUDA_ARCH_LIST=9.0a
source .debs/env.sh .debs > $L/env.log 2>&1
t() { local name=$1 lim=$2; shift 2; local t0=$SECONDS; timeout -k 5 $lim "$@" > $L/$name.log 2>&1; echo "== $name rc=$? $((SECONDS-t0))s"; tail -n ${TAILN:-15} $L/$name.log; }
TAILN=3 t configure 60 cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" -DHEADSCOPE_BENCH=ON
TAILN=3 t build 200 cmake --build build-cuda -j16 --target hs_kernels_cuda_tests hs_attention_cuda_bench headscope_bench_gpu
B=build-cuda/tests/kernels_cuda
TAILN=6 t small 60 $B/hs_kernels_cuda_tests "[small]"
TAILN=4 t sweep 90 $B/hs_kernels_cuda_tests "~[long]" "~[small]"
TAILN=6 t bench 60 $B/hs_attention_cuda_bench 8192
TAILN=16 t big 200 build-cuda/bench/headscope_bench_gpu --tokens 1024 --decode-contexts 32768,131072 --warmup 0 --timed-runs 1 --time-budget-s 180 --json $L/dec.json
TAILN=4 t racecheck_decode 60 /usr/local/cuda/bin/compute-sanitizer --tool racecheck --kernel-name kns=decodeSplitKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[decode]"
[ -n "${OUT:-}" ] && tar czf "$OUT/klog2.tgz" -C "$L" .
