#include "inference/models/hybrid_attention.h"

#include <ATen/ATen.h>

#include <vector>

#include "kernels/attention/attention.h"

namespace hs {

namespace {

// Absolute position of each of the m entries of view.streamKeys (see HybridLayerView).
std::vector<int64_t> streamPositions(const HybridLayerView& v, const HybridLayout& layout, int64_t m) {
  const int64_t sink = layout.sink, window = layout.window;
  std::vector<int64_t> pos(static_cast<size_t>(m));
  if (v.maskFree) {  // the compact store in slot order: sink slots, then the ring
    const int64_t last = v.position0, lastSlot = last < sink ? last : sink + (last - sink) % window;
    for (int64_t s = 0; s < m; ++s)
      pos[static_cast<size_t>(s)] = s < sink ? s : last - ((lastSlot - s) % window + window) % window;
  } else {  // kept entries in position order (the sink, then a run ending at position0 - 1), then the new
    const int64_t sinkKept = std::min(sink, v.position0), shift = v.position0 - v.streamQueryStart;
    for (int64_t i = 0; i < m; ++i) pos[static_cast<size_t>(i)] = i < sinkKept ? i : i + shift;
  }
  return pos;
}

// Copies a host index list to `device`. On CUDA from pinned memory without waiting (LibTorch's host
// allocator keeps the block until the copy is done): a pageable copy would drain the GPU's queue once
// per observed layer and decode step.
at::Tensor indexOnDevice(const std::vector<int64_t>& v, at::Device device) {
  const auto host = at::tensor(v, at::kLong);
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

// The KV heads of the streaming (or the full) store, in store order: ascending (HybridLayerView).
std::vector<int64_t> storeHeads(const HybridLayerView& v, bool streaming) {
  std::vector<int64_t> out;
  for (size_t j = 0; j < v.streamKvHead.size(); ++j)
    if (v.streamKvHead[j] == streaming) out.push_back(static_cast<int64_t>(j));
  return out;
}

}  // namespace

at::Tensor hybridAttention(const at::Tensor& q, const HybridLayerView& view, const HybridLayout& layout,
                           int64_t pos0, double scale) {
  if (view.maskFree) {  // a decode step: one launch for both kinds of head on CUDA
    kernels::HybridDecodeCall call;
    call.q = q;
    if (view.fullQueryHeads.numel() > 0) call.fullK = view.fullKeys, call.fullV = view.fullValues;
    call.streamK = view.streamKeys, call.streamV = view.streamValues;
    call.streamKvHead = view.streamKvHead;
    call.scale = scale;
    return kernels::hybridDecodeAttention(call);
  }
  auto out = at::empty_like(q);
  if (view.fullQueryHeads.numel() > 0) {
    kernels::AttentionCall call;
    call.q = q.index_select(0, view.fullQueryHeads);
    call.k = view.fullKeys;
    call.v = view.fullValues;
    call.queryStart = pos0;
    call.scale = scale;
    out.index_copy_(0, view.fullQueryHeads, kernels::attention(call, nullptr).to(q.scalar_type()));
  }
  kernels::AttentionCall call;
  call.q = q.index_select(0, view.streamQueryHeads);
  call.k = view.streamKeys;
  call.v = view.streamValues;
  call.queryStart = view.streamQueryStart;
  call.scale = scale;
  kernels::LayerEdits edits;
  for (int h = 0; h < static_cast<int>(view.streamQueryHeads.numel()); ++h)
    edits.masks.emplace_back(h, kernels::HeadMask::sinkWindow(layout.sink, layout.window));
  call.edits = &edits;
  out.index_copy_(0, view.streamQueryHeads, kernels::attention(call, nullptr).to(q.scalar_type()));
  return out;
}

HybridAsFull hybridAsFull(const HybridLayerView& view, const HybridLayout& layout, int64_t n, int64_t heads) {
  const int64_t end = view.position0 + n, kvHeads = static_cast<int64_t>(view.streamKvHead.size());
  const int64_t group = heads / kvHeads;
  const at::Tensor& like = view.streamKeys;
  HybridAsFull out;
  out.keys = at::zeros({kvHeads, end, like.size(2)}, like.options());
  out.values = at::zeros_like(out.keys);
  if (view.fullQueryHeads.numel() > 0) {
    out.keys.index_copy_(0, view.fullHeadIndex, view.fullKeys);
    out.values.index_copy_(0, view.fullHeadIndex, view.fullValues);
  }
  const int64_t m = view.streamKeys.size(1);
  const auto positions = indexOnDevice(streamPositions(view, layout, m), like.device());
  const auto stream = storeHeads(view, true);
  for (size_t j = 0; j < stream.size(); ++j) {
    const auto jj = static_cast<int64_t>(j);
    out.keys[stream[j]].index_copy_(0, positions, view.streamKeys[jj]);
    out.values[stream[j]].index_copy_(0, positions, view.streamValues[jj]);
    for (int64_t g = 0; g < group; ++g)
      out.streamQueryHeads.push_back(static_cast<int>(stream[j] * group + g));
  }
  return out;
}

}  // namespace hs
