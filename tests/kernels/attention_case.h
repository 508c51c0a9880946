// Random attention calls of a given geometry and the float32-vs-float64 comparison the kernel tests
// share.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention/attention.h"
#include "tests/catch.hpp"
#include "tests/kernels/attention_reference.h"

namespace hs::test {

// Geometry of one call: query heads, KV heads, queries, keys, first query position, head_dim.
struct Shape {
  int64_t heads, kvHeads, nq, nk, queryStart, dim;
  int64_t slidingWindow = 0;
};

// One line naming the geometry, for INFO.
inline std::string describe(const Shape& s) {
  std::ostringstream o;
  o << "H=" << s.heads << " KVH=" << s.kvHeads << " Nq=" << s.nq << " Nk=" << s.nk
    << " start=" << s.queryStart << " D=" << s.dim << " window=" << s.slidingWindow;
  return o.str();
}

// q, k, v from at::randn with a fixed seed; scale 1.5/sqrt(D) makes rows neither flat nor one-hot.
inline kernels::AttentionCall randomCall(const Shape& s, uint64_t seed) {
  at::manual_seed(seed);
  kernels::AttentionCall c;
  c.q = at::randn({s.heads, s.nq, s.dim});
  c.k = at::randn({s.kvHeads, s.nk, s.dim});
  c.v = at::randn({s.kvHeads, s.nk, s.dim});
  c.queryStart = s.queryStart;
  c.scale = 1.5 / std::sqrt(static_cast<double>(s.dim));
  c.slidingWindow = s.slidingWindow;
  return c;
}

// Prefill (Nq = Nk), decode (Nq = 1, queryStart > 0), N = 1, odd N, GQA 1/4/8, head_dim 8/64/128.
inline const std::vector<Shape> kShapes = {
    {1, 1, 1, 1, 0, 8},         // N = 1
    {2, 2, 5, 5, 0, 8},         // prefill, no GQA
    {4, 1, 7, 7, 0, 8, 3},      // GQA 4, sliding window 3
    {8, 1, 13, 13, 0, 64},      // GQA 8, head_dim 64
    {4, 4, 11, 11, 0, 128},     // head_dim 128
    {8, 2, 23, 23, 0, 8, 6},    // GQA 4, odd N, window 6
    {4, 1, 1, 37, 36, 8},       // decode, GQA 4
    {8, 1, 1, 50, 49, 64, 16},  // decode with a sliding window, GQA 8
    {4, 2, 3, 29, 26, 128},     // three new tokens at the end of a cache
    {2, 1, 5, 19, 9, 8},        // queries in the middle of the keys: later keys stay invisible
};

// Number of size-b blocks that cover a positions.
inline int64_t ceilDiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Every kind of edit, spread over the heads so that several act on one head where H is small.
inline kernels::LayerEdits editBundle(const Shape& s, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t H = s.heads, nk = s.nk;
  const int other = H >= 3 ? 2 : 0;
  kernels::LayerEdits e;
  e.masks.emplace_back(0, kernels::HeadMask::sinkWindow(2, 3));
  e.masks.emplace_back(static_cast<int>(1 % H), kernels::HeadMask::keySet({0, 2, 5, nk - 1, nk + 7}));
  if (H >= 3)
    e.masks.emplace_back(2,
                         kernels::HeadMask::blockSparse(4, at::rand({ceilDiv(nk, 4), ceilDiv(nk, 4)}) < 0.6));
  e.biases.push_back({static_cast<int>(1 % H), {0, 3}, std::log(2.0)});
  e.biases.push_back({other, {1, nk - 1}, -0.7});
  e.attenuations.push_back({0, {0}, 0.4});
  e.attenuations.push_back({H >= 3 ? 2 : static_cast<int>(1 % H), {0, 1}, 0.25});
  if (H >= 4) e.mixes.push_back({3, at::scalar_tensor(0.3), 2, 4});
  e.headScale = at::rand({H}) + 0.5;
  if (H > 1) e.headScale[H - 1] = 0.0;  // ablation
  e.headAdd = at::randn({H, s.dim}) * 0.1;
  return e;
}

// Bytes of maxBlockBytes that give `rows` query rows per block. It relies only on the documented
// bound (one block's [H, rows, Nk] probabilities): any value at least that size must give the same
// results, which is what the sweeps check.
inline int64_t blockBytesForRows(const Shape& s, int64_t rows) {
  return rows * s.heads * s.nk * 4 * 3;
}

// Largest |got - want| / max(1, |want|): float32 against float64, absolute for values up to 1.
// NaN or infinity in got counts as an infinite error.
inline double maxError(const std::vector<double>& got, const std::vector<double>& want, int64_t* where) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (size_t n = 0; n < got.size(); ++n) {
    const double e =
        std::isfinite(got[n]) ? std::abs(got[n] - want[n]) / std::max(1.0, std::abs(want[n])) : INFINITY;
    if (e > worst || (*where < 0 && e == worst)) {
      worst = e;
      *where = static_cast<int64_t>(n);
    }
  }
  return worst;
}

constexpr double kTol = 1e-5;

// CHECKs that got (a tensor) matches want (float64) within kTol, naming the quantity and the worst
// element.
#define HS_CHECK_CLOSE(got, want, name)                                                                 \
  do {                                                                                                  \
    const auto hsGot_ = ::hs::test::toDoubles(got);                                                     \
    const auto& hsWant_ = (want);                                                                       \
    int64_t hsAt_ = -1;                                                                                 \
    const double hsErr_ = ::hs::test::maxError(hsGot_, hsWant_, &hsAt_);                                \
    INFO(name << ": max error " << hsErr_ << " at flat index " << hsAt_ << " (got "                     \
              << (hsAt_ >= 0 ? hsGot_[hsAt_] : 0.0) << ", want " << (hsAt_ >= 0 ? hsWant_[hsAt_] : 0.0) \
              << ")");                                                                                  \
    CHECK(hsErr_ <= ::hs::test::kTol);                                                                  \
  } while (0)

}  // namespace hs::test
