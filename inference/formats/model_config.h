// config.json of a Hugging Face causal LM (model_type llama, mistral, qwen2, qwen3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hs {

enum class RopeType { Default, Linear, Dynamic, Llama3 };

// Rotary embedding parameters, from top-level rope_theta/rope_scaling (older checkpoints) or the
// nested rope_parameters that transformers 5 writes.
struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;               // linear, dynamic, llama3
  double lowFreqFactor = 1.0;        // llama3
  double highFreqFactor = 4.0;       // llama3
  int64_t originalMaxPositions = 0;  // llama3 only; dynamic scales against max_position_embeddings
  double partialRotaryFactor = 1.0;  // fraction of head_dim that is rotated
};

// The hyperparameters every supported architecture shares; architecture-specific switches are flags.
struct ModelConfig {
  std::string path;       // the config.json it came from
  std::string modelType;  // "llama", "mistral", "qwen2", "qwen3"
  std::vector<std::string> architectures;
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;  // absent: llama numHeads, mistral 8, qwen2/qwen3 32 (transformers defaults)
  int64_t headDim = 0;     // explicit head_dim, else hiddenSize / numHeads (qwen3: 128)
  int64_t vocabSize = 0;
  int64_t maxPositions = 0;
  double rmsNormEps = 1e-6;
  RopeConfig rope;
  bool tieWordEmbeddings = false;
  bool qkvBias = false;  // q/k/v projections have biases (qwen2 always; llama/qwen3 attention_bias)
  bool outBias = false;  // o_proj has a bias (llama/qwen3 attention_bias)
  bool mlpBias = false;  // llama mlp_bias
  bool qkNorm = false;   // qwen3 per-head RMSNorm on q and k
  std::string hiddenAct = "silu";
  // Per-layer sliding window: slidingWindow[l] = 0 for full attention, else the window length
  // (a key j is visible from query i when i - window < j <= i, as in transformers). From
  // layer_types when present (not llama), else mistral: every layer; qwen2/qwen3: layers from
  // max_window_layers on, and only with use_sliding_window.
  std::vector<int64_t> slidingWindow;
  std::optional<int64_t> bosTokenId;
  std::vector<int64_t> eosTokenIds;
  std::string torchDtype;  // as written ("bfloat16", ...), informational

  int64_t groupSize() const { return numHeads / numKvHeads; }  // query heads per KV head
};

// Parses config.json text; `path` is used in error messages. Checks JSON types (integers must be
// JSON integers), ranges and caps (Corrupt), consistency (heads % kv_heads, even head_dim: Mismatch),
// and refuses unknown model_type, rope type or activation (Unsupported) rather than guessing.
ModelConfig parseModelConfig(const std::string& jsonText, const std::string& path);
// Reads and parses DIR/config.json (or a config.json file path).
ModelConfig loadModelConfig(const std::string& pathOrDir);

}  // namespace hs
