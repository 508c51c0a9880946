#include <nlohmann/json.hpp>

#include "inference/formats/model_config.h"
#include "tests/formats/config_cases.h"
#include "tests/formats/scratch_dir.h"

using hs::ErrorKind;
using hs::RopeType;
using hs::test::requireError;

namespace {

using hs::test::kLlama31;
using hs::test::kMistral7B;
using hs::test::kQwen25_7B;
using hs::test::qwen3_8B;
using hs::test::small;

hs::ModelConfig parse(const std::string& text) {
  return hs::parseModelConfig(text, "/m/config.json");
}

}  // namespace

TEST_CASE("config: Llama-3.1-8B with llama3 rope_scaling", "[formats][config]") {
  const auto c = parse(kLlama31);
  CHECK(c.path == "/m/config.json");
  CHECK(c.modelType == "llama");
  CHECK(c.architectures == std::vector<std::string>{"LlamaForCausalLM"});
  CHECK(c.hiddenSize == 4096);
  CHECK(c.intermediateSize == 14336);
  CHECK(c.numLayers == 32);
  CHECK(c.numHeads == 32);
  CHECK(c.numKvHeads == 8);
  CHECK(c.groupSize() == 4);
  CHECK(c.headDim == 128);
  CHECK(c.vocabSize == 128256);
  CHECK(c.maxPositions == 131072);
  CHECK(c.rmsNormEps == 1e-5);
  CHECK(c.rope.type == RopeType::Llama3);
  CHECK(c.rope.theta == 500000.0);
  CHECK(c.rope.factor == 8.0);
  CHECK(c.rope.lowFreqFactor == 1.0);
  CHECK(c.rope.highFreqFactor == 4.0);
  CHECK(c.rope.originalMaxPositions == 8192);
  CHECK(c.rope.partialRotaryFactor == 1.0);
  CHECK_FALSE(c.tieWordEmbeddings);
  CHECK_FALSE(c.qkvBias);
  CHECK_FALSE(c.outBias);
  CHECK_FALSE(c.mlpBias);
  CHECK_FALSE(c.qkNorm);
  CHECK(c.hiddenAct == "silu");
  CHECK(c.slidingWindow == std::vector<int64_t>(32, 0));
  CHECK(c.bosTokenId == 128000);
  CHECK(c.eosTokenIds == std::vector<int64_t>{128001, 128008, 128009});
  CHECK(c.torchDtype == "bfloat16");
}

TEST_CASE("config: Mistral-7B-v0.1 with a 4096 sliding window on every layer", "[formats][config]") {
  const auto c = parse(kMistral7B);
  CHECK(c.modelType == "mistral");
  CHECK(c.numKvHeads == 8);
  CHECK(c.headDim == 128);
  CHECK(c.vocabSize == 32000);
  CHECK(c.maxPositions == 32768);
  CHECK(c.rope.type == RopeType::Default);
  CHECK(c.rope.theta == 10000.0);
  CHECK(c.slidingWindow == std::vector<int64_t>(32, 4096));
  CHECK_FALSE(c.qkvBias);
  CHECK(c.bosTokenId == 1);
  CHECK(c.eosTokenIds == std::vector<int64_t>{2});
}

TEST_CASE("config: Qwen2.5-7B with use_sliding_window false", "[formats][config]") {
  const auto c = parse(kQwen25_7B);
  CHECK(c.modelType == "qwen2");
  CHECK(c.hiddenSize == 3584);
  CHECK(c.intermediateSize == 18944);
  CHECK(c.numLayers == 28);
  CHECK(c.numHeads == 28);
  CHECK(c.numKvHeads == 4);
  CHECK(c.headDim == 128);
  CHECK(c.vocabSize == 152064);
  CHECK(c.rope.theta == 1000000.0);
  CHECK(c.rmsNormEps == 1e-6);
  // sliding_window is present but unused without use_sliding_window.
  CHECK(c.slidingWindow == std::vector<int64_t>(28, 0));
  CHECK(c.qkvBias);
  CHECK_FALSE(c.outBias);
  CHECK_FALSE(c.qkNorm);
  CHECK(c.bosTokenId == 151643);
  CHECK(c.eosTokenIds == std::vector<int64_t>{151643});
}

