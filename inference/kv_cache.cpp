#include "inference/kv_cache.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "kernels/core/error.h"

namespace hs {

KvCache::KvCache(int layers, int64_t kvHeads, int64_t headDim, at::TensorOptions options)
    : kvHeads_(kvHeads), headDim_(headDim), options_(options), keys_(layers), values_(layers) {}

void KvCache::reserve(int64_t tokens) {
  if (tokens <= capacity_) return;
  for (size_t l = 0; l < keys_.size(); ++l) {
    for (auto* store : {&keys_[l], &values_[l]}) {
      auto grown = at::empty({kvHeads_, tokens, headDim_}, options_);
      if (store->defined() && length_ > 0) grown.narrow(1, 0, length_).copy_(store->narrow(1, 0, length_));
      *store = grown;
    }
  }
  capacity_ = tokens;
}

std::pair<at::Tensor, at::Tensor> KvCache::append(int layer, const at::Tensor& k, const at::Tensor& v) {
  check(layer >= 0 && layer < layers(), ErrorKind::Internal, "cache layer out of range");
  check(k.dim() == 3 && k.size(0) == kvHeads_ && k.size(2) == headDim_ && k.sizes() == v.sizes(),
        ErrorKind::Internal, "cache append with wrong shape");
  const int64_t n = k.size(1), end = length_ + n;
  if (end > capacity_) reserve(std::max<int64_t>(end, capacity_ * 2));
  keys_[layer].narrow(1, length_, n).copy_(k);
  values_[layer].narrow(1, length_, n).copy_(v);
  return {keys_[layer].narrow(1, 0, end), values_[layer].narrow(1, 0, end)};
}

void KvCache::truncate(int64_t n) { length_ = std::clamp<int64_t>(n, 0, length_); }

int64_t KvCache::bytes() const {
  return static_cast<int64_t>(keys_.size()) * 2 * kvHeads_ * length_ * headDim_ *
         static_cast<int64_t>(options_.dtype().itemsize());
}

}  // namespace hs
