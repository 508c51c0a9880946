#include "kernels/attention/attention_stats.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "kernels/core/error.h"

namespace hs::kernels {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pads or keeps a column statistic [H, n] to [H, nk].
at::Tensor padColumns(const at::Tensor& t, int64_t nk) {
  if (t.size(1) == nk) return t;
  auto out = at::zeros({t.size(0), nk}, t.options());
  out.narrow(1, 0, std::min(nk, t.size(1))).copy_(t.narrow(1, 0, std::min(nk, t.size(1))));
  return out;
}

// A pooled map [P, r, c] whose first row is block row `first` of a [P, rows, cols] map: that map, zero
// elsewhere.
at::Tensor padCells(const at::Tensor& t, int64_t first, int64_t rows, int64_t cols) {
  if (first == 0 && t.size(1) == rows && t.size(2) == cols) return t;
  auto out = at::zeros({t.size(0), rows, cols}, t.options());
  out.narrow(1, first, t.size(1)).narrow(2, 0, t.size(2)).copy_(t);
  return out;
}

// Lags (query position - key) up to this many diagonals are summed diagonal by diagonal; wider
// windows or bands take one dense masked pass.
constexpr int64_t kMaxDiagonals = 256;

// Calls f(values [H, len], firstRow, firstKey) for each lag L in [lo, hi] that has elements in the
// block: the diagonal of p [H, rows, nk] whose row r holds key qpos[r] - L (qpos[r] = pos0 + r).
template <typename F>
void forEachLag(const at::Tensor& p, int64_t pos0, int64_t lo, int64_t hi, F&& f) {
  const int64_t rows = p.size(1), nk = p.size(2);
  for (int64_t lag = std::max<int64_t>(lo, 0); lag <= hi; ++lag) {
    const int64_t d = pos0 - lag;  // key - row along the diagonal
    const int64_t r0 = std::max<int64_t>(0, -d), k0 = r0 + d;
    if (r0 >= rows || k0 >= nk) continue;
    f(lag, p.diagonal(d, 1, 2), r0, k0);
  }
}

}  // namespace

at::Tensor poolCellArea(int64_t b, int64_t positions, int64_t keys, int64_t row0, int64_t rows, int64_t cols,
                        at::Device device) {
  const auto index = at::TensorOptions().dtype(at::kLong).device(device);
  const auto rowsIn = (positions - (at::arange(rows, index) + row0) * b).clamp(0, b).to(at::kFloat);
  const auto colsIn = (keys - at::arange(cols, index) * b).clamp(0, b).to(at::kFloat);
  return (rowsIn.unsqueeze(1) * colsIn.unsqueeze(0)).unsqueeze(0);
}