TEST_CASE("config: Qwen3-8B as transformers 5 writes it", "[formats][config]") {
  const auto c = parse(qwen3_8B());
  CHECK(c.modelType == "qwen3");
  CHECK(c.numLayers == 36);
  CHECK(c.numHeads == 32);
  CHECK(c.numKvHeads == 8);
  CHECK(c.headDim == 128);
  CHECK(c.intermediateSize == 12288);
  CHECK(c.maxPositions == 40960);
  CHECK(c.rope.type == RopeType::Default);
  CHECK(c.rope.theta == 1000000.0);
  CHECK(c.qkNorm);
  CHECK_FALSE(c.qkvBias);
  CHECK_FALSE(c.outBias);
  CHECK(c.slidingWindow == std::vector<int64_t>(36, 0));
  CHECK(c.eosTokenIds == std::vector<int64_t>{151645});
  CHECK(c.torchDtype == "bfloat16");
}

TEST_CASE("config: defaults follow the transformers config classes", "[formats][config]") {
  const std::vector<std::string> drop = {"num_key_value_heads", "max_position_embeddings"};
  SECTION("llama") {
    const auto c = parse(small("llama", nlohmann::json::object(), drop));
    CHECK(c.numKvHeads == 8);  // = num_attention_heads
    CHECK(c.headDim == 32);    // = 256 / 8
    CHECK(c.maxPositions == 2048);
    CHECK(c.rmsNormEps == 1e-6);
    CHECK(c.rope.type == RopeType::Default);
    CHECK(c.rope.theta == 10000.0);
    CHECK_FALSE(c.tieWordEmbeddings);
    CHECK(c.bosTokenId == 1);
    CHECK(c.eosTokenIds == std::vector<int64_t>{2});
    CHECK(c.architectures.empty());
    CHECK(c.torchDtype.empty());
  }
  SECTION("mistral: 8 kv heads, 4096*32 positions, 4096 window") {
    const auto c = parse(small("mistral", nlohmann::json::object(), drop));
    CHECK(c.numKvHeads == 8);
    CHECK(c.maxPositions == 131072);
    CHECK(c.slidingWindow == std::vector<int64_t>(4, 4096));
  }
  SECTION("qwen2: 32768 positions, no bos/eos") {
    const auto c = parse(small("qwen2", {}, {"max_position_embeddings"}));
    CHECK(c.maxPositions == 32768);
    CHECK_FALSE(c.bosTokenId.has_value());
    CHECK(c.eosTokenIds.empty());
  }
  SECTION("qwen3: head_dim 128 unless given") {
    CHECK(parse(small("qwen3")).headDim == 128);
    CHECK(parse(small("qwen3", {{"head_dim", 64}})).headDim == 64);
  }
  SECTION("null means 'use the derived value'") {
    const auto c = parse(small("llama", {{"head_dim", nullptr}}));
    CHECK(c.headDim == 32);
    const auto n =
        parse(R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":2,
      "num_attention_heads":8,"num_key_value_heads":null,"vocab_size":10,"head_dim":null,"bos_token_id":null,
      "eos_token_id":null,"rope_scaling":null})");
    CHECK(n.numKvHeads == 8);
    CHECK_FALSE(n.bosTokenId.has_value());
    CHECK(n.eosTokenIds.empty());
  }
}

TEST_CASE("config: architecture switches", "[formats][config]") {
  auto llama = parse(small("llama", {{"attention_bias", true}, {"mlp_bias", true}}));
  CHECK(llama.qkvBias);
  CHECK(llama.outBias);
  CHECK(llama.mlpBias);
  auto qwen3 = parse(small("qwen3", {{"attention_bias", true}, {"mlp_bias", true}}));
  CHECK(qwen3.qkvBias);
  CHECK(qwen3.outBias);
  CHECK_FALSE(qwen3.mlpBias);  // qwen3's MLP has no bias switch
  auto mistral = parse(small("mistral", {{"attention_bias", true}}));
  CHECK_FALSE(mistral.qkvBias);  // MistralAttention never has biases
  auto qwen2 = parse(small("qwen2", {{"attention_bias", false}}));
  CHECK(qwen2.qkvBias);  // Qwen2Attention: q/k/v always biased, o never
  CHECK_FALSE(qwen2.outBias);
  // An explicit head_dim wins even when it differs from hidden/heads.
  auto wide = parse(small("llama", {{"head_dim", 64}}));
  CHECK(wide.headDim == 64);
  CHECK(parse(small("llama", {{"tie_word_embeddings", true}})).tieWordEmbeddings);
  CHECK(parse(small("llama", {{"hidden_act", "swish"}})).hiddenAct == "silu");
}

