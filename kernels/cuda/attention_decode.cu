// Split-KV decode attention (flash-decoding) for one new token per sequence: the keys are cut into
// chunks spread over the whole GPU, each CTA handles the G query heads of one KV head on one chunk
// (K and V are read once per group, not once per query head), and a second kernel merges the chunks'
// partial outputs by their log-sum-exp. Without the split, a decode step at 32k-128k context keeps only
// KVH x (query tiles) CTAs busy, each walking the whole cache: latency-bound, not bandwidth-bound.
#include <algorithm>

#include "kernels/cuda/attention_device.cuh"

namespace hs::kernels::cuda {
namespace {

using namespace detail;

constexpr int kDecThreads = 128;  // keys per inner step in the score phase, dims in the output phase
constexpr int kDecKeys = kDecThreads;

__host__ __device__ __forceinline__ int64_t ceilDivDev(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Index of the n-th KV head (0-based) that is (streaming) or is not (!streaming) in streamMask.
__device__ __forceinline__ int nthHeadOfKind(uint64_t streamMask, int kvHeads, bool streaming, int n) {
  for (int j = 0; j < kvHeads; ++j)
    if ((((streamMask >> j) & 1u) != 0) == streaming && n-- == 0) return j;
  return kvHeads - 1;  // not reached for a launched work item
}

// Chunks of `chunk` keys holding KV head kvh's keys.
__device__ __forceinline__ int chunksOf(const DecodeParams& p, int kvh) {
  return static_cast<int>(ceilDivDev((p.streamMask >> kvh) & 1u ? p.nkStream : p.nk, p.chunk));
}

// One CTA per (KV head, chunk with keys). Per step of 128 keys: each thread scores one key for every head of
// the group (its K row against q in shared memory), each warp turns a head's scores into
// probabilities with the running maximum, then each thread accumulates one output dim over the
// step's keys (V rows read coalesced). Writes the chunk's unnormalised output, maximum and sum.
template <typename T, int D>
__global__ void __launch_bounds__(kDecThreads) decodeSplitKernel(const __grid_constant__ DecodeParams p) {
  __shared__ float sq[kMaxDecodeGroup][D];
  __shared__ float ss[kMaxDecodeGroup][kDecKeys];
  __shared__ float sm[kMaxDecodeGroup], sl[kMaxDecodeGroup], sa[kMaxDecodeGroup];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, G = p.heads / p.kvHeads;
  // Work item blockIdx.x -> (KV head, chunk): the full heads' chunks, then the streaming heads' (a
  // hybrid cache), so that only chunks with keys are launched and they spread evenly over the SMs.
  const int nStream = __popcll(p.streamMask), nFull = p.kvHeads - nStream;
  const int fullChunks = static_cast<int>(ceilDivDev(p.nk, p.chunk));
  const int streamChunks = static_cast<int>(ceilDivDev(p.nkStream, p.chunk));
  int item = blockIdx.x;
  const bool streaming = item >= nFull * fullChunks;
  if (streaming) item -= nFull * fullChunks;
  const int perHead = streaming ? streamChunks : fullChunks;
  const int src = item / perHead, split = item % perHead;  // src: index among the heads of its kind
  const int kvh = nthHeadOfKind(p.streamMask, p.kvHeads, streaming, src);
  const TensorView3& K = streaming ? p.ks : p.k;
  const TensorView3& V = streaming ? p.vs : p.v;
  const int64_t c0 = static_cast<int64_t>(split) * p.chunk, c1 = min(streaming ? p.nkStream : p.nk, c0 + p.chunk);
  const float c2 = p.scale * kLog2e;

  for (int i = tid; i < G * D; i += kDecThreads) {
    const int g = i / D, d = i % D;
    sq[g][d] = d < p.dim ? toFloat(rowPtr<T>(p.q, static_cast<int64_t>(kvh) * G + g, 0)[d]) * c2 : 0.0f;
  }
  if (tid < G) sm[tid] = -INFINITY, sl[tid] = 0.0f;
  float acc[kMaxDecodeGroup];
#pragma unroll
  for (int g = 0; g < kMaxDecodeGroup; ++g) acc[g] = 0.0f;
  __syncthreads();

  for (int64_t j0 = c0; j0 < c1; j0 += kDecKeys) {
    const int64_t j = j0 + tid;
    float s[kMaxDecodeGroup];
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g) s[g] = 0.0f;
    if (j < c1) {
      const T* kr = rowPtr<T>(K, src, j);
#pragma unroll 2
      for (int d0 = 0; d0 < D; d0 += 8) {
        float x[8];
        load8<T>(kr + d0, max(0, min(8, p.dim - d0)), p.vectorLoads, x);
#pragma unroll
        for (int g = 0; g < kMaxDecodeGroup; ++g)
          if (g < G)
#pragma unroll
            for (int i = 0; i < 8; ++i) s[g] = fmaf(sq[g][d0 + i], x[i], s[g]);
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g)
      if (g < G) ss[g][tid] = j < c1 ? s[g] : -INFINITY;
    __syncthreads();

    for (int g = warp; g < G; g += kDecThreads / 32) {
      float v[kDecKeys / 32], mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < kDecKeys / 32; ++i) v[i] = ss[g][lane + 32 * i], mx = fmaxf(mx, v[i]);
      mx = groupMax<32>(mx);
      const float mOld = sm[g], mNew = fmaxf(mOld, mx), mUse = mNew == -INFINITY ? 0.0f : mNew;
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < kDecKeys / 32; ++i) {
        const float pr = exp2f(v[i] - mUse);
        ss[g][lane + 32 * i] = pr;
        sum += pr;
      }
      sum = groupSum<32>(sum);
      __syncwarp();
      if (lane == 0) {
        const float a = exp2f(mOld - mUse);
        sa[g] = a, sl[g] = sl[g] * a + sum, sm[g] = mNew;
      }
    }
    __syncthreads();

    if (tid < D && tid < p.dim) {
#pragma unroll
      for (int g = 0; g < kMaxDecodeGroup; ++g)
        if (g < G) acc[g] *= sa[g];
      const int n = static_cast<int>(min(static_cast<int64_t>(kDecKeys), c1 - j0));
      for (int jj = 0; jj < n; ++jj) {
        const float vv = toFloat(rowPtr<T>(V, src, j0 + jj)[tid]);
#pragma unroll
        for (int g = 0; g < kMaxDecodeGroup; ++g)
          if (g < G) acc[g] = fmaf(ss[g][jj], vv, acc[g]);
      }
    }
    __syncthreads();  // ss and sa are rewritten by the next step
  }

