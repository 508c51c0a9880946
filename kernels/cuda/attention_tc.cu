// Tensor-core attention (bf16/fp16, head_dim 64 or 128): the forward, and one statistics pass that
// reuses a forward's row log-sum-exp (ours or LibTorch's fused one) to produce every row statistic and
// the column sums in a single sweep over Q K^T. Warp-level mma.sync m16n8k16 with fp32 accumulators,
// ldmatrix from XOR-swizzled shared memory, cp.async double buffering of the K/V tiles. Same visibility
// rule, masks, skipped tiles and logit bias as the CUDA-core kernels (attention_device.cuh); ACT, the
// streaming mix and pooled maps stay on those kernels (the bridge decides, tensorCoreEligible()).
#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/cuda/attention_device.cuh"
#include "kernels/cuda/tensor_core.cuh"

namespace hs::kernels::cuda {
namespace {

using namespace detail;

constexpr float kLn2 = 0.6931471805599453f;
static_assert(kTcCols == kTileK, "the forward's key tiles must match the KeySet tile summary");

// The head masks alone (causality and the sliding window are checked inline by the callers); out of
// line because only masked heads need it.
__device__ __noinline__ bool headMaskAllows(const AttentionParams& p, const HeadMaskDev& m, int h, int64_t qpos,
                                            int64_t key) {
  return visible(p, m, h, qpos, key);
}

__device__ __forceinline__ bool hasMask(const HeadMaskDev& m) {
  return m.hasSinkWindow || m.hasStreamWindow || m.hasKeySet || m.hasBlocks;
}

// First key tile at or after `from` (aligned) that some query of [qlo, qhi] can see, or `end`.
__device__ __forceinline__ int64_t nextKeyTile(const AttentionParams& p, const HeadMaskDev& hm, int h,
                                               int64_t qlo, int64_t qhi, int64_t from, int64_t end) {
  for (int64_t k0 = from; k0 < end; k0 += kTcCols)
    if (!tileMasked(p, hm, h, qlo, qhi, k0, min(k0 + kTcCols, end))) return k0;
  return end;
}

template <typename T, int D>
constexpr size_t forwardSmemBytes() {
  return sizeof(T) * (kTcRows * D + 4 * kTcCols * D);  // Q, K x2, V x2
}

// One CTA per (64-query tile, head), heaviest tile first. Each warp owns 16 query rows: S = Q K^T on
// tensor cores, visibility and bias per element only where a tile is not entirely visible, online
// softmax in the log2 domain, O += P V.
template <typename T, int D>
__global__ void __launch_bounds__(kTcThreads, 2) tcForwardKernel(const __grid_constant__ AttentionParams p) {
  extern __shared__ uint4 smemTc[];
  T* sQ = reinterpret_cast<T*>(smemTc);
  T* sK = sQ + kTcRows * D;
  T* sV = sK + 2 * kTcCols * D;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int64_t rowBase = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kTcRows;
  const int h = gridHead(p);
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const bool masked = hasMask(hm);
  const int rows = static_cast<int>(min(static_cast<int64_t>(kTcRows), p.nq - rowBase));
  const int64_t qlo = p.queryStart + rowBase, qhi = qlo + rows - 1;
  const float* biasRow = p.bias ? p.bias + static_cast<int64_t>(h) * p.nk : nullptr;
  const float c2 = p.scale * kLog2e;
  const int window = static_cast<int>(min(p.slidingWindow, int64_t{INT32_MAX}));

  int64_t kBegin, kEnd;
  keyRange(p, qlo, qhi, kBegin, kEnd);
  loadTile<T, D>(sQ, p.q, h, rowBase, rows);
  int64_t k0 = nextKeyTile(p, hm, h, qlo, qhi, kBegin, kEnd);
  if (k0 < kEnd) {
    loadTile<T, D>(sK, p.k, kvh, k0, p.nk - k0);
    loadTile<T, D>(sV, p.v, kvh, k0, p.nk - k0);
  }
  cpAsyncCommit();

  float o[D / 8][4];
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  int buf = 0;

  while (k0 < kEnd) {
    const int64_t kNext = nextKeyTile(p, hm, h, qlo, qhi, k0 + kTcCols, kEnd);
    cpAsyncWaitAll();
    __syncthreads();  // tile k0 is in buffer `buf`; every warp is done with the other buffer
    if (kNext < kEnd) {
      loadTile<T, D>(sK + (buf ^ 1) * kTcCols * D, p.k, kvh, kNext, p.nk - kNext);
      loadTile<T, D>(sV + (buf ^ 1) * kTcCols * D, p.v, kvh, kNext, p.nk - kNext);
    }
    cpAsyncCommit();
    const T* kTile = sK + buf * kTcCols * D;
    const T* vTile = sV + buf * kTcCols * D;

    float score[1][8][4];
    scoreBlock<T, D, 1>(sQ, warp * 16, kTile, lane, score);
    float(&sc)[8][4] = score[0];

    const bool full = !masked && k0 + kTcCols - 1 <= qlo && (p.slidingWindow == 0 || k0 > qhi - p.slidingWindow);
    // Per element, with c = nb * 8 + e: key = k0 + 2t + c, lag = qpos - key = relBase - c.
    const int keyLimit = static_cast<int>(min(p.nk - k0, static_cast<int64_t>(kTcCols))) - 2 * t;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp * 16 + g + 8 * hh;
      const int relBase = static_cast<int>(qlo - k0) + r - 2 * t;
      const bool rowOk = r < rows;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = nb * 8 + e, lag = relBase - c;
          float v = sc[nb][2 * hh + e] * c2;
          bool ok = full;
          if (!ok) {
            ok = rowOk && lag >= 0 && c < keyLimit && (window == 0 || lag < window);
            if (ok && masked) ok = headMaskAllows(p, hm, h, qlo + r, k0 + 2 * t + c);
          }
          if (!ok) {
            v = -INFINITY;
          } else if (biasRow) {
            v = fmaf(biasRow[k0 + 2 * t + c], kLog2e, v);
          }
          sc[nb][2 * hh + e] = v;
          mx[hh] = fmaxf(mx[hh], v);
        }
      mx[hh] = groupMax<4>(mx[hh]);
    }

#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float mNew = fmaxf(m[hh], mx[hh]);
      const float mUse = mNew == -INFINITY ? 0.0f : mNew;
      const float alpha = exp2f(m[hh] - mUse);
      l[hh] *= alpha;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) o[nd][2 * hh] *= alpha, o[nd][2 * hh + 1] *= alpha;
      m[hh] = mNew;

