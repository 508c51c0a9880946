// The instrumented configuration the benchmarks time: every statistic a StatsRequest can ask for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kernels/attention/attention.h"

namespace hs::bench {

// Sink set {0..3}, entropy, stream mass, WAAD, mean distance, top-1, column sums, banded column
// sums, one previous-token target set over n queries, one 64x64 tile, and block-pooled max/mean maps
// of every head with `poolBlock` (0: off; they are O((N/B)^2) per head).
// The pool block that keeps a pooled map at most 256 cells a side: a multiple of 64 (the tensor-core
// statistics' key tile), at least 64.
inline int64_t mapBlock(int64_t n) {
  return (std::max<int64_t>(64, (n + 255) / 256) + 63) / 64 * 64;
}

inline kernels::StatsRequest everyStatistic(int64_t n, int64_t poolBlock) {
  kernels::StatsRequest s;
  s.sinkSet = {0, 1, 2, 3};
  s.poolBlock = poolBlock;
  kernels::TargetSet previous{"previous_token", {0}, {}};  // each query's preceding token
  previous.keys.reserve(static_cast<size_t>(std::max<int64_t>(n - 1, 0)));
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) previous.keys.push_back(i - 1);
    previous.rowStart.push_back(static_cast<int64_t>(previous.keys.size()));
  }
  s.targets.push_back(std::move(previous));
  s.tiles.push_back({0, 0, std::min<int64_t>(n, 64), 0, std::min<int64_t>(n, 64)});
  return s;
}

}  // namespace hs::bench
