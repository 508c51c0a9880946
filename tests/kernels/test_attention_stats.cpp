// Tests of the statistics reduction (kernels/attention/attention_stats.cpp) as filled by the CPU
// attention: every LayerStats field against float64 loops over the reference probabilities
// (stats_reference.h) for awkward shapes and row blocks, closed forms under uniform attention,
// LayerStats::append over prefill + decode, and invalid requests.
#include <ATen/ATen.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_stats.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/kernels/attention_case.h"
#include "tests/kernels/attention_reference.h"
#include "tests/kernels/stats_reference.h"

using hs::kernels::AttentionCall;
using hs::kernels::LayerStats;
using hs::kernels::StatsRequest;
using hs::kernels::TargetSet;
using hs::test::Shape;

namespace {

// A random target set for queries at queryStart..+nq-1: up to 3 keys per row, some past the query
// or past the keys (they hold no mass), some repeated (a set counts a key once).
TargetSet randomTargets(const std::string& name, int64_t nq, int64_t nk, int64_t queryStart, uint64_t seed) {
  at::manual_seed(seed);
  TargetSet t{name, {0}, {}};
  for (int64_t r = 0; r < nq; ++r) {
    const int64_t n = at::randint(0, 4, {1}).item<int64_t>();
    for (int64_t e = 0; e < n; ++e) t.keys.push_back(at::randint(0, queryStart + r + 2, {1}).item<int64_t>());
    if (n == 3) t.keys.back() = t.keys.front();
    t.rowStart.push_back(static_cast<int64_t>(t.keys.size()));
  }
  (void)nk;
  return t;
}

// Asks for everything, with parameters small enough that every window and band is crossed.
StatsRequest fullRequest(const Shape& s, int64_t poolBlock, uint64_t seed) {
  StatsRequest r;
  r.sinkSet = {0, 2, s.nk + 5};
  r.streamSink = 2;
  r.streamWindow = 5;
  r.distanceCap = 3;
  r.bandLo = 2;
  r.bandHi = 6;
  r.poolBlock = poolBlock;
  if (poolBlock == 5) r.poolHeads = {static_cast<int>(s.heads - 1), 0};
  r.targets = {randomTargets("dup", s.nq, s.nk, s.queryStart, seed),
               randomTargets("ind", s.nq, s.nk, s.queryStart, seed + 1)};
  // The whole map of the last head, and a tile that sticks out of the call on every side.
  r.tiles = {{static_cast<int>(s.heads - 1), s.queryStart, s.queryStart + s.nq, 0, s.nk},
             {0, std::max<int64_t>(0, s.queryStart - 1), s.queryStart + s.nq + 2, 1, s.nk + 3}};
  return r;
}

// Compares every field of got with the float64 reference computed from probs.
void checkStats(const LayerStats& got, const hs::test::RefStats& want, const std::vector<double>& probs,
                const Shape& s, const StatsRequest& req) {
  const std::vector<int64_t> rowShape{s.heads, s.nq}, colShape{s.heads, s.nk};
  for (const auto* t : {&got.sinkFirst, &got.sinkSet, &got.entropy, &got.streamMass, &got.waad,
                        &got.meanDistance, &got.top1Prob, &got.top1Pos})
    REQUIRE(t->sizes().vec() == rowShape);
  REQUIRE(got.colSum.sizes().vec() == colShape);
  REQUIRE(got.colSumBand.sizes().vec() == colShape);
  REQUIRE(got.targetMass.sizes().vec() ==
          std::vector<int64_t>{static_cast<int64_t>(req.targets.size()), s.heads, s.nq});
  CHECK(got.top1Pos.scalar_type() == at::kLong);
  CHECK(got.entropy.scalar_type() == at::kFloat);
  HS_CHECK_CLOSE(got.sinkFirst, want.sinkFirst, "sinkFirst");
  HS_CHECK_CLOSE(got.sinkSet, want.sinkSet, "sinkSet");
  HS_CHECK_CLOSE(got.entropy, want.entropy, "entropy");
  HS_CHECK_CLOSE(got.streamMass, want.streamMass, "streamMass");
  HS_CHECK_CLOSE(got.waad, want.waad, "waad");
  HS_CHECK_CLOSE(got.meanDistance, want.meanDistance, "meanDistance");
  HS_CHECK_CLOSE(got.top1Prob, want.top1Prob, "top1Prob");
  HS_CHECK_CLOSE(got.colSum, want.colSum, "colSum");
  HS_CHECK_CLOSE(got.colSumBand, want.colSumBand, "colSumBand");
  HS_CHECK_CLOSE(got.targetMass, want.targetMass, "targetMass");
  // top1Pos: a key holding the row's maximum (float32 may pick another key within rounding).
  const auto pos = hs::test::toDoubles(got.top1Pos);
  for (int64_t n = 0; n < s.heads * s.nq; ++n) {
    const auto j = static_cast<int64_t>(pos[n]);
    REQUIRE((j >= 0 && j < s.nk));
    INFO("top1Pos of row " << n << " = " << j);
    CHECK(probs[n * s.nk + j] >= want.top1Prob[n] - hs::test::kTol);
  }
  if (req.poolBlock > 0) {
    // The block rows of this call's queries, from queryStart / B (the reference maps every row).
    const int64_t P = req.poolHeads.empty() ? s.heads : static_cast<int64_t>(req.poolHeads.size());
    const int64_t row0 = s.queryStart / req.poolBlock, rows = want.poolRows - row0;
    REQUIRE(got.poolRow0 == row0);
    REQUIRE(got.poolMax.sizes().vec() == std::vector<int64_t>{P, rows, want.poolCols});
    REQUIRE(got.poolMean.sizes() == got.poolMax.sizes());
    auto callRows = [&](const std::vector<double>& map) {
      std::vector<double> out;
      for (int64_t p = 0; p < P; ++p)
        out.insert(out.end(), map.begin() + (p * want.poolRows + row0) * want.poolCols,
                   map.begin() + (p + 1) * want.poolRows * want.poolCols);
      return out;
    };
    HS_CHECK_CLOSE(got.poolMax, callRows(want.poolMax), "poolMax");
    HS_CHECK_CLOSE(got.poolMean, callRows(want.poolMean), "poolMean");
    // The rows before row0 hold nothing of this call in the reference either.
    for (int64_t p = 0; p < P; ++p)
      for (int64_t i = 0; i < row0 * want.poolCols; ++i)
        CHECK(want.poolMax[p * want.poolRows * want.poolCols + i] == 0.0);
  }
  REQUIRE(got.tiles.size() == want.tiles.size());
  for (size_t t = 0; t < got.tiles.size(); ++t) {
    INFO("tile " << t);
    const auto& r = req.tiles[t];
    REQUIRE(got.tiles[t].sizes().vec() == std::vector<int64_t>{r.q1 - r.q0, r.k1 - r.k0});
    HS_CHECK_CLOSE(got.tiles[t], want.tiles[t], "tile");
  }
}

}  // namespace