TEST_CASE("config: rope variants", "[formats][config]") {
  SECTION("legacy 'type' key, linear") {
    const auto c = parse(small("llama", {{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}));
    CHECK(c.rope.type == RopeType::Linear);
    CHECK(c.rope.factor == 2.0);
  }
  SECTION("dynamic: original_max_position_embeddings is ignored, as transformers 5.17 does") {
    auto c = parse(small("llama", {{"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 4}}}}));
    CHECK(c.rope.type == RopeType::Dynamic);
    CHECK(c.rope.factor == 4.0);
    CHECK(c.rope.originalMaxPositions == 0);
    c = parse(small(
        "qwen2",
        {{"rope_scaling", {{"type", "dynamic"}, {"factor", 2}, {"original_max_position_embeddings", 256}}}}));
    CHECK(c.rope.type == RopeType::Dynamic);
    CHECK(c.rope.originalMaxPositions == 0);
  }
  SECTION("transformers 5 rope_parameters with llama3") {
    const auto c = parse(small("llama", {{"rope_parameters",
                                          {{"rope_type", "llama3"},
                                           {"rope_theta", 500000.0},
                                           {"factor", 32.0},
                                           {"low_freq_factor", 1.0},
                                           {"high_freq_factor", 4.0},
                                           {"original_max_position_embeddings", 8192}}}}));
    CHECK(c.rope.type == RopeType::Llama3);
    CHECK(c.rope.theta == 500000.0);
    CHECK(c.rope.factor == 32.0);
    CHECK(c.rope.originalMaxPositions == 8192);
  }
  SECTION("partial_rotary_factor at top level and inside the rope dict") {
    CHECK(parse(small("llama", {{"partial_rotary_factor", 0.5}})).rope.partialRotaryFactor == 0.5);
    CHECK(parse(small("llama",
                      {{"rope_parameters", {{"rope_type", "default"}, {"partial_rotary_factor", 0.25}}}}))
              .rope.partialRotaryFactor == 0.25);
  }
  SECTION("top-level rope_theta with a rope dict that has none") {
    const auto c = parse(
        small("llama", {{"rope_theta", 1234.0}, {"rope_scaling", {{"type", "linear"}, {"factor", 2}}}}));
    CHECK(c.rope.theta == 1234.0);
  }
}

TEST_CASE("config: sliding windows per layer", "[formats][config]") {
  SECTION("qwen2: layers from max_window_layers on") {
    const auto c = parse(
        small("qwen2", {{"use_sliding_window", true}, {"sliding_window", 1024}, {"max_window_layers", 2}}));
    CHECK(c.slidingWindow == std::vector<int64_t>{0, 0, 1024, 1024});
  }
  SECTION("qwen3: default window 4096, default max_window_layers 28 leaves 4 layers full") {
    CHECK(parse(small("qwen3", {{"use_sliding_window", true}})).slidingWindow == std::vector<int64_t>(4, 0));
  }
  SECTION("layer_types decides which layers slide") {
    const auto c = parse(small(
        "qwen3",
        {{"use_sliding_window", true},
         {"sliding_window", 128},
         {"max_window_layers", 0},
         {"layer_types", {"sliding_attention", "full_attention", "sliding_attention", "full_attention"}}}));
    CHECK(c.slidingWindow == std::vector<int64_t>{128, 0, 128, 0});
  }
  SECTION("mistral with layer_types (loaded as Ministral by transformers 5)") {
    const nlohmann::json types = {"sliding_attention", "full_attention", "sliding_attention",
                                  "full_attention"};
    CHECK(parse(small("mistral", {{"sliding_window", 64}, {"layer_types", types}})).slidingWindow ==
          std::vector<int64_t>{64, 0, 64, 0});
  }
  SECTION("llama ignores layer_types: it has no sliding attention") {
    const nlohmann::json types = {"sliding_attention", "full_attention", "sliding_attention",
                                  "full_attention"};
    CHECK(parse(small("llama", {{"sliding_window", 64}, {"layer_types", types}})).slidingWindow ==
          std::vector<int64_t>(4, 0));
  }
  SECTION("mistral: null window means full attention") {
    CHECK(parse(small("mistral", {{"sliding_window", nullptr}})).slidingWindow == std::vector<int64_t>(4, 0));
  }
}

TEST_CASE("config: broken configs fail naming the key", "[formats][config]") {
  const auto rows = hs::test::brokenConfigRows();
  for (const auto& r : rows) {
    SECTION(r.what) {
      std::vector<std::string> fragments = r.fragments;
      fragments.push_back("/m/config.json");
      requireError([&] { parse(r.text); }, r.kind, fragments);
    }
  }
}

TEST_CASE("config: loading from a directory or a file", "[formats][config]") {
  hs::test::ScratchDir dir;
  hs::test::writeBytes(dir.file("config.json"), kMistral7B);
  CHECK(hs::loadModelConfig(dir.path()).path == dir.file("config.json"));
  CHECK(hs::loadModelConfig(dir.file("config.json")).numLayers == 32);
  requireError([&] { hs::loadModelConfig(dir.file("missing")); }, ErrorKind::Io, {dir.file("missing")});
}

// config.json files that transformers 5.17 itself saved (tests/fixtures/parity/, made by
// tests/parity/make_fixtures.py); expected values are the files' literal keys and transformers' rules.
TEST_CASE("config: configs saved by transformers 5.17", "[formats][config][parity]") {
  const std::string root = hs::test::fixture("parity/");
  SECTION("llama3_bpe: rope_parameters with llama3, tied, explicit head_dim") {
    const auto c = hs::loadModelConfig(root + "llama3_bpe/model");
    CHECK(c.modelType == "llama");
    CHECK(c.hiddenSize == 64);
    CHECK(c.numHeads == 4);
    CHECK(c.numKvHeads == 2);
    CHECK(c.headDim == 16);
    CHECK(c.vocabSize == 606);
    CHECK(c.maxPositions == 256);
    CHECK(c.rope.type == RopeType::Llama3);
    CHECK(c.rope.theta == 10000.0);
    CHECK(c.rope.factor == 8.0);
    CHECK(c.rope.lowFreqFactor == 1.0);
    CHECK(c.rope.highFreqFactor == 4.0);
    CHECK(c.rope.originalMaxPositions == 32);
    CHECK(c.tieWordEmbeddings);
    CHECK(c.rmsNormEps == 1e-5);
    CHECK(c.bosTokenId == 600);
    CHECK(c.eosTokenIds == std::vector<int64_t>{601});
    CHECK(c.torchDtype == "bfloat16");
  }
  SECTION("llama2_spm: legacy rope_theta + rope_scaling.type, biases, torch_dtype") {
    const auto c = hs::loadModelConfig(root + "llama2_spm/model");
    CHECK(c.numKvHeads == 4);
    CHECK(c.intermediateSize == 160);
    CHECK(c.rope.type == RopeType::Linear);
    CHECK(c.rope.factor == 2.0);
    CHECK(c.qkvBias);
    CHECK(c.outBias);
    CHECK(c.mlpBias);
    CHECK_FALSE(c.tieWordEmbeddings);
    CHECK(c.torchDtype == "float16");
  }
  SECTION("mistral_swa: sliding window 8 on both layers, head_dim 12") {
    const auto c = hs::loadModelConfig(root + "mistral_swa/model");
    CHECK(c.modelType == "mistral");
    CHECK(c.headDim == 12);
    CHECK(c.groupSize() == 4);
    CHECK(c.slidingWindow == std::vector<int64_t>{8, 8});
    CHECK(c.rope.type == RopeType::Default);
    CHECK(c.torchDtype == "float32");
  }
  SECTION("qwen2_dynamic: dynamic NTK, qkv bias, derived head_dim, null bos") {
    const auto c = hs::loadModelConfig(root + "qwen2_dynamic/model");
    CHECK(c.headDim == 16);  // 64 / 4, no head_dim key
    CHECK(c.maxPositions == 16);
    CHECK(c.rope.type == RopeType::Dynamic);
    CHECK(c.rope.factor == 2.0);
    CHECK(c.rope.originalMaxPositions == 0);
    CHECK(c.qkvBias);
    CHECK_FALSE(c.outBias);
    CHECK(c.tieWordEmbeddings);
    CHECK_FALSE(c.bosTokenId.has_value());
    CHECK(c.eosTokenIds == std::vector<int64_t>{800});
    CHECK(c.slidingWindow == std::vector<int64_t>{0, 0});
  }
  SECTION("qwen3_qknorm: q/k norm, head_dim 32 != hidden/heads, one kv head") {
    const auto c = hs::loadModelConfig(root + "qwen3_qknorm/model");
    CHECK(c.qkNorm);
    CHECK(c.headDim == 32);
    CHECK(c.numKvHeads == 1);
    CHECK(c.numLayers == 3);
    CHECK(c.rope.theta == 1000000.0);
    CHECK(c.slidingWindow == std::vector<int64_t>{0, 0, 0});
    CHECK_FALSE(c.qkvBias);
  }
}
