#!/usr/bin/env bash
# A/B of kernel changes in one device command: builds this tree (C) and, beside it, each variant V of
# tests/kernels_cuda/ab_variants/V (this tree with that folder's files copied over kernels/cuda/, e.g.
# A = main's versions of the changed files); runs the kernel tests (`[small]`, the sweep, `[long]`; the model-level ones
# among them), racecheck of the statistics and decode-statistics kernels, memcheck of the decode ones,
# the one-layer benchmark of each variant and of this tree in turn (twice), and the model benchmark at 32k.
# Each step is cut to what is left of DEADLINE_S.
#   usage (project root, .debs carried): tests/kernels_cuda/run_ab.sh [LOG_DIR=$OUT/ab]
set -u
L=${1:-${OUT:-/tmp}/ab}; mkdir -p "$L"
export TORCH_CUDA_ARCH_LIST=9.0a
# shellcheck disable=SC1091
source .debs/env.sh .debs > "$L/env.log" 2>&1
root=$PWD D0=$SECONDS DL=${DEADLINE_S:-570}
t() { local name=$1 lim=$2; shift 2; local left=$((DL - (SECONDS - D0))); [ $left -lt 15 ] && { echo "== $name skipped"; return; }; [ $lim -gt $left ] && lim=$left; local t0=$SECONDS; timeout -k 5 $lim "$@" > "$L/$name.log" 2>&1; echo "== $name rc=$? $((SECONDS-t0))s"; tail -n ${TAILN:-8} "$L/$name.log"; }
nvidia-smi -L
# An array, not a function: t() runs its command under timeout(1), which cannot call shell functions.
CONF=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" -DHEADSCOPE_BENCH=ON)
variants=$(ls tests/kernels_cuda/ab_variants 2>/dev/null)
for v in $variants; do
  ( rm -rf "/tmp/v$v" && mkdir -p "/tmp/v$v" && tar cf - --exclude=./.debs --exclude='./build*' --exclude='./.tdata*' . | tar xf - -C "/tmp/v$v" &&
    cp "tests/kernels_cuda/ab_variants/$v"/* "/tmp/v$v/kernels/cuda/" && ln -s "$root/.debs" "/tmp/v$v/.debs" &&
    cmake -S "/tmp/v$v" -B "/tmp/v$v/b" "${CONF[@]}" > "$L/conf$v.log" 2>&1 &&
    cmake --build "/tmp/v$v/b" -j4 --target hs_attention_cuda_bench > "$L/build$v.log" 2>&1; echo "$v build rc=$?" ) > "$L/$v.status" 2>&1 &
done
t configure 120 cmake -S . -B build-cuda "${CONF[@]}"
TAILN=4 t build 300 cmake --build build-cuda -j12 --target hs_kernels_cuda_tests hs_attention_cuda_bench headscope_bench_gpu
wait
for v in $variants; do cat "$L/$v.status"; done
B=build-cuda/tests/kernels_cuda
CS=/usr/local/cuda/bin/compute-sanitizer
t small 60 $B/hs_kernels_cuda_tests "[small]" --durations yes
t sweep 100 $B/hs_kernels_cuda_tests "~[long]" "~[small]"
t long 60 $B/hs_kernels_cuda_tests "[long]"
TAILN=4 t race_tc 60 $CS --tool racecheck --kernel-name kns=tcStatsKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[tc]"
TAILN=4 t race_wg 60 $CS --tool racecheck --kernel-name kns=wgStatsKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[tc]"
if [ -z "${SKIP_DECODE_CHECKS:-}" ]; then
  TAILN=4 t race_decode 60 $CS --tool racecheck --kernel-name kns=decodeStatsKernel --error-exitcode 3 $B/hs_kernels_cuda_tests "[decode]"
  TAILN=4 t mem_decode 60 $CS --tool memcheck --kernel-name kns=decode --error-exitcode 3 $B/hs_kernels_cuda_tests "[decode]"
fi
for r in 1 2; do
  for v in $variants; do
    TAILN=0 t "bench$v$r" 40 "/tmp/v$v/b/tests/kernels_cuda/hs_attention_cuda_bench" 32768 16384
    grep -E '^\| (16384|32768) \|' "$L/bench$v$r.log" | head -2
  done
  TAILN=0 t "benchC$r" 40 $B/hs_attention_cuda_bench 32768 16384
  grep -E '^\| (16384|32768) \|' "$L/benchC$r.log" | head -2
done
TAILN=14 t model 150 build-cuda/bench/headscope_bench_gpu --tokens 32768 --skip-decode \
  --warmup 1 --timed-runs 2 --time-budget-s 140 --json "$L/model.json"
[ -n "${OUT:-}" ] && tar czf "$OUT/ab.tgz" -C "$L" .