TEST_CASE("stats: every statistic matches its float64 definition", "[kernels][stats]") {
  const auto shapeIndex = GENERATE(range(size_t{0}, hs::test::kShapes.size()));
  const Shape s = hs::test::kShapes[shapeIndex];
  for (bool withEdits : {false, true})
    for (int64_t rows : {int64_t{0}, int64_t{1}, int64_t{3}}) {
      const int64_t poolBlock = rows == 3 ? 5 : 4;  // 3-row blocks straddle both pool sizes
      INFO(hs::test::describe(s) << " edits=" << withEdits << " rowsPerBlock=" << (rows ? rows : s.nq)
                                 << " poolBlock=" << poolBlock);
      auto c = hs::test::randomCall(s, 3000 + shapeIndex);
      const auto edits = hs::test::editBundle(s, 4000 + shapeIndex);
      if (withEdits) c.edits = &edits;
      if (rows > 0) c.maxBlockBytes = hs::test::blockBytesForRows(s, rows);
      const auto req = fullRequest(s, poolBlock, 5000 + shapeIndex);
      c.stats = &req;
      LayerStats got;
      hs::kernels::attentionCpu(c, &got);
      const auto probs = hs::test::referenceAttention(hs::test::RefCall(c), c.edits).probs;
      const auto want = hs::test::referenceStats(probs, s.heads, s.nq, s.nk, s.queryStart, req);
      checkStats(got, want, probs, s, req);
    }
}

