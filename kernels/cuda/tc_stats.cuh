// The tensor-core statistics passes' shared body (attention_tc.cu: mma.sync on any tensor-core GPU;
// attention_wgmma.cu: wgmma on Hopper): the CTA's fixed setup, every row statistic and the column /
// band / pooled partials of one 64-key tile of scores held in the m16n8 accumulator layout, and the
// final row writes. Both kernels own 128 query rows per CTA; a warp holds kM m-tiles of 16 rows from
// warpRow on, so its thread holds rows warpRow + 16 m + g + 8 hh (g = lane / 4) and keys
// k0 + nb * 8 + 2t + e (t = lane % 4) of the tile: sc[m][nb][2 hh + e].
#pragma once

#include <cstdint>

#include "kernels/cuda/attention_device.cuh"
#include "kernels/cuda/tensor_core.cuh"

namespace hs::kernels::cuda::detail {

constexpr float kLn2 = 0.6931471805599453f;
constexpr int kStatsRows = 128;  // query rows per CTA of either statistics pass

// Pooled-map cells a CTA's rows can touch in one key tile (pool blocks are multiples of kTcCols, so a
// key tile lies in one column of cells and 128 rows in at most 3 rows of cells).
constexpr int kPoolCells = 4;
// One warp's slot of partials: column sums, band sums, pooled max/sum.
constexpr int kColBuf = 2 * kTcCols + 2 * kPoolCells;
constexpr int kTcWarps = kTcThreads / 32;  // warps of the mma.sync pass

// The head masks alone (causality and the sliding window are checked inline by the callers); out of
// line, reading head h's mask itself, because only masked heads need it.
static __device__ __noinline__ bool headMaskAllows(const AttentionParams& p, int h, int64_t qpos, int64_t key) {
  return visible(p, p.masks[h], h, qpos, key);
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

// Adds a key tile's partials to the global statistics: buf holds one kColBuf slot per warp of the CTA
// (kTcCols column sums, kTcCols band sums, then the max and sum of kPoolCells pooled cells from cell
// row cellRow0), each written by its warp alone, so that no two warps contend for a shared-memory
// atomic (a float atomicAdd there is a compare-and-swap loop: about 8% of the pass's time with four
// warps on one address). Threads tid < 2 kTcCols sum one column value over the slots, threads tid <
// kPoolCells one pooled cell (and clear it: the cells accumulate, the columns are rewritten per tile).
template <int kWarps>
__device__ __forceinline__ void flushPartials(const AttentionParams& p, const StatsParams& s, int h, int64_t k0,
                                              float* buf, int poolSlot, int64_t cellRow0, int tid) {
  if (tid < 2 * kTcCols) {
    const int64_t key = k0 + tid % kTcCols;
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += buf[w * kColBuf + tid];
    if (v != 0.0f && key < p.nk) atomicAdd((tid < kTcCols ? s.colSum : s.colSumBand) + h * p.nk + key, v);
  }
  if (poolSlot >= 0 && tid < kPoolCells) {
    float mx = 0.0f, sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      float* cell = buf + w * kColBuf + 2 * kTcCols + 2 * tid;
      mx = fmaxf(mx, cell[0]), sum += cell[1];
      cell[0] = cell[1] = 0.0f;
    }
    const int64_t row = cellRow0 + tid, col = static_cast<int>(k0) / static_cast<int>(s.poolBlock);  // < 2^31
    if (sum > 0.0f && row < s.poolRows && col < s.poolCols) {
      const int64_t idx = (static_cast<int64_t>(poolSlot) * s.poolRows + row) * s.poolCols + col;
      atomicMax(reinterpret_cast<int*>(s.poolMax) + idx, __float_as_int(mx));  // p >= 0: int order
      atomicAdd(s.poolSum + idx, sum);
    }
  }
}

constexpr float kPoolFixed = 1048576.0f;  // 2^20: poolWarp's fixed-point sum

// A warp's share of a pooled cell in this key tile, when all its rows lie in cell row `cell`: this
// lane's p maximum and sum there, reduced over the warp and added to the warp's slot by lane 0. All
// lanes call it.
__device__ __forceinline__ void poolWarp(float* buf, int64_t cell, float pmax, float psum) {
  // p >= 0, so its bits order as ints: one warp-wide integer max (redux) instead of five shuffles
  pmax = __int_as_float(__reduce_max_sync(0xffffffffu, __float_as_int(pmax)));
  // The sum as one integer redux too, in fixed point (kPoolFixed: a lane's share is at most its rows'
  // mass, 4, and the warp's at most 32, so it fits; 1.5e-5 absolute at worst), instead of five dependent
  // shuffle-add steps per tile, which Nsight Compute showed waiting on each other (about 3% of the pass's
  // stall samples; session 7).
  psum = static_cast<float>(__reduce_add_sync(0xffffffffu, __float2uint_rn(psum * kPoolFixed))) / kPoolFixed;
  if (threadIdx.x % 32 != 0 || !(psum > 0.0f)) return;
  float* c = buf + 2 * kTcCols + 2 * cell;  // this warp's own slot: no other warp writes it
  c[0] = fmaxf(c[0], pmax), c[1] += psum;
}

// The same for one row (its 4 lanes), for warps whose rows straddle two cell rows (a call whose
// queryStart is not a multiple of the warp's rows): the warp's row groups may share a cell, hence the
// atomics (within the warp's slot). All lanes call it.
__device__ __forceinline__ void poolRow(float* buf, int64_t cell, float pmax, float psum) {
  pmax = groupMax<4>(pmax), psum = groupSum<4>(psum);
  if (threadIdx.x % 4 != 0 || !(psum > 0.0f)) return;
  atomicMax(reinterpret_cast<int*>(buf + 2 * kTcCols + 2 * cell), __float_as_int(pmax));
  atomicAdd(buf + 2 * kTcCols + 2 * cell + 1, psum);
}

// What a CTA of a statistics pass fixes before its first key tile.
struct StatsCta {
  int h = 0, kvh = 0;
  HeadMaskDev hm{};
  bool masked = false;
  int rows = 0;               // rows of this CTA that exist
  int64_t rowBase = 0;        // its first row (index into the call's queries)
  int64_t qlo = 0, qhi = 0;   // their positions
  const float* biasRow = nullptr;
  float c2 = 0.0f, cap = 0.0f;  // scale * log2(e); the WAAD cap
  int window = 0, streamWindow = 0, bandLo = 0, bandHi = 0;
  int poolSlot = -1;          // pooled-map slot of the head, -1: none
  int64_t cellRow0 = 0;       // first pooled-cell row of the CTA
  bool warpOneCell = false;   // this warp's rows lie in one pooled-cell row ...
  int warpCell = 0;           // ... this one, relative to cellRow0
};

// The CTA of blockIdx (heaviest row tile first, head by grid row); warpRows: rows per warp.
__device__ __forceinline__ StatsCta statsCta(const AttentionParams& p, const StatsParams& s, int warpRow,
                                             int warpRows) {
  StatsCta c;
  c.rowBase = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kStatsRows;
  c.h = gridHead(p);
  c.kvh = c.h / (p.heads / p.kvHeads);
  c.hm = p.masks ? p.masks[c.h] : HeadMaskDev{};
  c.masked = hasMask(c.hm);
  c.rows = static_cast<int>(min(static_cast<int64_t>(kStatsRows), p.nq - c.rowBase));
  c.qlo = p.queryStart + c.rowBase, c.qhi = c.qlo + c.rows - 1;
  c.biasRow = p.bias ? p.bias + static_cast<int64_t>(c.h) * p.nk : nullptr;
  c.c2 = p.scale * kLog2e;
  c.cap = static_cast<float>(s.distanceCap);
  c.window = static_cast<int>(min(p.slidingWindow, int64_t{INT32_MAX}));
  c.streamWindow = static_cast<int>(min(s.streamWindow, int64_t{INT32_MAX}));
  c.bandLo = static_cast<int>(min(s.bandLo, int64_t{INT32_MAX}));
  c.bandHi = static_cast<int>(min(s.bandHi, int64_t{INT32_MAX}));
  // Pooled maps (pool blocks that are multiples of kTcCols; the bridge sends others to the CUDA cores).
  c.poolSlot = s.poolBlock > 0 ? s.poolIndex[c.h] : -1;
  if (c.poolSlot >= 0) {
    c.cellRow0 = c.qlo / s.poolBlock;
    const int64_t warpQ = c.qlo + warpRow;
    c.warpOneCell = warpQ / s.poolBlock == (warpQ + warpRows - 1) / s.poolBlock;
    c.warpCell = static_cast<int>(warpQ / s.poolBlock - c.cellRow0);
  }
  return c;
}

// Running statistics of this thread's rows. Per row: mass = sum p, entX = sum p * x (x the log2-domain
// logit; entropy = ln2 (lse mass - entX)), dist = sum p * lag, waad = sum p * min(lag, cap), stream =
// the mass on sinks + window, best / top = the largest x and its first key. lse is +inf where a row has
// no key or does not exist, so that p = exp2(x - lse) is 0 there.
template <int kM>
struct RowState {
  float lse[kM][2];
  bool any[kM][2];
  float mass[kM][2], entX[kM][2], dist[kM][2], waad[kM][2], stream[kM][2], best[kM][2];
  int top[kM][2];

