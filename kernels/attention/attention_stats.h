// Reduces blocks of attention probabilities to the per-head statistics of a StatsRequest.
// Shared by the CPU reference and by tests that compute statistics from full maps.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/attention/attention.h"

namespace hs::kernels {

// [1, rows, cols] float32 on `device`: the cells of pooled blocks row0.. x 0.. (blocks of b) inside a
// [positions, keys] map: b * b, fewer at the edges. A block's mean is its sum over this.
at::Tensor poolCellArea(int64_t b, int64_t positions, int64_t keys, int64_t row0, int64_t rows, int64_t cols,
                        at::Device device = at::kCPU);

class StatsAccumulator {
 public:
  // req may be null (then add() does nothing). Queries are at positions queryStart..+nq-1.
  StatsAccumulator(const StatsRequest* req, int64_t heads, int64_t nq, int64_t nk, int64_t queryStart);
  // probs: [H, rows, nk] final probabilities for query rows firstRow..firstRow+rows-1 (of this call)
  // at positions qpos [rows] = queryStart + firstRow, +1, ... (consecutive: the lag-based
  // statistics are summed along the block's diagonals); zero above the causal diagonal.
  void add(const at::Tensor& probs, const at::Tensor& qpos, int64_t firstRow);
  // The statistics of every row added so far.
  LayerStats finish();

 private:
  const StatsRequest* req_;
  int64_t heads_, nq_, nk_, queryStart_;
  LayerStats s_;
  at::Tensor poolSum_, poolHeads_;
  int64_t poolRow0_ = 0;  // first pooled block row this call touches
};

}  // namespace hs::kernels
