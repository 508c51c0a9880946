// Token generation: greedy or sampled (temperature, top-k, top-p, seed), stopping at EOS.
#pragma once

#include <ATen/core/Generator.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "inference/models/model.h"

namespace hs {

struct SamplingOptions {
  bool greedy = true;
  double temperature = 1.0;  // > 0; only when !greedy
  int64_t topK = 0;          // 0: no top-k cut
  double topP = 1.0;         // (0, 1]; 1: no nucleus cut
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t maxNewTokens = 32;
  SamplingOptions sampling;
  bool stopOnEos = true;
  std::vector<TokenId> eosIds;   // empty: the model's (config.json / generation_config / tokenizer)
  ForwardOptions forward;        // hooks apply to the prompt and to every decode step
  HybridLayout cacheLayout;      // streaming KV heads keep sink + window (DuoAttention); empty: full cache
  // Called after each new token; returning false stops generation.
  std::function<bool(TokenId)> onToken;
};

struct GenerateResult {
  std::vector<TokenId> tokens;   // new tokens only (EOS included when it stopped the run)
  std::string stopReason;        // "eos", "max_new_tokens", "callback", "max_position_embeddings"
};

// Picks the next token from float32 logits [vocab] (validates the options).
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  TokenId next(const at::Tensor& logits);

 private:
  SamplingOptions options_;
  at::Generator generator_;
};

// Runs the prompt, then decodes up to maxNewTokens with the KV cache.
GenerateResult generate(Model& model, const std::vector<TokenId>& prompt, const GenerateOptions& options);

// EOS ids of a model: config.json's eos_token_id, else the tokenizer's.
std::vector<TokenId> modelEosIds(const Model& model);

}  // namespace hs
