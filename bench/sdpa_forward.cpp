#include "bench/sdpa_forward.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "inference/models/model.h"
#include "kernels/core/error.h"
#include "kernels/core/torch_compat.h"

namespace hs::bench {

namespace {

// transformers' LlamaRMSNorm: float32 statistics, the weight applied in the compute dtype.
at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto xf = x.to(at::kFloat);
  return weight * (xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

at::Tensor rotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

SdpaForward::SdpaForward(const Model& model) : model_(model) {
  const auto& c = model.config();
  check(c.rope.type == RopeType::Default && c.rope.partialRotaryFactor == 1.0, ErrorKind::Unsupported,
        "the SDPA reference implements plain RoPE only", c.path, "rope_scaling");
  for (const int64_t w : c.slidingWindow)
    check(w == 0, ErrorKind::Unsupported, "the SDPA reference has no sliding windows", c.path,
          "sliding_window");
}

at::Tensor SdpaForward::prefill(const std::vector<int64_t>& ids) const {
  at::NoGradGuard noGrad;
  const auto& c = model_.config();
  const auto device = model_.device();
  const auto dtype = model_.computeDtype();
  const int64_t n = static_cast<int64_t>(ids.size()), heads = c.numHeads, kvHeads = c.numKvHeads;
  const int64_t dim = c.headDim;

  // RoPE as transformers computes it: float32 angles, cos/sin cast to the compute dtype.
  const auto invFreq =
      1.0 /
      at::pow(c.rope.theta, at::arange(0, dim, 2, at::TensorOptions().dtype(at::kFloat).device(device)) /
                                static_cast<double>(dim));
  const auto freqs = at::outer(at::arange(n, at::TensorOptions().dtype(at::kFloat).device(device)), invFreq);
  const auto angles = at::cat({freqs, freqs}, -1);
  const auto cos = angles.cos().to(dtype), sin = angles.sin().to(dtype);

  std::vector<at::Tensor> keys, values;  // what a KV cache would hold afterwards
  auto h = at::embedding(model_.embeddingWeight(), at::tensor(ids, at::kLong).to(device));
  for (int l = 0; l < static_cast<int>(c.numLayers); ++l) {
    const auto& w = model_.layerWeights(l);
    const auto x = rmsNorm(h, w.inputNorm, c.rmsNormEps);
    auto q = linear(x, w.q, w.qBias).view({n, heads, dim});
    auto k = linear(x, w.k, w.kBias).view({n, kvHeads, dim});
    const auto v = linear(x, w.v, w.vBias).view({n, kvHeads, dim}).transpose(0, 1);
    if (c.qkNorm) {
      q = rmsNorm(q, w.qNorm, c.rmsNormEps);
      k = rmsNorm(k, w.kNorm, c.rmsNormEps);
    }
    q = q.transpose(0, 1), k = k.transpose(0, 1);
    q = q * cos + rotateHalf(q) * sin;
    k = k * cos + rotateHalf(k) * sin;
    keys.push_back(k.contiguous());
    values.push_back(v.contiguous());
    // is_causal SDPA with k/v expanded per query group (FlashAttention on CUDA).
    const auto z =
        compat::causalAttentionGqa(q, keys.back(), values.back(), 1.0 / std::sqrt(static_cast<double>(dim)));
    h = h + linear(z.transpose(0, 1).reshape({n, heads * dim}), w.o, w.oBias);
    const auto y = rmsNorm(h, w.postNorm, c.rmsNormEps);
    h = h + linear(at::silu(linear(y, w.gate, w.gateBias)) * linear(y, w.up, w.upBias), w.down, w.downBias);
  }
  const auto last = rmsNorm(h.narrow(0, n - 1, 1), model_.finalNormWeight(), c.rmsNormEps);
  return at::linear(last, model_.lmHeadWeight()).to(at::kFloat);
}

}  // namespace hs::bench
