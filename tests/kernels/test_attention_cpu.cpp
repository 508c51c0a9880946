// Tests of the CPU attention reference (kernels/attention/attention_cpu.cpp): outputs and final
// probabilities against a float64 loop reference (attention_reference.h) over awkward shapes and
// block sizes, hand-derived answers, autograd through DuoAttention's alpha, and invalid calls.
#include <ATen/ATen.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/kernels/attention_case.h"
#include "tests/kernels/attention_reference.h"

using hs::kernels::AttentionCall;
using hs::kernels::HeadMask;
using hs::kernels::LayerEdits;
using hs::test::Shape;

namespace {

// Runs the kernel, collecting the observer's probability blocks into one [H, Nq, Nk] tensor.
at::Tensor runObserved(AttentionCall c, at::Tensor* probs) {
  std::vector<at::Tensor> blocks;
  int64_t next = c.queryStart;
  c.observer = [&](int64_t first, const at::Tensor& p) {
    CHECK(first == next);  // blocks arrive in order and cover every query once
    next = first + p.size(1);
    blocks.push_back(p.detach().clone());
  };
  auto out = hs::kernels::attentionCpu(c, nullptr);
  CHECK(next == c.queryStart + c.q.size(1));
  *probs = blocks.empty() ? at::zeros({c.q.size(0), 0, c.k.size(1)}) : at::cat(blocks, 1);
  return out;
}

}  // namespace

TEST_CASE("attention: output and probabilities match the float64 reference", "[kernels][attention]") {
  const auto shapeIndex = GENERATE(range(size_t{0}, hs::test::kShapes.size()));
  const Shape s = hs::test::kShapes[shapeIndex];
  for (bool withEdits : {false, true})
    for (int64_t rows : {int64_t{0}, int64_t{1}, int64_t{3}}) {
      INFO(hs::test::describe(s) << " edits=" << withEdits << " rowsPerBlock=" << (rows ? rows : s.nq));
      auto c = hs::test::randomCall(s, 1000 + shapeIndex);
      const auto edits = hs::test::editBundle(s, 2000 + shapeIndex);
      if (withEdits) c.edits = &edits;
      if (rows > 0) c.maxBlockBytes = hs::test::blockBytesForRows(s, rows);
      const auto want = hs::test::referenceAttention(hs::test::RefCall(c), c.edits);
      at::Tensor probs;
      const auto out = runObserved(c, &probs);
      REQUIRE(out.sizes().vec() == std::vector<int64_t>{s.heads, s.nq, s.dim});
      CHECK(out.scalar_type() == at::kFloat);
      HS_CHECK_CLOSE(out, want.out, "output");
      HS_CHECK_CLOSE(probs, want.probs, "probabilities");
    }
}

TEST_CASE("attention: tiny maxBlockBytes gives one row per block and the same answer",
          "[kernels][attention]") {
  const Shape s{4, 2, 17, 17, 0, 8, 5};
  for (int64_t bytes : {int64_t{0}, int64_t{1}, int64_t{-5}, hs::test::blockBytesForRows(s, 2) + 1}) {
    INFO("maxBlockBytes=" << bytes);
    auto c = hs::test::randomCall(s, 7);
    const auto edits = hs::test::editBundle(s, 8);
    c.edits = &edits;
    c.maxBlockBytes = bytes;
    int64_t calls = 0;
    c.observer = [&](int64_t, const at::Tensor&) { ++calls; };
    const auto want = hs::test::referenceAttention(hs::test::RefCall(c), c.edits);
    HS_CHECK_CLOSE(hs::kernels::attentionCpu(c, nullptr), want.out, "output");
    // The documented bound alone (H * rows * Nk floats per block) forces this many blocks.
    const int64_t maxRows = std::max<int64_t>(1, bytes / (s.heads * s.nk * 4));
    CHECK(calls >= hs::test::ceilDiv(s.nq, maxRows));
  }
}

