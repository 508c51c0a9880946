// Differences between the LibTorch versions we build against (Debian 12's 1.13, PyTorch 2.11's),
// kept in one place. Include only from .cpp files that already pay for ATen.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#include <limits>
#include <tuple>
#include <utility>

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

// K/V [KVH, N, D] expanded to H query heads (a copy of O(N x heads), never N x N).
inline at::Tensor expandKvHeads(const at::Tensor& t, int64_t heads) {
  const int64_t kvHeads = t.size(0);
  return kvHeads == heads ? t
                          : t.unsqueeze(1).expand({kvHeads, heads / kvHeads, t.size(1), t.size(2)}).reshape({heads, t.size(1), t.size(2)});
}

// Causal softmax(q k^T * scale) v for q [H, N, D] and k/v [KVH, N, D] (H a multiple of KVH, query i sees
// keys <= i). K/V are expanded to the query heads first, so that LibTorch's fused kernels
// (FlashAttention/cuDNN on CUDA) apply on every version; plain ops before 2.1.
inline at::Tensor causalAttentionGqa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const int64_t heads = q.size(0);
#if HS_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q.unsqueeze(0), expandKvHeads(k, heads).unsqueeze(0),
                                          expandKvHeads(v, heads).unsqueeze(0), c10::nullopt, 0.0, true, scale)
      .squeeze(0);
#else
  auto s = at::matmul(q, expandKvHeads(k, heads).transpose(-2, -1)) * scale;
  s.masked_fill_(at::ones({q.size(1), k.size(1)}, q.options().dtype(at::kBool)).triu(1), -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(s, -1), expandKvHeads(v, heads));
#endif
}

// As causalAttentionGqa, on the fused CUDA kernel that LibTorch's dispatcher would pick (cuDNN,
// FlashAttention or memory-efficient), also returning that kernel's row log-sum-exp [H, N] (natural
// log of sum exp(scale q.k)). {undefined, undefined} where those kernels are not public (before 2.5)
// or none applies.
inline std::pair<at::Tensor, at::Tensor> causalAttentionGqaWithLse(const at::Tensor& q, const at::Tensor& k,
                                                                   const at::Tensor& v, double scale) {
#if HS_TORCH_AT_LEAST(2, 5)
  const int64_t heads = q.size(0), n = q.size(1);
  const at::Tensor qq = q.unsqueeze(0), kk = expandKvHeads(k, heads).unsqueeze(0), vv = expandKvHeads(v, heads).unsqueeze(0);
  // at::sdp::SDPBackend: 1 flash_attention, 2 efficient_attention, 3 cudnn_attention
  const int64_t backend = at::_fused_sdp_choice(qq, kk, vv, c10::nullopt, 0.0, true, scale, false);
  at::Tensor out, lse;
  if (backend == 3) {
    auto r = at::_scaled_dot_product_cudnn_attention(qq, kk, vv, c10::nullopt, true, 0.0, true, false, scale);
    out = std::get<0>(r), lse = std::get<1>(r);
  } else if (backend == 1) {
    auto r = at::_scaled_dot_product_flash_attention(qq, kk, vv, 0.0, true, false, scale);
    out = std::get<0>(r), lse = std::get<1>(r);
  } else if (backend == 2) {
    auto r = at::_scaled_dot_product_efficient_attention(qq, kk, vv, c10::nullopt, true, 0.0, true, scale);
    out = std::get<0>(r), lse = std::get<1>(r);
  } else {
    return {};
  }
  // [1, H, N], [1, H, N, 1] or padded along N (memory-efficient kernel)
  return {out.squeeze(0), lse.reshape({heads, -1}).narrow(1, 0, n)};
#else
  (void)q, (void)k, (void)v, (void)scale;
  return {};
#endif
}

}  // namespace hs::compat