      float rowSum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pr = fastExp2(sc[nb][2 * hh + e] - mUse);  // masked (-inf): 0
          sc[nb][2 * hh + e] = pr;
          rowSum += pr;
        }
      l[hh] += rowSum;
    }

    // O += P V: P's accumulator layout is the A-fragment layout of the next mma (keys as K).
#pragma unroll
    for (int ks = 0; ks < kTcCols / 16; ++ks) {
      const uint32_t a[4] = {pack2<T>(sc[2 * ks][0], sc[2 * ks][1]), pack2<T>(sc[2 * ks][2], sc[2 * ks][3]),
                             pack2<T>(sc[2 * ks + 1][0], sc[2 * ks + 1][1]),
                             pack2<T>(sc[2 * ks + 1][2], sc[2 * ks + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        ldmatrixX4Trans(b, vTile + swz<D>(ks * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), dp * 2 + (lane >> 4)));
        mma16816<T>(o[2 * dp], a, b[0], b[1]);
        mma16816<T>(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    buf ^= 1;
    k0 = kNext;
  }
  cpAsyncWaitAll();

#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const float sum = groupSum<4>(l[hh]);
    const int r = warp * 16 + g + 8 * hh;
    if (r >= rows) continue;
    const int64_t row = rowBase + r, idx = static_cast<int64_t>(h) * p.nq + row;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const float scale = p.headScale ? p.headScale[h] : 1.0f;
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      const int col = nd * 8 + 2 * t;
      float v0 = o[nd][2 * hh] * inv * scale, v1 = o[nd][2 * hh + 1] * inv * scale;
      if (p.headAdd) v0 += p.headAdd[h * p.dim + col], v1 += p.headAdd[h * p.dim + col + 1];
      if (p.outType == ElemType::F32) {
        *reinterpret_cast<float2*>(static_cast<float*>(p.out) + idx * D + col) = make_float2(v0, v1);
      } else {
        *reinterpret_cast<uint32_t*>(static_cast<T*>(p.out) + idx * D + col) = pack2<T>(v0, v1);
      }
    }
    if (t != 0) continue;
    p.rowLse2[idx] = sum > 0.0f ? m[hh] + log2f(sum) : -INFINITY;
  }
}