TEST_CASE("attention: non-contiguous and float64 inputs", "[kernels][attention]") {
  at::manual_seed(11);
  AttentionCall c;
  c.q = at::randn({9, 8, 16}).permute({1, 0, 2});                // [H=8, Nq=9, D=16], strided
  c.k = at::randn({16, 12, 2}, at::kDouble).permute({2, 1, 0});  // [KVH=2, Nk=12, D=16]
  c.v = at::randn({2, 16, 12}).transpose(1, 2);
  c.queryStart = 3;
  c.scale = 0.3;
  const auto want = hs::test::referenceAttention(hs::test::RefCall(c), nullptr);
  const auto out = hs::kernels::attentionCpu(c, nullptr);
  CHECK(out.scalar_type() == at::kFloat);
  HS_CHECK_CLOSE(out, want.out, "output");
}

TEST_CASE("attention: hand-derived answers with uniform attention", "[kernels][attention]") {
  // q = 0 makes every visible key equally likely; v[j] = (j, 1) so the output's first element is
  // the mean visible key position and the second the total probability.
  const int64_t N = 8;
  AttentionCall c;
  c.q = at::zeros({1, N, 2});
  c.k = at::randn({1, N, 2});
  c.v = at::stack({at::arange(N, at::kFloat), at::ones({N})}, 1).unsqueeze(0);
  auto expectRows = [&](const std::function<std::pair<double, double>(int64_t)>& row,
                        const std::string& what) {
    const auto out = hs::kernels::attentionCpu(c, nullptr);
    for (int64_t i = 0; i < N; ++i) {
      INFO(what << ", query " << i);
      HS_CHECK_CLOSE(out[0][i], (std::vector<double>{row(i).first, row(i).second}), "output");
    }
  };
  expectRows([](int64_t i) { return std::pair{i / 2.0, 1.0}; }, "causal");
  c.slidingWindow = 2;
  expectRows([](int64_t i) { return std::pair{i == 0 ? 0.0 : i - 0.5, 1.0}; }, "sliding window 2");
  c.slidingWindow = 0;

  LayerEdits e;
  c.edits = &e;
  e.masks = {{0, HeadMask::sinkWindow(1, 2)}};  // keys {0, i-1, i}
  expectRows(
      [](int64_t i) {
        return std::pair{i < 3 ? i / 2.0 : (2.0 * i - 1) / 3.0, 1.0};
      },
      "sink 1 + window 2");
  e.masks = {{0, HeadMask::keySet({4})}};
  expectRows([](int64_t i) { return i < 4 ? std::pair{0.0, 0.0} : std::pair{4.0, 1.0}; }, "key set {4}");
  const auto diag = at::eye(hs::test::ceilDiv(N, 3), at::kBool);  // only the query's own 3-block
  e.masks = {{0, HeadMask::blockSparse(3, diag)}};
  expectRows([](int64_t i) { return std::pair{(3 * (i / 3) + i) / 2.0, 1.0}; }, "block-diagonal 3");
  e.masks.clear();
  const double gamma = 3.0;  // ZeroTuning: A'[i,0] = gamma A[i,0] / Z
  e.biases = {{0, {0}, std::log(gamma)}};
  expectRows(
      [&](int64_t i) {
        return std::pair{i * (i + 1) / 2.0 / (gamma + i), 1.0};
      },
      "logit bias ln 3 on key 0");
  e.biases.clear();
  e.attenuations = {{0, {0}, 0.4}};  // key 0 keeps 0.4/(i+1); the others share 0.6/(i+1)
  expectRows(
      [](int64_t i) {
        return std::pair{i / 2.0 * (1.0 + 0.6 / (i == 0 ? 1 : i)), 1.0};
      },
      "ACT on key 0");
  e.attenuations.clear();
  e.headScale = at::full({1}, 2.0);
  e.headAdd = at::tensor({10.0f, -1.0f}).view({1, 2});
  expectRows([](int64_t i) { return std::pair{i + 10.0, 1.0}; }, "head scale 2, add (10, -1)");

  // ACT probabilities of row 3, straight from the paper's rule.
  e = LayerEdits{};
  e.attenuations = {{0, {0}, 0.4}};
  at::Tensor probs;
  runObserved(c, &probs);
  const std::vector<double> row3 = {0.1, 0.3, 0.3, 0.3, 0, 0, 0, 0};
  HS_CHECK_CLOSE(probs[0][3], row3, "ACT row 3");
}

