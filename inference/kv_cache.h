// Keys (after RoPE) and values of every layer for the tokens processed so far, either for every KV
// head (the full layout) or with DuoAttention's streaming heads kept compact (the hybrid layout).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace hs {

// DuoAttention's retrieval/streaming split of the KV heads. A streaming KV head keeps only the keys
// and values of positions < sink and of the last `window` positions (a ring buffer), so its memory
// stops growing at sink + window entries; the other (retrieval, "full") heads keep every token.
// The query heads of a streaming KV head then see exactly what HeadMask::sinkWindow(sink, window)
// lets them see: j < sink or i - window < j <= i. For example, half the KV heads of Llama-3-8B:
//   auto cache = model.newCache(prompt.size() + 256, HybridLayout::uniform(32, {0, 2, 4, 6}, 64, 256));
//   model.forward(prompt, cache);  then model.forward({next}, cache) per decoded token.
struct HybridLayout {
  int64_t sink = 64;     // first positions every streaming head keeps
  int64_t window = 256;  // most recent positions it keeps (including the current one)
  // streamingKvHeads[l]: KV head indices of layer l that stream (any order, no repeats); one entry
  // per layer, or no entries at all for the full layout.
  std::vector<std::vector<int>> streamingKvHeads;

  // True when no layer has a streaming head (then the cache is the full layout).
  bool empty() const;
  // The same heads streaming in each of `layers` layers.
  static HybridLayout uniform(int layers, std::vector<int> kvHeads, int64_t sink = 64, int64_t window = 256);
};

// What one layer's attention reads from a hybrid cache after the new tokens were staged
// (KvCache::stage). Query head h belongs to KV head h / (H / KVH), as everywhere.
struct HybridLayerView {
  // Both stores hold their KV heads in ascending order (streamKvHead tells which is which).
  // Full heads: keys/values [KVHf, length()+n, D] at positions 0.., and the query heads they serve.
  at::Tensor fullKeys, fullValues, fullQueryHeads;  // fullQueryHeads: int64 [KVHf * G] on the device
  at::Tensor fullHeadIndex;  // int64 [KVHf] on the device: the full store's KV heads (made once per cache)
  // Streaming heads, keys/values [KVHs, m, D] and their query heads (int64 [KVHs * G]).
  //  - maskFree (one new token): the compact store (sink, then ring order) with the new token written in
  //    place; it sees every entry.
  //  - otherwise: the kept entries of earlier tokens in position order, then the n new tokens. Their
  //    positions are renumbered 0..m-1 (the gap between sink and window is closed), so the queries
  //    sit at streamQueryStart.. and HeadMask::sinkWindow(sink, window) selects what they may see.
  at::Tensor streamKeys, streamValues, streamQueryHeads;
  int64_t streamQueryStart = 0;
  bool maskFree = false;
  int64_t position0 = 0;           // tokens stored before the staged ones: the first new token's position
  std::vector<bool> streamKvHead;  // [KVH]: whether KV head j is a streaming head
};

// One sequence's cache. Storage grows geometrically; views returned by append() and stage() stay
// valid until the next append/stage to the same layer.
class KvCache {
 public:
  // Throws hs::Error(InvalidArgument) naming the HybridLayout field when the layout does not fit
  // `layers` x `kvHeads` (wrong layer count, head out of range or repeated, window < 1, sink < 0).
  KvCache(int layers, int64_t kvHeads, int64_t headDim, at::TensorOptions options, HybridLayout layout = {});

  // Tokens stored (same for every layer once a forward completed).
  int64_t length() const { return length_; }
  // Tokens the full stores hold without reallocating.
  int64_t capacity() const { return capacity_; }
  // Makes room for `tokens` in total without further reallocation.
  void reserve(int64_t tokens);

  bool hybrid() const { return hybrid_; }
  const HybridLayout& layout() const { return layout_; }
  // Streaming KV heads of a layer (0 for every layer of the full layout).
  int64_t streamingHeads(int layer) const;

  // Layers without streaming heads: writes the new tokens' k, v [KVH, n, D] at positions
  // length()..length()+n-1 and returns all keys and values [KVH, length()+n, D] of that layer.
  std::pair<at::Tensor, at::Tensor> append(int layer, const at::Tensor& k, const at::Tensor& v);
  // Layers with streaming heads: writes the full heads' new entries after length() and the
  // streaming heads' into a staged copy of their compact store, which commit() makes current and
  // discardStaged() drops (so a forward that fails half-way leaves the cache as it was). `group`
  // is the query heads per KV head.
  HybridLayerView stage(int layer, const at::Tensor& k, const at::Tensor& v, int64_t group);
  // Marks n new tokens as stored, after every layer appended or staged them.
  void commit(int64_t n);
  // Forgets staged entries of an unfinished forward.
  void discardStaged();
  // Forgets everything after the first n tokens. A hybrid cache refuses (Unsupported) once its
  // streaming heads evicted entries that the shorter cache would need.
  void truncate(int64_t n);

  // Bytes of the stored entries (not of the reserved capacity): for each layer
  // 2 * itemsize * D * (fullHeads * length + streamingHeads * min(length, sink + window)).
  int64_t bytes() const;
  // Bytes the stores occupy now (reserved capacity included).
  int64_t allocatedBytes() const;
  // Bytes per token of capacity of the growing (full-head) stores, all layers together.
  int64_t bytesPerCapacityToken() const;
  int layers() const { return static_cast<int>(stores_.size()); }

 private:
  struct LayerStore {
    std::vector<int> fullHeads, streamHeads;      // KV head indices
    at::Tensor fullHeadIndex, streamHeadIndex;    // the same on the device (int64), for index_select
    at::Tensor fullQueryHeads, streamQueryHeads;  // their query heads (set by the first stage())
    at::Tensor keys, values;                      // [KVHf, capacity, D]
    at::Tensor sinkRingKeys, sinkRingValues;      // [KVHs, sink + window, D]: slots < sink, then ring
    at::Tensor stagedKeys, stagedValues;          // the compact store with the staged tokens
  };
  // Compact-store slot of a position (< sink: itself; else its place in the ring).
  int64_t slotOf(int64_t position) const;
  // The kept entries of the first `length` positions in position order, as (first slot, count) runs.
  std::vector<std::pair<int64_t, int64_t>> orderedSlots(int64_t length) const;

  int64_t kvHeads_, headDim_;
  at::TensorOptions options_;
  HybridLayout layout_;
  bool hybrid_ = false;
  int64_t length_ = 0, capacity_ = 0;
  std::vector<LayerStore> stores_;
};

}  // namespace hs
