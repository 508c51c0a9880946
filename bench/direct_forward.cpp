#include "bench/direct_forward.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (LibTorch 2.x no longer brings it with ATen.h)

#include <cmath>
#include <limits>

#include "inference/formats/checkpoint.h"
#include "kernels/core/error.h"

namespace hs::bench {

namespace {

at::Tensor mappedF32(const Checkpoint& ckpt, const std::string& name) {
  const TensorView* tv = ckpt.find(name);
  check(tv != nullptr, ErrorKind::Mismatch, "tensor missing", ckpt.dir(), name);
  check(tv->dtype == DType::F32, ErrorKind::Unsupported,
        "the direct forward runs on F32 weights, found " + dtypeName(tv->dtype), tv->file, name);
  return at::from_blob(const_cast<std::byte*>(tv->data), tv->shape, at::kFloat);
}

// transformers' rotate_half: (x1, x2) -> (-x2, x1) over the last dimension.
at::Tensor rotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

DirectForward::DirectForward(std::shared_ptr<const Checkpoint> checkpoint, const ModelConfig& config)
    : checkpoint_(std::move(checkpoint)), config_(config) {
  const Checkpoint& c = *checkpoint_;
  embedding_ = mappedF32(c, "model.embed_tokens.weight");
  finalNorm_ = mappedF32(c, "model.norm.weight");
  lmHead_ = mappedF32(c, "lm_head.weight");
  for (int64_t l = 0; l < config.numLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    layers_.push_back(
        {mappedF32(c, p + "input_layernorm.weight"), mappedF32(c, p + "post_attention_layernorm.weight"),
         mappedF32(c, p + "self_attn.q_proj.weight"), mappedF32(c, p + "self_attn.k_proj.weight"),
         mappedF32(c, p + "self_attn.v_proj.weight"), mappedF32(c, p + "self_attn.o_proj.weight"),
         mappedF32(c, p + "mlp.gate_proj.weight"), mappedF32(c, p + "mlp.up_proj.weight"),
         mappedF32(c, p + "mlp.down_proj.weight")});
  }
  check(config.rope.type == RopeType::Default && config.rope.partialRotaryFactor == 1.0,
        ErrorKind::Unsupported, "the direct forward implements plain RoPE only", config.path, "rope_scaling");
  const int64_t dim = config.headDim;
  invFreq_ = 1.0 / at::pow(config.rope.theta, at::arange(0, dim, 2, at::kFloat) / static_cast<double>(dim));
}

DirectCache DirectForward::newCache(int64_t capacity) const {
  DirectCache cache;
  for (int64_t l = 0; l < config_.numLayers; ++l) {
    cache.keys.push_back(at::empty({config_.numKvHeads, capacity, config_.headDim}));
    cache.values.push_back(at::empty({config_.numKvHeads, capacity, config_.headDim}));
  }
  return cache;
}

at::Tensor DirectForward::rmsNorm(const at::Tensor& x, const at::Tensor& weight) const {
  return weight * (x * at::rsqrt(x.pow(2).mean(-1, true) + config_.rmsNormEps));
}

at::Tensor DirectForward::forward(const std::vector<int64_t>& ids, DirectCache& cache) const {
  at::NoGradGuard noGrad;
  const int64_t n = static_cast<int64_t>(ids.size()), pos0 = cache.length, total = pos0 + n;
  check(total <= cache.keys.front().size(1), ErrorKind::InvalidArgument, "direct cache too small", {},
        "cache");
  const int64_t heads = config_.numHeads, kvHeads = config_.numKvHeads, dim = config_.headDim;
  const int64_t group = heads / kvHeads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));

  // Computed once per call, shared by every layer: RoPE tables and the causal mask.
  const auto positions = at::arange(pos0, total, at::kFloat);
  const auto freqs = at::outer(positions, invFreq_);
  const auto angles = at::cat({freqs, freqs}, -1);  // [n, D]
  const auto cos = angles.cos(), sin = angles.sin();
  const auto hidden =
      at::arange(total, at::kLong).unsqueeze(0) > at::arange(pos0, total, at::kLong).unsqueeze(1);

  auto h = at::embedding(embedding_, at::tensor(ids, at::kLong));
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& w = layers_[l];
    const auto x = rmsNorm(h, w.inputNorm);
    auto q = at::linear(x, w.q).view({n, heads, dim}).transpose(0, 1);
    auto k = at::linear(x, w.k).view({n, kvHeads, dim}).transpose(0, 1);
    const auto v = at::linear(x, w.v).view({n, kvHeads, dim}).transpose(0, 1);
    q = q * cos + rotateHalf(q) * sin;
    k = k * cos + rotateHalf(k) * sin;
    cache.keys[l].narrow(1, pos0, n).copy_(k);
    cache.values[l].narrow(1, pos0, n).copy_(v);
    const auto keys = cache.keys[l].narrow(1, 0, total), values = cache.values[l].narrow(1, 0, total);
    // All heads at once; the G query heads of one KV head share a matmul (no repeat_kv copy).
    auto scores =
        at::matmul(q.reshape({kvHeads, group * n, dim}), keys.transpose(1, 2)).view({heads, n, total});
    scores.mul_(scale).masked_fill_(hidden, -std::numeric_limits<float>::infinity());
    const auto probs = at::softmax(scores, -1);
    const auto z = at::matmul(probs.view({kvHeads, group * n, total}), values).view({heads, n, dim});
    h = h + at::linear(z.transpose(0, 1).reshape({n, heads * dim}), w.o);
    const auto y = rmsNorm(h, w.postNorm);
    h = h + at::linear(at::silu(at::linear(y, w.gate)) * at::linear(y, w.up), w.down);
  }
  cache.length = total;
  return at::linear(rmsNorm(h, finalNorm_), lmHead_);
}

}  // namespace hs::bench