constexpr int kStatsRows = 2 * kTcRows;  // query rows per CTA of the statistics pass: 32 per warp

// Pooled-map cells a CTA's rows can touch in one key tile (pool blocks are multiples of kTcCols, so a
// key tile lies in one column of cells and 128 rows in at most 3 rows of cells).
constexpr int kPoolCells = 4;
constexpr int kColBuf = 2 * kTcCols + 2 * kPoolCells;  // one buffer: column sums, band sums, pool max/sum

template <typename T, int D>
constexpr size_t statsSmemBytes() {
  return sizeof(T) * (kStatsRows * D + 2 * kTcCols * D) + sizeof(float) * 2 * kColBuf;  // Q, K x2, 2 buffers
}

// Adds a key tile's partials (one kColBuf buffer: kTcCols column sums, kTcCols band sums, then the max
// and sum of kPoolCells pooled cells from cell row cellRow0) to the global statistics and clears them;
// threads [0, 2 kTcCols) take one column value each, threads [0, kPoolCells) one pooled cell each.
__device__ __forceinline__ void flushPartials(const AttentionParams& p, const StatsParams& s, int h, int64_t k0,
                                             float* buf, int poolSlot, int64_t cellRow0) {
  const int tid = threadIdx.x;
  if (tid < 2 * kTcCols) {
    const int64_t key = k0 + tid % kTcCols;
    const float v = buf[tid];
    if (v != 0.0f && key < p.nk) atomicAdd((tid < kTcCols ? s.colSum : s.colSumBand) + h * p.nk + key, v);
    buf[tid] = 0.0f;
  }
  if (poolSlot >= 0 && tid < kPoolCells) {
    float* cell = buf + 2 * kTcCols + 2 * tid;
    const int64_t row = cellRow0 + tid, col = static_cast<int>(k0) / static_cast<int>(s.poolBlock);  // < 2^31
    if (cell[1] > 0.0f && row < s.poolRows && col < s.poolCols) {
      const int64_t idx = (static_cast<int64_t>(poolSlot) * s.poolRows + row) * s.poolCols + col;
      atomicMax(reinterpret_cast<int*>(s.poolMax) + idx, __float_as_int(cell[0]));  // p >= 0: int order
      atomicAdd(s.poolSum + idx, cell[1]);
    }
    cell[0] = cell[1] = 0.0f;
  }
}

// A warp's share of a pooled cell in this key tile, when all its 32 rows lie in cell row `cell`: this
// lane's p maximum and sum there, reduced over the warp and added to the CTA's shared-memory cell by
// lane 0. All lanes call it.
__device__ __forceinline__ void poolWarp(float* buf, int64_t cell, float pmax, float psum) {
  pmax = groupMax<32>(pmax), psum = groupSum<32>(psum);
  if (threadIdx.x % 32 != 0 || !(psum > 0.0f)) return;
  atomicMax(reinterpret_cast<int*>(buf + 2 * kTcCols + 2 * cell), __float_as_int(pmax));
  atomicAdd(buf + 2 * kTcCols + 2 * cell + 1, psum);
}

// The same for one row (its 4 lanes), for warps whose rows straddle two cell rows (a call whose
// queryStart is not a multiple of 32). All lanes call it.
__device__ __forceinline__ void poolRow(float* buf, int64_t cell, float pmax, float psum) {
  pmax = groupMax<4>(pmax), psum = groupSum<4>(psum);
  if (threadIdx.x % 4 != 0 || !(psum > 0.0f)) return;
  atomicMax(reinterpret_cast<int*>(buf + 2 * kTcCols + 2 * cell), __float_as_int(pmax));
  atomicAdd(buf + 2 * kTcCols + 2 * cell + 1, psum);
}

