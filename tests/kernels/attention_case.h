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

inline std::string describe(const Shape& s) {
  std::ostringstream o;
  o << "H=" << s.heads << " KVH=" << s.kvHeads << " Nq=" << s.nq << " Nk=" << s.nk << " start=" << s.queryStart
    << " D=" << s.dim << " window=" << s.slidingWindow;
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

// Bytes of maxBlockBytes that give `rows` query rows per block. It relies only on the documented
// bound (one block's [H, rows, Nk] probabilities): any value at least that size must give the same
// results, which is what the sweeps check.
inline int64_t blockBytesForRows(const Shape& s, int64_t rows) { return rows * s.heads * s.nk * 4 * 3; }

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
#define HS_CHECK_CLOSE(got, want, name)                                                               \
  do {                                                                                                \
    const auto hsGot_ = ::hs::test::toDoubles(got);                                                   \
    const auto& hsWant_ = (want);                                                                     \
    int64_t hsAt_ = -1;                                                                               \
    const double hsErr_ = ::hs::test::maxError(hsGot_, hsWant_, &hsAt_);                              \
    INFO(name << ": max error " << hsErr_ << " at flat index " << hsAt_ << " (got "                   \
              << (hsAt_ >= 0 ? hsGot_[hsAt_] : 0.0) << ", want " << (hsAt_ >= 0 ? hsWant_[hsAt_] : 0.0) \
              << ")");                                                                                \
    CHECK(hsErr_ <= ::hs::test::kTol);                                                                \
  } while (0)

}  // namespace hs::test
