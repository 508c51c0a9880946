// copyToHost (kernels/core/host_copy.h): values, dtypes, shapes, alignment and the shared allocation.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "kernels/core/host_copy.h"
#include "tests/catch.hpp"

TEST_CASE("copyToHost: every tensor comes back equal, aligned, in one allocation", "[kernels][host_copy]") {
  at::manual_seed(5);
  const std::vector<at::Tensor> in = {
      at::rand({32, 1000}),                                  // float statistics
      at::randint(0, 1 << 20, {32, 1000}, at::kLong),        // top-1 positions
      at::Tensor(),                                          // a statistic not requested
      at::zeros({0, 32, 1000}),                              // no target sets
      at::rand({3, 5, 7}).to(at::kBFloat16),                 // an odd size and a 2-byte dtype
      at::rand({2, 64, 64}).transpose(1, 2),                 // not contiguous
      at::rand({4, 1 << 18}),                                // 4 MiB: big enough for huge pages
  };
  const auto out = hs::copyToHost(in);
  REQUIRE(out.size() == in.size());
  const void* storage = nullptr;
  for (size_t i = 0; i < in.size(); ++i) {
    INFO("tensor " << i);
    REQUIRE(out[i].defined() == in[i].defined());
    if (!in[i].defined()) continue;
    CHECK(out[i].device().is_cpu());
    CHECK(out[i].scalar_type() == in[i].scalar_type());
    CHECK(out[i].sizes() == in[i].sizes());
    CHECK(out[i].is_contiguous());
    CHECK(at::equal(out[i], in[i]));
    CHECK(reinterpret_cast<uintptr_t>(out[i].data_ptr()) % 64 == 0);
    const void* s = out[i].storage().data();
    if (!storage) storage = s;
    CHECK(s == storage);  // one allocation
  }
  // Views of one block, but disjoint: writing one leaves the others as they were.
  out[0].fill_(-1.0f);
  CHECK(at::equal(out[1], in[1]));
  CHECK(at::equal(out[6], in[6]));
  // Nothing to copy gives nothing.
  CHECK(hs::copyToHost({}).empty());
}
