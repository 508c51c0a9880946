// Rotary position embeddings as transformers computes them (rotate_half convention).
#pragma once

#include <ATen/core/Tensor.h>

#include "inference/formats/model_config.h"

namespace hs {

// Inverse frequencies [rotaryDim/2] (float64) for the config's rope type. seqLen matters only for
// "dynamic" (NTK), which transformers recomputes from the largest position of each call.
at::Tensor ropeInverseFrequencies(const ModelConfig& config, int64_t seqLen);

// cos and sin [1, n, rotaryDim] for the positions of one forward call, in the compute dtype: built once
// per call and shared by q and k of every layer. The first half of signedSin is -sin: rotate_half's
// negation, folded into the table instead of applied to q and k in every layer.
struct RopeTables {
  at::Tensor cos, signedSin;
};
RopeTables ropeTables(const ModelConfig& config, int64_t pos0, int64_t n, at::Device device, at::ScalarType dtype);

// Rotates the first rotaryDim dims of x [heads, n, D]; returns the rotated tensor.
at::Tensor applyRope(const at::Tensor& x, const RopeTables& tables);

}  // namespace hs
