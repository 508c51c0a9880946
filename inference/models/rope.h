// Rotary position embeddings as transformers computes them (rotate_half convention).
#pragma once

#include <ATen/core/Tensor.h>

#include "inference/formats/model_config.h"

namespace hs {

// Inverse frequencies [rotaryDim/2] (float64) for the config's rope type. seqLen matters only for
// "dynamic" (NTK), which transformers recomputes from the largest position of each call.
at::Tensor ropeInverseFrequencies(const ModelConfig& config, int64_t seqLen);

// Rotates x [heads, n, D] at positions [n] (int64) in place of a copy; returns the rotated tensor.
at::Tensor applyRope(const at::Tensor& x, const at::Tensor& positions, const at::Tensor& invFreq);

}  // namespace hs