TEST_CASE("stats: closed forms under uniform attention", "[kernels][stats]") {
  // q = 0: query i spreads 1/(i+1) over keys 0..i, so every statistic is a short sum.
  const int64_t N = 12, B = 4;
  AttentionCall c;
  c.q = at::zeros({2, N, 4});
  c.k = at::randn({1, N, 4});
  c.v = at::randn({1, N, 4});
  StatsRequest req;
  req.sinkSet = {0, 1};
  req.streamSink = 2;
  req.streamWindow = 3;
  req.distanceCap = 4;
  req.bandLo = 2;
  req.bandHi = 5;
  req.poolBlock = B;
  req.poolHeads = {1};
  TargetSet prev{"previous token", {0}, {}};
  for (int64_t i = 0; i < N; ++i) {
    if (i > 0) prev.keys.push_back(i - 1);
    prev.rowStart.push_back(static_cast<int64_t>(prev.keys.size()));
  }
  req.targets = {prev};
  req.tiles = {{1, 2, 6, 0, 4}};
  c.stats = &req;
  LayerStats got;
  hs::kernels::attentionCpu(c, &got);

  std::vector<double> sinkFirst, sinkSet, entropy, stream, waad, dist, target, colSum(N), band(N);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < N; ++i) {
      const double n = i + 1.0;
      sinkFirst.push_back(1 / n);
      sinkSet.push_back(std::min(n, 2.0) / n);
      entropy.push_back(std::log(n));
      stream.push_back(std::min(n, 5.0) / n);  // keys {0, 1} and {i-2, i-1, i}
      waad.push_back(i <= 4 ? i / 2.0 : (10.0 + 4.0 * (i - 4)) / n);
      dist.push_back(i / 2.0);
      target.push_back(i == 0 ? 0.0 : 1 / n);
    }
  for (int64_t j = 0; j < N; ++j) {
    for (int64_t i = j; i < N; ++i) colSum[j] += 1.0 / (i + 1);
    for (int64_t i = j + 2; i <= std::min(j + 5, N - 1); ++i) band[j] += 1.0 / (i + 1);
  }
  for (auto* v : {&colSum, &band}) v->insert(v->end(), v->begin(), v->end());  // both heads
  HS_CHECK_CLOSE(got.sinkFirst, sinkFirst, "sinkFirst");
  HS_CHECK_CLOSE(got.sinkSet, sinkSet, "sinkSet");
  HS_CHECK_CLOSE(got.entropy, entropy, "entropy");
  HS_CHECK_CLOSE(got.streamMass, stream, "streamMass");
  HS_CHECK_CLOSE(got.waad, waad, "waad");
  HS_CHECK_CLOSE(got.meanDistance, dist, "meanDistance");
  HS_CHECK_CLOSE(got.top1Prob, sinkFirst, "top1Prob");
  HS_CHECK_CLOSE(got.targetMass, target, "targetMass");
  HS_CHECK_CLOSE(got.colSum, colSum, "colSum");
  HS_CHECK_CLOSE(got.colSumBand, band, "colSumBand");

  // 4x4 pooled blocks: the largest cell is at the block's first row, 1/(4 qb + 1), on and below the
  // diagonal; the mean divides the block's mass by its 16 cells.
  std::vector<double> poolMax, poolMean;
  for (int64_t qb = 0; qb < N / B; ++qb)
    for (int64_t kb = 0; kb < N / B; ++kb) {
      double mass = 0.0;
      for (int64_t i = qb * B; i < qb * B + B; ++i)
        mass += static_cast<double>(std::clamp<int64_t>(i - kb * B + 1, 0, B)) / (i + 1);
      poolMax.push_back(kb <= qb ? 1.0 / (qb * B + 1) : 0.0);
      poolMean.push_back(mass / (B * B));
    }
  HS_CHECK_CLOSE(got.poolMax, poolMax, "poolMax");
  HS_CHECK_CLOSE(got.poolMean, poolMean, "poolMean");
  std::vector<double> tile;
  for (int64_t i = 2; i < 6; ++i)
    for (int64_t j = 0; j < 4; ++j) tile.push_back(j <= i ? 1.0 / (i + 1) : 0.0);
  REQUIRE(got.tiles.size() == 1);
  HS_CHECK_CLOSE(got.tiles[0], tile, "tile");
}

