// Raw-pointer interface of the CUDA attention kernels. Compiled by nvcc without LibTorch, so CI builds
// the device code wherever nvcc exists; attention_cuda_bridge.cpp fills these structs from an
// AttentionCall. All pointers are device pointers unless a comment says otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace hs::kernels::cuda {

// Element type of q/k/v and of the attention output.
enum class ElemType : int32_t { F32 = 0, F16 = 1, BF16 = 2 };

// Query rows and keys per CTA tile. 64x64 with 256 threads gives each thread a 4x4 block of scores
// (float4 shared-memory reads on both operands) and keeps a CTA's shared memory at ~118 KiB for
// head_dim 128, so the same tile serves the forward and the statistics pass.
constexpr int kTileQ = 64;
constexpr int kTileK = 64;
constexpr int kThreads = 256;
// Largest head_dim the kernels are instantiated for (64 and 128; smaller dims are zero-padded).
constexpr int kMaxHeadDim = 128;

// A [heads, tokens, dim] tensor with unit stride along dim.
struct TensorView3 {
  const void* data = nullptr;
  int64_t headStride = 0, tokenStride = 0;
};

// Per-head restrictions on top of causality and the sliding window; every enabled one must allow a key.
struct HeadMaskDev {
  int32_t hasSinkWindow = 0, hasStreamWindow = 0, hasKeySet = 0, hasBlocks = 0;
  int64_t sink = 0, window = 0;              // HeadMask::sinkWindow: key < sink or key > q - window
  int64_t streamSink = 0, streamWindow = 0;  // the streaming half of a StreamingMix (mix pass only)
  int64_t blockOffset = 0, blockSize = 1, blockCols = 0;  // HeadMask::blockSparse, into `blocks`
};

// One attention launch: inputs, interventions and the forward's outputs.
struct AttentionParams {
  ElemType type = ElemType::F32;
  int heads = 0, kvHeads = 0, dim = 0;
  int64_t nq = 0, nk = 0, queryStart = 0, slidingWindow = 0;
  float scale = 1.0f;
  bool vectorLoads = false;  // q/k/v rows 16-byte aligned and dim % 8 == 0: 16-byte global loads
  TensorView3 q, k, v;
  const int32_t* headList = nullptr;  // heads to run (grid.y = numHeads); nullptr: all heads
  int numHeads = 0;

  const HeadMaskDev* masks = nullptr;   // [heads] or nullptr
  const uint8_t* keyAllowed = nullptr;  // [heads, nk] KeySet masks
  const uint8_t* keyTileAny = nullptr;  // [heads, ceil(nk / kTileK)]: a KeySet tile has a key
  const uint8_t* blocks = nullptr;      // concatenated [rows, cols] block masks
  const float* bias = nullptr;          // [heads, nk] additive logit bias (natural log units)
  const uint8_t* attenuated = nullptr;  // [heads, nk] ACT keys
  const float* beta = nullptr;          // [heads] ACT beta, < 0 where a head is not attenuated
  // [heads, nq] ACT: softmax mass on / off the attenuated keys, summed separately by the forward so
  // that a row with (almost) all mass on those keys gets an exact 0 off-mass, not a cancellation.
  float* actOn = nullptr;
  float* actOff = nullptr;

  void* out = nullptr;  // [heads, nq, dim] of outType
  ElemType outType = ElemType::F32;
  float* rowLse2 = nullptr;          // [heads, nq] log2-sum-exp2 of the scaled logits, -inf: no key
  const float* headScale = nullptr;  // [heads] fused output scale, or nullptr
  const float* headAdd = nullptr;    // [heads, dim] fused output add, or nullptr
};

// Outputs and parameters of the statistics pass (mirrors StatsRequest; see attention.h).
struct StatsParams {
  int64_t streamSink = 4, streamWindow = 64, distanceCap = 10, bandLo = 10, bandHi = 100;
  float *entropy = nullptr, *streamMass = nullptr, *waad = nullptr, *meanDistance = nullptr;  // [H, nq]
  float* top1Prob = nullptr;                                                                  // [H, nq]
  int64_t* top1Pos = nullptr;                                                                 // [H, nq]
  float *colSum = nullptr, *colSumBand = nullptr;  // [H, nk], zeroed by the caller (atomics)
  int64_t poolBlock = 0, poolRows = 0, poolCols = 0;
  const int32_t* poolIndex = nullptr;            // [H]: slot in the pooled maps, -1 when not pooled
  float *poolMax = nullptr, *poolSum = nullptr;  // [P, poolRows, poolCols], zeroed by the caller
};

// Forward pass: writes p.out, p.rowLse2 and, for attenuated heads, p.actOn/actOff. Throws
// hs::Error(Device) naming the kernel on failure.
void launchAttentionForward(const AttentionParams& p, cudaStream_t stream);

