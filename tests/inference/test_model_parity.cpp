// Parity with Hugging Face transformers: every case under tests/fixtures/parity (made by
// tests/parity/make_fixtures.py on the CUDA host, and by the reference-model recipe) must give the
// same logits (1e-4 relative to max |logit|), attention (1e-5 absolute) and greedy tokens.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "inference/formats/npy.h"
#include "inference/generation.h"
#include "inference/models/model.h"
#include "tests/catch.hpp"

using namespace hs;

namespace {

at::Tensor loadNpy(const std::string& path) {
  const auto a = readNpy(path);
  auto v = a.asFloat();
  return at::tensor(v, at::kFloat).view(a.shape);
}

std::vector<std::string> parityCases() {
  std::vector<std::string> dirs;
  for (const auto& e : std::filesystem::directory_iterator(hs::test::fixture("parity")))
    if (std::filesystem::exists(e.path() / "expected.json")) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

}  // namespace

TEST_CASE("logits, attention and greedy tokens match transformers", "[parity]") {
  const auto cases = parityCases();
  REQUIRE(cases.size() >= 5);  // llama3, llama2 SentencePiece, mistral, qwen2, qwen3 (+ reference model)
  for (const auto& dir : cases) {
    std::ifstream in(dir + "/expected.json");
    const auto e = nlohmann::json::parse(in);
    INFO("case " << e["case"].get<std::string>());
    LoadOptions o;
    o.loadTokenizer = false;
    auto model = Model::load(std::string(HS_SOURCE_DIR) + "/" + e["model"].get<std::string>(), o);
    for (const auto& f : e["forward"]) {
      const auto ids = f["ids"].get<std::vector<TokenId>>();
      const bool withAttn = f.contains("attn") && f["attn"].is_string();
      at::Tensor maps;
      ForwardHooks hooks;
      if (withAttn) {
        const auto& c = model->config();
        const int64_t n = static_cast<int64_t>(ids.size());
        maps = at::zeros({c.numLayers, c.numHeads, n, n});
        hooks.probe = [&](int l, int64_t first, const at::Tensor& p) { maps[l].narrow(1, first, p.size(1)).copy_(p); };
      }
      ForwardOptions fo;
      fo.hooks = &hooks;
      auto cache = model->newCache();
      const auto logits = model->forward(ids, cache, fo);
      const auto ref = loadNpy(dir + "/" + f["logits"].get<std::string>());
      REQUIRE(logits.sizes() == ref.sizes());
      CHECK((logits - ref).abs().max().item<float>() / ref.abs().max().item<float>() < 1e-4f);
      if (withAttn) {
        const auto refAttn = loadNpy(dir + "/" + f["attn"].get<std::string>());
        REQUIRE(maps.sizes() == refAttn.sizes());
        CHECK((maps - refAttn).abs().max().item<float>() < 1e-5f);
      }
    }
    for (const auto& g : e["generate"]) {
      GenerateOptions go;
      go.maxNewTokens = g["max_new_tokens"].get<int64_t>();
      const auto result = generate(*model, g["ids"].get<std::vector<TokenId>>(), go);
      CHECK(result.tokens == g["greedy"].get<std::vector<TokenId>>());
    }
  }
}
