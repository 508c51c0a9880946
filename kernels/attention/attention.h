// Instrumented causal attention for one layer: the contract that the CPU reference implements
// now and the CUDA kernels implement with the same types. One call computes the layer's output,
// applies interventions inside the softmax, and reduces the probabilities to per-head statistics
// block by block, so that no [heads, N, N] buffer ever lives for a long prompt.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace hs::kernels {

// Restricts which keys a query head may see, on top of causality and the model's sliding window.
struct HeadMask {
  enum class Kind { SinkWindow, KeySet, Blocks };
  Kind kind = Kind::SinkWindow;
  int64_t sink = 4;      // SinkWindow: keys at positions < sink ...
  int64_t window = 64;   // ... or within the last `window` positions (i - window < j <= i)
  std::vector<int64_t> keys;  // KeySet: the allowed key positions
  int64_t blockSize = 64;     // Blocks: bool [ceil(maxPos/B), ceil(maxPos/B)] of allowed
  at::Tensor blocks;          //   (query block, key block) pairs by absolute position

  static HeadMask sinkWindow(int64_t sink, int64_t window);
  static HeadMask keySet(std::vector<int64_t> keys);
  static HeadMask blockSparse(int64_t blockSize, at::Tensor allowed);
};

// Adds `value` to the logits of the listed keys in one head (ZeroTuning: ln(gamma) on key 0;
// RazorAttention's compensation token: ln(count)).
struct LogitBias {
  int head = 0;
  std::vector<int64_t> keys;
  double value = 0.0;
};

// ACT: after softmax, multiplies the probability of the listed keys by beta and gives the removed
// mass to the other keys in proportion to their probability (rows still sum to 1).
struct Attenuation {
  int head = 0;
  std::vector<int64_t> keys;
  double beta = 0.4;
};

// DuoAttention's per-head mix: out = alpha * full + (1 - alpha) * streaming(sink, window). The
// streaming half respects the head's masks and logit biases and ignores ACT attenuation.
// alpha is a 0-dim tensor so that it can require grad (gate training on CPU).
struct StreamingMix {
  int head = 0;
  at::Tensor alpha;
  int64_t sink = 64;
  int64_t window = 256;
};

// Interventions on one layer. Head output edits are applied to each head's output before o_proj.
struct LayerEdits {
  std::vector<std::pair<int, HeadMask>> masks;  // (head, mask)
  std::vector<LogitBias> biases;
  std::vector<Attenuation> attenuations;
  std::vector<StreamingMix> mixes;
  at::Tensor headScale;  // [H] float, or undefined: out_h *= scale[h] (0 ablates)
  at::Tensor headAdd;    // [H, D] float, or undefined: out_h += add[h] (mean ablation)

  bool empty() const;
};

// A per-query list of key positions (CSR over the queries of the call), e.g. the earlier copies of
// the query's token (duplicate-token) or the tokens after them (induction).
struct TargetSet {
  std::string name;
  std::vector<int64_t> rowStart;  // size Nq + 1
  std::vector<int64_t> keys;      // key positions
};

// One exact probability tile to return: head, queries [q0, q1), keys [k0, k1) by absolute position.
struct TileRequest {
  int head = 0;
  int64_t q0 = 0, q1 = 0, k0 = 0, k1 = 0;
};

// Which statistics to compute. All per-row statistics are [H, Nq]; column statistics [H, Nk].
struct StatsRequest {
  std::vector<int64_t> sinkSet{0};       // keys whose summed mass is reported as sinkSet (a set)
  int64_t streamSink = 4;                // streaming mass: keys < streamSink ...
  int64_t streamWindow = 64;             // ... or in the last streamWindow positions
  int64_t distanceCap = 10;              // WAAD's W: sum_j A[i,j] * min(i - j, W)
  int64_t bandLo = 10, bandHi = 100;     // colSumBand: queries with bandLo <= i - j <= bandHi (FAI)
  int64_t poolBlock = 0;                 // block-pooled max/mean maps with this block size (0: off)
  std::vector<int> poolHeads;            // heads to pool (empty: all)
  std::vector<TargetSet> targets;
  std::vector<TileRequest> tiles;
};

