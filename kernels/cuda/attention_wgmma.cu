// The statistics pass on Hopper's warpgroup tensor cores (sm_90a): the same statistics as
// tcStatsKernel (attention_tc.cu) from the same per-tile body (statsTile, tc_stats.cuh), with the
// scores of each 64-key tile computed by asynchronous wgmma.mma_async straight from shared memory, so
// that the tensor cores work on tile j + 1 while the warps turn tile j into statistics. Two warpgroups
// of 64 query rows share the K tiles (three cp.async stages in the 128-byte-swizzled layout wgmma
// reads). Compiled to a trap for other architectures; launchStatsTc runs it when asked (hopper) and the
// GPU is sm_90 and the binary has sm_90a code. Correct, but not yet faster than the mma.sync pass:
// per 64-key tile a thread has only 32 scores, so loads, descriptors, barriers and the column
// reduction weigh twice as much per score, and half of the statistics work overlaps no MMA
// (docs/performance.md, session 4).
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_device.cuh"
#include "kernels/cuda/tc_stats.cuh"
#include "kernels/cuda/tensor_core.cuh"

namespace hs::kernels::cuda {
namespace detail {  // named, not anonymous: the host pass drops the device bodies and would warn

constexpr int kWgThreads = 256;  // two warpgroups of 64 query rows
constexpr int kWgStages = 4;     // K tiles in shared memory: the pair being scored, the next pair loading
constexpr int kWgWarps = kWgThreads / 32;
constexpr int kWgTile = kWgWarps * detail::kColBuf;  // one key tile's partials: a kColBuf slot per warp
static_assert(kStatsRows == 2 * 64, "two warpgroups of 64 rows");

// Element offset of (row, 8-element chunk) in a 64-row tile stored as wgmma's K-major layout with
// 128-byte swizzle: [D / 64][64 rows][64 elements], the 16-byte chunks of row r XOR-swizzled by r % 8.
__device__ __forceinline__ int sw128(int row, int chunk) {
  return (chunk >> 3) * 64 * 64 + row * 64 + (((chunk & 7) ^ (row & 7)) << 3);
}

// Token rows [first, first + 64) of `head` into a 128-byte-swizzled tile (rows at or past `valid` zero).
template <typename T, int D>
__device__ __forceinline__ void loadSw128(T* dst, const TensorView3& view, int64_t head, int64_t first,
                                          int64_t valid) {
  loadRows<T, D, 64, kWgThreads>(dst, view, head, first, valid, [](int r, int c) { return sw128(r, c); });
}

// wgmma shared-memory matrix descriptor of a 128-byte-swizzled K-major operand starting at `ptr`:
// start address, leading byte offset 16 (unused by this layout), stride 1024 bytes between groups of 8
// rows, swizzle mode 1 (128 bytes). Tiles are 1024-byte aligned; a k-step of 16 elements moves the
// start by 32 bytes inside the swizzle atom, as the hardware applies the swizzle to the full address.
__device__ __forceinline__ uint64_t sw128Desc(const void* ptr) {
  return (static_cast<uint64_t>(smemAddr(ptr)) & 0x3FFFF) >> 4 | uint64_t{1} << 16 | uint64_t{1024 >> 4} << 32 |
         uint64_t{1} << 62;
}

__device__ __forceinline__ void fenceProxyAsync() {  // cp.async writes -> wgmma's reads of shared memory
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// One m64n64k16 wgmma with element type TY ("bf16" / "f16"): SCALE_D 0 ignores d's old values (its
// operands are outputs only, C = "=f"), 1 adds to them (C = "+f").
#define HS_WGMMA_D(C) \
  C(d[0][0]), C(d[0][1]), C(d[0][2]), C(d[0][3]), \
  C(d[1][0]), C(d[1][1]), C(d[1][2]), C(d[1][3]), \
  C(d[2][0]), C(d[2][1]), C(d[2][2]), C(d[2][3]), \
  C(d[3][0]), C(d[3][1]), C(d[3][2]), C(d[3][3]), \
  C(d[4][0]), C(d[4][1]), C(d[4][2]), C(d[4][3]), \
  C(d[5][0]), C(d[5][1]), C(d[5][2]), C(d[5][3]), \
  C(d[6][0]), C(d[6][1]), C(d[6][2]), C(d[6][3]), \
  C(d[7][0]), C(d[7][1]), C(d[7][2]), C(d[7][3])
#define HS_WGMMA_64(TY, SCALE_D, C)                                                           \
  asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY "\n"                   \
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,\n"     \
               " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31},\n" \
               " %32, %33, " #SCALE_D ", 1, 1, 0, 0;\n"                                          \
               : HS_WGMMA_D(C)                                                                 \
               : "l"(a), "l"(b))

// d = A Bᵀ (First) or d += A Bᵀ for one k-step: A 64 x 16 (the warpgroup's query rows), B 64 keys x 16,
// both described by sw128Desc; d in the m16n8 accumulator layout per warp (rows 16 w + g, + 8; keys
// 8 nb + 2t + e). The first k-step only writes d, so that the previous tile's values die before it.
template <typename T, bool First>
__device__ __forceinline__ void wgmma64(float (&d)[8][4], uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if constexpr (std::is_same_v<T, __nv_bfloat16> && First)
    HS_WGMMA_64("bf16", 0, "=f");
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    HS_WGMMA_64("bf16", 1, "+f");
  else if constexpr (First)
    HS_WGMMA_64("f16", 0, "=f");
  else
    HS_WGMMA_64("f16", 1, "+f");
#endif
}

#undef HS_WGMMA_64
#undef HS_WGMMA_D

// Tells the compiler that d changes here, so that no access to it moves across (around a wgmma issue,
// and after wgmmaWait).
__device__ __forceinline__ void claimScores(float (&d)[8][4]) {
#pragma unroll
  for (int nb = 0; nb < 8; ++nb)
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("" : "+f"(d[nb][i])::"memory");
}

// Starts S = Q Kᵀ of one 64-key tile for this warpgroup (q: its 64 rows, k: the tile) and commits it
// as one wgmma group; the registers of d belong to the tensor cores until wgmma.wait_group.
template <typename T, int D>
__device__ __forceinline__ void issueScores(float (&d)[8][4], const T* q, const T* k) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  wgmma64<T, true>(d, sw128Desc(q), sw128Desc(k));
#pragma unroll
  for (int kk = 1; kk < D / 16; ++kk) {
    const int off = (kk / 4) * 64 * 64 + (kk % 4) * 16;
    wgmma64<T, false>(d, sw128Desc(q + off), sw128Desc(k + off));
  }
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Waits until at most N wgmma groups of this warpgroup are pending.
template <int N>
__device__ __forceinline__ void wgmmaWait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

}  // namespace detail

namespace {

using namespace detail;

template <typename T, int D>
constexpr size_t wgStatsSmemBytes() {  // 1024 bytes of alignment slack, Q, K stages, column buffers
  return 1024 + sizeof(T) * (kStatsRows * D + kWgStages * kTcCols * D) + sizeof(float) * kWgStages * kWgTile;
}

// One CTA per (128-query tile, head), heaviest first: warpgroup wg scores rows [64 wg, 64 wg + 64) of
// the tile against each visible key tile; each warp then owns 16 of those rows (statsTile with kM = 1).
// Key tiles go in pairs (a, b): one barrier, the previous pair's partials flushed, the next pair
// loaded, both wgmma groups started, a turned into statistics while b is being scored, then b. No
// wgmma is in flight across the loop's back edge: ptxas serialises every wgmma of a kernel where one
// could be (its accumulators would be copied while in flight).
template <typename T, int D>
__global__ void __launch_bounds__(kWgThreads, 1) wgStatsKernel(const __grid_constant__ AttentionParams p,
                                                               const __grid_constant__ StatsParams s) {
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the host pass parses the body too
  extern __shared__ uint4 smemWg[];
  const uint32_t raw = smemAddr(smemWg);
  T* sQ = reinterpret_cast<T*>(reinterpret_cast<char*>(smemWg) + ((1024 - (raw & 1023)) & 1023));
  T* sK = sQ + kStatsRows * D;                                           // [2 pairs][2 tiles][64 keys][D]
  float* sCol = reinterpret_cast<float*>(sK + kWgStages * kTcCols * D);  // [2 pairs][2 tiles][kWgTile]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, warpRow = warp * 16;
  const StatsCta c = statsCta(p, s, warpRow, 16);
  for (int i = tid; i < kWgStages * kWgTile; i += kWgThreads) sCol[i] = 0.0f;
  RowState<1> st;
  st.start(p, c, warpRow, lane);

  int64_t kBegin, kEnd;
  keyRange(p, c.qlo, c.qhi, kBegin, kEnd);
  auto next = [&](int64_t after) {  // the visible key tile after tile `after` (kEnd: none)
    return after < kEnd ? nextKeyTile(p, c.hm, c.h, c.qlo, c.qhi, after + kTcCols, kEnd) : kEnd;
  };
  loadSw128<T, D>(sQ, p.q, c.h, c.rowBase, c.rows);
  loadSw128<T, D>(sQ + 64 * D, p.q, c.h, c.rowBase + 64, c.rows - 64);
  int64_t ka = nextKeyTile(p, c.hm, c.h, c.qlo, c.qhi, kBegin, kEnd), kb = next(ka);
  if (ka < kEnd) loadSw128<T, D>(sK, p.k, c.kvh, ka, p.nk - ka);
  if (kb < kEnd) loadSw128<T, D>(sK + kTcCols * D, p.k, c.kvh, kb, p.nk - kb);
  cpAsyncCommit();
  const T* qTile = sQ + (warp / 4) * 64 * D;
  float scA[1][8][4], scB[1][8][4];
  int pair = 0;
  int64_t prevA = -1, prevB = -1;
  while (ka < kEnd) {
    cpAsyncWaitAll();
    fenceProxyAsync();
    __syncthreads();  // pair (ka, kb) landed; every warp is done with the previous pair
    float* colA = sCol + 2 * pair * kWgTile;
    float* prevCol = sCol + 2 * (pair ^ 1) * kWgTile;
    if (prevA >= 0) flushPartials<kWgWarps>(p, s, c.h, prevA, prevCol, c.poolSlot, c.cellRow0, tid);
    if (prevB >= 0) flushPartials<kWgWarps>(p, s, c.h, prevB, prevCol + kWgTile, c.poolSlot, c.cellRow0, tid);
    const int64_t kc = next(kb), kd = next(kc);
    T* nextTiles = sK + 2 * (pair ^ 1) * kTcCols * D;
    if (kc < kEnd) loadSw128<T, D>(nextTiles, p.k, c.kvh, kc, p.nk - kc);
    if (kd < kEnd) loadSw128<T, D>(nextTiles + kTcCols * D, p.k, c.kvh, kd, p.nk - kd);
    cpAsyncCommit();
    // Both groups are issued unconditionally (for kb past the end, b scores stale shared memory and is
    // dropped): an issue under a branch the compiler cannot prove uniform serialises them too.
    const T* tiles = sK + 2 * pair * kTcCols * D;
    issueScores<T, D>(scA[0], qTile, tiles);
    issueScores<T, D>(scB[0], qTile, tiles + kTcCols * D);
    wgmmaWait<1>();
    claimScores(scA[0]);
    statsTile<1>(p, s, c, st, scA, ka, warpRow, lane, colA + warp * kColBuf);
    wgmmaWait<0>();
    claimScores(scB[0]);
    if (kb < kEnd) statsTile<1>(p, s, c, st, scB, kb, warpRow, lane, colA + kWgTile + warp * kColBuf);
    prevA = ka, prevB = kb < kEnd ? kb : -1;
    ka = kc, kb = kd, pair ^= 1;
  }
  cpAsyncWaitAll();
  __syncthreads();
  float* prevCol = sCol + 2 * (pair ^ 1) * kWgTile;
  if (prevA >= 0) flushPartials<kWgWarps>(p, s, c.h, prevA, prevCol, c.poolSlot, c.cellRow0, tid);
  if (prevB >= 0) flushPartials<kWgWarps>(p, s, c.h, prevB, prevCol + kWgTile, c.poolSlot, c.cellRow0, tid);
  st.finish(p, s, c, warpRow, lane);
#else
  __trap();  // launchStatsTc never picks this kernel without sm_90a code
#endif
}

}  // namespace

bool wgmmaStatsAvailable() {
#ifdef HEADSCOPE_CUDA_SM90A
  int dev = 0, major = 0;
  return cudaGetDevice(&dev) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9;
#else
  return false;
#endif
}

void launchStatsWgmma(const AttentionParams& p, const StatsParams& s, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nq, kStatsRows)), static_cast<unsigned>(p.numHeads));
  dispatchTc(p, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    constexpr size_t smem = wgStatsSmemBytes<T, D>();
    setSmem(wgStatsKernel<T, D>, smem, "attention_stats_wgmma");
    wgStatsKernel<T, D><<<grid, kWgThreads, smem, stream>>>(p, s);
  });
  checkLaunch("attention_stats_wgmma");
}

}  // namespace hs::kernels::cuda
