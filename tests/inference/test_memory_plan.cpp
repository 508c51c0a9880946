// The forward's memory estimate and its out-of-memory message, on the CPU: the estimate is arithmetic
// over the config, checked here against figures known independently (Llama-3-8B's 128 KiB of bf16 KV
// cache per token) and against the properties the GPU path relies on (O(N x heads) statistics, one
// MLP chunk, one row of logits); the message's token count must be what fits.
#include <ATen/ATen.h>

#include <cstdlib>

#include "inference/formats/model_config.h"
#include "inference/memory_plan.h"
#include "inference/models/model.h"
#include "tests/inference/loaded_tiny_model.h"
#include "tests/inference/tiny_model.h"

using namespace hs;

namespace {

ModelConfig llama3_8b() {
  ModelConfig c;
  c.modelType = "llama";
  c.hiddenSize = 4096, c.intermediateSize = 14336, c.numLayers = 32, c.numHeads = 32, c.numKvHeads = 8;
  c.headDim = 128, c.vocabSize = 128256, c.maxPositions = 131072;
  return c;
}

constexpr int64_t kGiB = int64_t{1} << 30;

ForwardMemoryRequest prompt(int64_t n) {
  ForwardMemoryRequest r;
  r.newTokens = n;
  r.cacheBytesPerToken = 32 * 2 * 8 * 128 * 2;  // layers x (k, v) x KV heads x head_dim x bf16
  r.allLogits = false;
  r.mlpChunkTokens = 8192;
  return r;
}

// Sets an environment variable for the lifetime of the object.
struct ScopedEnv {
  std::string name;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE("the estimate of a 128k-token Llama-3-8B prompt", "[memory_plan]") {
  const auto c = llama3_8b();
  const auto m = estimateForwardMemory(c, at::kBFloat16, prompt(131072));
  CHECK(m.cacheGrowth == 16 * kGiB);               // 128 KiB per token, an exact reserve from an empty cache
  CHECK(m.logits == 128256 * (2 + 4) + 4096 * 2);  // one row: last token only
  CHECK(m.mlp == 4 * 8192 * 14336 * 2 + int64_t{131072} * 4096 * 2);  // one 8k chunk of [N, 14336] x 4
  CHECK(m.stats == 0);
  CHECK(m.total() < 70 * kGiB);  // with 16 GiB of weights, it fits an 80 GB H100
  CHECK(m.total() > 30 * kGiB);

  // Unchunked, the MLP's gate, up, SiLU and product would take 4 x 120k x 14336 x bf16 = 13 GiB more.
  auto whole = prompt(131072);
  whole.mlpChunkTokens = 0;
  CHECK(estimateForwardMemory(c, at::kBFloat16, whole).mlp - m.mlp ==
        4 * (131072 - 8192) * int64_t{14336} * 2);
  // Every row of logits: 128k x 128256 x (bf16 + float32) = 94 GiB: the reason for allLogits = false.
  auto allRows = prompt(131072);
  allRows.allLogits = true;
  CHECK(estimateForwardMemory(c, at::kBFloat16, allRows).logits > 90 * kGiB);
  // A hybrid cache read as a full one for statistics: one layer's keys and values, 8 x 128k x 128 x
  // bf16 x 2 = 512 MiB, on top.
  auto hybrid = prompt(131072);
  hybrid.hybridAsFull = true;
  CHECK(estimateForwardMemory(c, at::kBFloat16, hybrid).activations - m.activations ==
        512 * (int64_t{1} << 20));
}

TEST_CASE("statistic buffers grow as N x heads, never N^2", "[memory_plan]") {
  const auto c = llama3_8b();
  auto stats = [&](int64_t n, int64_t poolBlock) {
    auto r = prompt(n);
    r.stats = true;
    r.statsHeads = 32;
    r.poolBlock = poolBlock;
    r.poolHeads = poolBlock ? 32 : 0;
    return estimateForwardMemory(c, at::kBFloat16, r).stats;
  };
  CHECK(stats(131072, 0) == 2 * stats(65536, 0));
  CHECK(stats(131072, 0) < kGiB);
  // Pooled maps are quadratic in N / block, which is why the benchmark turns them off at 128k.
  CHECK(stats(131072, 64) - stats(131072, 0) == 2 * 32 * 2048 * 2048 * int64_t{4});
}

TEST_CASE("a cache with room needs no growth; a decode step grows it geometrically", "[memory_plan]") {
  const auto c = llama3_8b();
  auto r = prompt(1);
  r.cachedTokens = 1000;
  r.cacheCapacity = 1024;
  CHECK(estimateForwardMemory(c, at::kBFloat16, r).cacheGrowth == 0);
  r.cachedTokens = 1024;
  // 1024 more tokens of capacity plus the copy of one layer's old store.
  CHECK(estimateForwardMemory(c, at::kBFloat16, r).cacheGrowth ==
        1024 * r.cacheBytesPerToken + 1024 * r.cacheBytesPerToken / 32);
}

TEST_CASE("the out-of-memory message says how many tokens fit", "[memory_plan]") {
  const auto c = llama3_8b();
  const auto r = prompt(131072);
  const int64_t free = 20 * kGiB;
  const auto m = checkForwardMemory(c, at::kBFloat16, r, free);
  REQUIRE(!m.fits);
  auto need = [&](int64_t n) {
    auto shorter = r;
    shorter.newTokens = n;
    return estimateForwardMemory(c, at::kBFloat16, shorter).total();
  };
  CHECK(m.fitTokens > 0);
  CHECK(need(m.fitTokens) <= free);
  CHECK(need(m.fitTokens + 1) > free);
  const auto msg = outOfMemoryMessage(131072, m, "cuda:0");
  CHECK_THAT(msg, hs::test::HasSubstring("131072 tokens need about " + std::to_string(m.needBytes >> 20) +
                                         " MiB on cuda:0 but 20480 MiB are free; about " +
                                         std::to_string(m.fitTokens) + " tokens would fit"));
  // Unknown free memory (0) never refuses; nothing fits in less than the headroom.
  CHECK(checkForwardMemory(c, at::kBFloat16, r, 0).fits);
  CHECK(tokensThatFit(c, at::kBFloat16, r, kMemoryHeadroomBytes / 2) == 0);
}

TEST_CASE("a forward that does not fit in memory is refused with the tokens that would fit",
          "[memory_plan][model]") {
  hs::test::TinySpec spec;
  spec.maxPositions = 4096;
  hs::test::LoadedTinyModel tiny(spec);
  auto& model = tiny.model;
  // The CPU estimate's fixed part (headroom + attention block) is 512 MiB; leave 1 MiB beyond it.
  const ScopedEnv cap("HEADSCOPE_HOST_MEMORY_MB", "513");
  auto cache = model->newCache();
  int64_t fit = 0;
  try {
    model->forward(std::vector<TokenId>(4000, 3), cache);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::OutOfMemory);
    CHECK_THAT(e.what(), hs::test::HasSubstring("4000 tokens need about"));
    CHECK_THAT(e.what(), hs::test::HasSubstring("MiB on cpu but 513 MiB are free"));
    const std::string what = e.what();
    const auto at = what.find("about ", what.find("are free"));
    fit = std::atoll(what.c_str() + at + 6);
  }
  CHECK(cache.length() == 0);
  REQUIRE(fit > 10);
  REQUIRE(fit < 4000);
  // What the message promised runs; a little more does not.
  CHECK(model->forward(std::vector<TokenId>(static_cast<size_t>(fit), 3), cache).size(0) == fit);
  auto fresh = model->newCache();
  CHECK_THROWS_AS(model->forward(std::vector<TokenId>(static_cast<size_t>(fit) + 8, 3), fresh), Error);
}

TEST_CASE("a KV cache that does not fit is refused with the tokens that would fit", "[memory_plan][model]") {
  hs::test::TinySpec spec;
  spec.maxPositions = 1 << 22;
  hs::test::LoadedTinyModel tiny(spec);
  auto& model = tiny.model;
  const ScopedEnv cap("HEADSCOPE_HOST_MEMORY_MB", "513");
  const int64_t huge = int64_t{1} << 22;  // 4M tokens: more cache than 513 MiB hold
  try {
    model->newCache(huge);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::OutOfMemory);
    CHECK(e.field() == "tokens");
    CHECK_THAT(e.what(), hs::test::HasSubstring("a KV cache for 4194304 tokens needs about"));
    CHECK_THAT(e.what(), hs::test::HasSubstring("MiB on cpu but 513 MiB are free"));
    CHECK_THAT(e.what(), hs::test::HasSubstring("tokens would fit"));
  }
  // The model stays usable, and a cache it can hold is made.
  auto cache = model->newCache(64);
  CHECK(cache.capacity() >= 64);
  CHECK(model->forward(std::vector<TokenId>(8, 3), cache).size(0) == 8);
}
