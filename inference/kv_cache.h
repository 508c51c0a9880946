// Keys (after RoPE) and values of every layer for the tokens processed so far.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace hs {

// One sequence's cache. Storage grows geometrically; views returned by append() stay valid until
// the next append to the same layer.
class KvCache {
 public:
  KvCache(int layers, int64_t kvHeads, int64_t headDim, at::TensorOptions options);

  // Tokens stored (same for every layer once a forward completed).
  int64_t length() const { return length_; }
  // Makes room for `tokens` in total without further reallocation.
  void reserve(int64_t tokens);
  // Writes the new tokens' k, v [KVH, n, D] of a layer at positions length()..length()+n-1 and
  // returns all keys and values [KVH, length()+n, D] of that layer.
  std::pair<at::Tensor, at::Tensor> append(int layer, const at::Tensor& k, const at::Tensor& v);
  // Marks n new tokens as stored, after every layer appended them.
  void commit(int64_t n) { length_ += n; }
  // Forgets everything after the first n tokens.
  void truncate(int64_t n);
  // Bytes of the stored entries (not of the reserved capacity).
  int64_t bytes() const;
  int layers() const { return static_cast<int>(keys_.size()); }

 private:
  int64_t kvHeads_, headDim_;
  at::TensorOptions options_;
  int64_t length_ = 0, capacity_ = 0;
  std::vector<at::Tensor> keys_, values_;  // [KVH, capacity, D]
};

}  // namespace hs
