// Tensor-core attention (bf16/fp16, head_dim 64 or 128): the forward with the row statistics fused into
// its online softmax, and a key-major pass for the column statistics that reuses the forward's row
// log-sum-exp. Warp-level mma.sync m16n8k16 with fp32 accumulators, ldmatrix from XOR-swizzled shared
// memory, cp.async double buffering of the K/V (or Q) tiles. Same visibility rule, masks, skipped tiles
// and logit bias as the CUDA-core kernels (attention_device.cuh); ACT, the streaming mix and pooled maps
// stay on those kernels (the bridge decides, tensorCoreEligible()).
#include <cstdint>
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
// softmax in the log2 domain, O += P V. With kStats the row statistics ride along, rescaled with the
// running maximum like O: entropy from sum p*(s - m), distances from sum p*lag (WAAD's cap and the
// stream window only in the tiles near the diagonal or the sinks), top-1 from the running maximum.
template <typename T, int D, bool kStats>
__global__ void __launch_bounds__(kTcThreads, 2) tcForwardKernel(const __grid_constant__ AttentionParams p, const __grid_constant__ StatsParams s) {
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
  const float cap = static_cast<float>(s.distanceCap);
  const int window = static_cast<int>(min(p.slidingWindow, int64_t{INT32_MAX}));
  const int streamWindow = static_cast<int>(min(s.streamWindow, int64_t{INT32_MAX}));

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
  float ent[2] = {0, 0}, dist[2] = {0, 0}, waad[2] = {0, 0}, stream[2] = {0, 0};
  int64_t top[2] = {0, 0};
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

    float sc[8][4];
    scoreBlock<T, D>(sQ, warp * 16, kTile, lane, sc);

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
      const int r = warp * 16 + g + 8 * hh;
      const float mNew = fmaxf(m[hh], mx[hh]);
      if (kStats) {  // the row's maximum moved into this tile: its first key there (shuffles by all lanes)
        const bool moved = mx[hh] > m[hh];
        int best = kTcCols;
        if (moved) {
#pragma unroll
          for (int nb = 0; nb < 8; ++nb)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (sc[nb][2 * hh + e] == mx[hh]) best = min(best, nb * 8 + 2 * t + e);
        }
        best = groupMin<4>(best);
        if (moved) top[hh] = k0 + best;
      }
      const float mUse = mNew == -INFINITY ? 0.0f : mNew;
      const float alpha = exp2f(m[hh] - mUse);
      if (kStats) {
        ent[hh] = l[hh] > 0.0f ? alpha * (ent[hh] + l[hh] * (m[hh] - mNew)) : 0.0f;
        dist[hh] *= alpha, waad[hh] *= alpha, stream[hh] *= alpha;
      }
      l[hh] *= alpha;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) o[nd][2 * hh] *= alpha, o[nd][2 * hh + 1] *= alpha;
      m[hh] = mNew;

      const int relBase = static_cast<int>(qlo - k0) + r - 2 * t;
      const float lag0 = static_cast<float>(relBase);  // exact below 2^24
      const bool nearCap = qlo - (k0 + kTcCols - 1) < s.distanceCap;
      const bool nearStream = k0 < s.streamSink || k0 + kTcCols - 1 > qlo - s.streamWindow;
      const int sinkLimit = static_cast<int>(min(max(s.streamSink - k0, int64_t{-1}), int64_t{kTcCols})) - 2 * t;
      float rowSum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float x = fmaxf(sc[nb][2 * hh + e] - mUse, -1e30f);  // masked: -1e30, so p = 0 and p*x = 0
          const float pr = exp2f(x);
          sc[nb][2 * hh + e] = pr;
          rowSum += pr;
          if (kStats) {
            const int c = nb * 8 + e;
            const float lag = lag0 - static_cast<float>(c);
            ent[hh] = fmaf(pr, x, ent[hh]);
            dist[hh] = fmaf(pr, lag, dist[hh]);
            if (nearCap) waad[hh] = fmaf(pr, fminf(lag, cap), waad[hh]);
            if (nearStream && (c < sinkLimit || relBase - c < streamWindow)) stream[hh] += pr;
          }
        }
      l[hh] += rowSum;
      if (kStats && !nearCap) waad[hh] = fmaf(rowSum, cap, waad[hh]);
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
    float e = 0, d = 0, w = 0, st = 0;
    if (kStats) e = groupSum<4>(ent[hh]), d = groupSum<4>(dist[hh]), w = groupSum<4>(waad[hh]), st = groupSum<4>(stream[hh]);
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
    if (kStats) {
      const bool any = sum > 0.0f;
      s.entropy[idx] = any ? kLn2 * (log2f(sum) - e * inv) : 0.0f;
      s.meanDistance[idx] = d * inv;
      s.waad[idx] = w * inv;
      s.streamMass[idx] = st * inv;
      s.top1Prob[idx] = inv;
      s.top1Pos[idx] = any ? top[hh] : 0;
    }
  }
}

