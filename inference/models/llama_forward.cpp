// The llama-family forward pass. Every hook point is named with its layer (see inference/hooks.h):
// resid_pre -> [q, k, v] -> attention (edits, statistics) -> z -> attn_out -> resid_mid -> mlp_out
// -> resid_post, and ln_final after the last layer.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "inference/models/hybrid_attention.h"
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

// Whether layer l computes attention statistics.
bool statsWanted(int l, const ForwardOptions& o) {
  return o.hooks && o.hooks->stats && (o.hooks->statsLayers.empty() || o.hooks->statsLayers.count(l));
}

// Whether layer l has anything to observe or change: statistics, edits or a probability probe.
bool instrumented(int l, const ForwardOptions& o) {
  if (!o.hooks) return false;
  const auto e = o.hooks->edits.find(l);
  return (e != o.hooks->edits.end() && !e->second.empty()) || statsWanted(l, o) ||
         static_cast<bool>(o.hooks->probe);
}

// Appends t's smallest and largest value (device tensors) to `out`, nothing for an empty t. Both are
// finite exactly when every value of t is (aminmax propagates NaN): one reduction kernel, where
// isfinite().all() launches five (==, abs, !=, *, all) for every layer of every decode step.
void appendExtremes(const at::Tensor& t, std::vector<at::Tensor>& out) {
  if (t.numel() == 0) return;
  auto [lo, hi] = at::aminmax(t.requires_grad() ? t.detach() : t);  // a check, not part of any graph
  out.push_back(std::move(lo));
  out.push_back(std::move(hi));
}

