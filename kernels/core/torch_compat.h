// Differences between the LibTorch versions we build against (Debian 12's 1.13, PyTorch 2.11's),
// kept in one place. Include only from .cpp files that already pay for ATen.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

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

}  // namespace hs::compat