TEST_CASE("attention: ACT stays exact when the listed key holds almost all the mass",
          "[kernels][attention]") {
  // Sink-dominated heads are where ACT is used. q = 0 and a logit bias ln(1e5) on key 0 give row i
  // p0 = 1e5 / (1e5 + i) and 1 / (1e5 + i) elsewhere; beta = 0.5 then moves half of p0 to the
  // others in proportion, so each gets (1 + 0.5e5 / i) / (1e5 + i).
  const int64_t N = 8;
  AttentionCall c;
  c.q = at::zeros({1, N, 4});
  c.k = at::randn({1, N, 4});
  c.v = at::randn({1, N, 4});
  LayerEdits e;
  e.biases = {{0, {0}, std::log(1e5)}};
  e.attenuations = {{0, {0}, 0.5}};
  c.edits = &e;
  std::vector<double> want(N * N, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j <= i; ++j)
      want[i * N + j] = i == 0 ? 1.0 : j == 0 ? 0.5e5 / (1e5 + i) : (1.0 + 0.5e5 / i) / (1e5 + i);
  at::Tensor probs;
  runObserved(c, &probs);
  HS_CHECK_CLOSE(probs, want, "probabilities");
}

TEST_CASE("attention: a mask that hides every key gives zero rows, not NaN", "[kernels][attention]") {
  const Shape s{4, 2, 6, 10, 4, 8};
  for (const auto& keys :
       {std::vector<int64_t>{}, std::vector<int64_t>{-1, 10, 99}, std::vector<int64_t>{7}}) {
    INFO("key set of " << keys.size() << " keys");
    auto c = hs::test::randomCall(s, 21);
    LayerEdits e;
    e.masks = {{1, HeadMask::keySet(keys)}};
    e.attenuations = {{1, {0}, 0.5}};
    c.edits = &e;
    at::Tensor probs;
    const auto out = runObserved(c, &probs);
    CHECK(at::isfinite(out).all().item<bool>());
    CHECK(at::isfinite(probs).all().item<bool>());
    const auto want = hs::test::referenceAttention(hs::test::RefCall(c), c.edits);
    HS_CHECK_CLOSE(out, want.out, "output");
    HS_CHECK_CLOSE(probs, want.probs, "probabilities");
    if (keys.size() != 1) CHECK(out[1].abs().max().item<double>() == 0.0);
  }
}

TEST_CASE("attention: StreamingMix on a head whose mask hides every key stays finite",
          "[kernels][attention]") {
  // Rows 0..6 of head 1 see no key; the mix must not turn their zero output into NaN.
  const Shape s{2, 1, 10, 10, 0, 8};
  auto c = hs::test::randomCall(s, 31);
  LayerEdits e;
  e.masks = {{1, HeadMask::keySet({7})}};
  e.mixes = {{1, at::scalar_tensor(0.25), 1, 2}};
  c.edits = &e;
  const auto out = hs::kernels::attentionCpu(c, nullptr);
  CHECK(at::isfinite(out).all().item<bool>());
  const auto want = hs::test::referenceAttention(hs::test::RefCall(c), c.edits);
  HS_CHECK_CLOSE(out, want.out, "output");
}

TEST_CASE("attention: StreamingMix output and d out / d alpha = full - streaming", "[kernels][attention]") {
  // Prefill and decode, one row per block and all rows at once; two mixed heads sharing a KV head.
  for (const Shape& s : {Shape{4, 2, 9, 9, 0, 8}, Shape{4, 2, 2, 12, 10, 8, 7}})
    for (int64_t rows : {int64_t{0}, int64_t{1}}) {
      INFO(hs::test::describe(s) << " rowsPerBlock=" << (rows ? rows : s.nq));
      auto c = hs::test::randomCall(s, 41);
      if (rows > 0) c.maxBlockBytes = hs::test::blockBytesForRows(s, rows);
      LayerEdits e;
      const auto alpha0 = at::scalar_tensor(0.3).requires_grad_(),
                 alpha1 = at::scalar_tensor(0.8).requires_grad_();
      e.mixes = {{0, alpha0, 1, 3}, {1, alpha1, 2, 2}};
      c.edits = &e;
      const auto want = hs::test::referenceAttention(hs::test::RefCall(c), c.edits);
      const auto out = hs::kernels::attentionCpu(c, nullptr);
      HS_CHECK_CLOSE(out.detach(), want.out, "output");
      const auto weight = at::randn(out.sizes());
      (out * weight).sum().backward();
      const auto w = hs::test::toDoubles(weight);
      for (size_t m = 0; m < e.mixes.size(); ++m) {
        const int64_t h = e.mixes[m].head, n = s.nq * s.dim;
        double grad = 0.0, size = 0.0;
        for (int64_t x = 0; x < n; ++x) {
          grad += w[h * n + x] * (want.mixFull[m][x] - want.mixStreaming[m][x]);
          size += std::abs(w[h * n + x] * want.mixFull[m][x]);
        }
        INFO("mix " << m << " on head " << h);
        REQUIRE(e.mixes[m].alpha.grad().defined());
        const double got = e.mixes[m].alpha.grad().item<double>();
        INFO("d out / d alpha: got " << got << ", want " << grad);
        CHECK(std::abs(got - grad) <= 1e-5 * std::max(1.0, size));
        CHECK(std::abs(grad) > 1e-3);  // the check has something to see
      }
    }
}

