// The hybrid KV cache (DuoAttention streaming heads keep sink + window entries) against the
// independent reference in tiny_model.cpp: a model decoding with the hybrid cache must give, at every
// step, the logits of full attention in which the query heads of the streaming KV heads are
// restricted to sink + window (HeadMask semantics), and bytes() must be the layout's formula.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "inference/generation.h"
#include "inference/models/model.h"
#include "tests/inference/loaded_tiny_model.h"
#include "tests/inference/tiny_model.h"
#include "tests/kernels/attention_case.h"
#include "tests/kernels/stats_reference.h"

using namespace hs;
using hs::test::TinySpec;

namespace {

std::vector<int64_t> randomIds(int64_t n, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  const auto t = at::randint(0, vocab, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

std::vector<TokenId> tokens(const std::vector<int64_t>& ids, size_t from, size_t to) {
  return {ids.begin() + static_cast<std::ptrdiff_t>(from), ids.begin() + static_cast<std::ptrdiff_t>(to)};
}

double relErr(const at::Tensor& got, const at::Tensor& ref) {
  return (got.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

using TinyModel = hs::test::LoadedTinyModel;

// The reference's edits for a layout: every query head of a streaming KV head sees sink + window.
hs::test::ReferenceEdits restrictStreamingHeads(const TinySpec& s, const HybridLayout& layout) {
  hs::test::ReferenceEdits edits;
  const int group = s.heads / s.kvHeads;
  for (int l = 0; l < s.layers; ++l)
    for (int g : layout.streamingKvHeads[static_cast<size_t>(l)])
      for (int i = 0; i < group; ++i) edits.sinkWindow[{l, g * group + i}] = {layout.sink, layout.window};
  return edits;
}

// The layout's bytes written out: per layer 2 (k, v) * 4 bytes * D * (full * len + streaming * kept).
int64_t expectedBytes(const TinySpec& s, const HybridLayout& layout, int64_t len) {
  int64_t entries = 0;
  for (const auto& heads : layout.streamingKvHeads) {
    const auto streaming = static_cast<int64_t>(heads.size());
    entries += (s.kvHeads - streaming) * len + streaming * std::min(len, layout.sink + layout.window);
  }
  return 2 * 4 * s.headDim * entries;
}

struct Scenario {
  std::string name;
  TinySpec spec;
  HybridLayout layout;
  std::vector<size_t> prefills;  // lengths of the multi-token calls before decoding one by one
};

std::vector<Scenario> scenarios() {
  TinySpec gqa;  // 4 query heads, 2 KV heads
  gqa.seed = 21;
  TinySpec mqa = gqa;
  mqa.kvHeads = 1;
  mqa.seed = 22;
  TinySpec four = gqa;
  four.kvHeads = 4;
  four.layers = 3;
  four.seed = 23;
  HybridLayout a;
  a.sink = 2, a.window = 3, a.streamingKvHeads = {{1}, {0}};
  HybridLayout noSink = a;
  noSink.sink = 0, noSink.window = 4;
  HybridLayout allStreaming;  // layer 1 has no full head at all, layer 0 no streaming head
  allStreaming.sink = 1, allStreaming.window = 5, allStreaming.streamingKvHeads = {{}, {0}};
  HybridLayout scattered;
  scattered.sink = 3, scattered.window = 2, scattered.streamingKvHeads = {{3, 0}, {1, 2}, {0, 1, 2}};
  return {
      {"GQA, prompt of 1 then decode", gqa, a, {1}},
      {"GQA, prompt longer than sink + window", gqa, a, {9}},
      {"GQA, chunked prompt across the eviction point", gqa, a, {4, 7}},
      {"GQA, no sink", gqa, noSink, {6, 3}},
      {"MQA, a layer of only streaming heads", mqa, allStreaming, {3, 8}},
      {"4 KV heads, unsorted heads, window 2", four, scattered, {2, 5, 1}},
  };
}

// The calls of a scenario: its prefills, then one token at a time up to n.
std::vector<std::pair<size_t, size_t>> callsOf(const Scenario& sc, size_t n) {
  std::vector<std::pair<size_t, size_t>> calls;
  size_t done = 0;
  for (size_t chunk : sc.prefills) calls.emplace_back(done, done + chunk), done += chunk;
  for (; done < n; ++done) calls.emplace_back(done, done + 1);
  return calls;
}

}  // namespace

TEST_CASE("hybrid decode equals full attention restricted to sink + window at every step",
          "[kv_cache][hybrid]") {
  for (const auto& sc : scenarios()) {
    INFO(sc.name);
    TinyModel m(sc.spec);
    const auto ids = randomIds(24, sc.spec.vocab, 31);
    const auto ref =
        hs::test::referenceForward(sc.spec, m.weights, ids, restrictStreamingHeads(sc.spec, sc.layout));
    const auto unrestricted = hs::test::referenceForward(sc.spec, m.weights, ids);
    auto cache = m.model->newCache(0, sc.layout);
    REQUIRE(cache.hybrid());
    for (const auto& [from, to] : callsOf(sc, ids.size())) {
      const auto logits = m.model->forward(tokens(ids, from, to), cache);
      CHECK(relErr(logits, ref.narrow(0, static_cast<int64_t>(from), logits.size(0))) < 1e-5);
      CHECK(cache.bytes() == expectedBytes(sc.spec, sc.layout, cache.length()));
    }
    CHECK(cache.length() == 24);
    // The restriction matters on these inputs: the test would notice full attention.
    CHECK(relErr(ref.narrow(0, 12, 12), unrestricted.narrow(0, 12, 12)) > 1e-3);
  }
}

namespace {

// Every statistic, with a previous-token target set over queries [from, to).
kernels::StatsRequest everyStatistic(int64_t from, int64_t to) {
  kernels::StatsRequest r;
  r.sinkSet = {0, 2};
  r.streamSink = 1, r.streamWindow = 4, r.distanceCap = 3, r.bandLo = 1, r.bandHi = 5, r.poolBlock = 5;
  kernels::TargetSet previous{"previous token", {0}, {}};
  for (int64_t i = from; i < to; ++i) {
    if (i > 0) previous.keys.push_back(i - 1);
    previous.rowStart.push_back(static_cast<int64_t>(previous.keys.size()));
  }
  r.targets.push_back(previous);
  return r;
}

}  // namespace

TEST_CASE("statistics and probes over a hybrid cache are those of the restricted attention maps",
          "[kv_cache][hybrid][stats]") {
  for (const auto& sc : scenarios()) {
    INFO(sc.name);
    TinyModel m(sc.spec);
    const int64_t n = 24, H = sc.spec.heads;
    const auto ids = randomIds(n, sc.spec.vocab, 35);
    at::Tensor maps;  // [L, H, n, n] of the independent reference, streaming heads restricted
    const auto ref = hs::test::referenceForward(sc.spec, m.weights, ids,
                                                restrictStreamingHeads(sc.spec, sc.layout), &maps);
    auto cache = m.model->newCache(0, sc.layout);
    ForwardRecord rec;
    int probes = 0;
    for (const auto& [from, to] : callsOf(sc, static_cast<size_t>(n))) {
      ForwardHooks hooks;
      hooks.stats = everyStatistic(static_cast<int64_t>(from), static_cast<int64_t>(to));
      hooks.probe = [&](int l, int64_t first, const at::Tensor& probs) {  // [H, rows, keys so far]
        const auto want = maps[l].narrow(1, first, probs.size(1)).narrow(2, 0, probs.size(2));
        CHECK((probs.to(at::kDouble) - want).abs().max().item<double>() < 1e-5);
        ++probes;
      };
      ForwardOptions o;
      o.hooks = &hooks, o.record = &rec;
      const auto logits = m.model->forward(tokens(ids, from, to), cache, o);
      CHECK(relErr(logits, ref.narrow(0, static_cast<int64_t>(from), logits.size(0))) < 1e-5);
    }
    CHECK(probes >= sc.spec.layers * static_cast<int>(callsOf(sc, static_cast<size_t>(n)).size()));
    CHECK(cache.bytes() == expectedBytes(sc.spec, sc.layout, n));  // still compact
    const auto all = everyStatistic(0, n);
    for (int l = 0; l < sc.spec.layers; ++l) {
      INFO("layer " << l);
      const auto probs = maps[l].contiguous();
      const std::vector<double> flat(probs.data_ptr<double>(), probs.data_ptr<double>() + probs.numel());
      const auto want = hs::test::referenceStats(flat, H, n, n, 0, all);
      // float32 layers against the float64 reference: differences of a few 1e-6 in the probabilities
      // of the later layers (a wrong position or a missing key would be off by far more).
      auto closeTo = [](const at::Tensor& got, const std::vector<double>& wantValues, const char* name) {
        int64_t at = -1;
        const double err = hs::test::maxError(hs::test::toDoubles(got), wantValues, &at);
        INFO(name << ": max error " << err << " at flat index " << at);
        CHECK(err < 1e-4);
      };
      const kernels::LayerStats& got = rec.stats.at(l);
      closeTo(got.sinkFirst, want.sinkFirst, "sinkFirst");
      closeTo(got.sinkSet, want.sinkSet, "sinkSet");
      closeTo(got.entropy, want.entropy, "entropy");
      closeTo(got.streamMass, want.streamMass, "streamMass");
      closeTo(got.waad, want.waad, "waad");
      closeTo(got.meanDistance, want.meanDistance, "meanDistance");
      closeTo(got.top1Prob, want.top1Prob, "top1Prob");
      closeTo(got.colSum, want.colSum, "colSum");
      closeTo(got.colSumBand, want.colSumBand, "colSumBand");
      closeTo(got.targetMass, want.targetMass, "targetMass");
      closeTo(got.poolMax, want.poolMax, "poolMax");
      closeTo(got.poolMean, want.poolMean, "poolMean");
      // top-1 at the reference's maximum (its position, where the maximum is unique)
      const auto pos = got.top1Pos.contiguous();
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < n; ++i)
          CHECK(std::abs(probs[h][i][pos[h][i].item<int64_t>()].item<double>() - want.top1Prob[h * n + i]) <
                1e-5);
    }
  }
}

TEST_CASE("edits over a hybrid cache act as on a full cache whose streaming heads are masked",
          "[kv_cache][hybrid]") {
  for (const auto& sc : scenarios()) {
    INFO(sc.name);
    TinyModel m(sc.spec);
    const int64_t n = 24;
    const int H = sc.spec.heads, group = sc.spec.heads / sc.spec.kvHeads;
    const auto ids = randomIds(n, sc.spec.vocab, 37);
    ForwardHooks edits;  // a logit bias, ACT, a key set, head scales: on streaming and full heads alike
    for (int l = 0; l < sc.spec.layers; ++l) {
      auto& e = edits.edits[l];
      e.biases.push_back({0, {0, 3}, 0.7});
      e.attenuations.push_back({H - 1, {1, 5}, 0.3});
      e.masks.emplace_back(1, kernels::HeadMask::keySet({0, 1, 2, 7, 8, 9, 10, 11, 12, 13, 20, 21, 22, 23}));
      e.headScale = at::linspace(0.5, 1.5, H);
    }
    ForwardHooks masked = edits;  // plus the restriction the hybrid cache applies
    for (int l = 0; l < sc.spec.layers; ++l)
      for (int g : sc.layout.streamingKvHeads[static_cast<size_t>(l)])
        for (int i = 0; i < group; ++i)
          masked.edits[l].masks.emplace_back(g * group + i,
                                             kernels::HeadMask::sinkWindow(sc.layout.sink, sc.layout.window));
    auto hybrid = m.model->newCache(0, sc.layout);
    auto full = m.model->newCache(0);
    ForwardOptions oh, of;
    oh.hooks = &edits, of.hooks = &masked;
    for (const auto& [from, to] : callsOf(sc, static_cast<size_t>(n))) {
      const auto got = m.model->forward(tokens(ids, from, to), hybrid, oh);
      const auto want = m.model->forward(tokens(ids, from, to), full, of);
      CHECK(relErr(got, want.to(at::kDouble)) < 1e-5);
    }
    // The edits matter on these inputs.
    auto plain = m.model->newCache(0, sc.layout);
    const auto unedited = m.model->forward(tokens(ids, 0, static_cast<size_t>(n)), plain);
    auto again = m.model->newCache(0, sc.layout);
    CHECK(relErr(m.model->forward(tokens(ids, 0, static_cast<size_t>(n)), again, oh),
                 unedited.to(at::kDouble)) > 1e-3);
  }
}

TEST_CASE("a hybrid cache stores the streaming heads compactly", "[kv_cache][hybrid]") {
  const int64_t kvHeads = 8, dim = 16, layers = 3, tokensStored = 1000, sink = 4, window = 32;
  const auto layout = HybridLayout::uniform(layers, {0, 2, 4, 6}, sink, window);
  KvCache hybrid(layers, kvHeads, dim, at::kFloat, layout), full(layers, kvHeads, dim, at::kFloat);
  hybrid.reserve(tokensStored);
  full.reserve(tokensStored);
  const auto k = at::randn({kvHeads, tokensStored, dim}), v = at::randn({kvHeads, tokensStored, dim});
  for (int l = 0; l < layers; ++l) {
    hybrid.stage(l, k, v, 4);
    full.append(l, k, v);
  }
  hybrid.commit(tokensStored);
  full.commit(tokensStored);
  const int64_t perEntry = 2 * dim * 4;
  CHECK(full.bytes() == layers * kvHeads * tokensStored * perEntry);
  CHECK(hybrid.bytes() == layers * (4 * tokensStored + 4 * (sink + window)) * perEntry);
  // The storage itself is separate and small, not a mask over full-size storage.
  CHECK(full.allocatedBytes() == full.bytes());
  CHECK(hybrid.allocatedBytes() == hybrid.bytes());
  CHECK(static_cast<double>(full.bytes()) / static_cast<double>(hybrid.bytes()) > 1.9);
}

TEST_CASE("hybrid cache misuse gives errors that name the field", "[kv_cache][hybrid][errors]") {
  TinySpec spec;
  TinyModel m(spec);
  struct Row {
    std::string name;
    HybridLayout layout;
    std::string fragment;
  };
  HybridLayout base;
  base.sink = 2, base.window = 3, base.streamingKvHeads = {{0}, {1}};
  std::vector<Row> rows{
      {"layer count", HybridLayout::uniform(3, {0}), "streamingKvHeads"},
      {"head out of range", HybridLayout::uniform(2, {2}), "streamingKvHeads[0]"},
      {"repeated head", HybridLayout::uniform(2, {1, 1}), "repeats"},
      {"window", HybridLayout::uniform(2, {0}, 4, 0), "HybridLayout.window"},
      {"sink", HybridLayout::uniform(2, {0}, -1, 4), "HybridLayout.sink"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    try {
      m.model->newCache(0, row.layout);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::InvalidArgument);
      CHECK_THAT(e.what(), hs::test::HasSubstring(row.fragment));
    }
  }

  // Statistics of only the layers without streaming heads.
  HybridLayout layer1Only = base;
  layer1Only.streamingKvHeads[0].clear();
  auto cache = m.model->newCache(0, layer1Only);
  ForwardHooks layer0;
  layer0.stats = kernels::StatsRequest{};
  layer0.statsLayers = {0};
  ForwardRecord rec;
  ForwardOptions o;
  o.hooks = &layer0;
  o.record = &rec;
  m.model->forward({1, 2, 3}, cache, o);
  CHECK(rec.stats.at(0).entropy.size(1) == 3);

  // Sliding-window layers would need the true distances to the sink tokens.
  TinySpec mistral;
  mistral.modelType = "mistral";
  mistral.slidingWindow = 5;
  TinyModel sliding(mistral);
  try {
    sliding.model->newCache(0, base);
    FAIL("accepted a sliding-window layer");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Unsupported);
    CHECK_THAT(e.what(), hs::test::HasSubstring("sliding window"));
  }

  // Going back is possible until the ring evicted something.
  auto ring = m.model->newCache(0, base);
  m.model->forward({1, 2, 3, 4}, ring);
  ring.truncate(2);
  CHECK(ring.length() == 2);
  m.model->forward({5, 6, 7, 8, 9, 10}, ring);
  try {
    ring.truncate(4);
    FAIL("truncated after eviction");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Unsupported);
    CHECK_THAT(e.what(), hs::test::HasSubstring("evicted"));
  }
}

TEST_CASE("an allocator failure inside a forward leaves the hybrid cache as it was",
          "[kv_cache][hybrid][errors]") {
  TinySpec spec;
  spec.seed = 41;
  TinyModel m(spec);
  HybridLayout layout;
  layout.sink = 1, layout.window = 3, layout.streamingKvHeads = {{0}, {1}};
  const auto ids = randomIds(12, spec.vocab, 42);
  const auto ref = hs::test::referenceForward(spec, m.weights, ids, restrictStreamingHeads(spec, layout));
  auto cache = m.model->newCache(0, layout);
  m.model->forward(tokens(ids, 0, 7), cache);

  // Layer 0 has staged the new token when layer 1's tap fails the way the CUDA allocator does.
  ForwardHooks failing;
  failing.patch = {{Hook::ResidPre, 1}};
  failing.tapFunction = [](const TapPoint&, const at::Tensor&) -> at::Tensor {
    C10_THROW_ERROR(OutOfMemoryError, "CUDA out of memory. Tried to allocate 2.00 GiB");
  };
  ForwardOptions o;
  o.hooks = &failing;
  try {
    m.model->forward(tokens(ids, 7, 8), cache, o);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::OutOfMemory);
    CHECK_THAT(e.what(), hs::test::HasSubstring("1 tokens ran out of memory on cpu"));
    CHECK_THAT(e.what(), hs::test::HasSubstring("Tried to allocate 2.00 GiB"));
  }
  CHECK(cache.length() == 7);
  for (size_t i = 7; i < ids.size(); ++i)
    CHECK(relErr(m.model->forward(tokens(ids, i, i + 1), cache), ref.narrow(0, static_cast<int64_t>(i), 1)) <
          1e-5);
}

