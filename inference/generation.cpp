#include "inference/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "kernels/core/error.h"

namespace hs {

Sampler::Sampler(const SamplingOptions& o) : options_(o), generator_(at::detail::createCPUGenerator(o.seed)) {
  if (o.greedy) return;
  check(o.temperature > 0.0, ErrorKind::InvalidArgument, "temperature must be > 0 (use --greedy for argmax)", {},
        "--temperature");
  check(o.topK >= 0, ErrorKind::InvalidArgument, "top-k must be >= 0", {}, "--top-k");
  check(o.topP > 0.0 && o.topP <= 1.0, ErrorKind::InvalidArgument, "top-p must be in (0, 1]", {}, "--top-p");
}

TokenId Sampler::next(const at::Tensor& logitsIn) {
  const auto logits = logitsIn.to(at::kCPU, at::kFloat).reshape({-1});
  if (options_.greedy) return static_cast<TokenId>(logits.argmax().item<int64_t>());
  // Same order as transformers' warpers: temperature, top-k, top-p, then sample.
  auto scaled = logits / options_.temperature;
  if (options_.topK > 0 && options_.topK < scaled.numel()) {
    const auto kth = std::get<0>(scaled.topk(options_.topK)).min();
    scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
  }
  if (options_.topP < 1.0) {
    const auto [sorted, order] = scaled.sort(-1, true);
    const auto probs = at::softmax(sorted, -1);
    const auto before = probs.cumsum(-1) - probs;  // mass of strictly more likely tokens
    auto drop = before >= options_.topP;
    drop[0] = false;
    const auto dropOriginal = at::zeros_like(drop).scatter_(0, order, drop);
    scaled = scaled.masked_fill(dropOriginal, -std::numeric_limits<float>::infinity());
  }
  const auto probs = at::softmax(scaled, -1);
  return static_cast<TokenId>(at::multinomial(probs, 1, false, generator_).item<int64_t>());
}

std::vector<TokenId> modelEosIds(const Model& model) {
  std::vector<TokenId> ids;
  for (int64_t id : model.config().eosTokenIds) ids.push_back(static_cast<TokenId>(id));
  if (ids.empty() && model.tokenizer()) ids = model.tokenizer()->eosIds();
  return ids;
}

GenerateResult generate(Model& model, const std::vector<TokenId>& prompt, const GenerateOptions& o) {
  check(o.maxNewTokens >= 0, ErrorKind::InvalidArgument, "max-new-tokens must be >= 0", {}, "--max-new-tokens");
  Sampler sampler(o.sampling);
  const auto eos = o.eosIds.empty() ? modelEosIds(model) : o.eosIds;
  const auto& cfg = model.config();
  const int64_t limit = cfg.rope.type == RopeType::Dynamic ? INT64_MAX / 2 : cfg.maxPositions;
  auto cache = model.newCache(std::min<int64_t>(limit, static_cast<int64_t>(prompt.size()) + o.maxNewTokens),
                              o.cacheLayout);
  ForwardOptions fo = o.forward;
  fo.allLogits = false;
  GenerateResult result;
  result.stopReason = "max_new_tokens";
  if (o.maxNewTokens == 0) return result;
  auto logits = model.forward(prompt, cache, fo);
  while (true) {
    const TokenId next = sampler.next(logits[0]);
    result.tokens.push_back(next);
    if (o.stopOnEos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      result.stopReason = "eos";
      break;
    }
    if (o.onToken && !o.onToken(next)) {
      result.stopReason = "callback";
      break;
    }
    if (static_cast<int64_t>(result.tokens.size()) >= o.maxNewTokens) break;
    if (cache.length() + 1 > limit) {
      result.stopReason = "max_position_embeddings";
      break;
    }
    logits = model.forward({next}, cache, fo);
  }
  return result;
}

}  // namespace hs
