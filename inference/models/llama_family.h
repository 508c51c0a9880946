// The llama family (llama, mistral, qwen2, qwen3): one decoder-only architecture whose members
// differ by switches in ModelConfig (biases, q/k norm, sliding windows, rope scaling).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inference/formats/model_config.h"

namespace hs {

// How a table entry may be absent.
enum class TensorNeed { Required, Optional, TiedToEmbedding };

// One tensor the architecture expects: its name, shape and where it goes.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorNeed need = TensorNeed::Required;
  int layer = -1;      // -1 for global tensors
  std::string slot;    // LayerWeights field / "embedding", "final_norm", "lm_head"
};

// The model_type values this family accepts.
bool isLlamaFamily(const std::string& modelType);
// Every tensor a checkpoint of this config must (or may) hold, with its expected shape.
std::vector<ExpectedTensor> llamaFamilyTensors(const ModelConfig& config);

}  // namespace hs
