// applyRope against transformers' formula, x * cos + rotate_half(x) * sin with rotate_half(x) =
// cat(-x2, x1): the tables fold the negation into sin, which must not change a single bit.
#include <ATen/ATen.h>

#include "inference/models/rope.h"
#include "tests/catch.hpp"

using namespace hs;

namespace {

// transformers' apply_rotary_pos_emb on the first rot dims, from the tables' cos and the plain sin.
at::Tensor transformersRope(const at::Tensor& x, const RopeTables& t) {
  const int64_t rot = t.cos.size(-1), half = rot / 2;
  const auto& s = t.signedSin;
  const auto sin = at::cat({s.narrow(-1, 0, half).neg(), s.narrow(-1, half, half)}, -1);
  const auto xr = x.narrow(-1, 0, rot);
  const auto rotateHalf = at::cat({xr.narrow(-1, half, half).neg(), xr.narrow(-1, 0, half)}, -1);
  const auto out = xr * t.cos + rotateHalf * sin;
  return rot == x.size(-1) ? out : at::cat({out, x.narrow(-1, rot, x.size(-1) - rot)}, -1);
}

}  // namespace

TEST_CASE("applyRope equals transformers' rotate_half formula bit for bit", "[rope]") {
  const auto dtype = GENERATE(at::kFloat, at::kBFloat16);
  const double partial = GENERATE(1.0, 0.5);
  ModelConfig c;
  c.headDim = 16;
  c.maxPositions = 4096;
  c.rope.theta = 500000.0;
  c.rope.partialRotaryFactor = partial;
  const int64_t pos0 = 1000, n = 7;
  const auto tables = ropeTables(c, pos0, n, at::kCPU, dtype);
  const auto rotated = static_cast<int64_t>(16 * partial);
  CHECK(tables.cos.sizes() == at::IntArrayRef{1, n, rotated});
  // the plain sin of the positions' angles, as transformers computes it (float32, then the dtype)
  const auto angles = at::outer(at::arange(pos0, pos0 + n, at::kLong).to(at::kFloat),
                                ropeInverseFrequencies(c, pos0 + n).to(at::kFloat));
  const auto sin = at::cat({angles, angles}, -1).sin().to(dtype).unsqueeze(0);
  CHECK(at::equal(tables.signedSin.narrow(-1, rotated / 2, rotated / 2),
                  sin.narrow(-1, rotated / 2, rotated / 2)));
  CHECK(at::equal(tables.signedSin.narrow(-1, 0, rotated / 2), -sin.narrow(-1, 0, rotated / 2)));
  // q as the forward passes it: [heads, n, D], a transposed view
  const auto x = at::randn({n, 4, 16}, at::TensorOptions().dtype(at::kFloat)).to(dtype).transpose(0, 1);
  CHECK(at::equal(applyRope(x, tables), transformersRope(x, tables)));
}