  // Partial result of this chunk: work[((kvh * splits + split) * G + g) * (D + 2) + (d | D: max | D+1: sum)];
  // the merge reads only the chunks launched for each head.
  float* w = p.work + (static_cast<int64_t>(kvh) * p.splits + split) * G * (D + 2);
  if (tid < D) {
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g)
      if (g < G) w[g * (D + 2) + tid] = acc[g];
  }
  if (tid < G) w[tid * (D + 2) + D] = sm[tid], w[tid * (D + 2) + D + 1] = sl[tid];
}

// One CTA per query head: merges the chunks, out[h, 0, d] = sum_s 2^(m_s - M) O_s[d] / sum_s 2^(m_s - M) l_s.
template <typename T, int D>
__global__ void __launch_bounds__(D) decodeMergeKernel(const __grid_constant__ DecodeParams p) {
  const int h = blockIdx.x, G = p.heads / p.kvHeads, kvh = h / G, g = h % G, d = threadIdx.x;
  const float* base = p.work + static_cast<int64_t>(kvh) * p.splits * G * (D + 2) + g * (D + 2);
  const int64_t stride = static_cast<int64_t>(G) * (D + 2);
  const int chunks = chunksOf(p, kvh);  // the chunks launched for this KV head
  float M = -INFINITY;
  for (int s = 0; s < chunks; ++s) M = fmaxf(M, base[s * stride + D]);
  float num = 0.0f, den = 0.0f;
  if (M != -INFINITY) {
    for (int s = 0; s < chunks; ++s) {
      const float f = exp2f(base[s * stride + D] - M);
      den = fmaf(f, base[s * stride + D + 1], den);
      num = fmaf(f, base[s * stride + d], num);
    }
  }
  if (p.rowLse2 && d == 0) p.rowLse2[h] = den > 0.0f ? M + log2f(den) : -INFINITY;
  if (d >= p.dim) return;
  const float v = den > 0.0f ? num / den : 0.0f;
  if (p.outType == ElemType::F32)
    static_cast<float*>(p.out)[static_cast<int64_t>(h) * p.dim + d] = v;
  else if constexpr (sizeof(T) == 2)
    static_cast<T*>(p.out)[static_cast<int64_t>(h) * p.dim + d] = T(v);
}