StatsAccumulator::StatsAccumulator(const StatsRequest* req, int64_t heads, int64_t nq, int64_t nk,
                                   int64_t queryStart)
    : req_(req), heads_(heads), nq_(nq), nk_(nk), queryStart_(queryStart) {
  if (!req_) return;
  const auto f = at::TensorOptions().dtype(at::kFloat);
  s_.sinkFirst = at::zeros({heads, nq}, f);
  s_.sinkSet = at::zeros({heads, nq}, f);
  s_.entropy = at::zeros({heads, nq}, f);
  s_.streamMass = at::zeros({heads, nq}, f);
  s_.waad = at::zeros({heads, nq}, f);
  s_.meanDistance = at::zeros({heads, nq}, f);
  s_.top1Pos = at::zeros({heads, nq}, at::kLong);
  s_.top1Prob = at::zeros({heads, nq}, f);
  s_.colSum = at::zeros({heads, nk}, f);
  s_.colSumBand = at::zeros({heads, nk}, f);
  s_.targetMass = at::zeros({static_cast<int64_t>(req_->targets.size()), heads, nq}, f);
  for (const auto& t : req_->targets)
    check(static_cast<int64_t>(t.rowStart.size()) == nq + 1 && t.rowStart.front() == 0 &&
              t.rowStart.back() == static_cast<int64_t>(t.keys.size()) &&
              std::is_sorted(t.rowStart.begin(), t.rowStart.end()),  // add() indexes keys by these
          ErrorKind::InvalidArgument, "target set '" + t.name + "' must have one row per query", {}, "stats");
  if (req_->poolBlock > 0) {
    std::vector<int64_t> ph;
    for (int h : req_->poolHeads) {
      check(h >= 0 && h < heads, ErrorKind::InvalidArgument, "pool head out of range", {}, "stats");
      ph.push_back(h);
    }
    if (ph.empty())
      for (int64_t h = 0; h < heads; ++h) ph.push_back(h);
    poolHeads_ = at::tensor(ph, at::kLong);
    poolRow0_ = queryStart / req_->poolBlock;  // rows of the map this call's queries touch
    const int64_t nqb = ceilDiv(queryStart + nq, req_->poolBlock) - poolRow0_,
                  nkb = ceilDiv(nk, req_->poolBlock);
    s_.poolMax = at::zeros({poolHeads_.numel(), nqb, nkb}, f);
    poolSum_ = at::zeros({poolHeads_.numel(), nqb, nkb}, f);
  }
  for (const auto& t : req_->tiles) {
    check(t.head >= 0 && t.head < heads && 0 <= t.q0 && t.q0 < t.q1 && 0 <= t.k0 && t.k0 < t.k1,
          ErrorKind::InvalidArgument, "invalid tile request", {}, "stats");
    check(t.q1 - t.q0 <= (int64_t{1} << 30) / (t.k1 - t.k0), ErrorKind::OutOfMemory,  // no int64 overflow
          "tile of " + std::to_string(t.q1 - t.q0) + "x" + std::to_string(t.k1 - t.k0) + " is too large", {},
          "stats");
    s_.tiles.push_back(at::zeros({t.q1 - t.q0, t.k1 - t.k0}, f));
  }
}