// ACT: completes the output of attenuated heads (p.out, float; the forward wrote only the part from
// non-attenuated keys) with the attenuated keys' share, using the forward's actOn/actOff. keyStart [H+1] /
// keys: each head's attenuated keys (deduplicated, in range).
void launchAttenuationFixup(const AttentionParams& p, const int64_t* keyStart, const int64_t* keys,
                            cudaStream_t stream);

// One decode step (a single query per head seeing every key), split over key chunks (attention_decode.cu).
constexpr int kMaxDecodeGroup = 16;  // query heads per KV head
struct DecodeParams {
  ElemType type = ElemType::F32;
  int heads = 0, kvHeads = 0, dim = 0;
  int64_t nk = 0;
  float scale = 1.0f;
  bool vectorLoads = false;
  TensorView3 q, k, v;  // q [heads, 1, dim]; k, v [kvHeads, nk, dim]
  // Hybrid cache (DuoAttention): KV head j with bit j of streamMask set reads ks/vs [.., nkStream, dim]
  // at its index among those heads; the others read k/v at their index among the rest.
  uint64_t streamMask = 0;
  TensorView3 ks, vs;
  int64_t nkStream = 0;
  void* out = nullptr;  // [heads, 1, dim] contiguous, of outType
  ElemType outType = ElemType::F32;
  float* work = nullptr;  // decodeWorkFloats(p) floats: each chunk's partial output, maximum and sum
  int splits = 1;         // chunks of `chunk` keys (splits * chunk >= nk)
  int64_t chunk = 0;
  float* rowLse2 = nullptr;  // [heads]: the merge writes each head's log2-sum-exp2 here when set
};
inline int64_t decodeWorkFloats(const DecodeParams& p) {
  const int64_t padded = p.dim <= 64 ? 64 : kMaxHeadDim;
  return static_cast<int64_t>(p.heads) * p.splits * (padded + 2);
}
void launchDecodeAttention(const DecodeParams& p, cudaStream_t stream);

// Every statistic of one decode step, split over the same key chunks as launchDecodeAttention: the
// query at position nk - 1 of each head sees every key of k (no hybrid cache, no edits, no sliding
// window that cuts in), with probabilities exp2(scaled logit - p.rowLse2), the decode's own log-sum-exp.
// Writes entropy, stream mass, WAAD, mean distance and top-1 ([heads, 1]), and the column sums, band
// sums and pooled maps of that one row (any pool block; s.colSum, s.colSumBand, s.poolMax and s.poolSum
// zeroed by the caller). work: decodeStatsWorkFloats(p) floats for the chunks' row partials.
constexpr int kDecodeStatsFields = 8;  // mass, sum p x, distance, WAAD, stream mass, best x, top-1, unused
inline int64_t decodeStatsWorkFloats(const DecodeParams& p) {
  return static_cast<int64_t>(p.heads) * p.splits * kDecodeStatsFields;
}
void launchDecodeStats(const DecodeParams& p, const StatsParams& s, float* work, cudaStream_t stream);

// Tensor-core kernels (attention_tc.cu): bf16/fp16, head_dim 64 or 128, 16-byte aligned rows, no ACT.
bool tensorCoreEligible(const AttentionParams& p);
// Forward on tensor cores: writes p.out and p.rowLse2.
void launchAttentionForwardTc(const AttentionParams& p, cudaStream_t stream);
// Every statistic on tensor cores (pooled maps when s.poolBlock is a multiple of kTileK), in one pass
// over the probabilities exp2(scaled logit - p.rowLse2) (a forward's row log-sum-exp, ours or
// LibTorch's): entropy, stream mass, WAAD, mean distance and top-1 of each row, and the column sums,
// which it adds into s.colSum / s.colSumBand and the pooled maps (zeroed by the caller). hopper: the
// wgmma kernel (attention_wgmma.cu) where wgmmaStatsAvailable(), else the mma.sync one.
void launchStatsTc(const AttentionParams& p, const StatsParams& s, cudaStream_t stream, bool hopper = false);
// True when the current GPU is sm_90 and this build has sm_90a code (HEADSCOPE_CUDA_SM90A).
bool wgmmaStatsAvailable();
// The wgmma statistics kernel itself (launchStatsTc checks the call first).
void launchStatsWgmma(const AttentionParams& p, const StatsParams& s, cudaStream_t stream);

// Statistics pass over the probabilities defined by p (needs the forward's rowLse2 and ACT masses).
void launchAttentionStats(const AttentionParams& p, const StatsParams& s, cudaStream_t stream);

// out[h, i] = sum of probabilities of query row i on a key list: keys[rowStart[i]..rowStart[i+1]) per
// row, or the same keys[0..sharedCount) for every row when rowStart is nullptr.
void launchKeyMass(const AttentionParams& p, const int64_t* rowStart, const int64_t* keys,
                   int64_t sharedCount, float* out, cudaStream_t stream);

// Exact probabilities of head h for query positions [q0, q1) and keys [k0, k1) into out [q1-q0, k1-k0]
// (0 outside this call's queries or keys).
void launchProbabilityTile(const AttentionParams& p, int head, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                           float* out, cudaStream_t stream);

}  // namespace hs::kernels::cuda