TEST_CASE("attention: alpha 1 is full attention, alpha 0 the sink + window mask", "[kernels][attention]") {
  const Shape s{2, 1, 12, 12, 0, 8};
  const auto c0 = hs::test::randomCall(s, 51);
  auto run = [&](const LayerEdits& e) {
    auto c = c0;
    c.edits = &e;
    return hs::kernels::attentionCpu(c, nullptr);
  };
  LayerEdits full, mixed1, mixed0, masked;
  mixed1.mixes = {{1, at::scalar_tensor(1.0), 2, 3}};
  mixed0.mixes = {{1, at::scalar_tensor(0.0), 2, 3}};
  masked.masks = {{1, HeadMask::sinkWindow(2, 3)}};
  CHECK(at::allclose(run(mixed1), run(full), 0, 1e-6));
  CHECK(at::allclose(run(mixed0), run(masked), 0, 1e-6));
  CHECK_FALSE(at::allclose(run(mixed0), run(full), 0, 1e-3));
}

TEST_CASE("attention: no queries gives an empty output", "[kernels][attention]") {
  auto c = hs::test::randomCall({4, 2, 0, 6, 6, 8}, 61);
  const auto out = hs::kernels::attentionCpu(c, nullptr);
  CHECK(out.sizes().vec() == std::vector<int64_t>{4, 0, 8});
}

TEST_CASE("attention: attention() runs the CPU reference for CPU tensors", "[kernels][attention]") {
  const auto c = hs::test::randomCall({4, 2, 5, 9, 4, 8}, 65);
  CHECK(at::equal(hs::kernels::attention(c, nullptr), hs::kernels::attentionCpu(c, nullptr)));
}

TEST_CASE("attention: a key listed twice in ACT counts once", "[kernels][attention]") {
  // The listed keys are a set: repeating one must not move its mass twice (rows must still sum to
  // 1). Rejecting the list as InvalidArgument would also be acceptable.
  const auto c0 = hs::test::randomCall({2, 1, 6, 6, 0, 8}, 67);
  LayerEdits once, twice;
  once.attenuations = {{0, {0, 3}, 0.4}};
  twice.attenuations = {{0, {0, 0, 3, 3}, 0.4}};
  at::Tensor probsOnce, probsTwice;
  auto c = c0;
  c.edits = &once;
  const auto outOnce = runObserved(c, &probsOnce);
  c.edits = &twice;
  try {
    const auto outTwice = runObserved(c, &probsTwice);
    CHECK(at::allclose(probsTwice.sum(-1), at::ones({2, 6}), 0, 1e-5));
    CHECK(at::allclose(outTwice, outOnce, 0, 1e-5));
  } catch (const hs::Error& err) {
    CHECK(err.kind() == hs::ErrorKind::InvalidArgument);
  }
}

