// Random llama-shaped model directories (config.json + model.safetensors) for the benchmarks.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "inference/formats/dtype.h"

namespace hs::bench {

// Hyperparameters of the benchmark model (a small Llama-2-like shape with GQA).
struct BenchShape {
  int64_t hidden = 1024, layers = 8, heads = 16, kvHeads = 4, mlp = 2816, vocab = 32000;
  int64_t maxPositions = 4096;
  double ropeTheta = 10000.0, rmsNormEps = 1e-5;
  int64_t headDim() const { return hidden / heads; }
};

// Named weights in the order transformers saves them (embedding, layers, norm, lm_head).
using NamedWeights = std::vector<std::pair<std::string, at::Tensor>>;

// Random float32 weights with the scale of an initialised model (N(0, 1/fan_in) matrices, unit
// norms), so that activations stay finite through every layer. Deterministic for a seed.
NamedWeights randomLlamaWeights(const BenchShape& shape, uint64_t seed);

// Writes DIR/config.json and DIR/model.safetensors (weights stored as F32 or BF16); returns the
// size of model.safetensors in bytes.
int64_t writeModelDir(const std::string& dir, const BenchShape& shape, const NamedWeights& weights,
                      DType dtype);

}  // namespace hs::bench
