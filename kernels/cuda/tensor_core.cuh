// Warp-level tensor-core building blocks of attention_tc.cu and attention_wgmma.cu: cp.async tile
// loads into XOR-swizzled shared memory, ldmatrix, mma.sync m16n8k16 (bf16/fp16 in, fp32 accumulate),
// the score block S = A Bᵀ over a 64-row tile, and the launchers' type dispatch.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_device.cuh"

namespace hs::kernels::cuda::detail {

constexpr int kTcRows = 64;      // query rows per CTA of the forward (16 per warp), rows per loaded tile
constexpr int kTcCols = 64;      // keys per inner tile
constexpr int kTcThreads = 128;  // 4 warps

__device__ __forceinline__ uint32_t smemAddr(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// 16-byte asynchronous copy global -> shared; zero-fills the destination when !valid.
__device__ __forceinline__ void cpAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
__device__ __forceinline__ void cpAsyncWaitAll() {
  asm volatile("cp.async.wait_group 0;\n" ::);
}

__device__ __forceinline__ void ldmatrixX4At(uint32_t r[4], uint32_t addr) {  // addr: a shared-window address
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t r[4], const void* ptr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(ptr)));
}

// c += a * b for one m16n8k16 tile (a: 4 registers of the A fragment, b0/b1 of the B fragment).
template <typename T>
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// 2^x in one MUFU instruction (ex2.approx.ftz: relative error ~2^-22, subnormal results flushed to 0,
// 2^-inf = 0); exp2f adds range and subnormal handling around it, several instructions per score.
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as one register of 16-bit values (lo in the low half).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// Element offset of (row, 8-element chunk) in a [rows][D] tile whose chunks are XOR-swizzled by row,
// so that the 8 rows an ldmatrix reads at one logical chunk fall in 8 different bank groups.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Asynchronously loads token rows [first, first + kRows) of `head` into shared memory, 16-byte chunk c
// of row r at element offset at(r, c); rows at or past `valid` are zero-filled. Each of the kThreads
// threads copies one chunk column of every (kThreads / (D / 8))-th row by walking one pointer, so a
// copy costs no 64-bit index arithmetic.
template <typename T, int D, int kRows, int kThreads, typename At>
__device__ __forceinline__ void loadRows(T* dst, const TensorView3& view, int64_t head, int64_t first,
                                         int64_t valid, At at) {
  constexpr int kChunks = D / 8, kRowStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kRows % kRowStep == 0, "whole rows per pass");
  const int c = static_cast<int>(threadIdx.x) % kChunks, r0 = static_cast<int>(threadIdx.x) / kChunks;
  const T* base = static_cast<const T*>(view.data);
  const T* src = base + head * view.headStride + (first + r0) * view.tokenStride + c * 8;
  const int64_t step = kRowStep * view.tokenStride;
#pragma unroll
  for (int i = 0; i < kRows / kRowStep; ++i, src += step) {
    const int r = r0 + i * kRowStep;
    const bool ok = r < valid;
    cpAsync16(dst + at(r, c), ok ? src : base, ok);
  }
}

// Token rows [first, first + 64) of `head` into a tile swizzled by swz (the mma.sync kernels' layout).
// A thread's rows are kRowStep apart, a multiple of 8, so swz's XOR is the same in all of them: the
// destinations are one address plus constants. A whole tile (valid >= 64, all but a call's last one)
// goes without the per-row zero-fill checks.
template <typename T, int D>
__device__ __forceinline__ void loadTile(T* dst, const TensorView3& view, int64_t head, int64_t first,
                                         int64_t valid) {
  constexpr int kChunks = D / 8, kRowStep = kTcThreads / kChunks;
  static_assert(kTcThreads % kChunks == 0 && kRowStep % 8 == 0 && kTcRows % kRowStep == 0,
                "one XOR per thread");
  if (valid < kTcRows) {
    loadRows<T, D, kTcRows, kTcThreads>(dst, view, head, first, valid,
                                        [](int r, int c) { return swz<D>(r, c); });
    return;
  }
  const int c = static_cast<int>(threadIdx.x) % kChunks, r0 = static_cast<int>(threadIdx.x) / kChunks;
  const T* src =
      static_cast<const T*>(view.data) + head * view.headStride + (first + r0) * view.tokenStride + c * 8;
  const int64_t step = kRowStep * view.tokenStride;
  const uint32_t d = smemAddr(dst + swz<D>(r0, c));
  constexpr uint32_t kStepBytes = kRowStep * D * sizeof(T);
#pragma unroll
  for (int i = 0; i < kTcRows / kRowStep; ++i, src += step)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d + i * kStepBytes), "l"(src));
}

