// Float64 reference of one instrumented attention call, written as plain loops over
// (head, query, key) straight from the definitions in kernels/attention/attention.h and
// shared/spec/algorithms.md. It shares no code with the CPU kernel: tests compare the two.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "kernels/attention/attention.h"

namespace hs::test {

// A contiguous float64 copy of a tensor, row-major.
inline std::vector<double> toDoubles(const at::Tensor& t) {
  const auto c = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// The call's geometry and inputs in float64.
struct RefCall {
  int64_t heads = 0, kvHeads = 0, nq = 0, nk = 0, dim = 0, queryStart = 0, slidingWindow = 0;
  double scale = 1.0;
  std::vector<double> q, k, v;  // [H, Nq, D], [KVH, Nk, D], [KVH, Nk, D]

  explicit RefCall(const kernels::AttentionCall& c)
      : heads(c.q.size(0)),
        kvHeads(c.k.size(0)),
        nq(c.q.size(1)),
        nk(c.k.size(1)),
        dim(c.q.size(2)),
        queryStart(c.queryStart),
        slidingWindow(c.slidingWindow),
        scale(c.scale),
        q(toDoubles(c.q)),
        k(toDoubles(c.k)),
        v(toDoubles(c.v)) {}
};

// Output [H, Nq, D], final probabilities [H, Nq, Nk], and for each StreamingMix (in order) the
// head's full and streaming outputs [Nq, D] before mixing (d out / d alpha = full - streaming).
struct RefResult {
  std::vector<double> out, probs;
  std::vector<std::vector<double>> mixFull, mixStreaming;
};

// Whether a head mask lets query position i see key position j.
inline bool maskAllows(const kernels::HeadMask& m, int64_t i, int64_t j) {
  using K = kernels::HeadMask::Kind;
  if (m.kind == K::SinkWindow) return j < m.sink || (i - m.window < j && j <= i);
  if (m.kind == K::KeySet) return std::find(m.keys.begin(), m.keys.end(), j) != m.keys.end();
  const auto b = m.blocks.to(at::kBool);
  return b[i / m.blockSize][j / m.blockSize].item<bool>();
}

// Softmax of logits over the allowed keys; all zero when no key is allowed.
inline std::vector<double> maskedSoftmax(const std::vector<double>& logits,
                                         const std::vector<bool>& allowed) {
  std::vector<double> p(logits.size(), 0.0);
  double mx = -INFINITY;
  for (size_t j = 0; j < logits.size(); ++j)
    if (allowed[j]) mx = std::max(mx, logits[j]);
  if (mx == -INFINITY) return p;
  double z = 0.0;
  for (size_t j = 0; j < logits.size(); ++j)
    if (allowed[j]) z += (p[j] = std::exp(logits[j] - mx));
  for (double& x : p) x /= z;
  return p;
}

inline RefResult referenceAttention(const RefCall& c, const kernels::LayerEdits* edits) {
  const int64_t H = c.heads, NQ = c.nq, NK = c.nk, D = c.dim, G = c.heads / c.kvHeads;
  RefResult r;
  r.out.assign(H * NQ * D, 0.0);
  r.probs.assign(H * NQ * NK, 0.0);
  const size_t nMix = edits ? edits->mixes.size() : 0;
  r.mixFull.assign(nMix, std::vector<double>(NQ * D, 0.0));
  r.mixStreaming.assign(nMix, std::vector<double>(NQ * D, 0.0));
  const auto scaleH =
      (edits && edits->headScale.defined()) ? toDoubles(edits->headScale) : std::vector<double>();
  const auto addH = (edits && edits->headAdd.defined()) ? toDoubles(edits->headAdd) : std::vector<double>();
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / G;
    for (int64_t row = 0; row < NQ; ++row) {
      const int64_t i = c.queryStart + row;
      std::vector<double> logit(NK, 0.0);
      std::vector<bool> allowed(NK, false);
      for (int64_t j = 0; j < NK; ++j) {
        double s = 0.0;
        for (int64_t d = 0; d < D; ++d) s += c.q[(h * NQ + row) * D + d] * c.k[(g * NK + j) * D + d];
        logit[j] = s * c.scale;
        allowed[j] = j <= i && (c.slidingWindow == 0 || j > i - c.slidingWindow);
        if (!edits) continue;
        for (const auto& b : edits->biases)
          if (b.head == h && std::find(b.keys.begin(), b.keys.end(), j) != b.keys.end()) logit[j] += b.value;
        for (const auto& [mh, m] : edits->masks)
          if (mh == h && allowed[j]) allowed[j] = maskAllows(m, i, j);
      }
      auto p = maskedSoftmax(logit, allowed);
      if (edits)
        for (const auto& a : edits->attenuations) {
          if (a.head != h) continue;
          const std::set<int64_t> listed(a.keys.begin(), a.keys.end());
          double on = 0.0, off = 0.0;
          for (int64_t j = 0; j < NK; ++j) (listed.count(j) ? on : off) += p[j];
          if (off <= 0.0) continue;  // nothing to give the removed mass to
          const double gain = 1.0 + on * (1.0 - a.beta) / off;
          for (int64_t j = 0; j < NK; ++j) p[j] *= listed.count(j) ? a.beta : gain;
        }
      std::vector<double> o(D, 0.0);
      for (int64_t j = 0; j < NK; ++j) {
        r.probs[(h * NQ + row) * NK + j] = p[j];
        for (int64_t d = 0; d < D; ++d) o[d] += p[j] * c.v[(g * NK + j) * D + d];
      }
      for (size_t m = 0; m < nMix; ++m) {
        const auto& mix = edits->mixes[m];
        if (mix.head != h) continue;
        std::vector<bool> stream(NK);
        for (int64_t j = 0; j < NK; ++j) stream[j] = allowed[j] && (j < mix.sink || j > i - mix.window);
        const auto ps = maskedSoftmax(logit, stream);
        const double alpha = mix.alpha.item<double>();
        for (int64_t d = 0; d < D; ++d) {
          double s = 0.0;
          for (int64_t j = 0; j < NK; ++j) s += ps[j] * c.v[(g * NK + j) * D + d];
          r.mixFull[m][row * D + d] = o[d];
          r.mixStreaming[m][row * D + d] = s;
          o[d] = alpha * o[d] + (1.0 - alpha) * s;
        }
      }
      for (int64_t d = 0; d < D; ++d) {
        double x = o[d];
        if (!scaleH.empty()) x *= scaleH[h];
        if (!addH.empty()) x += addH[h * D + d];
        r.out[(h * NQ + row) * D + d] = x;
      }
    }
  }
  return r;
}

}  // namespace hs::test