TEST_CASE("generation with a hybrid cache follows the sink + window masks of full attention",
          "[kv_cache][hybrid]") {
  TinySpec spec;
  spec.seed = 51;
  TinyModel m(spec);
  HybridLayout layout;
  layout.sink = 2, layout.window = 4, layout.streamingKvHeads = {{0}, {0, 1}};
  const auto ids = randomIds(9, spec.vocab, 52);
  GenerateOptions hybrid;
  hybrid.maxNewTokens = 12;
  hybrid.stopOnEos = false;
  hybrid.cacheLayout = layout;
  GenerateOptions masked = hybrid;
  masked.cacheLayout = {};
  ForwardHooks hooks;
  for (int l = 0; l < spec.layers; ++l)
    for (int g : layout.streamingKvHeads[static_cast<size_t>(l)])
      for (int i = 0; i < 2; ++i)
        hooks.edits[l].masks.emplace_back(g * 2 + i,
                                          kernels::HeadMask::sinkWindow(layout.sink, layout.window));
  masked.forward.hooks = &hooks;
  const auto a = generate(*m.model, tokens(ids, 0, ids.size()), hybrid);
  const auto b = generate(*m.model, tokens(ids, 0, ids.size()), masked);
  CHECK(a.tokens == b.tokens);
  CHECK(a.tokens.size() == 12);
}
