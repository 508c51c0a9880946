// The llama-family forward pass. Every hook point is named with its layer (see inference/hooks.h):
// resid_pre -> [q, k, v] -> attention (edits, statistics) -> z -> attn_out -> resid_mid -> mlp_out
// -> resid_post, and ln_final after the last layer.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <optional>

#include "inference/models/model.h"
#include "inference/models/rope.h"
#include "kernels/core/error.h"

namespace hs {

namespace {

// transformers' RMSNorm: normalise in float32, then scale by the weight.
at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto xf = x.to(at::kFloat);
  const auto normed = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

bool wantsGrad(const ForwardOptions& o) {
  if (!o.hooks) return false;
  for (const auto& [layer, edits] : o.hooks->edits)
    for (const auto& mix : edits.mixes)
      if (mix.alpha.requires_grad()) return true;
  return false;
}

}  // namespace

at::Tensor Model::tap(const TapPoint& p, at::Tensor value, const ForwardOptions& o) const {
  if (!o.hooks) return value;
  if (o.hooks->tapFunction && o.hooks->patch.count(p)) {
    at::Tensor replaced = o.hooks->tapFunction(p, value);
    if (replaced.defined()) {
      check(replaced.sizes() == value.sizes(), ErrorKind::InvalidArgument,
            "replacement has shape " + std::string(c10::str(replaced.sizes())) + ", expected " +
                std::string(c10::str(value.sizes())),
            {}, tapName(p));
      value = replaced.to(value.options());
    }
  }
  if (o.hooks->record.count(p)) o.record->taps[p] = value.detach();
  return value;
}

at::Tensor Model::embed(const std::vector<TokenId>& ids) const {
  const auto idx = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong).to(device());
  return at::embedding(embedding_, idx);
}

at::Tensor Model::attentionBlock(int l, const at::Tensor& x, KvCache& cache, int64_t pos0, const RopeTables& rope,
                                 const ForwardOptions& o) {
  const auto& w = layers_[static_cast<size_t>(l)];
  const auto& c = config_;
  const int64_t n = x.size(0), heads = c.numHeads, kvHeads = c.numKvHeads, dim = c.headDim;
  auto q = linear(x, w.q, w.qBias).view({n, heads, dim});
  auto k = linear(x, w.k, w.kBias).view({n, kvHeads, dim});
  auto v = linear(x, w.v, w.vBias).view({n, kvHeads, dim});
  if (c.qkNorm) {
    q = rmsNorm(q, w.qNorm, c.rmsNormEps);
    k = rmsNorm(k, w.kNorm, c.rmsNormEps);
  }
  q = tap({Hook::Q, l}, applyRope(q.transpose(0, 1), rope), o);
  k = tap({Hook::K, l}, applyRope(k.transpose(0, 1), rope), o);
  v = tap({Hook::V, l}, v.transpose(0, 1).contiguous(), o);
  const auto [keys, values] = cache.append(l, k, v);

  kernels::AttentionCall call;
  call.q = q;
  call.k = keys;
  call.v = values;
  call.queryStart = pos0;
  call.scale = 1.0 / std::sqrt(static_cast<double>(dim));
  call.slidingWindow = c.slidingWindow.empty() ? 0 : c.slidingWindow[static_cast<size_t>(l)];
  kernels::LayerStats stats;
  bool withStats = false;
  if (o.hooks) {
    const auto e = o.hooks->edits.find(l);
    if (e != o.hooks->edits.end()) call.edits = &e->second;
    if (o.hooks->stats && (o.hooks->statsLayers.empty() || o.hooks->statsLayers.count(l))) {
      call.stats = &*o.hooks->stats;
      withStats = true;
    }
    if (o.hooks->probe) {
      const AttentionProbe& probe = o.hooks->probe;
      call.observer = [&probe, l](int64_t first, const at::Tensor& probs) { probe(l, first, probs); };
    }
  }
  auto z = kernels::attention(call, withStats ? &stats : nullptr);
  if (withStats) o.record->stats[l].append(stats);
  z = tap({Hook::HeadOut, l}, z.transpose(0, 1).to(x.scalar_type()), o);  // [n, H, D]
  return linear(z.reshape({n, heads * dim}), w.o, w.oBias);
}

at::Tensor Model::runLayers(at::Tensor h, int first, int last, KvCache& cache, int64_t pos0,
                            const ForwardOptions& o) {
  check(0 <= first && first <= last && last <= config_.numLayers, ErrorKind::InvalidArgument,
        "layer range out of bounds", {}, "layers");
  Progress local;
  Progress& progress = o.progress ? *o.progress : local;
  const RopeTables rope = ropeTables(config_, pos0, h.size(0), h.device(), h.scalar_type());
  for (int l = first; l < last; ++l) {
    progress.throwIfCancelled("layer " + std::to_string(l));
    const auto& w = layers_[static_cast<size_t>(l)];
    h = tap({Hook::ResidPre, l}, h, o);
    const auto attn = tap({Hook::AttnOut, l}, attentionBlock(l, rmsNorm(h, w.inputNorm, config_.rmsNormEps), cache, pos0, rope, o), o);
    h = tap({Hook::ResidMid, l}, h + attn, o);
    const auto x = rmsNorm(h, w.postNorm, config_.rmsNormEps);
    const auto act = at::silu(linear(x, w.gate, w.gateBias)) * linear(x, w.up, w.upBias);
    const auto mlp = tap({Hook::MlpOut, l}, linear(act, w.down, w.downBias), o);
    h = tap({Hook::ResidPost, l}, h + mlp, o);
    check(h.isfinite().all().item<bool>(), ErrorKind::Numerical,
          "hidden state became NaN/Inf in layer " + std::to_string(l) +
              " (check the weights of that layer, e.g. with --check-weights)",
          dir_, "model.layers." + std::to_string(l));
    progress.report(static_cast<double>(l + 1) / static_cast<double>(config_.numLayers), "forward");
  }
  return h;
}

at::Tensor Model::unembed(const at::Tensor& h, const ForwardOptions& o) const {
  const auto normed = tap({Hook::FinalNorm, -1}, rmsNorm(h, finalNorm_, config_.rmsNormEps), o);
  return at::linear(normed, lmHead_).to(at::kFloat);
}

at::Tensor Model::forward(const std::vector<TokenId>& ids, KvCache& cache, const ForwardOptions& o) {
  checkRequest(ids, cache.length());
  check(!o.hooks || o.record || (o.hooks->record.empty() && !o.hooks->stats), ErrorKind::InvalidArgument,
        "hooks record statistics or activations but no ForwardRecord was given", {}, "forward");
  std::optional<at::NoGradGuard> noGrad;
  if (!wantsGrad(o)) noGrad.emplace();
  const int64_t pos0 = cache.length(), n = static_cast<int64_t>(ids.size());
  auto h = runLayers(embed(ids), 0, static_cast<int>(config_.numLayers), cache, pos0, o);
  cache.commit(n);
  if (!o.allLogits) h = h.narrow(0, n - 1, 1);
  auto logits = unembed(h, o);
  check(logits.isfinite().all().item<bool>(), ErrorKind::Numerical,
        "logits contain NaN/Inf (lm_head or final norm weights?)", dir_, "lm_head.weight");
  return logits;
}

}  // namespace hs
