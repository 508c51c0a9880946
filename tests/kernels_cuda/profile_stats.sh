#!/usr/bin/env bash
# Nsight Compute profile of the two tensor-core statistics passes (tcStatsKernel: mma.sync;
# wgStatsKernel: wgmma), each at 16k tokens in hs_attention_cuda_bench (one layer, 32 / 8 heads,
# d 128, bf16), for this tree and, when PATCH names a patch file, for this tree with it applied (built
# side by side in /tmp/vP). Per kernel: duration, issue and pipe utilisation, warp stall reasons, and the
# stall samples per SASS opcode (summarise_ncu.py); the raw reports go to LOG_DIR, packed into
# $OUT/prof.tgz when $OUT is set. One device command (CUDA host, project root, .debs carried):
#   PATCH=tests/kernels_cuda/pending/tensor-sums.patch tests/kernels_cuda/profile_stats.sh [LOG_DIR]
set -u
L=${1:-${OUT:-/tmp}/prof}; mkdir -p "$L"
export TORCH_CUDA_ARCH_LIST=9.0a
# shellcheck disable=SC1091
source .debs/env.sh .debs > "$L/env.log" 2>&1
root=$PWD D0=$SECONDS DL=${DEADLINE_S:-540}
t() { local name=$1 lim=$2; shift 2; local left=$((DL - (SECONDS - D0))); [ $left -lt 15 ] && { echo "== $name skipped"; return; }; [ $lim -gt $left ] && lim=$left; local t0=$SECONDS; timeout -k 5 $lim "$@" > "$L/$name.log" 2>&1; echo "== $name rc=$? $((SECONDS-t0))s"; tail -n ${TAILN:-6} "$L/$name.log"; }
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /usr/local/cuda/nsight-compute*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-not found}"
CONF=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" -DHEADSCOPE_BENCH=ON)
variants=(base)
if [ -n "${PATCH:-}" ]; then
  variants+=(patched)
  ( rm -rf /tmp/vP && mkdir -p /tmp/vP && tar cf - --exclude=./.debs --exclude='./build*' --exclude='./.tdata*' . | tar xf - -C /tmp/vP &&
    cd /tmp/vP && git apply "$root/$PATCH" && ln -s "$root/.debs" /tmp/vP/.debs &&
    cmake -S /tmp/vP -B /tmp/vP/b "${CONF[@]}" > "$L/confP.log" 2>&1 &&
    cmake --build /tmp/vP/b -j6 --target hs_attention_cuda_bench > "$L/buildP.log" 2>&1; echo "patched build rc=$?" ) > "$L/P.status" 2>&1 &
fi
t configure 120 cmake -S . -B build-cuda "${CONF[@]}"
TAILN=2 t build 300 cmake --build build-cuda -j10 --target hs_attention_cuda_bench
wait
[ -f "$L/P.status" ] && cat "$L/P.status"
for v in "${variants[@]}"; do
  bin=build-cuda/tests/kernels_cuda/hs_attention_cuda_bench
  [ "$v" = patched ] && bin=/tmp/vP/b/tests/kernels_cuda/hs_attention_cuda_bench
  for k in tcStatsKernel wgStatsKernel; do
    TAILN=2 t "ncu_${v}_$k" 120 "$NCU" --clock-control none --kernel-name "regex:$k" --launch-skip 2 --launch-count 1 \
      --set full --import-source no -f -o "$L/${v}_$k" "$bin" 16384 16384
    "$NCU" -i "$L/${v}_$k.ncu-rep" --page details --print-units base > "$L/${v}_$k.details.txt" 2>&1
    "$NCU" -i "$L/${v}_$k.ncu-rep" --page source --csv --print-source sass > "$L/${v}_$k.sass.csv" 2>&1
    python3 tests/kernels_cuda/summarise_ncu.py "$L/${v}_$k.details.txt" "$L/${v}_$k.sass.csv" > "$L/${v}_$k.summary.txt" 2>&1
    echo "==== $v $k"; cat "$L/${v}_$k.summary.txt"
  done
done
[ -n "${OUT:-}" ] && tar czf "$OUT/prof.tgz" -C "$L" --exclude='*.ncu-rep' . && cp "$L"/*.ncu-rep "$OUT/" 2>/dev/null
exit 0