  __device__ __forceinline__ void start(const AttentionParams& p, const StatsCta& c, int warpRow, int lane) {
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = warpRow + 16 * m + lane / 4 + 8 * hh;
        const float v = r < c.rows ? p.rowLse2[static_cast<int64_t>(c.h) * p.nq + c.rowBase + r] : -INFINITY;
        any[m][hh] = v != -INFINITY;
        lse[m][hh] = any[m][hh] ? v : INFINITY;
        mass[m][hh] = entX[m][hh] = dist[m][hh] = waad[m][hh] = stream[m][hh] = 0.0f;
        best[m][hh] = -INFINITY;
        top[m][hh] = 0;
      }
  }

  // Reduces over the 4 lanes of each row and writes the row statistics. All lanes call it.
  __device__ __forceinline__ void finish(const AttentionParams& p, const StatsParams& s, const StatsCta& c,
                                         int warpRow, int lane) {
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const float e = groupSum<4>(fmaf(lse[m][hh], mass[m][hh], -entX[m][hh])), d = groupSum<4>(dist[m][hh]);
        const float w = groupSum<4>(waad[m][hh]), st = groupSum<4>(stream[m][hh]);
        const float bestAll = groupMax<4>(best[m][hh]);
        const int pos = groupMin<4>(best[m][hh] == bestAll ? top[m][hh] : INT32_MAX);  // first key at the max
        const int r = warpRow + 16 * m + lane / 4 + 8 * hh;
        if (lane % 4 != 0 || r >= c.rows) continue;
        const int64_t idx = static_cast<int64_t>(c.h) * p.nq + c.rowBase + r;
        const bool has = any[m][hh];
        s.entropy[idx] = has ? kLn2 * e : 0.0f;
        s.meanDistance[idx] = d;
        s.waad[idx] = w;
        s.streamMass[idx] = st;
        s.top1Prob[idx] = has ? exp2f(bestAll - lse[m][hh]) : 0.0f;
        s.top1Pos[idx] = has ? pos : 0;
      }
  }
};

