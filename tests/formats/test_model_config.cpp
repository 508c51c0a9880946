#include <nlohmann/json.hpp>

#include "inference/formats/model_config.h"
#include "tests/formats/scratch_dir.h"

using hs::ErrorKind;
using hs::RopeType;
using hs::test::requireError;

namespace {

// Shaped like meta-llama/Llama-3.1-8B-Instruct's config.json (transformers 4.43).
const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// Shaped like mistralai/Mistral-7B-v0.1's config.json.
const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

// Shaped like Qwen/Qwen2.5-7B's config.json.
const char* kQwen25_7B = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 131072,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_mrope": false,
  "use_sliding_window": false,
  "vocab_size": 152064
})";

// Shaped like Qwen/Qwen3-8B's config.json as transformers 5 saves it (rope_parameters, dtype,
// layer_types).
std::string qwen3_8B() {
  nlohmann::json layerTypes = nlohmann::json::array();
  for (int i = 0; i < 36; ++i) layerTypes.push_back("full_attention");
  return R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "dtype": "bfloat16",
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 12288,
  "layer_types": )" +
         layerTypes.dump() + R"(,
  "max_position_embeddings": 40960,
  "max_window_layers": 36,
  "model_type": "qwen3",
  "num_attention_heads": 32,
  "num_hidden_layers": 36,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"},
  "sliding_window": null,
  "tie_word_embeddings": false,
  "transformers_version": "5.0.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";
}

// A small config of the given family: `patch` keys set over it (a null stays a JSON null), then
// the `drop` keys removed.
std::string small(const std::string& type, const nlohmann::json& patch = nlohmann::json::object(),
                  const std::vector<std::string>& drop = {}) {
  nlohmann::json j = {{"model_type", type},       {"hidden_size", 256},
                      {"intermediate_size", 512}, {"num_hidden_layers", 4},
                      {"num_attention_heads", 8}, {"num_key_value_heads", 2},
                      {"vocab_size", 1000},       {"max_position_embeddings", 512}};
  if (patch.is_object()) j.update(patch);
  for (const auto& key : drop) j.erase(key);
  return j.dump();
}

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
  // Integral floats are accepted for integers, as Python's int(32.0) would.
  CHECK(parse(small("llama", {{"num_hidden_layers", 3.0}})).numLayers == 3);
  CHECK(parse(small("llama", {{"tie_word_embeddings", true}})).tieWordEmbeddings);
  CHECK(parse(small("llama", {{"hidden_act", "swish"}})).hiddenAct == "silu");
}