// Statistics of one decode step: one CTA per (KV head, chunk), as decodeSplitKernel. Per step of 128
// keys each thread scores one key for every head of the group, turns the scores into probabilities
// with the decode's log-sum-exp, stores them as that key's column sum (and band sum: the query is the
// only row) and adds them to its row partials; each warp adds its 32 keys to the pooled cells. At the
// end the CTA reduces the row partials and writes them for decodeStatsMergeKernel.
template <typename T, int D>
__global__ void __launch_bounds__(kDecThreads) decodeStatsKernel(const __grid_constant__ DecodeParams p,
                                                                 const __grid_constant__ StatsParams s, float* work) {
  constexpr int kWarps = kDecThreads / 32;
  __shared__ float sq[kMaxDecodeGroup][D];
  __shared__ float red[kWarps][kMaxDecodeGroup][kDecodeStatsFields];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, G = p.heads / p.kvHeads;
  const int chunks = static_cast<int>(ceilDivDev(p.nk, p.chunk));
  const int kvh = blockIdx.x / chunks, split = blockIdx.x % chunks;
  const int64_t c0 = static_cast<int64_t>(split) * p.chunk, c1 = min(p.nk, c0 + p.chunk), qpos = p.nk - 1;
  const float c2 = p.scale * kLog2e, cap = static_cast<float>(s.distanceCap);

  for (int i = tid; i < G * D; i += kDecThreads) {
    const int g = i / D, d = i % D;
    sq[g][d] = d < p.dim ? toFloat(rowPtr<T>(p.q, static_cast<int64_t>(kvh) * G + g, 0)[d]) * c2 : 0.0f;
  }
  float lse[kMaxDecodeGroup], mass[kMaxDecodeGroup], entX[kMaxDecodeGroup], dist[kMaxDecodeGroup];
  float waad[kMaxDecodeGroup], stream[kMaxDecodeGroup], best[kMaxDecodeGroup];
  int top[kMaxDecodeGroup], pool[kMaxDecodeGroup];
#pragma unroll
  for (int g = 0; g < kMaxDecodeGroup; ++g) {
    const int h = kvh * G + g;
    const float v = g < G ? p.rowLse2[h] : -INFINITY;
    lse[g] = v == -INFINITY ? INFINITY : v;  // a row without keys: p = 0
    mass[g] = entX[g] = dist[g] = waad[g] = stream[g] = 0.0f;
    best[g] = -INFINITY, top[g] = 0;
    pool[g] = g < G && s.poolBlock > 0 ? s.poolIndex[h] : -1;
  }
  const int64_t cellRow = s.poolBlock > 0 ? qpos / s.poolBlock : 0;
  __syncthreads();

  for (int64_t j0 = c0; j0 < c1; j0 += kDecKeys) {  // every thread runs every step: the pooled cells shuffle
    const int64_t j = j0 + tid;
    const bool valid = j < c1;
    float x[kMaxDecodeGroup];
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g) x[g] = 0.0f;
    if (valid) {
      const T* kr = rowPtr<T>(p.k, kvh, j);
#pragma unroll 2
      for (int d0 = 0; d0 < D; d0 += 8) {
        float kv[8];
        load8<T>(kr + d0, max(0, min(8, p.dim - d0)), p.vectorLoads, kv);
#pragma unroll
        for (int g = 0; g < kMaxDecodeGroup; ++g)
          if (g < G)
#pragma unroll
            for (int i = 0; i < 8; ++i) x[g] = fmaf(sq[g][d0 + i], kv[i], x[g]);
      }
    }
    const int64_t lag = qpos - j;
    const float lagF = static_cast<float>(lag);
    const bool inStream = j < s.streamSink || lag < s.streamWindow;
    const bool inBand = lag >= s.bandLo && lag <= s.bandHi;
    // The warp's keys lie in one pooled cell column unless a cell boundary falls inside them.
    const int64_t wFirst = j0 + warp * 32, wLast = min(c1, wFirst + 32) - 1;
    const bool oneCell = s.poolBlock > 0 && wFirst <= wLast && wFirst / s.poolBlock == wLast / s.poolBlock;
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g) {
      if (g >= G) break;
      const int64_t h = kvh * G + g;
      const float pr = valid ? exp2f(x[g] - lse[g]) : 0.0f;
      if (valid) {
        mass[g] += pr;
        entX[g] = fmaf(pr, x[g], entX[g]);
        dist[g] = fmaf(pr, lagF, dist[g]);
        waad[g] = fmaf(pr, fminf(lagF, cap), waad[g]);
        if (inStream) stream[g] += pr;
        if (x[g] > best[g]) best[g] = x[g], top[g] = static_cast<int>(j);  // keys ascend: the first at the max
        s.colSum[h * p.nk + j] = pr;
        if (inBand) s.colSumBand[h * p.nk + j] = pr;
      }
      if (pool[g] >= 0 && wFirst < c1) {
        const int64_t base = (static_cast<int64_t>(pool[g]) * s.poolRows + cellRow) * s.poolCols;
        if (oneCell) {  // p >= 0: its bits order as ints
          const float mx = __int_as_float(__reduce_max_sync(0xffffffffu, __float_as_int(pr)));
          const float sum = groupSum<32>(pr);
          if (lane == 0 && sum > 0.0f) {
            atomicMax(reinterpret_cast<int*>(s.poolMax) + base + wFirst / s.poolBlock, __float_as_int(mx));
            atomicAdd(s.poolSum + base + wFirst / s.poolBlock, sum);
          }
        } else if (valid && pr > 0.0f) {
          atomicMax(reinterpret_cast<int*>(s.poolMax) + base + j / s.poolBlock, __float_as_int(pr));
          atomicAdd(s.poolSum + base + j / s.poolBlock, pr);
        }
      }
    }
  }

  // Row partials over the CTA: the warps' sums (and maximum, first key at it) in shared memory, then
  // thread g < G combines the warps and writes work[((kvh * splits + split) * G + g) * fields + f].
