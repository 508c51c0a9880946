// Bad model directories and bad requests: each gives a typed hs::Error naming the file and the
// tensor/field, never a crash.
#include <ATen/ATen.h>

#include <filesystem>

#include "inference/formats/safetensors.h"
#include "inference/models/model.h"
#include "tests/inference/loaded_tiny_model.h"
#include "tests/inference/tiny_model.h"

using namespace hs;
using hs::test::TinySpec;

namespace {

struct BadDir {
  std::string name;
  std::function<void(const std::string& dir, const TinySpec&, hs::test::Weights&)> breakIt;
  ErrorKind kind;
  std::string fragment;  // must appear in what()
};

void expectLoadError(const BadDir& row) {
  INFO(row.name);
  TinySpec spec;
  auto w = hs::test::randomWeights(spec);
  hs::test::ScratchDir dir;
  hs::test::writeTinyModel(dir.path(), spec, w);
  row.breakIt(dir.path(), spec, w);
  LoadOptions o;
  o.loadTokenizer = false;
  o.checkWeights = true;
  try {
    Model::load(dir.path(), o);
    FAIL("no error for " << row.name);
  } catch (const Error& e) {
    CHECK(e.kind() == row.kind);
    CHECK_THAT(e.what(), hs::test::HasSubstring(row.fragment));
  }
}

void rewrite(const std::string& dir, const TinySpec& spec, const hs::test::Weights& w) {
  hs::test::writeTinyModel(dir, spec, w);
}

}  // namespace

TEST_CASE("broken model directories are reported precisely", "[model][errors]") {
  const std::vector<BadDir> rows{
      {"missing config", [](auto& d, auto&, auto&) { std::filesystem::remove(d + "/config.json"); },
       ErrorKind::Io, "config.json"},
      {"missing tensor",
       [](auto& d, auto& s, auto& w) { w.erase("model.layers.1.mlp.up_proj.weight"); rewrite(d, s, w); },
       ErrorKind::Mismatch, "model.layers.1.mlp.up_proj.weight"},
      {"shape disagrees with config",
       [](auto& d, auto& s, auto& w) { w["model.layers.0.self_attn.k_proj.weight"] = at::zeros({8, 32}); rewrite(d, s, w); },
       ErrorKind::Mismatch, "model.layers.0.self_attn.k_proj.weight"},
      {"unknown model_type",
       [](auto& d, auto& s, auto&) {
         auto spec = s;
         spec.modelType = "gpt2";
         hs::test::writeBytes(d + "/config.json", hs::test::configJson(spec));
       },
       ErrorKind::Unsupported, "gpt2"},
      {"pickle checkpoint only",
       [](auto& d, auto&, auto&) {
         std::filesystem::remove(d + "/model.safetensors");
         hs::test::writeBytes(d + "/pytorch_model.bin", "PK\x03\x04 pickle");
       },
       ErrorKind::Unsupported, "pytorch_model.bin"},
      {"truncated weights",
       [](auto& d, auto&, auto&) {
         const auto p = d + "/model.safetensors";
         std::filesystem::resize_file(p, std::filesystem::file_size(p) - 100);
       },
       ErrorKind::Corrupt, "model.safetensors"},
      {"NaN weights with --check-weights",
       [](auto& d, auto& s, auto& w) {
         w["model.layers.1.mlp.down_proj.weight"][0][3] = NAN;
         rewrite(d, s, w);
       },
       ErrorKind::Numerical, "model.layers.1.mlp.down_proj.weight"},
      {"integer weights",
       [](const std::string& d, const TinySpec& s, hs::test::Weights& w) {
         std::vector<TensorToWrite> out;
         for (const auto& [name, t] : w) {
           const bool asInt = name == "model.norm.weight";
           TensorToWrite tw{name, asInt ? DType::I32 : DType::F32, t.sizes().vec(),
                            std::vector<std::byte>(static_cast<size_t>(t.numel()) * 4)};
           std::memcpy(tw.bytes.data(), t.contiguous().data_ptr<float>(), tw.bytes.size());
           out.push_back(std::move(tw));
         }
         writeSafetensors(d + "/model.safetensors", out);
         (void)s;
       },
       ErrorKind::Unsupported, "model.norm.weight"},
  };
  for (const auto& row : rows) expectLoadError(row);
}

TEST_CASE("bad requests are refused before any compute", "[model][errors]") {
  TinySpec spec;
  spec.maxPositions = 16;
  hs::test::LoadedTinyModel tiny(spec);
  auto& model = tiny.model;
  auto cache = model->newCache();
  auto expectArgError = [&](const std::vector<TokenId>& ids, const std::string& fragment) {
    try {
      model->forward(ids, cache);
      FAIL("accepted " << ids.size() << " ids");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::InvalidArgument);
      CHECK_THAT(e.what(), hs::test::HasSubstring(fragment));
    }
  };
  expectArgError({1, 2, 64}, "token id 64 at position 2");
  expectArgError({1, -3}, "token id -3");
  expectArgError(std::vector<TokenId>(17, 1), "max_position_embeddings");
  expectArgError({}, "no tokens");
  CHECK(cache.length() == 0);
  // The cache stays usable after refused requests.
  CHECK(model->forward({1, 2, 3}, cache).size(0) == 3);
}

TEST_CASE("NaN produced in the forward pass names the layer", "[model][errors]") {
  const float bad = GENERATE(INFINITY, -INFINITY, NAN);  // each must show in the layer's min or max
  TinySpec spec;
  auto w = hs::test::randomWeights(spec);
  w["model.layers.1.post_attention_layernorm.weight"][5] = bad;
  hs::test::ScratchDir dir;
  hs::test::writeTinyModel(dir.path(), spec, w);
  LoadOptions o;
  o.loadTokenizer = false;
  auto model = Model::load(dir.path(), o);  // without --check-weights the load succeeds
  auto cache = model->newCache();
  try {
    model->forward({1, 2, 3, 4}, cache);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Numerical);
    CHECK_THAT(e.what(), hs::test::HasSubstring("layer 1"));
  }
}

TEST_CASE("NaN or Inf in the logits is refused naming lm_head", "[model][errors]") {
  const float bad = GENERATE(INFINITY, -INFINITY, NAN);
  TinySpec spec;
  auto w = hs::test::randomWeights(spec);
  w["lm_head.weight"][7][3] = bad;  // hidden states stay finite; logit 7 does not
  hs::test::ScratchDir dir;
  hs::test::writeTinyModel(dir.path(), spec, w);
  LoadOptions o;
  o.loadTokenizer = false;
  auto model = Model::load(dir.path(), o);
  auto cache = model->newCache();
  try {
    model->forward({1, 2, 3, 4}, cache);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Numerical);
    CHECK_THAT(e.what(), hs::test::HasSubstring("logits contain NaN/Inf"));
    CHECK_THAT(e.what(), hs::test::HasSubstring("lm_head.weight"));
  }
}

TEST_CASE("a tokenizer with more ids than embedding rows is refused at load", "[model][errors]") {
  TinySpec spec;  // 64 embedding rows
  auto w = hs::test::randomWeights(spec);
  hs::test::ScratchDir dir;
  hs::test::writeTinyModel(dir.path(), spec, w);
  std::filesystem::copy_file(hs::test::fixture("parity/llama3_bpe/model/tokenizer.json"), dir.file("tokenizer.json"));
  try {
    Model::load(dir.path());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Mismatch);
    CHECK_THAT(e.what(), hs::test::HasSubstring("vocab_size"));
  }
}