TEST_CASE("stats: a sink listed twice counts once", "[kernels][stats]") {
  // sinkSet is a set of keys; accepting a repeated key must not double its mass.
  const Shape s{2, 1, 6, 6, 0, 8};
  auto c = hs::test::randomCall(s, 95);
  StatsRequest once, twice;
  once.sinkSet = {0, 1};
  twice.sinkSet = {0, 1, 0};
  LayerStats a, b;
  c.stats = &once;
  hs::kernels::attentionCpu(c, &a);
  c.stats = &twice;
  try {
    hs::kernels::attentionCpu(c, &b);
    CHECK(at::allclose(b.sinkSet, a.sinkSet, 0, 1e-6));
  } catch (const hs::Error& err) {
    CHECK(err.kind() == hs::ErrorKind::InvalidArgument);
  }
}

namespace {

// Rows [r0, r1) of a target set, as the target set of a call over those queries.
TargetSet targetRows(const TargetSet& t, int64_t r0, int64_t r1) {
  TargetSet out{t.name, {0}, {}};
  for (int64_t r = r0; r < r1; ++r) {
    out.keys.insert(out.keys.end(), t.keys.begin() + t.rowStart[r], t.keys.begin() + t.rowStart[r + 1]);
    out.rowStart.push_back(static_cast<int64_t>(out.keys.size()));
  }
  return out;
}

}  // namespace

TEST_CASE("stats: append over prefill, a chunk and decode steps equals one call", "[kernels][stats]") {
  for (int64_t window : {int64_t{0}, int64_t{6}}) {
    INFO("sliding window " << window);
    const Shape all{4, 2, 20, 20, 0, 8, window};
    const auto whole = hs::test::randomCall(all, 91);
    auto req = fullRequest(all, 4, 92);
    // Calls over queries [0, 12), [12, 15), then one token at a time; each sees the keys so far.
    std::vector<std::pair<int64_t, int64_t>> calls = {{0, 12}, {12, 15}};
    for (int64_t i = 15; i < all.nq; ++i) calls.emplace_back(i, i + 1);
    LayerStats appended, last;
    for (const auto& [r0, r1] : calls) {
      AttentionCall c = whole;
      c.q = whole.q.narrow(1, r0, r1 - r0);
      c.k = whole.k.narrow(1, 0, r1);
      c.v = whole.v.narrow(1, 0, r1);
      c.queryStart = r0;
      c.maxBlockBytes = 1;
      StatsRequest part = req;
      for (size_t t = 0; t < req.targets.size(); ++t) part.targets[t] = targetRows(req.targets[t], r0, r1);
      c.stats = &part;
      hs::kernels::attentionCpu(c, &last);
      appended.append(last);
    }
    AttentionCall c = whole;
    c.stats = &req;
    LayerStats once;
    hs::kernels::attentionCpu(c, &once);
    const auto probs = hs::test::referenceAttention(hs::test::RefCall(c), nullptr).probs;
    const auto want = hs::test::referenceStats(probs, all.heads, all.nq, all.nk, 0, req);
    for (const auto& [name, a, b, w] :
         std::vector<std::tuple<std::string, at::Tensor, at::Tensor, std::vector<double>>>{
             {"sinkFirst", appended.sinkFirst, once.sinkFirst, want.sinkFirst},
             {"sinkSet", appended.sinkSet, once.sinkSet, want.sinkSet},
             {"entropy", appended.entropy, once.entropy, want.entropy},
             {"streamMass", appended.streamMass, once.streamMass, want.streamMass},
             {"waad", appended.waad, once.waad, want.waad},
             {"meanDistance", appended.meanDistance, once.meanDistance, want.meanDistance},
             {"top1Prob", appended.top1Prob, once.top1Prob, want.top1Prob},
             {"colSum", appended.colSum, once.colSum, want.colSum},
             {"colSumBand", appended.colSumBand, once.colSumBand, want.colSumBand},
             {"targetMass", appended.targetMass, once.targetMass, want.targetMass}}) {
      INFO(name);
      REQUIRE(a.sizes() == b.sizes());
      CHECK(at::allclose(a, b, 1e-5, 1e-6));
      HS_CHECK_CLOSE(a, w, name);
    }
    CHECK(at::equal(appended.top1Pos, once.top1Pos));
    // Pooled maps merge over the calls (blocks of 4; the calls end at positions 12, 15, 16, ..., so the
    // edge cells of the partial maps are partial);
    // tiles are the latest call's.
    REQUIRE(appended.poolBlock == 4);
    REQUIRE(appended.queryEnd == all.nq);
    REQUIRE(appended.poolMax.sizes() == once.poolMax.sizes());
    CHECK(at::allclose(appended.poolMax, once.poolMax, 1e-6, 1e-7));
    CHECK(at::allclose(appended.poolMean, once.poolMean, 1e-5, 1e-7));
    HS_CHECK_CLOSE(appended.poolMax, want.poolMax, "poolMax");
    HS_CHECK_CLOSE(appended.poolMean, want.poolMean, "poolMean");
    REQUIRE(appended.tiles.size() == last.tiles.size());
    for (size_t i = 0; i < last.tiles.size(); ++i) CHECK(at::equal(appended.tiles[i], last.tiles[i]));
    // The last decode step alone maps only its own block row: position 19 with blocks of 4.
    CHECK(last.poolRow0 == 4);
    CHECK(last.poolMax.size(1) == 1);
    CHECK(appended.poolRow0 == 0);
  }
}