// Every statistic of one 64-key tile of scores sc (raw Q Kᵀ, turned into probabilities here): the row
// state, and this warp's column / band / pooled partials in `col` (the warp's kColBuf slot in shared
// memory: columns and bands written, pooled cells added; flushed by flushPartials after the next
// barrier). All lanes call it.
template <int kM>
__device__ __forceinline__ void statsTile(const AttentionParams& p, const StatsParams& s, const StatsCta& c,
                                          RowState<kM>& st, float (&sc)[kM][8][4], int64_t k0, int warpRow,
                                          int lane, float* col) {
  const int g = lane / 4, t = lane % 4;
  const bool pool = c.poolSlot >= 0;
  const bool full = !c.masked && k0 + kTcCols - 1 <= c.qlo && (p.slidingWindow == 0 || k0 > c.qhi - p.slidingWindow);
  // Per element, with cc = nb * 8 + e: key = k0 + 2t + cc, lag = qpos - key = relBase - cc.
  const int keyLimit = static_cast<int>(min(p.nk - k0, static_cast<int64_t>(kTcCols))) - 2 * t;
  const bool nearCap = c.qlo - (k0 + kTcCols - 1) < s.distanceCap;
  const bool nearStream = k0 < s.streamSink || k0 + kTcCols - 1 > c.qlo - s.streamWindow;
  const int sinkLimit = static_cast<int>(min(max(s.streamSink - k0, int64_t{-1}), int64_t{kTcCols})) - 2 * t;
  const int64_t minLag = c.qlo - (k0 + kTcCols - 1), maxLag = c.qhi - k0;
  const bool inBand = maxLag >= s.bandLo && minLag <= s.bandHi;
  float poolMax = 0.0f, poolSum = 0.0f;
  auto addPool = [&](int r, float pmax, float psum) {
    if (c.warpOneCell)
      poolMax = fmaxf(poolMax, pmax), poolSum += psum;
    else
      poolRow(col, static_cast<int>(c.qlo + r) / static_cast<int>(s.poolBlock) - c.cellRow0, pmax, psum);
  };
  if (full && !c.biasRow && !nearCap && !nearStream) {
    // The common tile, every key visible and far from the diagonal and the sinks: per element only
    // the maximum, p, and the sums p, p*s and p*cc; distances and entropy follow per row.
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        float mx = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < 8; ++nb) mx = fmaxf(mx, fmaxf(sc[m][nb][2 * hh], sc[m][nb][2 * hh + 1]));
        if (mx * c.c2 > st.best[m][hh]) {  // this lane's first key at the new maximum
          int first = kTcCols;
#pragma unroll
          for (int nb = 7; nb >= 0; --nb)
#pragma unroll
            for (int e = 1; e >= 0; --e)
              if (sc[m][nb][2 * hh + e] == mx) first = nb * 8 + e;
          st.best[m][hh] = mx * c.c2, st.top[m][hh] = static_cast<int>(k0) + 2 * t + first;
        }
        const float nl = -st.lse[m][hh];
        float rs = 0.0f, ps = 0.0f, pc = 0.0f;
#pragma unroll
        for (int nb = 0; nb < 8; ++nb)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float sv = sc[m][nb][2 * hh + e];
            const float pr = fastExp2(fmaf(sv, c.c2, nl));
            sc[m][nb][2 * hh + e] = pr;
            rs += pr;
            ps = fmaf(pr, sv, ps);
            pc = fmaf(pr, static_cast<float>(nb * 8 + e), pc);
          }
        const int r = warpRow + 16 * m + g + 8 * hh;
        if (pool) addPool(r, fastExp2(fmaf(mx, c.c2, nl)), rs);
        const float lag0 = static_cast<float>(static_cast<int>(c.qlo - k0) + r - 2 * t);
        st.mass[m][hh] += rs;
        st.entX[m][hh] = fmaf(ps, c.c2, st.entX[m][hh]);
        st.dist[m][hh] += fmaf(lag0, rs, -pc);
        st.waad[m][hh] = fmaf(rs, c.cap, st.waad[m][hh]);
      }
  } else {
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = warpRow + 16 * m + g + 8 * hh;
        const int relBase = static_cast<int>(c.qlo - k0) + r - 2 * t;
        const bool rowOk = r < c.rows;
        const float lag0 = static_cast<float>(relBase);  // exact below 2^24
        float rowSum = 0.0f, rowMax = 0.0f;
#pragma unroll
        for (int nb = 0; nb < 8; ++nb)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int cc = nb * 8 + e, lag = relBase - cc;
            float x = sc[m][nb][2 * hh + e] * c.c2;
            bool ok = full;
            if (!ok) {
              ok = rowOk && lag >= 0 && cc < keyLimit && (c.window == 0 || lag < c.window);
              if (ok && c.masked) ok = headMaskAllows(p, c.h, c.qlo + r, k0 + 2 * t + cc);
            }
            if (ok && c.biasRow) x = fmaf(c.biasRow[k0 + 2 * t + cc], kLog2e, x);
            if (ok && x > st.best[m][hh]) st.best[m][hh] = x, st.top[m][hh] = static_cast<int>(k0) + 2 * t + cc;
            const float pr = ok ? fastExp2(x - st.lse[m][hh]) : 0.0f;  // lse = +inf: 0
            sc[m][nb][2 * hh + e] = pr;
            rowSum += pr;
            if (pool) rowMax = fmaxf(rowMax, pr);
            st.entX[m][hh] = fmaf(pr, x, st.entX[m][hh]);
            const float lagF = lag0 - static_cast<float>(cc);
            st.dist[m][hh] = fmaf(pr, lagF, st.dist[m][hh]);
            if (nearCap) st.waad[m][hh] = fmaf(pr, fminf(lagF, c.cap), st.waad[m][hh]);
            if (nearStream && (cc < sinkLimit || lag < c.streamWindow)) st.stream[m][hh] += pr;
          }
        if (pool) addPool(r, rowMax, rowSum);
        st.mass[m][hh] += rowSum;
        if (!nearCap) st.waad[m][hh] = fmaf(rowSum, c.cap, st.waad[m][hh]);
      }
  }

  if (c.warpOneCell) poolWarp(col, c.warpCell, poolMax, poolSum);

  // Column partials of this tile: this thread's rows, then the warp's (reduce-scatter) into its slot;
  // flushPartials adds the warps' slots. The band sums (zero away from the diagonal) first, so that
  // the probabilities die with the column sums.
  float v[16];
  if (inBand) {
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float b = 0.0f;
#pragma unroll
        for (int m = 0; m < kM; ++m)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            const int lag = static_cast<int>(c.qlo - k0) + warpRow + 16 * m + g + 8 * hh - 2 * t - (nb * 8 + e);
            if (lag >= c.bandLo && lag <= c.bandHi) b += sc[m][nb][2 * hh + e];
          }
        v[2 * nb + e] = b;
      }
    *reinterpret_cast<float2*>(col + kTcCols + g * 8 + 2 * t) = columnReduce(v, lane);
  } else {
    *reinterpret_cast<float2*>(col + kTcCols + g * 8 + 2 * t) = make_float2(0.0f, 0.0f);
  }
#pragma unroll
  for (int nb = 0; nb < 8; ++nb)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float sum = 0.0f;
#pragma unroll
      for (int m = 0; m < kM; ++m) sum += sc[m][nb][e] + sc[m][nb][2 + e];
      v[2 * nb + e] = sum;
    }
  *reinterpret_cast<float2*>(col + g * 8 + 2 * t) = columnReduce(v, lane);
}

}  // namespace hs::kernels::cuda::detail