// Statistics of one layer for the queries of one call. Tensors are float32 on the CPU.
struct LayerStats {
  at::Tensor sinkFirst;     // [H, Nq] A[i, 0]
  at::Tensor sinkSet;       // [H, Nq] sum over the sink set
  at::Tensor entropy;       // [H, Nq] -sum_j A log A (nats)
  at::Tensor streamMass;    // [H, Nq] mass inside sink + window
  at::Tensor waad;          // [H, Nq] sum_j A[i,j] min(i-j, W)
  at::Tensor meanDistance;  // [H, Nq] sum_j A[i,j] (i-j)
  at::Tensor top1Pos;       // [H, Nq] int64 argmax_j A[i,j]
  at::Tensor top1Prob;      // [H, Nq] max_j A[i,j]
  at::Tensor colSum;        // [H, Nk] sum_i A[i,j]
  at::Tensor colSumBand;    // [H, Nk] sum over queries in the band
  at::Tensor targetMass;    // [T, H, Nq] mass on each target set (T = targets.size())
  at::Tensor poolMax;       // [P, R, ceil(Nk/B)]: block rows poolRow0 .. poolRow0 + R - 1 by absolute
                            // position, the rows this call's queries touch (poolRow0 = queryStart / B)
  at::Tensor poolMean;      // same shape; mean over the block's cells inside the [positions, keys]
                            // map (masked cells count 0, and so do rows of earlier calls unless
                            // append() merged those calls in)
  int64_t poolBlock = 0;    // B of the pooled maps (0: none)
  int64_t poolRow0 = 0;     // absolute block row of poolMax's first row
  int64_t queryEnd = 0;     // queryStart + Nq of the call: the positions the pooled maps cover
  std::vector<at::Tensor> tiles;  // one [q1-q0, k1-k0] per TileRequest; parts outside the call's
                                  // queries or keys are 0
  // Set by the CUDA path for a call with statsInFlight: the tensors above are still being copied to the
  // host when attention() returns, and hold their values once wait() returns. Empty otherwise.
  std::function<void()> inFlight;

  // Returns once every tensor above holds its values (at once when nothing is in flight). Throws
  // hs::Error(Device) when the copies failed.
  void wait() const {
    if (inFlight) inFlight();
  }

  // Adds the statistics of a later call on the same layer (decode steps): row stats are
  // concatenated along queries, column stats summed with zero padding for new keys, pooled maps
  // merged (maximum, and the mean over the cells of the combined map) when both calls pooled the
  // same heads with the same block, else replaced by the later call's; tiles are the later call's.
  // Into an empty LayerStats it only copies `later` (copies in flight stay in flight); otherwise it
  // waits for both.
  void append(const LayerStats& later);
};

// Receives every block of final probabilities [H, rows, Nk] with the position of its first row.
// CPU path only: arbitrary probes beyond the built-in statistics.
using ProbabilityObserver = std::function<void(int64_t firstQueryPos, const at::Tensor& probs)>;

// One layer's attention. q: [H, Nq, D] at positions queryStart..queryStart+Nq-1; k, v: [KVH, Nk, D]
// for key positions 0..Nk-1 (the cache including the current tokens), H a multiple of KVH.
struct AttentionCall {
  at::Tensor q, k, v;
  int64_t queryStart = 0;
  double scale = 1.0;
  int64_t slidingWindow = 0;              // 0: full causal
  const LayerEdits* edits = nullptr;      // optional
  const StatsRequest* stats = nullptr;    // optional; statsOut must be given with it
  ProbabilityObserver observer;           // optional
  int64_t maxBlockBytes = 256ll << 20;    // bound on one block's [H, rows, Nk] probability buffer
  // CUDA: return before the statistics reach the host (they travel on a side stream while the caller
  // queues more work); the caller calls LayerStats::wait() before reading them. Ignored on the CPU.
  bool statsInFlight = false;
};

// CPU reference: returns the attention output [H, Nq, D] (float32) and fills *statsOut when
// call.stats is set. Throws hs::Error(InvalidArgument) on inconsistent shapes.
at::Tensor attentionCpu(const AttentionCall& call, LayerStats* statsOut);

#ifdef HEADSCOPE_HAVE_CUDA
// CUDA kernels: same contract, tensors on one CUDA device (kernels/cuda/).
at::Tensor attentionCuda(const AttentionCall& call, LayerStats* statsOut);
#endif

// Runs the implementation for the tensors' device (CPU reference, or CUDA when built with it).
at::Tensor attention(const AttentionCall& call, LayerStats* statsOut);

// One decode step over a hybrid (DuoAttention) KV cache: one query per head, seeing every entry it is
// given. KV head j reads streamK/streamV at its index among the streaming KV heads when streamKvHead[j],
// fullK/fullV at its index among the others otherwise. q: [H, 1, D]; fullK/V: [KVHf, Nf, D];
// streamK/V: [KVHs, Ns, D] (the sink + window entries, any order); H a multiple of KVH = KVHf + KVHs.
struct HybridDecodeCall {
  at::Tensor q, fullK, fullV, streamK, streamV;
  std::vector<bool> streamKvHead;
  double scale = 1.0;
};

// Returns [H, 1, D] in q's dtype: on CUDA one split-KV launch for both kinds of head, on the CPU the
// reference (attentionCpu per kind of head). Throws hs::Error(InvalidArgument) naming the field on
// inconsistent shapes.
at::Tensor hybridDecodeAttention(const HybridDecodeCall& call);
#ifdef HEADSCOPE_HAVE_CUDA
at::Tensor hybridDecodeAttentionCuda(const HybridDecodeCall& call);
#endif

}  // namespace hs::kernels
