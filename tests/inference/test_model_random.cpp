// Models built without a checkpoint (Model::randomInit), compute dtypes other than float32
// (LoadOptions::dtype), and the MLP run in token chunks, against the independent reference forward
// of tiny_model.cpp where there is one.
#include <ATen/ATen.h>

#include "inference/formats/model_config.h"
#include "inference/models/model.h"
#include "tests/inference/tiny_model.h"

using namespace hs;
using hs::test::TinySpec;

namespace {

std::vector<TokenId> someIds(int64_t n, int64_t vocab) {
  std::vector<TokenId> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<TokenId>((i * 7 + 3) % vocab));
  return ids;
}

std::unique_ptr<Model> loadTiny(const hs::test::ScratchDir& dir, std::optional<at::ScalarType> dtype = {}) {
  LoadOptions o;
  o.loadTokenizer = false;
  o.dtype = dtype;
  return Model::load(dir.path(), o);
}

double cosine(const at::Tensor& a, const at::Tensor& b) {
  const auto x = a.to(at::kDouble).flatten(), y = b.to(at::kDouble).flatten();
  return (x.dot(y) / (x.norm() * y.norm())).item<double>();
}

}  // namespace

TEST_CASE("randomInit builds a deterministic model of the config's shape", "[model][random]") {
  TinySpec spec;
  spec.layers = 3;
  spec.tied = true;
  spec.qkvBias = true;
  const auto config = parseModelConfig(hs::test::configJson(spec), "tiny.json");
  LoadOptions o;
  auto a = Model::randomInit(config, o, 7), b = Model::randomInit(config, o, 7),
       c = Model::randomInit(config, o, 8);
  CHECK(a->tokenizer() == nullptr);
  CHECK(a->computeDtype() == at::kFloat);
  CHECK(a->layerWeights(2).q.sizes() == at::IntArrayRef({spec.heads * spec.headDim, spec.hidden}));
  CHECK(at::equal(a->layerWeights(1).qBias, at::zeros({spec.heads * spec.headDim})));
  CHECK(at::equal(a->layerWeights(1).inputNorm, at::ones({spec.hidden})));
  CHECK(a->lmHeadWeight().is_same(a->embeddingWeight()));  // tie_word_embeddings
  // embedding (tied lm_head), final norm; per layer: 2 norms, q k v o, their biases, gate up down.
  CHECK(a->parameterCount() ==
        64 * 32 + 32 + 3 * (2 * 32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 32 + 2 * 16 + 32 + 3 * 64 * 32));

  const auto ids = someIds(10, spec.vocab);
  auto ca = a->newCache(), cb = b->newCache(), cc = c->newCache();
  const auto la = a->forward(ids, ca), lb = b->forward(ids, cb), lc = c->forward(ids, cc);
  CHECK(at::equal(la, lb));
  CHECK(!at::allclose(la, lc));

  // N(0, 0.02) matrices: the sample std of a 64 x 32 embedding is within 10 % of 0.02.
  const double sd = a->embeddingWeight().std().item<double>();
  CHECK(sd > 0.018);
  CHECK(sd < 0.022);

  ModelConfig bad = config;
  bad.numKvHeads = 3;
  CHECK_THROWS_AS(Model::randomInit(bad, o, 1), Error);
}

TEST_CASE("a random 32-layer model stays finite in bfloat16", "[model][random]") {
  TinySpec spec;
  spec.layers = 32, spec.hidden = 64, spec.heads = 4, spec.kvHeads = 2, spec.headDim = 16, spec.inter = 128;
  spec.vocab = 100;
  const auto config = parseModelConfig(hs::test::configJson(spec), "deep.json");
  LoadOptions o;
  o.dtype = at::kBFloat16;
  auto m = Model::randomInit(config, o, 3);
  CHECK(m->embeddingWeight().scalar_type() == at::kBFloat16);
  auto cache = m->newCache();
  const auto logits = m->forward(someIds(64, spec.vocab), cache);
  CHECK(logits.scalar_type() == at::kFloat);
  CHECK(logits.isfinite().all().item<bool>());
  CHECK(cache.bytes() == 32 * 2 * 2 * 64 * 16 * 2);  // bf16 cache
}

TEST_CASE("a bfloat16 compute dtype follows the float32 model", "[model][dtype]") {
  TinySpec spec;
  spec.seed = 5;
  hs::test::ScratchDir dir;
  const auto w = hs::test::randomWeights(spec);
  hs::test::writeTinyModel(dir.path(), spec, w);
  auto f32 = loadTiny(dir), bf16 = loadTiny(dir, at::kBFloat16);
  CHECK(bf16->computeDtype() == at::kBFloat16);
  const auto ids = someIds(20, spec.vocab);
  auto c1 = f32->newCache(), c2 = bf16->newCache();
  const auto a = f32->forward(ids, c1), b = bf16->forward(ids, c2);
  CHECK(cosine(a, b) > 0.999);
  CHECK(!at::allclose(a, b, 1e-6, 1e-6));  // it really computed in bfloat16

  struct Row {
    at::ScalarType dtype;
    ErrorKind kind;
    std::string fragment;
  };
  for (const auto& row :
       {Row{at::kHalf, ErrorKind::Unsupported, "float16 compute needs a CUDA device"},
        Row{at::kInt, ErrorKind::InvalidArgument, "is not one of float32, bfloat16, float16"}}) {
    try {
      loadTiny(dir, row.dtype);
      FAIL("accepted " << row.fragment);
    } catch (const Error& e) {
      CHECK(e.kind() == row.kind);
      CHECK_THAT(e.what(), hs::test::HasSubstring(row.fragment));
      CHECK(e.field() == "dtype");
    }
  }
}

TEST_CASE("the MLP in token chunks gives the reference logits", "[model]") {
  TinySpec spec;
  spec.seed = 6;
  hs::test::ScratchDir dir;
  const auto w = hs::test::randomWeights(spec);
  hs::test::writeTinyModel(dir.path(), spec, w);
  auto m = loadTiny(dir);
  std::vector<int64_t> ids;
  for (auto id : someIds(23, spec.vocab)) ids.push_back(id);
  const auto ref = hs::test::referenceForward(spec, w, ids);
  ForwardOptions o;
  o.mlpChunkTokens = 5;  // 23 tokens: four full chunks and a partial one
  auto cache = m->newCache();
  const auto got = m->forward({ids.begin(), ids.end()}, cache, o);
  CHECK((got.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>() < 1e-5);
}
