#include "inference/models/hybrid_attention.h"

#include <ATen/ATen.h>

#include "kernels/attention/attention.h"

namespace hs {

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

}  // namespace hs