TEST_CASE("stats: invalid requests throw naming the request field", "[kernels][stats]") {
  struct Row {
    const char* what;
    std::function<void(StatsRequest&)> breakIt;
    const char* fragment;
  };
  const std::vector<Row> rows = {
      {"tile head H",
       [](StatsRequest& r) {
         r.tiles = {{4, 5, 8, 0, 8}};
       },
       "tile"},
      {"tile head -1",
       [](StatsRequest& r) {
         r.tiles = {{-1, 5, 8, 0, 8}};
       },
       "tile"},
      {"tile empty rows",
       [](StatsRequest& r) {
         r.tiles = {{0, 6, 6, 0, 8}};
       },
       "tile"},
      {"tile reversed keys",
       [](StatsRequest& r) {
         r.tiles = {{0, 5, 8, 4, 2}};
       },
       "tile"},
      {"tile negative query",
       [](StatsRequest& r) {
         r.tiles = {{0, -2, 8, 0, 8}};
       },
       "tile"},
      {"tile negative key",
       [](StatsRequest& r) {
         r.tiles = {{0, 5, 8, -1, 8}};
       },
       "tile"},
      {"tile size overflows int64",
       [](StatsRequest& r) {
         r.tiles = {{0, 0, int64_t{1} << 33, 0, int64_t{1} << 31}};
       },
       "tile"},
      {"pool head",
       [](StatsRequest& r) {
         r.poolBlock = 2, r.poolHeads = {0, 4};
       },
       "pool head"},
      {"target rows",
       [](StatsRequest& r) {
         r.targets = {{"dup", {0, 1}, {0}}};
       },
       "target set 'dup'"},
      {"target end",
       [](StatsRequest& r) {
         r.targets = {{"ind", {0, 0, 1, 1}, {0, 1}}};
       },
       "target set 'ind'"},
      {"target rows out of order",
       [](StatsRequest& r) {
         r.targets = {{"ind", {0, 4, 2, 5}, {0, 1, 2, 3, 4}}};
       },
       "target set 'ind'"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    auto c = hs::test::randomCall({4, 2, 3, 8, 5, 8}, 101);
    StatsRequest req;
    row.breakIt(req);
    c.stats = &req;
    LayerStats out;
    try {
      hs::kernels::attentionCpu(c, &out);
      FAIL_CHECK("no error thrown");
    } catch (const hs::Error& err) {
      INFO("message: " << err.what());
      const bool sizeRow = std::string(row.what).find("overflow") != std::string::npos;
      CHECK(err.kind() == (sizeRow ? hs::ErrorKind::OutOfMemory : hs::ErrorKind::InvalidArgument));
      CHECK(std::string(err.what()).find(row.fragment) != std::string::npos);
    } catch (const std::exception& other) {
      const std::string what = other.what();  // first line: LibTorch appends a stack trace
      FAIL_CHECK("threw something other than hs::Error: " << what.substr(0, what.find('\n')));
    }
  }
}
