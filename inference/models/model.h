// A loaded causal LM (llama, mistral, qwen2, qwen3) with an instrumented forward pass.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "inference/formats/model_config.h"
#include "inference/hooks.h"
#include "inference/kv_cache.h"
#include "inference/memory_plan.h"
#include "inference/tokenizers/tokenizer.h"
#include "kernels/core/progress.h"

namespace hs {

class Checkpoint;
class Error;
struct RopeTables;

struct LoadOptions {
  std::string device = "cpu";  // "cpu" (float32 compute) or "cuda[:N]" (when built with CUDA)
  // Compute dtype of weights, activations and the KV cache: float32, bfloat16 or float16 (CUDA
  // only). Unset: float32 on the CPU, bfloat16 on CUDA.
  std::optional<at::ScalarType> dtype;
  bool loadTokenizer = true;   // a directory without a tokenizer still loads when false
  bool checkWeights = false;   // scan every weight for NaN/Inf and report tensor and count
  Progress* progress = nullptr;
};

struct ForwardOptions {
  ForwardHooks* hooks = nullptr;    // what to record/change (optional)
  ForwardRecord* record = nullptr;  // where recordings go (required when hooks record anything)
  bool allLogits = true;            // logits of every new token, or only of the last one
  int64_t mlpChunkTokens = 8192;    // the MLP runs on at most this many tokens at once (0: all), so
                                    // a long prompt never holds [N, intermediate] x 3
  Progress* progress = nullptr;
};

// Weights of one decoder layer (undefined tensors for absent biases/norms).
struct LayerWeights {
  at::Tensor inputNorm, postNorm;
  at::Tensor q, k, v, o, qBias, kBias, vBias, oBias, qNorm, kNorm;
  at::Tensor gate, up, down, gateBias, upBias, downBias;
};

class Model {
 public:
  // Loads DIR (config.json, safetensors weights, tokenizer). Every tensor is checked against the
  // architecture's table before compute; errors name the file and tensor.
  static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& options = {});
  // A model of `config`'s shape with random weights made directly on the device in the compute
  // dtype (benchmarks, and shapes no checkpoint is at hand for): matrices and embeddings
  // N(0, initStd^2), biases 0, norms 1; no tokenizer. The same seed gives the same weights on the
  // same device. Throws InvalidArgument for a config it cannot build.
  static std::unique_ptr<Model> randomInit(const ModelConfig& config, const LoadOptions& options,
                                           uint64_t seed, double initStd = 0.02);
  ~Model();

  const ModelConfig& config() const { return config_; }
  // The tokenizer, or nullptr when loaded without one.
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& dir() const { return dir_; }
  // Stored dtype(s) of the weights, e.g. "BF16" or "F16+F32".
  const std::string& storedDtype() const { return storedDtype_; }
  int64_t parameterCount() const { return parameterCount_; }
  at::Device device() const;
  at::ScalarType computeDtype() const { return computeDtype_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // An empty cache for this model, optionally with room for `tokens`; with a non-empty layout, a
  // hybrid cache whose streaming KV heads keep only sink + window entries (DuoAttention). Layers with
  // streaming heads must use full attention (no sliding window); their statistics, edits and probes
  // see the kept entries at their true positions (hybridAsFull in hybrid_attention.h).
  KvCache newCache(int64_t tokens = 0, const HybridLayout& layout = {}) const;
  // Runs `ids` after the tokens already in `cache`, appends them to it, and returns float32 logits
  // [n, vocab] (or [1, vocab] without allLogits). Checks ids, context length and memory first.
  at::Tensor forward(const std::vector<TokenId>& ids, KvCache& cache, const ForwardOptions& options = {});

  // Building blocks for callers that resume from cached activations (ablation sweeps):
  at::Tensor embed(const std::vector<TokenId>& ids) const;  // [n, hidden]
  // Layers [first, last) on hidden [n, hidden] whose first token is at position pos0 of `cache`.
  at::Tensor runLayers(at::Tensor hidden, int first, int last, KvCache& cache, int64_t pos0,
                       const ForwardOptions& options);
  at::Tensor unembed(const at::Tensor& hidden, const ForwardOptions& options) const;  // final norm + lm_head

  // Checks ids, the context length, and that the call fits in free host or device memory (throws
  // OutOfMemory saying how many tokens would fit); returns the memory estimate it checked.
  MemoryCheck checkRequest(const std::vector<TokenId>& ids, const KvCache& cache,
                           const ForwardOptions& options) const;

  // Read-only weights, e.g. for a reference forward on the same tensors (compute dtype, on device()).
  const LayerWeights& layerWeights(int layer) const { return layers_.at(static_cast<size_t>(layer)); }
  const at::Tensor& embeddingWeight() const { return embedding_; }
  const at::Tensor& finalNormWeight() const { return finalNorm_; }
  const at::Tensor& lmHeadWeight() const { return lmHead_; }

 private:
  Model() = default;
  at::Tensor attentionBlock(int layer, const at::Tensor& x, KvCache& cache, int64_t pos0, const RopeTables& rope,
                            const ForwardOptions& options);
  at::Tensor tap(const TapPoint& p, at::Tensor value, const ForwardOptions& options) const;
  at::Tensor mlp(const LayerWeights& w, const at::Tensor& x, int64_t chunkTokens) const;
  // An allocator failure inside a forward that the estimate had let through, as OutOfMemory.
  Error outOfMemoryDuringForward(int64_t tokens, const MemoryCheck& planned, const std::string& cause) const;

  std::string dir_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::shared_ptr<Checkpoint> checkpoint_;  // keeps mapped weights alive
  std::string storedDtype_;
  int64_t parameterCount_ = 0;
  at::ScalarType computeDtype_ = at::kFloat;
  std::vector<std::string> warnings_;
  at::Tensor embedding_, finalNorm_, lmHead_;
  std::vector<LayerWeights> layers_;
};

}  // namespace hs
