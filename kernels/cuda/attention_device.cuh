// Device-side pieces shared by the attention kernels: element loads, the visibility rule (causal,
// sliding window, head masks), tile skipping, ACT row factors and launch error checks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "kernels/core/error.h"
#include "kernels/cuda/attention_kernels.h"

namespace hs::kernels::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;
// Row stride (floats) of transposed [dim][tile] shared arrays: a multiple of 4 for float4 reads.
constexpr int kLdT = kTileQ + 4;
// Pooled cells one 64x64 tile can touch for pool blocks >= 4 (17 x 17), aggregated in shared memory.
constexpr int kMaxPoolCells = 18 * 18;

// Butterfly reductions over aligned groups of `Width` consecutive lanes (4: a quad of an mma
// fragment row, 16: half a warp, 32: the whole warp); every lane of a group gets its group's result.
// Every lane of the warp must call them (full-mask shuffles).
template <int Width>
__device__ __forceinline__ float groupMax(float x) {
#pragma unroll
  for (int o = Width / 2; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
template <int Width>
__device__ __forceinline__ float groupSum(float x) {
#pragma unroll
  for (int o = Width / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
template <int Width>
__device__ __forceinline__ int groupMin(int x) {
#pragma unroll
  for (int o = Width / 2; o > 0; o >>= 1) x = min(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Throws hs::Error(Device) naming the kernel when the last launch failed.
inline void checkLaunch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error(ErrorKind::Device, std::string(kernel) + ": " + cudaGetErrorString(e), {}, "cuda");
}

inline void checkCuda(cudaError_t e, const char* kernel, const char* what) {
  if (e != cudaSuccess)
    throw Error(ErrorKind::Device, std::string(kernel) + ": " + what + ": " + cudaGetErrorString(e), {},
                "cuda");
}

inline int64_t ceilDiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// The raw API's own guard (the bridge validates first): shapes the kernels cannot index safely.
inline void checkShape(const AttentionParams& p, const char* kernel) {
  const bool ok = p.dim >= 1 && p.dim <= kMaxHeadDim && p.kvHeads > 0 && p.heads % p.kvHeads == 0 &&
                  p.nq >= 0 && p.queryStart >= 0 && p.queryStart + p.nq <= p.nk;
  if (!ok)
    throw Error(ErrorKind::InvalidArgument,
                std::string(kernel) + ": unsupported shape (head_dim " + std::to_string(p.dim) + ", heads " +
                    std::to_string(p.heads) + "/" + std::to_string(p.kvHeads) + ", queries " +
                    std::to_string(p.queryStart) + "+" + std::to_string(p.nq) + " of " +
                    std::to_string(p.nk) + " keys)",
                {}, "cuda");
}

__device__ __forceinline__ float toFloat(float x) {
  return x;
}
__device__ __forceinline__ float toFloat(__half x) {
  return __half2float(x);
}
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

// A 16-bit float from its bits.
template <typename T>
__device__ __forceinline__ float fromBits(unsigned short bits);
template <>
__device__ __forceinline__ float fromBits<__half>(unsigned short bits) {
  __half_raw r;
  r.x = bits;
  return __half2float(__half(r));
}
template <>
__device__ __forceinline__ float fromBits<__nv_bfloat16>(unsigned short bits) {
  __nv_bfloat16_raw r;
  r.x = bits;
  return __bfloat162float(__nv_bfloat16(r));
}

// Loads up to 8 consecutive elements (n valid, the rest 0) as floats; 16-byte loads when vec.
template <typename T>
__device__ __forceinline__ void load8(const T* src, int n, bool vec, float out[8]) {
  if (vec && n == 8) {
    if constexpr (sizeof(T) == 4) {
      const float4 a = reinterpret_cast<const float4*>(src)[0], b = reinterpret_cast<const float4*>(src)[1];
      out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z,
      out[7] = b.w;
    } else {  // 8 x 16-bit: unpack from the words, little-endian (no type-punned pointer)
      const uint4 raw = *reinterpret_cast<const uint4*>(src);
      const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
        out[i] = fromBits<T>(static_cast<unsigned short>(words[i / 2] >> (16 * (i % 2))));
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = i < n ? toFloat(src[i]) : 0.0f;
}

// Element (head, token, d) of a [heads, tokens, dim] view.
template <typename T>
__device__ __forceinline__ const T* rowPtr(const TensorView3& t, int64_t head, int64_t token) {
  return static_cast<const T*>(t.data) + head * t.headStride + token * t.tokenStride;
}

// Loads `count` token rows from `first` into dst transposed: dst[d * kLdT + r], scaled by mul; rows
// >= count and dims >= dim are zero, so padded lanes never produce NaN.
template <typename T, int D>
__device__ void loadTransposed(const AttentionParams& p, const TensorView3& t, int64_t head, int64_t first,
                               int count, float mul, float* dst) {
  constexpr int kChunks = D / 8;
  for (int idx = threadIdx.x; idx < kTileQ * kChunks; idx += kThreads) {
    const int r = idx % kTileQ, c = idx / kTileQ;
    float x[8];
    const int n = (r < count) ? min(8, p.dim - c * 8) : 0;
    if (n > 0) {
      load8<T>(rowPtr<T>(t, head, first + r) + c * 8, n, p.vectorLoads, x);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) x[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) dst[(c * 8 + i) * kLdT + r] = x[i] * mul;
  }
}

// Loads `count` token rows into dst[r * (D + 4) + d] (natural layout, for V).
template <typename T, int D>
__device__ void loadRows(const AttentionParams& p, const TensorView3& t, int64_t head, int64_t first,
                         int count, float* dst) {
  constexpr int kChunks = D / 8;
  for (int idx = threadIdx.x; idx < kTileK * kChunks; idx += kThreads) {
    const int c = idx % kChunks, r = idx / kChunks;
    float x[8];
    const int n = (r < count) ? min(8, p.dim - c * 8) : 0;
    if (n > 0) {
      load8<T>(rowPtr<T>(t, head, first + r) + c * 8, n, p.vectorLoads, x);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) x[i] = 0.0f;
    }
    float4* o = reinterpret_cast<float4*>(dst + r * (D + 4) + c * 8);
    o[0] = make_float4(x[0], x[1], x[2], x[3]);
    o[1] = make_float4(x[4], x[5], x[6], x[7]);
  }
}

// s[i][j] = sum_d qT[d][ty*4+i] * kT[d][tx*4+j]: this thread's 4x4 block of the score tile.
template <int D>
__device__ __forceinline__ void scoreTile(const float* qT, const float* kT, int ty, int tx, float s[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) s[i][j] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < D; ++d) {
    const float4 a = *reinterpret_cast<const float4*>(qT + d * kLdT + ty * 4);
    const float4 b = *reinterpret_cast<const float4*>(kT + d * kLdT + tx * 4);
    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = fmaf(av[i], bv[j], s[i][j]);
  }
}

// Whether query position qpos of head h may see key `key` (causality, window, head mask).
__device__ __forceinline__ bool visible(const AttentionParams& p, const HeadMaskDev& m, int h, int64_t qpos,
                                        int64_t key) {
  if (key > qpos || key >= p.nk) return false;
  if (p.slidingWindow > 0 && key <= qpos - p.slidingWindow) return false;
  if (m.hasSinkWindow && !(key < m.sink || key > qpos - m.window)) return false;
  if (m.hasStreamWindow && !(key < m.streamSink || key > qpos - m.streamWindow)) return false;
  if (m.hasKeySet && !p.keyAllowed[h * p.nk + key]) return false;
  if (m.hasBlocks && !p.blocks[m.blockOffset + (qpos / m.blockSize) * m.blockCols + key / m.blockSize])
    return false;
  return true;
}

// True when no query in [qlo, qhi] of head h can see any key in [k0, k1): the tile is skipped.
__device__ __forceinline__ bool tileMasked(const AttentionParams& p, const HeadMaskDev& m, int h, int64_t qlo,
                                           int64_t qhi, int64_t k0, int64_t k1) {
  if (m.hasSinkWindow && k0 >= m.sink && k1 - 1 <= qlo - m.window) return true;
  if (m.hasStreamWindow && k0 >= m.streamSink && k1 - 1 <= qlo - m.streamWindow) return true;
  if (m.hasKeySet && !p.keyTileAny[h * ((p.nk + kTileK - 1) / kTileK) + k0 / kTileK]) return true;
  if (m.hasBlocks) {
    const int64_t b0 = qlo / m.blockSize, b1 = qhi / m.blockSize, c0 = k0 / m.blockSize,
                  c1 = (k1 - 1) / m.blockSize;
    if ((b1 - b0 + 1) * (c1 - c0 + 1) > 64) return false;  // too many blocks to check cheaply
    for (int64_t b = b0; b <= b1; ++b)
      for (int64_t c = c0; c <= c1; ++c)
        if (p.blocks[m.blockOffset + b * m.blockCols + c]) return false;
    return true;
  }
  return false;
}

// ACT factors of one row: attenuated keys keep `keep` of their probability, the others gain `gain`.
struct RowAct {
  const uint8_t* keys = nullptr;  // [nk] of head h, nullptr: no attenuation
  float keep = 1.0f, gain = 1.0f;
};

__device__ __forceinline__ RowAct rowAct(const AttentionParams& p, int h, int64_t row) {
  RowAct a;
  if (!p.beta || !p.actOn || p.beta[h] < 0.0f) return a;
  a.keys = p.attenuated + h * p.nk;
  const int64_t idx = h * p.nq + row;
  const float on = p.actOn[idx], off = p.actOff[idx];
  if (off > 0.0f) {  // no mass elsewhere (or no key at all): ACT leaves the row unchanged
    a.keep = p.beta[h];
    a.gain = 1.0f + on * (1.0f - p.beta[h]) / off;
  }
  return a;
}

// Final probability of (row, key) from its log2-domain logit s2 (bias included).
__device__ __forceinline__ float finalProb(float s2, float lse2, const RowAct& a, int64_t key) {
  if (isinf(lse2)) return 0.0f;
  const float pr = exp2f(s2 - lse2);
  return a.keys ? pr * (a.keys[key] ? a.keep : a.gain) : pr;
}

// Head of grid row blockIdx.y.
__device__ __forceinline__ int gridHead(const AttentionParams& p) {
  return p.headList ? p.headList[blockIdx.y] : static_cast<int>(blockIdx.y);
}

// Keys a query tile [qlo, qhi] may see: [begin, end), begin aligned to the key tile.
__device__ __forceinline__ void keyRange(const AttentionParams& p, int64_t qlo, int64_t qhi, int64_t& begin,
                                         int64_t& end) {
  begin = p.slidingWindow > 0 ? max(int64_t{0}, qlo - p.slidingWindow + 1) : 0;
  begin = begin / kTileK * kTileK;
  end = min(p.nk, qhi + 1);
}

// Dispatches a functor templated on the element type.
template <typename F>
void dispatchType(ElemType t, F&& f) {
  switch (t) {
    case ElemType::F32:
      f(float{});
      break;
    case ElemType::F16:
      f(__half{});
      break;
    case ElemType::BF16:
      f(__nv_bfloat16{});
      break;
  }
}

}  // namespace hs::kernels::cuda::detail
