// CPU reference of the instrumented attention kernel (float32, LibTorch ops).
//
// The layer is processed in blocks of query rows. Each block's [H, rows, Nk] probabilities exist
// only while the block is processed: statistics are reduced from them at once, so memory stays
// O(H * rows * Nk) for the block plus O(H * N) for the statistics.
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_stats.h"
#include "kernels/core/error.h"

namespace hs::kernels {

HeadMask HeadMask::sinkWindow(int64_t sink, int64_t window) {
  HeadMask m;
  m.kind = Kind::SinkWindow;
  m.sink = sink;
  m.window = window;
  return m;
}

HeadMask HeadMask::keySet(std::vector<int64_t> keys) {
  HeadMask m;
  m.kind = Kind::KeySet;
  m.keys = std::move(keys);
  return m;
}

HeadMask HeadMask::blockSparse(int64_t blockSize, at::Tensor allowed) {
  HeadMask m;
  m.kind = Kind::Blocks;
  m.blockSize = blockSize;
  m.blocks = std::move(allowed);
  return m;
}

bool LayerEdits::empty() const {
  return masks.empty() && biases.empty() && attenuations.empty() && mixes.empty() && !headScale.defined() &&
         !headAdd.defined();
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void requireArg(bool cond, const std::string& what) { check(cond, ErrorKind::InvalidArgument, what, {}, "attention"); }

std::string shapeOf(const at::Tensor& t) { return t.defined() ? c10::str(t.sizes()) : "none"; }

// Each message names the culprit and says what was expected and what was found.
void validate(const AttentionCall& c) {
  requireArg(c.q.defined() && c.k.defined() && c.v.defined(),
             "q, k and v must be given (q " + shapeOf(c.q) + ", k " + shapeOf(c.k) + ", v " + shapeOf(c.v) + ")");
  requireArg(c.q.dim() == 3 && c.k.dim() == 3 && c.v.dim() == 3,
             "q, k, v must be [heads, tokens, head_dim], found q " + shapeOf(c.q) + ", k " + shapeOf(c.k) + ", v " +
                 shapeOf(c.v));
  requireArg(c.k.sizes() == c.v.sizes(), "k and v shapes differ: k " + shapeOf(c.k) + ", v " + shapeOf(c.v));
  requireArg(c.q.size(2) == c.k.size(2), "q and k head_dim differ: q " + std::to_string(c.q.size(2)) + ", k " +
                                             std::to_string(c.k.size(2)));
  requireArg(c.k.size(0) > 0 && c.q.size(0) % c.k.size(0) == 0,
             "query heads must be a multiple of KV heads, found " + std::to_string(c.q.size(0)) + " and " +
                 std::to_string(c.k.size(0)) + " KV heads");
  requireArg(c.queryStart >= 0 && c.queryStart + c.q.size(1) <= c.k.size(1),
             "queries at positions " + std::to_string(c.queryStart) + ".." +
                 std::to_string(c.queryStart + c.q.size(1) - 1) + " need that many keys, have " +
                 std::to_string(c.k.size(1)));
  const int64_t heads = c.q.size(0);
  const std::string range = " (expected 0.." + std::to_string(heads - 1) + ")";
  if (c.edits) {
    auto headOk = [&](int h) { return h >= 0 && h < heads; };
    for (const auto& [h, m] : c.edits->masks) {
      requireArg(headOk(h), "mask head " + std::to_string(h) + " out of range" + range);
      if (m.kind == HeadMask::Kind::Blocks)
        requireArg(m.blockSize > 0 && m.blocks.defined() && m.blocks.dim() == 2,
                   "block mask needs blockSize > 0 and [qb, kb] bools, found blockSize " +
                       std::to_string(m.blockSize) + ", blocks " + shapeOf(m.blocks));
      if (m.kind == HeadMask::Kind::SinkWindow)
        requireArg(m.sink >= 0 && m.window >= 0, "negative sink/window: sink " + std::to_string(m.sink) +
                                                     ", window " + std::to_string(m.window));
    }
    for (const auto& b : c.edits->biases)
      requireArg(headOk(b.head), "logit bias head " + std::to_string(b.head) + " out of range" + range);
    for (const auto& a : c.edits->attenuations) {
      requireArg(headOk(a.head), "attenuation head " + std::to_string(a.head) + " out of range" + range);
      requireArg(a.beta >= 0.0, "attenuation beta must be >= 0, found " + std::to_string(a.beta));
    }
    for (const auto& m : c.edits->mixes) {
      requireArg(headOk(m.head), "mix head " + std::to_string(m.head) + " out of range" + range);
      requireArg(m.alpha.defined() && m.alpha.numel() == 1,
                 "mix alpha must be a one-element tensor, found " + shapeOf(m.alpha));
    }
    if (c.edits->headScale.defined())
      requireArg(c.edits->headScale.numel() == heads, "headScale must be [heads] = [" + std::to_string(heads) +
                                                          "], found " + shapeOf(c.edits->headScale));
    if (c.edits->headAdd.defined())
      requireArg(c.edits->headAdd.numel() == heads * c.q.size(2),
                 "headAdd must be [heads, head_dim] = [" + std::to_string(heads) + ", " +
                     std::to_string(c.q.size(2)) + "], found " + shapeOf(c.edits->headAdd));
  }
}

// Keys in [0, nk) of a list, as an int64 index tensor; with `unique`, each key once (key sets,
// as opposed to lists of additive biases where a repeated key adds twice).
at::Tensor keyIndex(const std::vector<int64_t>& keys, int64_t nk, bool unique = false) {
  std::vector<int64_t> in;
  for (int64_t j : keys)
    if (j >= 0 && j < nk) in.push_back(j);
  if (unique) {
    std::sort(in.begin(), in.end());
    in.erase(std::unique(in.begin(), in.end()), in.end());
  }
  return at::tensor(in, at::kLong);
}

// bool [rows, nk]: what a head mask allows for queries at positions qpos.
at::Tensor headMaskVisibility(const HeadMask& m, const at::Tensor& qpos, int64_t nk) {
  const auto kpos = at::arange(nk, at::kLong).unsqueeze(0);
  const auto qp = qpos.unsqueeze(1);
  switch (m.kind) {
    case HeadMask::Kind::SinkWindow:
      return (kpos < m.sink) | (kpos > qp - m.window);
    case HeadMask::Kind::KeySet: {
      auto allowed = at::zeros({nk}, at::kBool);
      auto idx = keyIndex(m.keys, nk);
      if (idx.numel() > 0) allowed.index_fill_(0, idx, true);
      return allowed.unsqueeze(0).expand({qpos.size(0), nk});
    }
    case HeadMask::Kind::Blocks: {
      const auto qb = at::floor_divide(qpos, m.blockSize);
      const auto kb = at::floor_divide(at::arange(nk, at::kLong), m.blockSize);
      check(qb.max().item<int64_t>() < m.blocks.size(0) && kb.max().item<int64_t>() < m.blocks.size(1),
            ErrorKind::InvalidArgument, "block mask is smaller than the sequence", {}, "attention");
      return m.blocks.to(at::kBool).index_select(0, qb).index_select(1, kb);
    }
  }
  return {};
}

// ACT: scale the listed keys' probability by beta, give the removed mass to the other keys in
// proportion to their probability. Rows whose mass is all on the listed keys stay unchanged.
void attenuate(at::Tensor probs /* [rows, nk], modified in place */, const Attenuation& a) {
  const auto idx = keyIndex(a.keys, probs.size(1), true);
  if (idx.numel() == 0) return;
  const auto onKeys = probs.index_select(1, idx);
  const auto massOn = onKeys.sum(1, true);
  // Summed directly, not as total - massOn: that cancels when the listed keys hold almost all the mass.
  const auto massOff = probs.index_fill(1, idx, 0.0).sum(1, true);
  const auto removed = massOn * (1.0 - a.beta);
  const auto gain = at::where(massOff > 0, 1.0 + removed / massOff.clamp_min(1e-30), at::ones_like(massOff));
  const auto keep = at::where(massOff > 0, at::full_like(massOff, a.beta), at::ones_like(massOff));
  probs.mul_(gain);
  probs.index_copy_(1, idx, onKeys * keep);
}

}  // namespace

at::Tensor attentionCpu(const AttentionCall& c, LayerStats* statsOut) {
  validate(c);
  check(!c.stats || statsOut, ErrorKind::InvalidArgument, "stats requested without an output", {}, "attention");
  const int64_t heads = c.q.size(0), kvHeads = c.k.size(0), group = heads / kvHeads;
  const int64_t nq = c.q.size(1), nk = c.k.size(1), dim = c.q.size(2);
  const auto q = c.q.to(at::kFloat), k = c.k.to(at::kFloat), v = c.v.to(at::kFloat);
  const auto kT = k.transpose(1, 2);
  const LayerEdits* edits = (c.edits && !c.edits->empty()) ? c.edits : nullptr;

  StatsAccumulator acc(c.stats, heads, nq, nk, c.queryStart);
  // Bound the block's probability buffers (logits, probabilities, masks: about 3 copies).
  const int64_t perRow = std::max<int64_t>(1, heads * nk * 4 * 3);
  const int64_t rowsPerBlock = std::clamp<int64_t>(c.maxBlockBytes / perRow, 1, std::max<int64_t>(nq, 1));

  std::vector<at::Tensor> blocks;
  for (int64_t r0 = 0; r0 < nq; r0 += rowsPerBlock) {
    const int64_t rows = std::min(rowsPerBlock, nq - r0);
    const auto qpos = at::arange(c.queryStart + r0, c.queryStart + r0 + rows, at::kLong);
    // [H, rows, D] -> [KVH, G*rows, D]: the G query heads of a KV head share one matmul.
    const auto qg = q.narrow(1, r0, rows).reshape({kvHeads, group * rows, dim});
    auto logits = at::bmm(qg, kT).mul_(c.scale).view({heads, rows, nk});

    const auto kpos = at::arange(nk, at::kLong).unsqueeze(0);
    auto visible = kpos <= qpos.unsqueeze(1);
    if (c.slidingWindow > 0) visible = visible & (kpos > qpos.unsqueeze(1) - c.slidingWindow);
    // [1, rows, nk] shared by every head (broadcast), [H, rows, nk] once a head has its own mask.
    at::Tensor allowed = visible.unsqueeze(0);
    if (edits) {
      if (!edits->masks.empty()) {
        allowed = allowed.expand({heads, rows, nk}).clone();
        for (const auto& [h, m] : edits->masks) allowed[h].logical_and_(headMaskVisibility(m, qpos, nk));
      }
      for (const auto& b : edits->biases) {
        const auto idx = keyIndex(b.keys, nk);
        if (idx.numel() > 0) logits[b.head].index_add_(1, idx, at::full({rows, idx.numel()}, b.value));
      }
    }
    logits.masked_fill_(allowed.logical_not(), kNegInf);
    auto probs = at::softmax(logits, -1);
    if (edits && !edits->masks.empty())  // a head mask may hide every key of a row: no attention there
      probs = at::where(allowed.any(-1, true), probs, at::zeros_like(probs));
    if (edits)
      for (const auto& a : edits->attenuations) attenuate(probs[a.head], a);

    acc.add(probs, qpos, r0);
    if (c.observer) c.observer(c.queryStart + r0, probs);

    auto out = at::bmm(probs.view({kvHeads, group * rows, nk}), v).view({heads, rows, dim});
    if (edits && !edits->mixes.empty()) {
      std::vector<at::Tensor> perHead = out.unbind(0);
      for (const auto& m : edits->mixes) {
        // The streaming half sees the head's masks and biases too; a row left without keys gives 0.
        const auto window =
            headMaskVisibility(HeadMask::sinkWindow(m.sink, m.window), qpos, nk).logical_and(allowed[allowed.size(0) == 1 ? 0 : m.head]);
        auto streamProbs = at::softmax(logits[m.head].masked_fill(window.logical_not(), kNegInf), -1);
        streamProbs = at::where(window.any(-1, true), streamProbs, at::zeros_like(streamProbs));
        const auto streamOut = at::mm(streamProbs, v[m.head / group]);
        const auto alpha = m.alpha.to(at::kFloat);
        perHead[m.head] = alpha * perHead[m.head] + (1.0 - alpha) * streamOut;
      }
      out = at::stack(perHead, 0);
    }
    blocks.push_back(out);
  }
  auto out =
      blocks.empty() ? at::zeros({heads, 0, dim}) : (blocks.size() == 1 ? blocks[0] : at::cat(blocks, 1));
  if (edits && edits->headScale.defined()) out = out * edits->headScale.to(at::kFloat).view({heads, 1, 1});
  if (edits && edits->headAdd.defined()) out = out + edits->headAdd.to(at::kFloat).view({heads, 1, dim});
  if (statsOut && c.stats) *statsOut = acc.finish();
  return out;
}

at::Tensor attention(const AttentionCall& call, LayerStats* statsOut) {
#ifdef HEADSCOPE_HAVE_CUDA
  if (call.q.is_cuda()) return attentionCuda(call, statsOut);
#endif
  return attentionCpu(call, statsOut);
}

namespace {

// Checks a HybridDecodeCall's shapes, dtypes and devices; throws InvalidArgument naming the field.
// It runs for every layer of every decode step, so a message is built only when its check fails.
void validateHybridDecode(const HybridDecodeCall& c) {
  auto fail = [](const std::string& what, const std::string& field) {
    throw Error(ErrorKind::InvalidArgument, "hybrid decode attention: " + what, {}, field);
  };
  if (!(c.q.defined() && c.q.dim() == 3 && c.q.size(1) == 1)) fail("q must be [heads, 1, dim]", "q");
  const int64_t kvHeads = static_cast<int64_t>(c.streamKvHead.size());
  if (!(kvHeads > 0 && c.q.size(0) % kvHeads == 0))
    fail("streamKvHead has " + std::to_string(kvHeads) + " entries; the " + std::to_string(c.q.size(0)) +
             " query heads must be a multiple of it",
         "streamKvHead");
  const int64_t streaming = std::count(c.streamKvHead.begin(), c.streamKvHead.end(), true);
  auto store = [&](const at::Tensor& k, const at::Tensor& v, int64_t heads, const char* name) {
    if (heads == 0 && !k.defined() && !v.defined()) return;
    for (const auto& [t, suffix] : {std::pair<const at::Tensor&, const char*>{k, "K"}, {v, "V"}}) {
      const auto field = [&, suffix = suffix] { return std::string(name) + suffix; };
      if (!(t.defined() && t.dim() == 3))
        fail("expected [" + std::to_string(heads) + ", entries, " + std::to_string(c.q.size(2)) +
                 "], found " + (t.defined() ? c10::str(t.sizes()) : std::string("none")),
             field());
      if (!(t.size(0) == heads && t.size(2) == c.q.size(2) && t.sizes() == k.sizes()))
        fail("expected [" + std::to_string(heads) + ", entries, " + std::to_string(c.q.size(2)) + "] like " +
                 name + "K, found " + c10::str(t.sizes()),
             field());
      if (!(heads == 0 || t.size(1) > 0)) fail("a KV head with no entries", field());
      if (!(t.scalar_type() == c.q.scalar_type() && t.device() == c.q.device()))
        fail("dtype/device differ from q's", field());
    }
  };
  store(c.fullK, c.fullV, kvHeads - streaming, "full");
  store(c.streamK, c.streamV, streaming, "stream");
}

}  // namespace

at::Tensor hybridDecodeAttention(const HybridDecodeCall& c) {
  validateHybridDecode(c);
#ifdef HEADSCOPE_HAVE_CUDA
  if (c.q.is_cuda()) return hybridDecodeAttentionCuda(c);
#endif
  // The reference: attentionCpu once per kind of head, the new query at the last position of its keys.
  const int64_t heads = c.q.size(0), group = heads / static_cast<int64_t>(c.streamKvHead.size());
  std::vector<int64_t> fullHeads, streamHeads;
  for (size_t j = 0; j < c.streamKvHead.size(); ++j)
    for (int64_t g = 0; g < group; ++g)
      (c.streamKvHead[j] ? streamHeads : fullHeads).push_back(static_cast<int64_t>(j) * group + g);
  at::Tensor out = at::empty_like(c.q);
  auto run = [&](const std::vector<int64_t>& list, const at::Tensor& k, const at::Tensor& v) {
    if (list.empty()) return;
    const auto index = at::tensor(list, at::TensorOptions().dtype(at::kLong)).to(c.q.device());
    AttentionCall call;
    call.q = c.q.index_select(0, index);
    call.k = k, call.v = v;
    call.queryStart = k.size(1) - 1;
    call.scale = c.scale;
    out.index_copy_(0, index, attentionCpu(call, nullptr).to(c.q.scalar_type()));
  };
  run(fullHeads, c.fullK, c.fullV);
  run(streamHeads, c.streamK, c.streamV);
  return out;
}

}  // namespace hs::kernels
