// The floor that Model::forward is compared to: the same llama forward written as the plainest
// sequence of LibTorch ops on the same mapped float32 weights, with no hooks, checks or blocking.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "inference/formats/model_config.h"

namespace hs {
class Checkpoint;
}

namespace hs::bench {

// Keys and values of every layer, [KVH, capacity, D] each, preallocated.
struct DirectCache {
  std::vector<at::Tensor> keys, values;
  int64_t length = 0;
};

class DirectForward {
 public:
  // Wraps the F32 tensors of `checkpoint` (kept alive) without copying; throws hs::Error naming
  // the tensor when one is missing or not F32.
  DirectForward(std::shared_ptr<const Checkpoint> checkpoint, const ModelConfig& config);

  DirectCache newCache(int64_t capacity) const;
  // Runs ids at positions cache.length().. and appends them; returns float32 logits [n, vocab].
  at::Tensor forward(const std::vector<int64_t>& ids, DirectCache& cache) const;

 private:
  struct Layer {
    at::Tensor inputNorm, postNorm, q, k, v, o, gate, up, down;
  };
  at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight) const;

  std::shared_ptr<const Checkpoint> checkpoint_;
  ModelConfig config_;
  at::Tensor embedding_, finalNorm_, lmHead_, invFreq_;
  std::vector<Layer> layers_;
};

}  // namespace hs::bench
