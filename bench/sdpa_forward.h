// The reference that Model::forward is compared to on the GPU: the same llama prefill written as
// plain ATen ops on the Model's own weight tensors, with attention by
// at::scaled_dot_product_attention(is_causal) (FlashAttention on CUDA; compat::causalAttentionGqa),
// k/v expanded per query group as transformers' repeat_kv does. No hooks, checks or statistics.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace hs {
class Model;
}

namespace hs::bench {

class SdpaForward {
 public:
  // Refuses (Unsupported) what it does not implement: RoPE scaling, partial rotary, sliding windows.
  explicit SdpaForward(const Model& model);

  // Runs ids from position 0 and stores every layer's keys and values (as a cache would); returns
  // float32 logits of the last token [1, vocab].
  at::Tensor prefill(const std::vector<int64_t>& ids) const;

 private:
  const Model& model_;
};

}  // namespace hs::bench