// Every statistic of the probabilities p = exp2(s - rowLse2) in one sweep: one CTA per (128-query tile,
// head), heaviest first; each warp owns 32 query rows (two m16 tiles sharing each K fragment) and walks
// the key tiles they can see. Row statistics (entropy, stream mass, WAAD, mean distance, top-1) stay in
// registers; column sums are reduced over the warp's rows by shuffles, over the CTA's warps in shared
// memory, and added to s.colSum / s.colSumBand (zeroed by the caller) once per key tile; so are the
// pooled maps' max and sum when s.poolBlock is a multiple of kTcCols (s.poolMax / s.poolSum zeroed). The logits,
// visibility and bias are the forward's, so a forward of ours or LibTorch's fused one (same logits,
// its log-sum-exp) defines the probabilities.
template <typename T, int D>
__global__ void __launch_bounds__(kTcThreads, 2) tcStatsKernel(const __grid_constant__ AttentionParams p, const __grid_constant__ StatsParams s) {
  extern __shared__ uint4 smemTc[];
  T* sQ = reinterpret_cast<T*>(smemTc);
  T* sK = sQ + kStatsRows * D;
  float* sCol = reinterpret_cast<float*>(sK + 2 * kTcCols * D);  // [2 buffers][kColBuf]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int64_t rowBase = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kStatsRows;
  const int h = gridHead(p);
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const bool masked = hasMask(hm);
  const int rows = static_cast<int>(min(static_cast<int64_t>(kStatsRows), p.nq - rowBase));
  const int64_t qlo = p.queryStart + rowBase, qhi = qlo + rows - 1;
  const float* biasRow = p.bias ? p.bias + static_cast<int64_t>(h) * p.nk : nullptr;
  const float c2 = p.scale * kLog2e;
  const float cap = static_cast<float>(s.distanceCap);
  const int window = static_cast<int>(min(p.slidingWindow, int64_t{INT32_MAX}));
  const int streamWindow = static_cast<int>(min(s.streamWindow, int64_t{INT32_MAX}));
  const int bandLo = static_cast<int>(min(s.bandLo, int64_t{INT32_MAX}));
  const int bandHi = static_cast<int>(min(s.bandHi, int64_t{INT32_MAX}));
  // Pooled maps (pool blocks that are multiples of kTcCols; the bridge sends others to the CUDA cores).
  const int poolSlot = s.poolBlock > 0 ? s.poolIndex[h] : -1;
  const bool pool = poolSlot >= 0;
  const int64_t cellRow0 = pool ? qlo / s.poolBlock : 0;
  // A warp whose 32 rows share one cell row sums its lanes' share first (the usual case).
  const int64_t warpQ = qlo + warp * 32;
  const bool warpOneCell = pool && warpQ / s.poolBlock == (warpQ + 31) / s.poolBlock;
  const int warpCell = pool ? static_cast<int>(warpQ / s.poolBlock - cellRow0) : 0;

  for (int i = tid; i < 2 * kColBuf; i += kTcThreads) sCol[i] = 0.0f;
  // This thread's rows: r = warp * 32 + 16 m + g + 8 hh. lse is +inf where a row has no key or does not
  // exist, so that p = exp2(s - lse) is 0 there.
  float lse[2][2];
  bool any[2][2];
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp * 32 + 16 * m + g + 8 * hh;
      const float v = r < rows ? p.rowLse2[static_cast<int64_t>(h) * p.nq + rowBase + r] : -INFINITY;
      any[m][hh] = v != -INFINITY;
      lse[m][hh] = any[m][hh] ? v : INFINITY;
    }

  int64_t kBegin, kEnd;
  keyRange(p, qlo, qhi, kBegin, kEnd);
  loadTile<T, D>(sQ, p.q, h, rowBase, rows);
  loadTile<T, D>(sQ + kTcRows * D, p.q, h, rowBase + kTcRows, rows - kTcRows);
  int64_t k0 = nextKeyTile(p, hm, h, qlo, qhi, kBegin, kEnd);
  if (k0 < kEnd) loadTile<T, D>(sK, p.k, kvh, k0, p.nk - k0);
  cpAsyncCommit();

  // Per row: mass = sum p, entX = sum p * x (x the log2-domain logit; entropy = ln2 (lse mass - entX)),
  // dist = sum p * lag, waad = sum p * min(lag, cap), stream = the mass on sinks + window.
  float mass[2][2] = {}, entX[2][2] = {}, dist[2][2] = {}, waad[2][2] = {}, stream[2][2] = {};
  float best[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}};
  int top[2][2] = {};
  int buf = 0;
  int64_t prevK0 = -1;

  while (k0 < kEnd) {
    const int64_t kNext = nextKeyTile(p, hm, h, qlo, qhi, k0 + kTcCols, kEnd);
    cpAsyncWaitAll();
    __syncthreads();  // tile k0 is in buffer `buf`; every warp is done with the other buffers
    if (prevK0 >= 0) flushPartials(p, s, h, prevK0, sCol + (buf ^ 1) * kColBuf, poolSlot, cellRow0);
    if (kNext < kEnd) loadTile<T, D>(sK + (buf ^ 1) * kTcCols * D, p.k, kvh, kNext, p.nk - kNext);
    cpAsyncCommit();

    float sc[2][8][4];
    scoreBlock<T, D, 2>(sQ, warp * 32, sK + buf * kTcCols * D, lane, sc);

    const bool full = !masked && k0 + kTcCols - 1 <= qlo && (p.slidingWindow == 0 || k0 > qhi - p.slidingWindow);
    // Per element, with c = nb * 8 + e: key = k0 + 2t + c, lag = qpos - key = relBase - c.
    const int keyLimit = static_cast<int>(min(p.nk - k0, static_cast<int64_t>(kTcCols))) - 2 * t;
    const bool nearCap = qlo - (k0 + kTcCols - 1) < s.distanceCap;
    const bool nearStream = k0 < s.streamSink || k0 + kTcCols - 1 > qlo - s.streamWindow;
    const int sinkLimit = static_cast<int>(min(max(s.streamSink - k0, int64_t{-1}), int64_t{kTcCols})) - 2 * t;
    const int64_t minLag = qlo - (k0 + kTcCols - 1), maxLag = qhi - k0;
    const bool inBand = maxLag >= s.bandLo && minLag <= s.bandHi;
    float poolMax = 0.0f, poolSum = 0.0f;
    auto addPool = [&](int r, float pmax, float psum) {
      if (warpOneCell)
        poolMax = fmaxf(poolMax, pmax), poolSum += psum;
      else
        poolRow(sCol + buf * kColBuf, static_cast<int>(qlo + r) / static_cast<int>(s.poolBlock) - cellRow0, pmax,
                psum);
    };
    if (full && !biasRow && !nearCap && !nearStream) {
      // The common tile, every key visible and far from the diagonal and the sinks: per element only
      // the maximum, p, and the sums p, p*s and p*c; distances and entropy follow per row.
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float mx = -INFINITY;
#pragma unroll
          for (int nb = 0; nb < 8; ++nb) mx = fmaxf(mx, fmaxf(sc[m][nb][2 * hh], sc[m][nb][2 * hh + 1]));
          if (mx * c2 > best[m][hh]) {  // this lane's first key at the new maximum
            int first = kTcCols;
#pragma unroll
            for (int nb = 7; nb >= 0; --nb)
#pragma unroll
              for (int e = 1; e >= 0; --e)
                if (sc[m][nb][2 * hh + e] == mx) first = nb * 8 + e;
            best[m][hh] = mx * c2, top[m][hh] = static_cast<int>(k0) + 2 * t + first;
          }
          const float nl = -lse[m][hh];
          float rs = 0.0f, ps = 0.0f, pc = 0.0f;
#pragma unroll
          for (int nb = 0; nb < 8; ++nb)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float sv = sc[m][nb][2 * hh + e];
              const float pr = fastExp2(fmaf(sv, c2, nl));
              sc[m][nb][2 * hh + e] = pr;
              rs += pr;
              ps = fmaf(pr, sv, ps);
              pc = fmaf(pr, static_cast<float>(nb * 8 + e), pc);
            }
          const int r = warp * 32 + 16 * m + g + 8 * hh;
          if (pool) addPool(r, exp2f(fmaf(mx, c2, nl)), rs);
          const float lag0 = static_cast<float>(static_cast<int>(qlo - k0) + r - 2 * t);
          mass[m][hh] += rs;
          entX[m][hh] = fmaf(ps, c2, entX[m][hh]);
          dist[m][hh] += fmaf(lag0, rs, -pc);
          waad[m][hh] = fmaf(rs, cap, waad[m][hh]);
        }
    } else {
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int r = warp * 32 + 16 * m + g + 8 * hh;
          const int relBase = static_cast<int>(qlo - k0) + r - 2 * t;
          const bool rowOk = r < rows;
          const float lag0 = static_cast<float>(relBase);  // exact below 2^24
          float rowSum = 0.0f, rowMax = 0.0f;
#pragma unroll
          for (int nb = 0; nb < 8; ++nb)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int c = nb * 8 + e, lag = relBase - c;
              float x = sc[m][nb][2 * hh + e] * c2;
              bool ok = full;
              if (!ok) {
                ok = rowOk && lag >= 0 && c < keyLimit && (window == 0 || lag < window);
                if (ok && masked) ok = headMaskAllows(p, hm, h, qlo + r, k0 + 2 * t + c);
              }
              if (ok && biasRow) x = fmaf(biasRow[k0 + 2 * t + c], kLog2e, x);
              if (ok && x > best[m][hh]) best[m][hh] = x, top[m][hh] = static_cast<int>(k0) + 2 * t + c;
              const float pr = ok ? fastExp2(x - lse[m][hh]) : 0.0f;  // lse = +inf: 0
              sc[m][nb][2 * hh + e] = pr;
              rowSum += pr;
              if (pool) rowMax = fmaxf(rowMax, pr);
              entX[m][hh] = fmaf(pr, x, entX[m][hh]);
              const float lagF = lag0 - static_cast<float>(c);
              dist[m][hh] = fmaf(pr, lagF, dist[m][hh]);
              if (nearCap) waad[m][hh] = fmaf(pr, fminf(lagF, cap), waad[m][hh]);
              if (nearStream && (c < sinkLimit || lag < streamWindow)) stream[m][hh] += pr;
            }
          if (pool) addPool(r, rowMax, rowSum);
          mass[m][hh] += rowSum;
          if (!nearCap) waad[m][hh] = fmaf(rowSum, cap, waad[m][hh]);
        }
    }

    if (warpOneCell) poolWarp(sCol + buf * kColBuf, warpCell, poolMax, poolSum);

    // Column partials of this tile: this thread's 4 rows, then the warp's 32 rows (reduce-scatter),
    // then the CTA's 4 warps (shared-memory atomics); flushed at the next tile's barrier. The band sums
    // (tiles near the diagonal) first, so that the probabilities die with the column sums.
    float* col = sCol + buf * kColBuf;
    float v[16];
    if (inBand) {
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float b = 0.0f;
#pragma unroll
          for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const int lag = static_cast<int>(qlo - k0) + warp * 32 + 16 * m + g + 8 * hh - 2 * t - (nb * 8 + e);
              if (lag >= bandLo && lag <= bandHi) b += sc[m][nb][2 * hh + e];
            }
          v[2 * nb + e] = b;
        }
      const float2 bs = columnReduce(v, lane);
      if (bs.x != 0.0f) atomicAdd(col + kTcCols + g * 8 + 2 * t, bs.x);
      if (bs.y != 0.0f) atomicAdd(col + kTcCols + g * 8 + 2 * t + 1, bs.y);
    }
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        v[2 * nb + e] = sc[0][nb][e] + sc[0][nb][2 + e] + sc[1][nb][e] + sc[1][nb][2 + e];
    const float2 cs = columnReduce(v, lane);
    if (cs.x != 0.0f) atomicAdd(col + g * 8 + 2 * t, cs.x);
    if (cs.y != 0.0f) atomicAdd(col + g * 8 + 2 * t + 1, cs.y);
    prevK0 = k0;
    buf ^= 1;
    k0 = kNext;
  }
  cpAsyncWaitAll();
  __syncthreads();
  if (prevK0 >= 0) flushPartials(p, s, h, prevK0, sCol + (buf ^ 1) * kColBuf, poolSlot, cellRow0);

