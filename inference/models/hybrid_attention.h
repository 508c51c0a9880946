// Attention of one layer over a hybrid KV cache (DuoAttention): the full heads attend over every
// key, the streaming heads over their sink + window entries, and the outputs return to head order.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "inference/kv_cache.h"

namespace hs {

// q: [H, n, D] queries at positions pos0.. (after RoPE). Returns [H, n, D] in q's dtype. A decode step
// (one token) is one kernels::hybridDecodeAttention call for both kinds of head (one split-KV launch on
// CUDA); a prompt runs kernels::attention once per group: unmasked for the full heads, with
// HeadMask::sinkWindow over renumbered positions for the streaming heads.
at::Tensor hybridAttention(const at::Tensor& q, const HybridLayerView& view, const HybridLayout& layout,
                           int64_t pos0, double scale);

// A hybrid layer's keys and values laid out as a full cache, for the instrumented kernels (statistics,
// edits, probes): [KVH, position0 + n, D] by absolute position, the full heads' stores as they are and
// each streaming head's kept entries at their positions, zeros where it evicted. With
// HeadMask::sinkWindow(sink, window) on the streaming query heads (streamQueryHeads), attention over
// them is the hybrid cache's attention, entry for entry, at the true positions: the statistics'
// distances, column sums and pooled maps come out as for a full cache whose streaming heads are masked.
struct HybridAsFull {
  at::Tensor keys, values;
  std::vector<int> streamQueryHeads;
};
// n: tokens staged by this call; heads: query heads of the layer.
HybridAsFull hybridAsFull(const HybridLayerView& view, const HybridLayout& layout, int64_t n, int64_t heads);

}  // namespace hs