void StatsAccumulator::add(const at::Tensor& probsIn, const at::Tensor& qpos, int64_t firstRow) {
  if (!req_) return;
  const auto p = probsIn.detach();
  const int64_t rows = p.size(1);
  auto rowSlice = [&](at::Tensor& t) { return t.narrow(1, firstRow, rows); };
  const auto kpos = at::arange(nk_, at::kLong).unsqueeze(0);
  const auto qp = qpos.unsqueeze(1);
  const auto dist = (qp - kpos).clamp_min(0).to(at::kFloat);  // [rows, nk]: lag, 0 above the diagonal

  rowSlice(s_.sinkFirst).copy_(p.select(2, 0));
  std::vector<int64_t> sinks;
  for (int64_t j : req_->sinkSet)
    if (j >= 0 && j < nk_ && std::find(sinks.begin(), sinks.end(), j) == sinks.end()) sinks.push_back(j);
  if (!sinks.empty()) rowSlice(s_.sinkSet).copy_(p.index_select(2, at::tensor(sinks, at::kLong)).sum(2));
  rowSlice(s_.entropy).copy_(at::xlogy(p, p).sum(2).neg());
  const auto [top, arg] = p.max(2);
  rowSlice(s_.top1Prob).copy_(top);
  rowSlice(s_.top1Pos).copy_(arg);
  const auto rowSum = (top > 0).to(at::kFloat);  // [H, rows]: a row's mass is 1, or 0 if it sees no key
  const int64_t pos0 = queryStart_ + firstRow;  // the block's queries are pos0, pos0 + 1, ...
  rowSlice(s_.meanDistance).copy_((p * dist).sum(2));

  // Stream mass: the first streamSink keys, plus the window diagonals (lag < streamWindow) past them.
  const int64_t sink = std::clamp<int64_t>(req_->streamSink, 0, nk_);
  if (req_->streamWindow <= kMaxDiagonals) {
    auto stream = sink > 0 ? p.narrow(2, 0, sink).sum(2) : at::zeros_like(rowSum);
    forEachLag(p, pos0, 0, req_->streamWindow - 1, [&](int64_t, const at::Tensor& diag, int64_t r0, int64_t k0) {
      const int64_t skip = std::max<int64_t>(0, sink - k0);  // keys < sink are counted already
      const int64_t len = diag.size(1) - skip;
      if (len > 0) stream.narrow(1, r0 + skip, len).add_(diag.narrow(1, skip, len));
    });
    rowSlice(s_.streamMass).copy_(stream);
  } else {
    const auto window = ((kpos < req_->streamSink) | (kpos > qp - req_->streamWindow)).to(at::kFloat);
    rowSlice(s_.streamMass).copy_((p * window).sum(2));
  }

  // WAAD: sum_j A min(lag, W) = W * rowSum - sum over lags L < W of (W - L) A[i, i - L].
  const int64_t cap = req_->distanceCap;
  if (cap <= kMaxDiagonals) {
    auto waad = rowSum * static_cast<double>(cap);
    forEachLag(p, pos0, 0, cap - 1, [&](int64_t lag, const at::Tensor& diag, int64_t r0, int64_t) {
      waad.narrow(1, r0, diag.size(1)).sub_(diag, static_cast<double>(cap - lag));
    });
    rowSlice(s_.waad).copy_(waad);
  } else {
    rowSlice(s_.waad).copy_((p * dist.clamp_max(static_cast<double>(cap))).sum(2));
  }

  s_.colSum.add_(p.sum(1));

  // Band column sums: each lag's diagonal adds to a contiguous range of keys.
  if (req_->bandHi - req_->bandLo < kMaxDiagonals) {
    forEachLag(p, pos0, req_->bandLo, req_->bandHi, [&](int64_t, const at::Tensor& diag, int64_t, int64_t k0) {
      s_.colSumBand.narrow(1, k0, diag.size(1)).add_(diag);
    });
  } else {
    const auto lag = qp - kpos;
    const auto band = ((lag >= req_->bandLo) & (lag <= req_->bandHi)).to(at::kFloat);
    s_.colSumBand.add_((p * band).sum(1));
  }

  // Target mass: gather each row's keys (each once, in range) from the flattened block, O(H x entries).
  const auto flat = p.reshape({p.size(0), rows * nk_});
  for (size_t t = 0; t < req_->targets.size(); ++t) {
    const auto& ts = req_->targets[t];
    std::vector<int64_t> index, rowOf, rowKeys;
    for (int64_t r = 0; r < rows; ++r) {
      rowKeys.assign(ts.keys.begin() + ts.rowStart[firstRow + r], ts.keys.begin() + ts.rowStart[firstRow + r + 1]);
      std::sort(rowKeys.begin(), rowKeys.end());
      rowKeys.erase(std::unique(rowKeys.begin(), rowKeys.end()), rowKeys.end());
      for (int64_t key : rowKeys)
        if (key >= 0 && key < nk_) index.push_back(r * nk_ + key), rowOf.push_back(r);
    }
    auto mass = at::zeros({p.size(0), rows}, p.options());
    if (!index.empty())
      mass.index_add_(1, at::tensor(rowOf, at::kLong), flat.index_select(1, at::tensor(index, at::kLong)));
    s_.targetMass[t].narrow(1, firstRow, rows).copy_(mass);
  }

  if (req_->poolBlock > 0) {
    const int64_t b = req_->poolBlock, nkb = poolSum_.size(2);
    auto sel = poolHeads_.numel() == heads_ && req_->poolHeads.empty() ? p : p.index_select(0, poolHeads_);
    if (nkb * b != nk_) sel = at::constant_pad_nd(sel, {0, nkb * b - nk_});
    const auto byKeyBlock = sel.view({sel.size(0), rows, nkb, b});
    const auto rowMax = byKeyBlock.amax(3), cellSum = byKeyBlock.sum(3);  // [P, rows, nkb]
    for (int64_t r = 0; r < rows;) {
      const int64_t qb = (pos0 + r) / b;
      const int64_t end = std::min(rows, (qb + 1) * b - pos0);
      auto mx = s_.poolMax.select(1, qb - poolRow0_);
      mx.copy_(at::maximum(mx, rowMax.narrow(1, r, end - r).amax(1)));
      poolSum_.select(1, qb - poolRow0_).add_(cellSum.narrow(1, r, end - r).sum(1));
      r = end;
    }
  }

  for (size_t i = 0; i < req_->tiles.size(); ++i) {
    const auto& t = req_->tiles[i];
    const int64_t a = std::max(t.q0, pos0), e = std::min(t.q1, pos0 + rows);
    const int64_t kEnd = std::min(t.k1, nk_);
    if (a >= e || t.k0 >= kEnd) continue;
    s_.tiles[i].narrow(0, a - t.q0, e - a).narrow(1, 0, kEnd - t.k0)
        .copy_(p[t.head].narrow(0, a - pos0, e - a).narrow(1, t.k0, kEnd - t.k0));
  }
}