#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float e = groupSum<4>(fmaf(lse[m][hh], mass[m][hh], -entX[m][hh])), d = groupSum<4>(dist[m][hh]);
      const float w = groupSum<4>(waad[m][hh]), st = groupSum<4>(stream[m][hh]);
      const float bestAll = groupMax<4>(best[m][hh]);
      const int pos = groupMin<4>(best[m][hh] == bestAll ? top[m][hh] : INT32_MAX);  // first key at the maximum
      const int r = warp * 32 + 16 * m + g + 8 * hh;
      if (t != 0 || r >= rows) continue;
      const int64_t idx = static_cast<int64_t>(h) * p.nq + rowBase + r;
      const bool has = any[m][hh];
      s.entropy[idx] = has ? kLn2 * e : 0.0f;
      s.meanDistance[idx] = d;
      s.waad[idx] = w;
      s.streamMass[idx] = st;
      s.top1Prob[idx] = has ? exp2f(bestAll - lse[m][hh]) : 0.0f;
      s.top1Pos[idx] = has ? pos : 0;
    }
}

template <typename F>
void dispatchTc(const AttentionParams& p, F&& f) {
  auto withType = [&](auto tag) {
    using T = decltype(tag);
    if (p.dim == 64)
      f(T{}, std::integral_constant<int, 64>{});
    else
      f(T{}, std::integral_constant<int, 128>{});
  };
  if (p.type == ElemType::BF16)
    withType(__nv_bfloat16{});
  else
    withType(__half{});
}