TEST_CASE("config: rope variants", "[formats][config]") {
  SECTION("legacy 'type' key, linear") {
    const auto c = parse(small("llama", {{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}));
    CHECK(c.rope.type == RopeType::Linear);
    CHECK(c.rope.factor == 2.0);
  }
  SECTION("dynamic with and without original_max_position_embeddings") {
    auto c = parse(small("llama", {{"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 4}}}}));
    CHECK(c.rope.type == RopeType::Dynamic);
    CHECK(c.rope.factor == 4.0);
    CHECK(c.rope.originalMaxPositions == 0);
    c = parse(small(
        "qwen2",
        {{"rope_scaling", {{"type", "dynamic"}, {"factor", 2}, {"original_max_position_embeddings", 256}}}}));
    CHECK(c.rope.originalMaxPositions == 256);
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
  SECTION("rope_parameters nested per layer type, all equal") {
    const nlohmann::json rp = {{"rope_type", "default"}, {"rope_theta", 5e6}};
    const auto c = parse(
        small("qwen3",
              {{"layer_types", {"full_attention", "full_attention", "sliding_attention", "full_attention"}},
               {"rope_parameters", {{"full_attention", rp}, {"sliding_attention", rp}}}}));
    CHECK(c.rope.theta == 5e6);
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
  SECTION("mistral: null window means full attention") {
    CHECK(parse(small("mistral", {{"sliding_window", nullptr}})).slidingWindow == std::vector<int64_t>(4, 0));
  }
}

TEST_CASE("config: broken configs fail naming the key", "[formats][config]") {
  struct Row {
    const char* what;
    std::string text;
    ErrorKind kind;
    std::vector<std::string> fragments;
  };
  const std::vector<Row> rows = {
      {"missing hidden_size",
       small("llama", {}, {"hidden_size"}),
       ErrorKind::Corrupt,
       {"hidden_size: required key is missing"}},
      {"string for an int",
       small("llama", {{"num_attention_heads", "32"}}),
       ErrorKind::Corrupt,
       {"num_attention_heads: expected an integer", "\"32\"", "string"}},
      {"fractional float for an int",
       small("llama", {{"vocab_size", 32.5}}),
       ErrorKind::Corrupt,
       {"vocab_size: expected an integer", "32.5"}},
      {"bool for an int",
       small("llama", {{"num_hidden_layers", true}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: expected an integer"}},
      {"int for a bool",
       small("llama", {{"attention_bias", 1}}),
       ErrorKind::Corrupt,
       {"attention_bias: expected true or false"}},
      {"string eos", small("llama", {{"eos_token_id", {"2"}}}), ErrorKind::Corrupt, {"eos_token_id[0]"}},
      {"negative bos",
       small("llama", {{"bos_token_id", -1}}),
       ErrorKind::Corrupt,
       {"bos_token_id", "negative"}},
      {"unknown model_type",
       small("gemma"),
       ErrorKind::Unsupported,
       {"model_type \"gemma\" is not supported", "llama, mistral, qwen2, qwen3"}},
      {"missing model_type",
       R"({"hidden_size": 8})",
       ErrorKind::Corrupt,
       {"model_type: required key is missing"}},
      {"yarn",
       small("qwen2", {{"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}}}}),
       ErrorKind::Unsupported,
       {"rope_scaling", "rope type \"yarn\" is not supported", "refusing to fall back"}},
      {"su", small("llama", {{"rope_scaling", {{"type", "su"}}}}), ErrorKind::Unsupported, {"\"su\""}},
      {"longrope in rope_parameters",
       small("llama", {{"rope_parameters", {{"rope_type", "longrope"}}}}),
       ErrorKind::Unsupported,
       {"rope_parameters", "\"longrope\""}},
      {"llama3 without low_freq_factor",
       small("llama", {{"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.low_freq_factor: required key is missing"}},
      {"llama3 without original_max_position_embeddings",
       small("llama", {{"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.original_max_position_embeddings"}},
      {"llama3 high <= low",
       small("llama", {{"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 4.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.high_freq_factor"}},
      {"linear without factor",
       small("llama", {{"rope_scaling", {{"type", "linear"}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.factor: required key is missing"}},
      {"rope_scaling not an object",
       small("llama", {{"rope_scaling", "linear"}}),
       ErrorKind::Corrupt,
       {"rope_scaling: expected an object"}},
      {"negative rope_theta", small("llama", {{"rope_theta", -1.0}}), ErrorKind::Corrupt, {"rope_theta"}},
      {"heads not a multiple of kv heads",
       small("llama", {{"num_key_value_heads", 3}}),
       ErrorKind::Mismatch,
       {"num_key_value_heads", "8 is not a multiple of num_key_value_heads 3"}},
      {"zero layers",
       small("llama", {{"num_hidden_layers", 0}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: must be positive, found 0"}},
      {"negative hidden", small("llama", {{"hidden_size", -256}}), ErrorKind::Corrupt, {"hidden_size"}},
      {"too many layers",
       small("llama", {{"num_hidden_layers", 100000}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: 100000 exceeds HeadScope's limit of 1024"}},
      {"huge vocab",
       small("llama", {{"vocab_size", 1LL << 40}}),
       ErrorKind::Corrupt,
       {"vocab_size", "limit"}},
      {"huge max positions",
       small("llama", {{"max_position_embeddings", 1LL << 30}}),
       ErrorKind::Corrupt,
       {"max_position_embeddings"}},
      {"odd head_dim", small("llama", {{"head_dim", 31}}), ErrorKind::Mismatch, {"head_dim: must be even"}},
      {"huge head_dim",
       small("llama", {{"head_dim", 4096}}),
       ErrorKind::Corrupt,
       {"head_dim", "limit of 1024"}},
      {"odd rotary dims",
       small("llama", {{"partial_rotary_factor", 0.1}}),
       ErrorKind::Mismatch,
       {"partial_rotary_factor", "3 rotary dimensions"}},
      {"rotary factor above 1",
       small("llama", {{"partial_rotary_factor", 1.5}}),
       ErrorKind::Corrupt,
       {"partial_rotary_factor", "(0, 1]"}},
      {"gelu", small("llama", {{"hidden_act", "gelu"}}), ErrorKind::Unsupported, {"hidden_act", "\"gelu\""}},
      {"layer_types too short",
       small("qwen3", {{"layer_types", {"full_attention"}}}),
       ErrorKind::Mismatch,
       {"layer_types: has 1 entries, num_hidden_layers is 4"}},
      {"unknown layer type",
       small("qwen2",
             {{"layer_types", {"full_attention", "chunked_attention", "full_attention", "full_attention"}}}),
       ErrorKind::Unsupported,
       {"layer_types[1]", "chunked_attention"}},
      {"negative sliding window",
       small("mistral", {{"sliding_window", -5}}),
       ErrorKind::Corrupt,
       {"sliding_window"}},
      {"rope per layer type differs",
       small("qwen3",
             {{"layer_types", {"full_attention", "sliding_attention", "full_attention", "full_attention"}},
              {"rope_parameters",
               {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}}}}),
       ErrorKind::Unsupported,
       {"different RoPE per layer type"}},
      {"invalid JSON",
       "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 40 96\n}",
       ErrorKind::Corrupt,
       {"invalid JSON at line 3, column 22"}},  // the "6" ending the stray token "96"
      {"number overflowing a double (fuzzer finding)", R"({"model_type": "llama", "rms_norm_eps": 1e999})",
       ErrorKind::Corrupt, {"invalid JSON", "1e999"}},
      {"top-level list", "[1, 2]", ErrorKind::Corrupt, {"must be a JSON object"}},
      {"empty file", "", ErrorKind::Corrupt, {"the file is empty"}},
      {"LFS pointer",
       "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n",
       ErrorKind::Corrupt,
       {"Git LFS pointer"}},
  };
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
