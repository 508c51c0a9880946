// Random attention problems (shapes, edits, statistics requests) shared by the CUDA kernel tests, and
// the comparison of a CUDA result with the CPU reference on the same (dtype-rounded) inputs.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <memory>
#include <string>

#include "kernels/attention/attention.h"
#include "tests/catch.hpp"

namespace hs::test {

using namespace hs::kernels;

// Which interventions a case applies (each includes the masks of the previous ones where it says so).
enum class EditSet { None, Masks, BiasScale, Attenuation, Everything };

struct AttentionCase {
  std::string name;
  int64_t heads, kvHeads, nq, nk, dim;
  at::ScalarType dtype;
  int64_t queryStart = -1;  // -1: nk - nq (the queries are the last tokens)
  int64_t slidingWindow = 0;
  EditSet edits = EditSet::None;
  int64_t poolBlock = 16;
  bool stridedQ = false;  // q as a [tokens, heads, dim] transpose, k/v as a slice of a longer cache
};

// Owns the inputs and the edits/stats request that an AttentionCall points to.
struct AttentionProblem {
  at::Tensor q, k, v;  // float32 CPU copies of the dtype-rounded inputs
  LayerEdits edits;
  StatsRequest stats;
  int64_t queryStart = 0, slidingWindow = 0;
  double scale = 1.0;
};

inline std::unique_ptr<AttentionProblem> makeProblem(const AttentionCase& c, uint64_t seed) {
  at::manual_seed(seed);
  auto pr = std::make_unique<AttentionProblem>();
  auto round = [&](const at::Tensor& t) { return t.to(c.dtype).to(at::kFloat); };
  // Sharper than unit logits, plus a strong key 0, so that rows have a clear top-1 and a sink.
  pr->q = round(at::randn({c.heads, c.nq, c.dim}) * 1.5);
  auto k = at::randn({c.kvHeads, c.nk, c.dim});
  k.select(1, 0).mul_(3.0);
  pr->k = round(k);
  pr->v = round(at::randn({c.kvHeads, c.nk, c.dim}));
  pr->queryStart = c.queryStart < 0 ? c.nk - c.nq : c.queryStart;
  pr->slidingWindow = c.slidingWindow;
  pr->scale = 1.0 / std::sqrt(static_cast<double>(c.dim));

  const int64_t nk = c.nk, last = pr->queryStart + c.nq - 1;
  LayerEdits& e = pr->edits;
  if (c.edits == EditSet::Masks || c.edits == EditSet::Everything) {
    e.masks.push_back({0, HeadMask::sinkWindow(4, 16)});
    e.masks.push_back({1, HeadMask::keySet({0, 3, 5, nk - 1, 70, 70, 200})});
    const int64_t b = 16, nb = last / b + 1, kb = (nk - 1) / b + 1;
    auto blocks = at::rand({nb, kb}) < 0.4;
    for (int64_t i = 0; i < std::min(nb, kb); ++i) blocks[i][i] = true;  // the diagonal block always
    e.masks.push_back({2, HeadMask::blockSparse(b, blocks)});
    e.masks.push_back({3, HeadMask::sinkWindow(0, 1)});  // only the query's own token
  }
  if (c.edits == EditSet::BiasScale || c.edits == EditSet::Everything) {
    e.biases.push_back({0, {0}, std::log(2.0)});
    e.biases.push_back({1, {1, 2, 2}, -1.5});
    e.headScale = at::rand({c.heads}) * 2.0;
    e.headScale[c.heads - 1] = 0.0;  // ablation
    e.headAdd = at::randn({c.heads, c.dim}) * 0.1;
  }
  if (c.edits == EditSet::Attenuation || c.edits == EditSet::Everything) {
    e.attenuations.push_back({0, {0}, 0.4});
    e.attenuations.push_back(
        {2, {0, 1, 7, nk + 3}, 0.1});  // distinct keys: the CPU counts a repeated one twice
    e.biases.push_back({2, {0}, 1.0});
  }
  if (c.edits == EditSet::Everything) {
    StreamingMix m;
    m.head = 1, m.alpha = at::scalar_tensor(0.3), m.sink = 2, m.window = 8;
    e.mixes.push_back(m);
    StreamingMix m2;
    m2.head = 3, m2.alpha = at::scalar_tensor(0.8), m2.sink = 1, m2.window = 4;
    e.mixes.push_back(m2);
  }

  StatsRequest& s = pr->stats;
  s.sinkSet = {0, 1, 1, nk + 5};
  s.streamSink = 4, s.streamWindow = 16, s.distanceCap = 10, s.bandLo = 3, s.bandHi = 40;
  s.poolBlock = c.poolBlock;
  if (c.heads > 2) s.poolHeads = {2, 0};
  TargetSet prev{"previous token", {0}, {}}, rnd{"random keys", {0}, {}};
  for (int64_t r = 0; r < c.nq; ++r) {
    const int64_t pos = pr->queryStart + r;
    if (pos > 0) prev.keys.push_back(pos - 1);
    prev.rowStart.push_back(static_cast<int64_t>(prev.keys.size()));
    for (int i = 0; i < 3; ++i)
      rnd.keys.push_back(at::randint(0, pos + 2, {1}).item<int64_t>());  // dups, > pos
    rnd.rowStart.push_back(static_cast<int64_t>(rnd.keys.size()));
  }
  s.targets = {prev, rnd};
  s.tiles.push_back(
      {1, pr->queryStart, pr->queryStart + std::min<int64_t>(c.nq, 37), 0, std::min<int64_t>(nk, 50)});
  s.tiles.push_back({static_cast<int>(c.heads - 1), std::max<int64_t>(0, pr->queryStart - 3), last + 2,
                     std::max<int64_t>(0, nk - 20),
                     nk + 4});  // reaches outside this call's queries and keys: zeros there
  return pr;
}

// The call on the CPU (reference) or on the GPU (strided views when the case asks for them).
inline AttentionCall makeCall(const AttentionProblem& pr, const AttentionCase& c, bool onGpu,
                              bool withEdits) {
  AttentionCall call;
  call.queryStart = pr.queryStart, call.scale = pr.scale, call.slidingWindow = pr.slidingWindow;
  call.edits = withEdits ? &pr.edits : nullptr;
  call.stats = &pr.stats;
  if (!onGpu) {
    call.q = pr.q, call.k = pr.k, call.v = pr.v;
    return call;
  }
  const auto dev = at::TensorOptions().device(at::kCUDA).dtype(c.dtype);
  if (c.stridedQ) {
    call.q = pr.q.transpose(0, 1).contiguous().to(dev).transpose(0, 1);  // [H, nq, D] view of [nq, H, D]
    auto longer = [&](const at::Tensor& t) {
      auto cache = at::zeros({t.size(0), t.size(1) + 24, t.size(2)}, dev);
      cache.narrow(1, 0, t.size(1)).copy_(t);
      return cache.narrow(1, 0, t.size(1));
    };
    call.k = longer(pr.k), call.v = longer(pr.v);
  } else {
    call.q = pr.q.to(dev), call.k = pr.k.to(dev), call.v = pr.v.to(dev);
  }
  return call;
}

// Passes when |got - want| <= atol + rtol |want| everywhere and got has no NaN (poisoned, unwritten).
inline void expectClose(const at::Tensor& got, const at::Tensor& want, double atol, double rtol,
                        const std::string& what) {
  INFO(what << ": shapes " << got.sizes() << " vs " << want.sizes());
  REQUIRE(got.sizes() == want.sizes());
  if (want.numel() == 0) return;
  const auto g = got.cpu().to(at::kDouble), w = want.cpu().to(at::kDouble);
  const int64_t nans = at::isnan(g).sum().item<int64_t>();
  INFO(what << ": " << nans << " NaN (unwritten) elements");
  CHECK(nans == 0);
  const auto excess = (g - w).abs() - (atol + rtol * w.abs());
  const auto worst = excess.flatten().argmax().item<int64_t>();
  INFO(what << ": worst element " << worst << " got " << g.flatten()[worst].item<double>() << " want "
            << w.flatten()[worst].item<double>());
  CHECK(excess.max().item<double>() <= 0.0);
}

}  // namespace hs::test
