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
#include "kernels/cuda/tc_stats.cuh"
#include "kernels/cuda/tensor_core.cuh"

namespace hs::kernels::cuda {
namespace {

using namespace detail;

static_assert(kTcCols == kTileK, "the forward's key tiles must match the KeySet tile summary");

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
            if (ok && masked) ok = headMaskAllows(p, h, qlo + r, k0 + 2 * t + c);
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

template <typename T, int D>
constexpr size_t statsSmemBytes() {
  // Q, K x2, 2 buffers of per-warp partials
  return sizeof(T) * (kStatsRows * D + 2 * kTcCols * D) + sizeof(float) * 2 * kTcWarps * kColBuf;
}

// Every statistic of the probabilities p = exp2(s - rowLse2) in one sweep: one CTA per (128-query tile,
// head), heaviest first; each warp owns 32 query rows (two m16 tiles sharing each K fragment) and walks
// the key tiles they can see (statsTile: tc_stats.cuh). Row statistics stay in registers; column sums
// are reduced over the warp's rows by shuffles, over the CTA's warps from per-warp shared slots, and added to
// s.colSum / s.colSumBand (zeroed by the caller) once per key tile; so are the pooled maps' max and sum
// when s.poolBlock is a multiple of kTcCols (s.poolMax / s.poolSum zeroed). The logits, visibility and
// bias are the forward's, so a forward of ours or LibTorch's fused one (same logits, its log-sum-exp)
// defines the probabilities.
template <typename T, int D>
__global__ void __launch_bounds__(kTcThreads, 2) tcStatsKernel(const __grid_constant__ AttentionParams p,
                                                               const __grid_constant__ StatsParams s) {
  static_assert(kStatsRows == 2 * kTcRows && kTcThreads == 128, "4 warps of 32 rows");
  extern __shared__ uint4 smemTc[];
  T* sQ = reinterpret_cast<T*>(smemTc);
  T* sK = sQ + kStatsRows * D;
  float* sCol = reinterpret_cast<float*>(sK + 2 * kTcCols * D);  // [2 buffers][kTcWarps][kColBuf]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, warpRow = warp * 32;
  const StatsCta c = statsCta(p, s, warpRow, 32);
  for (int i = tid; i < 2 * kTcWarps * kColBuf; i += kTcThreads) sCol[i] = 0.0f;
  RowState<2> st;
  st.start(p, c, warpRow, lane);

  int64_t kBegin, kEnd;
  keyRange(p, c.qlo, c.qhi, kBegin, kEnd);
  loadTile<T, D>(sQ, p.q, c.h, c.rowBase, c.rows);
  loadTile<T, D>(sQ + kTcRows * D, p.q, c.h, c.rowBase + kTcRows, c.rows - kTcRows);
  int64_t k0 = nextKeyTile(p, c.hm, c.h, c.qlo, c.qhi, kBegin, kEnd);
  if (k0 < kEnd) loadTile<T, D>(sK, p.k, c.kvh, k0, p.nk - k0);
  cpAsyncCommit();

  auto flush = [&](int64_t tileK0, int b) {  // buffer b's per-warp partials of key tile tileK0
    flushPartials<kTcWarps>(p, s, c.h, tileK0, sCol + b * kTcWarps * kColBuf, c.poolSlot, c.cellRow0, tid);
  };
  int buf = 0;
  int64_t prevK0 = -1;
  while (k0 < kEnd) {
    const int64_t kNext = nextKeyTile(p, c.hm, c.h, c.qlo, c.qhi, k0 + kTcCols, kEnd);
    cpAsyncWaitAll();
    __syncthreads();  // tile k0 is in buffer `buf`; every warp is done with the other buffers
    if (prevK0 >= 0) flush(prevK0, buf ^ 1);
    if (kNext < kEnd) loadTile<T, D>(sK + (buf ^ 1) * kTcCols * D, p.k, c.kvh, kNext, p.nk - kNext);
    cpAsyncCommit();

    float sc[2][8][4];
    scoreBlock<T, D, 2>(sQ, warpRow, sK + buf * kTcCols * D, lane, sc);
    statsTile<2>(p, s, c, st, sc, k0, warpRow, lane, sCol + (buf * kTcWarps + warp) * kColBuf);
    prevK0 = k0;
    buf ^= 1;
    k0 = kNext;
  }
  cpAsyncWaitAll();
  __syncthreads();
  if (prevK0 >= 0) flush(prevK0, buf ^ 1);
  st.finish(p, s, c, warpRow, lane);
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

void launchStatsTc(const AttentionParams& p, const StatsParams& s, cudaStream_t stream, bool hopper) {
  if (!tcCallToRun(p, "attention_stats_tc")) return;
  if (hopper && wgmmaStatsAvailable()) {
    launchStatsWgmma(p, s, stream);
    return;
  }
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
