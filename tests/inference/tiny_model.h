// Test support: random llama-family checkpoints written to a temp dir, and an independent
// reference forward written with plain LibTorch ops (full attention maps, explicit masks), so that
// Model's blocked, instrumented forward is checked against code that shares nothing with it.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/formats/scratch_dir.h"

namespace hs::test {

struct TinySpec {
  std::string modelType = "llama";
  int layers = 2, hidden = 32, heads = 4, kvHeads = 2, headDim = 8, inter = 64, vocab = 64;
  int maxPositions = 256;
  double ropeTheta = 10000.0;
  bool tied = false, qkvBias = false, qkNorm = false;
  int slidingWindow = 0;  // mistral: all layers
  uint64_t seed = 1;
};

// Weights by HF tensor name (float32).
using Weights = std::map<std::string, at::Tensor>;

Weights randomWeights(const TinySpec& spec);
std::string configJson(const TinySpec& spec);
// Writes config.json + model.safetensors (F32) into dir.
void writeTinyModel(const std::string& dir, const TinySpec& spec, const Weights& w);

// What the reference forward changes: per (layer, head) output scale, per (layer, head) sink+window.
struct ReferenceEdits {
  std::map<std::pair<int, int>, double> headScale;
  std::map<std::pair<int, int>, std::pair<int64_t, int64_t>> sinkWindow;  // (sink, window)
};

// Logits [N, vocab] and, if attnOut, every attention map [L, H, N, N] (float64 internally).
at::Tensor referenceForward(const TinySpec& spec, const Weights& w, const std::vector<int64_t>& ids,
                            const ReferenceEdits& edits = {}, at::Tensor* attnOut = nullptr);

}  // namespace hs::test