// Index of the first NaN/Inf among one-element tensors, read to the host in one copy (which waits
// for the device), or -1.
int64_t firstNonFinite(const std::vector<at::Tensor>& values) {
  if (values.empty()) return -1;
  const auto host = at::stack(values).to(at::kCPU, at::kDouble).contiguous();
  const double* p = host.data_ptr<double>();
  for (int64_t i = 0; i < host.numel(); ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
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

at::Tensor Model::attentionBlock(int l, const at::Tensor& x, KvCache& cache, int64_t pos0,
                                 const RopeTables& rope, const ForwardOptions& o) {
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
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  at::Tensor keys, values;
  kernels::LayerEdits hybridEdits;  // a hybrid layer's edits: the hooks' plus its streaming heads' masks
  const kernels::LayerEdits* edits = nullptr;
  if (o.hooks) {
    const auto e = o.hooks->edits.find(l);
    if (e != o.hooks->edits.end()) edits = &e->second;
  }
  if (cache.streamingHeads(l) > 0) {
    const auto view = cache.stage(l, k, v, c.groupSize());
    if (!instrumented(l, o)) {
      auto z =
          tap({Hook::HeadOut, l}, hybridAttention(q, view, cache.layout(), pos0, scale).transpose(0, 1), o);
      return linear(z.reshape({n, heads * dim}), w.o, w.oBias);
    }
    // Observed or edited: the same attention as a full cache over the kept entries, at their positions.
    auto full = hybridAsFull(view, cache.layout(), n, heads);
    keys = std::move(full.keys), values = std::move(full.values);
    if (edits) hybridEdits = *edits;
    for (int h : full.streamQueryHeads)
      hybridEdits.masks.emplace_back(
          h, kernels::HeadMask::sinkWindow(cache.layout().sink, cache.layout().window));
    edits = &hybridEdits;
  } else {
    std::tie(keys, values) = cache.append(l, k, v);
  }

  kernels::AttentionCall call;
  call.q = q;
  call.k = keys;
  call.v = values;
  call.queryStart = pos0;
  call.scale = scale;
  call.slidingWindow = c.slidingWindow.empty() ? 0 : c.slidingWindow[static_cast<size_t>(l)];
  call.statsInFlight = true;  // runLayers waits for them after the last layer
  kernels::LayerStats stats;
  const bool withStats = statsWanted(l, o);
  call.edits = edits;
  if (withStats) call.stats = &*o.hooks->stats;
  if (o.hooks && o.hooks->probe) {
    const AttentionProbe& probe = o.hooks->probe;
    call.observer = [&probe, l](int64_t first, const at::Tensor& probs) { probe(l, first, probs); };
  }
  auto z = kernels::attention(call, withStats ? &stats : nullptr);
  if (withStats) o.record->stats[l].append(stats);
  z = tap({Hook::HeadOut, l}, z.transpose(0, 1).to(x.scalar_type()), o);  // [n, H, D]
  return linear(z.reshape({n, heads * dim}), w.o, w.oBias);
}

at::Tensor Model::mlp(const LayerWeights& w, const at::Tensor& x, int64_t chunkTokens) const {
  auto run = [&](const at::Tensor& xs) {
    return linear(at::silu(linear(xs, w.gate, w.gateBias)) * linear(xs, w.up, w.upBias), w.down, w.downBias);
  };
  const int64_t n = x.size(0);
  if (chunkTokens <= 0 || n <= chunkTokens) return run(x);
  // A long prompt: [chunk, intermediate] x 3 at a time instead of [N, intermediate] x 3.
  auto out = at::empty({n, config_.hiddenSize}, x.options());
  for (int64_t s = 0; s < n; s += chunkTokens) {
    const int64_t len = std::min(chunkTokens, n - s);
    out.narrow(0, s, len).copy_(run(x.narrow(0, s, len)));
  }
  return out;
}

at::Tensor Model::runLayers(at::Tensor h, int first, int last, KvCache& cache, int64_t pos0,
                            const ForwardOptions& o) {
  check(0 <= first && first <= last && last <= config_.numLayers, ErrorKind::InvalidArgument,
        "layer range out of bounds", {}, "layers");
  Progress local;
  Progress& progress = o.progress ? *o.progress : local;
  const RopeTables rope = ropeTables(config_, pos0, h.size(0), h.device(), h.scalar_type());
  // Each layer's smallest and largest hidden value (appendExtremes), read once after the last layer: a
  // read per layer would stall the GPU's queue 32 times per decode step.
  std::vector<at::Tensor> extremes;
  // Statistics travel to the host while later layers run (AttentionCall::statsInFlight); they hold
  // their values once this returns, or throws (the guard waits, its errors giving way to the first).
  struct StatsArrival {
    ForwardRecord* record;
    ~StatsArrival() {
      if (!record) return;
      for (auto& entry : record->stats) {
        try {
          entry.second.wait();
        } catch (const std::exception&) {  // the error that unwinds this is the one to report
        }
      }
    }
  } arrival{o.record};
  // A LibTorch error inside a layer (a failed kernel, a tap function's TORCH_CHECK) becomes an
  // hs::Error naming the layer; out-of-memory passes through to forward(), which adds the estimate.
  // On CUDA an asynchronous kernel failure may surface at a later layer or at the final check.
  auto layerError = [&](const c10::Error& e, const std::string& where, const std::string& field) {
    const std::string what = e.what_without_backtrace();
    return Error(device().is_cpu() ? ErrorKind::Internal : ErrorKind::Device,
                 where + ": LibTorch error: " + what.substr(0, what.find('\n')), dir_, field);
  };
  for (int l = first; l < last; ++l) {
    progress.throwIfCancelled("layer " + std::to_string(l));
    try {
      const auto& w = layers_[static_cast<size_t>(l)];
      h = tap({Hook::ResidPre, l}, h, o);
      const auto attn =
          tap({Hook::AttnOut, l},
              attentionBlock(l, rmsNorm(h, w.inputNorm, config_.rmsNormEps), cache, pos0, rope, o), o);
      h = tap({Hook::ResidMid, l}, h + attn, o);
      const auto out =
          tap({Hook::MlpOut, l}, mlp(w, rmsNorm(h, w.postNorm, config_.rmsNormEps), o.mlpChunkTokens), o);
      h = tap({Hook::ResidPost, l}, h + out, o);
      appendExtremes(h, extremes);
    } catch (const c10::OutOfMemoryError&) {
      throw;
    } catch (const c10::Error& e) {
      throw layerError(e, "layer " + std::to_string(l), "model.layers." + std::to_string(l));
    }
    progress.report(static_cast<double>(l + 1) / static_cast<double>(config_.numLayers), "forward");
  }
  if (!extremes.empty()) {
    int64_t nonFinite = -1;
    try {
      nonFinite = firstNonFinite(extremes);  // waits for the device: late CUDA errors show here
    } catch (const c10::OutOfMemoryError&) {
      throw;
    } catch (const c10::Error& e) {
      throw layerError(e, "layers " + std::to_string(first) + ".." + std::to_string(last - 1),
                       "model.layers");
    }
    if (nonFinite >= 0) {
      const int bad = first + static_cast<int>(nonFinite / 2);  // two values per layer
      throw Error(ErrorKind::Numerical,
                  "hidden state became NaN/Inf in layer " + std::to_string(bad) +
                      " (check the weights of that layer, e.g. with --check-weights)",
                  dir_, "model.layers." + std::to_string(bad));
    }
  }
  if (o.record) {
    for (auto& entry : o.record->stats) {
      entry.second.wait();
      entry.second.inFlight = nullptr;
    }
    arrival.record = nullptr;
  }
  return h;
}

at::Tensor Model::unembed(const at::Tensor& h, const ForwardOptions& o) const {
  const auto normed = tap({Hook::FinalNorm, -1}, rmsNorm(h, finalNorm_, config_.rmsNormEps), o);
  return at::linear(normed, lmHead_).to(at::kFloat);
}

at::Tensor Model::forward(const std::vector<TokenId>& ids, KvCache& cache, const ForwardOptions& o) {
  const MemoryCheck planned = checkRequest(ids, cache, o);
  check(!o.hooks || o.record || (o.hooks->record.empty() && !o.hooks->stats), ErrorKind::InvalidArgument,
        "hooks record statistics or activations but no ForwardRecord was given", {}, "forward");
  std::optional<at::NoGradGuard> noGrad;
  if (!wantsGrad(o)) noGrad.emplace();
  const int64_t pos0 = cache.length(), n = static_cast<int64_t>(ids.size());
  // The cache keeps what it had if anything below fails (staged streaming entries are dropped).
  struct DropStagedOnUnwind {
    KvCache& cache;
    bool done = false;
    ~DropStagedOnUnwind() {
      if (!done) cache.discardStaged();
    }
  } guard{cache};
  try {
    if (n > 1) cache.reserve(pos0 + n);  // a prompt: exactly, not the doubling that decode steps use
    auto h = runLayers(embed(ids), 0, static_cast<int>(config_.numLayers), cache, pos0, o);
    cache.commit(n);
    guard.done = true;
    if (!o.allLogits) h = h.narrow(0, n - 1, 1);
    auto logits = unembed(h, o);
    std::vector<at::Tensor> logitExtremes;
    appendExtremes(logits, logitExtremes);
    check(firstNonFinite(logitExtremes) < 0, ErrorKind::Numerical,
          "logits contain NaN/Inf (lm_head or final norm weights?)", dir_, "lm_head.weight");
    return logits;
  } catch (const c10::OutOfMemoryError& e) {
    throw outOfMemoryDuringForward(n, planned, e.what_without_backtrace());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::OutOfMemory) throw;
    throw outOfMemoryDuringForward(n, planned, e.what());
  }
}

Error Model::outOfMemoryDuringForward(int64_t tokens, const MemoryCheck& planned,
                                      const std::string& cause) const {
  const std::string first = cause.substr(0, cause.find('\n'));
  return Error(ErrorKind::OutOfMemory,
               std::to_string(tokens) + " tokens ran out of memory on " + device().str() +
                   " during the forward although the estimate (about " +
                   std::to_string(planned.needBytes >> 20) + " MiB, " +
                   std::to_string(planned.freeBytes >> 20) +
                   " MiB free) let them run; fewer tokens would fit. Cause: " + first,
               {}, "prompt");
}

}  // namespace hs
