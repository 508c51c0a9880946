// Model's instrumented forward against the independent reference in tiny_model.cpp: plain
// forward, KV-cache decoding, head ablation, sink+window restriction, attention maps, statistics,
// taps, reuse from cached activations and gradients through the DuoAttention mix.
#include <ATen/ATen.h>

#include "inference/models/model.h"
#include "tests/inference/loaded_tiny_model.h"
#include "tests/inference/tiny_model.h"

using namespace hs;
using hs::test::TinySpec;

namespace {

std::vector<int64_t> randomIds(int64_t n, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  const auto t = at::randint(0, vocab, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

std::vector<TokenId> toTokens(const std::vector<int64_t>& ids) {
  return {ids.begin(), ids.end()};
}

double relErr(const at::Tensor& got, const at::Tensor& ref) {
  return (got.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

struct Fixture : hs::test::LoadedTinyModel {
  using LoadedTinyModel::LoadedTinyModel;
  at::Tensor forward(const std::vector<int64_t>& ids, ForwardHooks* hooks = nullptr,
                     ForwardRecord* rec = nullptr) {
    auto cache = model->newCache();
    ForwardOptions o;
    o.hooks = hooks;
    o.record = rec;
    return model->forward(toTokens(ids), cache, o);
  }
};

TinySpec variant(int which) {
  TinySpec s;
  switch (which) {
    case 0:
      break;  // llama, GQA 2
    case 1:
      s.kvHeads = 1;
      s.tied = true;
      s.qkvBias = true;
      break;  // MQA, tied, biases
    case 2:
      s.modelType = "qwen3";
      s.qkNorm = true;
      s.headDim = 16;
      break;  // head_dim != hidden/heads
    case 3:
      s.modelType = "mistral";
      s.slidingWindow = 5;
      s.kvHeads = 4;
      break;
  }
  s.seed = 10 + static_cast<uint64_t>(which);
  return s;
}

}  // namespace

TEST_CASE("forward matches the independent reference for each variant", "[model]") {
  const int which = GENERATE(0, 1, 2, 3);
  Fixture f(variant(which));
  const auto ids = randomIds(23, f.spec.vocab, 5);
  at::Tensor refAttn;
  const auto ref = hs::test::referenceForward(f.spec, f.weights, ids, {}, &refAttn);
  CHECK(relErr(f.forward(ids), ref) < 1e-5);

  // Attention maps through the probe equal the reference maps.
  ForwardHooks hooks;
  auto maps = at::zeros_like(refAttn, at::kFloat);
  hooks.probe = [&](int l, int64_t first, const at::Tensor& p) {
    maps[l].narrow(1, first, p.size(1)).copy_(p);
  };
  f.forward(ids, &hooks);
  CHECK((maps.to(at::kDouble) - refAttn).abs().max().item<double>() < 1e-5);
}

TEST_CASE("decoding token by token with the KV cache equals the full forward", "[model]") {
  Fixture f(variant(GENERATE(0, 3)));
  const auto ids = randomIds(17, f.spec.vocab, 6);
  const auto full = f.forward(ids);
  auto cache = f.model->newCache();
  std::vector<TokenId> prefix(ids.begin(), ids.begin() + 6);
  auto logits = f.model->forward(prefix, cache);
  CHECK(cache.length() == 6);
  CHECK(relErr(logits, full.narrow(0, 0, 6).to(at::kDouble)) < 1e-5);
  for (size_t i = 6; i < ids.size(); ++i) {
    logits = f.model->forward({static_cast<TokenId>(ids[i])}, cache);
    CHECK(relErr(logits[0], full[static_cast<int64_t>(i)].to(at::kDouble)) < 1e-5);
  }
}

TEST_CASE("head ablation and sink+window masks match the reference", "[model][interventions]") {
  Fixture f(variant(0));
  const auto ids = randomIds(20, f.spec.vocab, 7);
  const auto plain = f.forward(ids);

  ForwardHooks ablate;
  ablate.edits[1].headScale = at::tensor({1.0f, 1.0f, 0.0f, 1.0f});
  hs::test::ReferenceEdits refAblate;
  refAblate.headScale[{1, 2}] = 0.0;
  const auto ref = hs::test::referenceForward(f.spec, f.weights, ids, refAblate);
  const auto got = f.forward(ids, &ablate);
  CHECK(relErr(got, ref) < 1e-5);
  CHECK(relErr(plain, ref) > 1e-3);  // the ablation changes the output

  ForwardHooks window;
  window.edits[0].masks.push_back({1, kernels::HeadMask::sinkWindow(2, 3)});
  hs::test::ReferenceEdits refWindow;
  refWindow.sinkWindow[{0, 1}] = {2, 3};
  at::Tensor refAttn;
  const auto refW = hs::test::referenceForward(f.spec, f.weights, ids, refWindow, &refAttn);
  ForwardRecord rec;
  window.stats = kernels::StatsRequest{};
  window.stats->streamSink = 2;
  window.stats->streamWindow = 3;
  CHECK(relErr(f.forward(ids, &window, &rec), refW) < 1e-5);
  // The restricted head keeps all of its mass inside sink + window; its statistics agree with the
  // reference map.
  const auto& s0 = rec.stats.at(0);
  CHECK(s0.streamMass[1].min().item<float>() > 1.0f - 1e-5f);
  CHECK((s0.sinkFirst.to(at::kDouble) - refAttn[0].select(2, 0)).abs().max().item<double>() < 1e-5);
  CHECK((s0.colSum.to(at::kDouble) - refAttn[0].sum(1)).abs().max().item<double>() < 1e-4);
}

TEST_CASE("taps record the residual stream and reuse from layer l reproduces an ablated run",
          "[model][taps]") {
  Fixture f(variant(0));
  const auto ids = randomIds(12, f.spec.vocab, 8);
  ForwardHooks hooks;
  hooks.record = {{Hook::ResidPost, 0}, {Hook::ResidPre, 1}, {Hook::HeadOut, 1}, {Hook::FinalNorm, -1}};
  ForwardRecord rec;
  f.forward(ids, &hooks, &rec);
  CHECK(at::equal(rec.taps.at({Hook::ResidPost, 0}), rec.taps.at({Hook::ResidPre, 1})));
  CHECK(rec.taps.at({Hook::HeadOut, 1}).sizes() == at::IntArrayRef({12, 4, 8}));
  CHECK(tapName({Hook::HeadOut, 1}) == "blocks.1.attn.hook_z");
  CHECK(parseTapName("blocks.1.attn.hook_z") == TapPoint{Hook::HeadOut, 1});
  CHECK(!parseTapName("blocks.x.hook_q").has_value());

  // Ablating a head of layer 1 leaves layer 0 alone: resume from the recorded resid_pre of layer 1.
  ForwardHooks ablate;
  ablate.edits[1].headScale = at::tensor({0.0f, 1.0f, 1.0f, 1.0f});
  const auto full = f.forward(ids, &ablate);
  auto cache = f.model->newCache();
  ForwardOptions o;
  o.hooks = &ablate;
  auto resumed = f.model->runLayers(rec.taps.at({Hook::ResidPre, 1}), 1, f.spec.layers, cache, 0, o);
  CHECK(at::allclose(f.model->unembed(resumed, o), full, 1e-5, 1e-5));

  // Patching: replacing layer 0's attention output by zeros equals scaling every head by 0.
  ForwardHooks patch;
  patch.patch = {{Hook::AttnOut, 0}};
  patch.tapFunction = [](const TapPoint&, const at::Tensor& x) { return at::zeros_like(x); };
  ForwardHooks zeroHeads;
  zeroHeads.edits[0].headScale = at::zeros({4});
  CHECK(at::allclose(f.forward(ids, &patch), f.forward(ids, &zeroHeads), 1e-5, 1e-5));
}

TEST_CASE("a LibTorch error inside a layer becomes hs::Error naming the layer, and the model stays usable",
          "[model][errors]") {
  Fixture f(variant(0));
  const auto ids = randomIds(12, f.spec.vocab, 5);
  const auto before = f.forward(ids);
  ForwardHooks failing;
  failing.patch = {{Hook::MlpOut, 1}};
  failing.tapFunction = [](const TapPoint&, const at::Tensor& x) -> at::Tensor {
    TORCH_CHECK(x.size(0) < 0, "tap function refused the tensor");  // always fails
    return x;
  };
  try {
    f.forward(ids, &failing);
    FAIL("no error");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.kind() == ErrorKind::Internal);
    CHECK(std::string(e.what()).find("layer 1: LibTorch error: tap function refused the tensor") !=
          std::string::npos);
    CHECK(std::string(e.what()).find("model.layers.1") != std::string::npos);
  }
  CHECK(at::equal(f.forward(ids), before));  // nothing of the failed call is left behind
}

TEST_CASE("the DuoAttention mix is differentiable in alpha", "[model][interventions]") {
  Fixture f(variant(0));
  const auto ids = randomIds(16, f.spec.vocab, 9);
  auto alpha = at::full({}, 0.5, at::kFloat).set_requires_grad(true);
  ForwardHooks hooks;
  hooks.edits[1].mixes.push_back({0, alpha, 1, 3});
  const auto logits = f.forward(ids, &hooks);
  logits.pow(2).sum().backward();
  REQUIRE(alpha.grad().defined());
  CHECK(std::isfinite(alpha.grad().item<float>()));
  CHECK(std::abs(alpha.grad().item<float>()) > 0.0f);
  // alpha = 1 is exactly full attention.
  ForwardHooks one;
  one.edits[1].mixes.push_back({0, at::ones({}), 1, 3});
  CHECK(at::allclose(f.forward(ids, &one), f.forward(ids), 1e-6, 1e-6));
}
