// Statistics pass: recomputes the score tiles of the forward (same tiling, same skipped tiles),
// normalises them with the saved row log2-sum-exp2, applies ACT, and reduces the probabilities to
// row statistics (registers, then a 16-lane shuffle), column sums (shared-memory reduction over the
// tile, then one fp32 atomic per column and tile) and block-pooled maps (shared-memory cells, then
// global atomics). Nothing of size N x N is ever stored.
#include "kernels/cuda/attention_device.cuh"

namespace hs::kernels::cuda {
namespace {

using namespace detail;

template <int D>
constexpr size_t statsSmemBytes() {
  return sizeof(float) * (2 * D * kLdT + 2 * 16 * kTileK + 2 * kMaxPoolCells);
}

// Probabilities are >= 0, so their IEEE bits order like ints and atomicMax on ints is a float max.
__device__ __forceinline__ void atomicMaxNonNeg(float* addr, float v) {
  atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
}

// Combines (prob, pos) pairs over the 16 lanes of a row group: larger probability, then smaller pos.
__device__ __forceinline__ void top1Reduce16(float& prob, int64_t& pos) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) {
    const float op = __shfl_xor_sync(0xffffffffu, prob, o);
    const int64_t oq = __shfl_xor_sync(0xffffffffu, pos, o);
    if (op > prob || (op == prob && oq < pos)) prob = op, pos = oq;
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    attentionStatsKernel(const AttentionParams p, const StatsParams s) {
  extern __shared__ float4 smem4[];
  float* qT = reinterpret_cast<float*>(smem4);
  float* kT = qT + D * kLdT;
  float* colPart = kT + D * kLdT;  // [16][kTileK] per-ty column partial sums
  float* bandPart = colPart + 16 * kTileK;
  float* cellMax = bandPart + 16 * kTileK;  // [kMaxPoolCells]
  float* cellSum = cellMax + kMaxPoolCells;

  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  const int64_t rowBase = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kTileQ;
  const int h = gridHead(p);
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const int rows = static_cast<int>(min(static_cast<int64_t>(kTileQ), p.nq - rowBase));
  const int64_t qlo = p.queryStart + rowBase, qhi = qlo + rows - 1;
  const float* biasRow = p.bias ? p.bias + static_cast<int64_t>(h) * p.nk : nullptr;
  const int pool = (s.poolIndex && s.poolBlock > 0) ? s.poolIndex[h] : -1;
  const int64_t B = s.poolBlock;

  loadTransposed<T, D>(p, p.q, h, rowBase, rows, p.scale * kLog2e, qT);
  for (int c = tid; c < kMaxPoolCells; c += kThreads) cellMax[c] = cellSum[c] = 0.0f;

  float lse2[4], ent[4], stream[4], waad[4], dist[4], topP[4];
  int64_t topPos[4];
  RowAct act[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = rowBase + ty * 4 + i;
    lse2[i] = ty * 4 + i < rows ? p.rowLse2[static_cast<int64_t>(h) * p.nq + row] : -INFINITY;
    act[i] = ty * 4 + i < rows ? rowAct(p, h, row) : RowAct{};
    ent[i] = stream[i] = waad[i] = dist[i] = topP[i] = 0.0f;
    topPos[i] = 0;
  }

  int64_t kBegin, kEnd;
  keyRange(p, qlo, qhi, kBegin, kEnd);
  for (int64_t k0 = kBegin; k0 < kEnd; k0 += kTileK) {
    const int64_t k1 = min(k0 + kTileK, kEnd);
    if (tileMasked(p, hm, h, qlo, qhi, k0, k1)) continue;
    __syncthreads();
    loadTransposed<T, D>(p, p.k, kvh, k0, static_cast<int>(k1 - k0), 1.0f, kT);
    __syncthreads();

    float sc[4][4];
    scoreTile<D>(qT, kT, ty, tx, sc);
    float col[4] = {0, 0, 0, 0}, band[4] = {0, 0, 0, 0};
    // Pool cells this thread touches: its 4 rows and 4 keys span at most 2 x 2 cells when B >= 4.
    float cMax[2][2] = {{0, 0}, {0, 0}}, cSum[2][2] = {{0, 0}, {0, 0}};
    const int64_t myQb = B > 0 ? (qlo + ty * 4) / B : 0, myKb = B > 0 ? (k0 + tx * 4) / B : 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t qpos = qlo + ty * 4 + i;
      const bool rowOk = ty * 4 + i < rows;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t key = k0 + tx * 4 + j;
        if (!rowOk || key >= k1 || !visible(p, hm, h, qpos, key)) continue;
        const float s2 = biasRow ? fmaf(biasRow[key], kLog2e, sc[i][j]) : sc[i][j];
        const float pr = finalProb(s2, lse2[i], act[i], key);
        if (!(pr > 0.0f)) continue;
        const int64_t lag = qpos - key;
        ent[i] -= pr * logf(pr);
        dist[i] += pr * static_cast<float>(lag);
        waad[i] += pr * static_cast<float>(min(lag, s.distanceCap));
        if (key < s.streamSink || key > qpos - s.streamWindow) stream[i] += pr;
        if (pr > topP[i] || (pr == topP[i] && key < topPos[i])) topP[i] = pr, topPos[i] = key;
        col[j] += pr;
        if (lag >= s.bandLo && lag <= s.bandHi) band[j] += pr;
        if (pool >= 0) {
          if (B >= 4) {
            const int a = static_cast<int>(qpos / B - myQb), b = static_cast<int>(key / B - myKb);
            cMax[a][b] = fmaxf(cMax[a][b], pr);
            cSum[a][b] += pr;
          } else {  // tiny blocks: straight to global memory
            const int64_t cell = (static_cast<int64_t>(pool) * s.poolRows + qpos / B) * s.poolCols + key / B;
            atomicMaxNonNeg(s.poolMax + cell, pr);
            atomicAdd(s.poolSum + cell, pr);
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      colPart[ty * kTileK + tx * 4 + j] = col[j];
      bandPart[ty * kTileK + tx * 4 + j] = band[j];
    }
    const int64_t tileQb = B > 0 ? qlo / B : 0, tileKb = B > 0 ? k0 / B : 0;
    const int64_t cellCols = B > 0 ? (k1 - 1) / B - tileKb + 1 : 0;
    const int64_t cellRows = B > 0 ? qhi / B - tileQb + 1 : 0;
    if (pool >= 0 && B >= 4) {
#pragma unroll
      for (int a = 0; a < 2; ++a)
#pragma unroll
        for (int b = 0; b < 2; ++b)
          if (cSum[a][b] > 0.0f) {
            const int64_t cell = (myQb + a - tileQb) * cellCols + (myKb + b - tileKb);
            atomicMaxNonNeg(cellMax + cell, cMax[a][b]);
            atomicAdd(cellSum + cell, cSum[a][b]);
          }
    }
    __syncthreads();
    if (tid < kTileK && k0 + tid < k1) {
      float c = 0.0f, bnd = 0.0f;
      for (int r = 0; r < 16; ++r) c += colPart[r * kTileK + tid], bnd += bandPart[r * kTileK + tid];
      const int64_t idx = static_cast<int64_t>(h) * p.nk + k0 + tid;
      if (c != 0.0f) atomicAdd(s.colSum + idx, c);
      if (bnd != 0.0f) atomicAdd(s.colSumBand + idx, bnd);
    }
    if (pool >= 0 && B >= 4) {
      for (int64_t c = tid; c < cellRows * cellCols; c += kThreads) {
        if (cellSum[c] > 0.0f) {
          const int64_t cell =
              (static_cast<int64_t>(pool) * s.poolRows + tileQb + c / cellCols) * s.poolCols + tileKb +
              c % cellCols;
          atomicMaxNonNeg(s.poolMax + cell, cellMax[c]);
          atomicAdd(s.poolSum + cell, cellSum[c]);
        }
        cellMax[c] = cellSum[c] = 0.0f;  // ready for the next tile (after its leading barrier)
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float e = groupSum<16>(ent[i]), st = groupSum<16>(stream[i]), w = groupSum<16>(waad[i]), dd = groupSum<16>(dist[i]);
    float tp = topP[i];
    int64_t pos = topPos[i];
    top1Reduce16(tp, pos);
    const int64_t row = rowBase + ty * 4 + i;
    if (tx != 0 || ty * 4 + i >= rows) continue;
    const int64_t idx = static_cast<int64_t>(h) * p.nq + row;
    s.entropy[idx] = e;
    s.streamMass[idx] = st;
    s.waad[idx] = w;
    s.meanDistance[idx] = dd;
    s.top1Prob[idx] = tp;
    s.top1Pos[idx] = pos;
  }
}

template <typename T, int D>
void launchStats(const AttentionParams& p, const StatsParams& s, cudaStream_t stream) {
  constexpr size_t smem = statsSmemBytes<D>();
  checkCuda(cudaFuncSetAttribute(attentionStatsKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)),
            "attention_stats", "shared memory attribute");
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nq, kTileQ)), static_cast<unsigned>(p.numHeads));
  attentionStatsKernel<T, D><<<grid, kThreads, smem, stream>>>(p, s);
  checkLaunch("attention_stats");
}

}  // namespace

void launchAttentionStats(const AttentionParams& p, const StatsParams& s, cudaStream_t stream) {
  if (p.nq == 0 || p.numHeads == 0) return;
  detail::checkShape(p, "attention_stats");
  detail::dispatchType(p.type, [&](auto t) {
    using T = decltype(t);
    if (p.dim <= 64)
      launchStats<T, 64>(p, s, stream);
    else
      launchStats<T, 128>(p, s, stream);
  });
}

}  // namespace hs::kernels::cuda