template <typename K>
void setSmem(K kernel, size_t bytes, const char* name) {
  checkCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
            name, "shared memory attribute");
}

}  // namespace

bool tensorCoreEligible(const AttentionParams& p) {
  return (p.type == ElemType::BF16 || p.type == ElemType::F16) && (p.dim == 64 || p.dim == 128) &&
         p.vectorLoads && !p.beta && !p.actOn;
}

namespace {

// The checks both tensor-core launches make first; false when there is nothing to run.
bool tcCallToRun(const AttentionParams& p, const char* kernel) {
  if (p.nq == 0 || p.numHeads == 0) return false;
  detail::checkShape(p, kernel);
  if (!tensorCoreEligible(p))
    throw Error(ErrorKind::Internal, std::string(kernel) + ": call not eligible for the tensor-core kernels", {},
                "cuda");
  return true;
}

}  // namespace

void launchAttentionForwardTc(const AttentionParams& p, cudaStream_t stream) {
  if (!tcCallToRun(p, "attention_forward_tc")) return;
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nq, kTcRows)), static_cast<unsigned>(p.numHeads));
  dispatchTc(p, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    constexpr size_t smem = forwardSmemBytes<T, D>();
    setSmem(tcForwardKernel<T, D>, smem, "attention_forward_tc");
    tcForwardKernel<T, D><<<grid, kTcThreads, smem, stream>>>(p);
  });
  checkLaunch("attention_forward_tc");
}

void launchStatsTc(const AttentionParams& p, const StatsParams& s, cudaStream_t stream) {
  if (!tcCallToRun(p, "attention_stats_tc")) return;
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nq, kStatsRows)), static_cast<unsigned>(p.numHeads));
  dispatchTc(p, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    constexpr size_t smem = statsSmemBytes<T, D>();
    setSmem(tcStatsKernel<T, D>, smem, "attention_stats_tc");
    tcStatsKernel<T, D><<<grid, kTcThreads, smem, stream>>>(p, s);
  });
  checkLaunch("attention_stats_tc");
}

}  // namespace hs::kernels::cuda
