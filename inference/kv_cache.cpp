#include "inference/kv_cache.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>
#include <string>

#include "kernels/core/error.h"

namespace hs {

bool HybridLayout::empty() const {
  return std::all_of(streamingKvHeads.begin(), streamingKvHeads.end(),
                     [](const std::vector<int>& heads) { return heads.empty(); });
}

HybridLayout HybridLayout::uniform(int layers, std::vector<int> kvHeads, int64_t sink, int64_t window) {
  HybridLayout layout;
  layout.sink = sink;
  layout.window = window;
  layout.streamingKvHeads.assign(static_cast<size_t>(std::max(layers, 0)), std::move(kvHeads));
  return layout;
}

namespace {

at::Tensor indexTensor(const std::vector<int>& v, at::Device device) {
  return at::tensor(std::vector<int64_t>(v.begin(), v.end()), at::kLong).to(device);
}

// Query heads of the given KV heads, group G each: g*G .. g*G+G-1.
at::Tensor queryHeadsOf(const std::vector<int>& kvHeads, int64_t group, at::Device device) {
  std::vector<int64_t> heads;
  for (int g : kvHeads)
    for (int64_t i = 0; i < group; ++i) heads.push_back(g * group + i);
  return at::tensor(heads, at::kLong).to(device);
}

}  // namespace

KvCache::KvCache(int layers, int64_t kvHeads, int64_t headDim, at::TensorOptions options, HybridLayout layout)
    : kvHeads_(kvHeads), headDim_(headDim), options_(options), layout_(std::move(layout)), stores_(layers) {
  hybrid_ = !layout_.empty();
  const std::string field = "HybridLayout";
  if (hybrid_) {
    check(static_cast<int>(layout_.streamingKvHeads.size()) == layers, ErrorKind::InvalidArgument,
          "has " + std::to_string(layout_.streamingKvHeads.size()) + " layers, the model " +
              std::to_string(layers),
          {}, field + ".streamingKvHeads");
    check(layout_.sink >= 0, ErrorKind::InvalidArgument, "sink must be >= 0", {}, field + ".sink");
    check(layout_.window >= 1, ErrorKind::InvalidArgument, "window must be >= 1", {}, field + ".window");
  }
  for (int l = 0; l < layers; ++l) {
    LayerStore& s = stores_[static_cast<size_t>(l)];
    std::set<int> streaming;
    if (hybrid_) {
      const std::string at = field + ".streamingKvHeads[" + std::to_string(l) + "]";
      for (int h : layout_.streamingKvHeads[static_cast<size_t>(l)]) {
        check(h >= 0 && h < kvHeads, ErrorKind::InvalidArgument,
              "KV head " + std::to_string(h) + " is out of range [0, " + std::to_string(kvHeads) + ")", {},
              at);
        check(streaming.insert(h).second, ErrorKind::InvalidArgument,
              "KV head " + std::to_string(h) + " repeats", {}, at);
      }
    }
    for (int h = 0; h < kvHeads; ++h) (streaming.count(h) ? s.streamHeads : s.fullHeads).push_back(h);
    if (!s.streamHeads.empty()) {
      s.fullHeadIndex = indexTensor(s.fullHeads, options.device());
      s.streamHeadIndex = indexTensor(s.streamHeads, options.device());
      const int64_t slots = layout_.sink + layout_.window;
      s.sinkRingKeys = at::zeros({static_cast<int64_t>(s.streamHeads.size()), slots, headDim}, options);
      s.sinkRingValues = at::zeros_like(s.sinkRingKeys);
    }
  }
}

int64_t KvCache::streamingHeads(int layer) const {
  check(layer >= 0 && layer < layers(), ErrorKind::Internal, "cache layer out of range");
  return static_cast<int64_t>(stores_[static_cast<size_t>(layer)].streamHeads.size());
}

void KvCache::reserve(int64_t tokens) {
  if (tokens <= capacity_) return;
  for (auto& s : stores_) {
    const auto heads = static_cast<int64_t>(s.fullHeads.size());
    for (auto* store : {&s.keys, &s.values}) {
      auto grown = at::empty({heads, tokens, headDim_}, options_);
      if (store->defined() && length_ > 0) grown.narrow(1, 0, length_).copy_(store->narrow(1, 0, length_));
      *store = grown;
    }
  }
  capacity_ = tokens;
}

std::pair<at::Tensor, at::Tensor> KvCache::append(int layer, const at::Tensor& k, const at::Tensor& v) {
  check(streamingHeads(layer) == 0, ErrorKind::Internal,
        "append on a layer with streaming heads (use stage)");
  check(k.dim() == 3 && k.size(0) == kvHeads_ && k.size(2) == headDim_ && k.sizes() == v.sizes(),
        ErrorKind::Internal, "cache append with wrong shape");
  const int64_t n = k.size(1), end = length_ + n;
  if (end > capacity_) reserve(std::max<int64_t>(end, capacity_ * 2));
  auto& s = stores_[static_cast<size_t>(layer)];
  s.keys.narrow(1, length_, n).copy_(k);
  s.values.narrow(1, length_, n).copy_(v);
  return {s.keys.narrow(1, 0, end), s.values.narrow(1, 0, end)};
}

int64_t KvCache::slotOf(int64_t p) const {
  return p < layout_.sink ? p : layout_.sink + (p - layout_.sink) % layout_.window;
}

std::vector<std::pair<int64_t, int64_t>> KvCache::orderedSlots(int64_t length) const {
  const int64_t sink = layout_.sink, window = layout_.window;
  std::vector<std::pair<int64_t, int64_t>> runs;
  const int64_t a = std::min(length, sink), b = std::min(std::max<int64_t>(length - sink, 0), window);
  if (a > 0) runs.emplace_back(0, a);
  if (b > 0) {  // positions length-b .. length-1 occupy the ring from slotOf(length-b), wrapping once
    const int64_t first = slotOf(length - b), run = std::min(b, sink + window - first);
    runs.emplace_back(first, run);
    if (b > run) runs.emplace_back(sink, b - run);
  }
  return runs;
}

HybridLayerView KvCache::stage(int layer, const at::Tensor& k, const at::Tensor& v, int64_t group) {
  check(streamingHeads(layer) > 0, ErrorKind::Internal,
        "stage on a layer without streaming heads (use append)");
  check(
      k.dim() == 3 && k.size(0) == kvHeads_ && k.size(2) == headDim_ && k.sizes() == v.sizes() && group >= 1,
      ErrorKind::Internal, "cache stage with wrong shape");
  auto& s = stores_[static_cast<size_t>(layer)];
  if (!s.fullQueryHeads.defined()) {
    s.fullQueryHeads = queryHeadsOf(s.fullHeads, group, options_.device());
    s.streamQueryHeads = queryHeadsOf(s.streamHeads, group, options_.device());
  }
  const int64_t n = k.size(1), end = length_ + n, sink = layout_.sink, window = layout_.window;
  if (end > capacity_) reserve(std::max<int64_t>(end, capacity_ * 2));
  HybridLayerView view;
  view.position0 = length_;
  view.fullQueryHeads = s.fullQueryHeads;
  view.fullHeadIndex = s.fullHeadIndex;
  view.streamQueryHeads = s.streamQueryHeads;
  view.streamKvHead.assign(static_cast<size_t>(kvHeads_), false);
  for (int h : s.streamHeads) view.streamKvHead[static_cast<size_t>(h)] = true;
  view.fullKeys = s.keys.narrow(1, 0, end);  // views: valid before and after the new entries are written
  view.fullValues = s.values.narrow(1, 0, end);
  if (n == 1) {
    // A decode step writes its entries in place: the ring slot it takes is the one its position evicts,
    // whatever the token, so a failed step leaves only what the next step at this position overwrites
    // first (and truncate refuses a hybrid cache once it evicted). One gather per store, no copies.
    const at::Tensor k1 = k.select(1, 0), v1 = v.select(1, 0);
    auto gather = [](at::Tensor dst, const at::Tensor& src, const at::Tensor& index) {
      at::index_select_out(dst, src, 0, index);
    };
    if (!s.fullHeads.empty()) {
      gather(s.keys.select(1, length_), k1, s.fullHeadIndex);
      gather(s.values.select(1, length_), v1, s.fullHeadIndex);
    }
    const int64_t slot = slotOf(length_);
    gather(s.sinkRingKeys.select(1, slot), k1, s.streamHeadIndex);
    gather(s.sinkRingValues.select(1, slot), v1, s.streamHeadIndex);
    s.stagedKeys = s.sinkRingKeys, s.stagedValues = s.sinkRingValues;  // what commit() keeps
    const int64_t valid = std::min(end, sink + window);  // the new token sees every kept entry
    view.streamKeys = s.sinkRingKeys.narrow(1, 0, valid);
    view.streamValues = s.sinkRingValues.narrow(1, 0, valid);
    view.streamQueryStart = valid - 1;
    view.maskFree = true;
    return view;
  }
  if (!s.fullHeads.empty()) {
    s.keys.narrow(1, length_, n).copy_(k.index_select(0, s.fullHeadIndex));
    s.values.narrow(1, length_, n).copy_(v.index_select(0, s.fullHeadIndex));
  }

  const auto newKeys = k.index_select(0, s.streamHeadIndex), newValues = v.index_select(0, s.streamHeadIndex);
  // Earlier entries in position order, then the new tokens (renumbered positions).
  std::vector<at::Tensor> keys, values;
  int64_t kept = 0;
  for (const auto& [slot, count] : orderedSlots(length_)) {
    keys.push_back(s.sinkRingKeys.narrow(1, slot, count));
    values.push_back(s.sinkRingValues.narrow(1, slot, count));
    kept += count;
  }
  keys.push_back(newKeys);
  values.push_back(newValues);
  view.streamKeys = at::cat(keys, 1);
  view.streamValues = at::cat(values, 1);
  view.streamQueryStart = kept;
  // The staged compact store: the current one with the new tokens' kept entries written in (the
  // tokens below sink, and the last `window` tokens at or past sink, in their ring slots).
  s.stagedKeys = s.sinkRingKeys.clone();
  s.stagedValues = s.sinkRingValues.clone();
  auto write = [&](int64_t slot, int64_t from, int64_t count) {
    s.stagedKeys.narrow(1, slot, count).copy_(newKeys.narrow(1, from, count));
    s.stagedValues.narrow(1, slot, count).copy_(newValues.narrow(1, from, count));
  };
  if (length_ < sink) write(length_, 0, std::min(n, sink - length_));
  // Index (among the new tokens) of the first one the ring keeps: at or past sink, in the last window.
  const int64_t firstRing = std::max<int64_t>(0, std::max(sink, end - window) - length_);
  if (firstRing < n) {
    const int64_t count = n - firstRing, slot = slotOf(length_ + firstRing);
    const int64_t run = std::min(count, sink + window - slot);
    write(slot, firstRing, run);
    if (count > run) write(sink, firstRing + run, count - run);
  }
  return view;
}

void KvCache::commit(int64_t n) {
  for (size_t l = 0; l < stores_.size(); ++l) {
    auto& s = stores_[l];
    if (s.streamHeads.empty()) continue;
    check(s.stagedKeys.defined(), ErrorKind::Internal,
          "cache commit before layer " + std::to_string(l) + " staged the new tokens");
    s.sinkRingKeys = std::move(s.stagedKeys);
    s.sinkRingValues = std::move(s.stagedValues);
    s.stagedKeys = at::Tensor();
    s.stagedValues = at::Tensor();
  }
  length_ += n;
}

void KvCache::discardStaged() {
  for (auto& s : stores_) s.stagedKeys = s.stagedValues = at::Tensor();
}

void KvCache::truncate(int64_t n) {
  discardStaged();
  n = std::clamp<int64_t>(n, 0, length_);
  // Until length exceeds sink + window nothing was evicted, and the ring holds positions in order.
  check(!hybrid_ || n == length_ || length_ <= layout_.sink + layout_.window, ErrorKind::Unsupported,
        "a hybrid cache cannot go back to " + std::to_string(n) +
            " tokens: its streaming heads evicted entries "
            "that length would need (it holds " +
            std::to_string(length_) + ")",
        {}, "KvCache::truncate");
  length_ = n;
}

int64_t KvCache::bytes() const {
  const int64_t kept = std::min(length_, layout_.sink + layout_.window);
  int64_t entries = 0;
  for (const auto& s : stores_)
    entries += static_cast<int64_t>(s.fullHeads.size()) * length_ +
               static_cast<int64_t>(s.streamHeads.size()) * kept;
  return 2 * entries * headDim_ * static_cast<int64_t>(options_.dtype().itemsize());
}

int64_t KvCache::allocatedBytes() const {
  int64_t total = 0;
  for (const auto& s : stores_)
    for (const auto* t :
         {&s.keys, &s.values, &s.sinkRingKeys, &s.sinkRingValues, &s.stagedKeys, &s.stagedValues})
      if (t->defined()) total += static_cast<int64_t>(t->nbytes());
  return total;
}

int64_t KvCache::bytesPerCapacityToken() const {
  int64_t heads = 0;
  for (const auto& s : stores_) heads += static_cast<int64_t>(s.fullHeads.size());
  return 2 * heads * headDim_ * static_cast<int64_t>(options_.dtype().itemsize());
}

}  // namespace hs
