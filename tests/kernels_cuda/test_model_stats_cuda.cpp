// Model-level statistics on CUDA: Model::forward lets each layer's statistics travel to the host while
// later layers run (AttentionCall::statsInFlight) and waits for them before it returns. They must then
// equal the CPU path's, for a prompt and for decode steps appended to the same record.
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "inference/hooks.h"
#include "inference/models/model.h"
#include "tests/catch.hpp"

using namespace hs;

namespace {

ForwardRecord runWithStats(Model& model, const ForwardHooks& hooks, const std::vector<TokenId>& prompt,
                           const HybridLayout& layout = {}) {
  ForwardRecord rec;
  ForwardHooks h = hooks;
  ForwardOptions fo;
  fo.hooks = &h;
  fo.record = &rec;
  fo.allLogits = false;
  auto cache = model.newCache(0, layout);
  model.forward(prompt, cache, fo);
  for (const TokenId t : {TokenId{17}, TokenId{250}}) model.forward({t}, cache, fo);  // decode steps append
  return rec;
}

void expectSame(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined() == want.defined());
  if (!got.defined()) return;
  REQUIRE(got.device().is_cpu());
  REQUIRE(got.sizes() == want.sizes());
  REQUIRE(got.isfinite().all().item<bool>());
  // Element by element: |cuda - cpu| <= 1e-4 + 1e-3 |cpu| (float32 on both; sums in other orders).
  const at::Tensor excess = (got - want).abs() - (1e-4 + 1e-3 * want.abs());
  INFO("max |cuda - cpu| " << (got - want).abs().max().item<double>() << ", worst excess over the tolerance "
                           << excess.max().item<double>());
  CHECK(excess.max().item<double>() <= 0.0);
}

// Every layer's statistics of both records, element by element (see expectSame); rows: queries of the
// prompt and the decode steps.
void expectSameRecords(const ForwardRecord& got, const ForwardRecord& want, int64_t rows, int layers) {
  REQUIRE(want.stats.size() == static_cast<size_t>(layers));
  REQUIRE(got.stats.size() == want.stats.size());
  for (const auto& [layer, w] : want.stats) {
    const kernels::LayerStats& g = got.stats.at(layer);
    const std::string l = "layer " + std::to_string(layer) + ": ";
    REQUIRE(g.entropy.size(1) == rows);
    expectSame(g.sinkFirst, w.sinkFirst, l + "sinkFirst");
    expectSame(g.sinkSet, w.sinkSet, l + "sinkSet");
    expectSame(g.entropy, w.entropy, l + "entropy");
    expectSame(g.streamMass, w.streamMass, l + "streamMass");
    expectSame(g.waad, w.waad, l + "waad");
    expectSame(g.meanDistance, w.meanDistance, l + "meanDistance");
    expectSame(g.top1Prob, w.top1Prob, l + "top1Prob");
    expectSame(g.colSum, w.colSum, l + "colSum");
    expectSame(g.colSumBand, w.colSumBand, l + "colSumBand");
    expectSame(g.poolMax, w.poolMax, l + "poolMax");
    expectSame(g.poolMean, w.poolMean, l + "poolMean");
    REQUIRE(g.tiles.size() == w.tiles.size());
    for (size_t i = 0; i < w.tiles.size(); ++i) expectSame(g.tiles[i], w.tiles[i], l + "tile");
    // Top-1 positions: equal except where two keys tie within float32 rounding.
    const double same = g.top1Pos.eq(w.top1Pos).to(at::kDouble).mean().item<double>();
    INFO(l << "top1Pos agreement " << same);
    CHECK(same >= 0.995);
  }
}

// The shipped model on the CPU and on CUDA, both float32.
struct ModelPair {
  std::unique_ptr<Model> cpu, cuda;
  ModelPair() {
    const std::string dir = std::string(HS_SOURCE_DIR) + "/resources/model";
    LoadOptions cpuOptions;
    cpuOptions.loadTokenizer = false;
    LoadOptions cudaOptions = cpuOptions;
    cudaOptions.device = "cuda";
    cudaOptions.dtype = at::kFloat;
    cpu = Model::load(dir, cpuOptions);
    cuda = Model::load(dir, cudaOptions);
  }
};

// <s>, then a repeating pattern of 699 tokens so that some heads have targets.
std::vector<TokenId> patternPrompt() {
  std::vector<TokenId> prompt{1};
  for (int i = 1; i < 700; ++i) prompt.push_back(static_cast<TokenId>(3 + (i * 37) % 211));
  return prompt;
}

}  // namespace

TEST_CASE("model statistics over a hybrid cache on CUDA match the CPU path", "[kernels_cuda][model]") {
  REQUIRE(at::hasCUDA());
  const ModelPair m;
  // Half the KV heads stream with sink 4 and window 64: the 700-token prompt and the decode steps after
  // it read their kept entries at true positions (hybridAsFull), masked to sink + window.
  const int layers = static_cast<int>(m.cpu->config().numLayers);
  const auto layout = HybridLayout::uniform(layers, {0, 2}, 4, 64);
  const auto prompt = patternPrompt();
  ForwardHooks hooks;
  hooks.stats = kernels::StatsRequest{};
  hooks.stats->poolBlock = 64;
  expectSameRecords(runWithStats(*m.cuda, hooks, prompt, layout), runWithStats(*m.cpu, hooks, prompt, layout),
                    static_cast<int64_t>(prompt.size()) + 2, layers);
}

TEST_CASE("model statistics on CUDA arrive complete and match the CPU path", "[kernels_cuda][model]") {
  REQUIRE(at::hasCUDA());
  const ModelPair m;
  const auto prompt = patternPrompt();
  ForwardHooks hooks;
  hooks.stats = kernels::StatsRequest{};
  hooks.stats->sinkSet = {0, 1, 2};
  hooks.stats->poolBlock = 64;
  hooks.stats->tiles.push_back({1, 690, 702, 0, 64});  // append keeps the last call's: the last step's row
  expectSameRecords(runWithStats(*m.cuda, hooks, prompt), runWithStats(*m.cpu, hooks, prompt),
                    static_cast<int64_t>(prompt.size()) + 2,  // prompt + 2 decode steps
                    static_cast<int>(m.cpu->config().numLayers));
}
