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

}  // namespace hs