#pragma unroll
  for (int g = 0; g < kMaxDecodeGroup; ++g) {
    if (g >= G) break;
    const float m = groupSum<32>(mass[g]), e = groupSum<32>(entX[g]), d = groupSum<32>(dist[g]);
    const float w = groupSum<32>(waad[g]), st = groupSum<32>(stream[g]), b = groupMax<32>(best[g]);
    const int t = groupMin<32>(best[g] == b ? top[g] : INT32_MAX);
    if (lane == 0) {
      float* r = red[warp][g];
      r[0] = m, r[1] = e, r[2] = d, r[3] = w, r[4] = st, r[5] = b, r[6] = __int_as_float(t), r[7] = 0.0f;
    }
  }
  __syncthreads();
  if (tid < G) {
    float sum[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f}, b = -INFINITY;
    int t = INT32_MAX;
    for (int w = 0; w < kWarps; ++w) {
      const float* r = red[w][tid];
      for (int f = 0; f < 5; ++f) sum[f] += r[f];
      const int rt = __float_as_int(r[6]);
      if (r[5] > b || (r[5] == b && rt < t)) b = r[5], t = rt;
    }
    float* out = work + ((static_cast<int64_t>(kvh) * p.splits + split) * G + tid) * kDecodeStatsFields;
    for (int f = 0; f < 5; ++f) out[f] = sum[f];
    out[5] = b, out[6] = __int_as_float(t), out[7] = 0.0f;
  }
}

// One thread per query head: adds the chunks' row partials and writes the row statistics.
__global__ void __launch_bounds__(128) decodeStatsMergeKernel(const __grid_constant__ DecodeParams p,
                                                              const __grid_constant__ StatsParams s, const float* work) {
  const int h = blockIdx.x * blockDim.x + threadIdx.x;
  if (h >= p.heads) return;
  const int G = p.heads / p.kvHeads, kvh = h / G, g = h % G;
  const int chunks = static_cast<int>(ceilDivDev(p.nk, p.chunk));
  float sum[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f}, b = -INFINITY;
  int t = INT32_MAX;
  for (int c = 0; c < chunks; ++c) {
    const float* r = work + ((static_cast<int64_t>(kvh) * p.splits + c) * G + g) * kDecodeStatsFields;
    for (int f = 0; f < 5; ++f) sum[f] += r[f];
    const int rt = __float_as_int(r[6]);
    if (r[5] > b || (r[5] == b && rt < t)) b = r[5], t = rt;
  }
  const float lse = p.rowLse2[h];
  const bool has = lse != -INFINITY;
  constexpr float kLn2 = 0.6931471805599453f;
  s.entropy[h] = has ? kLn2 * fmaf(lse, sum[0], -sum[1]) : 0.0f;
  s.meanDistance[h] = sum[2];
  s.waad[h] = sum[3];
  s.streamMass[h] = sum[4];
  s.top1Prob[h] = has ? exp2f(b - lse) : 0.0f;
  s.top1Pos[h] = has ? t : 0;
}

}  // namespace