// acc[m][nb] = rows [warpRow + 16 m, warpRow + 16 m + 16) of tile `a` times the transposed rows of tile
// `b` (64 rows = 8 n-blocks of 8), over D, for kM m-tiles of 16 rows (warpRow a multiple of 8). The A
// fragments are re-read from shared memory for each 16 dims, which leaves the registers to the
// accumulators; each B fragment serves all kM m-tiles.
// Addresses: a lane's ldmatrix row has row % 8 = lane % 8 whatever the m-tile or n-block, and its chunk
// is 8 h + (2 j + lane bit) for dims 16 kk (kk = 4 h + j), so swz's XOR only touches the low three chunk
// bits: the address is one of four per-lane offsets (by j) plus a constant. ldmatrix takes the
// constant as its immediate, and the tile loop keeps four offsets per operand instead of an index
// product per ldmatrix (about 150 integer instructions per 64-key tile before).
template <typename T, int D, int kM>
__device__ __forceinline__ void scoreBlock(const T* a, int warpRow, const T* b, int lane, float acc[kM][8][4]) {
  constexpr int kJ = D / 16 < 4 ? D / 16 : 4;
  constexpr uint32_t kEl = sizeof(T);
  const uint32_t aAddr = smemAddr(a) + static_cast<uint32_t>(warpRow) * D * kEl, bAddr = smemAddr(b);
  uint32_t aOff[kJ], bOff[kJ];
#pragma unroll
  for (int j = 0; j < kJ; ++j) {
    aOff[j] = aAddr + swz<D>(lane & 15, 2 * j + (lane >> 4)) * kEl;
    bOff[j] = bAddr + swz<D>((lane & 7) + ((lane >> 4) << 3), 2 * j + ((lane >> 3) & 1)) * kEl;
  }
#pragma unroll
  for (int m = 0; m < kM; ++m)
#pragma unroll
    for (int nb = 0; nb < 8; ++nb) acc[m][nb][0] = acc[m][nb][1] = acc[m][nb][2] = acc[m][nb][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int j = kk % 4, h = kk / 4;
    uint32_t af[kM][4];
#pragma unroll
    for (int m = 0; m < kM; ++m) ldmatrixX4At(af[m], aOff[j] + (16 * m * D + 64 * h) * kEl);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t bf[4];
      ldmatrixX4At(bf, bOff[j] + (np * 16 * D + 64 * h) * kEl);
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        mma16816<T>(acc[m][2 * np], af[m], bf[0], bf[1]);
        mma16816<T>(acc[m][2 * np + 1], af[m], bf[2], bf[3]);
      }
    }
  }
}

// Sums v[2 nb + e] (column nb * 8 + 2t + e of an accumulator block) over the 8 lanes that share t =
// lane % 4, as a reduce-scatter in 14 shuffles: lane g = lane / 4 gets columns g * 8 + 2t + {0, 1}.
__device__ __forceinline__ float2 columnReduce(float v[16], int lane) {
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const bool up = lane & 16;
    const float send = up ? v[k] : v[k + 8], keep = up ? v[k + 8] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const bool up = lane & 8;
    const float send = up ? v[k] : v[k + 4], keep = up ? v[k + 4] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const bool up = lane & 4;
    const float send = up ? v[k] : v[k + 2], keep = up ? v[k + 2] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
  }
  return make_float2(v[0], v[1]);
}

// Host side: calls f(T{}, integral_constant<int, D>{}) for the call's element type (bf16/fp16) and
// head_dim (64/128).
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

// Host side: lets `kernel` use `bytes` of dynamic shared memory.
template <typename K>
void setSmem(K kernel, size_t bytes, const char* name) {
  checkCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
            name, "shared memory attribute");
}

}  // namespace hs::kernels::cuda::detail