LayerStats StatsAccumulator::finish() {
  if (req_ && req_->poolBlock > 0) {
    // Cells per block inside the [positions, keys] map: full blocks have B*B, edge blocks fewer.
    const int64_t b = req_->poolBlock, npos = queryStart_ + nq_;
    s_.poolMean = poolSum_ / poolCellArea(b, npos, nk_, poolRow0_, poolSum_.size(1), poolSum_.size(2));
    s_.poolBlock = b, s_.poolRow0 = poolRow0_;
  }
  s_.queryEnd = queryStart_ + nq_;
  return std::move(s_);
}

void LayerStats::append(const LayerStats& later) {
  if (!sinkFirst.defined()) {
    *this = later;
    return;
  }
  wait();
  later.wait();
  inFlight = nullptr;
  auto catRows = [](at::Tensor& a, const at::Tensor& b) { a = at::cat({a, b}, a.dim() - 1); };
  catRows(sinkFirst, later.sinkFirst);
  catRows(sinkSet, later.sinkSet);
  catRows(entropy, later.entropy);
  catRows(streamMass, later.streamMass);
  catRows(waad, later.waad);
  catRows(meanDistance, later.meanDistance);
  catRows(top1Pos, later.top1Pos);
  catRows(top1Prob, later.top1Prob);
  catRows(targetMass, later.targetMass);
  const int64_t nkBefore = colSum.size(1), nk = std::max(nkBefore, later.colSum.size(1));
  colSum = padColumns(colSum, nk) + padColumns(later.colSum, nk);
  colSumBand = padColumns(colSumBand, nk) + padColumns(later.colSumBand, nk);
  const bool samePooling = poolMax.defined() && later.poolMax.defined() && poolBlock == later.poolBlock &&
                           poolBlock > 0 && poolMax.size(0) == later.poolMax.size(0) && queryEnd > 0 &&
                           later.queryEnd > 0;
  if (samePooling) {
    // Each map's means back to sums over its own [positions, keys] extent, added on the combined one.
    const int64_t row0 = std::min(poolRow0, later.poolRow0);
    const int64_t rows = std::max(poolRow0 + poolMax.size(1), later.poolRow0 + later.poolMax.size(1)) - row0;
    const int64_t cols = std::max(poolMax.size(2), later.poolMax.size(2));
    const int64_t positions = std::max(queryEnd, later.queryEnd);
    auto sums = [&](const LayerStats& s, int64_t keys) {
      return padCells(s.poolMean * poolCellArea(s.poolBlock, s.queryEnd, keys, s.poolRow0, s.poolMean.size(1),
                                                s.poolMean.size(2)),
                      s.poolRow0 - row0, rows, cols);
    };
    poolMean = (sums(*this, nkBefore) + sums(later, later.colSum.size(1))) /
               poolCellArea(poolBlock, positions, nk, row0, rows, cols);
    poolMax = at::maximum(padCells(poolMax, poolRow0 - row0, rows, cols),
                          padCells(later.poolMax, later.poolRow0 - row0, rows, cols));
    poolRow0 = row0;
  } else {
    poolMax = later.poolMax;
    poolMean = later.poolMean;
    poolBlock = later.poolBlock;
    poolRow0 = later.poolRow0;
  }
  queryEnd = std::max(queryEnd, later.queryEnd);
  tiles = later.tiles;
}

}  // namespace hs::kernels