void launchDecodeStats(const DecodeParams& p, const StatsParams& s, float* work, cudaStream_t stream) {
  if (p.heads == 0 || p.nk == 0) return;
  const bool ok = p.kvHeads > 0 && p.heads % p.kvHeads == 0 && p.heads / p.kvHeads <= kMaxDecodeGroup &&
                  p.dim >= 1 && p.dim <= kMaxHeadDim && p.splits >= 1 && p.chunk >= 1 &&
                  static_cast<int64_t>(p.splits) * p.chunk >= p.nk && p.streamMask == 0 && p.rowLse2 &&
                  p.nk <= INT32_MAX;
  if (!ok)
    throw Error(ErrorKind::InvalidArgument,
                "attention_decode_stats: unsupported call (heads " + std::to_string(p.heads) + "/" +
                    std::to_string(p.kvHeads) + ", head_dim " + std::to_string(p.dim) + ", " +
                    std::to_string(p.splits) + " chunks of " + std::to_string(p.chunk) + " for " +
                    std::to_string(p.nk) + " keys" + (p.streamMask ? ", hybrid cache" : "") + ")",
                {}, "cuda");
  const int64_t items = p.kvHeads * ceilDivDev(p.nk, p.chunk);
  dispatchType(p.type, [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      decodeStatsKernel<T, D><<<static_cast<unsigned>(items), kDecThreads, 0, stream>>>(p, s, work);
      checkLaunch("attention_decode_stats");
    };
    if (p.dim <= 64)
      run(std::integral_constant<int, 64>{});
    else
      run(std::integral_constant<int, 128>{});
  });
  decodeStatsMergeKernel<<<static_cast<unsigned>(ceilDivDev(p.heads, 128)), 128, 0, stream>>>(p, s, work);
  checkLaunch("attention_decode_stats_merge");
}

void launchDecodeAttention(const DecodeParams& p, cudaStream_t stream) {
  if (p.heads == 0 || (p.nk == 0 && p.nkStream == 0)) return;
  const bool ok = p.kvHeads > 0 && p.heads % p.kvHeads == 0 && p.heads / p.kvHeads <= kMaxDecodeGroup &&
                  p.dim >= 1 && p.dim <= kMaxHeadDim && p.splits >= 1 && p.chunk >= 1 &&
                  static_cast<int64_t>(p.splits) * p.chunk >= std::max(p.nk, p.nkStream) && p.kvHeads <= 64 &&
                  (p.kvHeads == 64 || (p.streamMask >> p.kvHeads) == 0);
  if (!ok)
    throw Error(ErrorKind::InvalidArgument,
                "attention_decode: unsupported call (heads " + std::to_string(p.heads) + "/" +
                    std::to_string(p.kvHeads) + ", head_dim " + std::to_string(p.dim) + ", " +
                    std::to_string(p.splits) + " chunks of " + std::to_string(p.chunk) + " for " +
                    std::to_string(p.nk) + " keys)",
                {}, "cuda");
  const int64_t streaming = __builtin_popcountll(p.streamMask);
  const int64_t items = (p.kvHeads - streaming) * ceilDivDev(p.nk, p.chunk) + streaming * ceilDivDev(p.nkStream, p.chunk);
  dispatchType(p.type, [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      decodeSplitKernel<T, D><<<static_cast<unsigned>(items), kDecThreads, 0, stream>>>(p);
      checkLaunch("attention_decode");
      decodeMergeKernel<T, D><<<static_cast<unsigned>(p.heads), D, 0, stream>>>(p);
      checkLaunch("attention_decode_merge");
    };
    if (p.dim <= 64)
      run(std::integral_constant<int, 64>{});
    else
      run(std::integral_constant<int, 128>{});
  });
}

}  // namespace hs::kernels::cuda