template <typename T, int D>
constexpr size_t columnSmemBytes() {
  return sizeof(T) * (kTcRows * D + 2 * kTcCols * D) + sizeof(float) * 2 * kTcCols;  // K, Q x2, lse x2
}

// Stages the log2-sum-exp2 of query rows [r0, r0 + 64) for the column pass: +inf where a row has no
// key or does not exist, so that exp2(s - lse) is 0 there (and never inf - inf).
__device__ __forceinline__ void stageLse(const AttentionParams& p, int h, int64_t r0, float* dst) {
  if (threadIdx.x < kTcCols) {
    const int64_t row = r0 + threadIdx.x;
    const float v = row < p.nq ? p.rowLse2[static_cast<int64_t>(h) * p.nq + row] : -INFINITY;
    dst[threadIdx.x] = v == -INFINITY ? INFINITY : v;
  }
}

// Column statistics, key-major: one CTA per (64-key tile, head); each warp owns 16 keys (the A operand
// of S^T = K Q^T) and walks the query tiles that can see them, accumulating its keys' column sums in
// registers, so no atomics and no cross-warp reduction: one quad shuffle at the end. Probabilities use
// the forward's row log-sum-exp (p.rowLse2).
template <typename T, int D>
__global__ void __launch_bounds__(kTcThreads, 2) tcColumnKernel(const __grid_constant__ AttentionParams p, const __grid_constant__ StatsParams s) {
  extern __shared__ uint4 smemTc[];
  T* sK = reinterpret_cast<T*>(smemTc);
  T* sQ = sK + kTcRows * D;
  float* sL = reinterpret_cast<float*>(sQ + 2 * kTcCols * D);

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int64_t k0 = static_cast<int64_t>(blockIdx.x) * kTcRows;
  const int64_t k1 = min(k0 + kTcRows, p.nk);
  const int h = gridHead(p);
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const bool masked = hasMask(hm);
  const float* biasRow = p.bias ? p.bias + static_cast<int64_t>(h) * p.nk : nullptr;
  const float c2 = p.scale * kLog2e;
  const int window = static_cast<int>(min(p.slidingWindow, int64_t{INT32_MAX}));

  // Query rows of this call that can see a key of the tile: causality, then the sliding window.
  const int64_t rFirst = max(int64_t{0}, k0 - p.queryStart) / kTcCols * kTcCols;
  int64_t rEnd = p.nq;
  if (p.slidingWindow > 0) rEnd = min(rEnd, max(int64_t{0}, k1 - 1 + p.slidingWindow - p.queryStart));

  auto nextRows = [&](int64_t from) {
    for (int64_t r0 = from; r0 < rEnd; r0 += kTcCols) {
      const int64_t qlo = p.queryStart + r0, qhi = qlo + min(static_cast<int64_t>(kTcCols), p.nq - r0) - 1;
      if (!tileMasked(p, hm, h, qlo, qhi, k0, k1)) return r0;
    }
    return rEnd;
  };

  loadTile<T, D>(sK, p.k, kvh, k0, p.nk - k0);
  int64_t r0 = nextRows(rFirst);
  if (r0 < rEnd) {
    loadTile<T, D>(sQ, p.q, h, r0, p.nq - r0);
    stageLse(p, h, r0, sL);
  }
  cpAsyncCommit();

  float col[2] = {0, 0}, band[2] = {0, 0};
  int buf = 0;
  while (r0 < rEnd) {
    const int64_t rNext = nextRows(r0 + kTcCols);
    cpAsyncWaitAll();
    __syncthreads();
    if (rNext < rEnd) {
      loadTile<T, D>(sQ + (buf ^ 1) * kTcCols * D, p.q, h, rNext, p.nq - rNext);
      stageLse(p, h, rNext, sL + (buf ^ 1) * kTcCols);
    }
    cpAsyncCommit();
    const float* lse = sL + buf * kTcCols;

    float sc[8][4];
    scoreBlock<T, D>(sK, warp * 16, sQ + buf * kTcCols * D, lane, sc);

    const int64_t qlo = p.queryStart + r0;
    const int nRows = static_cast<int>(min(static_cast<int64_t>(kTcCols), p.nq - r0));
    const int64_t qhi = qlo + nRows - 1;
    const bool full = !masked && k0 + kTcRows - 1 <= qlo && (p.slidingWindow == 0 || k0 > qhi - p.slidingWindow);
    const int64_t minLag = qlo - (k0 + kTcRows - 1), maxLag = qhi - k0;
    const bool bandNone = maxLag < s.bandLo || minLag > s.bandHi;
    const bool bandAll = minLag >= s.bandLo && maxLag <= s.bandHi;
    const int rowLimit = nRows - 2 * t;  // query column c = nb * 8 + e exists when c < rowLimit
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t key = k0 + warp * 16 + g + 8 * hh;
      const bool keyOk = key < p.nk;
      const float kb = biasRow && keyOk ? biasRow[key] * kLog2e : 0.0f;
      const int relBase = static_cast<int>(qlo - key) + 2 * t;  // lag = qpos - key = relBase + c
      float cs = 0.0f, bs = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = nb * 8 + e, lag = relBase + c;
          bool ok = full;
          if (!ok) {
            ok = keyOk && c < rowLimit && lag >= 0 && (window == 0 || lag < window);
            if (ok && masked) ok = headMaskAllows(p, hm, h, key + lag, key);
          }
          // lse is +inf for rows without keys or past the call: p = 0 there
          const float pr = ok ? exp2f(fmaf(sc[nb][2 * hh + e], c2, kb) - lse[2 * t + c]) : 0.0f;
          cs += pr;
          if (!bandNone && (bandAll || (lag >= s.bandLo && lag <= s.bandHi))) bs += pr;
        }
      col[hh] += cs;
      band[hh] += bs;
    }
    buf ^= 1;
    r0 = rNext;
  }
  cpAsyncWaitAll();