TEST_CASE("attention: invalid calls throw InvalidArgument naming the culprit", "[kernels][attention]") {
  struct Row {
    const char* what;
    std::function<void(AttentionCall&, LayerEdits&)> breakIt;
    const char* fragment;
  };
  const std::vector<Row> rows = {
      {"q missing", [](AttentionCall& c, LayerEdits&) { c.q = at::Tensor(); }, "q, k and v"},
      {"q 2-D", [](AttentionCall& c, LayerEdits&) { c.q = c.q[0]; }, "[heads, tokens, head_dim]"},
      {"v shape", [](AttentionCall& c, LayerEdits&) { c.v = c.v.narrow(1, 0, 5); }, "k and v"},
      {"head_dim",
       [](AttentionCall& c, LayerEdits&) {
         c.q = at::randn({4, 3, 6});
       },
       "head_dim"},
      {"GQA ratio",
       [](AttentionCall& c, LayerEdits&) {
         c.k = c.v = at::randn({3, 8, 8});
       },
       "multiple of KV heads"},
      {"no KV heads",
       [](AttentionCall& c, LayerEdits&) {
         c.k = c.v = at::randn({0, 8, 8});
       },
       "KV heads"},
      {"queries past keys", [](AttentionCall& c, LayerEdits&) { c.queryStart = 6; }, "need that many keys"},
      {"negative start", [](AttentionCall& c, LayerEdits&) { c.queryStart = -1; }, "queries at positions"},
      {"mask head H",
       [](AttentionCall&, LayerEdits& e) {
         e.masks = {{4, HeadMask::sinkWindow(1, 1)}};
       },
       "mask head 4"},
      {"mask head -1",
       [](AttentionCall&, LayerEdits& e) {
         e.masks = {{-1, HeadMask::keySet({0})}};
       },
       "mask head -1"},
      {"negative window",
       [](AttentionCall&, LayerEdits& e) {
         e.masks = {{0, HeadMask::sinkWindow(1, -2)}};
       },
       "sink/window"},
      {"block size 0",
       [](AttentionCall&, LayerEdits& e) {
         e.masks = {{0, HeadMask::blockSparse(0, at::ones({8, 8}, at::kBool))}};
       },
       "block mask"},
      {"block mask missing",
       [](AttentionCall&, LayerEdits& e) {
         e.masks = {{0, HeadMask::blockSparse(2, {})}};
       },
       "block mask"},
      {"block mask too small",
       [](AttentionCall&, LayerEdits& e) {
         e.masks = {{0, HeadMask::blockSparse(2, at::ones({2, 2}, at::kBool))}};
       },
       "block mask"},
      {"bias head",
       [](AttentionCall&, LayerEdits& e) {
         e.biases = {{7, {0}, 1.0}};
       },
       "logit bias head"},
      {"attenuation head",
       [](AttentionCall&, LayerEdits& e) {
         e.attenuations = {{-3, {0}, 0.4}};
       },
       "attenuation head"},
      {"attenuation beta",
       [](AttentionCall&, LayerEdits& e) {
         e.attenuations = {{0, {0}, -0.1}};
       },
       "beta"},
      {"mix head",
       [](AttentionCall&, LayerEdits& e) {
         e.mixes = {{4, at::scalar_tensor(0.5), 1, 1}};
       },
       "mix head"},
      {"mix alpha",
       [](AttentionCall&, LayerEdits& e) {
         e.mixes = {{0, at::Tensor(), 1, 1}};
       },
       "alpha"},
      {"mix alpha not 0-dim",  // [D] would broadcast silently over head_dim
       [](AttentionCall&, LayerEdits& e) {
         e.mixes = {{0, at::full({8}, 0.5), 1, 1}};
       },
       "alpha"},
      {"head scale", [](AttentionCall&, LayerEdits& e) { e.headScale = at::ones({3}); }, "headScale"},
      {"head add",
       [](AttentionCall&, LayerEdits& e) {
         e.headAdd = at::ones({4, 7});
       },
       "headAdd"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    auto c = hs::test::randomCall({4, 2, 3, 8, 5, 8}, 71);
    LayerEdits e;
    c.edits = &e;
    row.breakIt(c, e);
    try {
      hs::kernels::attentionCpu(c, nullptr);
      FAIL_CHECK("no error thrown");
    } catch (const hs::Error& err) {
      CHECK(err.kind() == hs::ErrorKind::InvalidArgument);
      INFO("message: " << err.what());
      CHECK(std::string(err.what()).find(row.fragment) != std::string::npos);
    } catch (const std::exception& other) {
      const std::string what = other.what();  // first line: LibTorch appends a stack trace
      FAIL_CHECK("threw something other than hs::Error: " << what.substr(0, what.find('\n')));
    }
  }
}

TEST_CASE("attention: stats requested without an output throws", "[kernels][attention]") {
  auto c = hs::test::randomCall({2, 2, 3, 3, 0, 8}, 81);
  const hs::kernels::StatsRequest req;
  c.stats = &req;
  CHECK_THROWS_AS(hs::kernels::attentionCpu(c, nullptr), hs::Error);
}

namespace {

// A random hybrid decode call: 4 KV heads (1 and 3 streaming), 3 query heads each, head_dim 8,
// 37 full entries and 9 streaming ones.
hs::kernels::HybridDecodeCall randomHybrid(uint64_t seed) {
  at::manual_seed(seed);
  hs::kernels::HybridDecodeCall c;
  c.q = at::randn({12, 1, 8}, at::kDouble);
  c.fullK = at::randn({2, 37, 8}, at::kDouble), c.fullV = at::randn({2, 37, 8}, at::kDouble);
  c.streamK = at::randn({2, 9, 8}, at::kDouble), c.streamV = at::randn({2, 9, 8}, at::kDouble);
  c.streamKvHead = {false, true, false, true};
  c.scale = 0.3;
  return c;
}

}  // namespace

TEST_CASE("hybrid decode: each query head attends over its own kind of store", "[kernels][attention]") {
  const auto c = randomHybrid(91);
  const at::Tensor out = hs::kernels::hybridDecodeAttention(c);
  REQUIRE(out.sizes() == c.q.sizes());
  REQUIRE(out.scalar_type() == at::kDouble);
  int fullSeen = 0, streamSeen = 0;
  for (int64_t kv = 0; kv < 4; ++kv) {
    const bool streaming = c.streamKvHead[static_cast<size_t>(kv)];
    const int64_t index = streaming ? streamSeen++ : fullSeen++;
    const at::Tensor k = (streaming ? c.streamK : c.fullK)[index], v = (streaming ? c.streamV : c.fullV)[index];
    for (int64_t g = 0; g < 3; ++g) {
      const int64_t h = kv * 3 + g;
      const at::Tensor want = at::softmax(at::matmul(c.q[h], k.t()) * c.scale, -1).matmul(v);  // [1, 8]
      INFO("query head " << h);
      CHECK(at::allclose(out[h], want, 1e-5, 1e-5));  // the reference computes in float32
    }
  }
}

TEST_CASE("hybrid decode: inconsistent calls name the field", "[kernels][attention]") {
  struct Row {
    const char* what;
    std::function<void(hs::kernels::HybridDecodeCall&)> breakIt;
    const char* field;
  };
  const std::vector<Row> rows = {
      {"q with two tokens", [](auto& c) { c.q = at::randn({12, 2, 8}, at::kDouble); }, "q"},
      {"streamKvHead of 5 for 12 query heads", [](auto& c) { c.streamKvHead.push_back(false); }, "streamKvHead"},
      {"streamKvHead naming 3 streaming heads", [](auto& c) { c.streamKvHead = {true, true, false, true}; }, "fullK"},
      {"full store of the wrong head_dim", [](auto& c) { c.fullK = at::randn({2, 37, 4}, at::kDouble); }, "fullK"},
      {"values shorter than keys", [](auto& c) { c.streamV = at::randn({2, 8, 8}, at::kDouble); }, "streamV"},
      {"missing full store", [](auto& c) { c.fullV = at::Tensor(); }, "fullV"},
      {"float32 keys for float64 queries", [](auto& c) { c.fullK = c.fullK.to(at::kFloat); }, "fullK"},
      {"empty streaming store", [](auto& c) {
         c.streamK = at::randn({2, 0, 8}, at::kDouble), c.streamV = at::randn({2, 0, 8}, at::kDouble);
       }, "streamK"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    auto c = randomHybrid(92);
    row.breakIt(c);
    try {
      hs::kernels::hybridDecodeAttention(c);
      FAIL_CHECK("no error thrown");
    } catch (const hs::Error& err) {
      CHECK(err.kind() == hs::ErrorKind::InvalidArgument);
      INFO("message: " << err.what());
      CHECK(err.field() == row.field);
    }
  }
}
