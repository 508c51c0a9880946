// Differences between the LibTorch versions we build against (Debian 12's 1.13, PyTorch 2.11's),
// kept in one place. Include only from .cpp files that already pay for ATen.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#include <limits>

#define HS_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace hs::compat {

// softmax(q k^T * scale + mask) v for q [B, Nq, D], k/v [B, Nk, D]; mask is additive or empty.
// Uses the fused at::scaled_dot_product_attention where it is public (LibTorch >= 2.1 for `scale`),
// plain matmul + softmax otherwise.
inline at::Tensor scaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& mask, double scale) {
#if HS_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt,
                                          0.0, false, scale);
#else
  at::Tensor s = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (mask.defined()) s = s + mask;
  return at::matmul(at::softmax(s, -1), v);
#endif
}

// Causal softmax(q k^T * scale) v for q [H, N, D] and k/v [KVH, N, D] (H a multiple of KVH, query i sees
// keys <= i). K/V are expanded to the query heads first (a copy of O(N x heads), never N x N), so that
// LibTorch's fused kernels (FlashAttention on CUDA) apply on every version; plain ops before 2.1.
inline at::Tensor causalAttentionGqa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const int64_t heads = q.size(0), kvHeads = k.size(0), n = k.size(1), dim = k.size(2);
  auto expand = [&](const at::Tensor& t) {
    return kvHeads == heads ? t : t.unsqueeze(1).expand({kvHeads, heads / kvHeads, n, dim}).reshape({heads, n, dim});
  };
#if HS_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q.unsqueeze(0), expand(k).unsqueeze(0), expand(v).unsqueeze(0),
                                          c10::nullopt, 0.0, true, scale)
      .squeeze(0);
#else
  auto s = at::matmul(q, expand(k).transpose(-2, -1)) * scale;
  s.masked_fill_(at::ones({q.size(1), n}, q.options().dtype(at::kBool)).triu(1), -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(s, -1), expand(v));
#endif
}

}  // namespace hs::compat