#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const float cs = groupSum<4>(col[hh]), bs = groupSum<4>(band[hh]);
    const int64_t key = k0 + warp * 16 + g + 8 * hh;
    if (t != 0 || key >= p.nk) continue;
    const int64_t idx = static_cast<int64_t>(h) * p.nk + key;
    s.colSum[idx] = cs;
    s.colSumBand[idx] = bs;
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

void launchAttentionForwardTc(const AttentionParams& p, const StatsParams* rowStats, cudaStream_t stream) {
  if (p.nq == 0 || p.numHeads == 0) return;
  detail::checkShape(p, "attention_forward_tc");
  if (!tensorCoreEligible(p))
    throw Error(ErrorKind::Internal, "attention_forward_tc: call not eligible for the tensor-core kernels", {},
                "cuda");
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nq, kTcRows)), static_cast<unsigned>(p.numHeads));
  dispatchTc(p, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    constexpr size_t smem = forwardSmemBytes<T, D>();
    if (rowStats) {
      setSmem(tcForwardKernel<T, D, true>, smem, "attention_forward_tc");
      tcForwardKernel<T, D, true><<<grid, kTcThreads, smem, stream>>>(p, *rowStats);
    } else {
      setSmem(tcForwardKernel<T, D, false>, smem, "attention_forward_tc");
      tcForwardKernel<T, D, false><<<grid, kTcThreads, smem, stream>>>(p, StatsParams{});
    }
  });
  checkLaunch("attention_forward_tc");
}

void launchColumnStatsTc(const AttentionParams& p, const StatsParams& s, cudaStream_t stream) {
  if (p.nk == 0 || p.numHeads == 0) return;
  detail::checkShape(p, "attention_columns_tc");
  if (!tensorCoreEligible(p))
    throw Error(ErrorKind::Internal, "attention_columns_tc: call not eligible for the tensor-core kernels", {},
                "cuda");
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nk, kTcRows)), static_cast<unsigned>(p.numHeads));
  dispatchTc(p, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    constexpr size_t smem = columnSmemBytes<T, D>();
    setSmem(tcColumnKernel<T, D>, smem, "attention_columns_tc");
    tcColumnKernel<T, D><<<grid, kTcThreads, smem, stream>>>(p, s);
  });
  checkLaunch("attention_columns_tc");
}

}  // namespace hs::kernels::cuda
