// Float64 reference of LayerStats, computed from a full probability map [H, Nq, Nk] with loops that
// follow each statistic's definition in kernels/attention/attention.h and shared/spec/algorithms.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "kernels/attention/attention.h"

namespace hs::test {

// Every statistic of one call in float64, laid out like LayerStats (row-major).
struct RefStats {
  std::vector<double> sinkFirst, sinkSet, entropy, streamMass, waad, meanDistance, top1Prob;  // [H, Nq]
  std::vector<double> colSum, colSumBand;                                                     // [H, Nk]
  std::vector<double> targetMass;                                                             // [T, H, Nq]
  int64_t poolRows = 0, poolCols = 0;
  std::vector<double> poolMax, poolMean;  // [P, poolRows, poolCols]
  std::vector<std::vector<double>> tiles;
};

// probs: [H, Nq, Nk] for queries at positions queryStart..queryStart+Nq-1.
inline RefStats referenceStats(const std::vector<double>& probs, int64_t H, int64_t NQ, int64_t NK,
                               int64_t queryStart, const kernels::StatsRequest& req) {
  RefStats s;
  auto A = [&](int64_t h, int64_t row, int64_t j) { return probs[(h * NQ + row) * NK + j]; };
  for (auto* v : {&s.sinkFirst, &s.sinkSet, &s.entropy, &s.streamMass, &s.waad, &s.meanDistance, &s.top1Prob})
    v->assign(H * NQ, 0.0);
  s.colSum.assign(H * NK, 0.0);
  s.colSumBand.assign(H * NK, 0.0);
  const std::set<int64_t> sinks(req.sinkSet.begin(), req.sinkSet.end());
  for (int64_t h = 0; h < H; ++h)
    for (int64_t row = 0; row < NQ; ++row) {
      const int64_t i = queryStart + row, at = h * NQ + row;
      s.sinkFirst[at] = NK > 0 ? A(h, row, 0) : 0.0;
      for (int64_t j = 0; j < NK; ++j) {
        const double a = A(h, row, j);
        if (sinks.count(j)) s.sinkSet[at] += a;
        if (a > 0) s.entropy[at] -= a * std::log(a);
        if (j < req.streamSink || (j <= i && j > i - req.streamWindow)) s.streamMass[at] += a;
        s.waad[at] += a * static_cast<double>(std::min(i - j, req.distanceCap));
        s.meanDistance[at] += a * static_cast<double>(i - j);
        s.top1Prob[at] = std::max(s.top1Prob[at], a);
        s.colSum[h * NK + j] += a;
        if (i - j >= req.bandLo && i - j <= req.bandHi) s.colSumBand[h * NK + j] += a;
      }
    }

  const int64_t T = static_cast<int64_t>(req.targets.size());
  s.targetMass.assign(T * H * NQ, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t row = 0; row < NQ; ++row) {
      const auto& ts = req.targets[t];
      const std::set<int64_t> keys(ts.keys.begin() + ts.rowStart[row],
                                   ts.keys.begin() + ts.rowStart[row + 1]);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j : keys)
          if (j >= 0 && j < NK) s.targetMass[(t * H + h) * NQ + row] += A(h, row, j);
    }

  if (req.poolBlock > 0) {
    // Blocks tile the [queryStart + Nq, Nk] map by absolute position; a block's mean divides by the
    // number of its cells inside that map (masked and earlier-call cells count as 0).
    const int64_t B = req.poolBlock, npos = queryStart + NQ;
    s.poolRows = (npos + B - 1) / B;
    s.poolCols = (NK + B - 1) / B;
    std::vector<int64_t> heads(req.poolHeads.begin(), req.poolHeads.end());
    if (heads.empty())
      for (int64_t h = 0; h < H; ++h) heads.push_back(h);
    const int64_t P = static_cast<int64_t>(heads.size());
    s.poolMax.assign(P * s.poolRows * s.poolCols, 0.0);
    s.poolMean.assign(P * s.poolRows * s.poolCols, 0.0);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t qb = 0; qb < s.poolRows; ++qb)
        for (int64_t kb = 0; kb < s.poolCols; ++kb) {
          const int64_t i1 = std::min(npos, (qb + 1) * B), j1 = std::min(NK, (kb + 1) * B);
          double mx = 0.0, sum = 0.0;
          for (int64_t i = std::max(queryStart, qb * B); i < i1; ++i)
            for (int64_t j = kb * B; j < j1; ++j) {
              mx = std::max(mx, A(heads[p], i - queryStart, j));
              sum += A(heads[p], i - queryStart, j);
            }
          const int64_t cell = (p * s.poolRows + qb) * s.poolCols + kb;
          s.poolMax[cell] = mx;
          s.poolMean[cell] = sum / static_cast<double>((i1 - qb * B) * (j1 - kb * B));
        }
  }

  for (const auto& t : req.tiles) {
    // Cells outside this call's queries or keys are 0.
    std::vector<double> tile((t.q1 - t.q0) * (t.k1 - t.k0), 0.0);
    for (int64_t i = t.q0; i < t.q1; ++i)
      for (int64_t j = t.k0; j < t.k1; ++j)
        if (i >= queryStart && i < queryStart + NQ && j < NK)
          tile[(i - t.q0) * (t.k1 - t.k0) + (j - t.k0)] = A(t.head, i - queryStart, j);
    s.tiles.push_back(std::move(tile));
  }
  return s;
}

}  // namespace hs::test
